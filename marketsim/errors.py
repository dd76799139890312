"""Exception hierarchy: every error marketsim raises on purpose derives from MarketSimError."""

from __future__ import annotations


class MarketSimError(Exception):
    """Base class of all marketsim errors."""


class ConfigError(MarketSimError, ValueError):
    """A scenario, parameter or argument is invalid. The message names the key and the fix."""


class OrderError(MarketSimError, ValueError):
    """A single-order convenience call was given an order the book rejected."""

    def __init__(self, message: str, reason: int):
        super().__init__(message)
        #: The reject reason code (see :data:`marketsim.book.REJECT_REASONS`).
        self.reason = reason


class StateError(MarketSimError):
    """A saved state file is corrupted, truncated or of an incompatible schema version."""


class DataError(MarketSimError, ValueError):
    """Input data (files, streams) is malformed. The message names file, row and column."""
