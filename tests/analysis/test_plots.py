"""Tests of analysis.plots: every plot writes a PNG, run directories, time axis, bucketing.

Synthetic recorder tables (two assets, two trading days) keep the tests fast and independent
of the engine.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.plots import (
    MAX_POINTS,
    _bucket,
    _Clock,
    _TimeLocator,
    plot_depth,
    plot_pnl,
    plot_price_spread,
    plot_run,
    plot_volume,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SPD = 1800  # 09:30-10:00 at 1 s
DAY0 = pd.Timestamp("2024-01-02 09:30").value
DAY1 = pd.Timestamp("2024-01-03 09:30").value


def _time(step: np.ndarray) -> np.ndarray:
    step = np.asarray(step, np.int64)
    day, k = np.divmod(step, SPD)
    return np.where(day == 0, DAY0, DAY1) + k * 1_000_000_000


def _tables(seed: int = 0, days: int = 2):
    rng = np.random.default_rng(seed)
    steps = np.arange(SPD * days)
    q, t, l2 = [], [], []
    for sym, p0, tick in (("AAA", 100.0, 0.01), ("BBB", 20.0, 0.05)):
        mid_t = np.round(p0 / tick + np.cumsum(rng.integers(-1, 2, steps.size)))
        half = rng.integers(1, 4, steps.size)
        bid, ask = (mid_t - half) * tick, (mid_t + half) * tick
        bid[::97] = np.nan  # empty sides now and then
        q.append(
            pd.DataFrame(
                {
                    "step": steps,
                    "time": pd.to_datetime(_time(steps)),
                    "asset": sym,
                    "bid": bid,
                    "ask": ask,
                    "bid_qty": np.where(np.isnan(bid), 0, rng.integers(1, 50, steps.size)),
                    "ask_qty": rng.integers(1, 50, steps.size),
                    "mid": (bid + ask) / 2,
                    "last": np.nan,
                }
            )
        )
        ts = np.sort(rng.choice(steps, 400, replace=False))
        t.append(
            pd.DataFrame(
                {
                    "step": ts,
                    "time": pd.to_datetime(_time(ts)),
                    "asset": sym,
                    "price": mid_t[ts] * tick,
                    "qty": rng.integers(1, 10, ts.size),
                    "aggressor": rng.choice(np.array([-1, 1], np.int8), ts.size),
                    "buyer": 1,
                    "seller": 2,
                }
            )
        )
        for s in steps[::60]:
            for side in (1, -1):
                for lvl in range(5):
                    px = (mid_t[s] - side * (half[s] + lvl)) * tick
                    l2.append((s, _time(s), sym, side, lvl, px, int(rng.integers(1, 30))))
    quotes = pd.concat(q, ignore_index=True).astype({"asset": "category"})
    trades = pd.concat(t, ignore_index=True).astype({"asset": "category"})
    l2 = pd.DataFrame(l2, columns=["step", "time", "asset", "side", "level", "price", "qty"])
    l2["time"] = pd.to_datetime(l2["time"])
    rows = []
    for s in range(0, SPD * days, 60):
        for acc, typ in ((0, "exchange"), (1, "mm"), (2, "mm"), (3, "noise")):
            rows.append((s, acc, typ, 0.0, 1000.0 + acc * np.sin(s / 300.0) * 10))
    accounts = pd.DataFrame(rows, columns=["step", "account", "agent_type", "cash", "equity"])
    accounts["agent_type"] = accounts["agent_type"].astype("category")
    return quotes, trades, accounts, l2.astype({"asset": "category"})


@pytest.fixture(scope="module")
def tables():
    return _tables()


def _is_png(p) -> bool:
    data = p.read_bytes()
    return data[:8] == PNG_MAGIC and len(data) > 5_000


def test_each_plot_writes_a_png(tables, tmp_path):
    quotes, trades, accounts, l2 = tables
    ticks = {"AAA": 0.01, "BBB": 0.05}
    paths = [
        plot_price_spread(quotes, trades, tmp_path / "a" / "price.png", ticks),
        plot_volume(trades, tmp_path / "vol.png", times=quotes),
        plot_depth(quotes, tmp_path / "depth_l2.png", l2, ticks),
        plot_depth(quotes, tmp_path / "depth_top.png"),
        plot_pnl(accounts, tmp_path / "pnl.png", quotes),
        plot_pnl(accounts, tmp_path / "pnl_steps.png"),
    ]
    for p in paths:
        assert p.is_file() and _is_png(p), p


def test_empty_inputs_give_placeholder_png(tmp_path, tables):
    quotes, trades, accounts, _ = tables
    for p in (
        plot_price_spread(quotes.iloc[:0], None, tmp_path / "p.png"),
        plot_volume(trades.iloc[:0], tmp_path / "v.png"),
        plot_depth(quotes.iloc[:0], tmp_path / "d.png"),
        plot_pnl(accounts[accounts["agent_type"] == "exchange"], tmp_path / "pnl.png"),
    ):
        assert p.read_bytes()[:8] == PNG_MAGIC


def test_plot_run_reads_a_run_dir(tables, tmp_path):
    quotes, trades, accounts, l2 = (
        df[df["asset"] == "AAA"] if "asset" in df else df for df in tables
    )  # one asset keeps this test quick; multi-asset panels are covered above
    for name, df in (("quotes", quotes), ("trades", trades), ("accounts", accounts), ("l2", l2)):
        df.to_parquet(tmp_path / f"{name}.parquet")
    (tmp_path / "scenario.toml").write_text(
        '[simulation]\nstep_seconds = 1.0\n\n[[assets]]\nsymbol = "AAA"\ntick_size = 0.01\n'
    )
    got = plot_run(tmp_path)
    names = sorted(p.name for p in got)
    assert names == ["depth.png", "pnl.png", "price_spread.png", "volume.png"]
    assert all(_is_png(p) for p in got)
    # without trades the volume plot is skipped; other output folders work
    (tmp_path / "trades.parquet").unlink()
    out = tmp_path / "plots"
    got = plot_run(tmp_path, out_dir=out)
    assert sorted(p.name for p in got) == ["depth.png", "pnl.png", "price_spread.png"]
    assert all(p.parent == out for p in got)


def test_plot_run_on_empty_dir(tmp_path):
    assert plot_run(tmp_path) == []


def test_time_ticks_are_round_market_times():
    steps = np.arange(2 * SPD)
    clock = _Clock(steps, _time(steps))
    assert clock.step_ns == 1_000_000_000 and clock.multi_day
    assert clock.day_starts.tolist() == [SPD]
    ticks = _TimeLocator(clock).tick_values(0, 2 * SPD)
    labels = [clock.label(x) for x in ticks]
    assert 4 <= len(ticks) <= 9
    assert labels[0] == "01-02 09:30" and "01-03 09:30" in labels
    minutes = {int(lab[-2:]) for lab in labels}
    assert minutes <= {0, 10, 20, 30, 40, 50}
    # the open of day 2 is labelled as day 2, not as day 1's close
    assert clock.label(SPD) == "01-03 09:30"
    one_day = _Clock(steps[:SPD], _time(steps[:SPD]))
    assert not one_day.multi_day and one_day.label(600) == "09:40"


def test_clock_infers_step_length_from_sparse_rows():
    steps = np.array([3, 10, 11, SPD + 5, SPD + 9])
    clock = _Clock(steps, _time(steps))
    assert clock.step_ns == 1_000_000_000
    assert clock.label(12) == "01-02 09:30" and clock.label(SPD + 65) == "01-03 09:31"


def test_bucket_preserves_means():
    x = np.arange(10 * MAX_POINTS, dtype=float)
    y = np.sin(x / 100.0)
    y[5] = np.nan
    bx, (by,) = _bucket(x, [y])
    assert bx.size == MAX_POINTS and by.size == MAX_POINTS
    # the first bucket is steps 0..9 with step 5 missing
    assert by[0] == pytest.approx(np.nanmean(y[:10]))
    assert bx[0] == pytest.approx(4.5)
    small_x, (small_y,) = _bucket(x[:10], [y[:10]])
    assert small_x is not None and np.array_equal(small_y, y[:10], equal_nan=True)
