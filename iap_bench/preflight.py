"""Checks of a composed config before any work starts: bad use gets one line and exit code 2.

A job that fails these checks writes nothing of its own (no store, samples or tables; Hydra has only written
its run folder). Every check is cheap: no model is loaded and no media decoded. Names come from the lazy
registries; parameters are checked against the constructor of the one generator and the metrics chosen
(imported here because the job imports them next anyway).
"""

from __future__ import annotations

import difflib
import glob
import inspect
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from iap_bench.errors import UsageError
from iap_bench.paths import STORE_NAME, launch_dir, resolve_path, store_entries, store_path, store_sources

WRITE_JOBS = ("run", "evaluate")
MISSING = "???"
MESSAGE_WIDTH = 190  # a message this long still fits on one line of the cli's 200-column error console


# ---- small helpers ---------------------------------------------------------------------------------------
def _fail(message: str) -> UsageError:
    """A UsageError whose message is exactly one line (whitespace runs collapsed)."""
    return UsageError(" ".join(str(message).split()))


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _get(cfg: Any, key: str, default: Any = None) -> Any:
    """``cfg.a.b`` resolved to a plain value; a bad interpolation or ``???`` becomes a UsageError."""
    from omegaconf import DictConfig, ListConfig, OmegaConf
    from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

    try:
        value = OmegaConf.select(cfg, key, default=default, throw_on_missing=True)
    except MissingMandatoryValue:
        raise _fail(f"{key} is required but not set (give {key}=...)") from None
    except OmegaConfBaseException as e:
        raise _fail(f"cannot read {key}: {_first_line(e)}") from None
    if isinstance(value, DictConfig | ListConfig):
        try:
            return OmegaConf.to_container(value, resolve=True)
        except OmegaConfBaseException as e:
            raise _fail(f"cannot read {key}: {_first_line(e)}") from None
    return value


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int_at_least(cfg: Any, key: str, low: int, nullable: bool = False, what: str = "") -> int | None:
    value = _get(cfg, key)
    if value is None and nullable:
        return None
    if not _is_int(value) or value < low:
        allowed = f"null or an integer >= {low}" if nullable else f"an integer >= {low}"
        raise _fail(f"{key} must be {allowed}{what}, got {value!r}")
    return int(value)


def _resolve(p: Any) -> Path:
    return resolve_path(str(p))  # type: ignore[return-value]


def _where(raw: Any, key: str = "") -> str:
    """`` (key)``, or `` (key; relative to the launch directory X)`` for a relative config path."""
    rel = not Path(os.path.expanduser(str(raw))).is_absolute()
    parts = [key] if key else []
    if rel:
        parts.append(f"relative paths are taken from the launch directory {launch_dir()}")
    return f" ({'; '.join(parts)})" if parts else ""


def _listing(names: list[str], budget: int) -> str:
    """``a, b, c`` within ``budget`` characters, else the first ones and ``(+N more)``: messages stay one line."""
    text = ", ".join(names) or "(none)"
    if len(text) <= budget:
        return text
    shown: list[str] = []
    for n in names:
        if len(", ".join([*shown, n])) > budget - 12:
            break
        shown.append(n)
    return ", ".join(shown) + f", ... (+{len(names) - len(shown)} more)"


def _close(name: str, choices: list[str]) -> str:
    match = difflib.get_close_matches(name, choices, n=1)
    return f" (did you mean {match[0]!r}?)" if match else ""


# ---- adapter signatures ----------------------------------------------------------------------------------
@dataclass
class Signature:
    """Keyword parameters a constructor accepts: names, the required ones, and whether it takes **kwargs."""

    names: list[str] = field(default_factory=list)
    required: list[str] = field(default_factory=list)
    any_keyword: bool = False
    known: bool = True  # False: parameters could not be determined (no check)


def signature_of(cls: Any) -> Signature:
    """Constructor parameters of an imported class (``self`` and positional-only ones left out)."""
    try:
        sig = inspect.signature(cls.__init__)
    except (TypeError, ValueError):
        return Signature(known=False)
    out = Signature()
    for k, (name, p) in enumerate(sig.parameters.items()):
        if k == 0 and name in ("self", "cls"):
            continue
        if p.kind is inspect.Parameter.VAR_KEYWORD:
            out.any_keyword = True
        elif p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY):
            out.names.append(name)
            if p.default is inspect.Parameter.empty:
                out.required.append(name)
    return out


def generator_signature(name: str) -> Signature:
    """Constructor signature of one registered generator (imports only that adapter: the job needs it next)."""
    from iap_bench.generators.base import GENERATORS

    return signature_of(GENERATORS[name])


def generator_names() -> list[str]:
    from iap_bench.generators.base import GENERATORS

    return GENERATORS.names()


def metric_signatures() -> dict[str, Signature]:
    """Every metric backend name -> constructor signature (metric modules are light to import)."""
    from iap_bench.metrics.base import METRICS

    out: dict[str, Signature] = {}
    for name in METRICS.names():
        try:
            out[name] = signature_of(METRICS[name])
        except ImportError:  # its module cannot be imported here: leave its parameters to build time
            out[name] = Signature(known=False)
    return out


def _check_params(kind: str, name: str, params: Any, sig: Signature, key: str,
                  ignore: tuple[str, ...] = ()) -> None:
    """Unknown or missing constructor parameters of a generator / metric: one line naming them."""
    if params is None:
        params = {}
    if not isinstance(params, Mapping):
        raise _fail(f"{key} must be a mapping of parameter: value, got {params!r}")
    if not sig.known:
        return
    accepted = sorted(sig.names)
    if not sig.any_keyword:
        unknown = [k for k in params if k not in sig.names and k not in ignore]
        if unknown:
            k = str(unknown[0])
            head = f"{kind} {name}: unknown parameter {k!r} ({key}.{k}){_close(k, accepted)}; accepted: "
            raise _fail(head + _listing(accepted, max(60, MESSAGE_WIDTH - len(head))))
    for k in sig.required:
        if k in ignore:
            continue
        if k not in params or params[k] is None or params[k] == MISSING:
            raise _fail(f"{kind} {name} needs {key}.{k}")


# ---- the checks ------------------------------------------------------------------------------------------
def check_numbers(cfg: Any) -> None:
    """seed, limit, shard, eval sizes: the right type and range."""
    seed = _get(cfg, "seed")
    if not _is_int(seed) or seed < 0:
        raise _fail(f"seed must be an integer >= 0, got {seed!r}")
    _int_at_least(cfg, "limit", 1, nullable=True, what=" (the number of items to score; null = all)")
    count = _int_at_least(cfg, "shard.count", 1, what=" (the number of shards)")
    index = _get(cfg, "shard.index")
    if not _is_int(index) or not 0 <= index < count:
        raise _fail(f"shard.index must be an integer in 0..{count - 1} for shard.count={count}, got {index!r}")
    _int_at_least(cfg, "eval.chunk_size", 1, what=" (samples decoded together)")
    _int_at_least(cfg, "eval.decode_workers", 1, what=" (decoding threads)")
    _int_at_least(cfg, "eval.threads", 1, nullable=True, what=" (null = this machine's cores)")


def check_benchmark_paths(cfg: Any) -> None:
    """The manifest file and (if given) the media pack folder exist."""
    manifest = _get(cfg, "benchmark.manifest")
    if manifest in (None, ""):
        raise _fail("benchmark.manifest is not set: choose a benchmark (benchmark=iap-mini or benchmark=iap100) "
                    "or give benchmark.manifest=PATH")
    path = _resolve(manifest)
    if not path.is_file():
        what = "is a folder, not a manifest file" if path.is_dir() else "does not exist"
        raise _fail(f"benchmark manifest {path} {what}{_where(manifest, 'benchmark.manifest')}")
    pack = _get(cfg, "benchmark.pack")
    if pack not in (None, ""):
        path = _resolve(pack)
        if not path.is_dir():
            what = "is a file, not a folder" if path.exists() else "does not exist"
            raise _fail(f"media pack folder {path} {what}{_where(pack, 'benchmark.pack')}")


def _samples_dir(raw: Any, key: str) -> Path:
    path = _resolve(raw)
    if not path.is_dir():
        what = "is a file, not a folder" if path.exists() else "does not exist"
        raise _fail(f"samples folder {path} {what}{_where(raw, key)}")
    return path


def check_generator(cfg: Any) -> None:
    """``run``: a registered generator whose params its constructor accepts; ``evaluate``: samples_dir, label."""
    job = _get(cfg, "job")
    name = _get(cfg, "generator.name")
    params = _get(cfg, "generator.params") or {}
    if job == "evaluate":
        samples = _get(cfg, "samples_dir")
        if samples in (None, ""):
            raise _fail("`evaluate` needs samples_dir=/path/to/folder (one <item_id>.mp4 per item)")
        _samples_dir(samples, "samples_dir")
        label = _get(cfg, "label")
        if label is None or not str(label).strip():
            raise _fail("`evaluate` needs label=NAME: the leaderboard row name these samples are scored under")
        if name != "precomputed":
            return  # the cli scores the folder with the precomputed adapter and its defaults
        sig = generator_signature("precomputed")
        _check_params("generator", "precomputed", params, sig, "generator.params", ignore=("samples_dir", "label"))
        return
    names = generator_names()
    if name in (None, ""):
        raise _fail(f"generator.name is not set; choose one with generator=NAME: {', '.join(names)}")
    if name not in names:
        raise _fail(f"unknown generator {str(name)!r} (generator.name){_close(str(name), names)}; "
                    f"registered: {', '.join(names)}")
    _check_params("generator", name, params, generator_signature(name), "generator.params")
    if name == "precomputed":
        _samples_dir(params.get("samples_dir"), "generator.params.samples_dir")


def check_metrics(cfg: Any) -> None:
    """Every entry of ``metrics.metrics`` names an implemented backend with parameters it accepts."""
    entries = _get(cfg, "metrics.metrics")
    if entries is None:
        entries = []
    if not isinstance(entries, list):
        raise _fail(f"metrics.metrics must be a list of metric names, got {entries!r}")
    sigs = metric_signatures()
    parsed: list[tuple[str, dict[str, Any], int]] = []
    for k, entry in enumerate(entries):
        if isinstance(entry, str):
            parsed.append((entry, {}, k))
            continue
        if not isinstance(entry, Mapping) or not isinstance(entry.get("name"), str):
            raise _fail(f"metrics.metrics[{k}] must be a metric name or {{name: ..., params: {{...}}}}, got {entry!r}")
        extra = sorted(set(entry) - {"name", "params"})
        if extra:
            raise _fail(f"metrics.metrics[{k}] ({entry['name']}) has unknown key {extra[0]!r}; "
                        "an entry has only name and params: {name: ..., params: {...}}")
        parsed.append((entry["name"], entry.get("params") or {}, k))
    unknown = [n for n, _, _ in parsed if n not in sigs]
    if unknown:
        raise _fail(f"metric backend(s) not implemented in this version: {_listing(list(dict.fromkeys(unknown)), 60)}; "
                    f"available: {', '.join(sorted(sigs))} (choose metrics=offline or a list of those)")
    for name, params, k in parsed:
        _check_params("metric", name, params, sigs[name], f"metrics.metrics[{k}].params")


def write_store_path(cfg: Any) -> Path:
    """The one store a run/evaluate job writes (the CLI's own choice, ``iap_bench.paths.store_path``)."""
    try:
        return store_path(_get(cfg, "store"))
    except UsageError as e:
        raise _fail(str(e)) from None


def check_writable_store(cfg: Any) -> None:
    """The store file can be opened for writing, or its folder can be created and written to."""
    path = write_store_path(cfg)
    if path.exists():
        if path.is_dir():
            raise _fail(f"store {path} is a folder; give a file path, e.g. store={path / STORE_NAME}")
        if not os.access(path, os.R_OK | os.W_OK):
            raise _fail(f"store {path} is not writable")
    folder = path.parent
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise _fail(f"cannot create the store's folder {folder}: {existing} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        verb = "write the store" if existing == folder else "create the store's folder"
        raise _fail(f"cannot {verb} {path}: folder {existing} is not writable")


def check_readable_stores(cfg: Any) -> None:
    """``leaderboard``: every store (a path, a glob or a list of them) exists; nothing is created."""
    raw = _get(cfg, "store")
    if raw in (None, ""):
        default = store_sources(None)[0]
        if not default.is_file():
            raise _fail(f"no result store at {default}: run a job first, or give store=PATH")
        return
    entries = raw if isinstance(raw, list) else [raw]
    if not entries:
        raise _fail("store=[] names no store; give store=PATH, a glob or a list of them")
    for entry, resolved in zip(entries, store_entries(entries)):
        path = Path(resolved)
        if glob.has_magic(resolved):
            if not any(Path(m).is_file() for m in glob.glob(resolved)):
                raise _fail(f"store pattern {path} matches no file{_where(entry, 'store')}")
        elif not path.is_file():
            what = "is a folder, not a store file" if path.is_dir() else "does not exist"
            raise _fail(f"store {path} {what}{_where(entry, 'store')}")
        elif not os.access(path, os.R_OK):
            raise _fail(f"store {path} is not readable")


def check_config(cfg: Any) -> None:
    """Raise UsageError for the first bad value of ``cfg`` (a Hydra DictConfig of the `iap-bench` app)."""
    job = _get(cfg, "job")
    check_numbers(cfg)
    if job in WRITE_JOBS:
        check_generator(cfg)
    if job in (*WRITE_JOBS, "weights"):
        check_metrics(cfg)
    check_benchmark_paths(cfg)
    if job in WRITE_JOBS:
        check_writable_store(cfg)
    elif job == "leaderboard":
        check_readable_stores(cfg)
