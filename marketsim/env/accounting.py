"""Compiled per-step book-keeping of the RL agents' accounts (all agents in one call).

The environment values every live RL agent at every decision: position values at the marks,
equity, gross exposure, the value of the position changes since the episode start (inventory
rewards) and the ``portfolio`` observation entries. Done per agent with small numpy arrays this
costs microseconds of interpreter overhead per operation; these kernels do it for all agents in
one call over the ledger's arrays.

Units: currency (float) from the ledger's integer micro-currency cash and lot positions;
``marks`` in ticks (NaN for an asset without a price: its positions are valued at 0).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit


@njit(cache=True)
def value_agents(marks, unit_value, cash_scale, cash_all, pos_all, accs, idx, init_pos, mm):
    """Value the accounts ``accs`` at ``marks``. O(n * A).

    Args:
        marks: (A,) mark prices in ticks; NaN values a position at 0.
        unit_value: (A,) ledger micro-currency per tick x lot.
        cash_scale: Micro-currency per currency unit.
        cash_all: (accounts,) int64 ledger cash (micro-currency).
        pos_all: (accounts, A) int64 ledger positions (lots).
        accs: (n,) account ids of the agents to value.
        idx: (n,) row of each agent in ``init_pos``.
        init_pos: (agents, A) positions at the episode start.
        mm: Maintenance margin (fraction of gross exposure).

    Returns:
        ``(vpl, cash, vals, equity, gross, inventory_value, n_below)``: value per lot (A,),
        cash (n,), position values (n, A), ``cash + sum(vals)``, ``sum |vals|`` and
        ``sum((pos - init_pos) * vpl)`` per agent, and how many agents are below the
        maintenance margin (``equity < mm * gross`` or no equity left with a position).
    """
    A = marks.shape[0]
    n = accs.shape[0]
    vpl = np.empty(A)
    for a in range(A):
        m = marks[a]
        vpl[a] = (m if np.isfinite(m) else 0.0) * (unit_value[a] / cash_scale)
    cash = np.empty(n)
    vals = np.empty((n, A))
    eq = np.empty(n)
    gross = np.empty(n)
    inv = np.empty(n)
    below = 0
    for i in range(n):
        acc = accs[i]
        j = idx[i]
        c = cash_all[acc] / cash_scale
        s = 0.0
        g = 0.0
        iv = 0.0
        for a in range(A):
            v = pos_all[acc, a] * vpl[a]
            vals[i, a] = v
            s += v
            g += abs(v)
            iv += (pos_all[acc, a] - init_pos[j, a]) * vpl[a]
        cash[i] = c
        eq[i] = c + s
        gross[i] = g
        inv[i] = iv
        if eq[i] < mm * g or (eq[i] <= 0 and g > 0):
            below += 1
    return vpl, cash, vals, eq, gross, inv, below


@njit(cache=True)
def portfolio_rows(cash, vals, eq, gross, idx, init_eq, peak):
    """Raise each agent's peak equity to its equity, then build the ``portfolio`` entries.

    Row ``i`` (length A + 4): position weights ``vals / eq``, cash weight, gross leverage
    ``gross / eq``, ``log(eq / initial equity)`` and drawdown ``max(0, 1 - eq / peak)``; all
    zeros when ``eq <= 0``. ``peak`` (indexed by ``idx``) is updated in place. O(n * A).
    """
    n, A = vals.shape
    port = np.zeros((n, A + 4), np.float32)
    for i in range(n):
        j = idx[i]
        e = eq[i]
        if e > peak[j]:
            peak[j] = e
        if e > 0:
            for a in range(A):
                port[i, a] = vals[i, a] / e
            port[i, A] = cash[i] / e
            port[i, A + 1] = gross[i] / e
            port[i, A + 2] = math.log(e / init_eq[j])
            port[i, A + 3] = max(0.0, 1.0 - e / peak[j])
    return port


@njit(cache=True)
def in_box(x, lo, hi):
    """Whether every entry of ``x`` lies in [lo, hi] (False for NaN). O(n)."""
    for i in range(x.shape[0]):
        if not (x[i] >= lo and x[i] <= hi):
            return False
    return True


__all__ = ["in_box", "portfolio_rows", "value_agents"]
