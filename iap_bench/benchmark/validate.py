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
from pathlib import Path
from typing import Any

import numpy as np

from iap_bench.benchmark.manifest import ANCHOR_IN_TEXT_RE, Problem, errors_of, read_manifest
from iap_bench.benchmark.pack import inspect_pack, slot_users, unbound_report
from iap_bench.benchmark.schema import Benchmark, Item

__all__ = ["Problem", "validate", "check_structure", "check_media_files", "format_problems", "main"]

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
    """Decode every bound reference (faces, voices) and ground-truth file once; report what fails."""
    out: list[Problem] = []
    seen: dict[Path, str | None] = {}

    def once(path: Path, check) -> str | None:
        if path not in seen:
            seen[path] = check(path)
        return seen[path]

    for item in bench.items:
        for k, s in enumerate(item.subjects):
            for j, face in enumerate(s.faces):
                if msg := once(face, _image_problem):
                    out.append(Problem(item.id, f"subjects[{k}].faces[{j}]", msg))
            if s.voice is not None and (msg := once(s.voice, _audio_problem)):
                out.append(Problem(item.id, f"subjects[{k}].voice", msg))
        if item.ground_truth_audio and (msg := once(item.ground_truth_audio, _audio_problem)):
            out.append(Problem(item.id, "ground_truth.audio", msg))
        if item.ground_truth_video and (msg := once(item.ground_truth_video, _video_problem)):
            out.append(Problem(item.id, "ground_truth.video", msg))
    return out


def _unbound_problems(bench: Benchmark, pack_given: bool) -> list[Problem]:
    """Slots without media: errors when a pack was given (folder missing), one warning otherwise."""
    missing = [s for s in bench.unbound_slots if not (bench.pack_dir and (bench.pack_dir / s).is_dir())]
    if not missing:  # slots whose folder exists but is incomplete were already reported by inspect_pack
        return []
    if not pack_given:
        return [Problem("<pack>", "pack", f"{len(missing)} identity slot(s) unbound (no media pack given); "
                        "see unbound_report()", "warning")]
    users = slot_users(bench)
    return [Problem(users[s][0], f"slot:{s}", f"no folder {bench.pack_dir}/{s} in the media pack "
                    f"(used by {', '.join(users[s])})") for s in missing]


def validate(benchmark_or_manifest: Benchmark | str | Path, pack_dir: str | Path | None = None,
             check_media: bool = True) -> list[Problem]:
    """Every problem of a manifest (path) or loaded benchmark, plus its media pack when given."""
    if isinstance(benchmark_or_manifest, Benchmark):
        bench: Benchmark | None = benchmark_or_manifest
        problems = check_structure(bench)
    else:
        bench, raw, problems = read_manifest(benchmark_or_manifest)
        if bench is not None:
            problems += check_structure(bench, raw)
    if bench is None:
        return problems
    if pack_dir is not None:
        bench, pack_problems = inspect_pack(bench, Path(pack_dir))
        problems += pack_problems
    if not any(p.field == "pack" and p.severity == "error" for p in problems):
        problems += _unbound_problems(bench, pack_given=bench.pack_dir is not None)
    if check_media:
        problems += check_media_files(bench)
    return problems


def format_problems(problems: list[Problem]) -> str:
    """One line per problem, errors first, with a count summary."""
    ordered = sorted(problems, key=lambda p: (p.severity != "error",))
    n_err = len(errors_of(problems))
    head = f"{n_err} error(s), {len(problems) - n_err} warning(s)"
    return "\n".join([head, *(f"  {p}" for p in ordered)])


def main(argv: list[str] | None = None) -> int:
    """CLI: validate a manifest (+ pack); exit code 1 if any error was found."""
    ap = argparse.ArgumentParser(description="Validate an IAP-Bench manifest and its media pack.")
    ap.add_argument("manifest", type=Path)
    ap.add_argument("--pack", type=Path, default=None, help="media pack folder (one subfolder per slot)")
    ap.add_argument("--no-media", action="store_true", help="skip decoding the media files")
    args = ap.parse_args(argv)
    problems = validate(args.manifest, args.pack, check_media=not args.no_media)
    print(format_problems(problems))
    bench, _, _ = read_manifest(args.manifest)
    if bench is not None and args.pack is None:
        print(unbound_report(bench))
    return 1 if errors_of(problems) else 0


if __name__ == "__main__":
    sys.exit(main())
