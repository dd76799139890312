"""Market-data pipeline: raw CSV/Parquet -> prepared Parquet bars + ``.npy`` windows, LOBSTER.

* :func:`prepare` / :func:`load_prepared` (:mod:`marketsim.data.prepare`,
  :mod:`marketsim.data.windows`): normalise bars, trades or quotes onto one calendar, write
  masks and sliding windows, read them back memory-mapped with hash verification.
* :class:`WindowReplay`: observation windows straight from the arrays, for offline training.
* :mod:`marketsim.data.lobster`: LOBSTER message/orderbook files to marketsim orders.
* :func:`add_data_parser` / :func:`run_prepare`: the ``marketsim data prepare`` command.

``marketsim.data.prepare`` is both a module and the function this package exports, so the
package imports it eagerly (which binds the name to the function for good).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from marketsim.data.prepare import prepare
from marketsim.data.windows import Manifest, PreparedData, WindowReplay, load_prepared

__all__ = [
    "Manifest",
    "PreparedData",
    "WindowReplay",
    "add_data_parser",
    "load_prepared",
    "prepare",
    "run_prepare",
]


def add_data_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``marketsim data prepare RAW... --out DIR [--window N] [--freq 1min]``.

    Args:
        subparsers: The object returned by ``ArgumentParser.add_subparsers()`` of the main
            ``marketsim`` parser.

    Returns:
        The ``data`` parser. The ``prepare`` sub-command sets ``func=run_prepare``, so the
        caller dispatches with ``sys.exit(args.func(args))``.
    """
    data = subparsers.add_parser(
        "data", help="prepare market data for replay and training", description=__doc__
    )
    sub = data.add_subparsers(dest="data_command", metavar="COMMAND", required=True)
    p = sub.add_parser(
        "prepare",
        help="raw CSV/Parquet bars, trades or quotes -> Parquet bars + .npy windows",
        description=(
            "Normalise raw bars (long: time,ticker,open,high,low,close,volume; wide: "
            "time,<ticker>.<field>), trades (time,ticker,price,size) or quotes "
            "(time,ticker,bid,ask,bid_size,ask_size) onto one calendar and write bars.parquet, "
            "values.npy, mask.npy, windows.npy and manifest.json to --out. Missing bars are "
            "masked, never filled."
        ),
    )
    p.add_argument("raw", nargs="+", metavar="RAW", help="input files or directories")
    p.add_argument("--out", required=True, metavar="DIR", help="output directory")
    p.add_argument("--window", type=int, default=64, metavar="N", help="window length (64)")
    p.add_argument(
        "--freq",
        default=None,
        metavar="FREQ",
        help="bar frequency to aggregate trades/quotes/bars into, e.g. 1min, 5s, 1D",
    )
    p.add_argument(
        "--grid",
        action="store_true",
        help="calendar = regular grid at --freq (gaps, halts, holidays masked) instead of the "
        "union of bar times",
    )
    p.add_argument(
        "--fields",
        default="open,high,low,close,volume",
        metavar="LIST",
        help="comma-separated fields (default open,high,low,close,volume)",
    )
    p.add_argument(
        "--no-windows",
        action="store_true",
        help="do not materialise windows.npy (windows are then served from values.npy)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    p.set_defaults(func=run_prepare)
    return data


def run_prepare(args: argparse.Namespace) -> int:
    """Handler of ``marketsim data prepare``; returns the exit status.

    0 on success (a one-line summary on stdout); 2 with the error message on stderr when the
    input data or the arguments are bad (:class:`~marketsim.errors.DataError` or
    :class:`~marketsim.errors.ConfigError`).
    """
    from marketsim.errors import ConfigError, DataError

    if args.grid and not args.freq:
        print("marketsim data prepare: error: --grid needs --freq", file=sys.stderr)
        return 2
    try:
        m = prepare(
            args.raw,
            args.out,
            window=args.window,
            fields=[f for f in args.fields.split(",") if f.strip()],
            calendar=args.freq if args.grid else None,
            bar_freq=args.freq,
            materialize_windows=not args.no_windows,
            overwrite=args.overwrite,
        )
    except (DataError, ConfigError) as exc:
        print(f"marketsim data prepare: error: {exc}", file=sys.stderr)
        return 2
    r = m.rows
    print(
        f"prepared {m.n_tickers} tickers x {m.n_times} bars ({r['valid_bars']}/{r['bars']} "
        f"valid) from {r['source_rows']} rows -> {args.out}"
    )
    return 0
