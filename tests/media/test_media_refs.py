"""Reference image / voice loaders: formats, alpha, EXIF, mono, resampling, caching, errors."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from media_helpers import peak_freq, tone
from PIL import Image

from iap_bench.errors import MediaError
from iap_bench.media.refs import load_audio, load_image


def test_png_alpha_gray_and_exif(tmp_path):
    rgba = np.zeros((20, 30, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:, :15, 3] = 255  # left half opaque red, right half transparent
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    img = load_image(tmp_path / "a.png")
    assert img.shape == (20, 30, 3) and img.dtype == np.uint8
    assert tuple(img[5, 5]) == (200, 0, 0) and tuple(img[5, 25]) == (255, 255, 255)

    Image.fromarray(np.full((10, 12), 77, np.uint8), "L").save(tmp_path / "g.png")
    assert load_image(tmp_path / "g.png").shape == (10, 12, 3)

    im = Image.fromarray(np.zeros((20, 40, 3), np.uint8))  # 40 wide, 20 tall
    exif = im.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    im.save(tmp_path / "r.jpg", exif=exif)
    assert load_image(tmp_path / "r.jpg").shape == (40, 20, 3)


def test_image_cache_and_errors(tmp_path):
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "x.png")
    a = load_image(tmp_path / "x.png")
    assert load_image(str(tmp_path / "x.png")) is a and not a.flags.writeable
    (tmp_path / "bad.jpg").write_bytes(b"not an image at all")
    (tmp_path / "zero.png").write_bytes(b"")
    for name, reason in [("bad.jpg", "decode_error"), ("zero.png", "empty"), ("nope.png", "decode_error")]:
        with pytest.raises(MediaError) as e:
            load_image(tmp_path / name)
        assert e.value.reason == reason


@pytest.mark.parametrize("ext", ["wav", "flac", "ogg"])
def test_audio_formats_stereo_to_mono_resampled(tmp_path, ext):
    stereo = np.stack([tone(1.0, 44100, 440), tone(1.0, 44100, 440)], axis=1)  # [N, 2]
    path = tmp_path / f"v.{ext}"
    sf.write(path, stereo, 44100)
    a = load_audio(path, 16000)
    assert a.ndim == 1 and a.dtype == np.float32
    assert abs(len(a) - 16000) <= 2
    assert peak_freq(a, 16000) == pytest.approx(440, abs=3)
    assert np.abs(a).max() == pytest.approx(0.5, abs=0.05)
    assert load_audio(path, 16000) is a
    assert len(load_audio(path, 24000)) == pytest.approx(24000, abs=2)


def test_audio_errors(tmp_path):
    (tmp_path / "bad.wav").write_bytes(b"RIFF....garbage")
    (tmp_path / "zero.wav").write_bytes(b"")
    for name, reason in [("bad.wav", "decode_error"), ("zero.wav", "empty"), ("nope.wav", "decode_error")]:
        with pytest.raises(MediaError) as e:
            load_audio(tmp_path / name, 16000)
        assert e.value.reason == reason
