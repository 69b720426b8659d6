"""Media layer: decode each sample once, serve cached derived views to every metric."""
