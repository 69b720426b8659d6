"""Media packs: one folder per identity slot (faces, voice, transcript) bound onto a manifest's subjects.

Layout of a pack (``<pack>/<slot>/``)::

    faces/face_1.jpg ... face_N.jpg   reference face images (jpg/jpeg/png), N >= views asked by any item
    voice.wav | voice.flac            reference voice clip (a few seconds, one speaker)
    voice.txt                         transcript of the voice clip
    meta.yaml                         optional: language, source, license, notes

A slot with no folder stays unbound (reported by ``unbound_report``); a folder that is present but
incomplete, or has fewer faces than an item asks for, is an error.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from iap_bench.benchmark.problems import Problem, errors_of
from iap_bench.benchmark.schema import Benchmark, Item, Subject
from iap_bench.errors import ManifestError
from iap_bench.hashing import file_sha256

FACE_SUFFIXES = (".jpg", ".jpeg", ".png")
VOICE_NAMES = ("voice.wav", "voice.flac")
TRANSCRIPT_NAME = "voice.txt"
META_NAME = "meta.yaml"

PACK_LAYOUT = """\
  <pack>/<slot>/faces/face_1.jpg, face_2.jpg, ...   (jpg/png; at least as many as the views items ask for)
  <pack>/<slot>/voice.wav   (or voice.flac; mono, a few seconds of one speaker)
  <pack>/<slot>/voice.txt   (transcript of the voice clip)
  <pack>/<slot>/meta.yaml   (optional: language, source, license, notes)"""


@dataclass(frozen=True)
class SlotMedia:
    """The files found for one identity slot in a pack."""

    slot: str
    folder: Path
    faces: tuple[Path, ...]
    voice: Path | None
    transcript: str | None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def files(self) -> tuple[Path, ...]:
        """Files that define the identity (what the pack hash covers)."""
        extra = [self.voice] if self.voice else []
        txt = self.folder / TRANSCRIPT_NAME
        return (*self.faces, *extra, *([txt] if txt.is_file() else []))


def _natural_key(path: Path) -> tuple:
    """Sort face_2 before face_10."""
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.name))


def read_slot(pack_dir: Path, slot: str) -> tuple[SlotMedia | None, list[str]]:
    """Scan ``pack_dir/slot``: (media or None if the folder is absent, list of layout problems)."""
    folder = Path(pack_dir) / slot
    if not folder.is_dir():
        return None, []
    issues: list[str] = []
    face_dir = folder / "faces"
    faces = tuple(sorted((p for p in face_dir.glob("*") if p.suffix.lower() in FACE_SUFFIXES and p.is_file()),
                         key=_natural_key)) if face_dir.is_dir() else ()
    if not faces:
        issues.append(f"no face images in {face_dir} (expected faces/face_1.jpg ...)")
    issues += [f"empty file {p}" for p in faces if p.stat().st_size == 0]
    voice = next((folder / n for n in VOICE_NAMES if (folder / n).is_file()), None)
    if voice is None:
        issues.append(f"no voice clip in {folder} (expected {' or '.join(VOICE_NAMES)})")
    elif voice.stat().st_size == 0:
        issues.append(f"empty file {voice}")
    transcript = None
    txt = folder / TRANSCRIPT_NAME
    if not txt.is_file():
        issues.append(f"no transcript {txt}")
    else:
        transcript = txt.read_text(encoding="utf-8", errors="replace").strip()
        if not transcript:
            issues.append(f"empty transcript {txt}")
    meta: dict[str, Any] = {}
    if (folder / META_NAME).is_file():
        try:
            loaded = yaml.safe_load((folder / META_NAME).read_text(encoding="utf-8"))
            meta = loaded if isinstance(loaded, dict) else {}
            if not isinstance(loaded, dict | None):
                issues.append(f"{folder / META_NAME} must be a mapping")
        except yaml.YAMLError as e:
            issues.append(f"malformed {folder / META_NAME}: {' '.join(str(e).split())}")
    return SlotMedia(slot, folder, faces, voice, transcript or None, meta), issues


def slot_users(benchmark: Benchmark) -> dict[str, list[str]]:
    """slot -> ids of the items that use it (in manifest order)."""
    users: dict[str, list[str]] = {}
    for item in benchmark.items:
        for s in item.subjects:
            users.setdefault(s.slot, [])
            if item.id not in users[s.slot]:
                users[s.slot].append(item.id)
    return users


def _bind_subject(item: Item, k: int, subject: Subject, media: SlotMedia) -> tuple[Subject, list[Problem]]:
    """Fill one subject's references from its slot; a views mismatch is a problem."""
    problems = []
    if len(media.faces) < subject.views:
        problems.append(Problem(item.id, f"subjects[{k}].views",
                                f"{subject.anchor} asks for {subject.views} reference views but slot "
                                f"{subject.slot} has {len(media.faces)} face image(s) in {media.folder / 'faces'}"))
    meta_lang = media.meta.get("language")
    if meta_lang and meta_lang != subject.language:
        problems.append(Problem(item.id, f"subjects[{k}].language",
                                f"{subject.anchor} speaks {subject.language!r} but slot {subject.slot}'s voice is "
                                f"marked language {meta_lang!r} in meta.yaml", "warning"))
    bound = replace(subject, faces=media.faces[: subject.views], voice=media.voice,
                    voice_transcript=media.transcript)
    return bound, problems


def inspect_pack(benchmark: Benchmark, pack_dir: Path) -> tuple[Benchmark, list[Problem]]:
    """Bind what can be bound and list every pack problem (never raises on content problems)."""
    pack_dir = Path(pack_dir).resolve()
    if not pack_dir.is_dir():
        return benchmark, [Problem("<pack>", "pack", f"media pack folder {pack_dir} does not exist")]
    users = slot_users(benchmark)
    slots: dict[str, SlotMedia | None] = {}
    problems: list[Problem] = []
    for slot, items in users.items():
        media, issues = read_slot(pack_dir, slot)
        slots[slot] = None if issues else media
        also = f" (slot {slot}; used by {', '.join(items)})"
        problems += [Problem(items[0], f"slot:{slot}", msg + also) for msg in issues]
    new_items = []
    for item in benchmark.items:
        subjects = []
        for k, s in enumerate(item.subjects):
            media = slots.get(s.slot)
            if media is None:
                subjects.append(s)
                continue
            bound, more = _bind_subject(item, k, s, media)
            subjects.append(bound)
            problems += more
        new_items.append(item.with_subjects(tuple(subjects)))
    bound_bench = replace(benchmark, items=tuple(new_items), pack_dir=pack_dir.resolve(), pack_hash=None)
    if not bound_bench.unbound_slots and not errors_of(problems):
        bound_bench = replace(bound_bench, pack_hash=pack_hash(pack_dir, sorted(users)))
    return bound_bench, problems


def bind(benchmark: Benchmark, pack_dir: Path) -> Benchmark:
    """Bind a benchmark's identity slots to a media pack; raises ManifestError listing every pack error."""
    bound, problems = inspect_pack(benchmark, Path(pack_dir))
    errors = errors_of(problems)
    if errors:
        raise ManifestError([str(p) for p in errors])
    return bound


def pack_hash(pack_dir: Path, slots: list[str] | tuple[str, ...]) -> str:
    """Deterministic content hash of the identity files (faces, voice, transcript) of the given slots."""
    pack_dir = Path(pack_dir)
    lines = []
    for slot in sorted(set(slots)):
        media, issues = read_slot(pack_dir, slot)
        if media is None or issues:
            raise ManifestError([f"cannot hash slot {slot} in {pack_dir}: " + ("; ".join(issues) or "missing")])
        for p in media.files:
            lines.append(f"{p.relative_to(pack_dir).as_posix()}\t{file_sha256(p)}")
    return hashlib.sha256("\n".join(sorted(lines)).encode()).hexdigest()


def unbound_report(benchmark: Benchmark, config_name: str | None = None) -> str:
    """Human-readable list of unbound slots, the items using them, and how to bind them."""
    missing = benchmark.unbound_slots
    if not missing:
        return f"benchmark {benchmark.name}: all {len(slot_users(benchmark))} identity slots are bound."
    users = slot_users(benchmark)
    name = config_name or benchmark.name
    lines = [f"benchmark {benchmark.name}: {len(missing)} of {len(users)} identity slot(s) are unbound"
             + (f" in pack {benchmark.pack_dir}" if benchmark.pack_dir else " (no media pack given)") + ":"]
    for slot in missing:
        items = users[slot]
        shown = ", ".join(items[:8]) + (f", ... (+{len(items) - 8})" if len(items) > 8 else "")
        lines.append(f"  {slot}: used by {len(items)} item(s): {shown}")
    lines += [
        "",
        "To bind them, make a media pack folder with one subfolder per slot:",
        PACK_LAYOUT,
        "then pass it to the harness, e.g.:",
        f"  iap-bench validate benchmark={name} benchmark.pack=/path/to/pack",
        "(the same benchmark.pack=... override works for every iap-bench command; or, without Hydra,",
        "  python -m iap_bench.benchmark.validate <manifest.yaml> --pack /path/to/pack)",
    ]
    return "\n".join(lines)
