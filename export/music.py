"""The music detector: per 3-s segment, the probability that it is music, read from the same
segment features as the genre head (musicnn's penultimate layer and its tag scores, [250]), so it
composes with any head fitted on them.

The method (chosen by export/music_compare.py, docs/music-detection.md): an L2 logistic
regression, classes balanced, on the standardised features of every segment, music (the
library's clips) against the synthesized non-music (export/nonmusic.py); the standardisation is
folded into one weight vector. append() adds it to an exported model's graph as the output
MUSIC_OUTPUT [segments], fed by its FEATURES_OUTPUT: a graph edit like to_onnx.calibrated().
A track's `music` pools its segments' as the genre head does (the mean of their logits).

    python -m export.music --model models/genre_musicnn.onnx --data DIR --out OUT.onnx

fits a detector on the model's own features of the music under DIR (any folder export.dataset
reads) against nonmusic.generate(), and writes the model with it (and its serving twin) to OUT.
"""
import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from scipy.special import expit
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from export import dataset, nonmusic, to_onnx
from inference import segments
from inference.contract import AUDIO_INPUT, FEATURES_OUTPUT, MUSIC_OUTPUT, TAGS_OUTPUT, ModelMeta

C = 0.1  # inverse L2 strength (export/music_compare.py: 0.01-1 score alike)


@dataclass(frozen=True)
class Detector:
    kernel: np.ndarray  # [features] on the raw (unstandardised) segment features
    bias: float

    def logits(self, features: np.ndarray) -> np.ndarray:
        return np.asarray(features, np.float64) @ self.kernel + self.bias

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        """P(music) of each segment [segments] from its features [segments, features]."""
        return expit(self.logits(features))


def fit(music: np.ndarray, nonmusic: np.ndarray, c: float = C) -> Detector:
    """The detector fitted on music and non-music segment features [segments, features]."""
    x, y = np.concatenate([music, nonmusic]).astype(np.float64), np.r_[np.ones(len(music)), np.zeros(len(nonmusic))]
    scaler = StandardScaler().fit(x)
    regression = LogisticRegression(C=c, class_weight="balanced", max_iter=5000).fit(scaler.transform(x), y)
    kernel = regression.coef_[0] / scaler.scale_
    return Detector(kernel, float(regression.intercept_[0] - scaler.mean_ @ kernel))


def append(model: onnx.ModelProto, detector: Detector) -> onnx.ModelProto:
    """The model with a second use of its FEATURES_OUTPUT [segments, features]: the output
    MUSIC_OUTPUT [segments], each segment's P(music)."""
    outputs = {o.name: o for o in model.graph.output}
    if FEATURES_OUTPUT not in outputs or MUSIC_OUTPUT in outputs:
        raise ValueError(f"the model needs an output {FEATURES_OUTPUT!r} and none named {MUSIC_OUTPUT!r}; "
                         f"it has {list(outputs)}")
    width = outputs[FEATURES_OUTPUT].type.tensor_type.shape.dim[-1].dim_value
    if width != len(detector.kernel):
        raise ValueError(f"the model's {FEATURES_OUTPUT!r} are {width} wide, the detector's {len(detector.kernel)}")
    model.graph.initializer.extend([numpy_helper.from_array(detector.kernel.astype(np.float32), "music_kernel"),
                                    numpy_helper.from_array(np.array(detector.bias, np.float32), "music_bias")])
    model.graph.node.extend([helper.make_node("MatMul", [FEATURES_OUTPUT, "music_kernel"], ["music_weighted"]),
                             helper.make_node("Add", ["music_weighted", "music_bias"], ["music_logits"]),
                             helper.make_node("Sigmoid", ["music_logits"], [MUSIC_OUTPUT])])
    model.graph.output.append(helper.make_tensor_value_info(MUSIC_OUTPUT, TensorProto.FLOAT, ["batch"]))
    onnx.checker.check_model(model, full_check=True)
    return model


def with_features(model: onnx.ModelProto) -> onnx.ModelProto:
    """A musicnn-family model exported without the output FEATURES_OUTPUT, with it: the head's
    input, the Concat of the penultimate layer and TAGS_OUTPUT (models exported before it was one)."""
    if FEATURES_OUTPUT not in [o.name for o in model.graph.output]:
        concat = next(n for n in model.graph.node if n.op_type == "Concat" and n.input[-1] == TAGS_OUTPUT)
        shape = next(v for v in onnx.shape_inference.infer_shapes(model).graph.value_info if v.name == concat.output[0])
        model.graph.node.append(helper.make_node("Identity", [concat.output[0]], [FEATURES_OUTPUT]))
        width = shape.type.tensor_type.shape.dim[-1].dim_value
        model.graph.output.append(helper.make_tensor_value_info(FEATURES_OUTPUT, TensorProto.FLOAT, ["batch", width]))
    return model


def features_of(model: onnx.ModelProto, audios, batch: int = 16) -> list[np.ndarray]:
    """Each audio's segment features [segments, n], computed by the (raw-audio) model itself."""
    import onnxruntime as ort
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    size = ModelMeta.from_props({p.key: p.value for p in model.metadata_props}).segment_samples
    out = []
    for audio in audios:
        cut = segments.split(audio, size)
        out.append(np.concatenate([session.run([FEATURES_OUTPUT], {AUDIO_INPUT: cut[i:i + batch]})[0]
                                   for i in range(0, len(cut), batch)]))
    return out


def with_detector(model: onnx.ModelProto, music: list[np.ndarray], other: list[np.ndarray]) -> onnx.ModelProto:
    """The model (raw audio in) with a detector fitted on its own features of these audios."""
    model = with_features(model)
    detector = fit(np.concatenate(features_of(model, music)), np.concatenate(features_of(model, other)))
    return append(model, detector)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m export.music", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, type=Path, help="an exported model (raw audio in)")
    parser.add_argument("--data", required=True, help="the music: a folder export.dataset reads")
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args(argv)
    model = onnx.load(args.model)
    rate = ModelMeta.from_props({p.key: p.value for p in model.metadata_props}).sample_rate
    if rate != nonmusic.SAMPLE_RATE:
        parser.error(f"the model takes {rate} Hz; the non-music is made at {nonmusic.SAMPLE_RATE} Hz")
    music = [audio for _, audio in dataset.load(dataset.find_clips(args.data), rate)]
    other = [item.audio for item in nonmusic.generate()]
    args.out.write_bytes(with_detector(model, music, other).SerializeToString())
    print(to_onnx.write_twin(args.out))


if __name__ == "__main__":
    main()
