"""Command-line interface: ``marketsim run``, ``marketsim schema`` and the subcommand registry.

Usage::

    marketsim run [SCENARIO] [--seed N] [--steps N] [--out DIR] [--set key=value ...]
                  [--no-plots] [--quiet] [--overwrite]
    marketsim schema [--out FILE]
    marketsim --version

``run`` writes a run directory (default ``runs/<scenario name>-<seed>-<YYYYmmdd-HHMMSS>``)
holding the recorder's Parquet tables, ``summary.json`` (:mod:`marketsim.summary`),
``scenario.toml`` (the validated scenario with every default filled in; it re-runs the same
market with ``marketsim run DIR/scenario.toml --seed N``) and PNG plots
(:func:`analysis.plots.plot_run`), then prints a summary table.

Exit status: 0 success, 1 other marketsim error, 2 bad usage or configuration (the
:class:`~marketsim.errors.ConfigError` message, which names the key, goes to stderr without a
traceback), 130 interrupted.

Adding a subcommand: write a function ``add_parser(subparsers)`` in your own module that calls
``subparsers.add_parser(NAME, help=...)``, adds its arguments and
``set_defaults(func=handler)`` where ``handler(args) -> int`` returns the exit status; then list
``NAME: "package.module:add_parser"`` in :data:`COMMANDS` (or call :func:`register_command`).
Keep heavy imports (torch, ...) inside the handler: every module in the registry is imported to
build the parser, so ``marketsim run`` pays for their top-level imports.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import logging
import math
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import marketsim
from marketsim import __version__
from marketsim.errors import ConfigError, MarketSimError

logger = logging.getLogger(__name__)

__all__ = [
    "COMMANDS",
    "DEFAULT_SCENARIO",
    "build_parser",
    "default_run_dir",
    "main",
    "register_command",
    "resolve_scenario",
    "scenario_to_toml",
]

#: Scenario run when ``marketsim run`` is given none.
DEFAULT_SCENARIO = "quickstart.toml"
#: Files of a run directory that ``--overwrite`` replaces (plus ``<table>.parquet`` and PNGs).
RUN_FILES = ("summary.json", "scenario.toml")

#: Subcommands in help order: name -> ``"module:function"``; the function takes the
#: argparse subparsers object and adds the command's parser (see the module docstring).
COMMANDS: dict[str, str] = {
    "run": "marketsim.cli:add_run_parser",
    "schema": "marketsim.cli:add_schema_parser",
    "sweep": "marketsim.sweep_cli:add_parser",
    "monitor": "marketsim.monitor_cli:add_parser",
    "train": "agents.rl.cli:add_parser",
    "data": "marketsim.data:add_data_parser",
    "report": "marketsim.report_cli:add_report_parser",
    "impact": "marketsim.report_cli:add_impact_parser",
}


def register_command(name: str, target: str | Callable[[Any], Any]) -> None:
    """Add (or replace) subcommand ``name``: a ``"module:function"`` string or the function.

    Raises:
        ConfigError: ``target`` is not a ``"module:function"`` string or a callable.
    """
    if not (callable(target) or (isinstance(target, str) and target.count(":") == 1)):
        raise ConfigError(
            f"register_command({name!r}, target={target!r}): target must be "
            "'package.module:add_parser' or a callable add_parser(subparsers)"
        )
    COMMANDS[name] = target  # type: ignore[assignment]


def _load_adder(name: str, target: str | Callable) -> Callable | None:
    if callable(target):
        return target
    mod_name, _, fn_name = target.partition(":")
    try:
        return getattr(importlib.import_module(mod_name), fn_name)
    except (ImportError, AttributeError) as exc:
        # one broken optional command (a missing extra, say) must not break the others
        logger.warning("marketsim %s is unavailable: %s", name, exc)
        return None


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every registered subcommand. O(commands)."""
    parser = argparse.ArgumentParser(
        prog="marketsim",
        description="Agent-based market simulator: run scenarios, inspect their schema.",
    )
    parser.add_argument("--version", action="version", version=f"marketsim {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more log output (-vv: debug)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, target in list(COMMANDS.items()):
        adder = _load_adder(name, target)
        if adder is not None:
            adder(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``marketsim`` console script; returns the exit status.

    Args:
        argv: Arguments without the program name; default ``sys.argv[1:]``.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, usage errors
        return _exit_code(exc.code)
    _setup_logging(args.verbose)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(func(args) or 0)
    except ConfigError as exc:
        print(f"marketsim {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except MarketSimError as exc:
        print(f"marketsim {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"marketsim {args.command}: interrupted", file=sys.stderr)
        return 130


def _exit_code(code: Any) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


class _StderrHandler(logging.StreamHandler):
    """Writes to the current ``sys.stderr`` (which tests and wrappers may swap)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def _setup_logging(verbose: int) -> None:
    level = logging.WARNING if verbose <= 0 else logging.INFO if verbose == 1 else logging.DEBUG
    root = logging.getLogger()
    if not any(isinstance(h, _StderrHandler) for h in root.handlers):
        h = _StderrHandler(sys.stderr)
        h.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        root.addHandler(h)
    logging.getLogger("marketsim").setLevel(level)
    logging.getLogger("agents").setLevel(level)
    logging.getLogger("analysis").setLevel(level)


# ---------------------------------------------------------------------------- scenario paths
def _scenario_dirs() -> list[Path]:
    """Folders searched for scenario names: ``./scenarios`` and the one next to the package."""
    dirs = [
        Path.cwd() / "scenarios",
        Path(marketsim.__file__).resolve().parent.parent / "scenarios",
    ]
    return list(dict.fromkeys(dirs))


def resolve_scenario(name: str | None) -> Path:
    """Find a scenario file: a path as given, else by name in the scenario folders. O(1).

    ``name`` may be a path (``my/run.toml``), a file name or a bare name (``quickstart``);
    relative names are also looked up in ``./scenarios`` and in the ``scenarios`` folder next
    to the installed package. ``None`` means :data:`DEFAULT_SCENARIO`.

    Raises:
        ConfigError: nothing found (the message lists the places tried and the scenarios
            available).
    """
    name = DEFAULT_SCENARIO if name is None else name
    p = Path(name).expanduser()
    names = [p] if p.suffix else [p, p.with_name(p.name + ".toml")]
    cands = list(names)
    if not p.is_absolute():
        root = Path(marketsim.__file__).resolve().parent.parent
        for n in names:
            cands += [d / n for d in _scenario_dirs()] + [root / n]
    for c in dict.fromkeys(cands):
        if c.is_file():
            return c
    avail = sorted({f.name for d in _scenario_dirs() if d.is_dir() for f in d.glob("*.toml")})
    tried = ", ".join(str(c) for c in dict.fromkeys(cands))
    raise ConfigError(
        f"scenario {name!r} not found (tried {tried}); available scenarios: "
        f"{', '.join(avail) if avail else 'none'} - pass a path to a .toml file"
    )


def default_run_dir(name: str, seed: int, root: str | Path = "runs") -> Path:
    """``<root>/<name>-<seed>-<YYYYmmdd-HHMMSS>`` (``-2``, ``-3``, ... if taken). O(1)."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "run"
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = Path(root) / f"{safe}-{seed}-{stamp}"
    out, k = base, 1
    while out.exists():
        k += 1
        out = base.with_name(f"{base.name}-{k}")
    return out


# ---------------------------------------------------------------------------- TOML writer
_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _toml_key(k: str) -> str:
    return k if _BARE_KEY.match(k) else json.dumps(k)


def _toml_value(v: Any, where: str) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, Mapping):
        items = [
            f"{_toml_key(str(k))} = {_toml_value(x, where)}" for k, x in v.items() if x is not None
        ]
        return "{ " + ", ".join(items) + " }" if items else "{}"
    if isinstance(v, list | tuple):
        if any(x is None for x in v):
            raise ConfigError(f"{where}: TOML cannot hold null inside a list ({v!r})")
        return "[" + ", ".join(_toml_value(x, where) for x in v) + "]"
    raise ConfigError(f"{where}: cannot write {type(v).__name__} value {v!r} as TOML")


def scenario_to_toml(data: Mapping[str, Any], header: str = "") -> str:
    """TOML text of a scenario dict (e.g. ``Scenario.to_dict()``); ``None`` values are left out.

    Top-level tables become ``[table]`` sections, lists of tables ``[[table]]`` entries, and
    deeper dicts inline tables. ``load_scenario`` of the text gives the same scenario (same
    hash) because every ``None`` in a scenario is a default. O(size).

    Raises:
        ConfigError: a value TOML cannot hold (``None`` inside a list, unknown types).
    """
    out: list[str] = [f"# {line}".rstrip() for line in header.splitlines()]
    if out:
        out.append("")
    tables: list[str] = []
    for key, v in data.items():
        k = _toml_key(str(key))
        if v is None:
            continue
        if isinstance(v, Mapping):
            tables.append(f"[{k}]")
            tables += [
                f"{_toml_key(str(kk))} = {_toml_value(x, f'{key}.{kk}')}"
                for kk, x in v.items()
                if x is not None
            ]
            tables.append("")
        elif isinstance(v, list) and v and all(isinstance(x, Mapping) for x in v):
            for i, entry in enumerate(v):
                tables.append(f"[[{k}]]")
                tables += [
                    f"{_toml_key(str(kk))} = {_toml_value(x, f'{key}[{i}].{kk}')}"
                    for kk, x in entry.items()
                    if x is not None
                ]
                tables.append("")
        else:
            out.append(f"{k} = {_toml_value(v, str(key))}")
    if len(out) and out[-1] != "":
        out.append("")
    return "\n".join(out + tables).rstrip("\n") + "\n"


# ---------------------------------------------------------------------------- run
def add_run_parser(sub: Any) -> argparse.ArgumentParser:
    """Add ``marketsim run``."""
    p = sub.add_parser(
        "run",
        help="run a scenario and write logs, summary and plots",
        description=(
            "Run a scenario file and write a run directory: Parquet logs (trades, quotes, "
            "accounts, positions, events, and orders/l2 when enabled), summary.json, "
            "scenario.toml (validated copy) and PNG plots. Prints a summary table."
        ),
    )
    p.add_argument(
        "scenario",
        nargs="?",
        default=None,
        help=f"scenario .toml path or name in scenarios/ (default: {DEFAULT_SCENARIO})",
    )
    p.add_argument("--seed", type=int, default=None, help="random seed (default: the file's)")
    p.add_argument(
        "--steps", type=_nonneg_int, default=None, help="steps to run (default: the whole session)"
    )
    p.add_argument(
        "--out",
        default=None,
        metavar="DIR",
        help="run directory (default: runs/<scenario>-<seed>-<YYYYmmdd-HHMMSS>)",
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a scenario key, e.g. --set agents.noise.count=50 (repeatable)",
    )
    p.add_argument("--no-plots", action="store_true", help="do not write PNG plots")
    p.add_argument("--quiet", action="store_true", help="no progress bar and no summary table")
    p.add_argument(
        "--overwrite", action="store_true", help="replace the run files of an existing --out DIR"
    )
    p.set_defaults(func=cmd_run)
    return p


def _nonneg_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {text!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {v}")
    return v


def _prepare_out_dir(out: Path, overwrite: bool) -> None:
    from marketsim.recorder import TABLES

    ours = [out / f for f in RUN_FILES] + [out / f"{t}.parquet" for t in TABLES]
    if out.is_dir():
        found = [p for p in ours if p.exists()]
        if found and not overwrite:
            raise ConfigError(
                f"--out {str(out)!r} already holds a run ({found[0].name}); choose another "
                "directory or pass --overwrite"
            )
        for p in found + sorted(out.glob("*.png")):
            p.unlink()
    elif out.exists():
        raise ConfigError(f"--out {str(out)!r} exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)


def _final_snapshot(model: Any) -> None:
    """Record accounts at the last step run unless the model's schedule already did."""
    t = model.t - 1
    if model.recorder is None or t < 0:
        return
    every = model.scenario.simulation.record_every
    if t % every == 0 or (t + 1) % model.session.steps_per_day == 0:
        return
    model.record_accounts(t)


def cmd_run(args: argparse.Namespace) -> int:
    """``marketsim run``: build, run, record, summarise and plot; return the exit status."""
    from marketsim.model import MarketModel
    from marketsim.scenario import load_scenario
    from marketsim.summary import format_summary_table, summarize, write_summary

    path = resolve_scenario(args.scenario)
    sc = load_scenario(path, args.overrides)
    seed = sc.simulation.seed if args.seed is None else args.seed
    if seed < 0:
        raise ConfigError(f"--seed {seed}: must be >= 0")
    out = Path(args.out) if args.out else default_run_dir(sc.simulation.name, seed)
    _prepare_out_dir(out, args.overwrite)
    model = MarketModel(sc, seed=seed, out_dir=out)
    header = (
        f"Validated scenario of run {out.name} (every default filled in), from {path}.\n"
        f"scenario hash {model.scenario_hash}; reproduce the run with:\n"
        f"  marketsim run {out / 'scenario.toml'} --seed {seed}"
    )
    (out / "scenario.toml").write_text(scenario_to_toml(sc.to_dict(), header), encoding="utf-8")
    logger.info("running %s (seed %d) into %s", path, seed, out)
    try:
        model.run(args.steps, progress=not args.quiet)
    except KeyboardInterrupt:
        _final_snapshot(model)
        model.close()
        print(
            f"marketsim run: interrupted at step {model.t}; partial logs in {out}", file=sys.stderr
        )
        return 130
    _final_snapshot(model)
    model.close()
    summary = summarize(model)
    write_summary(summary, out / "summary.json")
    if not args.no_plots:
        _plots(out)
    if not args.quiet:
        print(format_summary_table(summary))
        print()
    print(f"run directory: {out}")
    return 0


def _plots(out: Path) -> list[Path]:
    """Write the run's plots; a failure is reported, not fatal (the logs are written)."""
    try:
        from analysis.plots import plot_run
    except ImportError as exc:
        print(f"marketsim run: warning: plots skipped ({exc})", file=sys.stderr)
        return []
    try:
        return plot_run(out)
    except Exception as exc:  # the run itself succeeded: report, do not fail
        logger.debug("plotting failed", exc_info=True)
        print(
            f"marketsim run: warning: plots failed ({type(exc).__name__}: {exc}); "
            f"logs and summary are in {out}",
            file=sys.stderr,
        )
        return []


# ---------------------------------------------------------------------------- schema
def add_schema_parser(sub: Any) -> argparse.ArgumentParser:
    """Add ``marketsim schema``."""
    p = sub.add_parser(
        "schema",
        help="print the JSON schema of scenario files",
        description="Print (or write) the JSON schema of scenario files, with every "
        "registered agent type's params.",
    )
    p.add_argument("--out", default=None, metavar="FILE", help="write the schema to FILE")
    p.set_defaults(func=cmd_schema)
    return p


def cmd_schema(args: argparse.Namespace) -> int:
    """``marketsim schema``: print or write ``Scenario.json_schema()``."""
    from marketsim.scenario import Scenario

    text = json.dumps(Scenario.json_schema(), indent=2) + "\n"
    if args.out:
        out = Path(args.out)
        if out.parent != Path("") and not out.parent.is_dir():
            raise ConfigError(f"--out {str(out)!r}: folder {str(out.parent)!r} does not exist")
        out.write_text(text, encoding="utf-8")
        print(f"schema written to {out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
