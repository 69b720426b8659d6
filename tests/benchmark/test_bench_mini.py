"""iap-mini: fully bound real media, stable pack hash, views checks and media sanity."""

from __future__ import annotations

import shutil
from pathlib import Path

import dlib
import numpy as np
import pytest
import soundfile as sf
import yaml
from benchmark_helpers import MINI, MINI_PACK, ROOT, copy_slot, item, write_manifest
from PIL import Image

from iap_bench.benchmark.loader import load_benchmark, load_manifest
from iap_bench.benchmark.pack import bind, pack_hash
from iap_bench.benchmark.validate import validate
from iap_bench.errors import ManifestError

# sha256 of the committed pack's identity files; update after `python scripts/build_iap_mini.py`
MINI_PACK_HASH = "b0ac4ad151f2811a2847bbc3fd1b7fd252c945cc86f2258639786107bd00b4c9"


@pytest.fixture(scope="module")
def mini():
    return load_benchmark(MINI, MINI_PACK)


def test_fully_bound_with_stable_hash(mini):
    assert mini.unbound_slots == [] and mini.pack_hash == MINI_PACK_HASH
    assert load_benchmark(MINI, MINI_PACK).pack_hash == mini.pack_hash
    assert 6 <= len(mini) <= 10 and 2 <= len(mini.split("multi")) <= 3
    assert {i.reference_mode for i in mini.items} == {"one-shot", "multi-view"}
    assert all(i.language == "en" for i in mini.items)
    for i in mini.items:
        for s in i.subjects:
            assert s.is_bound and len(s.faces) == s.views and s.voice_transcript
            assert all(p.is_absolute() and p.is_file() for p in (*s.faces, s.voice))
        assert i.ground_truth_audio is not None and i.ground_truth_audio.is_file()


def test_hash_is_location_independent_and_byte_sensitive(mini, tmp_path):
    copy = tmp_path / "pack"
    shutil.copytree(MINI_PACK, copy)
    slots = sorted({s.slot for i in mini.items for s in i.subjects})
    assert pack_hash(copy, slots) == mini.pack_hash
    voice = copy / "id_003" / "voice.wav"
    data = bytearray(voice.read_bytes())
    data[-1] ^= 1
    voice.write_bytes(bytes(data))
    changed = pack_hash(copy, slots)
    assert changed != mini.pack_hash
    assert load_benchmark(MINI, copy).pack_hash == changed
    (copy / "id_001" / "voice.txt").write_text("something else\n")
    assert pack_hash(copy, slots) not in (changed, mini.pack_hash)


def test_validates_clean_with_media(mini):
    assert validate(MINI, MINI_PACK) == []
    assert validate(mini) == []


def test_views_mismatch_is_a_bind_error(tmp_path):
    pack = tmp_path / "pack"
    copy_slot(pack, "solo", "id_004", n_faces=1)
    copy_slot(pack, "full", "id_002")
    path = write_manifest(tmp_path / "m.yaml", [item("wants3", ["solo"], views=3), item("wants1", ["solo"]),
                                                item("pair", ["full", "solo"], views=3)])
    bench = load_manifest(path)
    with pytest.raises(ManifestError) as e:
        bind(bench, pack)
    msgs = e.value.problems
    assert any("wants3.subjects[0].views" in m and "1 face image" in m for m in msgs)
    assert any("pair.subjects[1].views" in m for m in msgs)
    assert not any("wants1" in m or "pair.subjects[0]" in m for m in msgs)
    problems = validate(path, pack)
    assert {(p.item_id, p.field) for p in problems} == {("wants3", "subjects[0].views"), ("pair", "subjects[1].views")}


def test_pack_media_are_real_faces_and_voices(mini):
    detector = dlib.get_frontal_face_detector()
    slots = {s.slot: s for i in mini.items for s in i.subjects if s.views == 3}
    assert len(slots) >= 3
    for slot_dir in sorted(p for p in MINI_PACK.iterdir() if p.is_dir()):
        faces = sorted((slot_dir / "faces").glob("face_*.jpg"))
        assert len(faces) == 3
        for f in faces:
            img = np.asarray(Image.open(f).convert("RGB"))
            assert img.shape == (256, 256, 3)
            assert len(detector(img, 0)) == 1, f
        info = sf.info(str(slot_dir / "voice.wav"))
        assert info.samplerate == 16000 and info.channels == 1 and 3.0 <= info.duration <= 6.0
        meta = yaml.safe_load((slot_dir / "meta.yaml").read_text())
        assert meta["language"] == "en" and "augmentation" in meta["notes"]
        assert (slot_dir / "voice.txt").read_text().strip()


def test_pack_is_small_and_config_points_at_it():
    total = sum(p.stat().st_size for p in (ROOT / "benchmark_data" / "iap-mini").rglob("*") if p.is_file())
    assert total < 5_000_000
    def shipped(value: str) -> Path:  # ${iap_data:x} names a file in the package's benchmark_data/
        assert value.startswith("${iap_data:") and value.endswith("}"), value
        return ROOT / "benchmark_data" / value[len("${iap_data:"):-1]

    for name, pack in (("iap-mini", "${iap_data:iap-mini/pack}"), ("iap100", None)):
        conf = yaml.safe_load((ROOT / "conf" / "benchmark" / f"{name}.yaml").read_text())
        assert conf["name"] == name and conf["pack"] == pack and "limit" not in conf  # `limit=` is the only limit
        assert conf["splits"] == ["single", "multi"] and shipped(conf["manifest"]).is_file()
