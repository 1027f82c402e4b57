"""Keras CNN -> one ONNX model: the MFCC front-end graph followed by the CNN, with metadata; and
its serving twin, which starts from the power spectrum (onnxruntime's STFT op is slow: the
function computes the spectrum with numpy's FFT instead, see inference/features.py).

    python -m export.to_onnx models/genre_cnn.onnx   # (re)write models/genre_cnn.power.onnx
"""
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from export import frontend
from export.architectures import INPUT_SHAPE
from inference import spec

VERSION = "1.0.0"
OUTPUT = "probabilities"


def metadata() -> dict[str, str]:
    """What the serving code reads from the model (all values are strings)."""
    features = {"kind": "mfcc", "n_mfcc": spec.N_MFCC, "n_fft": spec.N_FFT,
                "hop_length": spec.HOP_LENGTH, "n_mels": spec.N_MELS, "window": "hann",
                "center": True, "mel": "slaney", "amin": spec.AMIN, "top_db": spec.TOP_DB,
                "dct": "ortho", "frames": spec.N_FRAMES,
                "band_limit_hz": spec.BAND_LIMIT_HZ}
    return {"name": spec.MODEL_NAME, "version": VERSION, "labels": json.dumps(list(spec.LABELS)),
            "sample_rate": str(spec.SAMPLE_RATE), "segment_samples": str(spec.SEGMENT_SAMPLES),
            "features": json.dumps(features)}


def convert(model) -> onnx.ModelProto:
    """Front-end + CNN as one graph: audio [batch, SEGMENT_SAMPLES] -> probabilities [batch, 10]."""
    return compose(frontend.build(), model, INPUT_SHAPE, metadata())


def compose(front: onnx.ModelProto, model, input_shape: tuple, meta: dict[str, str]) -> onnx.ModelProto:
    """An ONNX front-end graph followed by a Keras model fed with its output, as one graph with
    the metadata the serving code reads."""
    import tensorflow as tf
    import tf2onnx
    features = front.graph.output[0].name
    function = tf.function(lambda x: {OUTPUT: model(x, training=False)})
    signature = [tf.TensorSpec((None,) + tuple(input_shape), tf.float32, name=features)]
    net, _ = tf2onnx.convert.from_function(function, input_signature=signature, opset=frontend.OPSET)
    front.ir_version = net.ir_version
    merged = onnx.compose.merge_models(front, net, io_map=[(features, net.graph.input[0].name)], prefix2="net/")
    merged.graph.output[0].name = OUTPUT
    for node in merged.graph.node:
        node.output[:] = [OUTPUT if o == "net/" + OUTPUT else o for o in node.output]
    onnx.helper.set_model_props(merged, meta)
    onnx.checker.check_model(merged, full_check=True)
    return merged


def power_twin(full: onnx.ModelProto) -> onnx.ModelProto:
    """The same model from the power spectrum on: input `power` [batch, N_FRAMES, bins], the STFT
    bins up to the band limit (the mel weights above it are zero, so nothing changes)."""
    start = next(i for i, node in enumerate(full.graph.node) if frontend.POWER in node.output) + 1
    nodes = list(full.graph.node)[start:]
    used = {name for node in nodes for name in node.input}
    mel = numpy_helper.to_array(next(i for i in full.graph.initializer if i.name == "mel_t"))
    bins = int(np.nonzero(np.abs(mel).sum(axis=1))[0].max()) + 1
    initializers = [numpy_helper.from_array(mel[:bins], "mel_t") if i.name == "mel_t" else i
                    for i in full.graph.initializer if i.name in used]
    graph = helper.make_graph(nodes, "genre_from_power",
                              [helper.make_tensor_value_info(frontend.POWER, TensorProto.FLOAT, ["batch", "frames", bins])],
                              list(full.graph.output), initializer=initializers)
    twin = helper.make_model(graph, opset_imports=full.opset_import, ir_version=full.ir_version)
    props = {p.key: p.value for p in full.metadata_props}
    helper.set_model_props(twin, dict(props, input="power", spectrum_bins=str(bins)))
    onnx.checker.check_model(twin, full_check=True)
    return twin


def write_twin(path: Path) -> Path:
    """Write <name>.power.onnx beside the full model; return its path."""
    twin_path = path.with_name(path.stem + ".power.onnx")
    twin_path.write_bytes(power_twin(onnx.load(path)).SerializeToString())
    return twin_path


def save(model, out_dir, card: dict) -> Path:
    """Write <out_dir>/<MODEL_NAME>.onnx, its power twin and its .json; return the ONNX path."""
    return write(convert(model), Path(out_dir) / f"{spec.MODEL_NAME}.onnx", card)


def write(model: onnx.ModelProto, path: Path, card: dict) -> Path:
    """Write an exported model, its power twin and its .json (metadata, card, size, sha256)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = model.SerializeToString()
    path.write_bytes(data)
    write_twin(path)
    meta = {p.key: p.value for p in model.metadata_props}
    info = dict(meta, labels=json.loads(meta["labels"]), features=json.loads(meta["features"]),
                **card, onnx_bytes=len(data), sha256=hashlib.sha256(data).hexdigest())
    path.with_suffix(".json").write_text(json.dumps(info, indent=2) + "\n")
    return path


if __name__ == "__main__":
    print(write_twin(Path(sys.argv[1])))
