"""The genre_musicnn head's fit on the cached features of a large library: time and peak memory.

    python bench/head_fit.py [--clips 100000] [--labels 20] [--segments 10]

Features are synthetic (a Gaussian cloud per label in the backbone's 250 dimensions, float32 as
the cache holds them); the fit is the family's own (export/families/genre_musicnn.py: the clip
head, a class-balanced logistic regression on each clip's mean features, made a Keras layer).
Peak memory is the process's maximum resident set (ru_maxrss), TensorFlow's import included.
"""
import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def synthetic(clips: int, labels: int, segments: int, seed: int = 0) -> tuple[list[np.ndarray], np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1, (labels, 250)).astype(np.float32)
    y = rng.integers(0, labels, clips)
    features = [centres[label] + rng.normal(0, 30, (segments, 250)).astype(np.float32) for label in y]
    return features, y


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=100_000)
    parser.add_argument("--labels", type=int, default=20)
    parser.add_argument("--segments", type=int, default=10)
    args = parser.parse_args()
    from export.families import genre_musicnn as family
    features, y = synthetic(args.clips, args.labels, args.segments)
    labels = tuple(f"label {i}" for i in range(args.labels))
    began = time.monotonic()
    head = family.fit(features, y, labels, argparse.Namespace(head="clip", c=family.C))
    seconds = time.monotonic() - began
    means = np.stack([f.mean(axis=0) for f in features[:5000]])
    accuracy = float(np.mean(head(means).argmax(axis=1) == y[:5000]))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{args.clips} clips x {args.segments} segments, {args.labels} labels: fit {seconds:.1f} s, "
          f"peak RSS {peak:.0f} MiB (features {sum(f.nbytes for f in features) / 2**20:.0f} MiB), "
          f"fit accuracy {accuracy:.3f}")


if __name__ == "__main__":
    main()
