"""The power spectrum of 3-s segments with numpy's FFT: the first step of the model's front-end,
done here because onnxruntime's STFT op is several times slower. Matches the ONNX front-end
(centred frames, zero padding, periodic Hann window) to float32 rounding. Segments are spread over
the cores (numpy's FFT releases the GIL), one at a time per core so temporaries stay small."""
import functools
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

_cores = ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="fft")


@functools.cache
def _window(n_fft: int) -> np.ndarray:
    return 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)


def _segment_power(segment: np.ndarray, out: np.ndarray, n_fft: int, hop_length: int):
    padded = np.pad(segment.astype(np.float64), n_fft // 2)  # numpy's float64 FFT is ~1 ms faster here
    spectrum = np.fft.rfft(sliding_window_view(padded, n_fft)[::hop_length] * _window(n_fft), axis=-1)
    spectrum = spectrum[:, :out.shape[1]]
    np.square(spectrum.real, out=out)
    out += np.square(spectrum.imag)


def power_spectrum(segments: np.ndarray, n_fft: int, hop_length: int, bins: int) -> np.ndarray:
    """|STFT|^2 of each segment: [n, frames, bins] float32, the first `bins` frequency bins."""
    frames = 1 + segments.shape[1] // hop_length
    out = np.empty((len(segments), frames, bins), np.float32)
    list(_cores.map(functools.partial(_segment_power, n_fft=n_fft, hop_length=hop_length), segments, out))
    return out
