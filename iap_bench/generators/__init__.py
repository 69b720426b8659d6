"""Generator adapters (registered lazily by name in ``iap_bench.generators.base.GENERATORS``)."""
