"""Shared offline model wrappers (speaker, face, ASR) used by metrics and the harness.

Each wrapper loads its shipped weights once, records the file path and sha256, and raises
MissingCheckpointError (via WeightSpec) when the file is absent.
"""
