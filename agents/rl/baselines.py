"""Baseline policies for evaluation: random, cash, buy-and-hold, equal-weight, passive makers.

Each baseline is a small object with ``reset()`` and ``act(obs) -> action`` for one agent of
the market env (Dict observations, see ``marketsim.env``); they work for every action mode where
they make sense and raise a clear error otherwise.
"""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

from marketsim.errors import ConfigError


def _obs_dict(obs) -> dict:
    if not isinstance(obs, dict):
        raise ConfigError("baselines need the Dict observation (flat_obs=False)")
    return obs


class Baseline:
    """Base: ``reset()`` at the episode start, ``act(obs)`` per decision."""

    name = "baseline"

    def __init__(self, action_space: spaces.Space, seed: int = 0) -> None:
        self.action_space = action_space
        self.rng = np.random.default_rng(seed)
        self.mode = _mode_of(action_space)

    def reset(self) -> None:
        """Start an episode."""

    def act(self, obs) -> np.ndarray:
        raise NotImplementedError


def _mode_of(sp: spaces.Space) -> str:
    if isinstance(sp, spaces.MultiDiscrete):
        return "discrete"
    if isinstance(sp, spaces.Box) and len(sp.shape) == 2:
        return "quotes" if sp.shape[1] == 4 else "orders"
    return "weights"


class RandomPolicy(Baseline):
    """Uniform random actions (its own seeded generator)."""

    name = "random"

    def act(self, obs) -> np.ndarray:
        sp = self.action_space
        if isinstance(sp, spaces.MultiDiscrete):
            return self.rng.integers(0, sp.nvec)
        return self.rng.uniform(sp.low, sp.high).astype(np.float32)


class CashPolicy(Baseline):
    """Stay flat: all cash (weights), no orders (orders, quotes), hold (discrete)."""

    name = "cash"

    def act(self, obs) -> np.ndarray:
        sp = self.action_space
        if self.mode == "weights":
            a = np.zeros(sp.shape, np.float32)
            a[-1] = 1.0
            return a
        if self.mode == "orders":
            return np.zeros(sp.shape, np.float32)
        if self.mode == "quotes":  # zero sizes: no quotes (and the old ones are cancelled)
            return np.full(sp.shape, -1.0, np.float32)
        return np.ones(sp.shape, np.int64)


class EqualWeightPolicy(Baseline):
    """Rebalance to equal weights over the live assets at every decision (weights mode)."""

    name = "equal_weight"

    def act(self, obs) -> np.ndarray:
        if self.mode != "weights":
            raise ConfigError("equal_weight is a baseline of the 'weights' action mode")
        mask = _obs_dict(obs)["mask"]
        a = np.zeros(self.action_space.shape, np.float32)
        n = mask.sum()
        if n > 0:
            a[:-1] = mask / n
        else:
            a[-1] = 1.0
        return a


class BuyAndHoldPolicy(Baseline):
    """Buy equal weights at the first decision, then hold (never rebalance).

    In weights mode holding means asking for the current weights (read from the observation),
    which the env maps to no trade; in discrete mode: buy once, then hold.
    """

    name = "buy_and_hold"

    def reset(self) -> None:
        self.started = False

    def act(self, obs) -> np.ndarray:
        first = not getattr(self, "started", False)
        self.started = True
        if self.mode == "weights":
            o = _obs_dict(obs)
            if first:
                return EqualWeightPolicy(self.action_space).act(o)
            A = o["mask"].shape[0]
            a = np.zeros(self.action_space.shape, np.float32)
            a[:A] = o["portfolio"][:A]
            a[A] = o["portfolio"][A]
            return np.clip(a, -1, 1)
        if self.mode == "discrete":
            mask = _obs_dict(obs)["mask"]
            return (
                np.where(mask > 0, 2, 1).astype(np.int64) if first else np.ones_like(mask, np.int64)
            )
        raise ConfigError("buy_and_hold is a baseline of the 'weights' and 'discrete' modes")


class PassiveMakerPolicy(Baseline):
    """A market maker that never looks at the market.

    Orders mode: cancel and re-quote one side one offset unit away from the mid, alternating
    sides. Quotes mode: a bid and an ask of ``size`` (fraction of the full size) at half a
    tick from the mid (the touch when the spread is one tick) at every decision.
    """

    name = "passive_maker"

    def __init__(self, action_space, seed: int = 0, size: float = 0.2, offset: float = -0.2):
        super().__init__(action_space, seed)
        self.size, self.offset = size, offset
        self.flip = False

    def act(self, obs) -> np.ndarray:
        if self.mode not in ("orders", "quotes"):
            raise ConfigError("passive_maker is a baseline of the 'orders' and 'quotes' modes")
        mask = _obs_dict(obs)["mask"]
        if self.mode == "quotes":
            return _quotes(self.action_space.shape, mask, 0.5, 0.5, self.size)
        self.flip = not self.flip
        side = 1.0 if self.flip else -1.0
        a = np.zeros(self.action_space.shape, np.float32)
        a[:, 0] = side * self.size * mask
        a[:, 1] = self.offset
        a[:, 2] = 1.0
        return a


def _quotes(shape, mask, bid_ticks, ask_ticks, size, max_offset_ticks: int = 10) -> np.ndarray:
    """A quotes-mode action: offsets in ticks from the mid (for ``max_offset_ticks``), size as a
    fraction of the full size, dead slots without quotes."""
    a = np.full(shape, -1.0, np.float32)
    live = mask > 0
    bid = np.broadcast_to(np.asarray(bid_ticks, np.float64), mask.shape)[live]
    ask = np.broadcast_to(np.asarray(ask_ticks, np.float64), mask.shape)[live]
    a[live, 0] = np.clip(2.0 * bid / max_offset_ticks - 1.0, -1, 1)
    a[live, 1] = np.clip(2.0 * ask / max_offset_ticks - 1.0, -1, 1)
    a[live, 2] = a[live, 3] = 2.0 * size - 1.0
    return a


class SkewedMakerPolicy(Baseline):
    """Quotes mode: an inventory-aware maker in the spirit of Avellaneda & Stoikov (2008).

    Quotes ``half_spread`` ticks either side of a reservation price shifted against the change of
    its position weight since the episode start: ``r = mid - skew * (w - w0)`` (in ticks), so a
    maker that got long quotes lower (sells more readily, buys less) and vice versa.
    """

    name = "skewed_maker"

    def __init__(
        self,
        action_space,
        seed: int = 0,
        size: float = 0.2,
        half_spread: float = 1.0,
        skew: float = 20.0,
        max_offset_ticks: int = 10,
    ):
        super().__init__(action_space, seed)
        self.size, self.half_spread, self.skew = size, half_spread, skew
        self.max_offset_ticks = max_offset_ticks
        self.w0: np.ndarray | None = None

    def reset(self) -> None:
        self.w0 = None

    def act(self, obs) -> np.ndarray:
        if self.mode != "quotes":
            raise ConfigError("skewed_maker is a baseline of the 'quotes' action mode")
        o = _obs_dict(obs)
        mask = o["mask"]
        w = o["portfolio"][: mask.shape[0]].astype(np.float64)
        if self.w0 is None:
            self.w0 = w.copy()
        shift = self.skew * (w - self.w0)  # > 0 when longer than at the start
        bid = np.maximum(0.0, self.half_spread + shift)
        ask = np.maximum(0.0, self.half_spread - shift)
        return _quotes(self.action_space.shape, mask, bid, ask, self.size, self.max_offset_ticks)


#: Baselines by name.
BASELINES = {
    c.name: c
    for c in (
        RandomPolicy,
        CashPolicy,
        EqualWeightPolicy,
        BuyAndHoldPolicy,
        PassiveMakerPolicy,
        SkewedMakerPolicy,
    )
}


def baselines_for(action_space: spaces.Space) -> list[str]:
    """The baselines that apply to an action space, by name."""
    mode = _mode_of(action_space)
    if mode == "weights":
        return ["random", "cash", "buy_and_hold", "equal_weight"]
    if mode == "orders":
        return ["random", "cash", "passive_maker"]
    if mode == "quotes":
        return ["random", "cash", "passive_maker", "skewed_maker"]
    return ["random", "cash", "buy_and_hold"]
