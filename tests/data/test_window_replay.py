"""Tests of marketsim.data.windows: PreparedData.window and WindowReplay against a slow loop."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from marketsim.data import WindowReplay, load_prepared, prepare
from marketsim.errors import ConfigError

W = 4


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """Two prepared copies of the same bars (windows materialised and not); the raw dense."""
    root = tmp_path_factory.mktemp("wr")
    rng = np.random.default_rng(7)
    times = pd.date_range("2024-01-02 09:30", periods=15, freq="1min", tz="UTC")
    tickers = ["AAA", "BBB", "CCC"]
    rows = []
    for t in times:
        for k in tickers:
            if rng.random() < 0.2:
                continue
            c = round(float(rng.uniform(10, 20)), 2)
            rows.append((t.isoformat(), k, c, float(rng.integers(1, 100))))
    frame = pd.DataFrame(rows, columns=["time", "ticker", "close", "volume"])
    frame.to_csv(root / "bars.csv", index=False)
    prepare(root / "bars.csv", root / "mat", window=W, fields=("close", "volume"))
    prepare(
        root / "bars.csv", root / "lazy", window=W, fields=("close", "volume"),
        materialize_windows=False,
    )  # fmt: skip
    dense = np.full((len(times), 3, 2), np.nan)
    for t, k, c, v in rows:
        dense[list(times.strftime("%Y-%m-%dT%H:%M:%S+00:00")).index(t), tickers.index(k)] = (c, v)
    return root, dense.astype(np.float32)


def slow_window(dense, t, cols, fidx, n_slots, fill=None):
    """Obvious reference: loop over slots and window positions."""
    x = np.full((n_slots, W, len(fidx)), np.nan, dtype=np.float32)
    m = np.zeros((n_slots, W), dtype=bool)
    for s, c in enumerate(cols):
        for j in range(W):
            src = t - W + 1 + j
            if src < 0:
                continue
            row = dense[src, c]
            x[s, j] = row[fidx]
            m[s, j] = bool(np.isfinite(row).all())
    if fill is not None:
        x[~m] = fill
    return x, m


def test_prepared_window_matches_reference_both_layouts(prepared):
    root, dense = prepared
    mat, lazy = load_prepared(root / "mat"), load_prepared(root / "lazy")
    assert mat.windows is not None and lazy.windows is None
    for t in range(dense.shape[0]):
        ex, em = slow_window(dense, t, [0, 1, 2], [0, 1], 3)
        for d in (mat, lazy):
            x, m = d.window(t)
            np.testing.assert_array_equal(x, ex)
            np.testing.assert_array_equal(m, em)
    x, _ = mat.window(W + 2)
    assert not x.flags.writeable  # views into the read-only memory map


@settings(max_examples=30, deadline=None)
@given(
    sel=st.permutations(["AAA", "BBB", "CCC"]).flatmap(
        lambda p: st.integers(1, 3).map(lambda k: p[:k])
    ),
    fields=st.sampled_from([("close",), ("volume", "close"), ("close", "volume")]),
    extra=st.integers(0, 2),
    fill=st.sampled_from([None, 0.0, -1.0]),
    which=st.sampled_from(["mat", "lazy"]),
)
def test_window_replay_selection_padding_fill(prepared, sel, fields, extra, fill, which):
    root, dense = prepared
    data = load_prepared(root / which, verify=False)
    replay = WindowReplay(data, tickers=sel, fields=fields, max_assets=len(sel) + extra,
                          fill_value=fill)  # fmt: skip
    cols = [["AAA", "BBB", "CCC"].index(k) for k in sel]
    fidx = [["close", "volume"].index(f) for f in fields]
    ts = np.arange(dense.shape[0])
    bx, bm = replay.batch(ts)
    for t in ts:
        ex, em = slow_window(dense, int(t), cols, fidx, len(sel) + extra, fill)
        x, m = replay.window(int(t))
        np.testing.assert_array_equal(x, ex)
        np.testing.assert_array_equal(m, em)
        np.testing.assert_array_equal(bx[t], ex)
        np.testing.assert_array_equal(bm[t], em)


def test_window_replay_defaults_and_errors(prepared):
    root, dense = prepared
    replay = WindowReplay(root / "mat")
    assert len(replay) == dense.shape[0] and replay.first_full == W - 1
    assert replay.window_length == W and replay.tickers == ("AAA", "BBB", "CCC")
    x, m = replay.window(replay.first_full)
    assert x.shape == (3, W, 2) and m.shape == (3, W)
    with pytest.raises(ConfigError, match=r"t must be an integer bar index in \[0, 15\), got t=15"):
        replay.window(15)
    with pytest.raises(ConfigError, match=r"ts must lie in \[0, 15\)"):
        replay.batch([0, 99])
    with pytest.raises(ConfigError, match="ticker 'ZZZ' is not in the prepared data"):
        WindowReplay(root / "mat", tickers=["ZZZ"])
    with pytest.raises(ConfigError, match="field 'open' is not in the prepared data"):
        WindowReplay(root / "mat", fields=["open"])
    with pytest.raises(ConfigError, match="max_assets=1 is smaller than the 3 tickers"):
        WindowReplay(root / "mat", max_assets=1)
