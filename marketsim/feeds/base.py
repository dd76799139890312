"""The :class:`Feed` interface for exogenous data, and the registry of feed kinds.

A *feed* supplies one exogenous number per asset slot at every model step: a fundamental value
from a stochastic process, a replayed historical price, a live quote, a macro or sentiment
index. The model advances every feed once per step, before any agent acts (step 1 of the data
flow in ``design.md``), then agents and observations read :meth:`Feed.values` and
:meth:`Feed.features`.

Writing a plug-in
-----------------
Subclass :class:`Feed`, implement the abstract methods, and register the class under a string
name so scenario files can refer to it::

    import numpy as np
    from marketsim.feeds import Feed, register_feed


    @register_feed("constant")
    class ConstantFeed(Feed):
        '''Every active slot keeps the value it was added with.'''

        def __init__(self, max_assets: int = 1, name: str | None = None):
            super().__init__(max_assets, name=name)
            self._values = np.full(self.max_assets, np.nan)

        def advance(self, step, dt_seconds, rng):
            pass  # nothing moves

        def values(self):
            return self._values

        def add_asset(self, slot, initial_value, **params):
            self._values[self.check_slot(slot)] = initial_value

        def remove_asset(self, slot):
            self._values[self.check_slot(slot)] = np.nan

        def get_state(self):
            return {"values": self._values.copy()}

        def set_state(self, state):
            self._values[:] = state["values"]

``make_feed("constant", max_assets=4)`` then builds one. The rules every feed follows:

* **Slots.** Assets live in ``max_assets`` fixed slots (so RL spaces never change shape).
  :meth:`~Feed.values` always has shape ``(max_assets,)``, dtype float64, in currency units
  (not ticks), with NaN in empty slots. Assets come and go at run time through
  :meth:`~Feed.add_asset` / :meth:`~Feed.remove_asset`.
* **Randomness.** Every random draw comes from the ``rng`` passed to :meth:`~Feed.advance`
  (owned and saved by the model). A feed never creates its own generator and never touches
  numpy's global random state. A feed may pre-draw numbers (a block of normals, say) as long
  as the unconsumed part is part of its saved state.
* **Time.** ``dt_seconds`` is the simulated time since the previous step. It is usually the
  model's step length (1 s) but may be a whole overnight gap or weekend: stochastic processes
  should use an exact transition for any ``dt`` rather than an Euler step.
* **State.** :meth:`~Feed.get_state` returns numpy arrays and JSON-able plain data (str, int,
  float, bool, None, lists and dicts of those) and nothing else: saved states are written
  without pickle, so loading one can never run code. After ``set_state(get_state())`` on a
  feed of the same kind and ``max_assets`` (and the model restoring its generator), the run
  continues bit-identically to the uninterrupted one.
* **Speed.** :meth:`~Feed.advance` runs once per simulated second (23,400 times per trading
  day), so keep it to a few microseconds: preallocate arrays, cache coefficients that depend
  only on ``dt``, do not log or allocate per call. Live or replay adapters that do I/O should
  prefetch in a background thread and only swap buffers in ``advance``.
* **Errors.** Raise :class:`~marketsim.errors.ConfigError` for bad parameters and arguments
  (name the argument, the bad value and what is allowed), :class:`~marketsim.errors.DataError`
  for malformed input data and :class:`~marketsim.errors.StateError` for a state that does not
  fit.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

import numpy as np

from marketsim.errors import ConfigError

__all__ = ["FEED_TYPES", "Feed", "make_feed", "register_feed"]


class Feed(abc.ABC):
    """Interface of an exogenous per-asset data source that the model advances every step.

    Attributes:
        name: Short identifier of this feed instance, used to namespace its features and log
            columns. Defaults to the kind it was registered under.
        max_assets: Number of asset slots; every per-asset array has this length.
    """

    #: Registered kind of the class (set by :func:`register_feed`); the default instance name.
    kind: ClassVar[str] = "feed"

    def __init__(self, max_assets: int = 1, *, name: str | None = None):
        """Validate and store the slot count and the instance name.

        Args:
            max_assets: Number of asset slots (>= 1).
            name: Instance name; ``None`` uses the class's registered kind.

        Raises:
            ConfigError: ``max_assets`` is not a positive integer or ``name`` is empty.
        """
        if isinstance(max_assets, bool) or not isinstance(max_assets, int | np.integer):
            raise ConfigError(
                f"max_assets must be a positive integer, got max_assets={max_assets!r}"
            )
        if max_assets < 1:
            raise ConfigError(f"max_assets must be >= 1, got max_assets={max_assets}")
        if name is not None and (not isinstance(name, str) or not name):
            raise ConfigError(f"name must be a non-empty string or None, got name={name!r}")
        self.max_assets: int = int(max_assets)
        self.name: str = type(self).kind if name is None else name

    @abc.abstractmethod
    def advance(self, step: int, dt_seconds: float, rng: np.random.Generator) -> None:
        """Move the feed to model step ``step``, ``dt_seconds`` after the previous one.

        Args:
            step: The model step being entered (increasing by one per call).
            dt_seconds: Simulated seconds since the previous call (> 0); may be a whole
                overnight gap.
            rng: The model's generator; the only source of randomness a feed may use.
        """

    @abc.abstractmethod
    def values(self) -> np.ndarray:
        """Current value per slot: float64, shape ``(max_assets,)``, NaN in empty slots.

        The result may be a read-only view that the feed updates in place on the next
        :meth:`advance`; copy it to keep a snapshot. Callers must not write to it.
        """

    @abc.abstractmethod
    def add_asset(self, slot: int, initial_value: float, **params: Any) -> None:
        """Start feeding slot ``slot`` with value ``initial_value``.

        Args:
            slot: Empty slot index in ``[0, max_assets)``.
            initial_value: The value at the current step (currency units).
            **params: Per-asset parameters overriding the feed's defaults; an unknown name
                must raise :class:`~marketsim.errors.ConfigError` listing the allowed ones.
        """

    @abc.abstractmethod
    def remove_asset(self, slot: int) -> None:
        """Stop feeding slot ``slot``; its value becomes NaN and the slot can be reused."""

    def features(self) -> dict[str, np.ndarray]:
        """Optional observation features, by name.

        Each value is float64 of shape ``(max_assets,)`` (per slot, NaN for empty slots) or
        ``(1,)`` (a global scalar). Shapes and keys must not change during a run, so RL
        observation spaces stay fixed. The default has no features.

        Returns:
            A dict of feature name to array; arrays may be views updated in place.
        """
        return {}

    @abc.abstractmethod
    def get_state(self) -> dict[str, Any]:
        """Everything needed to continue the run: numpy arrays and JSON-able plain data only."""

    @abc.abstractmethod
    def set_state(self, state: dict[str, Any]) -> None:
        """Restore a state from :meth:`get_state` of a feed of the same kind and size.

        Raises:
            StateError: The state is of another kind, size or schema version.
        """

    def check_slot(self, slot: int) -> int:
        """Return ``slot`` as an int after checking it lies in ``[0, max_assets)``.

        Raises:
            ConfigError: ``slot`` is not an integer in range.
        """
        if isinstance(slot, bool) or not isinstance(slot, int | np.integer):
            raise ConfigError(f"slot must be an integer, got slot={slot!r}")
        if not 0 <= slot < self.max_assets:
            raise ConfigError(
                f"slot must be in [0, {self.max_assets}) (max_assets={self.max_assets}), "
                f"got slot={slot}"
            )
        return int(slot)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, max_assets={self.max_assets})"


#: Feed classes by registered kind, as used in scenario files (``kind = "mean_reverting"``).
FEED_TYPES: dict[str, type[Feed]] = {}

_F = TypeVar("_F", bound=type[Feed])


def register_feed(name: str) -> Callable[[_F], _F]:
    """Class decorator registering a :class:`Feed` subclass under ``name`` in :data:`FEED_TYPES`.

    Also sets the class's ``kind`` attribute to ``name``. Registering the same class twice is
    harmless (module reloads); registering another class under a taken name is an error.

    Args:
        name: The kind string scenario files use.

    Raises:
        ConfigError: ``name`` is empty, taken by another class, or the class is not a Feed.
    """
    if not isinstance(name, str) or not name:
        raise ConfigError(f"feed name must be a non-empty string, got name={name!r}")

    def decorator(cls: _F) -> _F:
        if not (isinstance(cls, type) and issubclass(cls, Feed)):
            raise ConfigError(f"register_feed({name!r}) must decorate a Feed subclass, got {cls!r}")
        old = FEED_TYPES.get(name)
        if old is not None and (old.__module__, old.__qualname__) != (
            cls.__module__,
            cls.__qualname__,
        ):
            raise ConfigError(
                f"feed name {name!r} is already registered to {old.__module__}.{old.__qualname__}; "
                f"choose another name for {cls.__module__}.{cls.__qualname__}"
            )
        cls.kind = name
        FEED_TYPES[name] = cls
        return cls

    return decorator


def make_feed(kind: str, **kwargs: Any) -> Feed:
    """Build the feed registered as ``kind`` with constructor keyword arguments ``kwargs``.

    Args:
        kind: A key of :data:`FEED_TYPES`.
        **kwargs: Passed to the class's constructor.

    Returns:
        The new feed.

    Raises:
        ConfigError: ``kind`` is not registered (the message lists the known kinds), or the
            constructor rejected an argument.
    """
    cls = FEED_TYPES.get(kind)
    if cls is None:  # not registered yet: try the built-in optional modules and plug-ins
        from marketsim.feeds.plugins import load_entry_point_feeds

        load_entry_point_feeds(kind)
        cls = FEED_TYPES.get(kind)
    if cls is None:
        known = ", ".join(sorted(FEED_TYPES)) or "(none registered)"
        raise ConfigError(f"unknown feed kind {kind!r}; known kinds: {known}")
    try:
        return cls(**kwargs)
    except TypeError as exc:  # unknown or missing keyword: re-raise with the kind named
        raise ConfigError(f"feed kind {kind!r}: {exc}") from exc
