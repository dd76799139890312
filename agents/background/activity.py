"""`ActivityPath`: an exogenous, market-wide trading-activity (attention) process.

Trading activity in real markets comes in bursts driven by news and attention, and the
price moves in proportion to the activity: returns sampled on the clock are a mixture of
Gaussians whose variance follows the activity, so they are heavy-tailed, and their absolute
values are autocorrelated for as long as the activity is (Clark 1973, the mixture of
distributions hypothesis; Ané and Geman 2000, business time).

The activity multiplier is lognormal and has mean 1::

    A(t) = exp(sigma * X(t) - sigma^2 / 2),    X(t) = sum_j X_j(t) / sqrt(J),

where the ``X_j`` are independent stationary Ornstein-Uhlenbeck processes with unit variance
and half-lives ``h_j`` (several time scales make the autocorrelation of ``A`` decay slowly,
like a power law over their range). ``A`` is piecewise constant on a grid of ``grid_s``
seconds; each cell is ``X_j(t + g) = rho_j X_j(t) + sqrt(1 - rho_j^2) * N(0, 1)`` with
``rho_j = 2^(-g / h_j)``, exactly.

The path of a whole run is drawn at once from a stream that belongs to the path (a group
of traders shares one: :meth:`marketsim.model.MarketModel.shared_stream`), so it depends
only on the seed and its name: a counterfactual run with one more meta-order sees the same
activity. Nothing a trader does changes it. That is the point: a meta-order does not draw
the crowd to itself, so its impact is not amplified by attention it created.

Time change. Poisson arrivals at ``rate * A(t)`` are unit-rate arrivals in business time
``Lambda(t) = int_0^t A(u) du``: :meth:`ActivityPath.after` maps a gap drawn at the base rate to
the step it ends on in clock time, exactly for the piecewise-constant ``A``. O(log n).
"""

from __future__ import annotations

import math

import numba
import numpy as np

__all__ = ["ActivityPath"]


@numba.njit(cache=True)
def _ar1(eps: np.ndarray, rho: float) -> np.ndarray:  # pragma: no cover - compiled
    """Stationary AR(1) with unit variance driven by the standard normals ``eps``. O(n)."""
    x = np.empty_like(eps)
    x[0] = eps[0]
    s = math.sqrt(1.0 - rho * rho)
    for k in range(1, eps.shape[0]):
        x[k] = rho * x[k - 1] + s * eps[k]
    return x


class ActivityPath:
    """A lognormal activity multiplier with mean 1 over a whole run (see the module docs).

    Args:
        rng: The path's own random stream (all of it is drawn here).
        total_steps: Steps of the run; the path covers them (and one more cell).
        step_seconds: Seconds per step.
        sigma: Standard deviation of ``log A`` (>= 0; 0 gives ``A = 1``).
        halflives_s: Half-lives of the OU components, seconds (each > 0).
        grid_s: Seconds per cell of the piecewise-constant path (> 0).

    Memory: ``2 * total_steps * step_seconds / grid_s`` floats.
    """

    __slots__ = ("sigma", "halflives_s", "grid_steps", "level_", "cum")

    def __init__(
        self,
        rng: np.random.Generator,
        total_steps: int,
        step_seconds: float,
        sigma: float,
        halflives_s: tuple[float, ...],
        grid_s: float,
    ) -> None:
        self.sigma = float(sigma)
        self.halflives_s = tuple(float(h) for h in halflives_s)
        self.grid_steps = max(1, round(grid_s / step_seconds))
        g = self.grid_steps * step_seconds
        n = total_steps // self.grid_steps + 2
        x = np.zeros(n)
        for h in self.halflives_s:
            rho = 2.0 ** (-g / h)
            x += _ar1(rng.standard_normal(n), rho)
        if self.halflives_s:
            x /= math.sqrt(len(self.halflives_s))
        #: A per cell.
        self.level_ = np.exp(self.sigma * x - 0.5 * self.sigma**2)
        #: Business time at the start of each cell, in base-rate steps.
        self.cum = np.concatenate(([0.0], np.cumsum(self.level_ * self.grid_steps)))

    def level(self, step: int) -> float:
        """``A`` during ``step`` (the last cell's value past the end). O(1)."""
        k = min(step // self.grid_steps, len(self.level_) - 1)
        return float(self.level_[k])

    def business_time(self, t: float) -> float:
        """``Lambda(t)``: integral of ``A`` over steps ``[0, t)``. O(1)."""
        g = self.grid_steps
        k = min(int(t // g), len(self.level_) - 1)
        return float(self.cum[k] + self.level_[k] * (t - k * g))

    def after(self, t: float, gap: float) -> float:
        """The clock time ``u >= t`` with ``Lambda(u) - Lambda(t) = gap`` (``gap`` in base-rate
        steps): a Poisson gap at the base rate, run through the activity. O(log n)."""
        target = self.business_time(t) + gap
        cum = self.cum
        k = int(np.searchsorted(cum, target, side="right")) - 1
        k = min(max(k, 0), len(self.level_) - 1)
        return k * self.grid_steps + (target - cum[k]) / self.level_[k]
