"""End-to-end tests of ``marketsim run`` / ``marketsim schema`` through ``main([...])``.

A throwaway zero-intelligence trader type is registered here so the tests do not depend on
the real background agents; runs are one short session (a few hundred ms each).
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import tomllib

import numpy as np
import pandas as pd
import pytest

from agents.background.base import BUY, SELL, Trader, TraderParams, register_trader
from marketsim import __version__
from marketsim.cli import (
    COMMANDS,
    default_run_dir,
    main,
    register_command,
    resolve_scenario,
    scenario_to_toml,
)
from marketsim.errors import ConfigError
from marketsim.params import Num
from marketsim.scenario import load_scenario


class _CliZIParams(TraderParams):
    size: Num = 3


@register_trader("cli_test_zi")
class _CliZI(Trader):
    """Limit orders around the fundamental with a random offset (test-only)."""

    Params = _CliZIParams

    def act(self, step: int) -> None:
        for s in self.slots:
            f = self.fundamental(s)
            side = BUY if self.model.rng.random() < 0.5 else SELL
            off = int(self.model.rng.integers(-4, 15))
            self.limit(s, side, int(f) - side * off, int(self.p["size"]))


SCENARIO = """
[simulation]
name = "cli test"
seed = 11
open = "09:30"
close = "09:50"
record_every = 60

[[assets]]
symbol = "ABC"
initial_price = 100.0

[[assets]]
symbol = "BRK.B"
initial_price = 50.0
tick_size = 0.05

[fundamental]
kind = "mean_reverting"
params = { kappa = 1e-3, sigma = 0.01 }

[[agents]]
type = "cli_test_zi"
name = "zi"
count = 20
cash = 1e6
shares = { ABC = 50, "BRK.B" = 50 }
params = { wake_rate_per_hour = 120, size = { dist = "uniform", low = 1, high = 6 } }

[[agents]]
type = "cli_test_zi"
name = "zi_cashonly"
count = 5
cash = 1e5
params = { wake_rate_per_hour = 60 }
"""
STEPS = 1200  # 09:30-09:50 at 1 s
PNGS = ("price_spread.png", "volume.png", "depth.png", "pnl.png")


def _no_nan(text: str) -> dict:
    def bad(name: str):
        raise AssertionError(f"summary.json holds {name}")

    return json.loads(text, parse_constant=bad)


@pytest.fixture(scope="module")
def scenario_file(tmp_path_factory):
    p = tmp_path_factory.mktemp("sc") / "cli_test.toml"
    p.write_text(SCENARIO, encoding="utf-8")
    return p


@pytest.fixture(scope="module")
def full_run(scenario_file, tmp_path_factory):
    """One complete run with plots; returns (run dir, exit code, stdout, stderr)."""
    out = tmp_path_factory.mktemp("runs") / "full"
    so, se = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(so), contextlib.redirect_stderr(se):
        rc = main(["run", str(scenario_file), "--out", str(out), "--seed", "4"])
    return out, rc, so.getvalue(), se.getvalue()


# ---------------------------------------------------------------------------- run
def test_run_writes_every_file(full_run):
    out, rc, stdout, _ = full_run
    assert rc == 0
    for t in ("trades", "quotes", "accounts", "positions", "events"):
        assert (out / f"{t}.parquet").is_file()
    for f in ("summary.json", "scenario.toml", *PNGS):
        assert (out / f).is_file() and (out / f).stat().st_size > 0, f
    assert f"run directory: {out}" in stdout


def test_summary_matches_parquet(full_run):
    out, *_ = full_run
    s = _no_nan((out / "summary.json").read_text())
    trades = pd.read_parquet(out / "trades.parquet")
    assert len(trades) > 100  # the run did trade
    assert s["trades"] == len(trades)
    assert s["volume"] == int(trades["qty"].sum())
    assert s["seed"] == 4 and s["steps"] == STEPS and s["scenario"] == "cli test"
    assert s["marketsim_version"] == __version__
    assert set(s["assets"]) == {"ABC", "BRK.B"}
    for sym, a in s["assets"].items():
        t = trades[trades["asset"].astype(str) == sym]
        assert a["trades"] == len(t)
        assert a["volume"] == int(t["qty"].sum())
        vwap = float((t["price"] * t["qty"]).sum() / t["qty"].sum())
        assert a["vwap"] == pytest.approx(vwap, rel=1e-12)
    assert sum(a["trades"] for a in s["assets"].values()) == s["trades"]
    assert isinstance(s["rejects"], dict)
    assert s["orders"] >= s["trades"] / 2 > 0


def test_summary_agent_types_match_accounts(full_run):
    out, *_ = full_run
    s = _no_nan((out / "summary.json").read_text())
    acc = pd.read_parquet(out / "accounts.parquet")
    acc["agent_type"] = acc["agent_type"].astype(str)
    assert list(s["agent_types"]) == ["zi", "zi_cashonly"]
    assert s["agent_types"]["zi"]["count"] == 20
    assert s["agent_types"]["zi_cashonly"]["count"] == 5
    first, last = acc["step"].min(), acc["step"].max()
    assert last == STEPS - 1  # the final snapshot is taken at the last step
    for typ, st in s["agent_types"].items():
        a = acc[acc["agent_type"] == typ]
        e0 = a[a["step"] == first].set_index("account")["equity"]
        e1 = a[a["step"] == last].set_index("account")["equity"]
        assert st["pnl_total"] == pytest.approx(float((e1 - e0).sum()), abs=1e-6)
        assert st["initial_equity"] == pytest.approx(float(e0.sum()))


def test_scenario_copy_reproduces_hash(full_run):
    out, *_ = full_run
    s = _no_nan((out / "summary.json").read_text())
    text = (out / "scenario.toml").read_text()
    assert f"--seed {s['seed']}" in text
    assert load_scenario(out / "scenario.toml").hash() == s["scenario_hash"]


def test_summary_table_printed(full_run):
    _, _, stdout, _ = full_run
    assert "Assets" in stdout and "Agents" in stdout
    assert "BRK.B" in stdout and "zi_cashonly" in stdout
    lines = stdout.splitlines()
    i = next(k for k, x in enumerate(lines) if x.startswith("asset "))
    assert set(lines[i + 1].replace(" ", "")) == {"-"}  # the rule under the header


def test_steps_no_plots_quiet_is_deterministic(scenario_file, tmp_path, capsys):
    frames = []
    for k in range(2):
        out = tmp_path / f"r{k}"
        rc = main(
            ["run", str(scenario_file), "--out", str(out), "--steps", "300"]
            + ["--no-plots", "--quiet"]
        )
        assert rc == 0
        assert not list(out.glob("*.png"))
        s = _no_nan((out / "summary.json").read_text())
        assert s["steps"] == 300 and s["seed"] == 11  # the file's seed
        acc = pd.read_parquet(out / "accounts.parquet")
        assert acc["step"].max() == 299
        frames.append(pd.read_parquet(out / "trades.parquet"))
    stdout = capsys.readouterr().out
    assert "Assets" not in stdout  # --quiet: no table
    pd.testing.assert_frame_equal(frames[0], frames[1])
    assert len(frames[0]) > 0


def test_set_override_applies(scenario_file, tmp_path):
    out = tmp_path / "r"
    argv = ["run", str(scenario_file), "--out", str(out), "--steps", "60", "--quiet"]
    argv += [
        "--no-plots",
        "--set",
        "agents.zi_cashonly.count=2",
        "--set",
        "assets.ABC.tick_size=0.05",
    ]
    assert main(argv) == 0
    s = _no_nan((out / "summary.json").read_text())
    assert s["agent_types"]["zi_cashonly"]["count"] == 2
    assert s["assets"]["ABC"]["tick_size"] == 0.05
    sc = tomllib.loads((out / "scenario.toml").read_text())
    assert sc["assets"][0]["tick_size"] == 0.05


def test_plot_failure_is_a_warning(scenario_file, tmp_path, capsys, monkeypatch):
    import analysis.plots

    def boom(run_dir):
        raise RuntimeError("no fonts")

    monkeypatch.setattr(analysis.plots, "plot_run", boom)
    out = tmp_path / "r"
    assert main(["run", str(scenario_file), "--out", str(out), "--steps", "30", "--quiet"]) == 0
    assert "plots failed (RuntimeError: no fonts)" in capsys.readouterr().err
    assert (out / "summary.json").is_file()


# ---------------------------------------------------------------------------- errors
def test_bad_override_key_exits_2(scenario_file, tmp_path, capsys):
    out = tmp_path / "never"
    rc = main(["run", str(scenario_file), "--out", str(out), "--set", "agents.zi.cuont=3"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "agents.zi.cuont" in err and "count" in err
    assert "Traceback" not in err
    assert not out.exists()


def test_bad_value_exits_2(scenario_file, tmp_path, capsys):
    rc = main(
        ["run", str(scenario_file), "--out", str(tmp_path / "x"), "--set", "simulation.days=0"]
    )
    assert rc == 2
    err = capsys.readouterr().err
    assert "simulation.days" in err and ">= 1" in err


def test_bad_seed_and_steps(scenario_file, tmp_path, capsys):
    assert main(["run", str(scenario_file), "--out", str(tmp_path / "x"), "--seed", "-3"]) == 2
    assert "seed" in capsys.readouterr().err
    assert main(["run", str(scenario_file), "--steps", "-1"]) == 2
    assert "--steps" in capsys.readouterr().err


def test_missing_scenario_exits_2(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["run", "no_such_scenario"]) == 2
    err = capsys.readouterr().err
    assert "no_such_scenario" in err and "not found" in err


def test_existing_out_dir_needs_overwrite(scenario_file, tmp_path, capsys):
    out = tmp_path / "r"
    argv = ["run", str(scenario_file), "--out", str(out), "--steps", "30", "--quiet", "--no-plots"]
    assert main(argv) == 0
    (out / "price_spread.png").write_bytes(b"stale")
    assert main(argv) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main([*argv, "--overwrite"]) == 0
    assert not (out / "price_spread.png").exists()  # stale plots of the old run are gone


# ---------------------------------------------------------------------------- other commands
def test_schema_stdout_and_file(tmp_path, capsys):
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert "properties" in schema and "assets" in schema["properties"]
    assert "cli_test_zi" in json.dumps(schema)  # registered agent params are included
    f = tmp_path / "schema.json"
    assert main(["schema", "--out", str(f)]) == 0
    assert json.loads(f.read_text()) == schema
    assert main(["schema", "--out", str(tmp_path / "nope" / "s.json")]) == 2


def test_version_help_and_no_command(capsys):
    assert main(["--version"]) == 0
    assert __version__ in capsys.readouterr().out
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "run" in out and "schema" in out
    assert main([]) == 2
    assert main(["frobnicate"]) == 2


def test_register_command(capsys):
    calls = []

    def add(sub):
        p = sub.add_parser("hello", help="test command")
        p.add_argument("--n", type=int, default=1)
        p.set_defaults(func=lambda args: calls.append(args.n) or 7)

    register_command("hello", add)
    try:
        assert main(["hello", "--n", "3"]) == 7
        assert calls == [3]
    finally:
        COMMANDS.pop("hello")
    with pytest.raises(ConfigError, match="target"):
        register_command("bad", "no_colon_here")


def test_broken_command_module_does_not_break_run(capsys):
    register_command("broken", "marketsim.no_such_module:add_parser")
    try:
        assert main(["schema"]) == 0
    finally:
        COMMANDS.pop("broken")


# ---------------------------------------------------------------------------- helpers
def test_resolve_scenario_by_name(tmp_path, monkeypatch):
    (tmp_path / "scenarios").mkdir()
    f = tmp_path / "scenarios" / "quickstart.toml"
    f.write_text(SCENARIO)
    monkeypatch.chdir(tmp_path)
    assert resolve_scenario(None).resolve() == f.resolve()
    assert resolve_scenario("quickstart").resolve() == f.resolve()
    assert resolve_scenario(str(f)) == f
    with pytest.raises(ConfigError, match="available scenarios: .*quickstart.toml"):
        resolve_scenario("other")


def test_default_run_dir_is_unique(tmp_path):
    a = default_run_dir("my run/1", 3, root=tmp_path)
    assert a.parent == tmp_path and a.name.startswith("my_run_1-3-")
    a.mkdir()
    b = default_run_dir("my run/1", 3, root=tmp_path)
    assert b != a and b.name.startswith(a.name)


def test_scenario_to_toml_round_trip():
    sc = load_scenario(tomllib.loads(SCENARIO), ["fundamental.intra_sector_corr=0.3"])
    text = scenario_to_toml(sc.to_dict(), header="line one\nline two")
    assert text.startswith("# line one\n# line two\n")
    data = tomllib.loads(text)
    assert data["agents"][0]["shares"] == {"ABC": 50, "BRK.B": 50}
    assert load_scenario(data).hash() == sc.hash()
    with pytest.raises(ConfigError, match="x"):
        scenario_to_toml({"x": [1, None]})


@pytest.mark.parametrize("v", [0.1, 1e-300, 1e300, -2.5, 3.0])
def test_toml_floats_exact(v):
    assert tomllib.loads(scenario_to_toml({"t": {"v": v}}))["t"]["v"] == v
    assert math.isinf(tomllib.loads(scenario_to_toml({"t": {"v": np.inf}}))["t"]["v"])
