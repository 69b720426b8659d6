"""Prefetching decoder: opens, hashes and decodes upcoming samples in worker threads, yielding them in order."""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from iap_bench.media.sample import SampleMedia


def _open(path: str | os.PathLike | SampleMedia) -> SampleMedia:
    """Worker task: build + load a sample; load() stores failures on the object, so this never raises."""
    media = path if isinstance(path, SampleMedia) else SampleMedia(Path(path))
    return media.load()


class MediaPool:
    """Keeps up to ``prefetch`` samples decoding ahead of the consumer on ``max_workers`` threads."""

    def __init__(self, max_workers: int = 2, prefetch: int = 4):
        if max_workers < 1 or prefetch < 1:
            raise ValueError("max_workers and prefetch must be >= 1")
        self.max_workers = max_workers
        self.prefetch = prefetch
        self._executor: ThreadPoolExecutor | None = None

    def __enter__(self) -> MediaPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _pool(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self.max_workers, thread_name_prefix="iap-media")
        return self._executor

    def close(self) -> None:
        """Stop the worker threads (pending prefetches are cancelled)."""
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    def iter_open(self, paths: Iterable[str | os.PathLike | SampleMedia]) -> Iterator[SampleMedia]:
        """Yield a loaded SampleMedia per path, in input order; decode failures live on the object."""
        pool = self._pool()
        source = iter(paths)
        pending: deque[Future[SampleMedia]] = deque()

        def top_up() -> None:
            while len(pending) < self.prefetch:
                try:
                    nxt = next(source)
                except StopIteration:
                    return
                pending.append(pool.submit(_open, nxt))

        top_up()
        try:
            while pending:
                media = pending.popleft().result()
                top_up()
                yield media
        finally:
            for fut in pending:
                fut.cancel()
