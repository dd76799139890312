"""Per-asset market features and sliding windows (ring buffers) for RL observations.

At every decision the env computes one row of ``N_MARKET_FEATURES`` numbers per asset slot from
data up to that decision (no look-ahead) and pushes it into each agent's window. A window is a
ring buffer of shape ``(W, A, F)``; :meth:`Window.view` returns it oldest-first in O(W*A*F).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from marketsim.book import NO_PRICE

#: Names of the per-asset features, in column order.
# Scaled so that typical values are O(0.1-10) for neural networks.
MARKET_FEATURES = (
    "log_return_bps",  # 1e4 * log(mid_t / mid_{t-1}) since the previous decision
    "spread_bps_100",  # (ask - bid) / mid * 1e4 / 100
    "depth_imbalance",  # (bid_qty - ask_qty) / (bid_qty + ask_qty)
    "signed_volume",  # aggressor-signed lots since the previous decision / volume scale
    "realised_vol_bps",  # rolling std of log_return_bps over the vol window
    "log_mid_rel_pct",  # 100 * log(mid_t / mid at episode start)
    "trades_log1p",  # log1p(number of trades since the previous decision)
    "position_weight",  # the agent's position value / its equity (filled per agent)
)
#: Number of per-asset features (the F of the observation's ``market`` entry).
N_MARKET_FEATURES = len(MARKET_FEATURES)
POSITION_COLUMN = MARKET_FEATURES.index("position_weight")


@njit(cache=True)
def _rolling_std(rets, n, row, col):
    """``row[:, col] = std(rets[:n], axis=0)`` (population std, two-pass). O(n * A)."""
    for s in range(rets.shape[1]):
        mean = 0.0
        for k in range(n):
            mean += rets[k, s]
        mean /= n
        var = 0.0
        for k in range(n):
            d = rets[k, s] - mean
            var += d * d
        row[s, col] = math.sqrt(var / n)


class MarketFeatures:
    """Computes the shared per-asset feature row at each decision for a model.

    Args:
        max_assets: Number of slots A.
        volume_scale: Lots that map signed volume to ~1 (e.g. a typical trade size x 10).
        vol_window: Decisions in the rolling realised-volatility estimate.
    """

    def __init__(self, max_assets: int, volume_scale: float = 100.0, vol_window: int = 32):
        self.max_assets = max_assets
        self.volume_scale = float(volume_scale)
        self.vol_window = int(vol_window)
        self.prev_mid = np.full(max_assets, np.nan)
        self.first_mid = np.full(max_assets, np.nan)
        self.prev_signed = np.zeros(max_assets, np.int64)
        self.prev_trades = np.zeros(max_assets, np.int64)
        self._rets = np.zeros((self.vol_window, max_assets))
        self._k = 0
        self.mid = np.full(max_assets, np.nan)
        self.row = np.zeros((max_assets, N_MARKET_FEATURES), np.float32)

    def reset(self, model) -> None:
        """Start an episode: remember the current mids and counters."""
        self.prev_mid[:] = np.nan
        self.first_mid[:] = np.nan
        self._rets[:] = 0.0
        self._k = 0
        ex = model.exchange
        self.prev_signed[:] = ex.signed_volume
        self.prev_trades[:] = ex.n_trades
        self.update(model)

    def update(self, model) -> np.ndarray:
        """Compute the feature row (A, F) for the model's current state; return it (shared)."""
        ex = model.exchange
        row = self.row
        row[:] = 0.0
        mid = self.mid
        mid[:] = np.nan
        k = self._k % self.vol_window
        self._rets[k] = 0.0
        for s in ex.live_slots():
            bb, bq, ba, aq = ex.books[s].top()
            if bb != NO_PRICE and ba != NO_PRICE:
                m = 0.5 * (bb + ba)
                row[s, 1] = (ba - bb) / m * 100.0
            else:
                m = ex.mid_ticks(s)
                if not math.isfinite(m):
                    m = model.fundamental_ticks(s)
            mid[s] = m
            if bq + aq > 0:
                row[s, 2] = (bq - aq) / (bq + aq)
            pm = self.prev_mid[s]
            if math.isfinite(pm) and pm > 0 and m > 0:
                r = 1e4 * math.log(m / pm)
                row[s, 0] = r
                self._rets[k, s] = r
            if not math.isfinite(self.first_mid[s]):
                self.first_mid[s] = m
            if m > 0 and self.first_mid[s] > 0:
                row[s, 5] = 100.0 * math.log(m / self.first_mid[s])
            sv = int(ex.signed_volume[s])
            row[s, 3] = (sv - self.prev_signed[s]) / self.volume_scale
            self.prev_signed[s] = sv
            nt = int(ex.n_trades[s])
            row[s, 6] = math.log1p(nt - self.prev_trades[s])
            self.prev_trades[s] = nt
            self.prev_mid[s] = m
        self._k += 1
        n = min(self._k, self.vol_window)
        if n > 1:
            _rolling_std(self._rets, n, row, 4)
        return row

    def get_state(self) -> dict:
        """Arrays for checkpoints."""
        return {
            "prev_mid": self.prev_mid.copy(),
            "first_mid": self.first_mid.copy(),
            "prev_signed": self.prev_signed.copy(),
            "prev_trades": self.prev_trades.copy(),
            "rets": self._rets.copy(),
            "k": self._k,
            "mid": self.mid.copy(),
            "row": self.row.copy(),
        }

    def set_state(self, st: dict) -> None:
        """Restore :meth:`get_state` output."""
        self.prev_mid[:] = st["prev_mid"]
        self.first_mid[:] = st["first_mid"]
        self.prev_signed[:] = st["prev_signed"]
        self.prev_trades[:] = st["prev_trades"]
        self._rets[:] = st["rets"]
        self._k = int(st["k"])
        self.mid[:] = st["mid"]
        self.row[:] = st["row"]


class Window:
    """A ``(W, A, F)`` ring buffer of feature rows; rows before the first push are zeros."""

    def __init__(self, window: int, max_assets: int, n_features: int):
        self.buf = np.zeros((window, max_assets, n_features), np.float32)
        self.head = 0  # index of the next row to write

    def push(self, row: np.ndarray, column: np.ndarray | None = None, col: int = -1) -> None:
        """Append a row (A, F); with ``column`` given, its column ``col`` is replaced by it
        (the agent's own position weights in the shared row). O(A*F)."""
        h = self.head
        self.buf[h] = row
        if column is not None:
            self.buf[h, :, col] = column
        self.head = (h + 1) % self.buf.shape[0]

    def view(self) -> np.ndarray:
        """The window oldest-first as a fresh array. O(W*A*F)."""
        h = self.head
        if h == 0:
            return self.buf.copy()
        return np.concatenate((self.buf[h:], self.buf[:h]))

    def clear(self) -> None:
        """Forget every row."""
        self.buf[:] = 0.0
        self.head = 0
