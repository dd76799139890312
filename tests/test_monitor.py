"""The run monitor: monitor.parquet round trip, values against slow references, order-to-fill
latency, rejects, VaR and drawdown, the Prometheus endpoint over HTTP, and `marketsim monitor`."""

from __future__ import annotations

import contextlib
import io
import json
import statistics
import urllib.error
import urllib.request

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from marketsim.book import BUY, LIMIT
from marketsim.cli import main
from marketsim.errors import ConfigError
from marketsim.ledger import CASH_SCALE
from marketsim.live import QueueAdapter, Tick
from marketsim.model import MarketModel
from marketsim.monitor import Monitor, historical_var, parametric_var, read_monitor
from tests.live.helpers import T0, tiny_scenario

STEPS = 300


def bad_order_at(step):
    """A step hook sending one zero-quantity order (rejected BAD_QTY) at ``step``."""

    def hook(m):
        if m.t == step:
            m.exchange.submit(m.t, 0, LIMIT, BUY, 10_000, 0, 1)

    return hook


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One monitored 300-step run (noise traders tracked for latency, latency_steps = 2)."""
    out = tmp_path_factory.mktemp("run")
    m = MarketModel(tiny_scenario(extra_assets=False, noise_latency=2), out_dir=out)
    noise = [a for a, t in enumerate(m.account_type) if t == "noise"]
    mm = [a for a, t in enumerate(m.account_type) if t == "market_maker"][0]
    m.step_hooks.append(bad_order_at(50))
    mon = Monitor(
        m,
        every=10,
        accounts=[mm, noise[0]],
        latency_accounts=noise,
        var_window=10,
        var_min_obs=5,
        prometheus_port=0,
    )
    m.run(STEPS)
    with urllib.request.urlopen(f"http://127.0.0.1:{mon.prometheus_port}/metrics", timeout=10) as r:
        scrape = r.read().decode()
    port = mon.prometheus_port
    mon.close()
    m.close()
    return {"model": m, "mon": mon, "out": out, "scrape": scrape, "port": port, "mm": mm,
            "noise": noise}  # fmt: skip


def test_parquet_round_trip(run):
    mon, out = run["mon"], run["out"]
    df, meta = read_monitor(out)
    assert len(df) == STEPS // 10 == mon.rows
    assert df["step"].tolist() == list(range(9, STEPS, 10))
    pd.testing.assert_frame_equal(df, mon.frame())
    assert meta["every"] == 10 and meta["entities"] == mon.entities
    assert meta["entities"][:3] == ["type:market_maker", "type:noise", "type:value"]
    assert df["time"].iloc[0] == pd.Timestamp(run["model"].time_ns(9))
    assert list(df.columns[:3]) == ["step", "time", "wall_time"]


def reference_entity_values(model, accounts):
    """Slow per-account loop: equity, gross, net of a set of accounts at the current marks."""
    led = model.ledger
    marks = model.mark_prices()
    eq = gross = net = 0.0
    for a in accounts:
        e = led.cash(a)
        for s in model.exchange.live_slots():
            v = led.position(a, s) * marks[s] * led.unit_value(s) / CASH_SCALE
            e += v
            gross += abs(v)
            net += v
        eq += e
    return eq, gross, net


def test_last_row_matches_a_slow_reference(run):
    m, mon = run["model"], run["mon"]
    df = mon.frame()
    last = df.iloc[-1]
    assert last["step"] == STEPS - 1  # close() recorded the final step
    for ent, accs in (("type:noise", run["noise"]), (f"acct:{run['mm']}", [run["mm"]])):
        eq, gross, net = reference_entity_values(m, accs)
        assert last[f"{ent}/equity"] == pytest.approx(eq, rel=1e-12)
        assert last[f"{ent}/gross"] == pytest.approx(gross, rel=1e-12)
        assert last[f"{ent}/net"] == pytest.approx(net, rel=1e-12)
        assert last[f"{ent}/leverage"] == pytest.approx(gross / eq)
        secs = last[f"{ent}/sector:tech"] + last[f"{ent}/sector:bank"]
        assert secs == pytest.approx(net, rel=1e-9)
    # the market maker's book is all AAA (tech) and BBB (bank)
    mm = run["mm"]
    led, marks = m.ledger, m.mark_prices()
    tech = led.position(mm, 0) * marks[0] * led.unit_value(0) / CASH_SCALE
    assert last[f"acct:{mm}/sector:tech"] == pytest.approx(tech)


def test_pnl_drawdown_and_var_follow_their_definitions(run):
    df = run["mon"].frame()
    m = run["model"]
    for ent in run["mon"].entities:
        eq = df[f"{ent}/equity"].to_numpy()
        pnl = df[f"{ent}/pnl"].to_numpy()
        # P&L counts from the equity at attach; at step 0 nobody had traded, equity = endowment
        eq0 = eq - pnl
        assert np.allclose(eq0, eq0[0])
        peak = np.maximum.accumulate(eq)
        assert np.allclose(df[f"{ent}/drawdown"], 1 - eq / peak)
        d = np.diff(eq)
        for lvl, col in ((0.95, "var_95"), (0.99, "var_99")):
            got = df[f"{ent}/{col}"].to_numpy()
            for i in range(len(eq)):
                k = i  # equity changes available at row i
                if k < 5:
                    assert np.isnan(got[i])
                else:
                    win = d[max(0, k - 10) : k]
                    assert got[i] == pytest.approx(-np.quantile(win, 1 - lvl), abs=1e-6)
    assert m.ledger.n_accounts > 0


def test_order_to_fill_latency_in_steps(run):
    df = run["mon"].frame()
    n = df["order_latency_n"].sum()
    assert n > 10
    assert (df.loc[df["order_latency_n"] > 0, "order_latency_mean_steps"] >= 2).all()
    # Nothing fills faster than the 2-step order latency, and market orders fill on arrival:
    scrape = run["scrape"]
    assert 'marketsim_order_fill_latency_steps_bucket{le="1.0"} 0.0' in scrape
    two = [ln for ln in scrape.splitlines() if 'latency_steps_bucket{le="2.0"}' in ln][0]
    assert float(two.split()[-1]) > 0


def test_rejects_and_fills(run):
    df = run["mon"].frame()
    assert df["rejects/BAD_QTY"].sum() == 1
    assert df.loc[df["step"] == 59, "rejects/BAD_QTY"].item() == 1  # reported in its block
    assert df["fills"].sum() == int(run["model"].exchange.n_trades.sum())
    assert (df["inbound_orders"] >= 0).all()


def test_prometheus_endpoint_over_http(run):
    s = run["scrape"]
    assert "marketsim_steps_total 300.0" in s
    assert 'marketsim_rejects_total{reason="BAD_QTY"} 1.0' in s
    assert 'marketsim_equity{entity="type:noise"}' in s
    assert 'marketsim_var{entity="type:value",level="0.99"}' in s
    assert 'marketsim_sector_exposure{entity="type:noise",sector="tech"}' in s
    assert "marketsim_step_wall_seconds_count 299.0" in s
    with pytest.raises(urllib.error.URLError):  # closed with the monitor
        urllib.request.urlopen(f"http://127.0.0.1:{run['port']}/metrics", timeout=5)


def test_close_detaches_everything(run):
    m = run["model"]
    assert "submit" not in vars(m.exchange)
    assert not any(getattr(h, "__self__", None) is run["mon"] for h in m.step_hooks)
    assert all(getattr(f, "__self__", None) is not run["mon"] for f in m.exchange.fill_listeners)


def test_live_source_metrics_and_in_memory_mode():
    m = MarketModel(tiny_scenario(extra_assets=False), record=False)
    q = QueueAdapter()
    q.put(Tick(0, T0, "AAA", "trade", 100.0, 1.0))
    q.put({"seq": 1})
    with Monitor(m, every=5, source=q, prometheus=True) as mon:
        m.run(20)
        from prometheus_client import generate_latest

        text = generate_latest(mon.registry).decode()
    assert mon.path is None
    df = mon.frame()
    assert len(df) == 4 and (df["live/malformed"] == 1).all() and (df["live/queue"] == 1).all()
    assert 'marketsim_live_messages_total{counter="malformed"} 1.0' in text
    assert "marketsim_live_queue 1.0" in text


def test_bad_arguments():
    m = MarketModel(tiny_scenario(extra_assets=False, minutes=1), record=False)
    with pytest.raises(ConfigError, match="every=0"):
        Monitor(m, every=0)
    with pytest.raises(ConfigError, match="accounts=\\[0\\]"):
        Monitor(m, accounts=[0])
    with pytest.raises(ConfigError, match="var_method='monte_carlo'"):
        Monitor(m, var_method="monte_carlo")
    with pytest.raises(ConfigError, match="var_levels"):
        Monitor(m, var_levels=(1.5,))


# ------------------------------------------------------------------------------ VaR helpers
def reference_quantile(x, q):
    """Linear-interpolation quantile written out (numpy's default method)."""
    s = sorted(x)
    h = (len(s) - 1) * q
    lo = int(h)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (h - lo) * (s[hi] - s[lo])


@settings(max_examples=100, deadline=None)
@given(
    arrays(
        np.float64, st.tuples(st.integers(2, 60), st.integers(1, 3)), elements=st.floats(-1e6, 1e6)
    ),  # fmt: skip
    st.sampled_from([0.9, 0.95, 0.975, 0.99]),
)
def test_var_helpers_match_references(x, level):
    hv = historical_var(x, level)
    pv = parametric_var(x, level)
    z = statistics.NormalDist().inv_cdf(level)
    for j in range(x.shape[1]):
        col = x[:, j].tolist()
        assert hv[j] == pytest.approx(-reference_quantile(col, 1 - level), abs=1e-6)
        ref = z * statistics.stdev(col) - statistics.fmean(col)
        assert pv[j] == pytest.approx(ref, rel=1e-9, abs=1e-6)


def test_parametric_method_is_used():
    m = MarketModel(tiny_scenario(extra_assets=False), record=False)
    mon = Monitor(m, every=1, var_method="parametric", var_window=30, var_min_obs=3)
    m.run(40)
    mon.close()
    df = mon.frame()
    eq = df["type:noise/equity"].to_numpy()
    d = np.diff(eq)[-30:]
    assert df["type:noise/var_95"].iloc[-1] == pytest.approx(parametric_var(d[:, None], 0.95)[0])


# ------------------------------------------------------------------------------ CLI
def cli(*argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def test_marketsim_monitor_command(run):
    code, out, err = cli("monitor", str(run["out"]))
    assert code == 0, err
    assert "step wall time (ms):" in out and "p99" in out
    assert "order-to-fill latency (steps):" in out
    # the injected bad order, plus possibly cancels that raced a fill (UNKNOWN_ID)
    (line,) = [ln for ln in out.splitlines() if ln.startswith("rejects: ")]
    reasons = dict(r.rsplit(" ", 1) for r in line.removeprefix("rejects: ").split(", "))
    assert reasons["BAD_QTY"] == "1" and set(reasons) <= {"BAD_QTY", "UNKNOWN_ID"}
    assert "type:noise" in out and f"acct:{run['mm']} (market_maker)" in out
    assert "VaR95 last/max" in out and "net exposure by sector" in out
    code, out, _ = cli("monitor", str(run["out"] / "monitor.parquet"), "--json")
    s = json.loads(out)
    # the injected bad order, plus possibly cancels that raced a fill (UNKNOWN_ID)
    assert code == 0 and s["rows"] == 30 and s["rejects"]["BAD_QTY"] == 1
    assert set(s["rejects"]) <= {"BAD_QTY", "UNKNOWN_ID"}
    assert s["order_latency_steps"]["orders"] == int(run["mon"].frame()["order_latency_n"].sum())
    assert s["entities"]["type:noise"]["max_drawdown"] >= 0


def test_marketsim_monitor_without_a_log(tmp_path):
    code, out, err = cli("monitor", str(tmp_path))
    assert code == 2 and "no monitor log here" in err
