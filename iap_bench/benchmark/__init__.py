"""Benchmark schema, manifests, validation and media-pack binding."""
