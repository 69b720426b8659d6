"""Shared helpers for the benchmark tests: paths of the committed data and small manifest builders."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
IAP100 = ROOT / "benchmark_data" / "iap100" / "manifest.yaml"
MINI = ROOT / "benchmark_data" / "iap-mini" / "manifest.yaml"
MINI_PACK = ROOT / "benchmark_data" / "iap-mini" / "pack"


def subject(anchor: str, slot: str, views: int = 1, language: str = "en") -> dict[str, Any]:
    """A valid subject entry."""
    return {"anchor": anchor, "slot": slot, "language": language, "views": views,
            "appearance": "a person in a blue coat", "action": "waves", "expression": "smiling"}


def item(item_id: str, slots: list[str], split: str | None = None, views: int = 1) -> dict[str, Any]:
    """A valid item entry; every subject speaks one short line."""
    anchors = [f"<S{k + 1}>" for k in range(len(slots))]
    return {
        "id": item_id, "split": split or ("single" if len(slots) == 1 else "multi"), "duration_s": 5.0,
        "tags": ["test"], "scene": "A quiet room", "camera": "Medium shot, static", "ambience": "Room tone",
        "sound_effects": ["door closes"],
        "subjects": [subject(a, s, views) for a, s in zip(anchors, slots)],
        "script": [{"anchor": a, "text": "Hello there, nice to meet you."} for a in anchors],
    }


def write_manifest(path: Path, items: list[dict[str, Any]], **top: Any) -> Path:
    """Write a manifest YAML with the given items."""
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"name": top.pop("name", "test-bench"), "version": "0", **top, "items": items}
    path.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def copy_slot(dst_pack: Path, slot: str, src_slot: str = "id_001", n_faces: int | None = None) -> Path:
    """Copy a real iap-mini slot into a test pack under a new name (optionally keeping only n faces)."""
    dst = dst_pack / slot
    shutil.copytree(MINI_PACK / src_slot, dst)
    if n_faces is not None:
        for face in sorted((dst / "faces").glob("face_*"))[n_faces:]:
            face.unlink()
    return dst
