"""Typed schema of a benchmark item: subjects with anchors, references, script and structured prompt.

A manifest names *identity slots*; a media pack binds each slot to face images, a voice clip and
its transcript. Items are immutable once loaded; binding returns new objects with paths filled in.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

Split = Literal["single", "multi"]
Language = Literal["en", "zh"]


@dataclass(frozen=True)
class SubjectPrompt:
    """Per-subject part of the structured prompt, bound to the subject's anchor."""

    appearance: str
    action: str
    expression: str


@dataclass(frozen=True)
class Subject:
    """One person in an item: anchor label (e.g. ``<S1>``), identity slot, references once bound."""

    anchor: str
    slot: str
    prompt: SubjectPrompt
    language: Language = "en"
    views: int = 1  # reference views the item asks for: 1 = one-shot, >1 = multi-view
    faces: tuple[Path, ...] = ()  # bound reference face images (filled by the media pack)
    voice: Path | None = None  # bound reference voice clip
    voice_transcript: str | None = None

    @property
    def index(self) -> int:
        """1-based identity index taken from the anchor (``<S2>`` -> 2)."""
        return int(self.anchor.strip("<>").lstrip("S"))

    @property
    def is_bound(self) -> bool:
        return bool(self.faces) and self.voice is not None


@dataclass(frozen=True)
class Turn:
    """One spoken line in script order: who says it and what."""

    anchor: str
    text: str


@dataclass(frozen=True)
class StructuredPrompt:
    """Scene-level part of the prompt (per-subject parts live on each Subject)."""

    scene: str
    camera: str
    ambience: str
    sound_effects: tuple[str, ...] = ()


@dataclass(frozen=True)
class Item:
    """One benchmark triplet: reference faces + reference voices + text prompt (+ optional ground truth)."""

    id: str
    split: Split
    subjects: tuple[Subject, ...]
    prompt: StructuredPrompt
    script: tuple[Turn, ...]
    duration_s: float = 5.0
    ground_truth_video: Path | None = None
    ground_truth_audio: Path | None = None
    tags: tuple[str, ...] = field(default_factory=tuple)

    @property
    def language(self) -> str:
        """Language of the item's speech (all subjects share it in this benchmark)."""
        return self.subjects[0].language

    @property
    def reference_mode(self) -> str:
        return "multi-view" if any(s.views > 1 for s in self.subjects) else "one-shot"

    def subject(self, anchor: str) -> Subject:
        for s in self.subjects:
            if s.anchor == anchor:
                return s
        raise KeyError(f"item {self.id}: no subject with anchor {anchor}")

    def lines_of(self, anchor: str) -> list[str]:
        """The lines a subject speaks, in script order."""
        return [t.text for t in self.script if t.anchor == anchor]

    def speech_text(self) -> str:
        """All spoken lines concatenated in script order (the WER reference)."""
        sep = "" if self.language == "zh" else " "
        return sep.join(t.text for t in self.script)

    def text_prompt(self) -> str:
        """The structured caption with subject anchors, as given to generators and CLAP/OC."""
        parts = [f"Scene: {self.prompt.scene}", f"Camera: {self.prompt.camera}"]
        for s in self.subjects:
            p = s.prompt
            parts.append(f"{s.anchor}: {p.appearance}; {p.action}; {p.expression}.")
        for t in self.script:
            parts.append(f"{t.anchor} says: <S>{t.text}<E>")
        audio = self.prompt.ambience
        if self.prompt.sound_effects:
            audio += "; sound effects: " + ", ".join(self.prompt.sound_effects)
        parts.append(f"Audio: {audio}")
        return " ".join(parts)

    def with_subjects(self, subjects: tuple[Subject, ...]) -> Item:
        return replace(self, subjects=subjects)


@dataclass(frozen=True)
class Benchmark:
    """A loaded manifest, possibly bound to a media pack (``pack_hash`` set once fully bound)."""

    name: str
    items: tuple[Item, ...]
    root: Path
    pack_dir: Path | None = None
    pack_hash: str | None = None
    version: str = ""  # manifest version string (added for provenance; optional)

    def __len__(self) -> int:
        return len(self.items)

    def split(self, split: Split) -> tuple[Item, ...]:
        return tuple(i for i in self.items if i.split == split)

    def item(self, item_id: str) -> Item:
        for i in self.items:
            if i.id == item_id:
                return i
        raise KeyError(f"benchmark {self.name}: no item {item_id!r}")

    @property
    def unbound_slots(self) -> list[str]:
        return sorted({s.slot for i in self.items for s in i.subjects if not s.is_bound})
