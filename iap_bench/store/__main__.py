"""``python -m iap_bench.store merge DEST SRC...`` unions stores from several jobs; ``info DB`` counts rows."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from iap_bench.errors import UsageError


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry; bad use prints one line and returns 2."""
    ap = argparse.ArgumentParser(prog="python -m iap_bench.store", description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("merge", help="copy every row of the SRC stores into DEST")
    m.add_argument("dest")
    m.add_argument("sources", nargs="+")
    i = sub.add_parser("info", help="row counts of a store")
    i.add_argument("db")
    args = ap.parse_args(argv)
    from iap_bench.store.core import ResultStore

    try:
        if args.cmd == "merge":
            for src in args.sources:  # every source is checked before anything is created or merged
                ResultStore.check_mergeable(src)
            dest = ResultStore(args.dest)
            conflicts = 0
            for src in args.sources:
                r = dest.merge_from(src)
                conflicts += len(r.conflicts)
                print(f"{src}: {r.inserted} new rows, {r.replaced} failures replaced by values, "
                      f"{len(r.conflicts)} conflicting values (kept {args.dest}'s)")
                for c in r.conflicts[:20]:
                    print(f"  conflict {c['metric']}/{c['backend']} sample {c['sample_hash'][:12]}: "
                          f"ours {c['ours']:.6g} vs theirs {c['theirs']:.6g}")
            dest.close()
            return 1 if conflicts else 0
        st = ResultStore(args.db, readonly=True)
        for table in ("samples", "generations", "scores", "metric_params", "aggregates", "runs"):
            print(f"{table}: {st.count(table)}")
        return 0
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
