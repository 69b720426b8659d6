"""Metrics (registered lazily by name in ``iap_bench.metrics.base.METRICS``; see ``builtin``)."""
