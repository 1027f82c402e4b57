"""Model families: one module each, found here by name; adding a family is adding a file.

A family module defines:
    NAME, VERSION, SAMPLE_RATE      the model's name and version, the rate clips are decoded at
    meta() -> ModelMeta             what its exported model's metadata says (inference/contract.py)
    add_arguments(parser)           its own command-line options (hyper-parameters)
    inputs(loaded, options)         per clip, what fit() and predict() take (audio, or features)
    fit(inputs, genres, options)    a trained model
    predict(trained, inputs)        per clip, segment probabilities [segments, labels]
    onnx(trained, options)          the ONNX model (to_onnx.compose), metadata as meta() says
    describe(options) -> dict       what the card says of its training
and its module docstring's first line is its summary in `python -m export --help`.
"""
import importlib
import pkgutil

ALL = {name: importlib.import_module(f"{__name__}.{name}")
       for _, name, _ in sorted(pkgutil.iter_modules(__path__))}


def summary(family) -> str:
    return family.__doc__.split("\n\n")[0].replace("\n", " ")
