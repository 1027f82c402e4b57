"""The power spectrum of 3-s segments with numpy's FFT: the first step of the model's front-end,
done here because onnxruntime's STFT op is several times slower. Matches the ONNX front-end
(centred frames, zero padding, periodic Hann window) to float32 rounding."""
import functools

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


@functools.cache
def _window(n_fft: int) -> np.ndarray:
    return (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)).astype(np.float32)


def power_spectrum(segments: np.ndarray, n_fft: int, hop_length: int, bins: int) -> np.ndarray:
    """|STFT|^2 of each segment: [n, frames, bins] float32, the first `bins` frequency bins.
    One segment at a time, so that the temporaries stay at a few MB."""
    window = _window(n_fft)
    out = None
    for i, segment in enumerate(segments):
        padded = np.pad(segment, n_fft // 2)
        spectrum = np.fft.rfft(sliding_window_view(padded, n_fft)[::hop_length] * window, axis=-1)[:, :bins]
        if out is None:
            out = np.empty((len(segments),) + spectrum.shape, np.float32)
        np.square(spectrum.real, out=out[i])
        out[i] += np.square(spectrum.imag)
    return out
