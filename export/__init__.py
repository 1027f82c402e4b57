"""Training, cross-validation and Keras -> ONNX export of the model families (families/); writes
models/. Never deployed; `python -m export --help` lists the commands and the families."""
import inference  # noqa: F401  (sets ORT_DISABLE_TELEMETRY before onnxruntime loads)
