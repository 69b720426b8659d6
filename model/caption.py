"""Structured captions with subject anchors, written in Ovi's prompt grammar.

Anchor i names subject i, whose e_id^(i), visual canvas i and audio reference i share that index
(ARCHITECTURE §8). Speech goes in ``<S>…<E>``; the audio description is a trailing ``Audio: …``
(960x960 checkpoints) or ``<AUDCAP>…<ENDAUDCAP>`` (720x720_5s). ``use_subject_anchor=False`` is the
paper's "w/o SA" ablation: the same caption with every identifier replaced by a generic phrase.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

AnchorFormat = Literal["subject", "item"]
AudioTag = Literal["audio", "audcap"]


@dataclass(frozen=True)
class CaptionStyle:
    """How a caption is written: anchor style, whether anchors appear, and the audio-caption grammar."""

    use_subject_anchor: bool = True
    anchor_format: AnchorFormat = "subject"  # "subject": [Subject 1]; "item": keep the item's <S1>
    audio_tag: AudioTag = "audio"
    generic_subject: str = "A person"  # replaces anchors when use_subject_anchor is False


@dataclass(frozen=True)
class SubjectText:
    """One subject's caption fields; ``index`` is the 1-based identity index of its anchor."""

    index: int
    appearance: str
    action: str = ""
    expression: str = ""
    anchor: str = ""  # original anchor label (e.g. <S1>); derived from index when empty


@dataclass(frozen=True)
class CaptionSpec:
    """Everything a structured caption says: scene, camera, subjects, script turns, audio description."""

    scene: str
    camera: str = ""
    subjects: tuple[SubjectText, ...] = ()
    script: tuple[tuple[int, str], ...] = ()  # (subject index, spoken line) in order
    ambience: str = ""
    sound_effects: tuple[str, ...] = field(default_factory=tuple)


_ANCHOR_RE = re.compile(r"<S(\d+)>")


def anchor_index(anchor: str) -> int:
    """``<S2>`` / ``S2`` / ``[Subject 2]`` -> 2."""
    digits = re.findall(r"\d+", anchor)
    if not digits:
        raise ValueError(f"anchor {anchor!r} carries no subject index")
    return int(digits[-1])


def anchor_text(index: int, original: str, style: CaptionStyle) -> str:
    """The identifier written for subject ``index`` under ``style``."""
    if not style.use_subject_anchor:
        return style.generic_subject
    if style.anchor_format == "item":
        return original or f"<S{index}>"
    return f"[Subject {index}]"


def spec_from_item(item: Any) -> CaptionSpec:
    """CaptionSpec from an ``iap_bench.benchmark.schema.Item`` (duck-typed to avoid a hard import)."""
    subjects = tuple(
        SubjectText(index=s.index, appearance=s.prompt.appearance, action=s.prompt.action,
                    expression=s.prompt.expression, anchor=s.anchor)
        for s in item.subjects
    )
    script = tuple((anchor_index(t.anchor), t.text) for t in item.script)
    return CaptionSpec(scene=item.prompt.scene, camera=item.prompt.camera, subjects=subjects, script=script,
                       ambience=item.prompt.ambience, sound_effects=tuple(item.prompt.sound_effects))


def spec_from_dict(d: Mapping[str, Any]) -> CaptionSpec:
    """CaptionSpec from a training-index record (keys as in ``spec_to_dict``)."""
    subjects = tuple(
        SubjectText(index=int(s.get("index") or anchor_index(s["anchor"])), appearance=s.get("appearance", ""),
                    action=s.get("action", ""), expression=s.get("expression", ""), anchor=s.get("anchor", ""))
        for s in d.get("subjects", ())
    )
    script = tuple((int(t["index"]) if "index" in t else anchor_index(t["anchor"]), t["text"])
                   for t in d.get("script", ()))
    return CaptionSpec(scene=d.get("scene", ""), camera=d.get("camera", ""), subjects=subjects, script=script,
                       ambience=d.get("ambience", ""), sound_effects=tuple(d.get("sound_effects", ())))


def spec_to_dict(spec: CaptionSpec) -> dict[str, Any]:
    """JSON-ready form of a CaptionSpec (the training index stores this)."""
    return {
        "scene": spec.scene, "camera": spec.camera, "ambience": spec.ambience,
        "sound_effects": list(spec.sound_effects),
        "subjects": [{"index": s.index, "anchor": s.anchor or f"<S{s.index}>", "appearance": s.appearance,
                      "action": s.action, "expression": s.expression} for s in spec.subjects],
        "script": [{"index": i, "text": t} for i, t in spec.script],
    }


def _sentence(text: str) -> str:
    text = text.strip()
    return text if not text or text[-1] in ".!?。！？" else text + "."


def render_caption(spec: CaptionSpec, style: CaptionStyle = CaptionStyle()) -> str:
    """Write the structured caption: scene, camera, anchored subjects, anchored speech, audio caption."""
    originals = {s.index: s.anchor for s in spec.subjects}
    parts: list[str] = []
    if spec.scene:
        parts.append(_sentence(spec.scene))
    if spec.camera:
        parts.append(_sentence(f"Camera: {spec.camera}"))
    for s in spec.subjects:
        who = anchor_text(s.index, s.anchor, style)
        desc = "; ".join(x for x in (s.appearance, s.action, s.expression) if x)
        parts.append(_sentence(f"{who}: {desc}"))
    for idx, line in spec.script:
        who = anchor_text(idx, originals.get(idx, ""), style)
        parts.append(f"{who} says <S>{line}<E>")
    audio = spec.ambience
    if spec.sound_effects:
        audio = (audio + "; " if audio else "") + "sound effects: " + ", ".join(spec.sound_effects)
    if style.use_subject_anchor and spec.script:
        speakers = ", ".join(dict.fromkeys(anchor_text(i, originals.get(i, ""), style) for i, _ in spec.script))
        audio = (audio + "; " if audio else "") + f"speech by {speakers}"
    if audio:
        parts.append(f"<AUDCAP>{audio}<ENDAUDCAP>" if style.audio_tag == "audcap" else f"Audio: {audio}")
    return " ".join(parts)


def caption_for_item(item: Any, style: CaptionStyle = CaptionStyle()) -> str:
    """The caption the ``iap`` generator feeds the text encoder for a benchmark Item."""
    return render_caption(spec_from_item(item), style)


def anchors_in(caption: str) -> list[int]:
    """Subject indices whose anchors appear in a caption (either anchor style), in first-seen order."""
    found = [int(m) for m in re.findall(r"\[Subject (\d+)\]", caption)]
    found += [int(m) for m in _ANCHOR_RE.findall(caption)]
    return list(dict.fromkeys(found))


def speech_lines(caption: str) -> Sequence[str]:
    """The ``<S>…<E>`` spans of a caption (what the model should speak)."""
    return re.findall(r"<S>(.*?)<E>", caption)
