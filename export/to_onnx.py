"""Keras CNN -> one ONNX model: the MFCC front-end graph followed by the CNN, with metadata."""
import hashlib
import json
from pathlib import Path

import onnx
import tensorflow as tf
import tf2onnx

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
    function = tf.function(lambda mfcc: {OUTPUT: model(mfcc, training=False)})
    signature = [tf.TensorSpec((None,) + INPUT_SHAPE, tf.float32, name=frontend.OUTPUT)]
    cnn, _ = tf2onnx.convert.from_function(function, input_signature=signature,
                                           opset=frontend.OPSET)
    front = frontend.build()
    front.ir_version = cnn.ir_version
    merged = onnx.compose.merge_models(front, cnn, io_map=[(frontend.OUTPUT, cnn.graph.input[0].name)],
                                       prefix2="cnn/")
    merged.graph.output[0].name = OUTPUT
    for node in merged.graph.node:
        node.output[:] = [OUTPUT if o == "cnn/" + OUTPUT else o for o in node.output]
    onnx.helper.set_model_props(merged, metadata())
    onnx.checker.check_model(merged, full_check=True)
    return merged


def save(model, out_dir, card: dict) -> Path:
    """Write <out_dir>/<MODEL_NAME>.onnx and its .json (metadata, card, sha256); return the ONNX path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{spec.MODEL_NAME}.onnx"
    data = convert(model).SerializeToString()
    path.write_bytes(data)
    info = dict(metadata(), labels=list(spec.LABELS), features=json.loads(metadata()["features"]),
                **card, onnx_bytes=len(data), sha256=hashlib.sha256(data).hexdigest())
    path.with_suffix(".json").write_text(json.dumps(info, indent=2) + "\n")
    return path
