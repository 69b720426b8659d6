"""Load a benchmark: parse the manifest, check its structure, bind a media pack (manifest -> validate -> pack)."""

from __future__ import annotations

from pathlib import Path

from iap_bench.benchmark.manifest import read_manifest
from iap_bench.benchmark.pack import bind
from iap_bench.benchmark.problems import errors_of
from iap_bench.benchmark.schema import Benchmark
from iap_bench.benchmark.validate import check_structure
from iap_bench.errors import ManifestError


def load_manifest(path: str | Path) -> Benchmark:
    """Load a manifest YAML into an unbound Benchmark; raises ManifestError listing every error found."""
    bench, raw, problems = read_manifest(path)
    if bench is not None and raw is not None:
        problems = problems + check_structure(bench, raw)
    errors = errors_of(problems)
    if errors or bench is None:
        raise ManifestError([str(p) for p in errors] or [f"cannot load manifest {path}"])
    return bench


def load_benchmark(manifest_path: str | Path, pack_dir: str | Path | None = None) -> Benchmark:
    """Load a manifest and, when a media pack is given, bind its identity slots (pack_hash set iff fully bound)."""
    bench = load_manifest(manifest_path)
    if pack_dir is None:
        return bench
    return bind(bench, Path(pack_dir))
