"""The model contract: the one source of truth for what export/ writes and inference/ reads.

The shipped ONNX takes raw mono float32 audio `[batch, SEGMENT_SAMPLES]` at SAMPLE_RATE and
returns `[batch, len(LABELS)]` probabilities; its metadata_props repeat these values, and the
serving code reads them from the model so that a model with another front-end still works.
"""

LABELS = ("blues", "classical", "country", "disco", "hiphop",
          "jazz", "metal", "pop", "reggae", "rock")

SAMPLE_RATE = 22050
SEGMENT_SECONDS = 3
SEGMENT_SAMPLES = SAMPLE_RATE * SEGMENT_SECONDS  # 66150

# MFCC front-end, exactly librosa.feature.mfcc(y, sr=SAMPLE_RATE, n_mfcc=N_MFCC, n_fft=N_FFT,
# hop_length=HOP_LENGTH): Hann window, centred frames with zero padding, N_MELS Slaney mel
# bands, power_to_db(ref=1, amin=AMIN, top_db=TOP_DB), orthonormal DCT-II.
N_MFCC = 13
N_FFT = 2048
HOP_LENGTH = 512
N_MELS = 128
AMIN = 1e-10
TOP_DB = 80.0
N_FRAMES = 1 + SEGMENT_SAMPLES // HOP_LENGTH  # 130
# The shipped model ignores the spectrum above this (its mel weights are zero there): 30 of the
# GTZAN clips we have are band-limited to ~7.6 kHz, all in a few genres per split, so a full-band
# model learns "no treble -> blues" instead of the genre. Web audio varies in bandwidth as well.
BAND_LIMIT_HZ = 7500.0

MODEL_NAME = "genre_cnn"
