"""Leaderboards from the result store: statistics (stats), building (build), rendering (table), CLI."""

from iap_bench.leaderboard.build import (
    PairedResult,
    build_ablation_table,
    build_leaderboard,
    build_leaderboards,
    layout_from_config,
    leaderboard_from_store,
    paired_test,
)
from iap_bench.leaderboard.stats import CellStat, bootstrap_ci, newest_success, per_item
from iap_bench.leaderboard.table import (
    METRIC_LAYOUT,
    TABLE2_LAYOUT,
    TABLE3_LAYOUT,
    Column,
    ColumnKey,
    Leaderboard,
    MetricColumn,
    latex_escape,
)

__all__ = ["METRIC_LAYOUT", "TABLE2_LAYOUT", "TABLE3_LAYOUT", "CellStat", "Column", "ColumnKey", "Leaderboard",
           "MetricColumn", "PairedResult", "bootstrap_ci", "build_ablation_table", "build_leaderboard",
           "build_leaderboards", "latex_escape", "layout_from_config", "leaderboard_from_store", "newest_success",
           "paired_test", "per_item"]
