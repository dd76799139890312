"""Parameter sweeps: rows and columns, resumability, failures, backends, CLI parsing."""

from __future__ import annotations

import copy
import importlib.util
import json
import os

import numpy as np
import pandas as pd
import pytest

import marketsim.sweep as sweep_mod
from marketsim.cli import build_parser, main
from marketsim.errors import ConfigError
from marketsim.model import MarketModel
from marketsim.summary import summarize
from marketsim.sweep import (
    JOURNAL_FILE,
    RESULTS_FILE,
    expand_grid,
    flatten_summary,
    format_value,
    load_results,
    make_run_id,
    parse_grid_item,
    parse_seeds,
    parse_value,
    run_sweep,
)

STEPS = 120
HAS_FACTS = importlib.util.find_spec("analysis.stylized") is not None
#: Columns that differ between two executions of the same run.
VOLATILE = {"wall_seconds", "sim_wall_seconds", "steps_per_second", "host", "finished_at"}

TINY = {
    "simulation": {
        "name": "sweep-test",
        "seed": 3,
        "open": "09:30",
        "close": "09:40",
        "max_assets": 1,
        "record_every": 60,
    },
    "assets": [{"symbol": "AAA", "initial_price": 100.0}],
    "fundamental": {"kind": "mean_reverting", "params": {"kappa": 1e-3, "sigma": 0.01}},
    "agents": [
        {
            "type": "noise",
            "count": 20,
            "cash": 1e6,
            "shares": {"AAA": 200},
            "params": {"wake_rate_per_hour": 240.0},
        },
        {
            "type": "market_maker",
            "count": 1,
            "cash": 1e7,
            "shares": {"AAA": 2000},
            "params": {"wake_interval_s": 2.0},
        },
    ],
}


def tiny() -> dict:
    return copy.deepcopy(TINY)


def stable(df: pd.DataFrame) -> pd.DataFrame:
    """Columns that must be identical for the same run on any backend."""
    return df.drop(columns=[c for c in df.columns if c in VOLATILE]).reset_index(drop=True)


def reference_row(seed: int, overrides: list[str]) -> dict:
    """The obvious way: build, run, snapshot, summarise one model by hand."""
    m = MarketModel(tiny(), seed=seed, overrides=overrides)
    m.run(STEPS)
    m.record_accounts(m.t - 1)
    m.close()
    row = flatten_summary(summarize(m))
    m.release()
    return row


# ---------------------------------------------------------------------------- parsing
def test_parse_seeds_ranges_lists_and_errors():
    assert parse_seeds("0-3") == [0, 1, 2, 3]
    assert parse_seeds("0,3,7") == [0, 3, 7]
    assert parse_seeds("0-2,10,1") == [0, 1, 2, 10]
    assert parse_seeds(5) == [5]
    assert parse_seeds(range(3)) == [0, 1, 2]
    with pytest.raises(ConfigError, match=r"range '5-3' is descending; write 3-5"):
        parse_seeds("5-3")
    with pytest.raises(ConfigError, match=r"item 'x' is not an integer"):
        parse_seeds("1,x")
    with pytest.raises(ConfigError, match=r"-1 is negative"):
        parse_seeds([0, -1])


def test_parse_grid_item_types_brackets_and_errors():
    assert parse_grid_item("agents.noise.count=10,20") == ("agents.noise.count", [10, 20])
    key, vals = parse_grid_item(" exchange.taker_fee_bps = 0.5, 1 ,0.5")
    assert key == "exchange.taker_fee_bps" and vals == [0.5, 1]
    assert parse_grid_item("fundamental.kind=gbm,mean_reverting")[1] == ["gbm", "mean_reverting"]
    assert parse_grid_item('x=[1, 2],[3],"a,b"')[1] == [[1, 2], [3], "a,b"]
    with pytest.raises(ConfigError, match=r"must be KEY=V1,V2"):
        parse_grid_item("agents.noise.count")
    with pytest.raises(ConfigError, match=r"empty value"):
        parse_grid_item("a=1,,2")


@pytest.mark.parametrize("v", [3, -2.5, 1e-7, True, "gbm", "1", "", [1, 2.5], {"a": 1}])
def test_format_value_round_trips_through_parse_value(v):
    assert parse_value(format_value(v)) == v


def test_run_ids_depend_on_params_seed_steps_and_base():
    a = make_run_id("h", {"k": 1}, 0, None)
    assert a == make_run_id("h", {"k": 1}, 0, None)
    others = [
        make_run_id("h", {"k": 2}, 0, None),
        make_run_id("h", {"k": 1}, 1, None),
        make_run_id("h", {"k": 1}, 0, 100),
        make_run_id("g", {"k": 1}, 0, None),
    ]
    assert len({a, *others}) == 5
    specs = expand_grid({"a": [1, 2], "b": ["x", "y"]}, [0, 1], "h")
    assert [(s.params["a"], s.params["b"], s.seed) for s in specs][:3] == [
        (1, "x", 0),
        (1, "x", 1),
        (1, "y", 0),
    ]
    assert len(specs) == 8 and specs[0].overrides == ("a=1", 'b="x"')


def test_cli_parses_grid_and_seeds():
    args = build_parser().parse_args(
        ["sweep", "sc.toml", "--grid", "agents.noise.count=10,20", "--grid",
         "exchange.taker_fee_bps=0.5,1", "--seeds", "0-2,5", "--workers", "2", "--out", "d"]
    )  # fmt: skip
    assert args.grid == [("agents.noise.count", [10, 20]), ("exchange.taker_fee_bps", [0.5, 1])]
    assert args.seeds == [0, 1, 2, 5]
    assert (args.workers, args.out, args.backend, args.address) == (2, "d", None, None)
    assert args.retry_failed and args.facts and not args.keep_logs


def test_cli_rejects_bad_seeds_and_duplicate_keys(tmp_path, capsys):
    assert main(["sweep", "sc.toml", "--seeds", "3-1", "--out", str(tmp_path)]) == 2
    assert "descending" in capsys.readouterr().err
    argv = ["sweep", "sc.toml", "--grid", "a=1", "--grid", "a=2", "--out", str(tmp_path / "o")]
    assert main(argv) == 2
    assert "given twice" in capsys.readouterr().err


# ---------------------------------------------------------------------------- sweeps
def test_local_sweep_rows_columns_and_values(tmp_path):
    df = run_sweep(
        tiny(), {"agents.noise.count": [10, 20]}, [0, 1], "local",
        out_dir=tmp_path, workers=2, steps=STEPS,
    )  # fmt: skip
    assert len(df) == 4
    assert df["agents.noise.count"].tolist() == [10, 10, 20, 20]
    assert df["seed"].tolist() == [0, 1, 0, 1]
    assert (df["status"] == "ok").all() and df["error"].isna().all()
    assert df["run_id"].is_unique and sorted(df.attrs["ran"]) == sorted(df["run_id"])
    assert (df["wall_seconds"] > 0).all() and (df["steps"] == STEPS).all()
    # the override reached the model: the noise group has the grid's size
    assert df["type.noise.count"].tolist() == [10, 10, 20, 20]
    for col in ("trades", "volume", "asset.AAA.spread_mean_ticks", "type.market_maker.pnl_total"):
        assert col in df.columns
    if HAS_FACTS:
        assert "fact.excess_kurtosis" in df.columns and "fact.tail_index.passed" in df.columns
    # the Parquet file holds the same rows
    on_disk = pd.read_parquet(tmp_path / RESULTS_FILE)
    pd.testing.assert_frame_equal(stable(on_disk), stable(df), check_dtype=False)
    # each row equals a run done by hand
    for i in (0, 3):
        ref = reference_row(
            int(df["seed"][i]), [f"agents.noise.count={df['agents.noise.count'][i]}"]
        )
        for col in ("trades", "volume", "orders", "asset.AAA.spread_mean_ticks",
                    "asset.AAA.vwap", "type.noise.pnl_total", "type.market_maker.final_equity"):  # fmt: skip
            assert df[col][i] == pytest.approx(ref[col], nan_ok=True), col


def test_seeds_only_sweep_defaults_to_the_scenario_seed(tmp_path):
    df = run_sweep(tiny(), None, None, "serial", out_dir=tmp_path, steps=STEPS, facts=False)
    assert df["seed"].tolist() == [TINY["simulation"]["seed"]]
    assert not any(c.startswith("fact.") for c in df.columns)


def test_resume_skips_finished_and_reruns_a_deleted_row(tmp_path):
    kw = dict(out_dir=tmp_path, steps=STEPS, facts=False)
    first = run_sweep(tiny(), {"agents.noise.count": [10, 20]}, [0, 1], "serial", **kw)
    assert len(first.attrs["ran"]) == 4
    again = run_sweep(tiny(), {"agents.noise.count": [10, 20]}, [0, 1], "serial", **kw)
    assert again.attrs["ran"] == [] and sorted(again.attrs["skipped"]) == sorted(first["run_id"])
    pd.testing.assert_frame_equal(again, first)
    # delete one row: exactly that run is done again, the others keep their rows
    table = pd.read_parquet(tmp_path / RESULTS_FILE)
    gone = table["run_id"][2]
    table[table["run_id"] != gone].to_parquet(tmp_path / RESULTS_FILE)
    third = run_sweep(tiny(), {"agents.noise.count": [10, 20]}, [0, 1], "serial", **kw)
    assert third.attrs["ran"] == [gone]
    keep = third["run_id"] != gone
    assert third["finished_at"][keep].tolist() == first["finished_at"][keep].tolist()
    pd.testing.assert_frame_equal(stable(third), stable(first))
    # more seeds later: only the new ones run
    more = run_sweep(tiny(), {"agents.noise.count": [10, 20]}, [0, 1, 2], "serial", **kw)
    assert len(more) == 6 and len(more.attrs["ran"]) == 2
    assert set(more["seed"][more["run_id"].isin(more.attrs["ran"])]) == {2}


def test_crash_keeps_finished_runs_in_the_journal(tmp_path, monkeypatch):
    calls = []
    real = sweep_mod.run_one

    def dying(task, scenario=None):
        if len(calls) == 2:
            raise KeyboardInterrupt  # the process "dies" during the third run
        calls.append(task["run_id"])
        return real(task, scenario)

    monkeypatch.setattr(sweep_mod, "run_one", dying)
    monkeypatch.setattr(sweep_mod._Store, "consolidate", lambda self, order=(): None)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(tiny(), {"agents.noise.count": [10, 20]}, [0, 1], "serial",
                  out_dir=tmp_path, steps=STEPS, facts=False)  # fmt: skip
    assert not (tmp_path / RESULTS_FILE).exists()
    lines = (tmp_path / JOURNAL_FILE).read_text().splitlines()
    assert [json.loads(x)["run_id"] for x in lines] == calls
    assert sorted(load_results(tmp_path)["run_id"]) == sorted(calls)
    monkeypatch.undo()
    df = run_sweep(tiny(), {"agents.noise.count": [10, 20]}, [0, 1], "serial",
                   out_dir=tmp_path, steps=STEPS, facts=False)  # fmt: skip
    assert sorted(df.attrs["skipped"]) == sorted(calls) and len(df.attrs["ran"]) == 2
    assert len(df) == 4 and (df["status"] == "ok").all()
    assert (tmp_path / JOURNAL_FILE).read_text() == ""  # folded into the Parquet file


def test_failing_run_is_recorded_and_the_others_finish(tmp_path):
    kw = dict(out_dir=tmp_path, steps=STEPS, facts=False)
    df = run_sweep(tiny(), {"agents.noise.count": [10, -5]}, [0, 1], "serial", **kw)
    bad = df[df["agents.noise.count"] == -5]
    good = df[df["agents.noise.count"] == 10]
    assert (bad["status"] == "failed").all() and (good["status"] == "ok").all()
    assert bad["error"].str.contains(r"agents\[0\].count = -5: must be >= 0").all()
    assert bad["traceback"].str.contains("ConfigError").all()
    assert bad["trades"].isna().all() and (good["trades"] > 0).all()
    assert sorted(df.attrs["failed"]) == sorted(bad["run_id"])
    # failed runs are retried by default, or kept with retry_failed=False
    kept = run_sweep(
        tiny(), {"agents.noise.count": [10, -5]}, [0, 1], "serial", retry_failed=False, **kw
    )
    assert kept.attrs["ran"] == []
    retried = run_sweep(tiny(), {"agents.noise.count": [10, -5]}, [0, 1], "serial", **kw)
    assert sorted(retried.attrs["ran"]) == sorted(bad["run_id"])


def test_undefined_statistics_stay_numeric_however_often_results_are_flushed(tmp_path):
    """A one-agent group has no P&L spread (NaN). Folding rows into results.parquet after
    every run (what a slow or loaded machine does with the default 30-s flush) must give the
    same table as folding once: the column stays float, never an all-None object column."""
    grid = {"agents.noise.count": [10, -5]}
    kw = dict(steps=STEPS, facts=False)
    once = run_sweep(tiny(), grid, [0], "serial", out_dir=tmp_path / "once", **kw)
    each = run_sweep(
        tiny(), grid, [0], "serial", out_dir=tmp_path / "each", flush_every_s=0.0, **kw
    )
    col = "type.market_maker.pnl_std"
    assert once[col].dtype == each[col].dtype == np.float64
    assert once[col].isna().all()
    pd.testing.assert_frame_equal(
        stable(once).drop(columns=["traceback"]), stable(each).drop(columns=["traceback"])
    )


def crash_or_echo(task: dict, scenario: dict | None = None) -> dict:
    """Worker stand-in: kills its own process for run ids starting with "crash"."""
    if task["run_id"].startswith("crash"):
        os._exit(3)
    return {"status": "ok", "error": None, "wall_seconds": 0.0}


@pytest.mark.slow
def test_local_pool_records_a_crashing_run_and_finishes_the_others():
    ids = ["a", "crash1", "b", "c", "crash2", "d", "e"]
    got: dict[str, list[dict]] = {}
    sweep_mod._run_local(
        [{"run_id": r} for r in ids], {}, 2,
        lambda t, res: got.setdefault(t["run_id"], []).append(res), fn=crash_or_echo,
    )  # fmt: skip
    assert sorted(got) == sorted(ids) and all(len(v) == 1 for v in got.values())
    for rid, (res,) in got.items():
        if rid.startswith("crash"):
            assert res["status"] == "failed" and "killed its worker" in res["error"]
        else:
            assert res["status"] == "ok", rid


def test_bad_arguments_raise_before_anything_runs(tmp_path):
    with pytest.raises(ConfigError, match=r"nosuchkey"):
        run_sweep(tiny(), {"agents.noise.nosuchkey": [1]}, [0], "serial", out_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"backend = 'dask': must be one of local, ray, serial"):
        run_sweep(tiny(), {}, [0], "dask", out_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"needs backend='ray'"):
        run_sweep(tiny(), {}, [0], "local", address="auto", out_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"grid\['a'\] is empty"):
        run_sweep(tiny(), {"a": []}, [0], "serial", out_dir=tmp_path)
    assert not (tmp_path / RESULTS_FILE).exists()


def test_cli_sweep_end_to_end(tmp_path, capsys):
    sc = tmp_path / "tiny.toml"
    from marketsim.cli import scenario_to_toml

    sc.write_text(scenario_to_toml(TINY))
    out = tmp_path / "out"
    argv = ["sweep", str(sc), "--grid", "agents.noise.count=10,-5", "--seeds", "0",
            "--steps", str(STEPS), "--backend", "serial", "--no-facts", "--quiet", "--out", str(out)]  # fmt: skip
    assert main(argv) == 1
    text = capsys.readouterr()
    assert "2 runs: 1 ok, 1 failed (2 run now, 0 done before)" in text.out
    assert "must be >= 0" in text.err
    assert main([*argv, "--no-retry-failed"]) == 1
    assert "(0 run now, 2 done before)" in capsys.readouterr().out
    spec = json.loads((out / "sweep.json").read_text())
    assert spec["grid"] == {"agents.noise.count": [10, -5]} and spec["seeds"] == [0]


# ---------------------------------------------------------------------------- ray
@pytest.fixture(scope="module")
def ray_local():
    ray = pytest.importorskip(
        "ray", reason="Ray is an optional extra: pip install marketsim[distributed]"
    )
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_ray_backend_gives_the_same_rows_as_serial(ray_local, tmp_path):
    grid = {"agents.noise.count": [10, -5]}
    kw = dict(steps=STEPS, facts=False)
    via_ray = run_sweep(tiny(), grid, [0], "ray", out_dir=tmp_path / "r", **kw)
    assert ray_local.is_initialized()  # an instance it did not start is left running
    serial = run_sweep(tiny(), grid, [0], "serial", out_dir=tmp_path / "s", **kw)
    assert via_ray["status"].tolist() == ["ok", "failed"]
    assert sorted(via_ray.attrs["ran"]) == sorted(via_ray["run_id"])
    a = stable(via_ray).drop(columns=["traceback"])
    b = stable(serial).drop(columns=["traceback"])
    pd.testing.assert_frame_equal(a, b)
    assert np.isfinite(via_ray["wall_seconds"]).all()
