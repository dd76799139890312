"""Plug-in feeds for alternative data, and discovery of third-party feeds by entry point.

Built-in plug-ins (registered on import):

* :class:`MacroFeed` (``"macro"``): macro indicators from a CSV/Parquet file, each value
  released at its publication time (never before), as global features.
* :class:`SentimentFeed` (``"sentiment"``): a sentiment score per asset, from a file (released
  at its timestamps) or a seeded AR(1) process.
* :class:`NewsShockFeed` (``"news_shock"``): wraps another feed and adds scheduled news jumps
  to its values (the fundamental), optionally decaying.

Writing a plug-in feed
----------------------
A feed is a subclass of :class:`marketsim.feeds.Feed` (see :mod:`marketsim.feeds.base` for the
full contract). In short, implement:

* ``advance(step, dt_seconds, rng)``: move to the next model step; draw randomness only from
  ``rng``; keep it to a few microseconds (it runs every simulated second);
* ``values()``: float64 ``(max_assets,)``, NaN in empty slots (a feed with only global data
  returns all NaN);
* ``features()``: dict of name to float64 ``(max_assets,)`` (per asset) or ``(1,)`` (global);
  the keys and shapes never change during a run (RL observation spaces are built from them);
* ``add_asset(slot, initial_value, **params)`` / ``remove_asset(slot)``: unknown ``params``
  raise :class:`~marketsim.errors.ConfigError` listing the allowed ones;
* ``get_state()`` / ``set_state(state)``: numpy arrays and JSON-able plain data only (no
  pickle), so a restored run continues bit-identically.

No look-ahead: data stamped with a time must not be visible before the model clock reaches
that time (publication time for macro data, not the reference period).

Register the class under a name, either with the decorator (when your module is imported)::

    from marketsim.feeds import Feed, register_feed

    @register_feed("my_feed")
    class MyFeed(Feed):
        ...

or, for a separately installed package, with an entry point in the group ``marketsim.feeds``
of its ``pyproject.toml``, so that ``make_feed("my_feed")`` (and scenario files saying
``kind = "my_feed"``) find it without any import::

    [project.entry-points."marketsim.feeds"]
    my_feed = "my_package.feeds:MyFeed"

The entry point's name is the kind; its object is a :class:`Feed` subclass, or a module (or
a zero-argument function) whose import (call) registers feeds itself. :func:`make_feed` calls
:func:`load_entry_point_feeds` the first time it meets an unknown kind.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import logging
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from marketsim.errors import ConfigError, DataError, StateError
from marketsim.feeds.base import FEED_TYPES, Feed, make_feed, register_feed

__all__ = [
    "ENTRY_POINT_GROUP",
    "MacroFeed",
    "NewsShockFeed",
    "SentimentFeed",
    "load_entry_point_feeds",
]

logger = logging.getLogger(__name__)

#: Entry-point group scanned for third-party feeds.
ENTRY_POINT_GROUP = "marketsim.feeds"
#: Schema version of the plug-ins' saved states.
STATE_VERSION = 1
#: Built-in feed modules imported by :func:`load_entry_point_feeds` so their kinds exist.
_BUILTIN_MODULES = ("marketsim.feeds.historical",)
_loaded: set[tuple[str, str]] = set()


# ---------------------------------------------------------------------------------- entry points
def load_entry_point_feeds(kind: str | None = None) -> dict[str, type[Feed]]:
    """Register the feeds advertised in the ``marketsim.feeds`` entry-point group.

    Each entry point is loaded once (repeated calls are cheap). A Feed subclass is registered
    under the entry point's name (a class already registered by decorator under another name
    gets the entry-point name as an alias); a module is imported (its decorators register);
    a function is called. Also imports the built-in optional feed modules.

    Args:
        kind: The kind being looked up. An entry point of that name that fails to load raises;
            other failing entry points are logged and skipped so one broken plug-in does not
            hide the rest.

    Returns:
        Kind -> class for every entry point of a Feed subclass loaded so far.

    Raises:
        ConfigError: the entry point named ``kind`` fails to import, is not a Feed subclass,
            module or function, or its name is taken by another class.
    """
    for mod in _BUILTIN_MODULES:
        importlib.import_module(mod)
    found: dict[str, type[Feed]] = {}
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        key = (ep.name, ep.value)
        if key in _loaded:
            cls = FEED_TYPES.get(ep.name)
            if cls is not None:
                found[ep.name] = cls
            continue
        try:
            cls = _load_one(ep)
        except ConfigError:
            if ep.name == kind:
                raise
            logger.warning("skipping feed plug-in %r = %r", ep.name, ep.value, exc_info=True)
            continue
        _loaded.add(key)
        if cls is not None:
            found[ep.name] = cls
    return found


def _load_one(ep: importlib.metadata.EntryPoint) -> type[Feed] | None:
    dist = getattr(getattr(ep, "dist", None), "name", None)
    where = f"feed plug-in entry point {ep.name!r} = {ep.value!r}" + (
        f" (from {dist})" if dist else ""
    )
    try:
        obj = ep.load()
    except Exception as exc:  # noqa: BLE001 - any import failure of third-party code
        raise ConfigError(f"{where} failed to load: {type(exc).__name__}: {exc}") from exc
    if isinstance(obj, type) and issubclass(obj, Feed):
        existing = FEED_TYPES.get(ep.name)
        if existing is obj:
            return obj
        if existing is not None:
            raise ConfigError(
                f"{where}: the name {ep.name!r} is already registered to "
                f"{existing.__module__}.{existing.__qualname__}"
            )
        if FEED_TYPES.get(obj.kind) is obj:  # decorated under another name: add an alias
            FEED_TYPES[ep.name] = obj
        else:
            register_feed(ep.name)(obj)
        logger.info("registered feed plug-in %r from %s", ep.name, ep.value)
        return obj
    if isinstance(obj, ModuleType):
        return FEED_TYPES.get(ep.name)
    if callable(obj):
        obj()
        return FEED_TYPES.get(ep.name)
    raise ConfigError(
        f"{where} must point to a Feed subclass, a module or a function, got {type(obj).__name__}"
    )


# ---------------------------------------------------------------------------------- helpers
def _origin_ns(owner: str, start_time: Any) -> int:
    """ns since the epoch (UTC) of the model's step-0 time."""
    import pandas as pd

    if start_time is None:
        raise ConfigError(
            f"{owner}: start_time (the wall-clock time of model step 0, ISO-8601) is required "
            "to release file data at the right model time"
        )
    try:
        ts = pd.Timestamp(start_time)
    except (ValueError, TypeError):
        raise ConfigError(
            f"{owner}: start_time must be ISO-8601 text, got {start_time!r}"
        ) from None
    ts = ts.tz_convert("UTC") if ts.tzinfo is not None else ts.tz_localize("UTC")
    return int(ts.as_unit("ns").value)


def _find_col(header: Sequence[str], names: Sequence[str]) -> str | None:
    lower = {str(h).strip().lower(): h for h in header}
    for n in names:
        if n in lower:
            return lower[n]
    return None


def _fingerprint(*arrays: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


def _readonly(a: np.ndarray) -> np.ndarray:
    v = a.view()
    v.flags.writeable = False
    return v


def _check_state(owner: str, feed: Feed, state: Mapping[str, Any], **expect: Any) -> None:
    try:
        if state["kind"] != feed.kind or state["version"] != STATE_VERSION:
            raise StateError(
                f"{owner}.set_state: state is kind={state['kind']!r} version="
                f"{state['version']!r}, expected kind={feed.kind!r} version={STATE_VERSION}"
            )
        expect = {"max_assets": feed.max_assets, **expect}
        for key, mine in expect.items():
            if state[key] != mine:
                raise StateError(
                    f"{owner}.set_state: state has {key}={state[key]!r}, this feed has "
                    f"{key}={mine!r}"
                )
    except KeyError as exc:
        raise StateError(f"{owner}.set_state: state lacks entry {exc}") from None


def _state_array(owner: str, state: Mapping[str, Any], key: str, shape: tuple, dtype: Any):
    try:
        a = np.asarray(state[key], dtype=dtype)
    except KeyError:
        raise StateError(f"{owner}.set_state: state lacks entry {key!r}") from None
    if a.shape != shape:
        raise StateError(f"{owner}.set_state: {key!r} has shape {a.shape}, expected {shape}")
    return a


class _SlotsOnly(Feed):
    """Slot bookkeeping for feeds whose per-asset value needs no parameters."""

    def _init_slots(self) -> None:
        self._active = np.zeros(self.max_assets, dtype=bool)

    def _add_slot(self, slot: int, params: Mapping[str, Any], allowed: Sequence[str]) -> int:
        slot = self.check_slot(slot)
        owner = type(self).__name__
        unknown = sorted(set(params) - set(allowed))
        if unknown:
            raise ConfigError(
                f"{owner}.add_asset: unknown parameter(s) {', '.join(unknown)}; allowed: "
                f"{', '.join(allowed) or '(none)'}"
            )
        if self._active[slot]:
            raise ConfigError(
                f"{owner}.add_asset: slot {slot} is already active; call remove_asset({slot}) first"
            )
        self._active[slot] = True
        return slot

    def _remove_slot(self, slot: int) -> int:
        slot = self.check_slot(slot)
        if not self._active[slot]:
            raise ConfigError(f"{type(self).__name__}.remove_asset: slot {slot} is not active")
        self._active[slot] = False
        return slot


# ---------------------------------------------------------------------------------- macro
@register_feed("macro")
class MacroFeed(_SlotsOnly):
    """Macro indicators released at their publication times, as global features.

    File layouts (CSV or Parquet): long ``release_time, indicator, value[, period]`` or wide
    ``release_time[, period], <indicator>, <indicator>, ...``. ``release_time`` (also
    ``published`` or ``release``) is when the number became public; without it, pass
    ``release_lag`` and each value is released that long after its ``period`` (also ``date``
    or ``time``). A value released before its period is rejected (it would be look-ahead).
    Empty cells are not releases.

    The value of indicator ``x`` becomes visible in ``features()[x]`` (shape ``(1,)``) once
    the model clock, ``start_time`` plus the sum of ``dt_seconds``, reaches its release time;
    before the first release it is NaN. ``values()`` is all NaN (no per-asset value).
    ``advance`` is O(1) plus O(1) per release.

    Args:
        max_assets: Number of slots.
        path: The CSV/Parquet file.
        start_time: Wall-clock time of model step 0 (ISO-8601; UTC if no offset).
        indicators: Indicators to expose, in order (default: all, sorted).
        release_lag: Publication lag (pandas Timedelta text, e.g. ``"30D"``), used when the
            file has no release column.
        name: Instance name (default ``"macro"``).

    Raises:
        DataError: bad file (file, line, column named). ConfigError: bad arguments.
    """

    def __init__(
        self,
        max_assets: int = 1,
        *,
        path: str | os.PathLike,
        start_time: str,
        indicators: Sequence[str] | None = None,
        release_lag: str | None = None,
        name: str | None = None,
    ):
        super().__init__(max_assets, name=name)
        self._init_slots()
        o = type(self).__name__
        origin = _origin_ns(o, start_time)
        rel_ns, ind_names, ind, val = _read_macro(o, Path(path), release_lag)
        known = sorted(set(ind_names))
        chosen = known if indicators is None else [str(i) for i in indicators]
        missing = [i for i in chosen if i not in known]
        if missing or not chosen:
            raise ConfigError(
                f"{o}: indicators {missing or chosen} not in {path}; available: {', '.join(known)}"
            )
        code = {n: k for k, n in enumerate(chosen)}
        keep = np.array([n in code for n in ind_names], dtype=bool)[ind]
        order = np.argsort(rel_ns[keep], kind="stable")
        self._ev_t = (rel_ns[keep] - origin)[order]
        self._ev_k = np.array([code[ind_names[i]] for i in ind[keep]], dtype=np.int64)[order]
        self._ev_v = val[keep][order]
        self._ev_t_l, self._ev_k_l = self._ev_t.tolist(), self._ev_k.tolist()
        self._ev_v_l = self._ev_v.tolist()
        self.indicators: tuple[str, ...] = tuple(chosen)
        self._cur = np.full(len(chosen), np.nan)
        self._feat = {n: self._cur[k : k + 1] for k, n in enumerate(chosen)}
        self._feat_ro = {n: _readonly(a) for n, a in self._feat.items()}
        self._nan = _readonly(np.full(self.max_assets, np.nan))
        self._clock_ns = 0
        self._cursor = 0
        self._release_due()
        self._id = _fingerprint(self._ev_t, self._ev_k, self._ev_v)

    def _release_due(self) -> None:
        c, n, clock = self._cursor, len(self._ev_t_l), self._clock_ns
        t, k, v, cur = self._ev_t_l, self._ev_k_l, self._ev_v_l, self._cur
        while c < n and t[c] <= clock:
            cur[k[c]] = v[c]
            c += 1
        self._cursor = c

    def advance(self, step: int, dt_seconds: float, rng: np.random.Generator) -> None:
        """Move the clock by ``dt_seconds`` and release every value published by then."""
        self._clock_ns += int(round(dt_seconds * 1e9))
        if self._cursor < len(self._ev_t_l) and self._ev_t_l[self._cursor] <= self._clock_ns:
            self._release_due()

    def values(self) -> np.ndarray:
        """All NaN: macro data is global (see :meth:`features`)."""
        return self._nan

    def features(self) -> dict[str, np.ndarray]:
        """Latest released value per indicator, shape ``(1,)`` each (NaN before the first)."""
        return self._feat_ro

    def add_asset(self, slot: int, initial_value: float, **params: Any) -> None:
        """Mark ``slot`` active (no per-asset data; no parameters)."""
        self._add_slot(slot, params, ())

    def remove_asset(self, slot: int) -> None:
        """Mark ``slot`` inactive."""
        self._remove_slot(slot)

    def get_state(self) -> dict[str, Any]:
        """Clock, release cursor and current values."""
        return {
            "kind": self.kind,
            "version": STATE_VERSION,
            "max_assets": self.max_assets,
            "name": self.name,
            "data_id": self._id,
            "indicators": list(self.indicators),
            "clock_ns": self._clock_ns,
            "cursor": self._cursor,
            "current": self._cur.copy(),
            "active": self._active.copy(),
        }

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`get_state` output of a feed over the same file and indicators."""
        o = type(self).__name__
        _check_state(o, self, state, data_id=self._id, indicators=list(self.indicators))
        cur = _state_array(o, state, "current", self._cur.shape, np.float64)
        active = _state_array(o, state, "active", (self.max_assets,), np.bool_)
        self._cur[:] = cur
        self._active[:] = active
        self._clock_ns = int(state["clock_ns"])
        self._cursor = int(state["cursor"])
        self.name = str(state["name"])


def _read_macro(
    owner: str, path: Path, release_lag: str | None
) -> tuple[np.ndarray, list[str], np.ndarray, np.ndarray]:
    """Release times (ns), indicator names, indicator code per event, values."""
    import pandas as pd

    from marketsim.data.prepare import read_header, read_table

    header = read_header(path)
    rcol = _find_col(header, ("release_time", "published", "release"))
    pcol = _find_col(header, ("period", "date", "time"))
    icol = _find_col(header, ("indicator",))
    vcol = _find_col(header, ("value",))
    if rcol is None and (pcol is None or release_lag is None):
        raise DataError(
            f"{path}: no release_time column (found columns: {', '.join(header)}); macro data "
            "must say when each value was published: add a release_time column, or a period "
            "column and release_lag='30D' (for example)"
        )
    lag_ns = 0
    if rcol is None:
        try:
            lag_ns = int(pd.Timedelta(release_lag).value)
        except (ValueError, TypeError):
            raise ConfigError(
                f"{owner}: release_lag must be a duration like '30D' or '2h', got {release_lag!r}"
            ) from None
        if lag_ns < 0:
            raise ConfigError(f"{owner}: release_lag must be >= 0, got {release_lag!r}")
    long = icol is not None and vcol is not None
    time_cols = [c for c in (rcol, pcol) if c is not None]
    if long:
        value_cols = [vcol]
    else:
        value_cols = [h for h in header if h not in time_cols]
        if not value_cols:
            raise DataError(f"{path}: no indicator columns (found: {', '.join(header)})")
    cols = time_cols + ([icol] if long else []) + value_cols
    raw = read_table(
        path, cols, time_column=rcol or pcol, string_columns=[icol] if long else [],
        numeric_columns=value_cols,
    )  # fmt: skip
    period = raw.times(pcol) if pcol is not None else None
    release = raw.times(rcol) if rcol is not None else period + lag_ns
    if period is not None and rcol is not None:
        bad = release < period
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise raw.fail(i, rcol, "released before its period starts (that would be look-ahead)")
    if long:
        names_arr = raw.frame[icol].astype("string").str.strip().to_numpy(dtype=object)
        if any(n is None or n is pd.NA or n == "" for n in names_arr):
            i = next(i for i, n in enumerate(names_arr) if n is None or n is pd.NA or n == "")
            raise raw.fail(i, icol, "missing indicator name")
        codes, uniq = pd.factorize(names_arr)
        vals = raw.numbers(vcol, rule="")
        names = [str(u) for u in uniq]
        t, k, v = release, codes.astype(np.int64), vals
    else:
        names = [str(c).strip() for c in value_cols]
        n = len(release)
        t = np.repeat(release, len(value_cols))
        k = np.tile(np.arange(len(value_cols), dtype=np.int64), n)
        v = np.column_stack([raw.numbers(c, rule="") for c in value_cols]).reshape(-1)
    ok = ~np.isnan(v)
    return t[ok], names, k[ok], v[ok]


# ---------------------------------------------------------------------------------- sentiment
@register_feed("sentiment")
class SentimentFeed(_SlotsOnly):
    """A sentiment score per asset slot: from a file, or a seeded AR(1) process.

    *File mode* (``path`` given): a long CSV/Parquet ``time, ticker, sentiment``; a score is
    visible from its timestamp on (the model clock is ``start_time`` plus the sum of
    ``dt_seconds``). Slots follow tickers (``tickers`` or ``add_asset(..., ticker=...)``);
    before a ticker's first score the slot shows the ``initial_value`` it was added with.

    *Synthetic mode* (no ``path``): each active slot follows a stationary AR(1) with
    coefficient ``phi`` per ``period_s`` seconds and stationary standard deviation ``sigma``;
    over a step of ``dt`` seconds, exactly :math:`s \\leftarrow a s + \\sigma\\sqrt{1-a^2}\\,z`
    with :math:`a = \\phi^{dt/\\mathrm{period\\_s}}` and ``z`` drawn from the model's ``rng``.
    A slot starts at the ``initial_value`` it was added with (0 = neutral).

    ``values()`` and ``features()["sentiment"]`` are the score per slot (NaN in empty slots).
    ``advance`` is O(active slots).

    Args:
        max_assets: Number of slots.
        path: Sentiment file (file mode).
        start_time: Wall-clock time of model step 0 (file mode).
        tickers: Ticker per slot ``0..len-1`` (file mode).
        phi: AR(1) coefficient per ``period_s`` (in ``[0, 1)``).
        period_s: Seconds ``phi`` refers to (> 0).
        sigma: Stationary standard deviation (>= 0).
        name: Instance name (default ``"sentiment"``).
    """

    def __init__(
        self,
        max_assets: int = 1,
        *,
        path: str | os.PathLike | None = None,
        start_time: str | None = None,
        tickers: Sequence[str] | None = None,
        phi: float = 0.99,
        period_s: float = 60.0,
        sigma: float = 1.0,
        name: str | None = None,
    ):
        super().__init__(max_assets, name=name)
        self._init_slots()
        o = type(self).__name__
        if not (isinstance(phi, int | float) and 0.0 <= phi < 1.0):
            raise ConfigError(f"{o}: phi must be in [0, 1), got phi={phi!r}")
        if not (isinstance(period_s, int | float) and 0.0 < period_s < math.inf):
            raise ConfigError(f"{o}: period_s must be a finite number > 0, got {period_s!r}")
        if not (isinstance(sigma, int | float) and 0 <= sigma < math.inf):
            raise ConfigError(f"{o}: sigma must be a finite number >= 0, got sigma={sigma!r}")
        self._phi, self._period_s, self._sigma = float(phi), float(period_s), float(sigma)
        m = self.max_assets
        self._values = np.full(m, np.nan)
        self._ro = _readonly(self._values)
        self._initial = np.full(m, np.nan)
        self._col = np.full(m, -1, dtype=np.int64)
        self._cached_dt = math.nan
        self._clock_ns = 0
        self._cursor = 0
        self.file_mode = path is not None
        self._tickers: tuple[str, ...] = ()
        if self.file_mode:
            origin = _origin_ns(o, start_time)
            t, tk, v = _read_sentiment(Path(path))
            import pandas as pd

            codes, uniq = pd.factorize(tk, sort=True)
            self._tickers = tuple(str(u) for u in uniq)
            order = np.argsort(t, kind="stable")
            self._ev_t = (t - origin)[order]
            self._ev_k = codes.astype(np.int64)[order]
            self._ev_v = v[order]
            self._ev_t_l, self._ev_k_l = self._ev_t.tolist(), self._ev_k.tolist()
            self._ev_v_l = self._ev_v.tolist()
            self._by_ticker = np.full(len(self._tickers), np.nan)
            self._release_due()
            self._id = _fingerprint(self._ev_t, self._ev_k, self._ev_v)
            for slot, name_ in enumerate(tickers or ()):
                self.add_asset(slot, 0.0, ticker=name_)
        else:
            if tickers is not None or start_time is not None:
                raise ConfigError(f"{o}: tickers and start_time are only used with path=...")
            self._id = "synthetic"
        self._refresh()

    def _refresh(self) -> None:
        self._idx = np.flatnonzero(self._active)
        self._buf = np.empty(self._idx.size)
        if self.file_mode:
            self._sync()

    def _release_due(self) -> bool:
        c, n, clock = self._cursor, len(self._ev_t_l), self._clock_ns
        t, k, v, cur = self._ev_t_l, self._ev_k_l, self._ev_v_l, self._by_ticker
        start = c
        while c < n and t[c] <= clock:
            cur[k[c]] = v[c]
            c += 1
        self._cursor = c
        return c != start

    def _sync(self) -> None:
        idx = self._idx
        if idx.size:
            v = self._by_ticker[self._col[idx]]
            self._values[idx] = np.where(np.isnan(v), self._initial[idx], v)

    def add_asset(self, slot: int, initial_value: float, **params: Any) -> None:
        """Activate ``slot`` starting at sentiment ``initial_value``.

        File mode needs ``ticker=...`` (the slot then shows the file's latest score, or
        ``initial_value`` before the first one). Synthetic mode takes no parameters.

        Raises:
            ConfigError: bad or busy slot, unknown parameter or ticker, non-finite value.
        """
        o = type(self).__name__
        allowed = ("ticker",) if self.file_mode else ()
        if self.file_mode and "ticker" not in params:
            raise ConfigError(f"{o}.add_asset: file mode needs ticker=... (known: {self._tickers})")
        if not (isinstance(initial_value, int | float) and math.isfinite(initial_value)):
            raise ConfigError(f"{o}.add_asset: initial_value must be finite, got {initial_value!r}")
        col = -1
        if self.file_mode:
            tk = str(params["ticker"])
            if tk not in self._tickers:
                raise ConfigError(
                    f"{o}.add_asset: ticker {tk!r} has no sentiment data; known: "
                    f"{', '.join(self._tickers)}"
                )
            col = self._tickers.index(tk)
        slot = self._add_slot(slot, params, allowed)
        self._col[slot] = col
        self._initial[slot] = float(initial_value)
        self._values[slot] = float(initial_value)
        self._refresh()

    def remove_asset(self, slot: int) -> None:
        """Deactivate ``slot``; its score becomes NaN."""
        slot = self._remove_slot(slot)
        self._col[slot] = -1
        self._initial[slot] = np.nan
        self._values[slot] = np.nan
        self._refresh()

    def advance(self, step: int, dt_seconds: float, rng: np.random.Generator) -> None:
        """File mode: release scores stamped up to now. Synthetic: one exact AR(1) step."""
        if self.file_mode:
            self._clock_ns += int(round(dt_seconds * 1e9))
            if self._release_due():
                self._sync()
            return
        n = self._idx.size
        if n == 0:
            return
        if dt_seconds != self._cached_dt:
            if not (dt_seconds > 0 and math.isfinite(dt_seconds)):
                raise ConfigError(f"{type(self).__name__}.advance: dt_seconds must be > 0")
            a = self._phi ** (dt_seconds / self._period_s)
            self._a, self._b = a, self._sigma * math.sqrt(max(0.0, 1.0 - a * a))
            self._cached_dt = dt_seconds
        z = self._buf
        rng.standard_normal(out=z)
        z *= self._b
        x = self._values[self._idx]
        x *= self._a
        x += z
        self._values[self._idx] = x

    def values(self) -> np.ndarray:
        """Score per slot (read-only view; NaN in empty slots)."""
        return self._ro

    def features(self) -> dict[str, np.ndarray]:
        """``{"sentiment": values()}``."""
        return {"sentiment": self._ro}

    def get_state(self) -> dict[str, Any]:
        """Scores, slot mapping, clock and release cursor."""
        state = {
            "kind": self.kind,
            "version": STATE_VERSION,
            "max_assets": self.max_assets,
            "name": self.name,
            "data_id": self._id,
            "clock_ns": self._clock_ns,
            "cursor": self._cursor,
            "values": self._values.copy(),
            "initial": self._initial.copy(),
            "col": self._col.copy(),
            "active": self._active.copy(),
        }
        if self.file_mode:
            state["by_ticker"] = self._by_ticker.copy()
        return state

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`get_state` output of a feed built the same way."""
        o = type(self).__name__
        m = (self.max_assets,)
        _check_state(o, self, state, data_id=self._id)
        arrays = {
            "values": _state_array(o, state, "values", m, np.float64),
            "initial": _state_array(o, state, "initial", m, np.float64),
            "col": _state_array(o, state, "col", m, np.int64),
            "active": _state_array(o, state, "active", m, np.bool_),
        }
        if self.file_mode:
            arrays["by_ticker"] = _state_array(
                o, state, "by_ticker", self._by_ticker.shape, np.float64
            )
            self._by_ticker[:] = arrays["by_ticker"]
        self._values[:] = arrays["values"]
        self._initial[:] = arrays["initial"]
        self._col[:] = arrays["col"]
        self._active[:] = arrays["active"]
        self._clock_ns = int(state["clock_ns"])
        self._cursor = int(state["cursor"])
        self.name = str(state["name"])
        self._refresh()


def _read_sentiment(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from marketsim.data.prepare import TICKER_ALIASES, TIME_ALIASES, read_header, read_table

    header = read_header(path)
    tcol = _find_col(header, TIME_ALIASES)
    kcol = _find_col(header, TICKER_ALIASES)
    vcol = _find_col(header, ("sentiment", "score", "value"))
    if tcol is None or kcol is None or vcol is None:
        raise DataError(
            f"{path}: a sentiment file needs columns time, ticker, sentiment; found columns: "
            f"{', '.join(header)}"
        )
    raw = read_table(
        path, [tcol, kcol, vcol], time_column=tcol, string_columns=[kcol], numeric_columns=[vcol]
    )
    t, tk, v = raw.times(tcol), raw.tickers(kcol), raw.numbers(vcol, rule="")
    ok = ~np.isnan(v)
    return t[ok], tk[ok], v[ok]


# ---------------------------------------------------------------------------------- news shocks
@register_feed("news_shock")
class NewsShockFeed(Feed):
    """Wraps a feed and adds scheduled news jumps to its values.

    Each event has exactly one of ``step`` (the model step it hits) or ``time_s`` (model
    seconds since the start), a ``slot`` (an int, or ``"all"`` for every active slot) and a
    ``size``: with ``mode="relative"`` a return (``0.05`` = +5 %, > -1), compounding
    multiplicatively; with ``mode="absolute"`` currency units added. With ``half_life_s`` the
    accumulated shock decays exponentially (the news is absorbed), else it is permanent.

    ``values()`` = inner values x ``exp(offset)`` (relative) or + ``offset`` (absolute).
    ``features()`` = the inner feed's features, with those that alias the inner values (such
    as ``"fundamental"``) replaced by the shocked values, plus ``"news_shock"`` per slot: the
    size of the news that hit this step (0 otherwise; NaN in empty slots), so agents can
    observe the news itself. Events for an inactive slot are dropped (logged).

    Args:
        max_assets: Number of slots (the inner feed gets the same).
        inner: A Feed with ``max_assets`` slots, or a mapping ``{"kind": ..., **kwargs}``
            built with :func:`make_feed`.
        events: Sequence of event mappings, or a CSV/Parquet file with columns ``step`` or
            ``time_s``, ``slot``, ``size``.
        mode: ``"relative"`` or ``"absolute"``.
        half_life_s: Half-life of the shock in seconds (None: permanent).
        name: Instance name (default ``"news_shock"``).

    ``advance`` is O(max_assets) plus O(1) per event.
    """

    def __init__(
        self,
        max_assets: int = 1,
        *,
        inner: Feed | Mapping[str, Any],
        events: Sequence[Mapping[str, Any]] | str | os.PathLike = (),
        mode: str = "relative",
        half_life_s: float | None = None,
        name: str | None = None,
    ):
        super().__init__(max_assets, name=name)
        o = type(self).__name__
        if isinstance(inner, Mapping):
            spec = dict(inner)
            kind = spec.pop("kind", None)
            if not isinstance(kind, str):
                raise ConfigError(f"{o}: inner must be a Feed or a mapping with a 'kind' key")
            spec.setdefault("max_assets", self.max_assets)
            inner = make_feed(kind, **spec)
        if not isinstance(inner, Feed) or inner.max_assets != self.max_assets:
            raise ConfigError(
                f"{o}: inner must be a Feed with max_assets={self.max_assets}, got {inner!r}"
            )
        if mode not in ("relative", "absolute"):
            raise ConfigError(f"{o}: mode must be 'relative' or 'absolute', got mode={mode!r}")
        if half_life_s is not None and not (
            isinstance(half_life_s, int | float) and 0 < half_life_s < math.inf
        ):
            raise ConfigError(f"{o}: half_life_s must be > 0 or None, got {half_life_s!r}")
        self.inner = inner
        self._relative = mode == "relative"
        self._mode = mode
        self._half_life = None if half_life_s is None else float(half_life_s)
        evs = _read_events(o, events, self.max_assets, self._relative)
        self._step_ev = sorted((e for e in evs if e[0] == "step"), key=lambda e: e[1])
        self._time_ev = sorted((e for e in evs if e[0] == "time_s"), key=lambda e: e[1])
        self._id = _fingerprint(np.array([[e[1], e[2], e[3]] for e in evs], dtype=np.float64))
        m = self.max_assets
        self._offset = np.zeros(m)
        self._shock = np.full(m, np.nan)
        self._values = np.full(m, np.nan)
        self._ro = _readonly(self._values)
        self._shock_ro = _readonly(self._shock)
        self._si = self._ti = 0
        self._clock_s = 0.0
        self._cached_dt = math.nan
        self._decay = 1.0
        self._recompute()

    def _active(self) -> np.ndarray:
        return ~np.isnan(self.inner.values())

    def _recompute(self) -> None:
        base = self.inner.values()
        if self._relative:
            np.multiply(base, np.exp(self._offset), out=self._values)
        else:
            np.add(base, self._offset, out=self._values)
        active = self._active()
        self._shock[~active] = np.nan
        self._shock[active & np.isnan(self._shock)] = 0.0

    def _hit(self, slot: int, size: float, active: np.ndarray) -> None:
        delta = math.log1p(size) if self._relative else size
        targets = np.flatnonzero(active) if slot < 0 else [slot]
        for s in targets:
            if not active[s]:
                logger.info("%s: news for inactive slot %d dropped", self.name, s)
                continue
            self._offset[s] += delta
            self._shock[s] += size

    def advance(self, step: int, dt_seconds: float, rng: np.random.Generator) -> None:
        """Advance the inner feed, decay the shocks, apply the news due now."""
        self.inner.advance(step, dt_seconds, rng)
        self._clock_s += dt_seconds
        if self._half_life is not None:
            if dt_seconds != self._cached_dt:
                self._decay = math.exp(-math.log(2.0) * dt_seconds / self._half_life)
                self._cached_dt = dt_seconds
            self._offset *= self._decay
        active = self._active()
        self._shock[active] = 0.0
        while self._si < len(self._step_ev) and self._step_ev[self._si][1] <= step:
            _, _, slot, size = self._step_ev[self._si]
            self._hit(slot, size, active)
            self._si += 1
        while self._ti < len(self._time_ev) and self._time_ev[self._ti][1] <= self._clock_s:
            _, _, slot, size = self._time_ev[self._ti]
            self._hit(slot, size, active)
            self._ti += 1
        self._recompute()

    def values(self) -> np.ndarray:
        """Shocked values per slot (read-only view)."""
        return self._ro

    def features(self) -> dict[str, np.ndarray]:
        """Inner features (values-aliases replaced by shocked values) + ``news_shock``."""
        base = self.inner.values()
        out = {k: (self._ro if v is base else v) for k, v in self.inner.features().items()}
        out["news_shock"] = self._shock_ro
        return out

    def add_asset(self, slot: int, initial_value: float, **params: Any) -> None:
        """Add the asset to the inner feed (same parameters); it starts unshocked."""
        self.inner.add_asset(slot, initial_value, **params)
        self._offset[self.check_slot(slot)] = 0.0
        self._recompute()

    def remove_asset(self, slot: int) -> None:
        """Remove the asset from the inner feed and forget its shock."""
        self.inner.remove_asset(slot)
        self._offset[self.check_slot(slot)] = 0.0
        self._recompute()

    def get_state(self) -> dict[str, Any]:
        """Own state plus the inner feed's, its keys prefixed with ``inner.``."""
        state: dict[str, Any] = {
            "kind": self.kind,
            "version": STATE_VERSION,
            "max_assets": self.max_assets,
            "name": self.name,
            "events_id": self._id,
            "mode": self._mode,
            "step_cursor": self._si,
            "time_cursor": self._ti,
            "clock_s": self._clock_s,
            "offset": self._offset.copy(),
            "shock": self._shock.copy(),
        }
        for k, v in self.inner.get_state().items():
            state[f"inner.{k}"] = v
        return state

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`get_state` output of a feed with the same events and inner kind."""
        o = type(self).__name__
        _check_state(o, self, state, events_id=self._id, mode=self._mode)
        m = (self.max_assets,)
        offset = _state_array(o, state, "offset", m, np.float64)
        shock = _state_array(o, state, "shock", m, np.float64)
        self.inner.set_state({k[6:]: v for k, v in state.items() if k.startswith("inner.")})
        self._offset[:] = offset
        self._shock[:] = shock
        self._si = int(state["step_cursor"])
        self._ti = int(state["time_cursor"])
        self._clock_s = float(state["clock_s"])
        self.name = str(state["name"])
        self._recompute()
        self._shock[:] = shock


def _read_events(
    owner: str, events: Any, max_assets: int, relative: bool
) -> list[tuple[str, float, int, float]]:
    """Validate events into (clock kind, when, slot (-1 = all), size) tuples."""
    if isinstance(events, str | os.PathLike):
        events = _events_from_file(Path(events))
    out = []
    for i, ev in enumerate(events):
        where = f"{owner}: events[{i}]"
        if not isinstance(ev, Mapping):
            raise ConfigError(f"{where} must be a mapping with step|time_s, slot, size")
        unknown = sorted(set(ev) - {"step", "time_s", "slot", "size", "label"})
        if unknown:
            raise ConfigError(
                f"{where}: unknown key(s) {', '.join(unknown)}; allowed: step, time_s, slot, "
                "size, label"
            )
        has = [k for k in ("step", "time_s") if ev.get(k) is not None]
        if len(has) != 1:
            raise ConfigError(f"{where} must have exactly one of step or time_s, got {dict(ev)}")
        when = ev[has[0]]
        if not isinstance(when, int | float | np.integer | np.floating) or not when >= 0:
            raise ConfigError(f"{where}: {has[0]} must be a number >= 0, got {when!r}")
        if has[0] == "step" and float(when) != int(when):
            raise ConfigError(f"{where}: step must be an integer, got {when!r}")
        slot = ev.get("slot", "all")
        if slot == "all":
            slot = -1
        elif (
            isinstance(slot, bool)
            or not isinstance(slot, int | np.integer)
            or not (0 <= slot < max_assets)
        ):
            raise ConfigError(
                f"{where}: slot must be 'all' or an integer in [0, {max_assets}), got {slot!r}"
            )
        size = ev.get("size")
        if not isinstance(size, int | float | np.integer | np.floating) or not math.isfinite(size):
            raise ConfigError(f"{where}: size must be a finite number, got {size!r}")
        if relative and size <= -1:
            raise ConfigError(f"{where}: a relative size must be > -1 (a return), got {size!r}")
        out.append((has[0], float(when), int(slot), float(size)))
    return out


def _events_from_file(path: Path) -> list[dict[str, Any]]:
    from marketsim.data.prepare import read_header, read_table

    header = read_header(path)
    step_col = _find_col(header, ("step",))
    time_col = _find_col(header, ("time_s",))
    size_col = _find_col(header, ("size",))
    slot_col = _find_col(header, ("slot",))
    at_col = step_col if step_col is not None else time_col
    if at_col is None or size_col is None:
        raise DataError(
            f"{path}: a news file needs columns step (or time_s), slot, size; found: "
            f"{', '.join(header)}"
        )
    when = "step" if step_col is not None else "time_s"
    cols = [at_col, size_col] + ([slot_col] if slot_col is not None else [])
    raw = read_table(path, cols, string_columns=[slot_col] if slot_col is not None else ())
    at = raw.numbers(at_col, rule="", required=True)
    size = raw.numbers(size_col, rule="", required=True)
    slots: list[Any] = ["all"] * len(at)
    if slot_col is not None:
        text = raw.frame[slot_col].astype("string").str.strip().fillna("all").tolist()
        for i, s in enumerate(text):
            if s != "all":
                try:
                    slots[i] = int(s)
                except ValueError:
                    raise raw.fail(
                        i, slot_col, f"slot must be an integer or 'all', got {s!r}"
                    ) from None
    return [
        {when: (int(a) if when == "step" else float(a)), "slot": s, "size": float(z)}
        for a, s, z in zip(at.tolist(), slots, size.tolist(), strict=True)
    ]
