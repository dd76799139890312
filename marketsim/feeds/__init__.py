"""Exogenous data feeds: the :class:`Feed` interface, its registry and fundamental processes.

Importing this package registers the built-in kinds (``"mean_reverting"``, ``"gbm"``,
``"regime_switching"``) in :data:`FEED_TYPES`; build one from a scenario with
:func:`make_feed`.
"""

from marketsim.feeds.base import FEED_TYPES, Feed, make_feed, register_feed
from marketsim.feeds.fundamental import (
    SECONDS_PER_DAY,
    SECONDS_PER_YEAR,
    GBMFundamental,
    MeanRevertingFundamental,
    RegimeSwitchingFundamental,
    sector_correlation,
    validate_correlation,
)
from marketsim.feeds.plugins import load_entry_point_feeds

__all__ = [
    "FEED_TYPES",
    "SECONDS_PER_DAY",
    "SECONDS_PER_YEAR",
    "Feed",
    "GBMFundamental",
    "MeanRevertingFundamental",
    "RegimeSwitchingFundamental",
    "load_entry_point_feeds",
    "make_feed",
    "register_feed",
    "sector_correlation",
    "validate_correlation",
]
