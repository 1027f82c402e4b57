"""The non-music set of the music detector: synthesized here, deterministic by seed, each item
tagged by what made it.

- speech: espeak-ng (voices of several languages, speeds and pitches), flite (its voices and
  speeds) and festival (kal_diphone at several speeds), reading SENTENCES; the Debian packages
  espeak-ng, flite and festival (tests/install-speech.sh);
- noise: white, pink and brown, at several levels;
- tones: sines, dual tones (telephone signals) and sweeps;
- silence: digital silence and near-silence (noise at -90 to -60 dBFS);
- hum (mains at 50 or 60 Hz with harmonics) and clicks (random crackle, a metronome);
- loud: noise clipped at full scale (what an int16 file holds), noise over full scale (a float
  file, up to decode.MAX_PEAK), square waves up to that;
- mixtures of those at several levels (speech over noise or hum, a tone over noise).

Each item says the generators it contains (`sources`); GROUP_OF maps a generator to the group
held out together when methods are compared (export/music_compare.py): one speech engine, or a
family of signals. Audio is mono float32 at SAMPLE_RATE, ITEM_SECONDS long.

The borderline, decided (docs/music-detection.md): music with singing is music (GTZAN has plenty);
speech over quiet background music (the music 10 dB or more under the speech) is not music: it
is a podcast or a voice-over; a song after a spoken intro is answered per segment (the intro's
segments not music, the song's music). borderline() builds the last two from given music.
"""
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import librosa
import numpy as np

SAMPLE_RATE = 16000
ITEM_SECONDS = 12  # four of the model's 3-s segments
SEED = 20
SENTENCES = {
    "en": ("The committee will meet again on Thursday to discuss the budget for next year.",
           "Turn left at the second light, then keep going until you see the old station.",
           "In this episode we talk about how bread rises and why the oven matters so much.",
           "Please remember to bring your identity card and a pen to the examination room.",
           "The river flooded the lower fields twice this spring, and the farmers lost a crop.",
           "Our next speaker has spent twenty years studying the migration of birds."),
    "de": ("Der Zug nach Berlin hat heute leider zwanzig Minuten Verspätung.",
           "Bitte schließen Sie die Fenster, bevor Sie das Gebäude verlassen."),
    "fr": ("La réunion commence à neuf heures, merci d'arriver quelques minutes en avance.",
           "Le musée est fermé le lundi, mais la bibliothèque reste ouverte."),
    "es": ("El mercado abre temprano y los vendedores llegan antes del amanecer.",
           "Mañana hablaremos de la historia de la ciudad y de sus puentes."),
    "it": ("La conferenza si terrà nella sala grande al primo piano.",
           "Il treno per Milano parte dal binario quattro tra dieci minuti."),
}
# espeak-ng: (voice, words per minute, pitch 0-99)
ESPEAK = (("en+m1", 150, 40), ("en+f3", 175, 60), ("en-us+m3", 210, 50), ("en-gb+f2", 130, 70),
          ("en+m7", 175, 30), ("en-us+f4", 240, 55), ("de+m2", 160, 45), ("de+f1", 190, 65),
          ("fr+m4", 170, 50), ("fr+f2", 150, 60), ("es+m1", 200, 45), ("it+f3", 165, 55))
FLITE = (("kal", 1.0), ("kal16", 0.8), ("awb", 1.0), ("rms", 1.25), ("slt", 0.9), ("slt", 1.2), ("rms", 0.85),
         ("awb", 1.3))
SPEECH_PEAKS_DBFS = (-3, -12, -24)
FESTIVAL = (0.8, 1.0, 1.2, 1.45)  # kal_diphone (the one voice Debian ships) at these duration stretches
GROUP_OF = {"espeak-ng": "espeak-ng", "flite": "flite", "festival": "festival",
            "white": "noise", "pink": "noise", "brown": "noise",
            "sine": "tone", "dual": "tone", "sweep": "tone",
            "silence": "silence", "near-silence": "silence",
            "hum": "hum+clicks", "crackle": "hum+clicks", "metronome": "hum+clicks",
            "clipped": "loud", "over-range": "loud", "square": "loud"}
GROUPS = tuple(dict.fromkeys(GROUP_OF.values()))
REAL_VOICE = Path("/usr/share/sounds/alsa")


@dataclass(frozen=True)
class Item:
    name: str  # e.g. "speech/espeak-ng/en+f3", "mix/flite+pink/snr10"
    sources: tuple[str, ...]  # the generators in it (keys of GROUP_OF)
    audio: np.ndarray  # [ITEM_SECONDS * SAMPLE_RATE] float32

    @property
    def groups(self) -> set[str]:
        return {GROUP_OF[s] for s in self.sources}


def _fit(audio: np.ndarray, peak_dbfs: float = -3.0) -> np.ndarray:
    """ITEM_SECONDS of audio (repeated if shorter), scaled to a peak of peak_dbfs."""
    n = ITEM_SECONDS * SAMPLE_RATE
    audio = np.tile(audio, -(-n // len(audio)))[:n]
    return (audio / max(np.abs(audio).max(), 1e-9) * 10 ** (peak_dbfs / 20)).astype(np.float32)


def _read(command: list[str], wav: Path, rng: np.random.Generator) -> np.ndarray:
    """What a speech engine wrote to wav, at one of SPEECH_PEAKS_DBFS."""
    subprocess.run(command, check=True, capture_output=True, timeout=120)
    audio, _ = librosa.load(wav, sr=SAMPLE_RATE, mono=True)
    return _fit(audio, rng.choice(SPEECH_PEAKS_DBFS))


def _text(language: str, rng: np.random.Generator) -> str:
    sentences = SENTENCES[language]
    return " ".join(sentences[i] for i in rng.permutation(len(sentences)))


def speech(rng: np.random.Generator) -> list[Item]:
    """Every voice of ESPEAK, FLITE and FESTIVAL reading shuffled SENTENCES."""
    items = []
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "speech.wav"
        for voice, wpm, pitch in ESPEAK:
            text = _text(voice.split("-")[0].split("+")[0], rng)
            audio = _read(["espeak-ng", "-v", voice, "-s", str(wpm), "-p", str(pitch), "-w", str(wav), text], wav, rng)
            items.append(Item(f"speech/espeak-ng/{voice}/{wpm}wpm", ("espeak-ng",), audio))
        for voice, stretch in FLITE:
            audio = _read(["flite", "-voice", voice, "--setf", f"duration_stretch={stretch}",
                           "-t", _text("en", rng), "-o", str(wav)], wav, rng)
            items.append(Item(f"speech/flite/{voice}/x{stretch}", ("flite",), audio))
        for stretch in FESTIVAL:
            (Path(tmp) / "text.txt").write_text(_text("en", rng))
            audio = _read(["text2wave", "-eval", f"(Parameter.set 'Duration_Stretch {stretch})",
                           "-o", str(wav), str(Path(tmp) / "text.txt")], wav, rng)
            items.append(Item(f"speech/festival/kal_diphone/x{stretch}", ("festival",), audio))
    return items


def coloured_noise(colour: str, rng: np.random.Generator, seconds: float = ITEM_SECONDS) -> np.ndarray:
    """White, pink (1/f power) or brown (1/f^2 power) Gaussian noise, unit standard deviation."""
    n = int(seconds * SAMPLE_RATE)
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.maximum(np.fft.rfftfreq(n, 1 / SAMPLE_RATE), 10.0)  # no boost below 10 Hz
    spectrum *= {"white": 1.0, "pink": f ** -0.5, "brown": 1 / f}[colour]
    noise = np.fft.irfft(spectrum, n)
    return noise / noise.std()


def _seconds() -> np.ndarray:
    return np.arange(ITEM_SECONDS * SAMPLE_RATE) / SAMPLE_RATE


def noise(rng: np.random.Generator) -> list[Item]:
    return [Item(f"noise/{colour}/{peak}dBFS", (colour,), _fit(coloured_noise(colour, rng), peak))
            for colour in ("white", "pink", "brown") for peak in (-30, -12, -1)]


def tones(rng: np.random.Generator) -> list[Item]:
    """Sines, telephone dual tones (dial 350+440 Hz, ringback 440+480 Hz, DTMF digits) and sweeps."""
    t, items = _seconds(), []
    for hz in (110.0, 440.0, 1000.0, 3150.0, *rng.uniform(60, 6000, 2).round()):
        items.append(Item(f"tone/sine/{hz:g}Hz", ("sine",), _fit(np.sin(2 * np.pi * hz * t), -6)))
    for name, (a, b), on in (("dial", (350, 440), 1.0), ("ringback", (440, 480), 0.33),
                             ("dtmf", (697, 1209), 0.5), ("busy", (480, 620), 0.5)):
        gate = (t % 1.0) < on  # on for `on` of every second
        items.append(Item(f"tone/dual/{name}", ("dual",), _fit((np.sin(2 * np.pi * a * t) + np.sin(2 * np.pi * b * t))
                                                               * gate, -6)))
    for name, linear, period in (("linear", True, 12), ("log", False, 12), ("log-fast", False, 2)):
        sweep = librosa.chirp(fmin=50, fmax=7900, sr=SAMPLE_RATE, duration=period, linear=linear)
        items.append(Item(f"tone/sweep/{name}", ("sweep",), _fit(np.tile(sweep, ITEM_SECONDS // period), -6)))
    return items


def silence(rng: np.random.Generator) -> list[Item]:
    """Digital silence, and white or brown noise at -90 to -60 dBFS peak (a muted input, a room)."""
    n = ITEM_SECONDS * SAMPLE_RATE
    items = [Item("silence/digital", ("silence",), np.zeros(n, np.float32))]
    for colour, peak in (("white", -90), ("white", -72), ("brown", -80), ("brown", -60), ("pink", -66)):
        quiet = _fit(coloured_noise(colour, rng), peak)
        items.append(Item(f"silence/near/{colour}/{peak}dBFS", ("near-silence",), quiet))
    return items


def hum(mains_hz: float) -> np.ndarray:
    """Mains hum: the fundamental and its odd harmonics, falling off."""
    t = _seconds()
    return sum(np.sin(2 * np.pi * mains_hz * k * t) / k for k in (1, 2, 3, 5, 7))


def clicks(rng: np.random.Generator, per_second: float, regular: bool) -> np.ndarray:
    """Short decaying clicks: a metronome at per_second, or crackle (Poisson) at that rate."""
    n = ITEM_SECONDS * SAMPLE_RATE
    if regular:
        at = np.arange(0, n, int(SAMPLE_RATE / per_second))
    else:
        at = rng.integers(0, n, rng.poisson(per_second * ITEM_SECONDS))
    impulses = np.zeros(n)
    impulses[at] = rng.choice([-1.0, 1.0], len(at)) * rng.uniform(0.3, 1.0, len(at))
    return np.convolve(impulses, np.exp(-np.arange(80) / 8.0) * rng.standard_normal(80))[:n]


def hum_and_clicks(rng: np.random.Generator) -> list[Item]:
    items = [Item(f"hum/{hz}Hz/{peak}dBFS", ("hum",), _fit(hum(hz), peak)) for hz in (50, 60) for peak in (-30, -6)]
    items += [Item(f"clicks/crackle/{rate}/s", ("crackle",), _fit(clicks(rng, rate, False), -6)) for rate in (3, 40)]
    items += [Item(f"clicks/metronome/{bpm}bpm", ("metronome",), _fit(clicks(rng, bpm / 60, True), -6))
              for bpm in (60, 120)]
    return items


def loud(rng: np.random.Generator) -> list[Item]:
    """As loud as the function takes audio: Gaussian noise driven 0 to 18 dB into clipping at full
    scale and uniform noise at full scale (an int16 file), noise 2 to 16 times over full scale (a
    float file: decode.MAX_PEAK is 16), square waves at 1 to 16 times full scale."""
    n, t = ITEM_SECONDS * SAMPLE_RATE, _seconds()
    items = [Item(f"clipped/{colour}/+{drive}dB", ("clipped",),
                  np.clip(coloured_noise(colour, rng) / 4 * 10 ** (drive / 20), -1, 1).astype(np.float32))
             for colour, drive in (("white", 0), ("white", 12), ("pink", 6), ("pink", 18), ("brown", 12))]
    items.append(Item("clipped/uniform/0dBFS", ("clipped",), rng.uniform(-1, 1, n).astype(np.float32)))
    items += [Item(f"over-range/{colour}/x{times}", ("over-range",),
                   _fit(coloured_noise(colour, rng), 20 * np.log10(times)))
              for colour, times in (("white", 2), ("white", 8), ("pink", 4), ("pink", 16), ("brown", 8))]
    items.append(Item("over-range/uniform/x16", ("over-range",), rng.uniform(-16, 16, n).astype(np.float32)))
    items += [Item(f"square/{hz}Hz/x{times}", ("square",), _fit(np.sign(np.sin(2 * np.pi * hz * t + 0.1)),
                                                                 20 * np.log10(times)))
              for hz, times in ((55, 8), (100, 1), (100, 16), (440, 4), (1000, 16), (2500, 2))]
    return items


def mix(a: np.ndarray, b: np.ndarray, below_db: float) -> np.ndarray:
    """a with b under it by below_db (RMS), peak -3 dBFS."""
    b = b * (np.sqrt(np.mean(a ** 2)) / max(np.sqrt(np.mean(b ** 2)), 1e-12)) * 10 ** (-below_db / 20)
    return _fit(a + b)


def mixtures(spoken: list[Item], rng: np.random.Generator) -> list[Item]:
    """Speech of each engine over noise or hum at 20, 10 and 0 dB; tones and clicks over noise."""
    items = []
    for i, below in enumerate((20, 10, 0)):
        for engine in ("espeak-ng", "flite", "festival"):
            voice = [s for s in spoken if s.sources == (engine,)][i]
            colour = ("white", "pink", "brown")[i]
            items.append(Item(f"mix/{engine}+{colour}/{below}dB", (engine, colour),
                              mix(voice.audio, coloured_noise(colour, rng), below)))
            items.append(Item(f"mix/{engine}+hum/{below}dB", (engine, "hum"), mix(voice.audio, hum(50), below)))
    t = _seconds()
    hiss = coloured_noise("pink", rng)
    items.append(Item("mix/sine+pink/10dB", ("sine", "pink"), mix(np.sin(2 * np.pi * 700 * t), hiss, 10)))
    items.append(Item("mix/crackle+hum/6dB", ("crackle", "hum"), mix(clicks(rng, 20, False), hum(60), 6)))
    items.append(Item("mix/brown+metronome/0dB", ("brown", "metronome"), mix(coloured_noise("brown", rng),
                                                                            clicks(rng, 2, True), 0)))
    return items


def generate(seed: int = SEED) -> list[Item]:
    """The whole non-music set; the same seed gives the same items."""
    rng = np.random.default_rng(seed)
    spoken = speech(rng)
    mixed = mixtures(spoken, rng)
    return spoken + noise(rng) + tones(rng) + silence(rng) + hum_and_clicks(rng) + mixed + loud(rng)


def real_voice(folder: Path = REAL_VOICE) -> np.ndarray:
    """A real human voice, never trained on: the channel names alsa-utils ships (a festival
    dependency), read one after another with 0.1 s between, ITEM_SECONDS long."""
    gap = np.zeros(SAMPLE_RATE // 10, np.float32)
    clips = [librosa.load(path, sr=SAMPLE_RATE, mono=True)[0] for path in sorted(folder.glob("[FRS]*_*.wav"))]
    return _fit(np.concatenate([part for clip in clips for part in (clip, gap)]))


def borderline(voices: list[Item], songs: list[np.ndarray]) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, audio, music label per 3-s segment) for each voice with a song: the voice over the
    song 20 and 10 dB under it (not music), and 6 s of the voice then 6 s of the song (not, not,
    music, music)."""
    out, n, half = [], ITEM_SECONDS * SAMPLE_RATE, ITEM_SECONDS * SAMPLE_RATE // 2
    for voice, song in zip(voices, songs, strict=True):
        song = _fit(song[:n])
        for below in (20, 10):
            out.append((f"{voice.name} over music {below} dB under", mix(voice.audio, song, below), np.zeros(4)))
        out.append((f"{voice.name} then music", np.concatenate([voice.audio[:half], song[:half]]),
                    np.array([0, 0, 1, 1])))
    return out
