"""Tests of marketsim.params: numeric parameters given as plain numbers or distributions."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict, ValidationError

from marketsim.errors import ConfigError
from marketsim.params import (
    Choice,
    IntNum,
    LogNormal,
    Num,
    Uniform,
    is_distribution,
    sample,
    sample_params,
)


class P(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rate: Num = 1.0
    size: IntNum = 1
    label: str = "x"
    flag: bool = False


def errors(data: dict) -> list[tuple[tuple, str]]:
    with pytest.raises(ValidationError) as info:
        P.model_validate(data)
    return [(e["loc"], e["msg"]) for e in info.value.errors()]


# ---------------------------------------------------------------- validation


def test_plain_numbers():
    p = P.model_validate({"rate": 2, "size": 3.0})
    assert p.rate == 2.0 and isinstance(p.rate, float)
    assert p.size == 3 and isinstance(p.size, int)
    assert not is_distribution(p.rate)


@pytest.mark.parametrize(
    "data, loc, msg",
    [
        ({"rate": True}, ("rate",), "must be a number or a distribution table like"),
        ({"rate": "fast"}, ("rate",), "must be a number or a distribution table like"),
        ({"rate": math.nan}, ("rate",), "must be finite"),
        ({"rate": math.inf}, ("rate",), "must be finite"),
        ({"size": 2.5}, ("size",), "must be a whole number (this parameter is an integer)"),
        ({"size": False}, ("size",), "must be an integer or a distribution table like"),
    ],
)
def test_plain_number_errors(data, loc, msg):
    [(got_loc, got_msg)] = errors(data)
    assert got_loc == loc
    assert got_msg.startswith(msg)


@pytest.mark.parametrize(
    "table, loc, msg",
    [
        ({"dist": "uniform", "low": 2, "high": 1}, ("rate", "high"), "must be > low (2)"),
        ({"dist": "uniform", "low": 2, "high": 2}, ("rate", "high"), "must be > low (2)"),
        ({"dist": "normal", "mean": 1, "sigma": 0}, ("rate", "sigma"), "greater than 0"),
        ({"dist": "lognormal", "mean": 0, "sigma": 1}, ("rate", "mean"), "greater than 0"),
        ({"dist": "lognormal", "mean": 1, "sigma": -1}, ("rate", "sigma"), "greater than 0"),
        ({"dist": "choice", "values": []}, ("rate", "values"), "at least 1 item"),
        (
            {"dist": "choice", "values": [1, 2], "weights": [1]},
            ("rate", "weights"),
            "must have one weight per value (2), got 1",
        ),
        (
            {"dist": "choice", "values": [1, 2], "weights": [1, -1]},
            ("rate", "weights"),
            "must all be finite and >= 0",
        ),
        (
            {"dist": "choice", "values": [1, 2], "weights": [0, 0]},
            ("rate", "weights"),
            "must have a positive sum",
        ),
        (
            {"dist": "normal", "mean": 1, "sigma": 1, "min": 3, "max": 1},
            ("rate", "max"),
            "must be >= min (3)",
        ),
        ({"dist": "gamma", "k": 1}, ("rate", "dist"), "must be: one of choice, constant,"),
        ({"low": 1, "high": 2}, ("rate", "dist"), "required: one of choice, constant,"),
        ({"dist": "constant", "value": 1, "extra": 2}, ("rate", "extra"), "Extra inputs"),
        ({"dist": "uniform", "low": 1}, ("rate", "high"), "Field required"),
    ],
)
def test_distribution_errors(table, loc, msg):
    [(got_loc, got_msg)] = errors({"rate": table})
    assert got_loc == loc
    assert msg in got_msg


def test_integer_distribution_needs_whole_numbers():
    bad = errors({"size": {"dist": "uniform", "low": 0.5, "high": 3, "max": 2.5}})
    assert bad == [
        (("size", "low"), "must be a whole number (this parameter is an integer)"),
        (("size", "max"), "must be a whole number (this parameter is an integer)"),
    ]
    [(loc, _)] = errors({"size": {"dist": "choice", "values": [1, 2.5]}})
    assert loc == ("size", "values", 1)
    # a float field takes the same table
    assert P.model_validate({"rate": {"dist": "choice", "values": [1, 2.5]}}).rate.values == [
        1,
        2.5,
    ]


def test_round_trip_and_schema():
    data = {
        "rate": {"dist": "lognormal", "mean": 3.0, "sigma": 0.5, "min": 1.0},
        "size": {"dist": "uniform", "low": 1, "high": 4},
    }
    p = P.model_validate(data)
    dumped = p.model_dump()
    assert dumped["rate"] == data["rate"]  # unset keys (max) left out
    assert list(dumped["size"]) == ["dist", "low", "high"]
    again = P.model_validate(dumped)
    assert again == p and again.size.integer and not again.rate.integer
    # a validated distribution instance is accepted again
    assert P(rate=p.rate, size=p.size) == p
    schema = P.model_json_schema()
    refs = {x.get("$ref", x.get("type")) for x in schema["properties"]["rate"]["anyOf"]}
    assert refs == {
        "number",
        "#/$defs/Constant",
        "#/$defs/Uniform",
        "#/$defs/Normal",
        "#/$defs/LogNormal",
        "#/$defs/Choice",
    }
    assert {x.get("type") for x in schema["properties"]["size"]["anyOf"]} >= {"integer"}


# ---------------------------------------------------------------- sampling


def rate(table: dict):
    return P.model_validate({"rate": table}).rate


def size(table: dict):
    return P.model_validate({"size": table}).size


def test_plain_numbers_broadcast_without_draws():
    rng = np.random.default_rng(1)
    before = rng.bit_generator.state
    a = sample(2.5, rng, 4)
    b = sample(3, rng, 2)
    assert a.dtype == np.float64 and a.tolist() == [2.5] * 4
    assert b.dtype == np.int64 and b.tolist() == [3, 3]
    assert rng.bit_generator.state == before
    assert sample(1.0, rng, 0).shape == (0,)


def test_sampling_is_deterministic():
    d = rate({"dist": "normal", "mean": 0, "sigma": 1})
    x = sample(d, np.random.default_rng(7), 100)
    y = sample(d, np.random.default_rng(7), 100)
    z = sample(d, np.random.default_rng(8), 100)
    np.testing.assert_array_equal(x, y)
    assert not np.array_equal(x, z)


def test_uniform_float_and_int():
    rng = np.random.default_rng(0)
    x = sample(rate({"dist": "uniform", "low": 2, "high": 5}), rng, 20_000)
    assert x.dtype == np.float64 and x.min() >= 2 and x.max() < 5
    assert abs(x.mean() - 3.5) < 0.05
    k = sample(size({"dist": "uniform", "low": 1, "high": 3}), rng, 3_000)
    assert k.dtype == np.int64
    counts = np.bincount(k, minlength=4)
    assert counts[0] == 0 and set(np.unique(k)) == {1, 2, 3}  # inclusive of both ends
    assert np.all(np.abs(counts[1:] / 3_000 - 1 / 3) < 0.04)


def test_normal_moments():
    x = sample(rate({"dist": "normal", "mean": 10, "sigma": 2}), np.random.default_rng(3), 40_000)
    assert abs(x.mean() - 10) < 0.05 and abs(x.std() - 2) < 0.05


def test_lognormal_mean_is_mean_of_draws():
    d = rate({"dist": "lognormal", "mean": 3.0, "sigma": 0.5})
    assert isinstance(d, LogNormal)
    x = sample(d, np.random.default_rng(4), 200_000)
    assert x.min() > 0
    assert abs(x.mean() - 3.0) < 0.02
    assert abs(np.median(x) - 3.0 * math.exp(-0.125)) < 0.02
    assert abs(np.log(x).std() - 0.5) < 0.01
    # reference: exp of a normal with the log-mean that gives that mean
    ref = np.exp(np.random.default_rng(4).normal(math.log(3.0) - 0.125, 0.5, 200_000))
    np.testing.assert_allclose(x, ref, rtol=1e-12)


def test_choice_weights_and_constant():
    rng = np.random.default_rng(5)
    d = rate({"dist": "choice", "values": [1, 2, 4], "weights": [1, 0, 3]})
    assert isinstance(d, Choice)
    x = sample(d, rng, 20_000)
    assert set(np.unique(x)) == {1.0, 4.0}
    assert abs((x == 4).mean() - 0.75) < 0.02
    k = sample(size({"dist": "choice", "values": [5, 7]}), rng, 1000)
    assert k.dtype == np.int64 and set(np.unique(k)) == {5, 7}
    c = sample(size({"dist": "constant", "value": 3}), rng, 3)
    assert c.dtype == np.int64 and c.tolist() == [3, 3, 3]


def test_clipping_and_integer_rounding():
    rng = np.random.default_rng(6)
    x = sample(
        rate({"dist": "normal", "mean": 0, "sigma": 1, "min": -0.5, "max": 0.5}), rng, 10_000
    )
    assert x.min() == -0.5 and x.max() == 0.5
    assert 0.25 < (x == 0.5).mean() < 0.37  # the clipped tail is a point mass
    k = sample(size({"dist": "lognormal", "mean": 2, "sigma": 1, "min": 1, "max": 6}), rng, 10_000)
    assert k.dtype == np.int64 and k.min() == 1 and k.max() == 6
    # integer draws are the rounded, then clipped float draws of the same stream
    d = {"dist": "normal", "mean": 3, "sigma": 2, "min": 0, "max": 9}
    k = sample(size(d), np.random.default_rng(11), 1000)
    ref = np.clip(np.rint(np.random.default_rng(11).normal(3, 2, 1000)), 0, 9)
    np.testing.assert_array_equal(k, ref.astype(np.int64))


@settings(max_examples=60, deadline=None)
@given(
    low=st.integers(-50, 50),
    width=st.integers(1, 50),
    clip_lo=st.integers(-60, 60),
    clip_w=st.integers(0, 60),
    seed=st.integers(0, 2**32 - 1),
    integer=st.booleans(),
)
def test_uniform_draws_respect_range_and_clip(low, width, clip_lo, clip_w, seed, integer):
    table = {
        "dist": "uniform",
        "low": low,
        "high": low + width,
        "min": clip_lo,
        "max": clip_lo + clip_w,
    }
    d = size(table) if integer else rate(table)
    x = sample(d, np.random.default_rng(seed), 200)
    lo = min(max(low, clip_lo), clip_lo + clip_w)
    hi = max(min(low + width, clip_lo + clip_w), clip_lo)
    assert x.min() >= lo and x.max() <= hi
    assert x.dtype == (np.int64 if integer else np.float64)


def test_sample_argument_errors():
    rng = np.random.default_rng(0)
    with pytest.raises(ConfigError, match=r"size = -1: must be an integer >= 0"):
        sample(1.0, rng, -1)
    with pytest.raises(ConfigError, match=r"size = 2.0: must be an integer >= 0"):
        sample(1.0, rng, 2.0)
    with pytest.raises(ConfigError, match=r"rng = .*: must be a numpy Generator"):
        sample(1.0, np.random.RandomState(0), 2)
    with pytest.raises(ConfigError, match=r"value = 'x': must be a number or a Distribution"):
        sample("x", rng, 2)
    with pytest.raises(ConfigError, match=r"value = True"):
        sample(True, rng, 2)


def test_sample_params_draws_numeric_fields_in_order():
    p = P.model_validate(
        {
            "rate": {"dist": "uniform", "low": 0, "high": 1},
            "size": {"dist": "choice", "values": [2]},
        }
    )
    out = sample_params(p, np.random.default_rng(9), 5)
    assert list(out) == ["rate", "size"]  # label (str) and flag (bool) left out
    rng = np.random.default_rng(9)
    np.testing.assert_array_equal(out["rate"], sample(p.rate, rng, 5))
    np.testing.assert_array_equal(out["size"], sample(p.size, rng, 5))
    assert out["size"].tolist() == [2] * 5


def test_distribution_classes_directly():
    u = Uniform(dist="uniform", low=0, high=1)
    assert not u.integer
    assert u.sample(np.random.default_rng(0), 3).shape == (3,)
    with pytest.raises(ValidationError):
        Uniform(dist="uniform", low=1, high=0)
