"""write_mp4 / mux_mp4 round trips through our own decoder."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import soundfile as sf
from media_helpers import moving_square, peak_freq, tone

from iap_bench.errors import MediaError
from iap_bench.media.sample import SampleMedia
from iap_bench.media.writer import as_fraction, mux_mp4, write_mp4


def test_round_trip_frames_fps_size_audio(av_clip):
    m = SampleMedia(av_clip)
    assert (m.n_frames, m.fps, m.width, m.height) == (50, 25.0, 96, 64)
    assert m.duration_s == pytest.approx(2.0)
    assert m.has_audio
    a = m.audio(16000)
    assert abs(len(a) / 16000 - 2.0) <= 0.05
    assert peak_freq(a, 16000) == pytest.approx(440, abs=3)
    # the moving square survives H.264 (it is at x = i on frame i)
    f = m.frames()
    col = f[10, 16:32].astype(int).mean(axis=(0, 2))  # [W]
    assert 8 <= int(np.argmax(col > 200)) <= 12


def test_stereo_48k_odd_dims_and_rational_fps(tmp_path):
    video = moving_square(n=30, h=63, w=65)
    left, right = tone(1.0, 48000, 440), tone(1.0, 48000, 1000)
    info = write_mp4(tmp_path / "s.mp4", video, 30000 / 1001, np.stack([left, right]), 48000)
    assert info.fps == Fraction(30000, 1001)
    assert (info.width, info.height, info.channels) == (66, 64, 2)
    assert info.video_codec in ("libx264", "h264", "libopenh264", "mpeg4")
    m = SampleMedia(info.path)
    assert (m.width, m.height, m.n_frames) == (66, 64, 30)
    assert m.fps == pytest.approx(30000 / 1001)
    a = m.audio(48000)
    assert abs(len(a) / 48000 - 30 / (30000 / 1001)) <= 0.05
    spec = np.abs(np.fft.rfft(a))
    freqs = np.fft.rfftfreq(len(a), 1 / 48000)
    top2 = sorted(freqs[np.argsort(spec)[-2:]])
    assert top2[0] == pytest.approx(440, abs=3) and top2[1] == pytest.approx(1000, abs=3)


def test_as_fraction():
    assert as_fraction(25) == Fraction(25)
    assert as_fraction(23.976) == Fraction(24000, 1001)
    with pytest.raises(ValueError):
        as_fraction(0)


def test_writer_rejects_bad_arrays(tmp_path):
    with pytest.raises(MediaError) as e:
        write_mp4(tmp_path / "x.mp4", moving_square(4), 25, np.zeros((5, 100), np.float32), 16000)
    assert e.value.reason == "bad_input"
    with pytest.raises(MediaError):
        write_mp4(tmp_path / "y.mp4", np.zeros((4, 8, 8), np.uint8), 25)


def test_mux_video_with_separate_wav(tmp_path):
    video_only = write_mp4(tmp_path / "v.mp4", moving_square(n=50), 25).path
    assert not SampleMedia(video_only).has_audio
    wav = tmp_path / "a.wav"
    sf.write(wav, np.stack([tone(2.0, 22050, 660)] * 2, axis=1), 22050)
    info = mux_mp4(video_only, wav, tmp_path / "out.mp4")
    assert info.video_codec.startswith("copy:")  # remuxed, not re-encoded
    m = SampleMedia(info.path)
    assert m.n_frames == 50 and m.fps == 25.0 and m.has_audio
    np.testing.assert_array_equal(m.frames(), SampleMedia(video_only).frames())
    a = m.audio(16000)
    assert abs(len(a) / 16000 - 2.0) <= 0.05
    assert peak_freq(a, 16000) == pytest.approx(660, abs=3)


def test_unsupported_aac_rate_is_resampled(tmp_path):
    info = write_mp4(tmp_path / "r.mp4", moving_square(n=25), 25, tone(1.0, 44000, 500), 44000)
    assert info.sample_rate == 48000
    a = SampleMedia(info.path).audio(16000)
    assert peak_freq(a, 16000) == pytest.approx(500, abs=3)
