"""Metrics; importing this package registers the built-in ones."""

from iap_bench.metrics import builtin  # noqa: F401  (registration side effects)
