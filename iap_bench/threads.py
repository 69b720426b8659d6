"""One place that sets CPU threads for every library a job uses, so parallel jobs do not oversubscribe cores.

torch (intra-op), OpenMP/MKL/OpenBLAS pools (environment, for libraries not yet loaded), OpenCV, and the
values passed on to ONNX Runtime / CTranslate2 sessions (``Metric.threads``) and PyAV decoders.
"""

from __future__ import annotations

import os
import sys

_ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS")
_CURRENT: int | None = None  # what set_threads chose (None: libraries' own defaults)


def current_threads() -> int | None:
    """The cap set by ``set_threads`` for code that sizes its own pools (FFmpeg decoders), or None."""
    return _CURRENT


def default_threads(parallel_jobs: int = 1) -> int:
    """Cores available to this process, shared among ``parallel_jobs`` jobs on the machine (at least 1)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, cores // max(1, parallel_jobs))


def set_threads(n: int) -> int:
    """Cap every thread pool at ``n``; returns ``n``. Safe to call before or after the heavy imports."""
    global _CURRENT
    n = max(1, int(n))
    _CURRENT = n
    for var in _ENV_VARS:
        os.environ[var] = str(n)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(n)
    try:
        import cv2

        cv2.setNumThreads(n)
    except ImportError:
        pass
    return n
