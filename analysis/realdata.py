"""Real-market reference: the stylized facts of S&P 500 daily returns beside simulated ones.

Data: the S&P 500 index daily prices shipped with the ``arch`` package
(``arch.data.sp500.load()``: Open, High, Low, Close, Adj Close, Volume from 1999 to 2018; no
download). Daily log returns are close-to-close, ``r_d = ln(C_d / C_{d-1})`` on the adjusted
close, i.e. they include the overnight move (the usual definition for daily data; simulated
daily returns are open-to-close unless ``include_overnight=True``). Interval volume is the day's
volume. The facts are those of :func:`analysis.stylized.facts_from_returns` (one segment: the
whole history).

``arch`` is an optional dependency: install it with ``pip install arch``.

Example:
    >>> from analysis.realdata import sp500_facts, compare_with_sp500
    >>> compare_with_sp500(stylized_facts(runs, horizon="1D"))        # doctest: +SKIP
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from analysis.stylized import facts_from_returns
from marketsim.errors import ConfigError, DataError

logger = logging.getLogger(__name__)

__all__ = ["compare_with_sp500", "load_sp500", "sp500_facts", "sp500_returns"]


def load_sp500() -> pd.DataFrame:
    """The S&P 500 daily price table of ``arch.data.sp500`` (indexed by date). O(rows).

    Raises:
        DataError: ``arch`` is not installed (the message says how to install it).
    """
    try:
        from arch.data import sp500
    except ImportError as e:
        raise DataError(
            f"the S&P 500 reference data comes with the 'arch' package, which is not "
            f"installed ({e}); install it with `pip install arch`"
        ) from None
    df = sp500.load()
    if "Adj Close" not in df.columns:
        raise DataError(f"arch.data.sp500 lacks column 'Adj Close'; got {list(df.columns)}")
    return df


def sp500_returns(prices: pd.DataFrame | None = None) -> pd.DataFrame:
    """Daily close-to-close log returns ``r_d = ln(C_d / C_{d-1})`` with the day's volume.

    Args:
        prices: A frame like :func:`load_sp500`'s (default: load it).

    Returns:
        DataFrame indexed by date with columns r and volume (first day dropped).

    Complexity: O(rows).
    """
    p = load_sp500() if prices is None else prices
    c = p["Adj Close"].to_numpy(float)
    if c.size < 2 or not (c > 0).all():
        raise DataError("S&P 500 prices must be positive and span at least two days")
    out = pd.DataFrame(
        {"r": np.diff(np.log(c)), "volume": p["Volume"].to_numpy(float)[1:]}, index=p.index[1:]
    )
    return out


def sp500_facts(prices: pd.DataFrame | None = None, **kwargs: Any) -> pd.DataFrame:
    """:func:`analysis.stylized.facts_from_returns` of S&P 500 daily returns and volume.

    Args:
        prices: See :func:`sp500_returns`.
        **kwargs: Passed on (max_lag, tail_fraction, scales, leverage_lags, level).

    Returns:
        The facts table (no trade-sign row: the data has no trades).

    Complexity: O(n max_lag + n log n).
    """
    r = sp500_returns(prices)
    return facts_from_returns(r["r"].to_numpy(), volume=r["volume"].to_numpy(), **kwargs)


def compare_with_sp500(
    simulated: pd.DataFrame, reference: pd.DataFrame | None = None, **kwargs: Any
) -> pd.DataFrame:
    """Simulated facts beside the S&P 500 daily ones.

    Args:
        simulated: A table from :func:`analysis.stylized.stylized_facts` (ideally at
            ``horizon="1D"`` for a like-for-like comparison).
        reference: A precomputed :func:`sp500_facts` table (default: compute it with
            ``**kwargs``).

    Returns:
        DataFrame with columns name, simulated, simulated_passed, sp500, sp500_passed,
        literature, source; one row per fact of ``simulated`` (sp500 NaN where it has none).

    Raises:
        ConfigError: ``simulated`` lacks the name/value/passed columns.

    Complexity: O(facts) after the reference is computed.
    """
    need = {"name", "value", "passed", "literature", "source"}
    if not need <= set(simulated.columns):
        raise ConfigError(
            f"simulated must be a stylized_facts() table with columns {sorted(need)}, got "
            f"{list(simulated.columns)}"
        )
    ref = sp500_facts(**kwargs) if reference is None else reference
    ref = ref.set_index("name")
    out = pd.DataFrame(
        {
            "name": simulated["name"].to_numpy(),
            "simulated": simulated["value"].to_numpy(float),
            "simulated_passed": simulated["passed"].to_numpy(bool),
            "sp500": ref["value"].reindex(simulated["name"]).to_numpy(float),
            "sp500_passed": ref["passed"].reindex(simulated["name"]).to_numpy(object),
            "literature": simulated["literature"].to_numpy(),
            "source": simulated["source"].to_numpy(),
        }
    )
    return out
