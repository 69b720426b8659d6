"""IAP-100 manifest: composition (70/30, languages, reference modes), slot consistency, unbound report."""

from __future__ import annotations

import re
from collections import Counter, defaultdict

import pytest
from benchmark_helpers import IAP100, copy_slot

from iap_bench.benchmark.loader import load_benchmark, load_manifest
from iap_bench.benchmark.pack import bind, unbound_report
from iap_bench.benchmark.validate import validate

CJK = re.compile(r"[\u4e00-\u9fff]")


@pytest.fixture(scope="module")
def bench():
    return load_manifest(IAP100)


def test_split_counts_and_people(bench):
    assert len(bench) == 100
    assert len(bench.split("single")) == 70 and len(bench.split("multi")) == 30
    assert all(len(i.subjects) == 1 for i in bench.split("single"))
    assert all(2 <= len(i.subjects) <= 3 for i in bench.split("multi"))
    assert {len(i.subjects) for i in bench.split("multi")} == {2, 3}
    for i in bench.split("multi"):
        assert len({s.slot for s in i.subjects}) == len(i.subjects), i.id
        assert {t.anchor for t in i.script} == {s.anchor for s in i.subjects}, i.id  # everyone speaks


def test_ids_languages_and_reference_modes(bench):
    ids = [i.id for i in bench.items]
    assert len(set(ids)) == len(ids)
    langs = Counter(i.language for i in bench.items)
    assert set(langs) == {"en", "zh"} and 0.15 <= langs["zh"] / 100 <= 0.35
    for split in ("single", "multi"):
        assert {i.reference_mode for i in bench.split(split)} == {"one-shot", "multi-view"}
    for i in bench.items:
        for t in i.script:
            assert bool(CJK.search(t.text)) == (i.language == "zh"), (i.id, t.text)


def test_prompts_are_varied_and_complete(bench):
    scenes = {i.prompt.scene for i in bench.items}
    lines = {t.text for i in bench.items for t in i.script}
    assert len(scenes) == 100 and len(lines) == sum(len(i.script) for i in bench.items)
    shots = Counter(tag for i in bench.items for tag in i.tags)
    for shot in ("close-up", "medium", "wide", "over-the-shoulder", "tracking"):
        assert shots[shot] >= 3, shot
    assert all(i.prompt.ambience and i.prompt.sound_effects for i in bench.items)


def test_slot_keeps_its_identity_across_items(bench):
    """A slot's base appearance and language are the same wherever it is used (one person per slot)."""
    base, lang = defaultdict(set), defaultdict(set)
    for i in bench.items:
        for s in i.subjects:
            base[s.slot].add(s.prompt.appearance.split(", in ")[0].split(", wearing")[0].split(", holding")[0])
            lang[s.slot].add(s.language)
    assert all(len(v) == 1 for v in base.values()), {k: v for k, v in base.items() if len(v) > 1}
    assert all(len(v) == 1 for v in lang.values())


def test_validates_without_errors(bench):
    problems = validate(IAP100, check_media=False)
    assert [p for p in problems if p.severity == "error"] == []
    assert all(p.field == "pack" for p in problems)  # only the "unbound, no pack given" warning


def test_unbound_report_lists_every_slot(bench):
    report = unbound_report(bench, config_name="iap100")
    assert bench.unbound_slots and len(bench.unbound_slots) == len({s.slot for i in bench.items for s in i.subjects})
    for slot in bench.unbound_slots:
        assert f"  {slot}: used by" in report
    assert "iap-bench validate benchmark=iap100 benchmark.pack=/path/to/pack" in report
    assert "faces/face_1.jpg" in report and "voice.wav" in report and "voice.txt" in report
    first = bench.items[0]
    assert first.id in report


def test_partial_pack_binds_some_slots_without_hash(bench, tmp_path):
    pack = tmp_path / "pack"
    copy_slot(pack, "id_001", "id_002")  # 3 faces: enough for any views
    bound = bind(bench, pack)
    assert "id_001" not in bound.unbound_slots and len(bound.unbound_slots) == len(bench.unbound_slots) - 1
    assert bound.pack_hash is None
    for i in bound.items:
        for s in i.subjects:
            if s.slot == "id_001":
                assert s.is_bound and len(s.faces) == s.views and s.voice_transcript
    report = unbound_report(bound)
    assert "  id_001:" not in report and "  id_002:" in report and str(pack.resolve()) in report
    assert load_benchmark(IAP100, pack).unbound_slots == bound.unbound_slots
