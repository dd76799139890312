"""Numeric agent parameters that may be plain numbers or per-agent distributions.

An agent type's pydantic ``Params`` model annotates a numeric field with :data:`Num` (float) or
:data:`IntNum` (integer). In a scenario file such a field is either a plain number, the same for
every agent of the group, or a distribution table from which each agent draws its own value::

    wake_rate_per_hour = 1.0
    size_lots = { dist = "lognormal", mean = 3.0, sigma = 0.5, min = 1 }

Distributions (the ``dist`` key picks one):

* ``constant``: ``value``.
* ``uniform``: ``low < high``. Float parameters draw from ``[low, high)``; integer parameters
  draw whole numbers from ``low..high`` inclusive.
* ``normal``: ``mean``, ``sigma > 0``.
* ``lognormal``: ``mean > 0`` is the mean of the drawn values themselves (not of their log),
  ``sigma > 0`` the standard deviation of their log; the median is
  ``mean * exp(-sigma**2 / 2)``.
* ``choice``: non-empty ``values`` and optional ``weights`` (same length, >= 0, sum > 0).

Every distribution also takes optional ``min`` / ``max`` keys that clip the draws (clipping puts
a point mass on the bound; it does not resample). Integer parameters round draws to the
nearest whole number before clipping, and require whole-number settings.

:func:`sample` draws the per-agent values from a numpy ``Generator``; plain numbers are
broadcast and consume no random draws.

Example:
    >>> import numpy as np
    >>> from pydantic import BaseModel
    >>> class Params(BaseModel):
    ...     size_lots: IntNum = 1
    >>> p = Params.model_validate({"size_lots": {"dist": "uniform", "low": 1, "high": 3}})
    >>> sample(p.size_lots, np.random.default_rng(0), 4).dtype
    dtype('int64')
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    PrivateAttr,
    ValidationError,
    model_validator,
)
from pydantic_core import InitErrorDetails

from marketsim.config_paths import reason as _reason
from marketsim.errors import ConfigError

__all__ = [
    "DISTRIBUTIONS",
    "Choice",
    "Constant",
    "Distribution",
    "IntNum",
    "LogNormal",
    "Normal",
    "Num",
    "Uniform",
    "is_distribution",
    "sample",
    "sample_params",
]


class Distribution(BaseModel):
    """Base class of the parameter distributions: clipping bounds and the sampling entry point."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min: float | None = Field(None, description="Optional lower clip applied to every draw.")
    max: float | None = Field(None, description="Optional upper clip applied to every draw.")
    #: Set by :data:`IntNum` validation: draws are rounded and returned as int64.
    _integer: bool = PrivateAttr(False)

    @model_validator(mode="after")
    def _check_clip(self) -> Distribution:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValidationError.from_exception_data(
                type(self).__name__,
                [
                    InitErrorDetails(
                        type=_reason(f"must be >= min ({self.min:g})"), loc=("max",), input=self.max
                    )
                ],
            )
        return self

    @property
    def integer(self) -> bool:
        """Whether draws are whole numbers (the field is an :data:`IntNum`)."""
        return self._integer

    def _numeric_settings(self) -> dict[str, Any]:
        """The settings that must be whole numbers for an integer parameter."""
        return {"min": self.min, "max": self.max}

    def _draw(self, rng: np.random.Generator, size: int) -> np.ndarray:
        raise NotImplementedError

    def sample(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """Draw ``size`` values. O(size).

        Returns:
            float64 array, or int64 for integer parameters; clipped to ``min``/``max``.
        """
        x = np.asarray(self._draw(rng, size), dtype=np.float64)
        if self._integer:
            x = np.rint(x)
        if self.min is not None or self.max is not None:
            lo = -np.inf if self.min is None else self.min
            hi = np.inf if self.max is None else self.max
            x = np.clip(x, lo, hi)
        return x.astype(np.int64) if self._integer else x


class Constant(Distribution):
    """Every agent gets ``value`` (the same as writing the plain number)."""

    dist: Literal["constant"] = Field(description="Distribution name.")
    value: float = Field(description="The value.")

    def _numeric_settings(self) -> dict[str, Any]:
        return {"value": self.value, **super()._numeric_settings()}

    def _draw(self, rng: np.random.Generator, size: int) -> np.ndarray:
        return np.full(size, self.value)


class Uniform(Distribution):
    """Uniform on ``[low, high)`` (float) or on the integers ``low..high`` (integer params)."""

    dist: Literal["uniform"] = Field(description="Distribution name.")
    low: float = Field(description="Lower end.")
    high: float = Field(description="Upper end, > low (inclusive for integer parameters).")

    @model_validator(mode="after")
    def _check_range(self) -> Uniform:
        if not self.low < self.high:
            raise ValidationError.from_exception_data(
                "Uniform",
                [
                    InitErrorDetails(
                        type=_reason(f"must be > low ({self.low:g})"),
                        loc=("high",),
                        input=self.high,
                    )
                ],
            )
        return self

    def _numeric_settings(self) -> dict[str, Any]:
        return {"low": self.low, "high": self.high, **super()._numeric_settings()}

    def _draw(self, rng: np.random.Generator, size: int) -> np.ndarray:
        if self._integer:
            return rng.integers(int(self.low), int(self.high), size=size, endpoint=True)
        return rng.uniform(self.low, self.high, size=size)


class Normal(Distribution):
    """Normal with mean ``mean`` and standard deviation ``sigma``."""

    dist: Literal["normal"] = Field(description="Distribution name.")
    mean: float = Field(description="Mean.")
    sigma: float = Field(gt=0, description="Standard deviation, > 0.")

    def _draw(self, rng: np.random.Generator, size: int) -> np.ndarray:
        return rng.normal(self.mean, self.sigma, size=size)


class LogNormal(Distribution):
    """Log-normal whose draws have mean ``mean``; ``sigma`` is the std of their log."""

    dist: Literal["lognormal"] = Field(description="Distribution name.")
    mean: float = Field(gt=0, description="Mean of the drawn values (not of their log), > 0.")
    sigma: float = Field(gt=0, description="Standard deviation of the log of the draws, > 0.")

    def _draw(self, rng: np.random.Generator, size: int) -> np.ndarray:
        mu = math.log(self.mean) - 0.5 * self.sigma**2
        return rng.lognormal(mu, self.sigma, size=size)


class Choice(Distribution):
    """Draws one of ``values``, with probabilities proportional to ``weights`` (default equal)."""

    dist: Literal["choice"] = Field(description="Distribution name.")
    values: list[float] = Field(min_length=1, description="The values to choose from.")
    weights: list[float] | None = Field(
        None, description="Relative weights, same length as values, >= 0 with a positive sum."
    )

    @model_validator(mode="after")
    def _check_weights(self) -> Choice:
        w = self.weights
        if w is None:
            return self
        if len(w) != len(self.values):
            problem = f"must have one weight per value ({len(self.values)}), got {len(w)}"
        elif any(not math.isfinite(x) or x < 0 for x in w):
            problem = "must all be finite and >= 0"
        elif sum(w) <= 0:
            problem = "must have a positive sum"
        else:
            return self
        raise ValidationError.from_exception_data(
            "Choice", [InitErrorDetails(type=_reason(problem), loc=("weights",), input=w)]
        )

    def _numeric_settings(self) -> dict[str, Any]:
        out: dict[str, Any] = {f"values.{i}": v for i, v in enumerate(self.values)}
        return {**out, **super()._numeric_settings()}

    def _draw(self, rng: np.random.Generator, size: int) -> np.ndarray:
        p = None
        if self.weights is not None:
            p = np.asarray(self.weights, dtype=np.float64)
            p = p / p.sum()
        return rng.choice(np.asarray(self.values, dtype=np.float64), size=size, p=p)


#: Distribution classes by their ``dist`` name.
DISTRIBUTIONS: dict[str, type[Distribution]] = {
    "choice": Choice,
    "constant": Constant,
    "lognormal": LogNormal,
    "normal": Normal,
    "uniform": Uniform,
}

_EXAMPLE = '{dist = "uniform", low = 1, high = 2}'


def _validate_num(value: Any, integer: bool) -> float | int | Distribution:
    """Validate a plain number or a distribution table. O(len(choice values))."""
    kind = "an integer" if integer else "a number"
    if isinstance(value, bool):
        raise _reason(f"must be {kind} or a distribution table like {_EXAMPLE}, not a boolean")
    if isinstance(value, numbers.Real):
        if not math.isfinite(value):
            raise _reason("must be finite")
        if integer:
            if float(value) != int(value):
                raise _reason("must be a whole number (this parameter is an integer)")
            return int(value)
        return float(value)
    if isinstance(value, Distribution):
        value = value.model_dump()
    if not isinstance(value, Mapping):
        raise _reason(f"must be {kind} or a distribution table like {_EXAMPLE}")
    known = ", ".join(sorted(DISTRIBUTIONS))
    name = value.get("dist")
    if name not in DISTRIBUTIONS:
        what = "required" if name is None else "must be"
        raise ValidationError.from_exception_data(
            "Distribution",
            [InitErrorDetails(type=_reason(f"{what}: one of {known}"), loc=("dist",), input=name)],
        )
    dist = DISTRIBUTIONS[name].model_validate(dict(value))
    if integer:
        bad = [
            InitErrorDetails(
                type=_reason("must be a whole number (this parameter is an integer)"),
                loc=tuple(int(p) if p.isdigit() else p for p in key.split(".")),
                input=v,
            )
            for key, v in dist._numeric_settings().items()
            if v is not None and v != round(v)
        ]
        if bad:
            raise ValidationError.from_exception_data("Distribution", bad)
        dist._integer = True
    return dist


def _serialize_num(value: Any) -> Any:
    """Plain numbers as is; distributions as their table, ``dist`` first, unset keys left out."""
    if not isinstance(value, Distribution):
        return value
    table = value.model_dump(exclude_none=True)
    return {"dist": table.pop("dist"), **table}


_DistributionInput = Constant | Uniform | Normal | LogNormal | Choice

#: A float parameter: a plain number or a distribution table (see module docs).
Num = Annotated[
    float | Distribution,
    PlainValidator(
        lambda v: _validate_num(v, integer=False),
        json_schema_input_type=float | _DistributionInput,
    ),
    PlainSerializer(_serialize_num),
]

#: An integer parameter: a plain whole number or a distribution table (see module docs).
IntNum = Annotated[
    int | Distribution,
    PlainValidator(
        lambda v: _validate_num(v, integer=True),
        json_schema_input_type=int | _DistributionInput,
    ),
    PlainSerializer(_serialize_num),
]


def is_distribution(value: Any) -> bool:
    """Whether ``value`` is a validated distribution (rather than a plain number). O(1)."""
    return isinstance(value, Distribution)


def sample(value: float | int | Distribution, rng: np.random.Generator, size: int) -> np.ndarray:
    """Draw ``size`` per-agent values of a :data:`Num` / :data:`IntNum` parameter. O(size).

    Args:
        value: a validated parameter: a plain number (broadcast, no random draws consumed)
            or a :class:`Distribution`.
        rng: the generator to draw from (owned by the model).
        size: number of values, >= 0.

    Returns:
        float64 array for floats and float distributions; int64 for plain ints and
        distributions of :data:`IntNum` fields.

    Example:
        >>> sample(2.5, np.random.default_rng(0), 3)
        array([2.5, 2.5, 2.5])
    """
    if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size < 0:
        raise ConfigError(f"size = {size!r}: must be an integer >= 0")
    if not isinstance(rng, np.random.Generator):
        raise ConfigError(f"rng = {rng!r}: must be a numpy Generator (np.random.default_rng(seed))")
    if isinstance(value, Distribution):
        return value.sample(rng, int(size))
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigError(
            f"value = {value!r}: must be a number or a Distribution (validate it as Num/IntNum)"
        )
    dtype = np.int64 if isinstance(value, numbers.Integral) else np.float64
    return np.full(int(size), value, dtype=dtype)


def sample_params(params: BaseModel, rng: np.random.Generator, size: int) -> dict[str, np.ndarray]:
    """Draw per-agent values for every numeric field of a validated params model. O(fields*size).

    Fields are drawn in declaration order, so the draws are reproducible for a given ``rng``
    state. Non-numeric fields (booleans, strings, lists, ...) are left out.

    Returns:
        field name -> array of ``size`` values (see :func:`sample` for dtypes).
    """
    out: dict[str, np.ndarray] = {}
    for name in type(params).model_fields:
        value = getattr(params, name)
        if isinstance(value, Distribution) or (
            isinstance(value, numbers.Real) and not isinstance(value, bool)
        ):
            out[name] = sample(value, rng, size)
    return out
