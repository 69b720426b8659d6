"""Importing this module registers the built-in offline metrics (wer/aid_sim/vid_sim ``/offline``)."""

from iap_bench.metrics import aid_sim, vid_sim, wer  # noqa: F401

__all__ = ["aid_sim", "vid_sim", "wer"]
