"""MediaPool: ordered prefetching decode in worker threads, failures carried on the sample."""

from __future__ import annotations

import time

import numpy as np
import pytest
from media_helpers import moving_square, tone

from iap_bench.errors import MediaError
from iap_bench.media.pool import MediaPool
from iap_bench.media.sample import DECODE_COUNTS
from iap_bench.media.writer import write_mp4


def _clips(tmp_path, n: int) -> list:
    paths = []
    for i in range(n):
        paths.append(write_mp4(tmp_path / f"c{i}.mp4", moving_square(n=5 + i), 25, tone(0.4, 16000), 16000).path)
    return paths


def test_order_prefetch_and_failures(tmp_path):
    paths = _clips(tmp_path, 4)
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00" * 1000)
    order = [paths[0], broken, paths[1], paths[2], paths[3]]
    with MediaPool(max_workers=2, prefetch=3) as pool:
        it = pool.iter_open(order)
        first = next(it)
        assert DECODE_COUNTS[str(paths[0])] == 1  # decoded before the caller touched a view
        assert first.loaded_in_thread.startswith("iap-media")
        deadline = time.time() + 10
        while DECODE_COUNTS[str(paths[1])] == 0 and time.time() < deadline:
            time.sleep(0.01)  # paths[1] is decoded ahead while we hold the first sample
        assert DECODE_COUNTS[str(paths[1])] == 1
        rest = list(it)
    got = [first, *rest]
    assert [m.path for m in got] == order
    assert [m.n_frames for m in got if m.error is None] == [5, 6, 7, 8]
    with pytest.raises(MediaError) as e:
        got[1].frames()
    assert e.value.reason == "decode_error"
    assert all(DECODE_COUNTS[str(p)] == 1 for p in paths)
    diff = np.abs(got[2].frames()[0].astype(int) - got[0].frames()[0].astype(int))
    assert diff.mean() < 3  # same first frame content, encoded separately (lossy)


def test_pool_validates_args():
    with pytest.raises(ValueError):
        MediaPool(max_workers=0)
