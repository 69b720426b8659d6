"""Exceptions shared across the harness; each carries a short machine-readable reason."""

from __future__ import annotations

from pathlib import Path


class IAPBenchError(Exception):
    """Base class for harness errors."""


class ManifestError(IAPBenchError):
    """A manifest or media pack is malformed; `problems` lists every issue found."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__(f"manifest has {len(problems)} problem(s):\n  - " + "\n  - ".join(problems))


class MediaError(IAPBenchError):
    """A sample cannot serve a view; `reason` is a short code recorded as the per-sample failure.

    Reasons used: decode_error, empty, no_video, no_audio, silent, no_face, no_speech, bad_input.
    """

    def __init__(self, reason: str, detail: str = ""):
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


class MissingCheckpointError(IAPBenchError):
    """A model file is absent: the message names the file, where it was looked for and how to get it."""

    def __init__(self, name: str, filename: str, searched: list[Path], how_to_get: str, config_key: str = ""):
        self.name = name
        self.filename = filename
        self.searched = [Path(p) for p in searched]
        where = "\n".join(f"    {p}" for p in self.searched) or "    (no search path configured)"
        key = f"\n  or point `{config_key}` at it" if config_key else ""
        super().__init__(
            f"checkpoint for {name!r} not found: {filename}\n  looked in:\n{where}\n"
            f"  how to get it: {how_to_get}{key}"
        )


class UsageError(IAPBenchError):
    """Bad use of the CLI (a wrong value, an unknown name, an unusable path): one line, exit code 2."""
