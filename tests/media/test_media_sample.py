"""SampleMedia: decode once, derived views, thread safety and bad-input reasons."""

from __future__ import annotations

import hashlib
import threading

import numpy as np
import pytest
import soundfile as sf
from media_helpers import moving_square, peak_freq, tone

from iap_bench.errors import MediaError
from iap_bench.media.sample import DECODE_COUNTS, SampleMedia, resample_indices
from iap_bench.media.writer import write_mp4


def test_many_views_one_decode(av_clip):
    m = SampleMedia(av_clip)
    views = [m.frames(), m.frames(25), m.frames(12.5), m.frames(size=32), m.frames(30, (48, 32)),
             m.audio(16000), m.audio(24000), m.audio(48000), m.audio(16000)]
    m.faces(4)
    assert DECODE_COUNTS[str(av_clip)] == 1
    assert m.frames(12.5) is views[2]  # cached, not recomputed
    assert [len(v) for v in views[5:8]] == [32000, 48000, 96000]
    for v, sr in zip(views[5:8], (16000, 24000, 48000)):
        assert peak_freq(v, sr) == pytest.approx(440, abs=3)
    assert m.content_hash == hashlib.sha256(av_clip.read_bytes()).hexdigest()


def test_resampled_fps_and_sizes(av_clip):
    m = SampleMedia(av_clip)
    native = m.frames()
    assert m.frames(30).shape == (60, 64, 96, 3)
    half = m.frames(12.5)
    assert half.shape[0] == 25
    np.testing.assert_array_equal(half, native[::2])  # nearest frame of t = k / 12.5 is native frame 2k
    assert m.frames(size=32).shape == (50, 32, 48, 3)  # short side
    assert m.frames(size=(40, 30)).shape == (50, 30, 40, 3)  # (W, H)
    assert m.frames(size=[40, 30]) is m.frames(size=(40, 30)) and m.frames(size=np.int64(32)) is m.frames(size=32)
    with pytest.raises(ValueError):
        native[0, 0, 0, 0] = 1  # cached views are read-only
    assert list(m.frame_indices(5)) == [0, 12, 24, 37, 49]


def test_resample_indices_nearest():
    times = np.arange(30) / 30.0
    idx = resample_indices(times, 1.0, 25.0)
    assert len(idx) == 25
    assert np.all(np.abs(times[idx] - np.arange(25) / 25.0) <= 1 / 60 + 1e-9)


def test_views_from_threads_share_one_decode(av_clip):
    m = SampleMedia(av_clip)
    out: list[object] = [None] * 6

    def work(i: int) -> None:
        out[i] = m.frames(25, 32) if i % 2 else m.audio(16000)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert DECODE_COUNTS[str(av_clip)] == 1
    assert all(o is out[0] for o in out[0::2]) and all(o is out[1] for o in out[1::2])


def _reason(path, view=lambda m: m.frames()) -> str:
    m = SampleMedia(path)
    with pytest.raises(MediaError) as e:
        view(m)
    return e.value.reason


def test_bad_inputs_give_reasons(tmp_path):
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(np.random.default_rng(0).integers(0, 256, 20000, dtype=np.uint8).tobytes())
    assert _reason(corrupt) == "decode_error"
    assert SampleMedia(corrupt).content_hash  # the hash is still known, so the failure can be stored

    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    assert _reason(empty) == "empty"
    assert _reason(tmp_path / "missing.mp4") == "decode_error"

    silent = write_mp4(tmp_path / "silent.mp4", moving_square(10), 25, np.zeros(6400, np.float32), 16000).path
    assert SampleMedia(silent).frames().shape[0] == 10
    assert _reason(silent, lambda m: m.audio(16000)) == "silent"

    mute = write_mp4(tmp_path / "mute.mp4", moving_square(10), 25).path
    assert _reason(mute, lambda m: m.audio(16000)) == "no_audio"
    assert SampleMedia(mute).faces(2).faces == [[], []]  # no face -> empty detections, metric decides

    wav = tmp_path / "voice.wav"
    sf.write(wav, tone(1.0, 16000), 16000)
    assert _reason(wav) == "no_video"
    assert peak_freq(SampleMedia(wav).audio(16000), 16000) == pytest.approx(440, abs=3)


def test_zero_stream_container_is_empty(tmp_path):
    import av

    path = tmp_path / "nothing.mp4"
    with av.open(str(path), "w", format="mp4") as c:
        vs = c.add_stream("mpeg4", rate=25)
        vs.width, vs.height, vs.pix_fmt = 64, 64, "yuv420p"
        c.start_encoding()
    assert _reason(path) == "empty"


def test_load_never_raises_and_release(tmp_path, av_clip):
    bad = SampleMedia(tmp_path / "missing.mp4").load()
    assert bad.error is not None and bad.error.reason == "decode_error"
    m = SampleMedia(av_clip).load()
    assert m.error is None and DECODE_COUNTS[str(av_clip)] == 1
    m.release()
    assert m.frames().shape[0] == 50 and DECODE_COUNTS[str(av_clip)] == 2


def test_damaged_and_truncated_files_fail_cleanly(tmp_path, av_clip):
    data = bytearray(av_clip.read_bytes())
    (tmp_path / "cut.mp4").write_bytes(bytes(data[: len(data) // 2]))
    assert _reason(tmp_path / "cut.mp4") == "decode_error"
    rng = np.random.default_rng(1)
    for pos in rng.integers(len(data) // 4, len(data), 200):
        data[pos] ^= 0xFF
    (tmp_path / "flipped.mp4").write_bytes(bytes(data))
    m = SampleMedia(tmp_path / "flipped.mp4")
    try:
        frames = m.frames()
    except MediaError as e:  # either a clean reason or best-effort frames, never another exception
        assert e.reason in ("decode_error", "empty")
    else:
        assert frames.ndim == 4 and frames.shape[0] > 0


def test_zero_byte_file_is_empty_not_decode_error(tmp_path):
    """A 0-byte file is reported as `empty` by the decoder and by the precomputed adapter's header probe."""
    from iap_bench.generators.precomputed import probe_rates
    from iap_bench.media.sample import decode_container

    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    before = DECODE_COUNTS[str(empty)]
    with pytest.raises(MediaError) as e:
        decode_container(empty)
    assert e.value.reason == "empty" and str(empty) in e.value.detail
    assert DECODE_COUNTS[str(empty)] == before  # no decode pass was attempted
    with pytest.raises(MediaError) as e:
        probe_rates(empty)
    assert e.value.reason == "empty" and str(empty) in e.value.detail
    # a missing or corrupt file is still a decode_error
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not an mp4 at all" * 10)
    for path in (tmp_path / "missing.mp4", junk):
        for fn in (decode_container, probe_rates):
            with pytest.raises(MediaError) as e:
                fn(path)
            assert e.value.reason == "decode_error", (fn, path)
