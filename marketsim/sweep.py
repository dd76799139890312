"""Parameter sweeps: one scenario run over a grid of overrides times a list of seeds, in parallel.

Each point of the grid (one value per key, a ``key=value`` scenario override as in
``marketsim run --set``) is run once per seed; every run becomes one row of
``<out_dir>/results.parquet``: the grid parameters (one column per key), ``seed``, ``run_id``,
``status`` ("ok" / "failed"), ``error`` (and ``traceback``) of a failed run, ``wall_seconds``
and the run's statistics (:func:`marketsim.summary.summarize`, flattened by
:func:`flatten_summary`), plus the stylized facts of :func:`analysis.stylized.stylized_facts`
when that package is importable.

Backends: ``"local"`` (a ``ProcessPoolExecutor`` with the spawn start method), ``"ray"`` (Ray
tasks on a local instance or a cluster, see ``docs/distributed.md``) and ``"serial"`` (in this
process: for debugging, profiling and tests).

Resumable: the run id is a hash of the base scenario, the parameters, the seed and ``steps``;
runs whose id already has an ``ok`` row are skipped (failed ones are retried unless
``retry_failed=False``). Each finished run is appended at once to ``results.jsonl`` (flushed
and fsync'ed), which is folded into ``results.parquet`` every ``flush_every_s`` seconds and at
the end, so a crash loses no finished run. A failing run is recorded and the sweep goes on.

Result columns (besides the bookkeeping ones above; ``S`` an asset symbol, ``T`` an agent
type, ``F`` a stylized fact):

* run level: scenario, scenario_hash (of the run's scenario, overrides applied), base_hash,
  steps, days, orders, trades, volume, liquidations, fees_collected, sim_wall_seconds (time in
  ``model.run``), steps_per_second, ``rejects.<reason>``;
* ``asset.S.<stat>``: every per-asset statistic of the summary (return, volatility, spreads,
  volume, VWAP, ...);
* ``type.T.<stat>``: P&L, fees and ``type.T.final_position_mean.S`` per agent type;
* ``fact.F`` (the value) and ``fact.F.passed``.

Example:
    >>> df = run_sweep("scenarios/quickstart.toml",
    ...                {"agents.noise.count": [50, 100]}, seeds=range(4),
    ...                out_dir="sweeps/noise", steps=3600)            # doctest: +SKIP
    >>> df.groupby("agents.noise.count")["asset.ABC.spread_mean_ticks"].mean()  # doctest: +SKIP
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import json
import logging
import math
import multiprocessing
import os
import shutil
import socket
import time
import tomllib
import traceback
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from marketsim import __version__
from marketsim.errors import ConfigError
from marketsim.scenario import Scenario, apply_overrides, load_scenario

try:  # POSIX advisory lock: released by the OS if the process dies
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

logger = logging.getLogger(__name__)

__all__ = [
    "BACKENDS",
    "JOURNAL_FILE",
    "RESULTS_FILE",
    "SPEC_FILE",
    "RunSpec",
    "expand_grid",
    "flatten_summary",
    "format_value",
    "load_results",
    "make_run_id",
    "parse_grid_item",
    "parse_seeds",
    "parse_value",
    "run_one",
    "run_sweep",
]

#: Known ``backend`` values.
BACKENDS = ("local", "ray", "serial")
#: Consolidated results table in the output folder.
RESULTS_FILE = "results.parquet"
#: Append-only log of runs finished since the last consolidation (one JSON object a line).
JOURNAL_FILE = "results.jsonl"
#: Description of the last sweep written into the folder (scenario, grid, seeds, steps).
SPEC_FILE = "sweep.json"
#: Lock file: one sweep at a time per output folder.
LOCK_FILE = ".sweep.lock"
#: Sub-folder of per-run logs (``keep_logs=True``): ``runs/<run_id>/``.
RUNS_DIR = "runs"

_TRACEBACK_CHARS = 4000


# ---------------------------------------------------------------------------- parsing
def parse_value(text: str) -> Any:
    """A TOML value (``7``, ``1.5``, ``true``, ``[1, 2]``, ``"x"``) or the text itself.

    The same rule as scenario overrides (:func:`marketsim.scenario.apply_overrides`). O(len).
    """
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def format_value(value: Any) -> str:
    """Override text of a Python value; :func:`parse_value` of it gives the value back. O(size).

    Raises:
        ConfigError: a type a scenario value cannot have (None, objects).
    """
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        v = float(value)
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, dt.date | dt.time):  # datetime is a date
        return value.isoformat()
    if isinstance(value, Mapping):
        return (
            "{ "
            + ", ".join(f"{json.dumps(str(k))} = {format_value(v)}" for k, v in value.items())
            + " }"
        )
    if isinstance(value, list | tuple):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    raise ConfigError(
        f"grid value {value!r} of type {type(value).__name__}: must be a bool, number, string, "
        "date/time, list or dict (a TOML value)"
    )


def _split_top(text: str) -> list[str]:
    """Split at commas outside brackets, braces and quotes (``[1,2],3`` -> 2 items). O(len)."""
    parts, depth, quote, start = [], 0, "", 0
    for i, ch in enumerate(text):
        if quote:
            if ch == quote and text[i - 1] != "\\":
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts]


def parse_grid_item(text: str) -> tuple[str, list[Any]]:
    """Parse ``key=v1,v2,...`` (the ``--grid`` syntax) into ``(key, [values])``. O(len).

    Values are TOML values or bare strings (:func:`parse_value`); commas inside ``[...]``,
    ``{...}`` or quotes do not split. Duplicate values are dropped (first kept).

    Raises:
        ConfigError: no ``=``, an empty key or an empty value.

    Example:
        >>> parse_grid_item("agents.noise.count=10,20")
        ('agents.noise.count', [10, 20])
    """
    key, sep, rest = str(text).partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(
            f"grid item {text!r}: must be KEY=V1,V2,... (e.g. agents.noise.count=10,20)"
        )
    raw = _split_top(rest)
    if any(not r for r in raw):
        raise ConfigError(
            f"grid item {text!r}: empty value in {rest!r}; give comma-separated values "
            '(quote a value that is an empty string: "")'
        )
    values: list[Any] = []
    seen: set[str] = set()
    for r in raw:
        v = parse_value(r)
        canon = _canonical(v)
        if canon not in seen:
            seen.add(canon)
            values.append(v)
    return key, values


def parse_seeds(text: str | int | Iterable[int]) -> list[int]:
    """Seeds from ``"0-31"``, ``"0,3,7"``, ``"0-3,10"``, an int or an iterable. O(seeds).

    Ranges are inclusive; duplicates are dropped, the order kept.

    Raises:
        ConfigError: a malformed item, a negative seed or a descending range.

    Example:
        >>> parse_seeds("0-2,7")
        [0, 1, 2, 7]
    """
    if isinstance(text, int | np.integer):
        items: list[int] = [int(text)]
    elif isinstance(text, str):
        items = []
        for part in (p.strip() for p in text.split(",")):
            lo, sep, hi = part.partition("-")
            try:
                a, b = (int(lo), int(hi)) if sep else (int(part), int(part))
            except ValueError:
                raise ConfigError(
                    f"seeds {text!r}: item {part!r} is not an integer or a range A-B "
                    "(allowed: 0-31, 0,3,7 or 0-3,10; seeds are >= 0)"
                ) from None
            if b < a:
                raise ConfigError(f"seeds {text!r}: range {part!r} is descending; write {b}-{a}")
            items.extend(range(a, b + 1))
    else:
        items = []
        for s in text:
            if isinstance(s, bool) or not isinstance(s, int | np.integer):
                raise ConfigError(f"seeds: {s!r} is not an integer; seeds are integers >= 0")
            items.append(int(s))
    bad = [s for s in items if s < 0]
    if bad:
        raise ConfigError(f"seeds: {bad[0]} is negative; seeds must be >= 0")
    if not items:
        raise ConfigError("seeds: empty; give at least one seed (e.g. 0-7)")
    return list(dict.fromkeys(items))


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str, separators=(",", ":"))


# ---------------------------------------------------------------------------- run specs
@dataclass(frozen=True)
class RunSpec:
    """One run of a sweep.

    Attributes:
        run_id: 16 hex digits of :func:`make_run_id`.
        params: Grid key -> value of this run.
        seed: Model seed.
        overrides: The grid's ``key=value`` overrides of this run.
    """

    run_id: str
    params: dict[str, Any]
    seed: int
    overrides: tuple[str, ...]


def make_run_id(base_hash: str, params: Mapping[str, Any], seed: int, steps: int | None) -> str:
    """Hash of (base scenario hash, parameters, seed, steps): 16 hex digits. O(params)."""
    text = _canonical(
        {"base": base_hash, "params": dict(params), "seed": int(seed), "steps": steps}
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def expand_grid(
    grid: Mapping[str, Sequence[Any]],
    seeds: Sequence[int],
    base_hash: str,
    steps: int | None = None,
) -> list[RunSpec]:
    """Every (grid point, seed) in order: the last key varies fastest, seeds fastest of all.

    Complexity: O(product of the value counts x seeds).
    """
    keys = list(grid)
    out: list[RunSpec] = []
    seen: set[str] = set()
    for combo in itertools.product(*(grid[k] for k in keys)):
        params = dict(zip(keys, combo, strict=True))
        grid_ov = tuple(f"{k}={format_value(v)}" for k, v in params.items())
        for seed in seeds:
            rid = make_run_id(base_hash, params, seed, steps)
            if rid in seen:
                continue
            seen.add(rid)
            out.append(RunSpec(rid, params, int(seed), grid_ov))
    return out


# ---------------------------------------------------------------------------- one run
def flatten_summary(summary: Mapping[str, Any]) -> dict[str, Any]:
    """One flat row of a :func:`marketsim.summary.summarize` dict (see the module docstring).

    ``wall_seconds`` becomes ``sim_wall_seconds``; ``seed`` is left out (the sweep has it).
    Asset and agent-type statistics the summary leaves undefined (``None`` in its JSON form,
    e.g. the P&L spread of a single agent) are NaN, so their columns stay numeric whichever
    rows reach ``results.parquet`` first.

    Complexity: O(assets x stats + types x stats).
    """
    out: dict[str, Any] = {}
    for k, v in summary.items():
        if k == "seed":
            continue
        if k == "wall_seconds":
            out["sim_wall_seconds"] = v
        elif k == "rejects":
            for reason, n in (v or {}).items():
                out[f"rejects.{reason}"] = n
        elif k == "assets":
            for sym, stats in (v or {}).items():
                for sk, sv in stats.items():
                    if sk != "symbol":
                        out[f"asset.{sym}.{sk}"] = math.nan if sv is None else sv
        elif k == "agent_types":
            for typ, stats in (v or {}).items():
                for sk, sv in stats.items():
                    if sk == "agent_type":
                        continue
                    if isinstance(sv, Mapping):
                        for sub, x in sv.items():
                            out[f"type.{typ}.{sk}.{sub}"] = math.nan if x is None else x
                    else:
                        out[f"type.{typ}.{sk}"] = math.nan if sv is None else sv
        elif not isinstance(v, Mapping | list | tuple):
            out[k] = v
    return out


def _final_snapshot(model: Any) -> None:
    """Record accounts at the last step run unless the model's schedule already did."""
    t = model.t - 1
    if model.recorder is None or t < 0:
        return
    if (
        t % model.scenario.simulation.record_every == 0
        or (t + 1) % model.session.steps_per_day == 0
    ):
        return
    model.record_accounts(t)


def _plain(df: pd.DataFrame) -> pd.DataFrame:
    """Categorical columns as plain strings (what :func:`analysis.io.load_run` returns)."""
    for c in df.columns:
        if isinstance(df[c].dtype, pd.CategoricalDtype):
            df[c] = df[c].astype(str)
    return df


def _facts(model: Any, summary: Mapping[str, Any], kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """``fact.*`` columns from :func:`analysis.stylized.stylized_facts`, if importable."""
    try:
        from analysis.io import Run
        from analysis.stylized import stylized_facts
    except ImportError as exc:
        logger.debug("stylized facts skipped: %s", exc)
        return {}
    try:
        rec = model.recorder
        run = Run(
            trades=_plain(model.trades()),
            quotes=_plain(model.quotes()),
            accounts=_plain(rec.frame("accounts")),
            positions=_plain(rec.frame("positions")),
            summary=dict(summary),
        )
        table = stylized_facts(run, **kwargs)
    except Exception as exc:  # facts are extras: never fail the run over them
        logger.warning("stylized facts failed: %s: %s", type(exc).__name__, exc)
        return {"facts_error": f"{type(exc).__name__}: {exc}"}
    out: dict[str, Any] = {}
    for name, value, passed in zip(table["name"], table["value"], table["passed"], strict=True):
        out[f"fact.{name}"] = float(value)
        out[f"fact.{name}.passed"] = bool(passed)
    return out


def run_one(task: Mapping[str, Any], scenario: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Run one sweep task; never raises for a failing run (the worker entry point).

    Args:
        task: ``run_id``, ``seed``, ``overrides`` (list of ``key=value``), ``steps`` (or None),
            ``facts`` (bool), ``facts_kwargs`` (dict), ``run_dir`` (str or None: in-memory
            recording) and, unless given separately, ``scenario`` (a scenario dict).
        scenario: The base scenario dict (Ray passes it once for all tasks).

    Returns:
        The outcome columns: status, error, traceback, wall_seconds, host, finished_at and the
        statistics of :func:`flatten_summary` (plus ``fact.*``) for a run that finished.

    Complexity: that of the run (model steps) plus O(rows recorded) for the summary.
    """
    t0 = time.perf_counter()
    out: dict[str, Any] = {"status": "failed", "error": None}
    model = None
    try:
        from marketsim.model import MarketModel
        from marketsim.summary import summarize, write_summary

        sc = task["scenario"] if scenario is None else scenario
        run_dir = task.get("run_dir")
        if run_dir is not None:
            run_dir = Path(run_dir)
            if run_dir.exists():
                shutil.rmtree(run_dir)  # a previous attempt of this very run
            run_dir.mkdir(parents=True)
        model = MarketModel(
            sc, seed=int(task["seed"]), overrides=list(task["overrides"]), out_dir=run_dir
        )
        model.run(task.get("steps"))
        _final_snapshot(model)
        model.close()
        summary = summarize(model)
        if run_dir is not None:
            write_summary(summary, run_dir / "summary.json")
        out.update(flatten_summary(summary))
        if task.get("facts", True):
            out.update(_facts(model, summary, task.get("facts_kwargs") or {}))
        out["status"] = "ok"
    except Exception as exc:
        out["error"] = f"{type(exc).__name__}: {exc}"
        out["traceback"] = traceback.format_exc()[-_TRACEBACK_CHARS:]
        logger.info("run %s failed: %s", task.get("run_id"), out["error"])
    finally:
        if model is not None:
            try:
                model.release()
            except Exception:  # pragma: no cover - cleanup only
                logger.debug("release failed", exc_info=True)
    out["wall_seconds"] = time.perf_counter() - t0
    out["host"] = socket.gethostname()
    out["finished_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    return out


def _failure(exc: BaseException, what: str = "") -> dict[str, Any]:
    """Outcome of a run whose worker itself failed (crash, lost node, cancelled)."""
    return {
        "status": "failed",
        "error": f"{what}{type(exc).__name__}: {exc}",
        "wall_seconds": float("nan"),
        "host": None,
        "finished_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


# ---------------------------------------------------------------------------- storage
def _cell(v: Any) -> Any:
    """A parameter value as a table cell: scalars as they are, anything else as TOML text."""
    if v is None or isinstance(v, bool | int | float | str):
        return v
    return format_value(v)


def _json_default(v: Any) -> Any:
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return float(v)
    if isinstance(v, np.bool_):
        return bool(v)
    return str(v)


def _arrow_table(df: pd.DataFrame) -> pa.Table:
    """``df`` as Arrow; object columns Arrow cannot type (mixed int/str, ...) become strings."""
    df = df.copy()
    for c in df.columns:
        if df[c].dtype == object:
            try:
                pa.array(df[c], from_pandas=True)
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
                df[c] = df[c].map(lambda x: x if x is None else str(x))
    return pa.Table.from_pandas(df, preserve_index=False)


class _Store:
    """``results.parquet`` plus the ``results.jsonl`` journal of rows not yet folded in."""

    def __init__(self, out_dir: Path, writable: bool = True):
        self.dir = out_dir
        self.results = out_dir / RESULTS_FILE
        self.journal = out_dir / JOURNAL_FILE
        self.table = pd.read_parquet(self.results) if self.results.exists() else pd.DataFrame()
        if len(self.table) and "run_id" not in self.table:
            raise ConfigError(
                f"{self.results} has no run_id column: it is not a sweep results table; "
                "choose another --out folder"
            )
        self.new: dict[str, dict[str, Any]] = {}
        for row in self._read_journal():
            self.new[row["run_id"]] = row
        self._fh = open(self.journal, "a", encoding="utf-8") if writable else None  # noqa: SIM115

    def _read_journal(self) -> list[dict[str, Any]]:
        if not self.journal.exists():
            return []
        rows = []
        with open(self.journal, encoding="utf-8") as fh:
            for i, line in enumerate(fh, 1):
                line = line.strip()
                if not line:
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:  # a line cut by a crash
                    logger.warning("%s line %d is incomplete; ignored", self.journal, i)
                    continue
                if isinstance(row, dict) and "run_id" in row:
                    rows.append(row)
        return rows

    def status(self) -> dict[str, str]:
        """run_id -> status of every stored run."""
        st: dict[str, str] = {}
        if len(self.table):
            st.update(zip(self.table["run_id"], self.table["status"], strict=True))
        st.update({rid: row["status"] for rid, row in self.new.items()})
        return st

    def add(self, row: dict[str, Any]) -> None:
        self.new[row["run_id"]] = row
        self._fh.write(json.dumps(row, default=_json_default, allow_nan=True) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def frame(self, order: Sequence[str] = ()) -> pd.DataFrame:
        """All rows: those of ``order`` (run ids) first in that order, then the others."""
        old = self.table
        if len(old) and self.new:
            old = old[~old["run_id"].isin(list(self.new))]
        parts = [p for p in (old, pd.DataFrame(list(self.new.values()))) if len(p)]
        df = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
        if not len(df):
            return df
        rej = [c for c in df.columns if c.startswith("rejects.")]
        if rej:  # a reason absent from a finished run's summary means none
            ok = (df["status"] == "ok").to_numpy()
            df.loc[ok, rej] = df.loc[ok, rej].fillna(0)
        rank = {rid: i for i, rid in enumerate(order)}
        key = df["run_id"].map(lambda r: rank.get(r, len(rank))).to_numpy()
        return df.iloc[np.argsort(key, kind="stable")].reset_index(drop=True)

    def consolidate(self, order: Sequence[str] = ()) -> pd.DataFrame:
        """Write every row to ``results.parquet`` (atomically), then empty the journal."""
        df = self.frame(order)
        if self.new:
            tmp = self.results.with_name(RESULTS_FILE + ".tmp")
            pq.write_table(_arrow_table(df), tmp)
            os.replace(tmp, self.results)
            self.table = pd.read_parquet(self.results)
            self.new = {}
            self._fh.truncate(0)
            self._fh.seek(0)
        return df

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()


def load_results(out_dir: str | os.PathLike[str]) -> pd.DataFrame:
    """Every run of a sweep folder, including runs not yet folded into the Parquet file.

    Raises:
        ConfigError: the folder holds no sweep results.

    Complexity: O(rows x columns).
    """
    d = Path(out_dir)
    if not (d / RESULTS_FILE).exists() and not (d / JOURNAL_FILE).exists():
        raise ConfigError(f"{str(d)!r} holds no sweep results ({RESULTS_FILE} or {JOURNAL_FILE})")
    return _Store(d, writable=False).frame()


class _Lock:
    """Exclusive advisory lock on ``<dir>/.sweep.lock`` (no-op where fcntl is missing)."""

    def __init__(self, out_dir: Path):
        self.path = out_dir / LOCK_FILE
        self.fh = None

    def __enter__(self) -> _Lock:
        self.fh = open(self.path, "a+")  # noqa: SIM115
        if fcntl is not None:
            try:
                fcntl.flock(self.fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                self.fh.close()
                raise ConfigError(
                    f"out_dir {str(self.path.parent)!r}: another sweep is writing there "
                    "(its lock is held); wait for it or choose another folder"
                ) from None
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.fh is not None:
            if fcntl is not None:
                fcntl.flock(self.fh.fileno(), fcntl.LOCK_UN)
            self.fh.close()


# ---------------------------------------------------------------------------- backends
Done = Callable[[dict[str, Any], dict[str, Any]], None]


def _run_serial(tasks: list[dict], scenario: dict, done: Done) -> None:
    for t in tasks:
        done(t, run_one(t, scenario))


def _warm_worker(facts: bool) -> None:
    """Pool initializer: import the model (and the analysis) before the first run, so that a
    run's ``wall_seconds`` does not include the imports."""
    import marketsim.model  # noqa: F401
    import marketsim.summary  # noqa: F401

    if facts:
        try:
            import analysis.stylized  # noqa: F401
        except ImportError:
            pass


def _run_local(
    tasks: list[dict],
    scenario: dict,
    workers: int,
    done: Done,
    fn: Callable[..., dict[str, Any]] = run_one,
) -> None:
    """Process pool (spawn) with at most ``workers`` runs submitted at a time.

    A worker that dies (segfault, out of memory) breaks the pool and every run in flight with
    it. Those runs are then run again one at a time on a one-process pool: one that kills its
    worker there is recorded as failed, the others finish normally; then the remaining runs go
    on with ``workers`` processes.
    """
    ctx = multiprocessing.get_context("spawn")
    todo: deque[dict] = deque(tasks)
    suspects: deque[dict] = deque()
    while todo or suspects:
        alone = bool(suspects)
        queue = suspects if alone else todo
        n = 1 if alone else max(1, min(workers, len(todo)))
        warm = {"initializer": _warm_worker, "initargs": (bool(queue[0].get("facts")),)}
        pool = ProcessPoolExecutor(max_workers=n, mp_context=ctx, **(warm if fn is run_one else {}))
        inflight: dict[Any, dict] = {}
        broken = clean = False
        try:
            while queue or inflight:
                while queue and len(inflight) < n and not broken:
                    t = queue.popleft()
                    try:
                        inflight[pool.submit(fn, t, scenario)] = t
                    except BrokenProcessPool:
                        queue.appendleft(t)
                        broken = True
                if not inflight:
                    break
                finished, _ = wait(inflight, return_when=FIRST_COMPLETED)
                for fut in finished:
                    t = inflight.pop(fut)
                    try:
                        res = fut.result()
                    except BrokenProcessPool as exc:
                        broken = True
                        if alone:  # it killed its worker on its own: it is the culprit
                            done(t, _failure(exc, "run killed its worker process: "))
                        else:
                            suspects.append(t)
                        continue
                    except Exception as exc:  # e.g. an unpicklable result
                        res = _failure(exc)
                    done(t, res)
            clean = not broken
        finally:
            # a broken pool or an interrupt: do not wait for the remaining workers
            pool.shutdown(wait=clean, cancel_futures=True)


def _run_ray(
    tasks: list[dict],
    scenario: dict,
    workers: int | None,
    address: str | None,
    runtime_env: Mapping[str, Any] | None,
    done: Done,
) -> None:
    """Ray tasks, at most ``workers`` in flight (default: twice the cluster's CPUs)."""
    try:
        import ray
    except ImportError:
        raise ConfigError(
            "backend='ray' needs Ray: pip install 'marketsim[distributed]' (or use backend='local')"
        ) from None
    started = False
    if not ray.is_initialized():
        address = address or os.environ.get("RAY_ADDRESS") or None
        kw: dict[str, Any] = {"runtime_env": dict(runtime_env)} if runtime_env else {}
        if address:
            ray.init(address=address, **kw)
        else:
            ray.init(num_cpus=workers or os.cpu_count(), include_dashboard=False, **kw)
        started = True
    elif address:
        logger.warning("Ray is already initialised; address=%r is ignored", address)
    try:
        remote = ray.remote(num_cpus=1, max_retries=1)(run_one)
        scen_ref = ray.put(scenario)
        limit = workers or 2 * max(1, int(ray.cluster_resources().get("CPU", 1)))
        todo = iter(tasks)
        inflight: dict[Any, dict] = {}

        def submit() -> None:
            t = next(todo, None)
            if t is not None:
                inflight[remote.remote(t, scen_ref)] = t

        for _ in range(limit):
            submit()
        while inflight:
            ready, _ = ray.wait(list(inflight), num_returns=1)
            for ref in ready:
                t = inflight.pop(ref)
                try:
                    res = ray.get(ref)
                except Exception as exc:  # worker crashed, node lost, out of memory, ...
                    res = _failure(exc, "ray task failed: ")
                done(t, res)
                submit()
    finally:
        if started:
            ray.shutdown()


# ---------------------------------------------------------------------------- the sweep
def _check_grid(grid: Mapping[str, Sequence[Any]]) -> dict[str, list[Any]]:
    if not isinstance(grid, Mapping):
        raise ConfigError(f"grid = {grid!r}: must be a dict of key -> list of values")
    out: dict[str, list[Any]] = {}
    for k, vals in grid.items():
        if not isinstance(k, str) or not k or "=" in k:
            raise ConfigError(f"grid key {k!r}: must be a dotted scenario key without '='")
        if isinstance(vals, str | bytes) or not isinstance(vals, Iterable):
            raise ConfigError(f"grid[{k!r}] = {vals!r}: must be a list of values")
        vals = list(vals)
        if not vals:
            raise ConfigError(f"grid[{k!r}] is empty: give at least one value")
        for v in vals:
            format_value(v)  # raises for types a scenario cannot hold
        out[k] = vals
    return out


def run_sweep(
    scenario: Scenario | Mapping[str, Any] | str | os.PathLike[str],
    grid: Mapping[str, Sequence[Any]] | None = None,
    seeds: Iterable[int] | str | int | None = None,
    backend: str = "local",
    *,
    out_dir: str | os.PathLike[str] = "sweep",
    workers: int | None = None,
    address: str | None = None,
    steps: int | None = None,
    overrides: Sequence[str] = (),
    retry_failed: bool = True,
    facts: bool = True,
    facts_kwargs: Mapping[str, Any] | None = None,
    keep_logs: bool = False,
    progress: bool = False,
    flush_every_s: float = 30.0,
    runtime_env: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """Run ``scenario`` for every grid point and seed; return the rows of this sweep.

    Args:
        scenario: Scenario object, dict or TOML path (the base of every run).
        grid: Scenario key -> values (``{"agents.noise.count": [50, 100]}``); ``None`` or
            ``{}``: seeds only.
        seeds: Seeds (``[0, 1]``, ``"0-31"``, ``"0,3,7"``); default the scenario's seed.
        backend: ``"local"`` (process pool), ``"ray"`` or ``"serial"`` (this process).
        out_dir: Folder of ``results.parquet`` (created); re-running into it resumes.
        workers: Parallel runs; default ``os.cpu_count()`` (local), the cluster's CPUs (ray).
        address: Ray cluster address (``"auto"``, ``"ray://head:10001"``, ``"HOST:6379"``);
            default a local Ray instance (or ``$RAY_ADDRESS``). Ray already initialised in
            this process is used as it is.
        steps: Steps per run; default the whole scenario.
        overrides: ``key=value`` overrides applied to the base before the grid's.
        retry_failed: Run again the runs recorded as failed.
        facts: Add ``fact.*`` columns (:mod:`analysis.stylized`, when importable).
        facts_kwargs: Keyword arguments of ``stylized_facts`` (``horizon``, ``max_lag``, ...).
        keep_logs: Also write each run's Parquet logs and summary.json to
            ``out_dir/runs/<run_id>/`` (default: record in memory only).
        progress: Show a tqdm progress bar.
        flush_every_s: Seconds between rewrites of ``results.parquet`` during the sweep
            (finished runs are in ``results.jsonl`` at once either way).
        runtime_env: Ray ``runtime_env`` when this call starts or joins Ray.

    Returns:
        One row per run of this sweep (grid order, seeds fastest), read back from the folder.
        ``df.attrs`` holds ``ran`` / ``skipped`` / ``failed`` (run ids of this call) and
        ``path`` (the Parquet file).

    Raises:
        ConfigError: bad arguments, an unknown grid key (before anything runs), another sweep
            holding the folder. A failing run does not raise: its row has status "failed".

    Complexity: O(runs x run time / workers), plus O(rows x columns) per Parquet rewrite.
    """
    if backend not in BACKENDS:
        raise ConfigError(f"backend = {backend!r}: must be one of {', '.join(BACKENDS)}")
    if address and backend != "ray":
        raise ConfigError(f"address = {address!r} needs backend='ray' (got {backend!r})")
    if workers is not None and (isinstance(workers, bool) or int(workers) < 1):
        raise ConfigError(f"workers = {workers!r}: must be an integer >= 1 (or None)")
    if steps is not None and (isinstance(steps, bool) or int(steps) < 1):
        raise ConfigError(f"steps = {steps!r}: must be an integer >= 1 (or None: all)")
    steps = None if steps is None else int(steps)
    grid = _check_grid(grid or {})
    base = load_scenario(scenario, list(overrides))
    base_dict = base.to_dict()
    seed_list = parse_seeds(base.simulation.seed if seeds is None else seeds)
    for k, vals in grid.items():  # unknown keys fail here, bad values in their runs
        apply_overrides(base_dict, [f"{k}={format_value(v)}" for v in vals])
    base_hash = base.hash()
    specs = expand_grid(grid, seed_list, base_hash, steps)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with _Lock(out):
        (out / SPEC_FILE).write_text(
            json.dumps(
                {
                    "marketsim_version": __version__,
                    "base_hash": base_hash,
                    "grid": {k: [_cell(v) for v in vals] for k, vals in grid.items()},
                    "seeds": seed_list,
                    "steps": steps,
                    "overrides": list(overrides),
                    "scenario": base_dict,
                },
                indent=2,
                default=str,
            )
            + "\n",
            encoding="utf-8",
        )
        return _sweep(
            specs, base_dict, base_hash, out, backend, workers, address, steps, retry_failed,
            facts, facts_kwargs, keep_logs, progress, flush_every_s, runtime_env,
        )  # fmt: skip


def _sweep(
    specs: list[RunSpec],
    base_dict: dict[str, Any],
    base_hash: str,
    out: Path,
    backend: str,
    workers: int | None,
    address: str | None,
    steps: int | None,
    retry_failed: bool,
    facts: bool,
    facts_kwargs: Mapping[str, Any] | None,
    keep_logs: bool,
    progress: bool,
    flush_every_s: float,
    runtime_env: Mapping[str, Any] | None,
) -> pd.DataFrame:
    store = _Store(out)
    order = [s.run_id for s in specs]
    try:
        status = store.status()
        keep = {"ok"} if retry_failed else {"ok", "failed"}
        todo = [s for s in specs if status.get(s.run_id) not in keep]
        skipped = [s.run_id for s in specs if status.get(s.run_id) in keep]
        by_id = {s.run_id: s for s in todo}
        tasks = [
            {
                "run_id": s.run_id,
                "seed": s.seed,
                "overrides": list(s.overrides),
                "steps": steps,
                "facts": facts,
                "facts_kwargs": dict(facts_kwargs or {}),
                "run_dir": str(out / RUNS_DIR / s.run_id) if keep_logs else None,
            }
            for s in todo
        ]
        logger.info(
            "sweep into %s: %d runs, %d already done, %d to run (%s backend)",
            out, len(specs), len(skipped), len(todo), backend,
        )  # fmt: skip
        ran: list[str] = []
        failed: list[str] = []
        last_flush = time.monotonic()
        from tqdm.auto import tqdm

        bar = tqdm(
            total=len(specs), initial=len(skipped), unit="run", desc="sweep", disable=not progress
        )

        def done(task: dict[str, Any], outcome: dict[str, Any]) -> None:
            nonlocal last_flush
            spec = by_id[task["run_id"]]
            row: dict[str, Any] = {"run_id": spec.run_id, "base_hash": base_hash}
            row.update({k: _cell(v) for k, v in spec.params.items()})
            row.update({"seed": spec.seed, "status": outcome.get("status", "failed")})
            row.update({"error": outcome.get("error"), "wall_seconds": outcome.get("wall_seconds")})
            for k, v in outcome.items():
                row.setdefault(k, v)
            store.add(row)
            ran.append(spec.run_id)
            if row["status"] != "ok":
                failed.append(spec.run_id)
                logger.warning("run %s (seed %d) failed: %s", spec.run_id, spec.seed, row["error"])
            bar.update(1)
            bar.set_postfix(failed=len(failed), refresh=False)
            if time.monotonic() - last_flush >= flush_every_s:
                store.consolidate(order)
                last_flush = time.monotonic()

        try:
            if not tasks:
                pass
            elif backend == "serial":
                _run_serial(tasks, base_dict, done)
            elif backend == "local":
                _run_local(tasks, base_dict, workers or os.cpu_count() or 1, done)
            else:
                _run_ray(tasks, base_dict, workers, address, runtime_env, done)
        finally:
            bar.close()
            store.consolidate(order)
        df = store.frame(order)
    finally:
        store.close()
    mine = df[df["run_id"].isin(order)].reset_index(drop=True) if len(df) else df
    mine.attrs.update(
        {"ran": ran, "skipped": skipped, "failed": failed, "path": str(out / RESULTS_FILE)}
    )
    return mine
