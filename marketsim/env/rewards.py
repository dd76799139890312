"""Reward functions for RL agents, by registry name or dotted path.

Every reward is a small stateful object: :meth:`Reward.reset` at the episode start, then
``reward(ctx)`` once per decision with a :class:`RewardContext` built from data up to that
decision. State (EMAs, peaks) is plain floats so checkpoints can save it.

Names: ``pnl``, ``log_return``, ``differential_sharpe``, ``sortino``, ``drawdown_penalised``,
``volatility_penalised``, ``inventory_penalised``, ``implementation_shortfall``; or a dotted path
``package.module:callable`` / ``package.module.callable`` to a class (instantiated with the
reward params) or a plain function ``f(ctx) -> float``.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from marketsim.errors import ConfigError


@dataclass
class RewardContext:
    """What a reward sees at one decision (currency units unless noted)."""

    equity: float  #: equity now
    prev_equity: float  #: equity at the previous decision
    initial_equity: float  #: equity at the episode start
    peak_equity: float  #: highest equity so far
    gross_exposure: float  #: sum of |position value|
    inventory_value: float  #: signed value of the position changes since the episode start
    traded_lots: int  #: lots this agent traded since the previous decision
    shortfall: float = 0.0  #: execution cost vs arrival price since the previous decision
    extra: dict[str, Any] = field(default_factory=dict)


def _log_ret(ctx: RewardContext) -> float:
    if ctx.equity <= 0 or ctx.prev_equity <= 0:
        return -1.0
    return math.log(ctx.equity / ctx.prev_equity)


class Reward:
    """Base class: stateless rewards override :meth:`__call__` only."""

    def __init__(self, **params: float) -> None:
        if params:
            raise ConfigError(
                f"reward {type(self).__name__} takes no parameters, got {sorted(params)}"
            )

    def reset(self) -> None:
        """Forget state at the episode start."""

    def __call__(self, ctx: RewardContext) -> float:
        raise NotImplementedError

    def get_state(self) -> dict[str, float]:
        """Plain floats for checkpoints."""
        return {k: v for k, v in vars(self).items() if isinstance(v, int | float)}

    def set_state(self, st: dict[str, float]) -> None:
        """Restore :meth:`get_state` output."""
        for k, v in st.items():
            setattr(self, k, v)


def _params(cls_name: str, params: dict[str, float], allowed: dict[str, float]) -> dict:
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ConfigError(
            f"reward {cls_name}: unknown parameter(s) {unknown}; allowed: {sorted(allowed)}"
        )
    return {**allowed, **params}


class PnL(Reward):
    """Change in equity divided by the initial equity: (E_t - E_{t-1}) / E_0."""

    def __call__(self, ctx: RewardContext) -> float:
        return (ctx.equity - ctx.prev_equity) / ctx.initial_equity


class LogReturn(Reward):
    """log(E_t / E_{t-1}); -1 when equity is exhausted."""

    def __call__(self, ctx: RewardContext) -> float:
        return _log_ret(ctx)


class DifferentialSharpe(Reward):
    """Moody & Saffell (2001) differential Sharpe ratio of the log returns R_t.

    A_t = A_{t-1} + eta (R_t - A_{t-1}),  B_t = B_{t-1} + eta (R_t^2 - B_{t-1}),
    D_t = (B_{t-1} dA_t - A_{t-1} dB_t / 2) / (B_{t-1} - A_{t-1}^2)^{3/2}.
    """

    def __init__(self, eta: float = 0.01) -> None:
        self.eta = float(_params("differential_sharpe", {"eta": eta}, {"eta": 0.01})["eta"])
        self.reset()

    def reset(self) -> None:
        self.A = 0.0
        self.B = 0.0

    def __call__(self, ctx: RewardContext) -> float:
        r = _log_ret(ctx)
        dA = r - self.A
        dB = r * r - self.B
        var = self.B - self.A * self.A
        d = 0.0 if var <= 1e-12 else (self.B * dA - 0.5 * self.A * dB) / var**1.5
        self.A += self.eta * dA
        self.B += self.eta * dB
        return max(-10.0, min(10.0, d))


class Sortino(Reward):
    """Differential downside-deviation ratio (Moody & Saffell 2001):

    A_t EMA of R, DD_t^2 EMA of min(R, 0)^2; D_t = (R_t - A_{t-1}/2) / DD_{t-1} for R_t > 0,
    else (DD_{t-1}^2 (R_t - A_{t-1}/2) - A_{t-1} R_t^2 / 2) / DD_{t-1}^3.
    """

    def __init__(self, eta: float = 0.01) -> None:
        self.eta = float(eta)
        self.reset()

    def reset(self) -> None:
        self.A = 0.0
        self.DD2 = 0.0

    def __call__(self, ctx: RewardContext) -> float:
        r = _log_ret(ctx)
        dd = math.sqrt(self.DD2)
        if dd <= 1e-9:
            d = 0.0
        elif r > 0:
            d = (r - 0.5 * self.A) / dd
        else:
            d = (self.DD2 * (r - 0.5 * self.A) - 0.5 * self.A * r * r) / dd**3
        self.A += self.eta * (r - self.A)
        self.DD2 += self.eta * (min(r, 0.0) ** 2 - self.DD2)
        return max(-10.0, min(10.0, d))


class DrawdownPenalised(Reward):
    """log return - lam * (increase of the drawdown 1 - E_t / peak_t since the last decision)."""

    def __init__(self, lam: float = 1.0) -> None:
        self.lam = float(lam)
        self.reset()

    def reset(self) -> None:
        self.prev_dd = 0.0

    def __call__(self, ctx: RewardContext) -> float:
        dd = 0.0 if ctx.peak_equity <= 0 else max(0.0, 1.0 - ctx.equity / ctx.peak_equity)
        r = _log_ret(ctx) - self.lam * max(0.0, dd - self.prev_dd)
        self.prev_dd = dd
        return r


class VolatilityPenalised(Reward):
    """log return R_t - lam * R_t^2 (a mean-variance utility per step)."""

    def __init__(self, lam: float = 10.0) -> None:
        self.lam = float(lam)

    def __call__(self, ctx: RewardContext) -> float:
        r = _log_ret(ctx)
        return r - self.lam * r * r


class InventoryPenalised(Reward):
    """For market makers: P&L / E_0 - lam * |inventory value| / E_0 (Avellaneda-Stoikov-like)."""

    def __init__(self, lam: float = 0.01) -> None:
        self.lam = float(lam)

    def __call__(self, ctx: RewardContext) -> float:
        pnl = (ctx.equity - ctx.prev_equity) / ctx.initial_equity
        return pnl - self.lam * abs(ctx.inventory_value) / ctx.initial_equity


class ImplementationShortfall(Reward):
    """For execution agents: -(execution cost vs the arrival price) / E_0 this decision, minus
    ``lam`` x the value left to trade (set by the env in ``ctx.extra['remaining_value']``)."""

    def __init__(self, lam: float = 0.0) -> None:
        self.lam = float(lam)

    def __call__(self, ctx: RewardContext) -> float:
        rem = float(ctx.extra.get("remaining_value", 0.0))
        return -(ctx.shortfall + self.lam * abs(rem)) / ctx.initial_equity


#: Built-in rewards by name.
REWARDS: dict[str, type[Reward]] = {
    "pnl": PnL,
    "log_return": LogReturn,
    "differential_sharpe": DifferentialSharpe,
    "sortino": Sortino,
    "drawdown_penalised": DrawdownPenalised,
    "volatility_penalised": VolatilityPenalised,
    "inventory_penalised": InventoryPenalised,
    "implementation_shortfall": ImplementationShortfall,
}


class _FunctionReward(Reward):
    def __init__(self, fn: Callable[[RewardContext], float]) -> None:
        self.fn = fn

    def __call__(self, ctx: RewardContext) -> float:
        return float(self.fn(ctx))


def make_reward(name: str, params: dict[str, float] | None = None) -> Reward:
    """Build a reward by registry name or dotted path (see the module docstring)."""
    params = dict(params or {})
    cls = REWARDS.get(name)
    if cls is not None:
        try:
            return cls(**params)
        except TypeError as e:
            raise ConfigError(f"reward {name!r}: bad parameters {params}: {e}") from None
    if "." not in name and ":" not in name:
        raise ConfigError(
            f"unknown reward {name!r}; known rewards: {sorted(REWARDS)}, "
            "or a dotted path 'package.module:callable'"
        )
    mod_name, _, attr = name.replace(":", ".").rpartition(".")
    try:
        obj = getattr(importlib.import_module(mod_name), attr)
    except (ImportError, AttributeError) as e:
        raise ConfigError(f"reward {name!r} could not be imported: {e}") from None
    if isinstance(obj, type):
        r = obj(**params)
        if not callable(r):
            raise ConfigError(f"reward {name!r}: instances must be callable as f(ctx) -> float")
        if not isinstance(r, Reward):
            return _FunctionReward(r)
        return r
    if callable(obj):
        if params:
            raise ConfigError(f"reward {name!r} is a function; it takes no reward_params")
        return _FunctionReward(obj)
    raise ConfigError(f"reward {name!r} is not callable")
