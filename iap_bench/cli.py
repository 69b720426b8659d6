"""`iap-bench` console script: a Hydra app with four jobs (run, evaluate, leaderboard, validate).

The first positional word may name the job (``iap-bench validate benchmark=iap100``); everything else is
standard Hydra: config groups, ``key=value`` overrides, ``-m`` multirun, ``--cfg job``.
Paths in the config are relative to the launch directory, always; shipped data is named with the
``${iap_data:...}`` resolver, which points into the installed package's ``benchmark_data/``.
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf
from rich.console import Console

from iap_bench.errors import IAPBenchError, ManifestError, MissingCheckpointError
from iap_bench.paths import data_path, is_multirun, resolve_path, store_sources
from iap_bench.paths import store_path as store_path_of

JOBS = ("run", "evaluate", "leaderboard", "validate", "weights")
CONF_DIR = str(Path(__file__).resolve().parents[1] / "conf")
TRANSIENT_EXIT = 3  # finished, but some items hit transient errors (not stored; re-run to retry them)


if not OmegaConf.has_resolver("iap_data"):
    OmegaConf.register_new_resolver("iap_data", data_path)


def store_path(cfg: DictConfig) -> Path:
    """Where this job writes (see ``iap_bench.paths.store_path``)."""
    return store_path_of(cfg.get("store"))


def load_benchmark_from_cfg(cfg: DictConfig) -> Any:
    from iap_bench.benchmark.loader import load_benchmark

    return load_benchmark(resolve_path(cfg.benchmark.manifest), resolve_path(cfg.benchmark.get("pack")))


def select_items(cfg: DictConfig, benchmark: Any) -> list:
    """Filter by split, take this shard's items, then apply ``limit``."""
    splits = set(cfg.benchmark.get("splits") or ["single", "multi"])
    items = [i for i in benchmark.items if i.split in splits]
    items = [i for n, i in enumerate(items) if n % int(cfg.shard.count) == int(cfg.shard.index)]
    if cfg.get("limit") is not None:
        items = items[: int(cfg.limit)]
    return items


def build_metrics(cfg: DictConfig) -> list:
    from iap_bench.metrics.base import METRICS, build_metric

    entries = [OmegaConf.to_container(e, resolve=True) if isinstance(e, DictConfig) else e
               for e in cfg.metrics.metrics]
    names = [e if isinstance(e, str) else e["name"] for e in entries]
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        raise IAPBenchError(
            f"metric backend(s) not implemented in this version: {', '.join(unknown)}\n"
            f"  available: {', '.join(sorted(METRICS))}\n"
            "  choose a suite with those only (e.g. metrics=offline) or a custom list:\n"
            "  'metrics.metrics=[wer/offline,vid_sim/offline]'")
    metrics = []
    for entry in entries:
        if isinstance(entry, str):
            metrics.append(build_metric(entry))
        else:
            metrics.append(build_metric(entry["name"], **entry.get("params", {})))
    return metrics


def open_store(cfg: DictConfig) -> Any:
    from iap_bench.store import ResultStore

    return ResultStore(store_path(cfg))


def eval_threads(cfg: DictConfig) -> int:
    """``eval.threads``, or this machine's cores shared among the joblib launcher's parallel jobs."""
    from iap_bench.threads import default_threads

    if cfg.eval.get("threads"):
        return int(cfg.eval.threads)
    jobs = 1
    if is_multirun():
        jobs = int(OmegaConf.select(HydraConfig.get(), "launcher.n_jobs", default=1) or 1)
    return default_threads(jobs)


def write_leaderboard(cfg: DictConfig, store: Any, benchmark: Any, out_dir: Path, console: Console,
                      models: list[str] | None = None) -> dict[str, Path]:
    from iap_bench.leaderboard import build_leaderboard, layout_from_config

    df = store.scores_frame()
    if not df.empty:
        df = df[df["benchmark"] == benchmark.name]
        df = df[df["pack_hash"] == (benchmark.pack_hash or "")]
        if models is not None:
            df = df[df["model"].isin(models)]
    if df.empty:
        console.print("[yellow]no scores in the store for this benchmark and pack yet[/]")
        return {}
    lb = cfg.leaderboard
    from iap_bench.leaderboard.setlevel import set_level_aggregates

    # set-level metrics (FD) over exactly the samples this table counts; cached in the store by set hash
    aggregates = set_level_aggregates(df, label=lb.label, cached=store.aggregates_frame(),
                                      params_info=store.metric_params(),
                                      put=None if store.readonly else store.put_aggregate)
    splits = set(cfg.benchmark.get("splits") or ["single", "multi"])
    n_items = {sp: sum(1 for i in benchmark.items if i.split == sp) for sp in ("single", "multi") if sp in splits}
    board = build_leaderboard(
        df, benchmark=benchmark.name, pack_hash=benchmark.pack_hash or "", aggregates=aggregates,
        layout=layout_from_config(OmegaConf.to_container(lb.layout, resolve=True)), label=lb.label,
        label_name=lb.label_name, include_extra=lb.include_extra, ci=lb.ci, n_boot=int(lb.n_boot),
        seed=int(lb.seed), decimals=int(lb.decimals), items=n_items,
        common_items=bool(lb.get("common_items", False)),
        incomplete=sorted(store.unfinished_labels(benchmark.name)), params_info=store.metric_params(),
        title=f"{benchmark.name} (pack {(benchmark.pack_hash or '-')[:12]})")
    board.print_rich(console)
    paths = board.write_all(out_dir / "leaderboard", stem=lb.stem)
    console.print("tables written: " + ", ".join(str(p) for p in paths.values()))
    return paths


def job_validate(cfg: DictConfig, console: Console) -> int:
    from iap_bench.benchmark.validate import validate_report

    report = validate_report(resolve_path(cfg.benchmark.manifest), resolve_path(cfg.benchmark.get("pack")))
    report.print_rich(console)  # each problem once, unbound slots (no pack given), one summary line
    return report.exit_code


def _generator_from_cfg(cfg: DictConfig) -> tuple[Any, str]:
    from iap_bench.generators.base import build_generator, default_label

    gen_cfg = cfg.generator
    params = OmegaConf.to_container(gen_cfg.get("params", {}), resolve=True) or {}
    if cfg.job == "evaluate":
        if not cfg.get("samples_dir"):
            raise IAPBenchError("`evaluate` needs samples_dir=/path/to/folder (files named <item_id>.mp4)")
        if not cfg.get("label"):
            raise IAPBenchError("`evaluate` needs label=NAME: the leaderboard row these samples belong to")
        params = dict(params) if gen_cfg.name == "precomputed" else {}
        params.pop("label", None)
        params["samples_dir"] = str(resolve_path(cfg.samples_dir))
        return build_generator("precomputed", **params, label=str(cfg.label)), str(cfg.label)
    gen = build_generator(gen_cfg.name, **params)
    label = cfg.get("label") or gen_cfg.get("label") or getattr(gen, "label", None)
    return gen, str(label or default_label(gen_cfg.name, gen.describe()))


def job_run(cfg: DictConfig, console: Console) -> int:
    from iap_bench.runner import Runner
    from iap_bench.store import default_env
    from iap_bench.threads import set_threads

    t0 = time.perf_counter()
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    benchmark = load_benchmark_from_cfg(cfg)
    if benchmark.unbound_slots:
        from iap_bench.benchmark.pack import unbound_report

        console.print(unbound_report(benchmark))
        return 2
    items = select_items(cfg, benchmark)
    generator, label = _generator_from_cfg(cfg)
    metrics = build_metrics(cfg)
    threads = set_threads(eval_threads(cfg))
    from iap_bench.weights_report import require_weights

    require_weights(metrics, allow_mismatch=bool(cfg.eval.get("allow_checksum_mismatch")))
    store = open_store(cfg)  # only now: a job that fails its checks writes nothing
    run_id = time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:8]
    store.add_run(run_id, OmegaConf.to_container(cfg, resolve=True), default_env(), label=label,
                  benchmark=benchmark.name, pack_hash=benchmark.pack_hash)
    console.print(f"[bold]{benchmark.name}[/] ({len(items)} items, pack {(benchmark.pack_hash or '-')[:12]}) "
                  f"-> [bold]{label}[/] ({generator.name}) -> {', '.join(m.name for m in metrics)}")
    runner = Runner(benchmark, store, run_dir, console=console, seed=int(cfg.seed),
                    chunk_size=int(cfg.eval.chunk_size), decode_workers=int(cfg.eval.decode_workers),
                    device=str(cfg.eval.device), threads=threads)
    refs = runner.generate(generator, label, items, run_id)
    runner.evaluate(refs, metrics, run_id)
    s = runner.summary
    if not s.transient:
        store.finish_run(run_id)
    store.checkpoint()
    models = None if cfg.leaderboard.all_models else [label]
    write_leaderboard(cfg, store, benchmark, run_dir, console, models=models)
    s.timings["total_s"] = time.perf_counter() - t0
    summary = {"run_id": run_id, "label": label, "generated": s.generated, "reused": s.reused,
               "generation_failures": s.gen_failed, "changed_on_disk": s.changed_on_disk, "scored": s.scored,
               "skipped_scores": s.skipped_scores, "score_failures": s.score_failures,
               "penalised": s.penalised, "transient_errors": s.transient,
               "decoded_samples": s.decoded_samples, "decodes": s.decodes,
               "timings": {k: round(v, 2) for k, v in s.timings.items()}, "store": str(store.path)}
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    store.close()
    console.print(f"samples: {run_dir / 'samples'}   store: {store.path}   "
                  f"generated {s.generated}, reused {s.reused}, failed {s.gen_failed}; "
                  f"scores new {s.scored} (failures {s.score_failures}, at worst value {s.penalised}), "
                  f"already stored {s.skipped_scores}; {s.timings['total_s']:.1f} s")
    if s.transient:
        console.print(f"[yellow]{len(s.transient)} transient error(s), not stored; re-run to retry them:[/]")
        for msg in s.transient[:10]:
            console.print(f"  {msg}", markup=False)
        return TRANSIENT_EXIT
    return 0


def job_weights(cfg: DictConfig, console: Console) -> int:
    """Print every checkpoint the selected metrics need: where looked, found or missing, pin, size."""
    from iap_bench.weights_report import print_table, weight_rows

    rows = weight_rows(build_metrics(cfg))
    print_table(rows, console)
    return 0 if all(r.ok for r in rows) else 1


def apply_weight_settings(cfg: DictConfig) -> None:
    """`weights.root` and `eval.allow_checksum_mismatch` reach every WeightSpec (recorded in the run config)."""
    from iap_bench.weights import ALLOW_ENV, ROOT_ENV

    root = OmegaConf.select(cfg, "weights.root")
    if root:
        os.environ[ROOT_ENV] = str(resolve_path(str(root)))
    if OmegaConf.select(cfg, "eval.allow_checksum_mismatch"):
        os.environ[ALLOW_ENV] = "1"


def job_leaderboard(cfg: DictConfig, console: Console) -> int:
    from iap_bench.store import open_stores

    benchmark = load_benchmark_from_cfg(cfg)
    sources = store_sources(cfg.get("store"))
    store, report = open_stores(sources)
    if len(sources) > 1:
        console.print(f"read {len(sources)} stores as one")
    for c in report.conflicts:
        console.print(f"[yellow]conflict[/] {c['metric']}/{c['backend']} sample {c['sample_hash'][:12]}: "
                      f"{c['ours']:.6g} vs {c['theirs']:.6g} (first store's value shown)")
    write_leaderboard(cfg, store, benchmark, Path(HydraConfig.get().runtime.output_dir), console)
    return 0


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="config")
def app(cfg: DictConfig) -> int:
    """Hydra entry: dispatch to the job named by ``job``; user errors print one clear message."""
    console = Console(width=None if sys.stdout.isatty() else 160)
    err = Console(stderr=True, width=None if sys.stderr.isatty() else 200)
    jobs = {"run": job_run, "evaluate": job_run, "validate": job_validate, "leaderboard": job_leaderboard,
            "weights": job_weights}
    code: int
    if cfg.job not in jobs:
        err.print(f"error: unknown job {cfg.job!r}; choose one of {', '.join(JOBS)}", markup=False,
                  highlight=False, soft_wrap=True)
        code = 2
    else:
        try:
            from iap_bench.preflight import check_config

            check_config(cfg)
            apply_weight_settings(cfg)
            code = jobs[cfg.job](cfg, console)
        except (MissingCheckpointError, ManifestError, IAPBenchError) as e:
            err.print(f"error: {e}", style="red", markup=False, highlight=False, soft_wrap=True)
            code = 2
        except OSError as e:  # an unusable path the checks could not foresee: one line, with the path
            err.print(f"error: {e.strerror or e}: {e.filename or ''}".rstrip(": "), style="red", markup=False,
                      highlight=False, soft_wrap=True)
            code = 2
    if code and not is_multirun():
        sys.exit(code)
    return code


def main() -> None:
    """Console script: turn a leading job word into ``job=<word>`` and hand over to Hydra."""
    if len(sys.argv) > 1 and sys.argv[1] in JOBS:
        sys.argv = [sys.argv[0], *sys.argv[2:], f"job={sys.argv[1]}"]
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    app()


if __name__ == "__main__":
    main()
