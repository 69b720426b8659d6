"""Benchmark manifests (YAML) -> typed ``Benchmark``: a tolerant parser that lists every problem it meets.

The parser never raises on bad content: it returns the benchmark it could build plus a list of
``Problem``s (item id + field + message). ``load_manifest`` turns error-level problems into one
``ManifestError``; ``iap_bench.benchmark.validate`` reports them all, with media checks on top.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from iap_bench.benchmark.problems import Problem, Severity, errors_of  # noqa: F401  (re-exported)
from iap_bench.benchmark.schema import Benchmark, Item, StructuredPrompt, Subject, SubjectPrompt, Turn

ANCHOR_RE = re.compile(r"^<S[1-9][0-9]*>$")
ANCHOR_IN_TEXT_RE = re.compile(r"<S[0-9]+>")
LANGUAGES = ("en", "zh")
SPLITS = ("single", "multi")
ITEM_KEYS = {"id", "split", "duration_s", "tags", "scene", "camera", "ambience", "sound_effects", "subjects",
             "script", "ground_truth"}
SUBJECT_KEYS = {"anchor", "slot", "language", "views", "appearance", "action", "expression"}
TOP_KEYS = {"name", "version", "description", "expected_splits", "items"}


def read_manifest_yaml(path: Path) -> tuple[dict[str, Any] | None, list[Problem]]:
    """Read a manifest file into a dict; unreadable or malformed YAML becomes a problem, not a traceback."""
    where = "<manifest>"
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        return None, [Problem(where, "file", f"cannot read manifest {path}: {e}")]
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        return None, [Problem(where, "yaml", f"malformed YAML in {path}: {' '.join(str(e).split())}")]
    if not isinstance(raw, dict):
        return None, [Problem(where, "yaml", f"top level of {path} must be a mapping, got {type(raw).__name__}")]
    return raw, []


class _ItemParser:
    """Builds one ``Item`` from its raw dict, collecting problems instead of raising."""

    def __init__(self, raw: dict[str, Any], item_id: str, root: Path):
        self.raw = raw
        self.id = item_id
        self.root = root
        self.problems: list[Problem] = []

    def problem(self, field: str, message: str, severity: Severity = "error") -> None:
        self.problems.append(Problem(self.id, field, message, severity))

    def text(self, raw: dict[str, Any], key: str, field: str, required: bool = True) -> str:
        """A non-empty string field (problem if missing, empty or not a string)."""
        value = raw.get(key)
        if value is None:
            if required:
                self.problem(field, "missing required key")
            return ""
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            self.problem(field, f"must be a string, got {type(value).__name__}")
            return ""
        value = str(value).strip()
        if required and not value:
            self.problem(field, "is empty")
        return value

    def string_list(self, key: str) -> tuple[str, ...]:
        value = self.raw.get(key, [])
        if value is None:
            return ()
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            self.problem(key, "must be a list of non-empty strings")
            return ()
        return tuple(v.strip() for v in value)

    def duration(self) -> float:
        value = self.raw.get("duration_s", 5.0)
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 120:
            self.problem("duration_s", f"must be a number of seconds in (0, 120], got {value!r}")
            return 5.0
        return float(value)

    def split(self) -> str:
        value = self.raw.get("split")
        if value not in SPLITS:
            self.problem("split", f"must be one of {list(SPLITS)}, got {value!r}")
            return "single"
        return value

    def subject(self, raw: Any, k: int) -> Subject | None:
        field = f"subjects[{k}]"
        if not isinstance(raw, dict):
            self.problem(field, "must be a mapping with anchor, slot, language, views, appearance, action, expression")
            return None
        for key in sorted(set(raw) - SUBJECT_KEYS):
            self.problem(f"{field}.{key}", "unknown key (typo?)", "warning")
        anchor = self.text(raw, "anchor", f"{field}.anchor")
        if anchor and not ANCHOR_RE.match(anchor):
            self.problem(f"{field}.anchor", f"must look like <S1>, <S2>, ...; got {anchor!r}")
            anchor = ""
        slot = self.text(raw, "slot", f"{field}.slot")
        if slot and not re.match(r"^[A-Za-z0-9_.-]+$", slot):
            self.problem(f"{field}.slot", f"slot names are folder names ([A-Za-z0-9_.-]); got {slot!r}")
        language = raw.get("language", "en")
        if language not in LANGUAGES:
            self.problem(f"{field}.language", f"must be one of {list(LANGUAGES)}, got {language!r}")
            language = "en"
        views = raw.get("views", 1)
        if isinstance(views, bool) or not isinstance(views, int) or views < 1:
            self.problem(f"{field}.views", f"must be a positive integer (1 = one-shot), got {views!r}")
            views = 1
        prompt = SubjectPrompt(
            appearance=self.text(raw, "appearance", f"{field}.appearance"),
            action=self.text(raw, "action", f"{field}.action"),
            expression=self.text(raw, "expression", f"{field}.expression"),
        )
        if not anchor or not slot:
            return None
        return Subject(anchor=anchor, slot=slot, prompt=prompt, language=language, views=views)

    def subjects(self) -> tuple[Subject, ...]:
        raw = self.raw.get("subjects")
        if not isinstance(raw, list) or not raw:
            self.problem("subjects", "missing or empty list of subjects")
            return ()
        subjects = [s for k, r in enumerate(raw) if (s := self.subject(r, k)) is not None]
        return tuple(subjects)

    def script(self) -> tuple[Turn, ...]:
        raw = self.raw.get("script")
        if not isinstance(raw, list) or not raw:
            self.problem("script", "missing or empty list of spoken lines")
            return ()
        turns = []
        for k, r in enumerate(raw):
            field = f"script[{k}]"
            if not isinstance(r, dict):
                self.problem(field, "must be a mapping with anchor and text")
                continue
            anchor = self.text(r, "anchor", f"{field}.anchor")
            text = self.text(r, "text", f"{field}.text")
            if anchor and text:
                turns.append(Turn(anchor=anchor, text=text))
        return tuple(turns)

    def ground_truth(self) -> tuple[Path | None, Path | None]:
        raw = self.raw.get("ground_truth")
        if raw is None:
            return None, None
        if not isinstance(raw, dict) or set(raw) - {"video", "audio"}:
            self.problem("ground_truth", "must be a mapping with optional keys video, audio")
            return None, None
        paths = []
        for key in ("video", "audio"):
            value = raw.get(key)
            if value is None:
                paths.append(None)
            elif not isinstance(value, str) or not value.strip():
                self.problem(f"ground_truth.{key}", f"must be a path string, got {value!r}")
                paths.append(None)
            else:
                p = Path(value)
                paths.append(p if p.is_absolute() else self.root / p)
        return paths[0], paths[1]

    def parse(self) -> Item | None:
        for key in sorted(set(self.raw) - ITEM_KEYS):
            self.problem(key, "unknown key (typo?)", "warning")
        split = self.split()
        prompt = StructuredPrompt(
            scene=self.text(self.raw, "scene", "scene"),
            camera=self.text(self.raw, "camera", "camera"),
            ambience=self.text(self.raw, "ambience", "ambience"),
            sound_effects=self.string_list("sound_effects"),
        )
        item = Item(
            id=self.id,
            split=split,
            subjects=self.subjects(),
            prompt=prompt,
            script=self.script(),
            duration_s=self.duration(),
            tags=self.string_list("tags"),
        )
        gt_video, gt_audio = self.ground_truth()
        if not item.subjects:
            return None
        return replace(item, ground_truth_video=gt_video, ground_truth_audio=gt_audio)


def parse_manifest(raw: dict[str, Any], root: Path) -> tuple[Benchmark, list[Problem]]:
    """Build a Benchmark from a manifest dict; items too broken to build are left out (and reported)."""
    problems: list[Problem] = []
    where = "<manifest>"
    for key in sorted(set(raw) - TOP_KEYS):
        problems.append(Problem(where, key, "unknown top-level key (typo?)", "warning"))
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        problems.append(Problem(where, "name", f"missing or empty benchmark name, got {name!r}"))
        name = "unnamed"
    raw_items = raw.get("items")
    if not isinstance(raw_items, list) or not raw_items:
        problems.append(Problem(where, "items", "missing or empty list of items"))
        raw_items = []
    items: list[Item] = []
    for k, raw_item in enumerate(raw_items):
        if not isinstance(raw_item, dict):
            problems.append(Problem(f"items[{k}]", "", "item must be a mapping"))
            continue
        item_id = raw_item.get("id")
        if not isinstance(item_id, str) or not item_id.strip():
            problems.append(Problem(f"items[{k}]", "id", f"missing or empty item id, got {item_id!r}"))
            item_id = f"items[{k}]"
        parser = _ItemParser(raw_item, item_id.strip(), root)
        item = parser.parse()
        problems.extend(parser.problems)
        if item is not None:
            items.append(item)
    bench = Benchmark(name=name.strip(), items=tuple(items), root=root, version=str(raw.get("version", "")))
    return bench, problems


def read_manifest(path: str | Path) -> tuple[Benchmark | None, dict[str, Any] | None, list[Problem]]:
    """Read + parse a manifest file: (benchmark or None, raw dict or None, every parse problem)."""
    path = Path(path)
    raw, problems = read_manifest_yaml(path)
    if raw is None:
        return None, None, problems
    bench, more = parse_manifest(raw, path.resolve().parent)
    return bench, raw, problems + more
