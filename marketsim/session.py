"""Trading-session clock: maps simulation steps to simulated market time.

A run covers ``days`` trading days (weekdays, starting at ``start_date`` or the first weekday
after it). Each day is the session ``open``..``close`` cut into steps of ``step_seconds``;
overnight gaps and weekends are skipped, so step ``k`` of the run is step
``k % steps_per_day`` of trading day ``k // steps_per_day``. A step's time is its start:
step 0 is the first day's open; the last step of a day starts ``step_seconds`` before close.
``total_steps`` itself (the end of the run) maps to the last day's close.

Times are market-local wall-clock times without a time zone, given as integer nanoseconds
since 1970-01-01 (the ``datetime64[ns]`` representation: ``np.int64(t).view("datetime64[ns]")``
or ``pd.to_datetime(t)``).

Example:
    >>> import datetime as dt
    >>> s = Session(dt.date(2024, 1, 5), 2, dt.time(9, 30), dt.time(16, 0), 60.0)
    >>> s.steps_per_day, s.total_steps
    (390, 780)
    >>> str(np.int64(s.step_to_time_ns(390)).view("datetime64[ns]"))
    '2024-01-08T09:30:00.000000000'
"""

from __future__ import annotations

import datetime as dt
import numbers
from functools import cached_property

import numpy as np

from marketsim.errors import ConfigError

__all__ = ["Session", "session_ns", "step_ns_of"]

_NS_PER_SECOND = 1_000_000_000
_NS_PER_DAY = 86_400 * _NS_PER_SECOND


def session_ns(open_time: dt.time, close_time: dt.time) -> int:
    """Length of the session ``open_time``..``close_time`` in nanoseconds (may be <= 0). O(1)."""

    def ns(t: dt.time) -> int:
        return ((t.hour * 60 + t.minute) * 60 + t.second) * _NS_PER_SECOND + t.microsecond * 1000

    return ns(close_time) - ns(open_time)


def step_ns_of(step_seconds: float) -> int:
    """``step_seconds`` as whole nanoseconds (rounded to the nearest nanosecond). O(1)."""
    return round(step_seconds * _NS_PER_SECOND)


class Session:
    """The step clock of a run. Immutable; all queries are O(1) (vectorised ones O(n)).

    Args:
        start_date: first calendar date; rolls forward to a weekday.
        days: number of trading days, >= 1.
        open_time: session open (naive market-local time).
        close_time: session close, after ``open_time`` on the same day.
        step_seconds: step length; must cut the session into whole steps.

    Raises:
        ConfigError: an argument is out of range (the scenario schema checks the same rules
            first, with the scenario key in the message).
    """

    def __init__(
        self,
        start_date: dt.date,
        days: int,
        open_time: dt.time,
        close_time: dt.time,
        step_seconds: float,
    ):
        if isinstance(days, bool) or not isinstance(days, numbers.Integral) or days < 1:
            raise ConfigError(f"days = {days!r}: must be an integer >= 1")
        length_ns = session_ns(open_time, close_time)
        if length_ns <= 0:
            raise ConfigError(
                f"close_time = {close_time.isoformat()}: must be after open_time "
                f"({open_time.isoformat()}) on the same day"
            )
        step_ns = step_ns_of(step_seconds) if step_seconds > 0 else 0
        if step_ns < 1 or length_ns % step_ns != 0:
            raise ConfigError(
                f"step_seconds = {step_seconds!r}: must be > 0 and divide the session "
                f"({length_ns / _NS_PER_SECOND:g} s) into whole steps"
            )
        #: First calendar date asked for (may be a weekend day).
        self.start_date = start_date
        #: Number of trading days.
        self.days = int(days)
        #: Session open and close (naive market-local times).
        self.open_time = open_time
        self.close_time = close_time
        #: Step length in seconds, and in whole nanoseconds.
        self.step_seconds = float(step_seconds)
        self.step_ns = step_ns
        #: Steps in one trading day.
        self.steps_per_day = length_ns // step_ns
        #: Steps in the whole run: ``steps_per_day * days``.
        self.total_steps = self.steps_per_day * self.days
        first = np.datetime64(start_date.isoformat(), "D")
        dates = np.busday_offset(first, np.arange(self.days), roll="forward")
        open_ns = session_ns(dt.time(0), open_time)
        #: Session open of each trading day, ns since the epoch (int64, shape ``(days,)``).
        self.day_open_ns = dates.astype("datetime64[ns]").astype(np.int64) + open_ns
        self.day_open_ns.setflags(write=False)
        self._dates = dates

    @cached_property
    def trading_dates(self) -> tuple[dt.date, ...]:
        """The trading dates of the run (weekdays from ``start_date``), one per day."""
        return tuple(d.item() for d in self._dates)

    def _check_step(self, step: int) -> int:
        if isinstance(step, bool) or not isinstance(step, numbers.Integral):
            raise ConfigError(f"step = {step!r}: must be an integer")
        if not 0 <= step <= self.total_steps:
            raise ConfigError(f"step = {step}: must be in [0, total_steps = {self.total_steps}]")
        return int(step)

    def day_of(self, step: int) -> int:
        """Index of the trading day that ``step`` belongs to (``total_steps``: the last). O(1)."""
        return min(self._check_step(step) // self.steps_per_day, self.days - 1)

    def is_day_start(self, step: int) -> bool:
        """Whether ``step`` is the first step (the open) of a trading day. O(1)."""
        step = self._check_step(step)
        return step < self.total_steps and step % self.steps_per_day == 0

    def step_to_time_ns(self, step: int) -> int:
        """Simulated market time at the start of ``step``, ns since the epoch. O(1).

        ``step == total_steps`` (the end of the run) gives the last day's close.

        Raises:
            ConfigError: ``step`` is not an integer in ``[0, total_steps]``.
        """
        step = self._check_step(step)
        day = min(step // self.steps_per_day, self.days - 1)
        return int(self.day_open_ns[day]) + (step - day * self.steps_per_day) * self.step_ns

    def steps_to_time_ns(self, steps: np.ndarray) -> np.ndarray:
        """Vectorised :meth:`step_to_time_ns`: int64 array of the same shape. O(n).

        Raises:
            ConfigError: ``steps`` is not an integer array or has a value outside
                ``[0, total_steps]``.
        """
        steps = np.asarray(steps)
        if steps.dtype.kind not in "iu":
            raise ConfigError(f"steps has dtype {steps.dtype}: must be an integer array")
        steps = steps.astype(np.int64, copy=False)
        if steps.size and (steps.min() < 0 or steps.max() > self.total_steps):
            raise ConfigError(
                f"steps has values in [{steps.min()}, {steps.max()}]: "
                f"must be in [0, total_steps = {self.total_steps}]"
            )
        day = np.minimum(steps // self.steps_per_day, self.days - 1)
        return self.day_open_ns[day] + (steps - day * self.steps_per_day) * self.step_ns

    def __repr__(self) -> str:
        return (
            f"Session(start_date={self.start_date.isoformat()}, days={self.days}, "
            f"open={self.open_time.isoformat()}, close={self.close_time.isoformat()}, "
            f"step_seconds={self.step_seconds:g}, steps_per_day={self.steps_per_day})"
        )
