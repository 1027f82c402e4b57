"""The answer is a model's first output: a generic ONNX client that takes output 0 (as most do)
gets the probabilities, for the shipped models, their serving twins and any model export writes."""
import onnx
import pytest
from onnx import TensorProto, helper

from export import to_onnx
from inference.contract import OUTPUT

from conftest import ROOT


@pytest.mark.parametrize("path", sorted((ROOT / "models").glob("*.onnx")), ids=lambda p: p.name)
def test_the_shipped_models_answer_first(path):
    outputs = [o.name for o in onnx.load(path, load_external_data=False).graph.output]
    assert outputs[0] == OUTPUT, outputs  # was features first for genre_musicnn: 250 numbers, not the answer


def test_export_writes_the_probabilities_first_and_keeps_the_others_in_order():
    names = ["features", OUTPUT, "tags", "music"]
    graph = helper.make_graph([helper.make_node("Identity", ["x"], [name]) for name in names], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info(name, TensorProto.FLOAT, [1]) for name in names])
    model = to_onnx.answer_first(helper.make_model(graph))
    onnx.checker.check_model(model)
    assert [o.name for o in model.graph.output] == [OUTPUT, "features", "tags", "music"]
