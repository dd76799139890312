"""``marketsim report`` and ``marketsim impact``: stylized-facts reports and impact studies.

Usage::

    marketsim report RUN_DIR [RUN_DIR ...] [--out DIR] [--format md|html] [--horizon 1min]
                     [--asset SYM] [--impact DIR] [--no-sp500]
    marketsim impact [SCENARIO] --out DIR [--seeds 0,1,2] [--sizes 1000,2000,5000]
                     [--algo pov|twap|vwap] [--participation 0.2] [--side buy|sell|both]
                     [--start-s 1800] [--duration-s S] [--day 0] [--interval-s 30]
                     [--aggression market]
                     [--workers 1] [--set KEY=VALUE ...] [--overwrite] [--quiet]

``report`` writes ``report.md`` (or ``.html``), PNG figures, ``facts.csv`` and ``targets.csv``
(:func:`analysis.report.write_report`; several run directories are pooled) into ``--out``
(default ``RUN_DIR/report``). ``impact`` runs meta-orders of every size on every seed, each
against the counterfactual continuation of the same seed without it
(:func:`analysis.experiments.run_impact_study`), and writes ``impact.parquet``,
``impact_fit.json``, ``impact_paths.parquet`` and ``impact.png`` into ``--out``. Its default
protocol works every meta-order at 20 % of the volume (POV) until it is done; ``--algo twap``
spreads it evenly over a fixed window (see :mod:`analysis.experiments` for why they differ).

The engine does not import :mod:`analysis`: the handlers import it when they run.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from marketsim.errors import ConfigError

__all__ = ["add_impact_parser", "add_report_parser", "cmd_impact", "cmd_report"]


def _int_list(text: str) -> list[int]:
    try:
        out = [int(x.replace("_", "")) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be comma-separated whole numbers, e.g. 1000,2000,5000; got {text!r}"
        ) from None
    if not out or any(v < 1 for v in out):
        raise argparse.ArgumentTypeError(f"must be whole numbers >= 1, got {text!r}")
    return out


# ---------------------------------------------------------------------------- report
def add_report_parser(sub: Any) -> argparse.ArgumentParser:
    """Add ``marketsim report``."""
    p = sub.add_parser(
        "report",
        help="stylized-facts report (Markdown or HTML + PNG) of run directories",
        description=(
            "Write a report of one run directory (or several, pooled): the stylized-facts "
            "table (value, literature range and source, pass/fail) beside the S&P 500 daily "
            "facts, the calibration targets, and plots (return distribution vs Gaussian, ACF "
            "of |r| with its power-law fit, trade-sign ACF, spread distribution, impact)."
        ),
    )
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run director(y/ies)")
    p.add_argument("--out", default=None, metavar="DIR", help="default: RUN_DIR/report")
    p.add_argument("--format", choices=("md", "html"), default="md", help="report format")
    p.add_argument("--horizon", default="1min", help="return horizon (default 1min)")
    p.add_argument("--asset", default=None, help="one asset (default: all, pooled)")
    p.add_argument(
        "--impact",
        default=None,
        metavar="DIR",
        help="folder of a `marketsim impact` study to include (default: RUN_DIR if it has one)",
    )
    p.add_argument("--no-sp500", action="store_true", help="leave out the S&P 500 reference")
    p.set_defaults(func=cmd_report)
    return p


def cmd_report(args: argparse.Namespace) -> int:
    """``marketsim report``: write the report; print its path and the targets met."""
    from analysis.report import write_report

    for d in args.run_dirs:
        if not Path(d).is_dir():
            raise ConfigError(f"RUN_DIR {d!r} is not a directory; pass a `marketsim run` folder")
    path = write_report(
        args.run_dirs,
        args.out,
        args.format,
        horizon=args.horizon,
        asset=args.asset,
        impact_dir=args.impact,
        sp500=not args.no_sp500,
    )
    import pandas as pd

    facts = pd.read_csv(path.parent / "facts.csv")
    targets = pd.read_csv(path.parent / "targets.csv")
    print(
        f"stylized facts passed: {int(facts['passed'].sum())}/{len(facts)}; "
        f"calibration targets met: {int(targets['passed'].sum())}/{len(targets)}"
    )
    print(f"report: {path}")
    return 0


# ---------------------------------------------------------------------------- impact
def add_impact_parser(sub: Any) -> argparse.ArgumentParser:
    """Add ``marketsim impact``."""
    p = sub.add_parser(
        "impact",
        help="meta-order impact study against counterfactual runs; fits the impact law",
        description=(
            "Run meta-orders of several sizes on several seeds, each against the same seed "
            "continued without it from a checkpoint taken just before it starts; write "
            "impact.parquet (one row per meta-order), impact_fit.json (I/sigma = Y (Q/V)^delta), "
            "impact_paths.parquet and impact.png into --out."
        ),
    )
    p.add_argument("scenario", nargs="?", default=None, help="scenario .toml path or name")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--seeds", default="0", help="seeds, e.g. 0,1,2 or 0-7 (default 0)")
    p.add_argument(
        "--sizes",
        type=_int_list,
        default=[1000, 2000, 5000, 10000, 20000],
        help="meta-order sizes in lots (default 1000,2000,5000,10000,20000)",
    )
    p.add_argument(
        "--algo",
        choices=("pov", "twap", "vwap"),
        default="pov",
        help="pov (default): a steady share of the volume until done; twap/vwap: a fixed window",
    )
    p.add_argument("--side", choices=("buy", "sell", "both"), default="buy")
    p.add_argument(
        "--start-s", type=float, default=None, help="start, s after the open (default 1800)"
    )
    p.add_argument(
        "--duration-s",
        type=float,
        default=None,
        help="execution window in s (default: 3600 for twap/vwap; for pov, which stops when "
        "done, up to 30 min before the close)",
    )
    p.add_argument(
        "--day",
        type=int,
        default=None,
        help="trading day of the meta-orders (0-based; default: the second day of a scenario "
        "with more than one - the first starts from an empty book - else the first)",
    )
    p.add_argument("--interval-s", type=float, default=30.0, help="seconds between children")
    p.add_argument("--aggression", choices=("market", "limit_at_touch"), default="market")
    p.add_argument(
        "--participation", type=float, default=None, help="pov target share (default 0.2)"
    )
    p.add_argument("--workers", type=int, default=1, help="seeds run in parallel processes")
    p.add_argument("--path-every", type=int, default=10, help="step stride of saved paths")
    p.add_argument("--fit-method", choices=("auto", "rows", "binned"), default="auto")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a scenario key (repeatable)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace a study already in --out")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_impact)
    return p


def cmd_impact(args: argparse.Namespace) -> int:
    """``marketsim impact``: run the study, write its files, print the fit."""
    from analysis.experiments import run_impact_study
    from analysis.report import plot_impact_law
    from marketsim.cli import resolve_scenario
    from marketsim.sweep import parse_seeds

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {str(out)!r} exists and is not a directory")
    if (out / "impact.parquet").exists() and not args.overwrite:
        raise ConfigError(
            f"--out {str(out)!r} already holds an impact study; choose another folder or pass "
            "--overwrite"
        )
    if args.workers < 1:
        raise ConfigError(f"--workers {args.workers}: must be >= 1")
    path = resolve_scenario(args.scenario)
    # options left out take run_impact_study's defaults (one place for the default protocol)
    given = {
        k: v
        for k, v in (("start_s", args.start_s), ("participation", args.participation))
        if v is not None
    }
    study = run_impact_study(
        path,
        out,
        seeds=parse_seeds(args.seeds),
        sizes=args.sizes,
        algo=args.algo,
        side=args.side,
        duration_s=args.duration_s,
        day=args.day,
        wake_interval_s=args.interval_s,
        aggression=args.aggression,
        overrides=args.overrides,
        **given,
        path_every=args.path_every,
        fit_method=args.fit_method,
        workers=args.workers,
        progress=not args.quiet,
    )
    plot_impact_law(study.rows, study.fit, out / "impact.png")
    f = study.fit
    r = study.rows
    print(
        f"{len(r)} meta-orders, Q/V from {r['q_over_v'].min():.3g} to {r['q_over_v'].max():.3g}; "
        f"mean I*/sigma {r['impact_over_sigma'].mean():.3g}"
    )
    if f.get("delta") is not None:
        ci = f.get("delta_ci") or [None, None]
        ci_s = f" [{ci[0]:.3g}, {ci[1]:.3g}]" if ci[0] is not None else ""
        print(f"impact law: I/sigma = {f['Y']:.3g} (Q/V)^{f['delta']:.3g}{ci_s} ({f['method']})")
    else:
        print(f"impact law: not fitted ({f.get('note')})")
    print(f"impact study: {out}")
    return 0
