"""Model families: one module each, found here by name; adding a family is adding a file.

A family module defines:
    NAME, VERSION, SAMPLE_RATE      the model's name and version, the rate clips are decoded at
    meta(labels, name) -> ModelMeta what its exported model's metadata says (inference/contract.py)
    add_arguments(parser)           its own command-line options (hyper-parameters)
    inputs(library, options)        the clips it can use and, per clip, what fit() and predict()
                                    take (export/extract.py: cached features, or the decoded audio)
    fit(inputs, y, labels, options) a trained model (y: each clip's index in labels)
    predict(trained, inputs)        per clip, segment probabilities [segments, labels]
    onnx(trained, meta, options)    the ONNX model (to_onnx.compose) with that metadata
    describe(options) -> dict       what the card says of its training
and its module docstring's first line is its summary in `python -m export --help`.
"""
import importlib
import pkgutil

ALL = {name: importlib.import_module(f"{__name__}.{name}")
       for _, name, _ in sorted(pkgutil.iter_modules(__path__))}


def summary(family) -> str:
    return family.__doc__.split("\n\n")[0].replace("\n", " ")
