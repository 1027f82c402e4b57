"""Training, cross-validation and Keras -> ONNX export of the model families (families/); writes
models/. Never deployed; `python -m export --help` lists the commands and the families."""
import contextlib
import os

import inference  # noqa: F401  (sets ORT_DISABLE_TELEMETRY before onnxruntime loads)


@contextlib.contextmanager
def tensorflow_quiet():
    """TensorFlow's C++ log lines (oneDNN, CPU features...) kept off stderr while it loads, and its
    info and warnings after, unless TF_CPP_MIN_LOG_LEVEL is set (0 shows them all)."""
    if "TF_CPP_MIN_LOG_LEVEL" in os.environ:
        yield
        return
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)  # lines written before TensorFlow's logging reads the level
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def quiet_keras():
    """Keras, imported where it is first needed (it loads TensorFlow: ~600 MB and seconds), quietly."""
    with tensorflow_quiet():
        import keras
    return keras
