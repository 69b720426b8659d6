"""Validate a benchmark manifest (and its media pack): report EVERY problem with item id and field.

``validate(path_or_benchmark, pack_dir)`` never raises on bad content: malformed YAML, missing keys,
duplicate ids/anchors, undefined anchors, wrong split counts, missing/unreadable/empty media all come
back as ``Problem``s. Run it from the shell with ``python -m iap_bench.benchmark.validate MANIFEST [--pack DIR]``.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from iap_bench.benchmark.manifest import ANCHOR_IN_TEXT_RE, read_manifest
from iap_bench.benchmark.pack import PACK_LAYOUT, inspect_pack, slot_users, unbound_report
from iap_bench.benchmark.problems import Problem, errors_of
from iap_bench.benchmark.schema import Benchmark, Item

__all__ = ["Problem", "ValidationReport", "validate", "validate_report", "check_structure",
           "check_media_files", "format_problems", "main"]

# Split counts a named benchmark must have when its manifest does not say (manifest key: expected_splits).
EXPECTED_SPLITS: dict[str, dict[str, int]] = {"iap100": {"single": 70, "multi": 30}}
SUBJECTS_PER_SPLIT = {"single": (1, 1), "multi": (2, 3)}
CJK_RE = re.compile(r"[\u4e00-\u9fff]")
WORDS_PER_S = {"en": 3.2, "zh": 6.5}  # generous speaking rates (words or characters per second)
MIN_FACE_PX = 32


def _texts_with_fields(item: Item) -> Iterator[tuple[str, str]]:
    """Every free-text field of an item that may mention anchors: (field, text)."""
    yield "scene", item.prompt.scene
    yield "camera", item.prompt.camera
    yield "ambience", item.prompt.ambience
    for k, s in enumerate(item.subjects):
        for name in ("appearance", "action", "expression"):
            yield f"subjects[{k}].{name}", getattr(s.prompt, name)
    for k, t in enumerate(item.script):
        yield f"script[{k}].text", t.text


def _speech_units(text: str, language: str) -> int:
    """Words (en) or CJK characters (zh) in a line."""
    return len(CJK_RE.findall(text)) if language == "zh" else len(text.split())


def check_item(item: Item) -> list[Problem]:
    """Anchors, subject counts, speaking turns and language of one item."""
    out: list[Problem] = []
    p = lambda field, msg, sev="error": out.append(Problem(item.id, field, msg, sev))  # noqa: E731
    lo, hi = SUBJECTS_PER_SPLIT[item.split]
    if not lo <= len(item.subjects) <= hi:
        want = "exactly 1 subject" if item.split == "single" else "2-3 subjects"
        p("subjects", f"{item.split} item must have {want}, has {len(item.subjects)}")
    anchors = [s.anchor for s in item.subjects]
    for a, n in Counter(anchors).items():
        if n > 1:
            p("subjects", f"anchor {a} defined {n} times")
    if item.split == "multi":
        for slot, n in Counter(s.slot for s in item.subjects).items():
            if n > 1:
                p("subjects", f"slot {slot} used by {n} subjects of one item (people must be distinct)")
    defined = set(anchors)
    for field, text in _texts_with_fields(item):
        for a in sorted(set(ANCHOR_IN_TEXT_RE.findall(text)) - defined):
            p(field, f"anchor {a} is used in the text but not defined by any subject")
    for k, t in enumerate(item.script):
        if t.anchor not in defined:
            p(f"script[{k}].anchor", f"speaker {t.anchor} is not defined by any subject")
    speaking = {t.anchor for t in item.script}
    for k, s in enumerate(item.subjects):
        if s.anchor not in speaking:
            sev = "warning" if item.split == "multi" else "error"
            p(f"subjects[{k}].anchor", f"{s.anchor} is defined but never speaks", sev)
    langs = {s.language for s in item.subjects}
    if len(langs) > 1:
        p("subjects", f"subjects of one item must share a language, got {sorted(langs)}")
    lang = item.language if item.subjects else "en"
    for k, t in enumerate(item.script):
        has_cjk = bool(CJK_RE.search(t.text))
        if lang == "zh" and not has_cjk:
            p(f"script[{k}].text", "item language is zh but the line has no Chinese characters")
        if lang == "en" and has_cjk:
            p(f"script[{k}].text", "item language is en but the line contains Chinese characters")
    units = sum(_speech_units(t.text, lang) for t in item.script)
    if units > WORDS_PER_S[lang] * item.duration_s:
        unit = "characters" if lang == "zh" else "words"
        p("script", f"{units} {unit} of speech do not fit in {item.duration_s:g} s", "warning")
    return out


def check_structure(bench: Benchmark, raw: dict[str, Any] | None = None) -> list[Problem]:
    """Benchmark-level checks: duplicate ids, split counts, and every item's own checks."""
    out: list[Problem] = []
    for item_id, n in Counter(i.id for i in bench.items).items():
        if n > 1:
            out.append(Problem(item_id, "id", f"item id {item_id!r} is used by {n} items"))
    for item in bench.items:
        out += check_item(item)
    expected = (raw or {}).get("expected_splits") or EXPECTED_SPLITS.get(bench.name)
    if expected is not None:
        if not isinstance(expected, dict) or not all(isinstance(v, int) for v in expected.values()):
            out.append(Problem("<manifest>", "expected_splits", f"must map split -> count, got {expected!r}"))
        else:
            counts = Counter(i.split for i in bench.items)
            for split, want in expected.items():
                if counts.get(split, 0) != want:
                    out.append(Problem("<manifest>", "split", f"{bench.name} must have exactly {want} "
                                       f"{split} items, has {counts.get(split, 0)}"))
    return out


def _image_problem(path: Path) -> str | None:
    """Why an image cannot serve as a reference face (None if fine)."""
    from PIL import Image, UnidentifiedImageError

    if not path.is_file():
        return f"missing file {path}"
    if path.stat().st_size == 0:
        return f"empty file {path}"
    try:
        with Image.open(path) as im:
            im.load()
            w, h = im.size
    except (UnidentifiedImageError, OSError, ValueError) as e:
        return f"unreadable image {path}: {e}"
    if min(w, h) < MIN_FACE_PX:
        return f"image {path} is {w}x{h}, smaller than {MIN_FACE_PX} px"
    return None


def _audio_problem(path: Path) -> str | None:
    """Why an audio file cannot serve as a reference voice / ground truth (None if fine)."""
    import soundfile as sf

    if not path.is_file():
        return f"missing file {path}"
    if path.stat().st_size == 0:
        return f"empty file {path}"
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError, ValueError) as e:
        return f"unreadable audio {path}: {' '.join(str(e).split())}"
    if data.shape[0] == 0:
        return f"empty audio {path} (zero samples)"
    if float(np.abs(data).max()) < 1e-4:
        return f"silent audio {path}"
    return None


def _video_problem(path: Path) -> str | None:
    """Why a ground-truth video cannot be decoded (None if fine)."""
    import av

    if not path.is_file():
        return f"missing file {path}"
    try:
        with av.open(str(path)) as c:
            if not c.streams.video:
                return f"no video stream in {path}"
            next(c.decode(video=0))
    except (av.FFmpegError, StopIteration, OSError) as e:
        return f"unreadable video {path}: {e}"
    return None


def check_media_files(bench: Benchmark) -> list[Problem]:
    """Decode every bound reference (faces, voices) and ground-truth file once; report each bad file once.

    A file shared by several items (a slot's face or voice) is reported under its first user, naming the others.
    """
    found: dict[Path, tuple[str, str, str] | None] = {}  # path -> (first item id, field, message) or None
    users: dict[Path, list[str]] = {}

    def visit(item_id: str, field: str, path: Path, check) -> None:
        if path not in found:
            msg = check(path)
            found[path] = (item_id, field, msg) if msg else None
        if found[path] is not None and item_id not in users.setdefault(path, []):
            users[path].append(item_id)

    for item in bench.items:
        for k, s in enumerate(item.subjects):
            for j, face in enumerate(s.faces):
                visit(item.id, f"subjects[{k}].faces[{j}]", face, _image_problem)
            if s.voice is not None:
                visit(item.id, f"subjects[{k}].voice", s.voice, _audio_problem)
        if item.ground_truth_audio:
            visit(item.id, "ground_truth.audio", item.ground_truth_audio, _audio_problem)
        if item.ground_truth_video:
            visit(item.id, "ground_truth.video", item.ground_truth_video, _video_problem)
    out: list[Problem] = []
    for path, hit in found.items():
        if hit is None:
            continue
        item_id, field, msg = hit
        others = [u for u in users[path] if u != item_id]
        if others:
            shown = ", ".join(others[:8]) + (f", ... (+{len(others) - 8})" if len(others) > 8 else "")
            msg += f" (also used by {shown})"
        out.append(Problem(item_id, field, msg))
    return out


def _unbound_problems(bench: Benchmark, pack_given: bool) -> list[Problem]:
    """Slots without media: errors when a pack was given (folder missing), one warning otherwise."""
    missing = [s for s in bench.unbound_slots if not (bench.pack_dir and (bench.pack_dir / s).is_dir())]
    if not missing:  # slots whose folder exists but is incomplete were already reported by inspect_pack
        return []
    if not pack_given:
        return [Problem("<pack>", "pack", f"{len(missing)} identity slot(s) unbound (no media pack given); "
                        "bind them with benchmark.pack=/path/to/pack", "warning")]
    users = slot_users(bench)
    return [Problem(users[s][0], f"slot:{s}", f"no folder {bench.pack_dir}/{s} in the media pack "
                    f"(used by {', '.join(users[s])})") for s in missing]


def _dedupe(problems: list[Problem]) -> list[Problem]:
    """Each problem once (first occurrence kept, order preserved)."""
    return list(dict.fromkeys(problems))


def _validate(benchmark_or_manifest: Benchmark | str | Path, pack_dir: str | Path | None,
              check_media: bool) -> tuple[Benchmark | None, list[Problem]]:
    """(the benchmark bound to the pack as far as possible, or None if unreadable; every problem once)."""
    if isinstance(benchmark_or_manifest, Benchmark):
        bench: Benchmark | None = benchmark_or_manifest
        problems = check_structure(bench)
    else:
        bench, raw, problems = read_manifest(benchmark_or_manifest)
        if bench is not None:
            problems += check_structure(bench, raw)
    if bench is None:
        return None, _dedupe(problems)
    if pack_dir is not None:
        bench, pack_problems = inspect_pack(bench, Path(pack_dir))
        problems += pack_problems
    if not any(p.field == "pack" and p.severity == "error" for p in problems):
        problems += _unbound_problems(bench, pack_given=bench.pack_dir is not None)
    if check_media:
        problems += check_media_files(bench)
    return bench, _dedupe(problems)


def validate(benchmark_or_manifest: Benchmark | str | Path, pack_dir: str | Path | None = None,
             check_media: bool = True) -> list[Problem]:
    """Every problem of a manifest (path) or loaded benchmark, plus its media pack when given; each once."""
    return _validate(benchmark_or_manifest, pack_dir, check_media)[1]


@dataclass
class ValidationReport:
    """What ``iap-bench validate`` prints: every problem once, the unbound slots (only when no pack was given:
    with a pack, each missing slot folder is already an error), and one summary line."""

    manifest: Path | None
    benchmark: Benchmark | None
    problems: list[Problem]
    pack_dir: Path | None = None

    @property
    def errors(self) -> list[Problem]:
        return errors_of(self.problems)

    @property
    def unbound_slots(self) -> tuple[str, ...]:
        return tuple(self.benchmark.unbound_slots) if self.benchmark is not None else ()

    @property
    def exit_code(self) -> int:
        """0 when there is no error and every slot is bound, else 1."""
        return 1 if self.errors or self.unbound_slots or self.benchmark is None else 0

    def shown(self) -> list[Problem]:
        """Problems to list, errors first; without a pack, the unbound-slot warning gives way to the block."""
        block = self.unbound_block() is not None
        listed = [p for p in self.problems
                  if not (block and p.item_id == "<pack>" and p.field == "pack" and p.severity == "warning")]
        return sorted(listed, key=lambda p: p.severity != "error")

    def unbound_block(self) -> str | None:
        """Which slots are unbound and how to bind them (no pack given), else None."""
        if self.benchmark is None or not self.unbound_slots or self.pack_dir is not None:
            return None
        return unbound_report(self.benchmark)

    def summary(self) -> str:
        shown = self.shown()
        n_err = len(errors_of(shown))
        n_warn = len(shown) - n_err
        if self.benchmark is None:
            return f"{self.manifest}: cannot be read, {n_err} error(s), {n_warn} warning(s)"
        b = self.benchmark
        pack = f", pack {self.pack_dir}" if self.pack_dir is not None else ", no media pack"
        return (f"{b.name}: {len(b.items)} items ({len(b.split('single'))} single / {len(b.split('multi'))} multi), "
                f"{n_err} error(s), {n_warn} warning(s), {len(self.unbound_slots)} unbound slot(s){pack}, "
                f"pack hash {(b.pack_hash if not n_err else None) or '-'}")

    def lines(self) -> list[str]:
        """Plain text: one line per problem, the unbound-slot block if any, the summary line last."""
        out = [str(p) for p in self.shown()]
        if (block := self.unbound_block()) is not None:
            out.append(block)
        if self.pack_dir is not None and any(p.field.startswith("slot:") for p in self.errors):
            out.append("Each slot folder of a media pack holds:\n" + PACK_LAYOUT)
        out.append(self.summary())
        return out

    def text(self) -> str:
        return "\n".join(self.lines())

    def print_rich(self, console: Any) -> None:
        """The same lines through a rich Console, severities coloured (messages never parsed as markup)."""
        from rich.text import Text

        for p in self.shown():
            colour = "red" if p.severity == "error" else "yellow"
            where = f"{p.item_id}.{p.field}" if p.field else p.item_id
            console.print(Text.assemble((p.severity, colour), f": {where}: {p.message}"), soft_wrap=True)
        rest = self.lines()[len(self.shown()):]
        for k, line in enumerate(rest):
            console.print(Text(line, style="bold" if k == len(rest) - 1 else ""), soft_wrap=True)


def validate_report(manifest: str | Path, pack_dir: str | Path | None = None,
                    check_media: bool = True) -> ValidationReport:
    """Validate a manifest (+ pack) for display: see ``ValidationReport``."""
    bench, problems = _validate(Path(manifest), pack_dir, check_media)
    return ValidationReport(Path(manifest), bench, problems, Path(pack_dir) if pack_dir is not None else None)


def format_problems(problems: list[Problem]) -> str:
    """One line per problem, errors first, with a count summary."""
    ordered = sorted(problems, key=lambda p: (p.severity != "error",))
    n_err = len(errors_of(problems))
    head = f"{n_err} error(s), {len(problems) - n_err} warning(s)"
    return "\n".join([head, *(f"  {p}" for p in ordered)])


def main(argv: list[str] | None = None) -> int:
    """CLI: validate a manifest (+ pack); exit code 1 if any error was found or a slot is unbound."""
    ap = argparse.ArgumentParser(description="Validate an IAP-Bench manifest and its media pack.")
    ap.add_argument("manifest", type=Path)
    ap.add_argument("--pack", type=Path, default=None, help="media pack folder (one subfolder per slot)")
    ap.add_argument("--no-media", action="store_true", help="skip decoding the media files")
    args = ap.parse_args(argv)
    report = validate_report(args.manifest, args.pack, check_media=not args.no_media)
    print(report.text())
    return report.exit_code


if __name__ == "__main__":
    sys.exit(main())
