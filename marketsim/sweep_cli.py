"""``marketsim sweep``: run a scenario over a grid of overrides and seeds (see :mod:`marketsim.sweep`).

Usage::

    marketsim sweep SCENARIO [--grid KEY=V1,V2,...]... [--seeds 0-31 | 0,3,7]
                    [--backend {local,ray,serial}] [--address ADDR] [--workers N]
                    [--steps N] [--set KEY=VALUE]... [--no-retry-failed] [--no-facts]
                    [--keep-logs] [--quiet] --out DIR

Writes ``DIR/results.parquet`` (one row per run), ``DIR/results.jsonl`` (runs finished since
the last rewrite of the Parquet file) and ``DIR/sweep.json``. Re-running the same command
resumes: finished runs are skipped. Exit status: 0 every run ok, 1 some run failed (its row says
why), 2 bad usage, 130 interrupted (finished runs are kept).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from marketsim.errors import ConfigError

__all__ = ["add_parser", "cmd_sweep"]

_BACKENDS = ("local", "ray", "serial")  # = marketsim.sweep.BACKENDS (not imported: cheap parser)


def _grid_item(text: str) -> tuple[str, list[Any]]:
    from marketsim.sweep import parse_grid_item

    try:
        return parse_grid_item(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _seeds(text: str) -> list[int]:
    from marketsim.sweep import parse_seeds

    try:
        return parse_seeds(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _pos_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {v}")
    return v


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Add ``marketsim sweep`` to the subparsers ``sub``."""
    p = sub.add_parser(
        "sweep",
        help="run a scenario over a grid of overrides and seeds (local processes or Ray)",
        description=(
            "Run SCENARIO once per grid point and seed, in parallel, and collect one row per "
            "run (grid parameters, seed, summary statistics, stylized facts, wall time, "
            "status) in DIR/results.parquet. Re-running resumes: finished runs are skipped; "
            "a failing run is recorded and the others go on."
        ),
    )
    p.add_argument("scenario", help="scenario .toml path or name in scenarios/")
    p.add_argument(
        "--grid",
        action="append",
        default=[],
        type=_grid_item,
        metavar="KEY=V1,V2,...",
        help="a scenario key and its values, e.g. --grid agents.noise.count=50,100 "
        "(repeatable: the grid is the product; none: seeds only)",
    )
    p.add_argument(
        "--seeds",
        type=_seeds,
        default=None,
        metavar="SEEDS",
        help="seeds as a range and/or list: 0-31, 0,3,7 or 0-3,10 (default: the scenario's)",
    )
    p.add_argument(
        "--backend",
        choices=_BACKENDS,
        default=None,
        help="local: process pool (default); ray: Ray tasks; serial: in this process",
    )
    p.add_argument(
        "--address",
        default=None,
        metavar="ADDR",
        help="Ray cluster to join (auto, HOST:6379 or ray://HOST:10001); implies --backend ray",
    )
    p.add_argument(
        "--workers",
        type=_pos_int,
        default=None,
        metavar="N",
        help="parallel runs (default: CPU count; with --address: the cluster's CPUs)",
    )
    p.add_argument(
        "--steps", type=_pos_int, default=None, help="steps per run (default: the whole session)"
    )
    p.add_argument(
        "--out", required=True, metavar="DIR", help="results folder (resumes if it exists)"
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a key of the base scenario for every run (repeatable)",
    )
    p.add_argument(
        "--no-retry-failed",
        dest="retry_failed",
        action="store_false",
        help="keep runs recorded as failed instead of running them again",
    )
    p.add_argument(
        "--no-facts", dest="facts", action="store_false", help="skip the stylized-fact columns"
    )
    p.add_argument(
        "--keep-logs",
        action="store_true",
        help="also keep each run's Parquet logs in DIR/runs/<run_id>/",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_sweep)
    return p


def cmd_sweep(args: argparse.Namespace) -> int:
    """``marketsim sweep``: run the sweep, print a one-line report; return the exit status."""
    from marketsim.cli import resolve_scenario
    from marketsim.sweep import run_sweep

    grid: dict[str, list[Any]] = {}
    for key, values in args.grid:
        if key in grid:
            raise ConfigError(
                f"--grid {key}=...: given twice; list every value in one --grid {key}=V1,V2,..."
            )
        grid[key] = values
    backend = args.backend or ("ray" if args.address else "local")
    if args.address and backend != "ray":
        raise ConfigError(f"--address {args.address!r} needs --backend ray (got {backend})")
    path = resolve_scenario(args.scenario)
    try:
        df = run_sweep(
            path,
            grid,
            args.seeds,
            backend,
            out_dir=args.out,
            workers=args.workers,
            address=args.address,
            steps=args.steps,
            overrides=args.overrides,
            retry_failed=args.retry_failed,
            facts=args.facts,
            keep_logs=args.keep_logs,
            progress=not args.quiet,
        )
    except KeyboardInterrupt:
        print(
            f"marketsim sweep: interrupted; finished runs are in {args.out} (re-run to resume)",
            file=sys.stderr,
        )
        return 130
    failed = df[df["status"] != "ok"]
    print(
        f"{len(df)} runs: {len(df) - len(failed)} ok, {len(failed)} failed "
        f"({len(df.attrs['ran'])} run now, {len(df.attrs['skipped'])} done before); "
        f"results: {df.attrs['path']}"
    )
    for rid, seed, err in list(zip(failed["run_id"], failed["seed"], failed["error"], strict=True))[
        :10
    ]:
        first = str(err).splitlines()[0] if err else "unknown error"
        print(f"  failed {rid} (seed {seed}): {first}", file=sys.stderr)
    if len(failed) > 10:
        print(f"  ... and {len(failed) - 10} more (see the error column)", file=sys.stderr)
    return 1 if len(failed) else 0
