"""Hand-built ONNX models of the serving contract, for tests: any labels, known answers."""
from pathlib import Path

import numpy as np

from inference import contract


def tiny_model(path: Path, meta: contract.ModelMeta, segment_logits: np.ndarray, segment_music=None) -> Path:
    """A model that gives segment i the logits segment_logits[i] (it reads the segment's first
    sample as i), where meta names tags, tag j the score (j + 1) / 10 for every segment, and with
    segment_music, the output "music" segment_music[i]."""
    from onnx import TensorProto, helper, numpy_helper
    n = meta.segment_samples
    nodes = [helper.make_node("Slice", ["audio", "zero", "one", "one"], ["index_f"]),
             helper.make_node("Cast", ["index_f"], ["index"], to=TensorProto.INT64),
             helper.make_node("Squeeze", ["index", "one"], ["index_1d"]),
             helper.make_node("Gather", ["table", "index_1d"], ["logits"], axis=0),
             helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1)]
    outputs = [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", len(meta.labels)])]
    consts = [numpy_helper.from_array(np.array([0], np.int64), "zero"),
              numpy_helper.from_array(np.array([1], np.int64), "one"),
              numpy_helper.from_array(segment_logits.astype(np.float32), "table")]
    if meta.tags:
        consts.append(numpy_helper.from_array(((np.arange(len(meta.tags)) + 1) / 10).astype(np.float32)[None],
                                              "tag_scores"))
        nodes += [helper.make_node("Mul", ["index_f", "zero_f"], ["nothing"]),
                  helper.make_node("Add", ["nothing", "tag_scores"], ["tags"])]
        consts.append(numpy_helper.from_array(np.array(0, np.float32), "zero_f"))
        outputs.append(helper.make_tensor_value_info("tags", TensorProto.FLOAT, ["batch", len(meta.tags)]))
    if segment_music is not None:
        consts.append(numpy_helper.from_array(np.asarray(segment_music, np.float32), "music_table"))
        nodes.append(helper.make_node("Gather", ["music_table", "index_1d"], ["music"], axis=0))
        outputs.append(helper.make_tensor_value_info("music", TensorProto.FLOAT, ["batch"]))
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("audio", TensorProto.FLOAT, ["batch", n])],
                              outputs, initializer=consts)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    helper.set_model_props(proto, meta.to_props())
    path.write_bytes(proto.SerializeToString())
    return path


def ramp(segment_count: int, n: int) -> np.ndarray:
    """Audio whose segment i starts with the sample value i."""
    audio = np.zeros(segment_count * n, np.float32)
    audio[::n] = np.arange(segment_count)
    return audio
