"""The inputs hash of an item: everything a metric may read besides the generated sample.

Reference files by content (faces in view order, voice), their transcripts, the speech text per turn,
the language, the subject order (anchors), the text prompt, the duration and any ground truth. It is part
of every score's key, so a corrected transcript or another media pack never reuses an old number.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from iap_bench.benchmark.schema import Item
from iap_bench.hashing import file_sha256


def _file(p: Path | None) -> str | None:
    """Content hash of a reference file; a missing one is named (its scores are external faults)."""
    if p is None:
        return None
    path = Path(p)
    return file_sha256(path) if path.is_file() else f"missing:{path.name}"


def item_inputs(item: Item) -> dict[str, Any]:
    """Pure description of an item's inputs (file contents by hash, never by path)."""
    return {
        "subjects": [{"anchor": s.anchor, "faces": [_file(f) for f in s.faces], "voice": _file(s.voice),
                      "voice_transcript": s.voice_transcript, "language": s.language} for s in item.subjects],
        "script": [[t.anchor, t.text] for t in item.script],
        "language": item.language,
        "prompt": item.text_prompt(),
        "duration_s": item.duration_s,
        "ground_truth": [_file(item.ground_truth_video), _file(item.ground_truth_audio)],
    }


def item_inputs_hash(item: Item) -> str:
    """Short sha256 of ``item_inputs`` (item ids are not part of it: identical inputs share scores)."""
    blob = json.dumps(item_inputs(item), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:24]
