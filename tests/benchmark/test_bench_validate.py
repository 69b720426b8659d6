"""Validator: a deliberately broken manifest + pack reports every problem kind in one pass."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from benchmark_helpers import IAP100, MINI, MINI_PACK, copy_slot, item, write_manifest

from iap_bench.benchmark.loader import load_manifest
from iap_bench.benchmark.problems import Problem
from iap_bench.benchmark.validate import format_problems, main, validate, validate_report
from iap_bench.errors import ManifestError


@pytest.fixture()
def broken(tmp_path):
    """A manifest with one problem of each kind, and a pack with broken media."""
    pack = tmp_path / "pack"
    copy_slot(pack, "ok_a", "id_001")
    copy_slot(pack, "ok_b", "id_002")
    (copy_slot(pack, "bad_img", "id_003") / "faces" / "face_1.jpg").write_bytes(b"not a jpeg at all" * 10)
    empty = copy_slot(pack, "empty_voice", "id_004")
    sf.write(str(empty / "voice.wav"), np.zeros(0, np.float32), 16000)
    (copy_slot(pack, "no_voice", "id_005") / "voice.wav").unlink()

    dup_anchor = item("dup_anchor", ["ok_a", "ok_b"])
    dup_anchor["subjects"][1]["anchor"] = "<S1>"
    undefined = item("undefined_anchor", ["ok_a", "ok_b"])
    undefined["subjects"][0]["action"] = "hands a cup to <S3>"
    undefined["script"].append({"anchor": "<S4>", "text": "I am not here."})
    silent_speaker = item("silent_speaker", ["ok_a", "ok_b"])
    silent_speaker["script"] = silent_speaker["script"][:1]
    bad_lang = item("bad_language", ["ok_a"])
    bad_lang["subjects"][0]["language"] = "fr"
    empty_line = item("empty_line", ["ok_b"])
    empty_line["script"][0]["text"] = "   "
    missing_key = item("missing_key", ["ok_a"])
    del missing_key["scene"]
    too_many = item("too_many_people", ["ok_a", "ok_b"], split="single")
    gt_missing = item("gt_missing", ["ok_b"])
    gt_missing["ground_truth"] = {"audio": "ground_truth/nope.wav"}
    items = [
        item("dup_id", ["ok_a"]), item("dup_id", ["ok_b"]),
        item("unreadable", ["bad_img"]), item("empty_audio", ["empty_voice"]), item("no_voice_file", ["no_voice"]),
        item("unbound", ["never_made"]),
        dup_anchor, undefined, silent_speaker, bad_lang, empty_line, missing_key, too_many, gt_missing,
    ]
    path = write_manifest(tmp_path / "bench" / "manifest.yaml", items, expected_splits={"single": 3, "multi": 2})
    return path, pack


def _find(problems: list[Problem], item_id: str, field_part: str, text: str) -> Problem:
    hits = [p for p in problems if p.item_id == item_id and field_part in p.field and text in p.message]
    assert hits, f"no problem for {item_id}/{field_part}/{text!r} in:\n{format_problems(problems)}"
    return hits[0]


def test_every_problem_kind_reported_in_one_pass(broken):
    path, pack = broken
    problems = validate(path, pack)
    _find(problems, "dup_id", "id", "used by 2 items")
    _find(problems, "unreadable", "subjects[0].faces[0]", "unreadable image")
    _find(problems, "empty_audio", "subjects[0].voice", "empty audio")
    _find(problems, "no_voice_file", "slot:no_voice", "no voice clip")
    _find(problems, "unbound", "slot:never_made", "no folder")
    _find(problems, "dup_anchor", "subjects", "anchor <S1> defined 2 times")
    _find(problems, "undefined_anchor", "subjects[0].action", "<S3> is used in the text but not defined")
    _find(problems, "undefined_anchor", "script[2].anchor", "<S4> is not defined")
    assert _find(problems, "silent_speaker", "subjects[1].anchor", "never speaks").severity == "warning"
    _find(problems, "bad_language", "subjects[0].language", "'fr'")
    _find(problems, "empty_line", "script[0].text", "is empty")
    _find(problems, "missing_key", "scene", "missing required key")
    _find(problems, "too_many_people", "subjects", "exactly 1 subject, has 2")
    _find(problems, "gt_missing", "ground_truth.audio", "missing file")
    _find(problems, "<manifest>", "split", "exactly 2 multi items, has 3")
    _find(problems, "<manifest>", "split", "exactly 3 single items, has 11")
    assert all(p.item_id and p.field for p in problems)
    assert len([p for p in problems if p.item_id == "no_voice_file"]) == 1  # reported once, not twice


def test_load_manifest_raises_with_all_errors(broken):
    path, _ = broken
    with pytest.raises(ManifestError) as e:
        load_manifest(path)
    text = "\n".join(e.value.problems)
    for needle in ("dup_id.id", "dup_anchor.subjects", "bad_language.subjects[0].language",
                   "empty_line.script[0].text", "missing_key.scene", "<manifest>.split"):
        assert needle in text
    assert len(e.value.problems) >= 8


@pytest.mark.parametrize("text, field", [
    ("name: x\nitems:\n  - id: a\n    split: [single\n", "yaml"),
    ("- just\n- a list\n", "yaml"),
    ("", "yaml"),
    ("name: x\n", "items"),
])
def test_malformed_yaml_is_a_problem_not_a_traceback(tmp_path, text, field):
    path = tmp_path / "manifest.yaml"
    path.write_text(text, encoding="utf-8")
    problems = validate(path)
    assert any(p.field == field and p.severity == "error" for p in problems), problems
    with pytest.raises(ManifestError):
        load_manifest(path)


def test_missing_manifest_file_is_a_problem(tmp_path):
    problems = validate(tmp_path / "absent.yaml")
    assert problems and problems[0].field == "file"


def test_wrong_types_do_not_crash(tmp_path):
    bad = item("typed", ["ok_a"])
    bad["duration_s"] = "long"
    bad["subjects"][0]["views"] = 0
    bad["subjects"].append("not a mapping")
    bad["script"].append(["not", "a", "mapping"])
    bad["sound_effects"] = "bang"
    path = write_manifest(tmp_path / "m.yaml", [bad, "not an item"])
    problems = validate(path, check_media=False)
    fields = {p.field for p in problems if p.item_id == "typed"}
    assert {"duration_s", "subjects[0].views", "subjects[1]", "script[1]", "sound_effects"} <= fields
    assert any(p.item_id == "items[1]" for p in problems)


def test_language_mismatch_between_text_and_item(tmp_path):
    zh = item("zh_item", ["ok_a"])
    zh["subjects"][0]["language"] = "zh"
    zh["script"][0]["text"] = "Hello in English."
    en = item("en_item", ["ok_a"])
    en["script"][0]["text"] = "你好，很高兴见到你。"
    problems = validate(write_manifest(tmp_path / "m.yaml", [zh, en]), check_media=False)
    _find(problems, "zh_item", "script[0].text", "no Chinese characters")
    _find(problems, "en_item", "script[0].text", "contains Chinese characters")


def test_cli_exit_codes(broken, capsys):
    path, pack = broken
    assert main([str(path), "--pack", str(pack)]) == 1
    assert "error(s)" in capsys.readouterr().out
    assert main([str(MINI), "--pack", str(MINI_PACK)]) == 0


def _problem_lines(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln.startswith(("error: ", "warning: "))]


def test_report_prints_each_problem_once_with_one_summary(broken, capsys):
    path, pack = broken
    report = validate_report(path, pack)
    assert len(set(report.problems)) == len(report.problems)
    text = report.text()
    lines = _problem_lines(text)
    assert lines and len(lines) == len(set(lines)) == len(report.shown())
    assert "no media pack given" not in text  # a pack was given: its missing slots are errors, not "unbound"
    assert "slot:never_made" in text and sum("never_made" in ln for ln in text.splitlines()) == 1
    summary = text.splitlines()[-1]
    assert summary.startswith("test-bench: ") and f"{len(report.errors)} error(s)" in summary
    assert f"pack {pack}" in summary and report.exit_code == 1
    assert main([str(path), "--pack", str(pack)]) == 1
    assert capsys.readouterr().out.strip() == text


def test_shared_bad_file_reported_once_naming_its_users(tmp_path):
    pack = tmp_path / "pack"
    copy_slot(pack, "ok", "id_001")
    (copy_slot(pack, "bad_img", "id_003") / "faces" / "face_1.jpg").write_bytes(b"not a jpeg at all" * 10)
    items = [item("one", ["bad_img"]), item("two", ["bad_img"]), item("three", ["ok", "bad_img"])]
    report = validate_report(write_manifest(tmp_path / "m.yaml", items), pack)
    bad = [p for p in report.problems if "unreadable image" in p.message]
    assert len(bad) == 1 and bad[0].item_id == "one" and "also used by two, three" in bad[0].message
    assert report.text().count("unreadable image") == 1


def test_report_without_pack_lists_unbound_slots_once():
    report = validate_report(IAP100, None, check_media=False)
    text = report.text()
    assert "no media pack given" in text and text.count("no media pack given") == 1
    assert "benchmark.pack=" in text and text.count("  id_001: used by") == 1
    assert report.exit_code == 1 and text.splitlines()[-1].startswith("iap100: 100 items (70 single / 30 multi)")
    assert "60 unbound slot(s)" in text.splitlines()[-1]


def test_report_of_broken_manifest_lists_each_error_once(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text("name: x\nitems:\n  - id: a\n    split: weird\n", encoding="utf-8")
    report = validate_report(path, MINI_PACK)
    lines = _problem_lines(report.text())
    assert len(lines) == len(set(lines)) == len(report.problems) >= 5
    assert "pack hash -" in report.text().splitlines()[-1] and report.exit_code == 1


def test_report_prints_through_rich_without_markup(broken):
    from rich.console import Console

    path, pack = broken
    report = validate_report(path, pack)
    console = Console(record=True, width=80, color_system=None)
    report.print_rich(console)
    out = console.export_text()
    assert _problem_lines(out) == _problem_lines(report.text())  # one physical line each, even past 80 columns
    assert out.strip().splitlines()[-1] == report.summary()
