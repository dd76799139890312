"""Tests of analysis.experiments and ``marketsim impact``: a tiny impact study (2 sizes x 1 seed
on a one-hour market) writes its files, and each counterfactual differs from its meta-order
run only through the meta-order."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.experiments import (
    EXECUTION_GROUP,
    IMPACT_COLUMNS,
    default_day,
    default_duration,
    fit_study,
    prepare_scenario,
    run_impact_study,
)
from marketsim.cli import main
from marketsim.errors import ConfigError
from marketsim.model import MarketModel

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "scenarios" / "quickstart.toml"
#: A one-hour quickstart market; meta-orders from 10 to 30 minutes after the open.
SHORT = ["simulation.close=10:30"]
WINDOW = {"start_s": 600.0, "duration_s": 1200.0, "wake_interval_s": 20.0}
SIZES = [300, 3000]


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    out = tmp_path_factory.mktemp("impact")
    return run_impact_study(
        QUICKSTART, out, seeds=[4], sizes=SIZES, overrides=SHORT, path_every=1, n_boot=50,
        algo="twap", **WINDOW,
    )  # fmt: skip


def test_study_writes_rows_fit_and_paths(study):
    out = study.out_dir
    rows = pd.read_parquet(out / "impact.parquet")
    assert len(rows) == 2 and list(rows["size"]) == SIZES
    for c in (*IMPACT_COLUMNS, "decay_0.5", "decay_1", "decay_2"):
        assert c in rows.columns, c
    assert (rows["filled_lots"] == rows["size"]).all()  # complete_at_end: every lot executed
    assert np.allclose(rows["q_over_v"], rows["size"] / rows["daily_volume"])
    assert np.allclose(rows["impact_over_sigma"], rows["peak_impact"] / rows["sigma"])
    assert (rows["side"] == 1).all() and (rows["daily_volume"] > 0).all()
    assert (rows["sigma"] > 0).all()
    # a TWAP order is complete with the fill of its last slice, sent one interval before the end
    assert (rows["duration_s"] == rows["end_step"] - rows["start_step"]).all()
    assert (rows["duration_s"] > 1200.0 - 2 * WINDOW["wake_interval_s"]).all()
    assert (rows["duration_s"] <= 1200.0).all()
    fit = json.loads((out / "impact_fit.json").read_text())
    for k in ("delta", "Y", "delta_ci", "Y_ci", "n", "method", "seeds", "sizes"):
        assert k in fit
    assert fit["sizes"] == SIZES and fit["seeds"] == [4]
    assert (out / "impact_paths.parquet").is_file()
    # the bigger meta-order pushes the price up by more than the small one, on average
    p = study.paths
    during = p[(p["phase"] == "during")]
    means = during.groupby("size")["impact"].mean()
    assert means[3000] > means[300] and means[3000] > 0


def test_pov_impact_is_read_when_the_metaorder_completes(tmp_path):
    # a small POV order finishes long before its window ends: the row's end step is its last
    # fill, and the peak impact is the impact path at that step
    st = run_impact_study(
        QUICKSTART, tmp_path, seeds=[4], sizes=[40, 400], overrides=SHORT, algo="pov",
        participation=0.2, path_every=1, n_boot=20, **WINDOW,
    )  # fmt: skip
    rows, p = st.rows, st.paths
    t0 = int(rows["start_step"].iloc[0])
    window_end = t0 + int(WINDOW["duration_s"])
    small = rows[rows["size"] == 40].iloc[0]
    assert small["filled_lots"] == 40
    assert t0 < small["end_step"] < window_end - 60
    assert small["duration_s"] == small["end_step"] - t0
    for _, r in rows.iterrows():
        path = p[p["size"] == r["size"]].set_index("step")["impact"]
        assert r["peak_impact"] == pytest.approx(path[int(r["end_step"])])


def test_pov_metaorder_still_open_at_the_window_end_is_reported(tmp_path, caplog):
    # at 1 % of the volume 3000 lots cannot be done in 20 minutes: the rest goes out as one
    # market order at the window's end (in this thin one-hour market it is not all filled),
    # and the study says so
    with caplog.at_level("WARNING", logger="analysis.experiments"):
        st = run_impact_study(
            QUICKSTART, None, seeds=[4], sizes=[3000], overrides=SHORT, algo="pov",
            participation=0.01, n_boot=20, **WINDOW,
        )  # fmt: skip
    assert 0 < st.rows["filled_lots"].iloc[0] <= 3000
    assert st.rows["duration_s"].iloc[0] == WINDOW["duration_s"]
    assert "1 of 1 POV meta-orders were still open" in caplog.text
    assert st.fit["algo"] == "pov" and st.fit["participation"] == 0.01


def test_counterfactual_differs_only_by_the_metaorder(study):
    p = study.paths
    t0 = int(study.rows["start_step"].iloc[0])
    for _, g in p.groupby("size"):
        # the same fundamental path at every step, with or without the meta-order
        assert np.array_equal(g["fundamental_with"], g["fundamental_without"])
        assert np.isfinite(g["fundamental_with"]).all()
        before = g[g["step"] < t0]
        assert len(before) == t0  # path_every=1 keeps every step of the day
        assert np.array_equal(before["mid_with"], before["mid_without"], equal_nan=True)
        after = g[g["step"] > t0 + 5]
        assert not np.array_equal(after["mid_with"], after["mid_without"], equal_nan=True)
    # the counterfactual is the run in which the execution agent never trades, from the start
    sc = prepare_scenario(QUICKSTART, SHORT, max_size=max(SIZES), **WINDOW)
    m = MarketModel(sc, seed=4)
    ex = next(a for a in m.account_agent.values() if a.type_name == "execution")
    ex.total = 0
    m.run()
    q = m.quotes()
    cf = p[p["size"] == SIZES[0]].set_index("step")["mid_without"]
    ref = q.set_index("step")["mid"].ffill().reindex(cf.index)
    assert np.array_equal(cf.to_numpy(), ref.to_numpy(), equal_nan=True)
    assert ex.n_children == 0 and ex.filled_lots == 0
    m.release()


def test_counterfactual_keeps_every_random_stream_aligned():
    """With and without the meta-order, the model's stream (wake order and schedule) ends in the
    same state, so every agent wakes at the same steps in both runs; agents draw decisions from
    their own streams, so those whose decisions never branched differently (a good share here)
    even end with identical streams, and the others do not shift anybody else's draws."""
    sc = prepare_scenario(QUICKSTART, SHORT, max_size=3000, **WINDOW)
    runs = []
    for total in (0, 3000):
        m = MarketModel(sc, seed=4, record=False)
        ex = next(a for a in m.account_agent.values() if a.type_name == "execution")
        ex.total = total
        m.run(2400)
        runs.append(m)
    a, b = runs
    assert a.rng.bit_generator.state == b.rng.bit_generator.state
    drawn = [
        (x.bit_generator.state, y.bit_generator.state)
        for x, y in (
            (p._drng, q._drng)
            for p, q in zip(a.account_agent.values(), b.account_agent.values(), strict=True)
            if p._drng is not None and q._drng is not None
        )
    ]
    same = sum(x == y for x, y in drawn)
    assert len(drawn) > 50 and same >= 0.3 * len(drawn), (same, len(drawn))
    assert a.exchange.volume[0] != b.exchange.volume[0]  # the markets did differ
    for m in runs:
        m.release()


def test_meta_orders_default_to_the_second_day_when_there_is_one():
    assert default_day(1) == 0 and default_day(2) == 1 and default_day(10) == 1

    def day_of(overrides):
        d = prepare_scenario(QUICKSTART, overrides, max_size=10, **WINDOW)
        return next(g for g in d["agents"] if g["type"] == "execution")["params"]["day"]

    assert day_of([*SHORT, "simulation.days=1"]) == 0
    assert day_of([*SHORT, "simulation.days=3"]) == 1
    with pytest.raises(ConfigError, match="day = 3"):
        prepare_scenario(QUICKSTART, [*SHORT, "simulation.days=3"], day=3, **WINDOW)


def test_default_protocol_is_pov_until_done_with_a_window_that_fits_the_session():
    """The default meta-order: POV at 20 % from 30 min after the open, until 30 min before the
    close (a longer meta-order lasts longer); TWAP and VWAP keep a one-hour window; a session
    too short for the POV window falls back to one hour."""
    assert default_duration("pov", 1800.0, 23400.0) == 23400.0 - 1800.0 - 1800.0
    assert default_duration("twap", 1800.0, 23400.0) == 3600.0
    assert default_duration("vwap", 600.0, 23400.0) == 3600.0
    assert default_duration("pov", 1800.0, 6000.0) == 3600.0  # 2400 s left: the TWAP window
    d = prepare_scenario(QUICKSTART, max_size=100)
    p = next(g for g in d["agents"] if g["type"] == "execution")["params"]
    assert (p["algo"], p["participation"], p["start_s"]) == ("pov", 0.2, 1800.0)
    assert p["end_s"] == 23400.0 - 1800.0
    d = prepare_scenario(QUICKSTART, max_size=100, algo="twap")
    p = next(g for g in d["agents"] if g["type"] == "execution")["params"]
    assert (p["start_s"], p["end_s"]) == (1800.0, 5400.0)
    with pytest.raises(ConfigError, match="must start at >= 0 s and end before the close"):
        prepare_scenario(QUICKSTART, SHORT, algo="pov")  # one-hour session: no 1-h window left


def test_prepare_scenario_adds_or_reuses_one_execution_agent():
    d = prepare_scenario(QUICKSTART, SHORT, max_size=500, side="sell", algo="vwap", **WINDOW)
    ex = [g for g in d["agents"] if g["type"] == "execution"]
    assert len(ex) == 1 and ex[0]["name"] == EXECUTION_GROUP
    assert ex[0]["params"]["algo"] == "vwap" and ex[0]["params"]["side"] == "sell"
    assert ex[0]["params"]["end_s"] == 1800.0 and ex[0]["cash"] >= 2 * 500 * 100.0
    d2 = prepare_scenario(ROOT / "scenarios" / "impact.toml", max_size=10)
    ex2 = [g for g in d2["agents"] if g["type"] == "execution"]
    assert len(ex2) == 1 and ex2[0]["name"] == "execution" and ex2[0]["count"] == 1
    with pytest.raises(ConfigError, match="must start at >= 0 s and end before the close"):
        prepare_scenario(QUICKSTART, SHORT, start_s=3000.0, duration_s=1200.0)
    with pytest.raises(ConfigError, match="algo = 'iceberg'"):
        prepare_scenario(QUICKSTART, algo="iceberg")
    with pytest.raises(ConfigError, match="side = 'long'"):
        prepare_scenario(QUICKSTART, side="long")
    with pytest.raises(ConfigError, match="sizes: 0 is not"):
        run_impact_study(QUICKSTART, None, sizes=[0])


def test_fit_study_recovers_a_square_root_law_and_degrades_gracefully():
    rng = np.random.default_rng(2)
    q = np.repeat([100, 300, 1000, 3000, 10000], 8)
    v = np.full(q.size, 1e5)
    s = rng.uniform(0.005, 0.01, q.size)
    imp = s * 0.8 * (q / v) ** 0.5 * np.exp(rng.normal(0, 0.1, q.size))
    rows = pd.DataFrame({"size": q, "daily_volume": v, "sigma": s, "peak_impact": imp})
    f = fit_study(rows, n_boot=200)
    assert f["method"] == "binned" and abs(f["delta"] - 0.5) < 0.05
    assert f["delta_ci"][0] < 0.5 < f["delta_ci"][1] and 0.6 < f["Y"] < 1.0
    two = fit_study(rows[rows["size"].isin([100, 10000])].groupby("size").head(1))
    assert two["method"] == "points" and two["delta_ci"] == [None, None]
    assert 0.3 < two["delta"] < 0.7
    none = fit_study(rows.assign(peak_impact=-1.0))
    assert none["delta"] is None and "usable" in none["note"]
    json.dumps(none, allow_nan=False)  # strict JSON


def test_impact_cli_writes_the_study_and_refuses_to_overwrite(tmp_path, capsys):
    out = tmp_path / "cli"
    args = ["impact", str(QUICKSTART), "--out", str(out), "--sizes", "200,2000",
            "--seeds", "1", "--start-s", "600", "--duration-s", "600", "--interval-s", "30",
            "--quiet", *sum((["--set", s] for s in SHORT), [])]  # fmt: skip
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "2 meta-orders" in text and "impact study:" in text
    for f in ("impact.parquet", "impact_fit.json", "impact_paths.parquet", "impact.png"):
        assert (out / f).is_file(), f
    assert main(args) == 2
    assert "already holds an impact study" in capsys.readouterr().err


def test_switching_mispricing_term_sends_chartists_back_to_fundamentalism():
    """The Lux-Marchesi term added for scenarios/stylized_facts.toml (default 0: unchanged)."""
    from agents.background.switching import SwitchingTrader
    from tests.agents.test_traders import agents_of, build, group, lp_account, set_book

    def lone_chartist_after_one_wake(weight: float) -> bool:
        m = build(
            group("switching", 10, chartist_prob_init=1.0, switch_rate=1.0,
                  herding_weight=50.0, mispricing_weight=weight)
        )  # fmt: skip
        set_book(m, lp_account(m), 9899, 9901)  # mid 9900, fundamental 10000: 100 ticks
        a = agents_of(m, SwitchingTrader)[0]
        a.act(m.t)  # U = 50 * 1 - weight * 100
        return a.chartist

    assert lone_chartist_after_one_wake(0.0)  # herding alone keeps it a chartist: exp(-50)
    assert not lone_chartist_after_one_wake(1.0)  # U = -50: switches with probability 1
    with pytest.raises(ConfigError, match="mispricing_weight"):
        build(group("switching", 1, mispricing_weight=-0.5))
