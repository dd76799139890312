"""Run monitoring: step latency, order-to-fill latency, queues, rejects, P&L, exposure, VaR.

A :class:`Monitor` attaches to a :class:`~marketsim.model.MarketModel` through
``model.step_hooks`` (called once per step, after the agents acted and before matching) and
``model.exchange.fill_listeners``; to time orders of tracked accounts it also wraps the
exchange instance's ``submit`` (the class is untouched, :meth:`Monitor.close` restores it).

Measured every step (cheap: a clock read and a few additions):

* ``step_wall``: wall time of one step cycle, hook to hook, minus idle time reported with
  :meth:`Monitor.idle` (the shadow runner's cadence sleep);
* fills and traded quantity;
* order-to-fill latency in simulated steps for orders of the tracked accounts (submission
  step -> step of the order's first fill, as taker or maker).

Sampled every ``every`` steps, as one row of ``monitor.parquet`` (and Prometheus gauges):
the inbound order queue, rejects by reason since the last row, and per *entity* (an agent type,
aggregated over its accounts, or one selected account): equity, P&L since attach, gross and net
exposure, leverage (gross / equity), drawdown from the peak equity (fraction), net exposure per
sector, and value at risk of the equity change over one sampling interval from a rolling window
of ``var_window`` changes:

* historical: ``VaR_a = -Q_{1-a}(dE)`` (empirical quantile, linear interpolation);
* parametric (normal): ``VaR_a = z_a * sd(dE) - mean(dE)``, ``z_a = Phi^-1(a)``.

VaR and drawdown are positive numbers for losses (currency / fraction); VaR is NaN until
``var_min_obs`` changes are in the window.

Columns of ``monitor.parquet``: ``step`` (last completed step), ``time`` (its simulated time),
``wall_time``, ``step_wall_mean_s``, ``step_wall_max_s``, ``step_wall_n``, ``fills``,
``fill_qty``, ``order_latency_n``, ``order_latency_mean_steps``, ``order_latency_max_steps``,
``inbound_orders``, ``rejects/<REASON>``, then per entity ``<entity>/<metric>`` with entity
``type:<agent type>`` or ``acct:<id>`` and metric one of ``equity, pnl, gross, net, leverage,
drawdown, var_<level>`` or ``sector:<name>``; with a live source also ``live/queue``,
``live/ticks``, ``live/lag_max_s`` and ``live/<counter>`` (cumulative). The file's key-value
metadata ``b"marketsim.monitor"`` holds the settings and the entity list as JSON.

Example:
    >>> m = MarketModel(scenario, out_dir="runs/x")  # doctest: +SKIP
    >>> with Monitor(m, every=10, prometheus_port=9100):  # doctest: +SKIP
    ...     m.run(3600)
"""

from __future__ import annotations

import json
import logging
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from marketsim.book import (
    CANCEL,
    FL_MAKER_ID,
    FL_MAKER_OWNER,
    FL_QTY,
    FL_TAKER_ID,
    FL_TAKER_OWNER,
    MODIFY,
)
from marketsim.errors import ConfigError

logger = logging.getLogger(__name__)

__all__ = [
    "METADATA_KEY",
    "MONITOR_FILE",
    "Monitor",
    "historical_var",
    "parametric_var",
    "read_monitor",
]

#: File name of the monitor log in a run directory.
MONITOR_FILE = "monitor.parquet"
#: Key of the monitor's JSON metadata in the Parquet key-value metadata.
METADATA_KEY = b"marketsim.monitor"
#: Per-entity metrics, in column order (then ``var_<level>`` and ``sector:<name>``).
ENTITY_METRICS = ("equity", "pnl", "gross", "net", "leverage", "drawdown")
_STEP_COLS = (
    "step_wall_mean_s",
    "step_wall_max_s",
    "step_wall_n",
    "fills",
    "fill_qty",
    "order_latency_n",
    "order_latency_mean_steps",
    "order_latency_max_steps",
    "inbound_orders",
)
_WALL_BUCKETS = (1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)
_LAT_BUCKETS = (0, 1, 2, 3, 5, 10, 20, 50, 100, 300, 1000, 3600)


def historical_var(changes: np.ndarray, level: float) -> np.ndarray:
    """Historical VaR per column: ``-quantile(changes, 1 - level)`` (linear). O(n log n).

    Args:
        changes: ``(n, k)`` equity changes (rows: observations).
        level: Confidence level in (0, 1), e.g. 0.99.
    """
    return -np.quantile(changes, 1.0 - level, axis=0)


def parametric_var(changes: np.ndarray, level: float) -> np.ndarray:
    """Normal VaR per column: ``z_level * sd(changes) - mean(changes)`` (sd with ddof=1). O(n)."""
    z = statistics.NormalDist().inv_cdf(level)
    return z * changes.std(axis=0, ddof=1) - changes.mean(axis=0)


def _level_name(level: float) -> str:
    x = level * 100.0
    return f"var_{round(x)}" if abs(x - round(x)) < 1e-9 else f"var_{x:g}"


class Monitor:
    """Collects run metrics into ``monitor.parquet`` and, optionally, a Prometheus endpoint.

    Args:
        model: The model to watch (attached at construction).
        every: Steps between rows (and Prometheus gauge updates).
        accounts: Accounts reported one by one; default the RL agents' accounts.
        by_type: Also report one aggregate entity per agent type.
        latency_accounts: Accounts whose orders are timed from submission to first fill;
            default ``accounts``. Keep it small: every tracked order costs a dict entry.
        var_window: Equity changes in the rolling VaR window.
        var_levels: Confidence levels, each in (0, 1).
        var_method: ``"historical"`` or ``"parametric"``.
        var_min_obs: Changes needed before VaR is reported.
        out_dir: Folder of ``monitor.parquet``; default the model's ``out_dir``; ``None`` (or
            a model without one) keeps the rows in memory only.
        chunk_rows: Rows buffered per Parquet row group.
        source: A live source whose queue and counters are recorded too.
        prometheus_port: Serve metrics over HTTP on this port (0: a free one, see
            :attr:`prometheus_port`); ``None``: no endpoint.
        prometheus_addr: Address of the endpoint (default localhost only).
        prometheus: Keep Prometheus metrics in :attr:`registry` even without an endpoint.
        max_tracked_orders: Bound on orders awaiting their first fill (oldest forgotten).
    """

    def __init__(
        self,
        model: Any,
        *,
        every: int = 10,
        accounts: Sequence[int] | None = None,
        by_type: bool = True,
        latency_accounts: Sequence[int] | None = None,
        var_window: int = 250,
        var_levels: Sequence[float] = (0.95, 0.99),
        var_method: str = "historical",
        var_min_obs: int = 20,
        out_dir: str | Path | None | type[Ellipsis] = ...,
        chunk_rows: int = 1024,
        source: Any = None,
        prometheus_port: int | None = None,
        prometheus_addr: str = "127.0.0.1",
        prometheus: bool = False,
        max_tracked_orders: int = 100_000,
    ) -> None:
        for name, v, lo in (
            ("every", every, 1),
            ("var_window", var_window, 2),
            ("var_min_obs", var_min_obs, 2),
            ("chunk_rows", chunk_rows, 1),
            ("max_tracked_orders", max_tracked_orders, 1),
        ):
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise ConfigError(f"{name}={v!r}: must be an integer >= {lo}")
        if var_method not in ("historical", "parametric"):
            raise ConfigError(f"var_method={var_method!r}: must be 'historical' or 'parametric'")
        levels = tuple(float(x) for x in var_levels)
        if not levels or any(not 0.5 <= x < 1 for x in levels):
            raise ConfigError(f"var_levels={var_levels!r}: each must be in [0.5, 1)")
        n = model.ledger.n_accounts
        if accounts is None:
            accounts = sorted(a.account for a in getattr(model, "rl_agents", {}).values())
        accounts = [int(a) for a in accounts]
        bad = [a for a in accounts if not 0 < a < n]
        if bad:
            raise ConfigError(f"accounts={bad}: not trading accounts; valid ids are 1..{n - 1}")
        if latency_accounts is None:
            latency_accounts = accounts
        latency_accounts = [int(a) for a in latency_accounts]
        bad = [a for a in latency_accounts if not 0 < a < n]
        if bad:
            raise ConfigError(f"latency_accounts={bad}: valid ids are 1..{n - 1}")
        if prometheus_port is not None and (
            isinstance(prometheus_port, bool)
            or not isinstance(prometheus_port, int)
            or not 0 <= prometheus_port < 65536
        ):
            raise ConfigError(f"prometheus_port={prometheus_port!r}: must be None or 0..65535")
        self.model = model
        self.every = every
        self.var_window = var_window
        self._lat_accounts = frozenset(latency_accounts)
        self.accounts = accounts
        self.var_levels = levels
        self.var_method = var_method
        self.var_min_obs = var_min_obs
        self.source = source
        self.max_tracked_orders = max_tracked_orders
        self.closed = False
        # ---- entities and sectors
        self.types = (
            sorted({t for t in model.account_type[1:n] if t != "exchange"}) if by_type else []
        )
        self.entities = [f"type:{t}" for t in self.types] + [f"acct:{a}" for a in accounts]
        self.sectors = sorted({a.sector for a in model.scenario.assets})
        self._sector_id = {s: i for i, s in enumerate(self.sectors)}
        self._members_n = -1
        self._members = np.zeros((len(self.entities), 0))
        # ---- columns
        self.reject_names = self._reject_names()
        cols = list(_STEP_COLS) + [f"rejects/{r}" for r in self.reject_names]
        self._var_names = [_level_name(x) for x in levels]
        per = [*ENTITY_METRICS, *self._var_names] + [f"sector:{s or '-'}" for s in self.sectors]
        for e in self.entities:
            cols += [f"{e}/{m}" for m in per]
        self._live_counters: list[str] = []
        if source is not None:
            self._live_counters = sorted(source.stats())
            cols += ["live/queue", "live/ticks", "live/lag_max_s"]
            cols += [f"live/{c}" for c in self._live_counters]
        self.columns = cols
        self._col = {c: i for i, c in enumerate(cols)}
        self._n_per = len(per)
        self._ent0 = len(_STEP_COLS) + len(self.reject_names)
        # ---- buffers
        self.chunk_rows = chunk_rows
        self._buf = np.full((chunk_rows, len(cols)), np.nan)
        self._ibuf = np.zeros((chunk_rows, 3), np.int64)
        self._nbuf = 0
        self._tables: list[pa.Table] = []
        self.rows = 0
        self.last_step = -1
        if out_dir is ...:
            out_dir = getattr(model, "out_dir", None)
        self.path = None if out_dir is None else Path(out_dir) / MONITOR_FILE
        self._writer: pq.ParquetWriter | None = None
        self._schema = pa.schema(
            [("step", pa.int64()), ("time", pa.timestamp("ns")), ("wall_time", pa.timestamp("ns"))]
            + [(c, pa.float64()) for c in cols]
        ).with_metadata({METADATA_KEY: json.dumps(self._metadata()).encode()})
        # ---- running state
        self._last_hook: float | None = None
        self._idle = 0.0
        self._wall_sum = 0.0
        self._wall_max = 0.0
        self._wall_n = 0
        self._fills = 0
        self._fill_qty = 0
        self._lat_sum = 0.0
        self._lat_max = -1.0
        self._lat_n = 0
        self._ticks = 0
        self._lag_max = 0.0
        self._rej_prev: dict[str, int] = dict(model.exchange.rejects)
        ne = len(self.entities)
        self._eq0: np.ndarray | None = None
        self._eq_prev = np.full(ne, np.nan)
        self._peak = np.full(ne, -np.inf)
        self._dE = np.zeros((var_window, ne))
        self._dE_n = 0
        self._dE_i = 0
        self._submitted: dict[int, int] = {}
        self._lat_arr = np.array(sorted(self._lat_accounts), np.int64)
        # ---- prometheus
        self.registry = None
        self.prometheus_port: int | None = None
        self._http = None
        self._prom: dict[str, Any] = {}
        if prometheus or prometheus_port is not None:
            self._init_prometheus()
            if prometheus_port is not None:
                self._serve(prometheus_port, prometheus_addr)
        # ---- attach
        self._attach()

    # ---------------------------------------------------------------- setup
    def _reject_names(self) -> list[str]:
        from marketsim.exchange import REJECT_NAMES

        return sorted(set(REJECT_NAMES.values()) | {"ASSET_REMOVED"}) + ["OTHER"]

    def _metadata(self) -> dict[str, Any]:
        m = self.model
        names = {}
        for a in self.accounts:
            ag = m.account_agent.get(a)
            names[str(a)] = getattr(ag, "name", None) or m.account_type[a]
        return {
            "every": self.every,
            "entities": self.entities,
            "account_names": names,
            "sectors": self.sectors,
            "var_levels": list(self.var_levels),
            "var_method": self.var_method,
            "var_window": self.var_window,
            "step_seconds": m.session.step_seconds,
            "scenario": m.scenario.simulation.name,
            "scenario_hash": getattr(m, "scenario_hash", ""),
            "seed": getattr(m, "seed", None),
            "latency_accounts": sorted(self._lat_accounts),
        }

    def _attach(self) -> None:
        m = self.model
        if self.entities:
            led = m.ledger
            self._eq0 = self._membership(led.n_accounts) @ led.equity(m.mark_prices())
        m.step_hooks.append(self._on_step)
        m.exchange.fill_listeners.append(self._on_fills)
        if self._lat_accounts:
            ex = m.exchange
            orig = ex.submit
            tracked, sub, cap = self._lat_accounts, self._submitted, self.max_tracked_orders

            def submit(arrival_step, slot, kind, side, price, qty, owner, order_id=0):
                oid = orig(arrival_step, slot, kind, side, price, qty, owner, order_id)
                if owner in tracked and kind != CANCEL and kind != MODIFY:
                    sub[oid] = m.t
                    if len(sub) > cap:
                        del sub[next(iter(sub))]
                return oid

            submit.__wrapped__ = orig  # type: ignore[attr-defined]
            ex.submit = submit
            self._submit_wrapper = submit

    def _detach(self) -> None:
        m = self.model
        if self._on_step in m.step_hooks:
            m.step_hooks.remove(self._on_step)
        if self._on_fills in m.exchange.fill_listeners:
            m.exchange.fill_listeners.remove(self._on_fills)
        w = getattr(self, "_submit_wrapper", None)
        if w is not None and m.exchange.__dict__.get("submit") is w:
            del m.exchange.submit

    # ---------------------------------------------------------------- prometheus
    def _init_prometheus(self) -> None:
        try:
            from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
        except ImportError:
            raise ConfigError(
                "Prometheus metrics need the 'prometheus-client' package: "
                "pip install prometheus-client"
            ) from None
        reg = CollectorRegistry()
        p = self._prom
        p["step"] = Gauge("marketsim_step", "Last completed simulation step.", registry=reg)
        p["steps"] = Counter(
            "marketsim_steps", "Simulation steps run while attached.", registry=reg
        )
        p["wall"] = Histogram(
            "marketsim_step_wall_seconds",
            "Wall time of one simulation step (hook to hook, idle time excluded).",
            buckets=_WALL_BUCKETS,
            registry=reg,
        )
        p["lat"] = Histogram(
            "marketsim_order_fill_latency_steps",
            "Simulated steps from submission to first fill, tracked accounts.",
            buckets=_LAT_BUCKETS,
            registry=reg,
        )
        p["fills"] = Counter("marketsim_fills", "Fills.", registry=reg)
        p["inbound"] = Gauge(
            "marketsim_inbound_orders", "Orders in the inbound queue.", registry=reg
        )
        p["rejects"] = Counter(
            "marketsim_rejects", "Rejected orders by reason.", ["reason"], registry=reg
        )
        for key, name, doc in (
            ("equity", "marketsim_equity", "Equity in currency."),
            ("pnl", "marketsim_pnl", "P&L since the monitor started, in currency."),
            ("gross", "marketsim_gross_exposure", "Gross exposure in currency."),
            ("net", "marketsim_net_exposure", "Net exposure in currency."),
            ("leverage", "marketsim_leverage", "Gross exposure / equity."),
            ("drawdown", "marketsim_drawdown", "Drawdown from peak equity (fraction)."),
        ):
            p[key] = Gauge(name, doc, ["entity"], registry=reg)
        p["var"] = Gauge(
            "marketsim_var",
            f"Value at risk of the equity change over {self.every} steps ({self.var_method}).",
            ["entity", "level"],
            registry=reg,
        )
        p["sector"] = Gauge(
            "marketsim_sector_exposure",
            "Net exposure per sector, in currency.",
            ["entity", "sector"],
            registry=reg,
        )
        if self.source is not None:
            reg.register(_SourceCollector(self.source))
        self.registry = reg

    def _serve(self, port: int, addr: str) -> None:
        from prometheus_client import start_http_server

        try:
            server, _thread = start_http_server(port, addr=addr, registry=self.registry)
        except OSError as e:
            raise ConfigError(
                f"prometheus_port={port}: cannot listen on {addr}:{port} ({e})"
            ) from None
        self._http = server
        self.prometheus_port = int(server.server_port)
        logger.info("prometheus metrics on http://%s:%d/metrics", addr, self.prometheus_port)

    # ---------------------------------------------------------------- inputs
    def idle(self, seconds: float) -> None:
        """Report wall time spent idle (not stepping) since the last step, e.g. a sleep."""
        self._idle += max(0.0, float(seconds))

    def note_ingest(self, n_ticks: int, lag_s: float) -> None:
        """Report live ticks applied this step and their queueing lag (s)."""
        self._ticks += int(n_ticks)
        if lag_s > self._lag_max:
            self._lag_max = float(lag_s)

    def _on_fills(self, step: int, slot: int, fills: np.ndarray) -> None:
        self._fills += fills.shape[0]
        self._fill_qty += int(fills[:, FL_QTY].sum())
        if not self._lat_accounts or not self._submitted:
            return
        sub = self._submitted
        hist = self._prom.get("lat")
        acc = self._lat_arr
        for own_col, id_col in ((FL_TAKER_OWNER, FL_TAKER_ID), (FL_MAKER_OWNER, FL_MAKER_ID)):
            owners = fills[:, own_col]
            if acc.shape[0] <= 4:
                mask = owners == acc[0]
                for a in acc[1:]:
                    mask |= owners == a
            else:
                mask = np.isin(owners, acc)
            if not mask.any():
                continue
            for oid in fills[mask, id_col].tolist():
                s0 = sub.pop(oid, None)
                if s0 is None:
                    continue
                lat = step - s0
                self._lat_sum += lat
                self._lat_n += 1
                if lat > self._lat_max:
                    self._lat_max = lat
                if hist is not None:
                    hist.observe(lat)

    def _on_step(self, model: Any) -> None:
        now = time.perf_counter()
        last = self._last_hook
        if last is not None:
            dt = now - last - self._idle
            if dt < 0:
                dt = 0.0
            self._wall_sum += dt
            self._wall_n += 1
            if dt > self._wall_max:
                self._wall_max = dt
            if self._prom:
                self._prom["wall"].observe(dt)
        if self._prom:
            self._prom["steps"].inc()
        self._idle = 0.0
        self._last_hook = now
        t = model.t
        if t >= 1 and t % self.every == 0:
            self.sample(t - 1)

    # ---------------------------------------------------------------- sampling
    def _membership(self, n: int) -> np.ndarray:
        if n != self._members_n:
            E = np.zeros((len(self.entities), n))
            types = self.model.account_type
            idx = {t: i for i, t in enumerate(self.types)}
            for a in range(1, n):
                i = idx.get(types[a])
                if i is not None:
                    E[i, a] = 1.0
            k = len(self.types)
            for j, a in enumerate(self.accounts):
                E[k + j, a] = 1.0
            self._members = E
            self._members_n = n
        return self._members

    def sample(self, step: int | None = None) -> None:
        """Append one row for ``step`` (default: the last completed step). O(accounts * A)."""
        m = self.model
        if step is None:
            step = m.t - 1
        if step <= self.last_step or step < 0:
            return
        self.last_step = step
        row = np.full(len(self.columns), np.nan)
        row[0] = self._wall_sum / self._wall_n if self._wall_n else np.nan
        row[1] = self._wall_max if self._wall_n else np.nan
        row[2] = self._wall_n
        row[3] = self._fills
        row[4] = self._fill_qty
        row[5] = self._lat_n
        row[6] = self._lat_sum / self._lat_n if self._lat_n else np.nan
        row[7] = self._lat_max if self._lat_n else np.nan
        inbound = m.exchange.pending()
        row[8] = inbound
        p = self._prom
        if p:
            p["fills"].inc(self._fills)
            p["inbound"].set(inbound)
            p["step"].set(step)
        self._wall_sum = self._wall_max = 0.0
        self._wall_n = self._fills = self._fill_qty = self._lat_n = 0
        self._lat_sum, self._lat_max = 0.0, -1.0
        # rejects since the last row
        rej = m.exchange.rejects
        base = len(_STEP_COLS)
        row[base : base + len(self.reject_names)] = 0.0
        for name, cnt in rej.items():
            d = cnt - self._rej_prev.get(name, 0)
            if d:
                key = f"rejects/{name}"
                i = self._col.get(key, self._col["rejects/OTHER"])
                row[i] += d
                if p:
                    p["rejects"].labels(name).inc(d)
        self._rej_prev = dict(rej)
        self._sample_entities(row)
        if self.source is not None:
            st = self.source.stats()
            row[self._col["live/queue"]] = st.get("queued", np.nan)
            row[self._col["live/ticks"]] = self._ticks
            row[self._col["live/lag_max_s"]] = self._lag_max
            for c in self._live_counters:
                row[self._col[f"live/{c}"]] = st.get(c, np.nan)
            self._ticks, self._lag_max = 0, 0.0
        self._append(step, row)

    def _sample_entities(self, row: np.ndarray) -> None:
        if not self.entities:
            return
        m = self.model
        led = m.ledger
        marks = m.mark_prices()
        E = self._membership(led.n_accounts)
        eq = E @ led.equity(marks)
        gross = E @ led.gross_exposure(marks)
        net = E @ led.net_exposure(marks)
        sec_of = np.array(
            [self._sector_id.get(s, 0) for s in m.sectors[: led.max_assets]], dtype=np.int64
        )
        ns = len(self.sectors)
        sect = np.zeros((E.shape[0], ns))
        by_sec = E @ led.sector_exposure(sec_of, marks)
        sect[:, : min(ns, by_sec.shape[1])] = by_sec[:, :ns]
        pnl = eq - self._eq0
        with np.errstate(divide="ignore", invalid="ignore"):
            lev = np.where(eq > 0, gross / eq, np.inf)
        lev[gross == 0] = 0.0
        self._peak = np.maximum(self._peak, eq)
        with np.errstate(divide="ignore", invalid="ignore"):
            dd = np.where(self._peak > 0, 1.0 - eq / self._peak, np.nan)
        # rolling equity changes
        prev = self._eq_prev
        if np.isfinite(prev).all():
            w = self._dE.shape[0]
            self._dE[self._dE_i] = eq - prev
            self._dE_i = (self._dE_i + 1) % w
            self._dE_n = min(self._dE_n + 1, w)
        self._eq_prev = eq
        var = np.full((len(self.var_levels), eq.shape[0]), np.nan)
        if self._dE_n >= self.var_min_obs:
            win = self._dE[: self._dE_n]
            fn = historical_var if self.var_method == "historical" else parametric_var
            for j, lvl in enumerate(self.var_levels):
                var[j] = fn(win, lvl)
        block = np.empty((eq.shape[0], self._n_per))
        block[:, 0] = eq
        block[:, 1] = pnl
        block[:, 2] = gross
        block[:, 3] = net
        block[:, 4] = lev
        block[:, 5] = dd
        k = len(ENTITY_METRICS)
        nv = len(self.var_levels)
        block[:, k : k + nv] = var.T
        block[:, k + nv : k + nv + ns] = sect
        row[self._ent0 : self._ent0 + block.size] = block.ravel()
        p = self._prom
        if p:
            for i, e in enumerate(self.entities):
                p["equity"].labels(e).set(eq[i])
                p["pnl"].labels(e).set(pnl[i])
                p["gross"].labels(e).set(gross[i])
                p["net"].labels(e).set(net[i])
                p["leverage"].labels(e).set(lev[i])
                p["drawdown"].labels(e).set(dd[i])
                for j, lvl in enumerate(self.var_levels):
                    p["var"].labels(e, f"{lvl:g}").set(var[j, i])
                for j, s in enumerate(self.sectors):
                    p["sector"].labels(e, s or "-").set(sect[i, j])

    def _append(self, step: int, row: np.ndarray) -> None:
        i = self._nbuf
        self._buf[i] = row
        self._ibuf[i, 0] = step
        self._ibuf[i, 1] = self.model.time_ns(step)
        self._ibuf[i, 2] = time.time_ns()
        self._nbuf = i + 1
        self.rows += 1
        if self._nbuf == self.chunk_rows:
            self.flush()

    # ---------------------------------------------------------------- output
    def _chunk(self) -> pa.Table:
        n = self._nbuf
        arrays = [
            pa.array(self._ibuf[:n, 0].copy()),
            pa.array(self._ibuf[:n, 1].copy(), type=pa.timestamp("ns")),
            pa.array(self._ibuf[:n, 2].copy(), type=pa.timestamp("ns")),
        ] + [pa.array(self._buf[:n, j].copy()) for j in range(len(self.columns))]
        return pa.Table.from_arrays(arrays, schema=self._schema)

    def flush(self) -> None:
        """Write buffered rows as one row group of ``monitor.parquet`` (kept in memory too)."""
        if self._nbuf == 0:
            return
        tbl = self._chunk()
        self._nbuf = 0
        self._tables.append(tbl)
        if self.path is not None:
            if self._writer is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._writer = pq.ParquetWriter(self.path, self._schema, compression="zstd")
            self._writer.write_table(tbl)

    def frame(self) -> pd.DataFrame:
        """Every row so far as a DataFrame (the ``monitor.parquet`` columns). O(rows)."""
        tables = list(self._tables)
        if self._nbuf:
            tables.append(self._chunk())
        if not tables:
            return self._schema.empty_table().to_pandas()
        return pa.concat_tables(tables).to_pandas()

    def close(self) -> None:
        """Record the last step, write and close the file, stop the endpoint, detach (idempotent)."""
        if self.closed:
            return
        self.closed = True
        self._detach()
        self.sample()
        self.flush()
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        elif self.path is not None and not self.path.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(self._schema.empty_table(), self.path)
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None

    def __enter__(self) -> Monitor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _SourceCollector:
    """Prometheus collector reading a live source's counters at scrape time."""

    def __init__(self, source: Any) -> None:
        self.source = source

    def collect(self):
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        st = self.source.stats()
        c = CounterMetricFamily(
            "marketsim_live_messages", "Live source message counters.", labels=["counter"]
        )
        for k, v in sorted(st.items()):
            if k not in ("queued", "pending"):
                c.add_metric([k], v)
        yield c
        g = GaugeMetricFamily("marketsim_live_queue", "Ticks waiting to be polled.")
        g.add_metric([], st.get("queued", 0))
        yield g

    def describe(self):
        return []


def read_monitor(path: str | Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Read ``monitor.parquet`` (a file or a run directory): ``(frame, metadata)``.

    Raises:
        ConfigError: no such file, or the file is not a monitor log.
    """
    p = Path(path)
    if p.is_dir():
        p = p / MONITOR_FILE
    if not p.is_file():
        raise ConfigError(
            f"{p}: no monitor log here; run with a Monitor (marketsim.monitor.Monitor) attached "
            f"so that {MONITOR_FILE} is written to the run directory"
        )
    try:
        tbl = pq.read_table(p)
    except Exception as e:
        raise ConfigError(f"{p}: cannot read as Parquet ({type(e).__name__}: {e})") from None
    meta_raw = (tbl.schema.metadata or {}).get(METADATA_KEY)
    if meta_raw is None:
        raise ConfigError(f"{p}: not a monitor log (no {METADATA_KEY.decode()} metadata)")
    return tbl.to_pandas(), json.loads(meta_raw)
