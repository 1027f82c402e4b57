"""Training-time augmentation of raw audio: random segment offsets, gain, noise, a random low-pass
(from 4 kHz up to a family's band limit: web audio is often duller than the training clips)."""
import numpy as np

GAIN_DB = (-12.0, 6.0)
NOISE_PROBABILITY, NOISE_SNR_DB = 0.5, (15.0, 45.0)
LOWPASS_PROBABILITY, LOWPASS_FROM_HZ = 0.3, 4000.0


def random_segments(audio: np.ndarray, count: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """`count` segments [count, size] at random offsets (zero-padded if the clip is short)."""
    if len(audio) < size:
        audio = np.pad(audio, (0, size - len(audio)))
    starts = rng.integers(0, len(audio) - size + 1, size=count)
    return np.stack([audio[s:s + size] for s in starts])


def augment(segments: np.ndarray, rng: np.random.Generator, sample_rate: int, band_limit_hz: float) -> np.ndarray:
    """A randomly gained, noised and low-passed copy of each segment."""
    out = segments.astype(np.float64)
    lowpass = rng.random(len(out)) < LOWPASS_PROBABILITY
    if lowpass.any():
        spectrum = np.fft.rfft(out[lowpass], axis=1)
        freqs = np.fft.rfftfreq(out.shape[1], 1.0 / sample_rate)
        cutoff = rng.uniform(LOWPASS_FROM_HZ, band_limit_hz, size=(len(spectrum), 1))
        spectrum[freqs[None, :] > cutoff] = 0
        out[lowpass] = np.fft.irfft(spectrum, n=out.shape[1], axis=1)
    noisy = rng.random(len(out)) < NOISE_PROBABILITY
    power = np.mean(out ** 2, axis=1, keepdims=True) + 1e-12
    snr = rng.uniform(*NOISE_SNR_DB, size=(len(out), 1))
    noise = rng.standard_normal(out.shape) * np.sqrt(power / 10 ** (snr / 10))
    out += noise * noisy[:, None]
    out *= 10 ** (rng.uniform(*GAIN_DB, size=(len(out), 1)) / 20)
    return out.astype(np.float32)
