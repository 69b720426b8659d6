"""Result store (SQLite, content-keyed), environment capture and the ``python -m iap_bench.store`` CLI."""

from iap_bench.store.core import (
    ALL_SPLIT,
    IDENTITY_FIELDS,
    SCHEMA_VERSION,
    SCORE_KEY,
    AggregateRecord,
    MergeReport,
    ResultStore,
    SampleRecord,
    ScoreRecord,
    identity_tuple,
    open_stores,
    set_hash,
)
from iap_bench.store.env import collect_env, default_env

__all__ = ["ALL_SPLIT", "IDENTITY_FIELDS", "SCHEMA_VERSION", "SCORE_KEY", "AggregateRecord", "MergeReport",
           "ResultStore", "SampleRecord", "ScoreRecord", "collect_env", "default_env", "identity_tuple",
           "open_stores", "set_hash"]
