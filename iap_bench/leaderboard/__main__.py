"""``python -m iap_bench.leaderboard STORE [STORE...]``: print and write the leaderboard(s), one per pack."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from iap_bench.errors import UsageError


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry; bad use prints one line and returns 2."""
    from iap_bench.leaderboard.build import build_leaderboards
    from iap_bench.leaderboard.table import TABLE3_LAYOUT
    from iap_bench.store import open_stores

    ap = argparse.ArgumentParser(prog="python -m iap_bench.leaderboard", description=__doc__)
    ap.add_argument("stores", nargs="+", help="SQLite result store(s); several are read as one")
    ap.add_argument("--out", default=None, help="folder for CSV/Markdown/LaTeX files")
    ap.add_argument("--pack", default=None, help="only this media pack hash")
    ap.add_argument("--ablation", action="store_true", help="Table-3 layout instead of Table 2")
    ap.add_argument("--ci", action="store_true", help="bootstrap 95%% CIs in the long CSV")
    ap.add_argument("--common-items", action="store_true", help="compare rows on the items all of them have")
    args = ap.parse_args(argv)
    try:
        store, report = open_stores(args.stores)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for c in report.conflicts:
        print(f"conflict: {c['metric']}/{c['backend']} sample {c['sample_hash'][:12]}: {c['ours']} vs {c['theirs']}")
    from iap_bench.leaderboard.setlevel import set_level_aggregates

    df = store.scores_frame()
    if args.pack is not None:
        df = df[df["pack_hash"] == args.pack]
    agg = set_level_aggregates(df, cached=store.aggregates_frame(), params_info=store.metric_params())
    kw: dict[str, Any] = {"aggregates": agg, "ci": args.ci, "common_items": args.common_items,
                          "incomplete": sorted(store.unfinished_labels()), "params_info": store.metric_params()}
    if args.ablation:
        kw.update(layout=TABLE3_LAYOUT, include_extra=False)
    for n, board in enumerate(build_leaderboards(df, **kw)):
        board.print_rich()
        if args.out:
            for kind, path in board.write_all(args.out, stem=f"leaderboard_{n}" if n else "leaderboard").items():
                print(f"{kind}: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
