"""Structured captions: anchors present/absent per config, Ovi grammar."""

from __future__ import annotations

from iap_bench.benchmark.schema import Item, StructuredPrompt, Subject, SubjectPrompt, Turn
from model.caption import (
    CaptionStyle,
    anchors_in,
    caption_for_item,
    spec_from_dict,
    spec_from_item,
    spec_to_dict,
    speech_lines,
)


def _item() -> Item:
    subs = (Subject("<S1>", "a", SubjectPrompt("a tall man in a grey suit", "gestures", "calm")),
            Subject("<S2>", "b", SubjectPrompt("a woman with red glasses", "nods", "smiling")))
    return Item("x1", "multi", subs, StructuredPrompt("an office", "slow push-in", "room tone", ("door closes",)),
                (Turn("<S1>", "Good morning."), Turn("<S2>", "Hello there."), Turn("<S1>", "Shall we?")))


def test_anchors_present_and_bound():
    cap = caption_for_item(_item())
    assert anchors_in(cap) == [1, 2]
    assert "[Subject 1]: a tall man in a grey suit" in cap
    assert "[Subject 2] says <S>Hello there.<E>" in cap
    assert speech_lines(cap) == ["Good morning.", "Hello there.", "Shall we?"]
    assert cap.rstrip().split("Audio: ")[-1].startswith("room tone; sound effects: door closes")


def test_no_subject_anchor_ablation_removes_every_identifier():
    cap = caption_for_item(_item(), CaptionStyle(use_subject_anchor=False))
    assert anchors_in(cap) == []
    assert "Subject" not in cap and "<S1>" not in cap
    assert speech_lines(cap) == ["Good morning.", "Hello there.", "Shall we?"]  # speech grammar kept
    assert "A person: a tall man in a grey suit" in cap


def test_item_anchor_format_and_audcap_grammar():
    cap = caption_for_item(_item(), CaptionStyle(anchor_format="item", audio_tag="audcap"))
    assert "<S2>: a woman with red glasses" in cap and anchors_in(cap) == [1, 2]
    assert "<AUDCAP>" in cap and cap.endswith("<ENDAUDCAP>") and "Audio:" not in cap


def test_spec_dict_round_trip():
    spec = spec_from_item(_item())
    assert spec_from_dict(spec_to_dict(spec)) == spec
