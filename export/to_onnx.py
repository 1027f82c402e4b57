"""The export writer: a front-end graph and a Keras model as one ONNX model with its metadata
(inference/contract.py), its serving twin, and its .json card.

The twin starts from the power spectrum (onnxruntime's STFT op is slow: the function computes the
spectrum with numpy's FFT instead, see inference/features.py).

    python -m export.to_onnx models/genre_cnn.onnx   # (re)write models/genre_cnn.power.onnx
"""
import dataclasses
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from export import frontend, tensorflow_quiet
from inference.contract import OUTPUT, POWER_INPUT, ModelMeta, twin_path


def merged_opsets(opsets) -> list:
    """One opset import per domain (the highest version): merging two graphs that both import the
    default domain lists it twice, which onnxruntime's quantization tools refuse."""
    versions = {}
    for opset in opsets:
        domain = "" if opset.domain == "ai.onnx" else opset.domain
        versions[domain] = max(versions.get(domain, 0), opset.version)
    return [helper.make_opsetid(domain, version) for domain, version in versions.items()]


def compose(front: onnx.ModelProto, model, meta: ModelMeta) -> onnx.ModelProto:
    """An ONNX front-end graph followed by a Keras model fed with its output, as one graph with
    the metadata the serving code reads. The Keras model gives the probabilities, or a dict of
    named outputs (OUTPUT and, for a model with tags, TAGS_OUTPUT)."""
    with tensorflow_quiet():
        import tensorflow as tf
        import tf2onnx
    features = front.graph.output[0]
    shape = tuple(d.dim_value for d in features.type.tensor_type.shape.dim[1:])

    def outputs(x):
        out = model(x, training=False)
        return out if isinstance(out, dict) else {OUTPUT: out}
    signature = [tf.TensorSpec((None, *shape), tf.float32, name=features.name)]
    net, _ = tf2onnx.convert.from_function(tf.function(outputs), input_signature=signature, opset=frontend.OPSET)
    front.ir_version = net.ir_version
    names = [o.name for o in net.graph.output]
    merged = onnx.compose.merge_models(front, net, io_map=[(features.name, net.graph.input[0].name)],
                                       prefix2="net/")
    for output in merged.graph.output:
        output.name = output.name.removeprefix("net/")
    renamed = {f"net/{name}": name for name in names}
    for node in merged.graph.node:
        node.input[:] = [renamed.get(i, i) for i in node.input]
        node.output[:] = [renamed.get(o, o) for o in node.output]
    opsets = merged_opsets(merged.opset_import)
    del merged.opset_import[:]
    merged.opset_import.extend(opsets)
    onnx.helper.set_model_props(merged, meta.to_props())
    onnx.checker.check_model(merged, full_check=True)
    return merged


def calibrated(model: onnx.ModelProto, t: float, uncertain_below: float) -> onnx.ModelProto:
    """The model with its logits divided by t (probabilities p -> softmax(log(p) / t): log p is the
    logit up to a constant per segment) and the threshold under which answers are uncertain."""
    inner = OUTPUT + "_uncalibrated"
    for node in model.graph.node:
        node.output[:] = [inner if o == OUTPUT else o for o in node.output]
        node.input[:] = [inner if i == OUTPUT else i for i in node.input]
    model.graph.initializer.append(numpy_helper.from_array(np.array(t, np.float32), "temperature"))
    model.graph.node.extend([helper.make_node("Log", [inner], ["log_probabilities"]),
                             helper.make_node("Div", ["log_probabilities", "temperature"], ["calibrated_logits"]),
                             helper.make_node("Softmax", ["calibrated_logits"], [OUTPUT], axis=-1)])
    meta = ModelMeta.from_props({p.key: p.value for p in model.metadata_props})
    del model.metadata_props[:]
    helper.set_model_props(model, dataclasses.replace(meta, uncertain_below=uncertain_below).to_props())
    onnx.checker.check_model(model, full_check=True)
    return model


def power_twin(full: onnx.ModelProto, source_sha256: str) -> onnx.ModelProto:
    """The same model from the power spectrum on: input POWER_INPUT [batch, frames, bins], the STFT
    bins up to the highest one the mel weights use (above it they are zero, so nothing changes). Its
    metadata names the sha256 of the model file it comes from: the server refuses a twin of another."""
    start = next(i for i, node in enumerate(full.graph.node) if POWER_INPUT in node.output) + 1
    nodes = list(full.graph.node)[start:]
    used = {name for node in nodes for name in node.input}
    mel = numpy_helper.to_array(next(i for i in full.graph.initializer if i.name == "mel_t"))
    bins = int(np.nonzero(np.abs(mel).sum(axis=1))[0].max()) + 1
    initializers = [numpy_helper.from_array(mel[:bins], "mel_t") if i.name == "mel_t" else i
                    for i in full.graph.initializer if i.name in used]
    power = helper.make_tensor_value_info(POWER_INPUT, TensorProto.FLOAT, ["batch", "frames", bins])
    graph = helper.make_graph(nodes, "genre_from_power", [power], list(full.graph.output), initializer=initializers)
    twin = helper.make_model(graph, opset_imports=merged_opsets(full.opset_import), ir_version=full.ir_version)
    meta = ModelMeta.from_props({p.key: p.value for p in full.metadata_props})
    helper.set_model_props(twin, meta.twin(bins, source_sha256).to_props())
    onnx.checker.check_model(twin, full_check=True)
    return twin


def write_twin(path: Path) -> Path:
    """Write the serving twin beside the full model; return its path."""
    twin, data = twin_path(path), Path(path).read_bytes()
    twin.write_bytes(power_twin(onnx.load_from_string(data), hashlib.sha256(data).hexdigest()).SerializeToString())
    return twin


def answer_first(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model with OUTPUT (the probabilities) as its first output, the others in their order: a
    generic client takes output 0 for the answer (changed in place)."""
    outputs = sorted(model.graph.output, key=lambda o: o.name != OUTPUT)  # stable
    copies = [onnx.ValueInfoProto() for _ in outputs]
    for copy, output in zip(copies, outputs, strict=True):
        copy.CopyFrom(output)
    del model.graph.output[:]
    model.graph.output.extend(copies)
    return model


def write(model: onnx.ModelProto, path: Path, card: dict) -> Path:
    """Write an exported model (probabilities first), its serving twin and its .json (metadata, card,
    size, sha256)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = answer_first(model).SerializeToString()
    path.write_bytes(data)
    write_twin(path)
    meta = ModelMeta.from_props({p.key: p.value for p in model.metadata_props})
    info = dict(meta.to_props(), labels=list(meta.labels), features=meta.features,
                **card, onnx_bytes=len(data), sha256=hashlib.sha256(data).hexdigest())
    path.with_suffix(".json").write_text(json.dumps(info, indent=2) + "\n")
    return path


if __name__ == "__main__":
    print(write_twin(Path(sys.argv[1])))
