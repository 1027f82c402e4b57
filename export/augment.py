"""Training-time augmentation of raw audio: random segment offsets, gain, noise, a random low-pass
(4 to 7.5 kHz: the model never sees above spec.BAND_LIMIT_HZ, and web audio is often duller)."""
import numpy as np

from inference import spec

GAIN_DB = (-12.0, 6.0)
NOISE_PROBABILITY, NOISE_SNR_DB = 0.5, (15.0, 45.0)
LOWPASS_PROBABILITY, LOWPASS_HZ = 0.3, (4000.0, spec.BAND_LIMIT_HZ)


def random_segments(audio: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """`count` segments [count, SEGMENT_SAMPLES] at random offsets (zero-padded if the clip is short)."""
    if len(audio) < spec.SEGMENT_SAMPLES:
        audio = np.pad(audio, (0, spec.SEGMENT_SAMPLES - len(audio)))
    starts = rng.integers(0, len(audio) - spec.SEGMENT_SAMPLES + 1, size=count)
    return np.stack([audio[s:s + spec.SEGMENT_SAMPLES] for s in starts])


def augment(segments: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A randomly gained, noised and low-passed copy of each segment."""
    out = segments.astype(np.float64)
    lowpass = rng.random(len(out)) < LOWPASS_PROBABILITY
    if lowpass.any():
        spectrum = np.fft.rfft(out[lowpass], axis=1)
        freqs = np.fft.rfftfreq(spec.SEGMENT_SAMPLES, 1.0 / spec.SAMPLE_RATE)
        cutoff = rng.uniform(*LOWPASS_HZ, size=(len(spectrum), 1))
        spectrum[freqs[None, :] > cutoff] = 0
        out[lowpass] = np.fft.irfft(spectrum, n=spec.SEGMENT_SAMPLES, axis=1)
    noisy = rng.random(len(out)) < NOISE_PROBABILITY
    power = np.mean(out ** 2, axis=1, keepdims=True) + 1e-12
    snr = rng.uniform(*NOISE_SNR_DB, size=(len(out), 1))
    noise = rng.standard_normal(out.shape) * np.sqrt(power / 10 ** (snr / 10))
    out += noise * noisy[:, None]
    out *= 10 ** (rng.uniform(*GAIN_DB, size=(len(out), 1)) / 20)
    return out.astype(np.float32)
