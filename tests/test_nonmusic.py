"""The music detector's non-music set (export/nonmusic.py): real speech engines, noise of the
right colour, levels as stated, deterministic by seed."""
import numpy as np
import pytest

from export import nonmusic

N = nonmusic.ITEM_SECONDS * nonmusic.SAMPLE_RATE


def _signals(seed):
    rng = np.random.default_rng(seed)
    return nonmusic.noise(rng) + nonmusic.tones(rng) + nonmusic.silence(rng) + nonmusic.hum_and_clicks(rng)


def _peak_db(audio):
    return 20 * np.log10(np.abs(audio).max())


def test_signals_are_deterministic_by_seed_and_well_formed():
    first, again, other = _signals(1), _signals(1), _signals(2)
    assert [i.name for i in first] == [i.name for i in again]
    assert all(np.array_equal(a.audio, b.audio) for a, b in zip(first, again, strict=True))
    assert not np.array_equal(first[0].audio, other[0].audio)  # white noise: another draw
    for item in first:
        assert item.audio.shape == (N,) and item.audio.dtype == np.float32 and np.isfinite(item.audio).all()
        assert item.groups <= set(nonmusic.GROUPS)
    levels = {i.name: _peak_db(i.audio) for i in first if i.name.startswith("noise/")}
    assert levels["noise/white/-30dBFS"] == pytest.approx(-30, abs=0.01)
    assert levels["noise/brown/-1dBFS"] == pytest.approx(-1, abs=0.01)


def test_silence_is_silent_and_near_silence_is_quiet():
    items = {i.name: i.audio for i in nonmusic.silence(np.random.default_rng(0))}
    assert not items.pop("silence/digital").any()
    assert all(-91 < _peak_db(a) <= -59.99 and a.std() > 0 for a in items.values())


@pytest.mark.parametrize(("colour", "db_per_octave"), [("white", 0), ("pink", -3), ("brown", -6)])
def test_noise_has_its_colour(colour, db_per_octave):
    noise = nonmusic.coloured_noise(colour, np.random.default_rng(0))
    power = np.abs(np.fft.rfft(noise)) ** 2
    f = np.fft.rfftfreq(len(noise), 1 / nonmusic.SAMPLE_RATE)
    bands = [power[(f >= lo) & (f < 2 * lo)].mean() for lo in (250, 500, 1000, 2000)]
    slopes = 10 * np.diff(np.log10(bands))
    assert slopes == pytest.approx([db_per_octave] * 3, abs=0.5)


def test_mix_puts_the_second_signal_under_the_first_by_the_level_asked():
    rng = np.random.default_rng(0)
    a, b = nonmusic.coloured_noise("white", rng), np.sin(np.arange(N) * 0.1)
    mixed = nonmusic.mix(a, b, 10)
    # the mix is rescaled as a whole: project it back on its two (uncorrelated) parts
    gain_a, gain_b = mixed @ a / (a @ a), mixed @ b / (b @ b)
    under = 20 * np.log10(np.sqrt(np.mean((gain_a * a) ** 2)) / np.sqrt(np.mean((gain_b * b) ** 2)))
    assert under == pytest.approx(10, abs=0.2)
    assert _peak_db(mixed) == pytest.approx(-3, abs=0.01)


@pytest.fixture(scope="module")
def spoken():
    return nonmusic.speech(np.random.default_rng(0))


def test_every_engine_speaks_every_voice(spoken):
    engines = [i.sources[0] for i in spoken]
    assert engines.count("espeak-ng") == len(nonmusic.ESPEAK)
    assert engines.count("flite") == len(nonmusic.FLITE)
    assert engines.count("festival") == len(nonmusic.FESTIVAL)
    for item in spoken:
        frames = item.audio.reshape(-1, nonmusic.SAMPLE_RATE // 10)  # 100-ms frames
        voiced = np.sqrt(np.mean(frames ** 2, axis=1)) > 0.01 * np.abs(item.audio).max()
        assert voiced.mean() > 0.5, item.name  # speech, not a click or silence
        assert round(_peak_db(item.audio)) in nonmusic.SPEECH_PEAKS_DBFS
    assert len({i.audio.tobytes() for i in spoken}) == len(spoken)  # voices and speeds all differ


def test_mixtures_name_what_they_hold_and_borderline_labels_per_segment(spoken):
    rng = np.random.default_rng(0)
    mixes = nonmusic.mixtures(spoken, rng)
    assert {g for i in mixes for g in i.groups} == set(nonmusic.GROUPS) - {"silence", "loud"}
    song = np.sin(np.arange(N) * 0.05).astype(np.float32)
    made = nonmusic.borderline(spoken[:1], [song])
    assert [labels.tolist() for _, _, labels in made] == [[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 1, 1]]
    _, intro_then_song, _ = made[2]
    assert np.array_equal(intro_then_song[: N // 2], spoken[0].audio[: N // 2])
    assert intro_then_song.shape == (N,)
