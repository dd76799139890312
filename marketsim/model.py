"""`MarketModel`: the Mesa model — clock, feeds, wake-ups, exchange, ledger, recorder.

One step (see ``design.md``):

1. feeds advance (one step, or the whole overnight gap at a day's open);
2. agents whose wake-up step has come act, in a seeded random order, appending orders to the
   exchange's inbound queue (arrival = now + their latency);
3. the exchange matches every arrived order per asset as one batch; the ledger settles fills;
4. margin checks (every ``margin_check_every`` steps) liquidate accounts through the book;
5. the recorder appends trades, top of book and (every ``record_every`` steps) account marks.

Only agents that wake up run Python; the per-order work is in numba batch kernels.
"""

from __future__ import annotations

import logging
import time as _time
import zlib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import mesa
import numpy as np

from marketsim import __version__
from marketsim.book import (
    BUY,
    FL_MAKER_OWNER,
    FL_PRICE,
    FL_QTY,
    FL_TAKER_OWNER,
    FL_TAKER_SIDE,
    IOC,
    LIMIT,
    MARKET,
    NO_PRICE,
    O_ID,
    O_KIND,
    O_OWNER,
    O_PRICE,
    O_QTY,
    O_SIDE,
    SELL,
)
from marketsim.checkpoint import load_state, save_state
from marketsim.errors import ConfigError, StateError
from marketsim.exchange import Exchange
from marketsim.feeds import make_feed, sector_correlation
from marketsim.ledger import CASH_SCALE, Ledger
from marketsim.params import sample_params
from marketsim.recorder import Recorder
from marketsim.scenario import Scenario, load_scenario

logger = logging.getLogger(__name__)

#: Checkpoint kind written by :meth:`MarketModel.save`.
CHECKPOINT_KIND = "marketsim.MarketModel"

#: Diffusion time of the overnight gap, as a fraction of a trading session's length.
OVERNIGHT_SESSION_FRACTION = 0.25

_TOP_FIELDS = 5  # bid, bid_qty, ask, ask_qty, last
_QUOTE_BLOCK = 2048  # steps of quotes buffered before a recorder flush
_FILL_BLOCK = 8192  # fills buffered before a recorder flush


class MarketModel(mesa.Model):
    """An agent-based market: one numba order book per asset inside a Mesa model.

    Args:
        scenario: A :class:`~marketsim.scenario.Scenario`, a dict, or a path to a TOML file.
        seed: Overrides ``simulation.seed``.
        out_dir: Folder for Parquet logs; ``None`` records in memory (``record=True``).
        overrides: ``key=value`` strings applied to the scenario (like ``--set``).
        record: Record trades, quotes and accounts at all.
        margin_check_every: Steps between maintenance-margin sweeps.

    Example:
        >>> m = MarketModel.from_scenario("scenarios/quickstart.toml", seed=1)
        >>> m.run(600)
        >>> m.trades().head()
    """

    def __init__(
        self,
        scenario: Scenario | dict | str | Path,
        seed: int | None = None,
        out_dir: str | Path | None = None,
        overrides: Iterable[str] = (),
        record: bool = True,
        margin_check_every: int = 60,
    ) -> None:
        sc = load_scenario(scenario, overrides)
        seed = sc.simulation.seed if seed is None else int(seed)
        if seed < 0:
            raise ConfigError(f"seed={seed} must be >= 0")
        ss = np.random.SeedSequence(seed)
        agent_ss, feed_ss, init_ss = ss.spawn(3)
        super().__init__(rng=np.random.default_rng(agent_ss))
        self.scenario = sc
        self.seed = seed
        self.scenario_hash = sc.hash()
        self.session = sc.session
        #: Random stream of the exogenous feeds, separate from the agents' so that a
        #: counterfactual run (another population) sees the same fundamental path.
        self.feed_rng = np.random.default_rng(feed_ss)
        init_rng = np.random.default_rng(init_ss)
        self.t = 0
        self.margin_check_every = int(margin_check_every)
        sim, ex = sc.simulation, sc.exchange
        self.max_assets = sim.max_assets
        self.ledger = Ledger(self.max_assets, initial_accounts_capacity=1024)
        self.exchange = Exchange(
            self.ledger, self.max_assets, ex.maker_fee_bps, ex.taker_fee_bps, risk_checks=True
        )
        self.sectors = [""] * self.max_assets
        self._tick = np.full(self.max_assets, np.nan)
        # fundamental feed over the configured assets in slot order
        self._asset_cfg = {a.symbol: a for a in sc.assets}
        fc = sc.fundamental
        corr = fc.correlation
        if corr is None and fc.intra_sector_corr is not None:
            corr = sector_correlation(
                [a.sector for a in sc.assets], fc.intra_sector_corr, fc.inter_sector_corr or 0.0
            )
        if corr is not None:
            corr = np.asarray(corr, dtype=float)
            if corr.shape[0] < self.max_assets:
                full = np.eye(self.max_assets)
                full[: corr.shape[0], : corr.shape[0]] = corr
                corr = full
        extra = {} if corr is None else {"correlation": corr}
        if fc.kind == "historical" and "tickers" not in fc.params:
            extra["tickers"] = []  # slots are mapped to the data's tickers by symbol in add_asset
        self.feed = make_feed(fc.kind, max_assets=self.max_assets, **extra, **fc.params)
        self.extra_feeds: list[Any] = []
        # recorder
        self.out_dir = None if out_dir is None else Path(out_dir)
        self.recorder: Recorder | None = None
        if record:
            self.recorder = Recorder(
                self.out_dir,
                [""] * self.max_assets,
                record_orders=sim.record_orders,
                l2_every=sim.l2_every,
                metadata={
                    "scenario_hash": self.scenario_hash,
                    "seed": seed,
                    "version": __version__,
                    "scenario": sc.simulation.name,
                },
            )
            self.exchange.fill_listeners.append(self._record_fills)
            if sim.record_orders:
                self.exchange.order_listeners.append(self._record_orders)
        # market-data history ring for delayed views
        md_lat = [g.md_latency_steps for g in sc.agents] + [
            g.md_latency_steps for g in sc.rl_agents
        ]
        self._ring_len = max(md_lat, default=0) + 1
        self._ring = np.full((self._ring_len, self.max_assets, _TOP_FIELDS), NO_PRICE, np.int64)
        # Recording buffers: quotes and fills are kept here and handed to the recorder in
        # blocks (flush_records), so a step costs a row copy rather than recorder calls.
        self._qbuf = np.zeros((_QUOTE_BLOCK, self.max_assets, _TOP_FIELDS), np.int64)
        self._qsteps = np.zeros(_QUOTE_BLOCK, np.int64)
        self._qn = 0
        self._qslots: list[int] = []
        self._fbuf: list[tuple[int, int, np.ndarray]] = []
        self._fbuf_rows = 0
        #: Endowments in assets not listed yet: symbol -> [[account, lots], ...].
        self._pending_endow: dict[str, list[list[int]]] = {}
        # assets present from the start
        self._pending_adds = sorted(
            (a.add_at_step, i, a.symbol) for i, a in enumerate(sc.assets) if a.add_at_step > 0
        )
        self._pending_removals = sorted(
            (a.remove_at_step, a.symbol) for a in sc.assets if a.remove_at_step >= 0
        )
        for a in sc.assets:
            if a.add_at_step == 0:
                self.add_asset(a.symbol)
        # position limits and short-sale ban are market-wide rules
        self._wake: dict[int, list[Any]] = {}
        self.account_agent: dict[int, Any] = {}
        self.account_type: list[str] = ["exchange"]
        self._build_agents(init_rng)
        self.step_hooks: list[Callable[[MarketModel], None]] = []
        self.wall_seconds = 0.0
        self.liquidations = 0
        self._day_started = -1
        self._type_code_cache = np.zeros(0, np.int64)
        from marketsim.replay import attach_replays  # the scenario's [replay] table, if any

        attach_replays(self)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_scenario(
        cls, scenario: Scenario | dict | str | Path, seed: int | None = None, **kwargs: Any
    ) -> MarketModel:
        """Build a model from a scenario object, dict or TOML path (``kwargs`` as __init__)."""
        return cls(scenario, seed=seed, **kwargs)

    def _build_agents(self, init_rng: np.random.Generator) -> None:
        from agents.background.base import TRADER_TYPES

        ex = self.scenario.exchange
        self._params_cache: dict[int, dict] = {}  # group params as dicts, during the build
        for group in self.scenario.agents:
            if group.count == 0:
                continue
            cls = TRADER_TYPES.get(group.type)
            if cls is None:
                raise ConfigError(
                    f"agents: unknown type {group.type!r}; known: {sorted(TRADER_TYPES)}"
                )
            syms = group.assets or [a.symbol for a in self.scenario.assets]
            draws = {
                k: v.tolist() for k, v in sample_params(group.params, init_rng, group.count).items()
            }
            for k in range(group.count):
                params = {name: v[k] for name, v in draws.items()}
                acc = self.open_account(
                    group.cash,
                    group.shares,
                    group.name,
                    allow_short=group.allow_short and ex.short_selling,
                    leverage_limit=group.leverage_limit,
                )
                slots = [self._slot_for(s) for s in syms]
                agent = cls(self, acc, group, params, slots)
                self.account_agent[acc] = agent
        from marketsim.env.agent import RLAgent

        #: RL agents by name (their orders come from the RL environment).
        self.rl_agents: dict[str, RLAgent] = {}
        for group in self.scenario.rl_agents:
            syms = group.assets or [a.symbol for a in self.scenario.assets]
            for name in group.agent_names() if group.count else []:
                acc = self.open_account(
                    group.cash,
                    group.shares,
                    "rl:" + group.name,
                    allow_short=group.allow_short and ex.short_selling,
                    leverage_limit=group.leverage_limit,
                )
                agent = RLAgent(self, acc, group, {"name": name}, [self._slot_for(s) for s in syms])
                self.account_agent[acc] = agent
                self.rl_agents[name] = agent
        self._params_cache = None

    def open_account(
        self,
        cash: float,
        shares: dict[str, int] | None,
        agent_type: str,
        allow_short: bool = True,
        leverage_limit: float | None = None,
    ) -> int:
        """Open a ledger account with an endowment; return its id.

        Shares of an asset that is not listed yet are credited when it lists.
        """
        ex = self.scenario.exchange
        positions = {}
        later: list[tuple[str, int]] = []
        for sym, q in (shares or {}).items():
            slot = self._slot_for(sym)
            if not q:
                continue
            info = self.exchange.assets[slot]
            if info is None or info.symbol != sym:
                later.append((sym, int(q)))  # credited when ``sym`` lists (add_asset)
            else:
                positions[slot] = int(q)
        acc = self.ledger.add_account(
            cash,
            positions or None,
            agent_type=agent_type,
            allow_short=allow_short and ex.short_selling,
            leverage_limit=leverage_limit
            if leverage_limit is not None
            else ex.default_leverage_limit,
        )
        while len(self.account_type) <= acc:
            self.account_type.append(agent_type)
        self.account_type[acc] = agent_type
        for sym, q in later:
            self._pending_endow.setdefault(sym, []).append([acc, q])
        return acc

    def _slot_for(self, symbol: str) -> int:
        """Slot of ``symbol``: its live slot, or the slot reserved for a later listing."""
        try:
            return self.exchange.slot_of(symbol)
        except ConfigError:
            pass
        for i, a in enumerate(self.scenario.assets):
            if a.symbol == symbol:
                return self._reserved_slot(i)
        raise ConfigError(f"unknown asset {symbol!r}")

    def _reserved_slot(self, index: int) -> int:
        # Assets are laid out in scenario order; runtime additions take the first free slot.
        return index

    # ------------------------------------------------------------------ assets at run time
    def add_asset(self, symbol: str, slot: int | None = None) -> int:
        """List the scenario's asset ``symbol`` (in a free slot); return the slot."""
        a = self._asset_cfg.get(symbol)
        if a is None:
            raise ConfigError(f"unknown asset {symbol!r}; scenario assets: {list(self._asset_cfg)}")
        if slot is None:
            idx = list(self._asset_cfg).index(symbol)
            slot = idx if self.exchange.books[idx] is None else None
            if slot is None:
                free = [s for s, b in enumerate(self.exchange.books) if b is None]
                if not free:
                    raise ConfigError(
                        f"cannot add {symbol!r}: all max_assets={self.max_assets} slots are in use"
                    )
                slot = free[0]
        self.exchange.add_asset(
            slot, symbol, a.tick_size, a.lot_size, a.max_price_ticks, sector=a.sector
        )
        pos_limit = self.scenario.exchange.position_limit_lots
        if pos_limit:
            self.ledger.set_position_limit(slot, pos_limit)
        self.sectors[slot] = a.sector
        self._tick[slot] = a.tick_size
        # replayed feeds map slots to the data's tickers by symbol
        if self.scenario.fundamental.kind == "historical":
            if not np.isfinite(self.feed.values()[slot]):  # not already mapped by `tickers`
                self.feed.add_asset(slot, a.initial_price, ticker=symbol)
        else:
            self.feed.add_asset(slot, a.initial_price)
        self._ring[:, slot, :] = NO_PRICE
        for acc, q in self._pending_endow.pop(symbol, []):
            self.ledger.endow_shares(acc, slot, q)
        if self.recorder is not None:
            self.flush_records()
        p0 = round(a.initial_price / a.tick_size)
        self.ledger.mark(self._marks_with(slot, p0))
        if self.recorder is not None:
            self.recorder.set_asset_name(slot, symbol)
            if self.t > 0:
                self.recorder.event(self.t, self.time_ns(), "asset_added", symbol)
        return slot

    def _marks_with(self, slot: int, price: int) -> np.ndarray:
        marks = np.full(self.max_assets, np.nan)
        marks[slot] = price
        return marks

    def remove_asset(self, symbol: str) -> dict[int, int]:
        """Delist ``symbol``: cancel its orders and settle positions at the last mid."""
        slot = self.exchange.slot_of(symbol)
        if self.recorder is not None:
            self.flush_records()
        mid = self.exchange.mid_ticks(slot)
        price = round(mid) if np.isfinite(mid) else round(self.fundamental_ticks(slot))
        settled = self.exchange.remove_asset(slot, price)
        self.feed.remove_asset(slot)
        self._tick[slot] = np.nan
        if self.recorder is not None:
            self.recorder.event(
                self.t,
                self.time_ns(),
                "asset_removed",
                symbol,
                detail={
                    "settle_price": price * self.scenario_asset(symbol).tick_size,
                    "accounts": len(settled),
                },
            )
            self.recorder.set_asset_name(slot, "")
        for agent in list(self.account_agent.values()):
            if slot in agent.slots:
                agent.slots.remove(slot)
        return settled

    def scenario_asset(self, symbol: str):
        """The scenario's ``[[assets]]`` entry for ``symbol``."""
        return self._asset_cfg[symbol]

    # ------------------------------------------------------------------ clock
    def time_ns(self, step: int | None = None) -> int:
        """Simulated market time of a step (ns since the epoch)."""
        return self.session.step_to_time_ns(self.t if step is None else step)

    def schedule(self, agent: Any, step: int) -> None:
        """Wake ``agent`` at ``step`` (same-day only: wake-ups past the close are dropped)."""
        day_end = (self.t // self.session.steps_per_day + 1) * self.session.steps_per_day
        if step >= day_end:
            return
        bucket = self._wake.get(step)
        if bucket is None:
            self._wake[step] = [agent]
        else:
            bucket.append(agent)

    # ------------------------------------------------------------------ market data
    def quote(self, slot: int, delay_steps: int = 0) -> tuple[int, int, int, int]:
        """Top of book (bid, bid qty, ask, ask qty) as of ``delay_steps`` steps ago."""
        if delay_steps <= 0 or self.t - delay_steps < 1:
            book = self.exchange.books[slot]
            if book is None:
                return NO_PRICE, 0, NO_PRICE, 0
            return book.top()
        r = self._ring[(self.t - 1 - delay_steps) % self._ring_len, slot]
        return int(r[0]), int(r[1]), int(r[2]), int(r[3])

    def last_price(self, slot: int, delay_steps: int = 0) -> int:
        """Last trade price in ticks as of ``delay_steps`` ago (NO_PRICE if none)."""
        if delay_steps <= 0 or self.t - delay_steps < 1:
            return int(self.exchange.last_price[slot])
        return int(self._ring[(self.t - 1 - delay_steps) % self._ring_len, slot, 4])

    def agent_stream(self, account: int) -> np.random.Generator:
        """A fresh random stream for the agent of ``account``: PCG64 seeded by the model's seed
        and the account id (``SeedSequence(seed, spawn_key=(3, account))``, disjoint from the
        model's own, feed and init streams). Same seed and account -> same stream. O(1)."""
        ss = np.random.SeedSequence(self.seed, spawn_key=(3, int(account)))
        return np.random.Generator(np.random.PCG64(ss))

    def shared_stream(self, name: str) -> np.random.Generator:
        """A fresh random stream named ``name``, for exogenous processes several agents share
        (a group's activity path): ``SeedSequence(seed, spawn_key=(4, crc32(name)))``, disjoint
        from the agents' streams. Same seed and name -> same stream. O(1)."""
        key = zlib.crc32(name.encode("utf-8"))
        ss = np.random.SeedSequence(self.seed, spawn_key=(4, key))
        return np.random.Generator(np.random.PCG64(ss))

    def fundamental_ticks(self, slot: int) -> float:
        """The feed's fundamental value of ``slot`` in ticks."""
        return float(self.feed.values()[slot] / self._tick[slot])

    def future_fundamental(self, lead_steps: int) -> np.ndarray:
        """Fundamental values ``lead_steps`` steps ahead (a copy), for "early signal" features.

        0 returns the current values. Otherwise the feed is cloned (state and random stream)
        and advanced on the clone, so the real path is untouched and the signal is exactly the
        value the market will see then (within the day). O(lead_steps).
        """
        if lead_steps <= 0:
            return np.array(self.feed.values(), dtype=float)
        cache = self.__dict__.setdefault("_future_cache", {})
        key = (self.t, lead_steps)
        if key in cache:
            return cache[key]
        shadow = type(self.feed)(self.max_assets)
        shadow.set_state(self.feed.get_state())
        rng = np.random.default_rng()
        rng.bit_generator.state = self.feed_rng.bit_generator.state
        for k in range(1, lead_steps + 1):
            shadow.advance(self.t + k, self.session.step_seconds, rng)
        out = np.array(shadow.values(), dtype=float)
        cache.clear()
        cache[key] = out
        return out

    def mark_prices(self) -> np.ndarray:
        """Mid (or last / fundamental) per slot in ticks, NaN for free slots."""
        out = np.full(self.max_assets, np.nan)
        for s in self.exchange.live_slots():
            m = self.exchange.mid_ticks(s)
            out[s] = m if np.isfinite(m) else self.fundamental_ticks(s)
        return out

    # ------------------------------------------------------------------ stepping
    def step(self) -> None:
        """Advance the market by one step (Mesa entry point)."""
        self._step()

    def _step(self) -> None:
        t = self.t
        spd = self.session.steps_per_day
        day, k = divmod(t, spd)
        if k == 0:
            self._open_day(day, t)
        else:
            self.feed.advance(t, self.session.step_seconds, self.feed_rng)
        for f in self.extra_feeds:
            f.advance(t, self.session.step_seconds, self.feed_rng)
        while self._pending_adds and self._pending_adds[0][0] <= t:
            _, _, sym = self._pending_adds.pop(0)
            self.add_asset(sym)
        while self._pending_removals and self._pending_removals[0][0] <= t:
            _, sym = self._pending_removals.pop(0)
            self.remove_asset(sym)
        woken = self._wake.pop(t, None)
        if woken is not None:
            if len(woken) > 1:
                order = self.rng.permutation(len(woken))
                for i in order:
                    woken[i].wake(t)
            else:
                woken[0].wake(t)
        for hook in self.step_hooks:
            hook(self)
        self.exchange.match(t)
        if self.margin_check_every and t % self.margin_check_every == 0:
            self.check_margins()
        self._end_of_step(t, k == spd - 1, day)
        self.t = t + 1
        self.steps = self.t

    def _open_day(self, day: int, t: int) -> None:
        if day > 0:
            # The overnight gap moves the fundamental like OVERNIGHT_SESSION_FRACTION of a
            # trading session (close-to-open variance is a fraction of a day's, not 2.7x it).
            gap = OVERNIGHT_SESSION_FRACTION * spd_seconds(self.session)
            self.feed.advance(t, gap + self.session.step_seconds, self.feed_rng)
        self._day_started = day
        agents = list(self.account_agent.values())
        for a in agents:
            a.on_day_start(day, t)
        # first wake-ups of the day, drawn in agent creation order (liquidated accounts stay out)
        closed = self.ledger.closed
        for a in agents:
            if closed[a.account]:
                continue
            w = a.first_wake(t)
            if w is not None:
                self.schedule(a, w)

    def _end_of_step(self, t: int, day_end: bool, day: int) -> None:
        ex = self.exchange
        ring = self._ring[t % self._ring_len]
        live = ex.live_slots()
        for s in live:
            bb, bq, ba, aq = ex.books[s].top()
            r = ring[s]
            r[0] = bb
            r[1] = bq
            r[2] = ba
            r[3] = aq
            r[4] = ex.last_price[s]
        rec = self.recorder
        if rec is not None:
            qe = self.scenario.simulation.quotes_every
            if qe and t % qe == 0 and live:
                if live != self._qslots:
                    self._flush_quotes()
                    self._qslots = live
                self._qbuf[self._qn] = ring
                self._qsteps[self._qn] = t
                self._qn += 1
                if self._qn == _QUOTE_BLOCK:
                    self._flush_quotes()
            if rec.l2_due(t):
                self._record_l2(t, live)
            if t % self.scenario.simulation.record_every == 0 or day_end:
                self.record_accounts(t)
        if day_end:
            ex.cancel_all(t)
            for a in list(self.account_agent.values()):
                a.on_day_end(day, t)
            self._wake = {s: v for s, v in self._wake.items() if s <= t}

    def run(self, steps: int | None = None, progress: bool = False) -> MarketModel:
        """Run ``steps`` steps (default: to the end of the scenario); return self."""
        total = self.session.total_steps
        if steps is None:
            steps = total - self.t
        steps = int(steps)
        if steps < 0:
            raise ConfigError(f"steps={steps} must be >= 0")
        end = min(self.t + steps, total)
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=end - self.t, unit="step", desc=self.scenario.simulation.name)
        t0 = _time.perf_counter()
        step = self._step
        chunk = max(1, (end - self.t) // 200)
        while self.t < end:
            step()
            if bar is not None and self.t % chunk == 0:
                bar.update(chunk)
        self.wall_seconds += _time.perf_counter() - t0
        if bar is not None:
            bar.n = bar.total
            bar.close()
        return self

    @property
    def done(self) -> bool:
        """True when the scenario's last step has run."""
        return self.t >= self.session.total_steps

    # ------------------------------------------------------------------ risk
    def check_margins(self) -> list[int]:
        """Liquidate accounts below maintenance margin through the book; return them."""
        marks = self.mark_prices()
        self.ledger.mark(marks)
        calls = self.ledger.margin_calls(self.scenario.exchange.maintenance_margin, marks)
        out = []
        for acc in calls.tolist():
            self.liquidate(int(acc), reason="margin_call")
            out.append(int(acc))
        return out

    def liquidate(self, account: int, reason: str = "liquidation") -> None:
        """Cancel the account's orders and flatten its positions with market orders."""
        ex = self.exchange
        ex.cancel_all(self.t, owner=account)
        for s in ex.live_slots():
            pos = self.ledger.position(account, s)
            if pos == 0:
                continue
            o = np.array(
                [[ex.new_order_id(), account, 0, abs(pos), MARKET, SELL if pos > 0 else BUY]],
                dtype=np.int64,
            )
            ex.execute_now(self.t, s, o)
        self.ledger.close_account(account)
        self.liquidations += 1
        agent = self.account_agent.get(account)
        if agent is not None:
            self._wake = {s: [a for a in v if a is not agent] for s, v in self._wake.items()}
        if self.recorder is not None:
            self.recorder.event(
                self.t, self.time_ns(), "liquidation", "", account, {"reason": reason}
            )

    # ------------------------------------------------------------------ recording
    def _record_fills(self, step: int, slot: int, fills: np.ndarray) -> None:
        self._fbuf.append((step, slot, fills))
        self._fbuf_rows += fills.shape[0]
        if self._fbuf_rows >= _FILL_BLOCK:
            self._flush_fills()

    def _record_orders(self, step: int, slot: int, orders: np.ndarray, status: np.ndarray) -> None:
        self.recorder.orders(
            step,
            self.time_ns(step),
            slot,
            orders[:, O_OWNER],
            orders[:, O_KIND],
            orders[:, O_SIDE].astype(np.int8),
            np.where(
                (orders[:, O_KIND] == LIMIT) | (orders[:, O_KIND] == IOC),
                orders[:, O_PRICE] * self._tick[slot],
                np.nan,
            ),
            orders[:, O_QTY],
            orders[:, O_ID],
            status,
        )

    def _flush_fills(self) -> None:
        if not self._fbuf:
            return
        raw = np.concatenate([f for _, _, f in self._fbuf])
        steps = np.concatenate([np.full(f.shape[0], st, np.int64) for st, _, f in self._fbuf])
        slots = np.concatenate([np.full(f.shape[0], sl, np.int64) for _, sl, f in self._fbuf])
        self._fbuf = []
        self._fbuf_rows = 0
        buys = raw[:, FL_TAKER_SIDE] == BUY
        self.recorder.trades_block(
            steps,
            self.session.steps_to_time_ns(steps),
            slots,
            raw[:, FL_PRICE] * self._tick[slots],
            raw[:, FL_QTY],
            raw[:, FL_TAKER_SIDE].astype(np.int8),
            np.where(buys, raw[:, FL_TAKER_OWNER], raw[:, FL_MAKER_OWNER]),
            np.where(buys, raw[:, FL_MAKER_OWNER], raw[:, FL_TAKER_OWNER]),
        )

    def _flush_quotes(self) -> None:
        n = self._qn
        if n == 0:
            return
        self._qn = 0
        idx = np.asarray(self._qslots, np.int64)
        if idx.size == 0:
            return
        r = self._qbuf[:n][:, idx, :]
        tick = self._tick[idx]
        steps = self._qsteps[:n].copy()

        def px(col: int) -> np.ndarray:
            v = r[:, :, col]
            return np.where(v == NO_PRICE, np.nan, v * tick)

        self.recorder.quotes_block(
            steps,
            self.session.steps_to_time_ns(steps),
            idx,
            px(0),
            px(2),
            np.where(r[:, :, 0] == NO_PRICE, 0, r[:, :, 1]),
            np.where(r[:, :, 2] == NO_PRICE, 0, r[:, :, 3]),
            px(4),
        )

    def flush_records(self) -> None:
        """Hand buffered quotes and trades to the recorder (done automatically in blocks, at
        asset changes, on save, close and when frames are read)."""
        if self.recorder is not None:
            self._flush_quotes()
            self._flush_fills()

    def _record_l2(self, t: int, live: list[int]) -> None:
        for s in live:
            bp, bq, ap, aq = self.exchange.books[s].depth(10)
            tick = self._tick[s]
            self.recorder.l2(t, self.time_ns(t), s, bp * tick, bq, ap * tick, aq)

    def record_accounts(self, t: int) -> None:
        """Append account marks and non-zero positions to the recorder."""
        marks = self.mark_prices()
        self.ledger.mark(marks)
        n = self.ledger.n_accounts
        eq = self.ledger.equity(marks)
        cash = self.ledger.cash_units / CASH_SCALE
        self.recorder.accounts(t, np.arange(n), self._type_codes(n), cash, eq)
        pos = self.ledger.positions
        acc, slot = np.nonzero(pos)
        if acc.size:
            self.recorder.positions(t, acc, slot, pos[acc, slot])

    def _type_codes(self, n: int) -> np.ndarray:
        if self._type_code_cache.shape[0] != n:
            code = self.recorder.agent_type_code
            self._type_code_cache = np.array([code(x) for x in self.account_type[:n]], np.int64)
        return self._type_code_cache

    def trades(self):
        """All trades so far as a DataFrame (``trades.parquet`` schema)."""
        if self.recorder is None:
            raise ConfigError("this model was built with record=False: no trades were recorded")
        self.flush_records()
        return self.recorder.frame("trades")

    def quotes(self):
        """Top-of-book rows so far as a DataFrame (``quotes.parquet`` schema)."""
        if self.recorder is None:
            raise ConfigError("this model was built with record=False: no quotes were recorded")
        self.flush_records()
        return self.recorder.frame("quotes")

    def close(self) -> None:
        """Flush and close the recorder's files (idempotent)."""
        if self.recorder is not None and not self.recorder.closed:
            self.flush_records()
            self.recorder.close()

    def release(self) -> None:
        """Drop every agent and Mesa's per-model id counter so the model can be collected.

        Mesa 3.3 keeps every model that created agents alive through ``Agent._ids``; call this
        when you build many models in one process (the RL env does on reset).
        """
        self.close()
        self.remove_all_agents()
        self.account_agent.clear()
        self._wake.clear()
        mesa.Agent._ids.pop(self, None)

    # ------------------------------------------------------------------ checkpoints
    def get_state(self) -> dict[str, Any]:
        """The whole model state as arrays plus plain data (no pickle)."""
        agents = {str(acc): a.get_state() for acc, a in self.account_agent.items()}
        wake = {str(s): [a.account for a in v] for s, v in self._wake.items()}
        return {
            "scenario": self.scenario.to_dict(),
            "scenario_hash": self.scenario_hash,
            "seed": self.seed,
            "t": self.t,
            "rng": self.rng.bit_generator.state,
            "feed_rng": self.feed_rng.bit_generator.state,
            "ledger": self.ledger.get_state(),
            "exchange": self.exchange.get_state(),
            "feed": self.feed.get_state(),
            "ring": self._ring.copy(),
            "tick": self._tick.copy(),
            "sectors": list(self.sectors),
            "account_type": list(self.account_type),
            "agents": agents,
            "wake": wake,
            "pending_adds": [list(x) for x in self._pending_adds],
            "pending_removals": [list(x) for x in self._pending_removals],
            "pending_endow": {k: [list(x) for x in v] for k, v in self._pending_endow.items()},
            "liquidations": self.liquidations,
            "day_started": self._day_started,
            "asset_names": list(self.recorder.asset_names) if self.recorder else None,
        }

    def save(self, path: str | Path) -> Path:
        """Write a checkpoint (``.npz`` of arrays + JSON; no pickle); return its path."""
        if self.recorder is not None:
            self.flush_records()
            self.recorder.flush()
        return save_state(path, CHECKPOINT_KIND, self.get_state(), __version__)

    @classmethod
    def load(cls, path: str | Path, out_dir: str | Path | None = None, record: bool = True):
        """Restore a model saved with :meth:`save`; the continued run is bit-identical.

        The recorder starts empty (rows before the checkpoint are in the original run's files).
        """
        st = load_state(path, CHECKPOINT_KIND)
        try:
            model = cls(st["scenario"], seed=st["seed"], out_dir=out_dir, record=record)
            model.set_state(st)
        except KeyError as e:
            raise StateError(f"checkpoint {str(path)!r} lacks field {e.args[0]!r}") from None
        return model

    def set_state(self, st: dict[str, Any]) -> None:
        """Restore :meth:`get_state` output into a model built from the same scenario."""
        if st["scenario_hash"] != self.scenario_hash:
            raise StateError(
                f"checkpoint is of scenario {st['scenario_hash']}, this model runs "
                f"{self.scenario_hash}"
            )
        self.t = int(st["t"])
        self.steps = self.t
        self.rng.bit_generator.state = st["rng"]
        self.feed_rng.bit_generator.state = st["feed_rng"]
        self.ledger = Ledger.from_state(st["ledger"])
        self.exchange.ledger = self.ledger
        self.exchange.set_state(st["exchange"])
        self.feed.set_state(st["feed"])
        self._ring[...] = st["ring"]
        self._tick[:] = st["tick"]
        self.sectors = list(st["sectors"])
        self.account_type = list(st["account_type"])
        for acc, a in self.account_agent.items():
            a.set_state(st["agents"][str(acc)])
        by_acc = self.account_agent
        self._wake = {int(s): [by_acc[a] for a in v] for s, v in st["wake"].items()}
        self._pending_adds = [tuple(x) for x in st["pending_adds"]]
        self._pending_removals = [tuple(x) for x in st["pending_removals"]]
        self._pending_endow = {
            k: [[int(a), int(q)] for a, q in v] for k, v in st.get("pending_endow", {}).items()
        }
        self.liquidations = int(st["liquidations"])
        self._day_started = int(st["day_started"])
        if self.recorder is not None and st.get("asset_names"):
            for s, name in enumerate(st["asset_names"]):
                self.recorder.set_asset_name(s, name)


def spd_seconds(session) -> float:
    """Length of one trading session in seconds."""
    return session.steps_per_day * session.step_seconds
