"""Reading run directories: the Parquet tables and ``summary.json`` of one run as a :class:`Run`.

A run directory (written by :mod:`marketsim.recorder` and :mod:`marketsim.summary`) holds
``trades``, ``quotes``, ``accounts``, ``positions`` and ``events`` Parquet files (always),
``l2`` and ``orders`` (when enabled) and ``summary.json``. :func:`load_run` reads them eagerly
into DataFrames; string columns the recorder stores as Arrow dictionaries (asset, agent_type,
kind, status) are returned as plain strings so that filters and ``unique()`` behave the same
for loaded runs and for hand-built frames.

Every analysis function that takes a run accepts a :class:`Run` or a path (see :func:`as_run`).

Example:
    >>> run = load_run("runs/quickstart-1")                    # doctest: +SKIP
    >>> run.assets, run.steps_per_day, run.tick_size("AAA")    # doctest: +SKIP
    (['AAA'], 390, 0.01)
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from marketsim.errors import ConfigError, DataError

logger = logging.getLogger(__name__)

__all__ = [
    "OPTIONAL_TABLES",
    "REQUIRED_COLUMNS",
    "REQUIRED_TABLES",
    "Run",
    "as_run",
    "as_runs",
    "load_run",
    "select_asset",
]

#: Tables every run directory must hold (``<name>.parquet``).
REQUIRED_TABLES = ("trades", "quotes", "accounts", "positions", "events")
#: Tables read when present (``None`` in the :class:`Run` otherwise).
OPTIONAL_TABLES = ("l2", "orders")
#: Columns the analysis relies on, per table (extra columns are kept).
REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "trades": ("step", "time", "asset", "price", "qty", "aggressor", "buyer", "seller"),
    "quotes": ("step", "time", "asset", "bid", "ask", "bid_qty", "ask_qty", "mid", "last"),
    "accounts": ("step", "account", "agent_type", "cash", "equity"),
    "positions": ("step", "account", "asset", "qty"),
    "events": ("step", "time", "kind"),
    "l2": ("step", "time", "asset", "side", "level", "price", "qty"),
    "orders": ("step", "time", "asset", "account", "kind", "side", "price", "qty"),
}
_SUMMARY = "summary.json"


@dataclass
class Run:
    """The tables of one run.

    Attributes:
        trades: step, time, asset, price, qty, aggressor (+1 buyer-initiated, -1 seller-
            initiated), buyer, seller.
        quotes: step, time, asset, bid, ask, bid_qty, ask_qty, mid, last (NaN: empty side).
        accounts: step, account, agent_type, cash, equity.
        positions: step, account, asset, qty (nonzero positions only).
        events: step, time, kind, asset, account, detail.
        summary: Content of ``summary.json`` (``{}`` when built by hand).
        l2: step, time, asset, side, level (0 = best), price, qty; ``None`` if not recorded.
        orders: The ``orders`` table; ``None`` if not recorded.
        path: The run directory (``None`` when built by hand).
        metadata: The recorder's run metadata (scenario hash, seed, ...), if found.
    """

    trades: pd.DataFrame
    quotes: pd.DataFrame
    accounts: pd.DataFrame = field(default_factory=pd.DataFrame)
    positions: pd.DataFrame = field(default_factory=pd.DataFrame)
    events: pd.DataFrame = field(default_factory=pd.DataFrame)
    summary: dict[str, Any] = field(default_factory=dict)
    l2: pd.DataFrame | None = None
    orders: pd.DataFrame | None = None
    path: Path | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """The run directory's name, or ``"run"`` for a hand-built run."""
        return self.path.name if self.path is not None else "run"

    @property
    def assets(self) -> list[str]:
        """Asset names in order of first appearance in ``quotes`` then ``trades``. O(rows)."""
        seen: dict[str, None] = {}
        for df in (self.quotes, self.trades):
            if len(df) and "asset" in df:
                for a in pd.unique(df["asset"].astype(str)):
                    if a:
                        seen.setdefault(a)
        return list(seen)

    @property
    def steps_per_day(self) -> int | None:
        """Steps per trading day from ``summary.json``, or ``None`` if unknown. O(1)."""
        v = self.summary.get("steps_per_day")
        return int(v) if v else None

    def tick_size(self, asset: str) -> float | None:
        """Tick size of ``asset`` from ``summary.json`` (``None`` if unknown). O(1)."""
        a = (self.summary.get("assets") or {}).get(asset) or {}
        v = a.get("tick_size")
        return float(v) if v else None


def _to_plain(df: pd.DataFrame) -> pd.DataFrame:
    """Categorical columns as plain strings."""
    for c in df.columns:
        if isinstance(df[c].dtype, pd.CategoricalDtype):
            df[c] = df[c].astype(str)
    return df


def _read_table(path: Path, table: str) -> pd.DataFrame:
    try:
        df = pq.read_table(path).to_pandas()
    except Exception as e:  # pyarrow raises several types for corrupt files
        raise DataError(f"{path}: cannot read Parquet table {table!r}: {e}") from e
    missing = [c for c in REQUIRED_COLUMNS[table] if c not in df.columns]
    if missing:
        raise DataError(
            f"{path}: table {table!r} lacks column(s) {missing}; found {list(df.columns)}. "
            f"Was it written by marketsim.recorder?"
        )
    return _to_plain(df)


def load_run(run_dir: str | os.PathLike[str]) -> Run:
    """Read every table of a run directory (eagerly) and its ``summary.json``.

    Args:
        run_dir: The run directory.

    Returns:
        A :class:`Run`; ``l2`` / ``orders`` are ``None`` when their files are absent.

    Raises:
        DataError: the directory, a required table (``trades``, ``quotes``, ``accounts``,
            ``positions``, ``events``) or ``summary.json`` is missing, unreadable or lacks a
            required column; the message names the file.

    Complexity: O(rows of all tables).
    """
    root = Path(run_dir)
    if not root.is_dir():
        raise DataError(f"run_dir {str(root)!r} is not a directory; pass a marketsim run folder")
    present = sorted(p.name for p in root.iterdir())
    tables: dict[str, pd.DataFrame | None] = {}
    for t in REQUIRED_TABLES:
        p = root / f"{t}.parquet"
        if not p.is_file():
            raise DataError(
                f"run directory {str(root)!r} lacks required file {p.name!r} (files present: "
                f"{present}); is it a complete marketsim run?"
            )
        tables[t] = _read_table(p, t)
    for t in OPTIONAL_TABLES:
        p = root / f"{t}.parquet"
        tables[t] = _read_table(p, t) if p.is_file() else None
    sp = root / _SUMMARY
    if not sp.is_file():
        raise DataError(
            f"run directory {str(root)!r} lacks required file {_SUMMARY!r} (files present: "
            f"{present}); it is written when a run finishes"
        )
    try:
        summary = json.loads(sp.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise DataError(f"{sp}: cannot parse JSON: {e}") from e
    if not isinstance(summary, dict):
        raise DataError(f"{sp}: expected a JSON object, got {type(summary).__name__}")
    meta: dict[str, Any] = {}
    try:
        kv = pq.read_schema(root / "trades.parquet").metadata or {}
        if b"marketsim" in kv:
            meta = json.loads(kv[b"marketsim"])
    except (OSError, ValueError):  # metadata is informative only
        logger.debug("no readable run metadata in %s", root)
    logger.debug(
        "loaded run %s (%s)", root, {k: len(v) for k, v in tables.items() if v is not None}
    )
    return Run(
        trades=tables["trades"],
        quotes=tables["quotes"],
        accounts=tables["accounts"],
        positions=tables["positions"],
        events=tables["events"],
        summary=summary,
        l2=tables["l2"],
        orders=tables["orders"],
        path=root,
        metadata=meta,
    )


def as_run(run: Run | str | os.PathLike[str]) -> Run:
    """``run`` itself if it is a :class:`Run`, else :func:`load_run` of the path.

    Raises:
        ConfigError: ``run`` is neither a Run nor a path.
        DataError: see :func:`load_run`.

    Complexity: O(1) for a Run, else that of :func:`load_run`.
    """
    if isinstance(run, Run):
        return run
    if isinstance(run, str | os.PathLike):
        return load_run(run)
    raise ConfigError(f"run must be an analysis.io.Run or a run directory path, got {run!r}")


def as_runs(runs: Run | str | os.PathLike[str] | Iterable[Any]) -> list[Run]:
    """One or several runs (Run objects or paths) as a list of :class:`Run`. O(loading)."""
    if isinstance(runs, Run | str | os.PathLike):
        return [as_run(runs)]
    if isinstance(runs, Mapping):
        raise ConfigError("runs must be a Run, a path or a list of them, got a mapping")
    out = [as_run(r) for r in runs]
    if not out:
        raise ConfigError("runs is empty; pass at least one run directory or Run")
    return out


def select_asset(
    df: pd.DataFrame, asset: str | None, table: str = "table", must_exist: bool = True
) -> pd.DataFrame:
    """Rows of ``df`` for ``asset`` (all rows when ``asset`` is None).

    Raises:
        ConfigError: ``must_exist`` and ``asset`` does not occur in ``df`` (the message lists
            the assets that do).

    Complexity: O(rows).
    """
    if asset is None:
        return df
    col = df["asset"].astype(str).to_numpy() if len(df) else np.array([], dtype=object)
    mask = col == asset
    if must_exist and not mask.any():
        known = sorted(set(col.tolist()))
        raise ConfigError(f"asset {asset!r} does not occur in {table}; assets present: {known}")
    return df[mask]
