"""export/musicnn.py: the Keras port of musicnn's MSD network against the original TF1 graph,
restored from the checkpoint's .meta, on real GTZAN clips."""
import librosa
import numpy as np
import pytest
import tensorflow as tf

from export import musicnn


@pytest.fixture(scope="module")
def patches(gtzan) -> np.ndarray:
    """One 3-s log-mel patch from the first clip of four genres."""
    clips = [sorted((gtzan / genre).glob("*.flac"))[0] for genre in ("rock", "jazz", "classical", "hiphop")]
    return np.stack([musicnn.log_mel(librosa.load(clip, sr=musicnn.SAMPLE_RATE, duration=6)[0])[:musicnn.N_FRAMES]
                     for clip in clips])


def original_tags(batch: np.ndarray) -> np.ndarray:
    """The tag scores of the original graph (its stale _output_shapes attributes dropped: TF 2
    refuses them on the gradient nodes)."""
    from tensorflow.core.protobuf import meta_graph_pb2
    folder = musicnn.checkpoint()
    meta = meta_graph_pb2.MetaGraphDef()
    meta.ParseFromString((folder / ".meta").read_bytes())
    for node in meta.graph_def.node:
        node.attr.pop("_output_shapes", None)
    graph = tf.Graph()
    with graph.as_default(), tf.compat.v1.Session(graph=graph) as session:
        tf.compat.v1.train.import_meta_graph(meta, clear_devices=True).restore(session, str(folder) + "/")
        return session.run("model/Sigmoid:0", {"model/Placeholder:0": batch, "model/Placeholder_2:0": False})


def test_the_port_gives_the_original_tag_scores(patches):
    ported = musicnn.load().predict(patches, verbose=0)[0]
    original = original_tags(patches)
    assert ported.shape == original.shape == (4, len(musicnn.TAGS))
    assert np.abs(ported - original).max() <= 1e-4
    top = [musicnn.TAGS[row.argmax()] for row in original]
    assert top[0] == "rock" and top[1] == "jazz" and top[3] == "Hip-Hop", top  # sane tags, not noise
