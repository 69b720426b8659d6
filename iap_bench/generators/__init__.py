"""Generator adapters; importing this package registers the built-in ones."""

from iap_bench.generators import cascade, iap, precomputed  # noqa: F401  (registration side effects)
