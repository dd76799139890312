"""Order-flow replay: LOBSTER messages sent into a running model's book, step by step.

Ingestion mode (b) of the "Production hooks" issue. :class:`OrderFlowReplay` converts a
LOBSTER message file once (:func:`marketsim.data.lobster.to_orders`) and, attached to a
:class:`~marketsim.model.MarketModel` as a step hook, sends model step ``k``'s messages for one
asset into its book as ONE batch (``exchange.execute_now``). Hooks run after the agents act and
before the exchange matches the inbound queue, so within a step the replayed messages reach
the book first and the RL / background orders that arrive that step right after them; from
then on price-time priority decides who trades with whom.

Accounts: the replayed limit orders belong to a dedicated ``"replay"`` account and the
synthetic takers of LOBSTER executions (type 4, ``executions="marketable"``) to a
``"replay_taker"`` account. Both get a large endowment (``cash``, ``shares``), may short and
have no leverage limit, so the ledger stays conserved (every fill moves cash and shares
between real accounts, fees included) and margin sweeps leave them alone. Their batches
bypass the pre-trade risk checks (historical messages are facts, not decisions; a market-wide
position limit must not reject them): ``exchange.risk_checks`` is switched off for that one
call only.

Order ids: LOBSTER ids are shifted by :data:`REPLAY_ID_BASE` (and the synthetic IOC ids by
``-REPLAY_ID_BASE``), so they never collide with the ids the exchange hands out to agents.

Clock: model step 0 starts at the session open (``simulation.open``, seconds after midnight)
unless ``start_s`` says otherwise; message ``i`` goes to step
``floor((time[i] - start_s) / step_seconds)``. Messages after the scenario's last step are
never sent. LOBSTER files hold one day: the model's end-of-day cancel removes the replayed
book, and the replay is meant for one-day scenarios.

Selecting it from a scenario::

    [replay.orderflow]
    path = "data/ABC_2012-06-21_message_10.csv"   # relative to the working directory
    asset = "ABC"
    step_seconds = 1.0          # default: simulation.step_seconds
    executions = "marketable"   # or "reduce" (the book is reproduced, no fills)

:func:`attach_replays` builds what the scenario's ``[replay]`` table asks for (the RL env
calls it at reset; :func:`build_model` builds a model with it attached).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from marketsim.book import O_ID, as_raw
from marketsim.data.lobster import LobsterOrders, read_lobster_messages, to_orders
from marketsim.errors import ConfigError

__all__ = ["REPLAY_ID_BASE", "OrderFlowReplay", "attach_replays", "build_model"]

logger = logging.getLogger(__name__)

#: Offset added to LOBSTER order ids (and subtracted from synthetic IOC ids) so replayed ids
#: never collide with exchange-assigned ids (which count up from 1).
REPLAY_ID_BASE = 1 << 48

#: Attribute set on a model once :func:`attach_replays` ran (makes it idempotent).
_ATTACHED = "_replays_attached"


class OrderFlowReplay:
    """Replays a LOBSTER message file into one asset's book of a running model.

    Args:
        model: The :class:`~marketsim.model.MarketModel` (the asset must be listed in it).
        messages_path: LOBSTER message file.
        asset: Symbol of the scenario asset the messages are for.
        step_seconds: Seconds per model step (default: the scenario's ``step_seconds``).
        executions: ``"marketable"`` (executions become IOCs from the taker account, fills
            happen) or ``"reduce"`` (executed orders are reduced, no fills).
        start_s: Time of model step 0 in seconds after midnight (default: the session open).
        cash: Cash endowment of each of the two replay accounts (currency).
        shares: Share endowment (lots of ``asset``) of each of the two replay accounts.
        attach: Append the replay to ``model.step_hooks``.

    Attributes:
        orders: The converted :class:`~marketsim.data.lobster.LobsterOrders` (ids shifted).
        account, taker_account: The two replay accounts.
        slot: The asset's slot.
        n_sent, n_fills: Orders sent to the book and fills they produced so far.

    Conversion is O(messages) once; each step costs one ``execute_now`` call (O(orders of the
    step) in numba) when the step has messages, O(1) otherwise.

    Raises:
        ConfigError: unknown asset, bad step length, or messages starting before ``start_s``.
        DataError: unreadable message file (file and line named).
    """

    def __init__(
        self,
        model: Any,
        messages_path: str | os.PathLike,
        asset: str,
        *,
        step_seconds: float | None = None,
        executions: str = "marketable",
        start_s: float | None = None,
        cash: float = 1e9,
        shares: int = 10_000_000,
        attach: bool = True,
    ) -> None:
        self.model = model
        symbols = [a.symbol for a in model.scenario.assets]
        if asset not in symbols:
            raise ConfigError(f"replay asset={asset!r} is not a scenario asset; assets: {symbols}")
        cfg = model.scenario_asset(asset)
        self.asset = asset
        self.slot = model._slot_for(asset)
        if step_seconds is None:
            step_seconds = float(model.session.step_seconds)
        if start_s is None:
            o = model.scenario.simulation.open
            start_s = float(o.hour * 3600 + o.minute * 60 + o.second + o.microsecond / 1e6)
        self.account = model.open_account(cash, {asset: int(shares)}, "replay")
        self.taker_account = model.open_account(cash, {asset: int(shares)}, "replay_taker")
        msgs = read_lobster_messages(messages_path)
        conv = to_orders(
            msgs,
            step_seconds=step_seconds,
            tick_size=cfg.tick_size,
            lot_size=cfg.lot_size,
            executions=executions,
            owner=self.account,
            counterparty=self.taker_account,
            start_s=start_s,
        )
        ids = conv.orders["order_id"]
        conv.orders["order_id"] = np.where(ids > 0, ids + REPLAY_ID_BASE, ids - REPLAY_ID_BASE)
        self.orders: LobsterOrders = conv
        self._raw = np.ascontiguousarray(as_raw(conv.orders))
        self.path = str(messages_path)
        self.n_sent = 0
        self.n_fills = 0
        if conv.halted.any():
            logger.info("%s: trading halted during %d steps", self.path, int(conv.halted.sum()))
        if attach:
            model.step_hooks.append(self)

    def step_orders(self, t: int) -> np.ndarray:
        """The raw ``(n, 6)`` int64 orders of model step ``t`` (empty outside the file). O(1)."""
        o = self.orders
        if t < 0 or t >= o.n_steps:
            return self._raw[:0]
        return self._raw[o.step_offsets[t] : o.step_offsets[t + 1]]

    def __call__(self, model: Any) -> None:
        """Step hook: send this step's messages to the book (risk checks bypassed)."""
        batch = self.step_orders(model.t)
        if batch.shape[0] == 0 or model.exchange.books[self.slot] is None:
            return
        ex = model.exchange
        saved = ex.risk_checks
        ex.risk_checks = False
        try:
            fills = ex.execute_now(model.t, self.slot, batch.copy())
        finally:
            ex.risk_checks = saved
        self.n_sent += batch.shape[0]
        self.n_fills += fills.shape[0]

    @property
    def replayed_ids(self) -> np.ndarray:
        """Every (shifted) order id the replay sends. O(orders)."""
        return self._raw[:, O_ID]


def attach_replays(model: Any) -> list[OrderFlowReplay]:
    """Build the replays the model's scenario ``[replay]`` table asks for; idempotent.

    Returns:
        The replays attached now (empty if none are configured or they were attached before).
    """
    if getattr(model, _ATTACHED, False):
        return []
    setattr(model, _ATTACHED, True)
    rc = getattr(model.scenario, "replay", None)
    if rc is None or rc.orderflow is None:
        model.replays = []
        return []
    of = rc.orderflow
    path = Path(of.path)
    if not path.is_file():
        raise ConfigError(f"replay.orderflow.path = {of.path!r}: no such file")
    rep = OrderFlowReplay(
        model,
        path,
        of.asset,
        step_seconds=of.step_seconds,
        executions=of.executions,
        start_s=of.start_s,
        cash=of.cash,
        shares=of.shares,
    )
    model.replays = [rep]
    return [rep]


def build_model(scenario: Any, **kwargs: Any) -> Any:
    """A :class:`~marketsim.model.MarketModel` with the scenario's replays attached."""
    from marketsim.model import MarketModel

    m = MarketModel(scenario, **kwargs)
    attach_replays(m)
    return m
