"""Test support: seeded random checkpoints in the real file formats and the official packages' scoring paths."""
