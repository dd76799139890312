"""Replay of prepared historical bars as a :class:`~marketsim.feeds.Feed`.

:class:`HistoricalPriceFeed` (kind ``"historical"``) replays one field (the close by default)
of a directory written by :func:`marketsim.data.prepare`: slot ``i`` follows ticker
``tickers[i]``, and the feed moves forward one bar every ``bar_steps`` model steps, or, with
``bar_steps=None``, by the bars' timestamps against the model clock. The replay is *reactive*
in the sense of the market simulation: the book's agents react to the replayed value (a value
trader's fundamental, say); nothing the agents do changes the replay.

No look-ahead: model time 0 is the *end* of bar ``start`` (bar timestamps label bar starts),
and a bar's value is only released once the bar is complete. The values after ``n`` calls of
``advance`` depend on bars ``<= start + n // bar_steps`` only.

Missing bars (NaN in the replayed field) hold the last valid value (looking back before
``start`` if needed, which is the past, not the future) and report ``valid = 0`` in
:meth:`HistoricalPriceFeed.features`; before the first valid bar of a ticker the value is NaN.

:class:`~marketsim.data.windows.WindowReplay` (re-exported here) serves whole observation
windows from the same directory for offline training.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from marketsim.data.windows import PreparedData, WindowReplay, load_prepared
from marketsim.errors import ConfigError, DataError, StateError
from marketsim.feeds.base import Feed, register_feed

__all__ = ["HistoricalPriceFeed", "WindowReplay"]

logger = logging.getLogger(__name__)

#: Schema version of :meth:`HistoricalPriceFeed.get_state`.
STATE_VERSION = 1
_ON_END = ("hold", "raise")


@register_feed("historical")
class HistoricalPriceFeed(Feed):
    """Replays prepared bars into asset slots (kind ``"historical"``).

    Example::

        feed = HistoricalPriceFeed(2, path="prepared/", tickers=["AAA", "BBB"], bar_steps=60)
        for step in range(120):
            feed.advance(step, 1.0, rng)      # one bar per 60 one-second steps
        feed.values(), feed.features()["valid"]

    Args:
        max_assets: Number of slots.
        path: Prepared directory (or an already opened :class:`PreparedData`).
        field: Field to replay (default ``"close"``), in currency units.
        tickers: Ticker per slot ``0..len-1`` (None entries leave a slot empty). Default: every
            prepared ticker in order (an error if there are more than ``max_assets``).
        bar_steps: Model steps per bar (>= 1). ``None``: follow the bar timestamps; bar ``b``
            is released once the model clock (the sum of ``dt_seconds``) reaches
            ``times[b] - times[start]``.
        start: First bar: an index, or a timestamp (ISO-8601 text; the first bar at or after
            it).
        on_end: After the last bar: ``"hold"`` keeps the last values with ``valid = 0`` and
            sets :attr:`exhausted`; ``"raise"`` raises :class:`~marketsim.errors.DataError`.
        rescale: Scale each slot so that it starts at the ``initial_value`` passed to
            :meth:`add_asset` (slots given by ``tickers`` start unscaled).
        verify: Hash-check the prepared files when opening them.
        name: Instance name (default ``"historical"``).

    ``add_asset(slot, initial_value, ticker=..., rescale=...)``: ``initial_value`` is only
    used with ``rescale``; otherwise the replayed price is the value.

    ``advance`` is O(1) when no new bar is released and O(active slots) when one is.
    """

    def __init__(
        self,
        max_assets: int = 1,
        *,
        path: str | PreparedData,
        field: str = "close",
        tickers: Sequence[str | None] | None = None,
        bar_steps: int | None = 1,
        start: int | str = 0,
        on_end: str = "hold",
        rescale: bool = False,
        verify: bool = True,
        name: str | None = None,
    ):
        super().__init__(max_assets, name=name)
        o = type(self).__name__
        self._data = path if isinstance(path, PreparedData) else load_prepared(path, verify=verify)
        d = self._data
        d.field_index(field)
        if d.n_times == 0:
            raise DataError(f"{o}: prepared data {d.path} has no bars")
        if bar_steps is not None and (
            isinstance(bar_steps, bool) or not isinstance(bar_steps, int | np.integer)
            or bar_steps < 1
        ):  # fmt: skip
            raise ConfigError(f"{o}: bar_steps must be an integer >= 1 or None, got {bar_steps!r}")
        if on_end not in _ON_END:
            raise ConfigError(f"{o}: on_end must be one of {_ON_END}, got on_end={on_end!r}")
        self._field = field
        self._bar_steps = None if bar_steps is None else int(bar_steps)
        self._on_end = on_end
        self._rescale_default = bool(rescale)
        self._start = self._start_index(start)
        self._price = np.ascontiguousarray(d.field(field))  # (T, N) float64, exact
        t_len = d.n_times
        valid = np.isfinite(self._price)
        self._valid_bar = valid
        rows = np.arange(t_len, dtype=np.int64)[:, None]
        self._last_valid = np.maximum.accumulate(np.where(valid, rows, -1), axis=0)
        rel = (d.times.astype(np.int64) - int(d.times[self._start])).astype(np.int64)
        self._release_ns = rel  # bar b released when clock_ns >= rel[b]
        diffs = np.diff(np.asarray(d.times, dtype=np.int64))
        self._bar_ns = int(diffs[diffs > 0].min()) if (diffs > 0).any() else 0
        m = self.max_assets
        self._values = np.full(m, np.nan)
        self._ret = np.full(m, np.nan)
        self._validf = np.full(m, np.nan)
        self._scale = np.ones(m)
        self._col = np.full(m, -1, dtype=np.int64)  # ticker column per slot, -1: empty
        self._ro = {}
        for key, arr in (
            ("price", self._values),
            ("log_return", self._ret),
            ("valid", self._validf),
        ):
            view = arr.view()
            view.flags.writeable = False
            self._ro[key] = view
        self._n_adv = 0
        self._clock_ns = 0
        self._bar = self._start
        self._exhausted = False
        self._refresh()
        if tickers is None:
            if len(d.tickers) > m:
                raise ConfigError(
                    f"{o}: the prepared data has {len(d.tickers)} tickers but max_assets={m}; "
                    "pass tickers=[...] to choose which ones go into slots"
                )
            tickers = list(d.tickers)
        if isinstance(tickers, str) or len(tickers) > m:
            raise ConfigError(
                f"{o}: tickers must be a list of at most max_assets={m} names, got {tickers!r}"
            )
        for slot, tk in enumerate(tickers):
            if tk is not None:
                self._add(slot, math.nan, str(tk), False)

    # ------------------------------------------------------------------------------ setup
    def _start_index(self, start: int | str) -> int:
        d = self._data
        o = type(self).__name__
        if isinstance(start, str):
            import pandas as pd

            try:
                ts = pd.Timestamp(start)
            except ValueError:
                raise ConfigError(
                    f"{o}: start must be a bar index or ISO-8601 time, got {start!r}"
                ) from None
            ts = ts.tz_convert("UTC") if ts.tzinfo is not None else ts.tz_localize("UTC")
            i = int(np.searchsorted(d.times, ts.as_unit("ns").value))
            if i >= d.n_times:
                raise ConfigError(f"{o}: start={start!r} is after the last bar of {d.path}")
            return i
        if isinstance(start, bool) or not isinstance(start, int | np.integer):
            raise ConfigError(f"{o}: start must be a bar index or ISO-8601 time, got {start!r}")
        if not 0 <= start < d.n_times:
            raise ConfigError(f"{o}: start must be in [0, {d.n_times}), got start={start}")
        return int(start)

    def _refresh(self) -> None:
        self._slots = np.flatnonzero(self._col >= 0)
        self._cols = self._col[self._slots]

    def _raw(self, col: int, bar: int) -> float:
        lv = int(self._last_valid[bar, col])
        return float(self._price[lv, col]) if lv >= 0 else math.nan

    def _add(self, slot: int, initial_value: float, ticker: str, rescale: bool) -> None:
        slot = self.check_slot(slot)
        o = type(self).__name__
        if self._col[slot] >= 0:
            raise ConfigError(
                f"{o}.add_asset: slot {slot} is already active; call remove_asset({slot}) first"
            )
        col = self._data.ticker_index(ticker)
        raw = self._raw(col, self._bar)
        scale = 1.0
        if rescale:
            if not (math.isfinite(raw) and raw > 0):
                raise ConfigError(
                    f"{o}.add_asset: ticker {ticker!r} has no valid {self._field} at or before "
                    f"bar {self._bar}, so it cannot be rescaled to initial_value"
                )
            if not (isinstance(initial_value, int | float) and initial_value > 0):
                raise ConfigError(
                    f"{o}.add_asset: rescale needs initial_value > 0, got {initial_value!r}"
                )
            scale = float(initial_value) / raw
        self._col[slot] = col
        self._scale[slot] = scale
        self._values[slot] = raw * scale
        self._ret[slot] = 0.0
        self._validf[slot] = 0.0 if self._exhausted else float(self._valid_bar[self._bar, col])
        self._refresh()
        logger.debug("%s: slot %d <- %s (scale %g)", self.name, slot, ticker, scale)

    # ------------------------------------------------------------------------------ Feed API
    def add_asset(self, slot: int, initial_value: float, **params: Any) -> None:
        """Start replaying ``params["ticker"]`` into ``slot`` from the current bar. O(N).

        Args:
            slot: Empty slot.
            initial_value: The slot's starting value when rescaling; ignored otherwise.
            **params: ``ticker`` (required) and ``rescale`` (default: the constructor's).

        Raises:
            ConfigError: bad or busy slot, unknown ticker or parameter, or no price to rescale.
        """
        unknown = sorted(set(params) - {"ticker", "rescale"})
        if unknown or "ticker" not in params:
            raise ConfigError(
                f"{type(self).__name__}.add_asset: parameters must be ticker (required) and "
                f"rescale; got {sorted(params)}"
            )
        self._add(
            slot,
            initial_value,
            str(params["ticker"]),
            bool(params.get("rescale", self._rescale_default)),
        )

    def remove_asset(self, slot: int) -> None:
        """Stop replaying into ``slot``; its value and features become NaN. O(max_assets)."""
        slot = self.check_slot(slot)
        if self._col[slot] < 0:
            raise ConfigError(f"{type(self).__name__}.remove_asset: slot {slot} is not active")
        self._col[slot] = -1
        self._scale[slot] = 1.0
        for arr in (self._values, self._ret, self._validf):
            arr[slot] = np.nan
        self._refresh()

    def advance(self, step: int, dt_seconds: float, rng: np.random.Generator) -> None:
        """Release the bars that are complete by now. O(1), O(active slots) on a new bar.

        Raises:
            DataError: past the last bar with ``on_end="raise"``.
        """
        self._n_adv += 1
        last = self._data.n_times - 1
        if self._bar_steps is not None:
            b = self._start + self._n_adv // self._bar_steps
        else:
            self._clock_ns += int(round(float(dt_seconds) * 1e9))
            b = self._bar
            rel = self._release_ns
            while b < last and rel[b + 1] <= self._clock_ns:
                b += 1
            if b == last and self._clock_ns >= rel[last] + self._bar_ns:
                b = last + 1  # the last bar's successor would be due: data ran out
        if b > last:
            if self._on_end == "raise":
                raise DataError(
                    f"{self.name}: historical replay of {self._data.path} ran past its last bar "
                    f"({self._data.n_times} bars, starting at bar {self._start})"
                )
            if not self._exhausted:
                self._goto(last)
                self._exhausted = True
                self._validf[self._slots] = 0.0
                self._ret[self._slots] = 0.0
            return
        if b != self._bar:
            self._goto(b)

    def _goto(self, b: int) -> None:
        slots, cols = self._slots, self._cols
        if slots.size:
            lv = self._last_valid[b, cols]
            raw = np.where(lv >= 0, self._price[np.maximum(lv, 0), cols], np.nan)
            new = raw * self._scale[slots]
            old = self._values[slots]
            with np.errstate(invalid="ignore", divide="ignore"):
                r = np.log(new / old)
            self._ret[slots] = np.where(np.isfinite(r), r, 0.0)
            self._values[slots] = new
            self._validf[slots] = self._valid_bar[b, cols]
        self._bar = b

    def values(self) -> np.ndarray:
        """Replayed value per slot (read-only view, NaN in empty slots). O(1)."""
        return self._ro["price"]

    def features(self) -> dict[str, np.ndarray]:
        """Per slot: ``price`` (= values), ``log_return`` since the previous released bar
        (0 while a bar is held), ``valid`` (1.0 if the current bar had a value, else 0.0).
        NaN in empty slots. O(1)."""
        return self._ro

    @property
    def bar_index(self) -> int:
        """Index of the current (last released) bar."""
        return self._bar

    @property
    def timestamp(self) -> int:
        """Start time of the current bar, ns since the epoch (UTC)."""
        return int(self._data.times[self._bar])

    @property
    def exhausted(self) -> bool:
        """True once the replay ran past its last bar (``on_end="hold"``)."""
        return self._exhausted

    @property
    def slot_tickers(self) -> list[str | None]:
        """Ticker replayed in each slot (None for empty slots)."""
        t = self._data.tickers
        return [t[c] if c >= 0 else None for c in self._col.tolist()]

    # ------------------------------------------------------------------------------ state
    def _data_id(self) -> str:
        return str(self._data.manifest.files.get("bars.parquet", {}).get("sha256", ""))

    def get_state(self) -> dict[str, Any]:
        """Position in the replay and per-slot arrays; JSON-able plus numpy. O(max_assets)."""
        return {
            "kind": self.kind,
            "version": STATE_VERSION,
            "max_assets": self.max_assets,
            "name": self.name,
            "data_sha256": self._data_id(),
            "field": self._field,
            "start": self._start,
            "bar_steps": self._bar_steps,
            "n_advances": self._n_adv,
            "clock_ns": self._clock_ns,
            "bar": self._bar,
            "exhausted": self._exhausted,
            "slot_tickers": ["" if t is None else t for t in self.slot_tickers],
            "scale": self._scale.copy(),
            "values": self._values.copy(),
            "log_return": self._ret.copy(),
            "valid": self._validf.copy(),
        }

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`get_state` output taken on the same prepared data.

        Raises:
            StateError: other kind, version, size, data, field or start, or missing entries.
        """
        o = type(self).__name__
        try:
            if state["kind"] != self.kind or state["version"] != STATE_VERSION:
                raise StateError(
                    f"{o}.set_state: state is kind={state['kind']!r} version="
                    f"{state['version']!r}, expected kind={self.kind!r} version={STATE_VERSION}"
                )
            for key, mine in (
                ("max_assets", self.max_assets),
                ("data_sha256", self._data_id()),
                ("field", self._field),
                ("start", self._start),
                ("bar_steps", self._bar_steps),
            ):
                if state[key] != mine:
                    raise StateError(
                        f"{o}.set_state: state has {key}={state[key]!r}, this feed has "
                        f"{key}={mine!r} (restore onto a feed built the same way)"
                    )
            m = self.max_assets
            arrays = {}
            for key in ("scale", "values", "log_return", "valid"):
                a = np.asarray(state[key], dtype=np.float64)
                if a.shape != (m,):
                    raise StateError(f"{o}.set_state: {key!r} has shape {a.shape}, expected ({m},)")
                arrays[key] = a
            names = list(state["slot_tickers"])
            if len(names) != m:
                raise StateError(f"{o}.set_state: slot_tickers must have {m} entries")
            cols = np.array(
                [self._data.ticker_index(t) if t else -1 for t in names], dtype=np.int64
            )
            bar = int(state["bar"])
            if not 0 <= bar < self._data.n_times:
                raise StateError(f"{o}.set_state: bar {bar} out of range")
            self._n_adv = int(state["n_advances"])
            self._clock_ns = int(state["clock_ns"])
            self._exhausted = bool(state["exhausted"])
            self.name = str(state["name"])
        except KeyError as exc:
            raise StateError(f"{o}.set_state: state lacks entry {exc}") from None
        except ConfigError as exc:
            raise StateError(f"{o}.set_state: {exc}") from None
        self._bar = bar
        self._col[:] = cols
        self._scale[:] = arrays["scale"]
        self._values[:] = arrays["values"]
        self._ret[:] = arrays["log_return"]
        self._validf[:] = arrays["valid"]
        self._refresh()
