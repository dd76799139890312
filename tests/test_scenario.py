"""Tests of marketsim.scenario (schema, loader, overrides, hash), marketsim.session (the step
clock) and marketsim.config_paths (error messages, override paths)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import textwrap

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict, ValidationError

import marketsim.scenario as scenario_mod
from marketsim.errors import ConfigError
from marketsim.params import IntNum, LogNormal, Num, sample_params
from marketsim.scenario import (
    AGENT_PARAMS,
    Scenario,
    apply_overrides,
    load_scenario,
    register_agent_params,
)
from marketsim.session import Session


class DummyNoiseParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    wake_rate_per_hour: Num = 1.0
    size_lots: IntNum = 1
    aggressive: bool = False


class DummyMakerParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    spread_ticks: IntNum = 2


@pytest.fixture(autouse=True)
def registry():
    """Register dummy agent types; restore the registry afterwards."""
    saved = dict(AGENT_PARAMS)
    register_agent_params("dummy_noise", DummyNoiseParams)
    register_agent_params("dummy_mm", DummyMakerParams)
    yield AGENT_PARAMS
    AGENT_PARAMS.clear()
    AGENT_PARAMS.update(saved)


QUICKSTART = """
[simulation]
name = "quickstart"
seed = 42
step_seconds = 1.0
start_date = 2024-01-02
days = 1
open = "09:30"
close = "16:00"
record_every = 60
max_assets = 8

[exchange]
maker_fee_bps = -0.2
taker_fee_bps = 0.5

[[assets]]
symbol = "ABC"
tick_size = 0.01
initial_price = 100.0
sector = "tech"

[[assets]]
symbol = "BRK.B"
tick_size = 0.05
initial_price = 400.0
sector = "fin"

[fundamental]
kind = "mean_reverting"
params = { kappa = 1.67e-12, sigma = 1e-4 }
correlation = [[1.0, 0.5], [0.5, 1.0]]

[[agents]]
type = "dummy_noise"
count = 1000
cash = 10_000_000.0
shares = { ABC = 0 }
[agents.params]
wake_rate_per_hour = 1.0
size_lots = { dist = "lognormal", mean = 3.0, sigma = 0.5, min = 1 }

[[agents]]
type = "dummy_mm"
name = "mm"
count = 2
cash = 1e7
shares = { ABC = 100, "BRK.B" = 10 }
assets = ["ABC"]
latency_steps = 1

[[rl_agents]]
name = "ppo"
count = 2
cash = 1_000_000.0
action_mode = "weights"
"""


def write(tmp_path, text: str, name: str = "scen.toml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def base(**extra) -> dict:
    data = {
        "assets": [{"symbol": "ABC"}, {"symbol": "XYZ", "sector": "x"}],
        "agents": [{"type": "dummy_noise", "count": 3, "cash": 1000.0}],
    }
    data.update(extra)
    return data


def error_lines(data, overrides=()) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_scenario(data, overrides)
    return str(info.value).splitlines()


# ---------------------------------------------------------------- loading


def test_load_quickstart_file(tmp_path):
    sc = load_scenario(write(tmp_path, QUICKSTART))
    assert sc.simulation.name == "quickstart" and sc.simulation.seed == 42
    assert sc.simulation.open == dt.time(9, 30) and sc.simulation.close == dt.time(16)
    assert sc.symbols == ["ABC", "BRK.B"]
    assert sc.asset("BRK.B").initial_price_ticks == 8000
    noise, mm = sc.agents
    assert noise.name == "dummy_noise" and mm.name == "mm"
    assert isinstance(noise.params, DummyNoiseParams)
    assert isinstance(noise.params.size_lots, LogNormal) and noise.params.size_lots.integer
    assert isinstance(mm.params, DummyMakerParams) and mm.params.spread_ticks == 2  # defaults
    assert mm.shares == {"ABC": 100, "BRK.B": 10} and mm.assets == ["ABC"]
    assert sc.rl_agents[0].agent_names() == ["ppo_0", "ppo_1"]
    np.testing.assert_array_equal(sc.correlation_matrix(), [[1.0, 0.5], [0.5, 1.0]])
    draws = sample_params(noise.params, np.random.default_rng(0), noise.count)
    assert draws["size_lots"].dtype == np.int64 and draws["size_lots"].min() >= 1
    assert sc.session.steps_per_day == 23_400 and sc.session.total_steps == 23_400


def test_minimal_scenario_defaults():
    sc = load_scenario({"assets": [{"symbol": "ABC"}]})
    assert sc.simulation.seed == 0 and sc.simulation.step_seconds == 1.0
    assert sc.exchange.default_leverage_limit == 10.0 and sc.exchange.short_selling
    assert sc.fundamental.kind == "mean_reverting" and sc.agents == [] and sc.rl_agents == []
    a = sc.assets[0]
    assert (a.tick_size, a.lot_size, a.max_price_ticks, a.remove_at_step) == (0.01, 1, 65536, -1)
    np.testing.assert_array_equal(sc.correlation_matrix(), np.eye(1))
    assert load_scenario(sc) is sc


def test_scenario_is_immutable():
    sc = load_scenario(base())
    with pytest.raises(ValidationError):
        sc.simulation.seed = 3


def test_source_errors(tmp_path):
    with pytest.raises(ConfigError, match=r"scenario file .*missing.toml not found"):
        load_scenario(tmp_path / "missing.toml")
    bad = write(tmp_path, "[simulation\nseed = 1\n", "bad.toml")
    with pytest.raises(ConfigError, match=r"scenario file .*bad.toml is not valid TOML: .*line 1"):
        load_scenario(str(bad))
    with pytest.raises(ConfigError, match=r"source = 42: must be a path to a .toml file, a dict"):
        load_scenario(42)


# ---------------------------------------------------------------- error messages


def test_error_message_names_file_key_value_and_rule(tmp_path):
    text = QUICKSTART.replace('name = "mm"\ncount = 2', 'name = "mm"\ncount = -5').replace(
        'close = "16:00"', 'close = "09:00"'
    )
    path = write(tmp_path, text, "quickstart.toml")
    with pytest.raises(ConfigError) as info:
        load_scenario(path)
    lines = str(info.value).splitlines()
    # close/open is a cross-field check of [simulation]; count a field check of agents[1]
    assert lines == [
        f"scenario file {path} is invalid (2 errors):",
        "  simulation.close = 09:00:00: must be after open (09:30:00)",
        "  agents[1].count = -5: must be >= 0",
    ]


def test_field_errors_are_all_listed():
    data = base(
        simulation={"seed": -1, "days": 0, "colour": "red", "start_date": "soon"},
        exchange={"taker_fee_bps": 101, "short_selling": "maybe"},
    )
    data["assets"][0].update(symbol="A B", lot_size=1.5)
    data["agents"].append({"type": "dummy_mm", "count": "many", "latency_steps": -1})
    data["rl_agents"] = [{"action_mode": "buy", "window": 0}]
    assert error_lines(data) == [
        "scenario is invalid (12 errors):",
        "  simulation.seed = -1: must be >= 0",
        '  simulation.start_date = "soon": must be a date like 2024-01-02',
        "  simulation.days = 0: must be >= 1",
        '  simulation.colour = "red": unknown key; valid keys: close, days, l2_every, '
        "max_assets, name, open, quotes_every, record_every, record_orders, seed, start_date, "
        "step_seconds",
        "  exchange.taker_fee_bps = 101: must be <= 100",
        '  exchange.short_selling = "maybe": must be true or false',
        '  assets[0].symbol = "A B": must match the pattern ^[A-Za-z0-9_.-]+$',
        "  assets[0].lot_size = 1.5: must be a whole number",
        '  agents[1].count = "many": must be an integer',
        "  agents[1].latency_steps = -1: must be >= 0",
        "  rl_agents[0].action_mode = \"buy\": must be one of 'weights', 'orders', 'quotes' or 'discrete'",
        "  rl_agents[0].window = 0: must be >= 1",
    ]


def test_missing_and_empty():
    assert error_lines({}) == [
        "scenario is invalid (1 error):",
        "  assets: required key is missing",
    ]
    assert error_lines({"assets": []}) == [
        "scenario is invalid (1 error):",
        "  assets = []: must have at least 1 item(s)",
    ]
    lines = error_lines(base(agents=[{"count": 1}]))
    assert lines[1:] == ["  agents[0].type: required key is missing"]


def test_agent_type_and_params_errors(registry):
    data = base()
    data["agents"] = [
        {"type": "dummy_noise", "params": {"wake_rate_per_hour": "x", "size_lot": 3}},
        {"type": "dummy_noise", "name": "n2", "params": {"size_lots": {"dist": "uniform"}}},
        {"type": "nosie"},
    ]
    lines = error_lines(data)
    assert lines[0] == "scenario is invalid (5 errors):"
    assert lines[1] == (
        '  agents[0].params.wake_rate_per_hour = "x": must be a number or a distribution table '
        'like {dist = "uniform", low = 1, high = 2}'
    )
    assert lines[2] == (
        "  agents[0].params.size_lot = 3: unknown key; valid keys: aggressive, size_lots, "
        "wake_rate_per_hour"
    )
    assert lines[3] == "  agents[1].params.size_lots.low: required key is missing"
    assert lines[4] == "  agents[1].params.size_lots.high: required key is missing"
    assert lines[5].startswith('  agents[2].type = "nosie": unknown agent type; known types: ')
    assert "dummy_mm" in lines[5] and "dummy_noise" in lines[5]


def test_unknown_type_with_empty_registry(registry, monkeypatch):
    registry.clear()
    monkeypatch.setattr(scenario_mod, "_agent_types_loaded", True)
    lines = error_lines(base())
    assert lines[1] == '  agents[0].type = "dummy_noise": unknown agent type; known types: ' + (
        "(none registered)"
    )


def test_session_rules():
    lines = error_lines(base(simulation={"open": "10:00", "close": "10:00"}))
    assert lines[1:] == ["  simulation.close = 10:00:00: must be after open (10:00:00)"]
    lines = error_lines(base(simulation={"step_seconds": 7.0}))
    assert lines[1:] == [
        "  simulation.step_seconds = 7.0: must divide the session (23400 s from open to close) "
        "into whole steps"
    ]
    lines = error_lines(base(simulation={"step_seconds": 0}))
    assert lines[1:] == ["  simulation.step_seconds = 0: must be > 0"]
    lines = error_lines(base(simulation={"open": "09:30:00+01:00"}))
    assert "must be a market-local time without a time zone" in lines[1]
    sc = load_scenario(base(simulation={"step_seconds": 0.1}))
    assert sc.session.steps_per_day == 234_000


def test_asset_rules():
    data = base()
    data["assets"] = [
        {"symbol": "ABC", "initial_price": 1000.0},
        {"symbol": "ABC", "tick_size": 0.5, "initial_price": 0.1},
        {"symbol": "NEW", "add_at_step": 10, "remove_at_step": 10},
        {"symbol": "LATE", "add_at_step": 23_400},
    ]
    assert error_lines(data) == [
        "scenario is invalid (3 errors):",
        "  assets[0].initial_price = 1000.0: is 100000 ticks of 0.01; must be within "
        "[1, max_price_ticks = 65536) ticks: change tick_size or max_price_ticks",
        "  assets[1].initial_price = 0.1: is 0.2 ticks of 0.5; must be within "
        "[1, max_price_ticks = 65536) ticks: change tick_size or max_price_ticks",
        "  assets[2].remove_at_step = 10: must be -1 (never) or > add_at_step (10)",
    ]
    data["assets"] = [a for a in data["assets"] if a["symbol"] != "NEW"]
    data["assets"][0]["max_price_ticks"] = 200_000
    data["assets"][1]["initial_price"] = 100.0
    data["simulation"] = {"max_assets": 2}
    assert error_lines(data) == [
        "scenario is invalid (3 errors):",
        '  assets[1].symbol = "ABC": duplicates assets[0].symbol; symbols must be unique',
        "  assets[2].add_at_step = 23400: must be < total_steps (23400) or it never trades",
        "  simulation.max_assets = 2: must be >= the number of assets (3)",
    ]


def test_account_rules():
    data = base(exchange={"maintenance_margin": 0.05})
    data["agents"] = [
        {"type": "dummy_noise", "shares": {"ABC": 1, "QQQ": 5}, "assets": ["ABC", "ZZZ", "ABC"]},
        {"type": "dummy_noise", "leverage_limit": 25.0},
    ]
    data["rl_agents"] = [{"name": "dummy_noise", "shares": {"ABC": -1}}]
    lines = error_lines(data)
    assert lines == [
        "scenario is invalid (1 error):",
        "  rl_agents[0].shares.ABC = -1: must be >= 0",
    ]
    data["rl_agents"][0]["shares"] = {}
    assert error_lines(data) == [
        "scenario is invalid (6 errors):",
        "  agents[0].shares.QQQ = 5: unknown symbol; known: ABC, XYZ",
        '  agents[0].assets[1] = "ZZZ": unknown symbol; known: ABC, XYZ',
        '  agents[0].assets[2] = "ABC": is listed twice',
        '  agents[1].name = "dummy_noise": duplicates agents[0].name; give each group a '
        "distinct name",
        "  agents[1].leverage_limit = 25.0: must be <= 1/exchange.maintenance_margin (20), or "
        "accounts at the limit are already below maintenance margin",
        '  rl_agents[0].name = "dummy_noise": duplicates agents[0].name; give each group a '
        "distinct name",
    ]


def test_exchange_rules():
    lines = error_lines(base(exchange={"maintenance_margin": 0.2, "maker_fee_bps": -101}))
    assert lines[1:] == ["  exchange.maker_fee_bps = -101: must be >= -100"]
    lines = error_lines(base(exchange={"maintenance_margin": 0.2}))
    assert lines[1:] == [
        "  exchange.maintenance_margin = 0.2: must be <= 1/default_leverage_limit (0.1), or "
        "accounts at the leverage limit are already below maintenance margin"
    ]
    assert load_scenario(base(exchange={"maintenance_margin": 0.2, "default_leverage_limit": 5}))


def test_fundamental_rules():
    def lines_for(fund):
        return error_lines(base(fundamental=fund))[1:]

    assert lines_for({"kind": "brownian"}) == [
        '  fundamental.kind = "brownian": unknown kind; known kinds: mean_reverting, gbm, '
        "regime_switching, historical"
    ]
    assert lines_for({"correlation": [[1.0, 0.5]]}) == [
        "  fundamental.correlation = [[1.0, 0.5]]: must be 2 x 2 (one row per asset), got "
        "1 rows of lengths [2]"
    ]
    assert lines_for({"correlation": [[0.9, 0.5], [0.4, 1.0]]}) == [
        "  fundamental.correlation[0][0] = 0.9: diagonal entries must be 1",
        "  fundamental.correlation[0][1] = 0.5: must equal [1][0] (0.4): the matrix must be "
        "symmetric",
    ]
    assert lines_for({"correlation": [[1.0, 1.5], [1.5, 1.0]]}) == [
        "  fundamental.correlation[0][1] = 1.5: must be <= 1",
        "  fundamental.correlation[1][0] = 1.5: must be <= 1",
    ]
    assert lines_for({"correlation": [[1, 0], [0, 1]], "intra_sector_corr": 0.3}) == [
        "  fundamental.intra_sector_corr = 0.3: cannot be combined with correlation; use one"
    ]
    assert lines_for({"inter_sector_corr": 0.3}) == [
        "  fundamental.inter_sector_corr = 0.3: needs intra_sector_corr as well"
    ]


def test_correlation_must_be_positive_semidefinite():
    assets = [{"symbol": s} for s in "ABC"]
    bad = [[1.0, 0.9, -0.9], [0.9, 1.0, 0.9], [-0.9, 0.9, 1.0]]
    lines = error_lines({"assets": assets, "fundamental": {"correlation": bad}})
    assert lines[1].startswith("  fundamental.correlation = [[1.0, 0.9, -0.9], ")
    assert "not positive semi-definite (smallest eigenvalue -0.8" in lines[1]
    # sector model: 2 sectors of 2; inter > intra is not a valid correlation matrix
    assets = [{"symbol": s, "sector": sec} for s, sec in zip("ABCD", "xxyy", strict=True)]
    fund = {"intra_sector_corr": -0.5, "inter_sector_corr": 0.9}
    lines = error_lines({"assets": assets, "fundamental": fund})
    assert lines[1].startswith("  fundamental.inter_sector_corr = 0.9: gives a correlation")
    fund = {"intra_sector_corr": 0.6, "inter_sector_corr": 0.2}
    sc = load_scenario({"assets": assets, "fundamental": fund})
    c = sc.correlation_matrix()
    ref = np.array(
        [[1 if i == j else 0.6 if i // 2 == j // 2 else 0.2 for j in range(4)] for i in range(4)]
    )
    np.testing.assert_array_equal(c, ref)


# ---------------------------------------------------------------- overrides


def test_overrides_from_the_brief(tmp_path):
    path = write(tmp_path, QUICKSTART)
    sc = load_scenario(
        path,
        [
            "simulation.seed=7",
            "agents.0.count=10",
            "assets.ABC.tick_size=0.05",
            "exchange.taker_fee_bps=1.5",
        ],
    )
    assert sc.simulation.seed == 7 and sc.agents[0].count == 10
    assert sc.asset("ABC").tick_size == 0.05 and sc.exchange.taker_fee_bps == 1.5


def test_overrides_by_name_symbol_and_value_types():
    data = base()
    data["assets"].append({"symbol": "BRK.B"})
    data["agents"].append({"type": "dummy_mm", "name": "mm"})
    out = apply_overrides(
        data,
        [
            "assets.BRK.B.lot_size=10",  # a symbol with a dot
            "assets.XYZ.sector=energy",  # not TOML -> string
            'assets.0.sector="a b"',
            "agents.mm.params.spread_ticks=4",  # a key the data does not have yet
            "agents.dummy_noise.params.size_lots={dist = 'uniform', low = 1, high = 3}",
            "agents.dummy_noise.assets=['ABC']",
            "simulation.start_date=2024-01-05",  # TOML date
            "simulation.open = 10:00:00",
            "simulation.record_orders=true",
            "fundamental.params.kappa=1e-3",  # free-form table
        ],
    )
    assert data == base() | {"assets": data["assets"], "agents": data["agents"]}  # not mutated
    assert "params" not in data["agents"][1]
    sc = load_scenario(out)
    assert sc.asset("BRK.B").lot_size == 10 and sc.asset("XYZ").sector == "energy"
    assert sc.asset("ABC").sector == "a b"
    assert sc.agents[1].params.spread_ticks == 4
    assert sc.agents[0].params.size_lots.high == 3 and sc.agents[0].assets == ["ABC"]
    assert sc.simulation.start_date == dt.date(2024, 1, 5)
    assert sc.simulation.open == dt.time(10) and sc.simulation.record_orders
    assert sc.fundamental.params == {"kappa": 1e-3}
    # a distribution's keys can be overridden one by one
    sc2 = load_scenario(sc, ["agents.dummy_noise.params.size_lots.high=5"])
    assert sc2.agents[0].params.size_lots.high == 5 and sc.agents[0].params.size_lots.high == 3


@pytest.mark.parametrize(
    "override, message",
    [
        (
            "simulation.sed=7",
            "override 'simulation.sed=7': unknown key 'simulation.sed'; valid keys at simulation: "
            "close, days, l2_every, max_assets, name, open, quotes_every, record_every, "
            "record_orders, seed, start_date, step_seconds",
        ),
        (
            "simulaton.seed=7",
            "override 'simulaton.seed=7': unknown key 'simulaton'; valid keys at the top level: "
            "agents, assets, exchange, fundamental, replay, rl_agents, simulation",
        ),
        (
            "agents.0.params.rate=1",
            "override 'agents.0.params.rate=1': unknown key 'agents.0.params.rate'; valid keys at "
            "agents.0.params: aggressive, size_lots, wake_rate_per_hour",
        ),
        (
            "agents.3.count=1",
            "override 'agents.3.count=1': index 3 is out of range: agents has 1 entries",
        ),
        (
            "assets.QQQ.tick_size=1",
            "override 'assets.QQQ.tick_size=1': no entry 'QQQ' in assets: use an index 0..1 or "
            "one of: ABC, XYZ",
        ),
        (
            "assets.ABC.symbol.x=1",
            "override 'assets.ABC.symbol.x=1': assets.ABC.symbol is \"ABC\", not a table",
        ),
        ("seed", "override 'seed': must look like key=value, e.g. simulation.seed=7"),
        ("simulation..seed=1", "override 'simulation..seed=1': must look like key=value"),
    ],
)
def test_override_errors(override, message):
    with pytest.raises(ConfigError) as info:
        apply_overrides(base(), [override])
    assert str(info.value).startswith(message)


def test_override_ambiguous_name_and_invalid_value():
    data = base()
    data["agents"].append({"type": "dummy_noise"})
    with pytest.raises(ConfigError, match=r"'dummy_noise' matches entries \[0, 1\] of agents; use"):
        apply_overrides(data, ["agents.dummy_noise.count=1"])
    # overrides are validated like the file
    assert error_lines(base(), ["agents.0.count=-5"])[1:] == [
        "  agents[0].count = -5: must be >= 0"
    ]


# ---------------------------------------------------------------- hash, dict, schema


def test_hash_ignores_key_order_and_spelled_out_defaults(tmp_path):
    a = write(
        tmp_path,
        """
        [simulation]
        seed = 3
        name = "h"
        [[assets]]
        symbol = "ABC"
        tick_size = 0.01
        [[agents]]
        type = "dummy_noise"
        count = 2
        params = { size_lots = { sigma = 0.5, dist = "lognormal", mean = 3 } }
        """,
        "a.toml",
    )
    b = write(
        tmp_path,
        """
        [[agents]]
        params = { size_lots = { dist = "lognormal", mean = 3.0, sigma = 0.5 }, aggressive = false }
        count = 2
        name = "dummy_noise"
        type = "dummy_noise"
        [[assets]]
        tick_size = 0.01
        symbol = "ABC"
        lot_size = 1
        [simulation]
        name = "h"
        seed = 3
        step_seconds = 1
        """,
        "b.toml",
    )
    sa, sb = load_scenario(a), load_scenario(b)
    assert sa == sb
    h = sa.hash()
    assert h == sb.hash() and len(h) == 16 and int(h, 16) >= 0
    ref = json.dumps(sa.to_dict(), sort_keys=True, separators=(",", ":"))
    assert h == hashlib.sha256(ref.encode()).hexdigest()[:16]
    assert load_scenario(a, ["simulation.seed=4"]).hash() != h
    assert load_scenario(a, ["agents.0.params.size_lots.sigma=0.6"]).hash() != h


def test_to_dict_round_trip(tmp_path):
    sc = load_scenario(write(tmp_path, QUICKSTART))
    d = sc.to_dict()
    json.dumps(d)  # plain JSON-able
    assert d["simulation"]["start_date"] == "2024-01-02" and d["simulation"]["open"] == "09:30:00"
    assert d["agents"][0]["params"]["size_lots"] == {
        "dist": "lognormal",
        "mean": 3.0,
        "sigma": 0.5,
        "min": 1.0,
    }
    again = load_scenario(d)
    assert again == sc and again.hash() == sc.hash()


def test_json_schema_lists_agent_params():
    schema = Scenario.json_schema()
    json.dumps(schema)
    assert set(schema["properties"]) == {
        "simulation",
        "exchange",
        "assets",
        "fundamental",
        "agents",
        "rl_agents",
        "replay",
    }
    agent = schema["$defs"]["AgentConfig"]
    assert {"dummy_mm", "dummy_noise"} <= set(agent["properties"]["type"]["enum"])
    rule = next(r for r in agent["allOf"] if r["if"]["properties"]["type"]["const"] == "dummy_mm")
    ref = rule["then"]["properties"]["params"]["$ref"].split("/")[-1]
    assert "spread_ticks" in schema["$defs"][ref]["properties"]
    sim = schema["$defs"]["SimulationConfig"]["properties"]
    assert all(p.get("description") for p in sim.values())


# ---------------------------------------------------------------- registry


def test_register_agent_params_rules(registry):
    class Loose(BaseModel):
        x: int = 1

    with pytest.raises(
        ConfigError, match=r"Loose.model_config\['extra'\] = None: must be 'forbid'"
    ):
        register_agent_params("loose", Loose)
    with pytest.raises(ConfigError, match=r"type_name = '': must be a non-empty string"):
        register_agent_params("", DummyNoiseParams)
    with pytest.raises(ConfigError, match=r"params_model = 3: must be a pydantic BaseModel class"):
        register_agent_params("x", 3)
    with pytest.raises(ConfigError, match=r"agent type 'dummy_noise' is already registered with"):
        register_agent_params("dummy_noise", DummyMakerParams)
    assert register_agent_params("dummy_noise", DummyNoiseParams) is DummyNoiseParams


def test_agent_types_hook_tolerates_missing_package_only(monkeypatch):
    calls = []

    def fake_import(name):
        calls.append(name)
        raise ModuleNotFoundError(f"No module named {name!r}", name=name)

    monkeypatch.setattr(scenario_mod, "_agent_types_loaded", False)
    monkeypatch.setattr(scenario_mod.importlib, "import_module", fake_import)
    assert load_scenario(base()).agents[0].type == "dummy_noise"
    assert calls == ["agents.background"]

    def broken_import(name):
        raise ModuleNotFoundError("No module named 'torch'", name="torch")

    monkeypatch.setattr(scenario_mod, "_agent_types_loaded", False)
    monkeypatch.setattr(scenario_mod.importlib, "import_module", broken_import)
    with pytest.raises(ModuleNotFoundError, match="torch"):
        load_scenario(base())


# ---------------------------------------------------------------- session clock


def reference_time_ns(start, days, open_t, close_t, step_s, step):
    """Slow, obvious: walk calendar days, skipping weekends, then add the offset."""
    per_day = round(
        (dt.datetime.combine(start, close_t) - dt.datetime.combine(start, open_t)).total_seconds()
        / step_s
    )
    day, offset = divmod(step, per_day)
    if day == days:  # the end of the run: the last day's close
        day, offset = days - 1, per_day
    d = start
    while d.weekday() >= 5:
        d += dt.timedelta(days=1)
    for _ in range(day):
        d += dt.timedelta(days=1)
        while d.weekday() >= 5:
            d += dt.timedelta(days=1)
    t = dt.datetime.combine(d, open_t) + dt.timedelta(seconds=offset * step_s)
    epoch = dt.datetime(1970, 1, 1)
    delta = t - epoch
    return (delta.days * 86_400 + delta.seconds) * 10**9 + delta.microseconds * 1000


def test_session_calendar():
    # Friday start: Fri, Mon, Tue
    s = Session(dt.date(2024, 1, 5), 3, dt.time(9, 30), dt.time(16), 60.0)
    assert s.steps_per_day == 390 and s.total_steps == 1170
    assert s.trading_dates == (dt.date(2024, 1, 5), dt.date(2024, 1, 8), dt.date(2024, 1, 9))
    # Saturday start rolls to Monday
    s2 = Session(dt.date(2024, 1, 6), 1, dt.time(9, 30), dt.time(16), 60.0)
    assert s2.trading_dates == (dt.date(2024, 1, 8),)
    t = np.int64(s.step_to_time_ns(0)).view("datetime64[ns]")
    assert str(t) == "2024-01-05T09:30:00.000000000"
    assert (
        str(np.int64(s.step_to_time_ns(389)).view("datetime64[ns]"))
        == "2024-01-05T15:59:00.000000000"
    )
    assert (
        str(np.int64(s.step_to_time_ns(390)).view("datetime64[ns]"))
        == "2024-01-08T09:30:00.000000000"
    )
    assert [s.is_day_start(k) for k in (0, 1, 389, 390, 780)] == [True, False, False, True, True]
    assert s.day_of(779) == 1 and s.day_of(780) == 2
    # total_steps is the end of the run: the last day's close
    assert not s.is_day_start(1170) and s.day_of(1170) == 2
    end = np.int64(s.step_to_time_ns(1170)).view("datetime64[ns]")
    assert str(end) == "2024-01-09T16:00:00.000000000"
    assert s.steps_to_time_ns(np.array([1170]))[0] == s.step_to_time_ns(1170)


def test_session_errors():
    s = Session(dt.date(2024, 1, 2), 1, dt.time(9, 30), dt.time(16), 1.0)
    with pytest.raises(ConfigError, match=r"step = 23401: must be in \[0, total_steps = 23400\]"):
        s.step_to_time_ns(23_401)
    with pytest.raises(ConfigError, match=r"step = -1: must be in"):
        s.is_day_start(-1)
    with pytest.raises(ConfigError, match=r"step = 1.0: must be an integer"):
        s.step_to_time_ns(1.0)
    with pytest.raises(ConfigError, match=r"steps has values in \[0, 23401\]: must be in"):
        s.steps_to_time_ns(np.array([0, 23_401]))
    with pytest.raises(ConfigError, match=r"steps has dtype float64: must be an integer array"):
        s.steps_to_time_ns(np.array([0.0]))
    with pytest.raises(ConfigError, match=r"close_time = 09:00:00: must be after open_time"):
        Session(dt.date(2024, 1, 2), 1, dt.time(9, 30), dt.time(9), 1.0)
    with pytest.raises(ConfigError, match=r"step_seconds = 7.0: must be > 0 and divide"):
        Session(dt.date(2024, 1, 2), 1, dt.time(9, 30), dt.time(16), 7.0)
    with pytest.raises(ConfigError, match=r"days = 0: must be an integer >= 1"):
        Session(dt.date(2024, 1, 2), 0, dt.time(9, 30), dt.time(16), 1.0)


@settings(max_examples=40, deadline=None)
@given(
    start=st.dates(dt.date(2000, 1, 1), dt.date(2040, 1, 1)),
    days=st.integers(1, 12),
    open_min=st.integers(0, 12 * 60),
    length_steps=st.integers(1, 400),
    step_s=st.sampled_from([0.1, 0.5, 1.0, 2.0, 60.0]),
    data=st.data(),
)
def test_session_matches_reference(start, days, open_min, length_steps, step_s, data):
    open_t = dt.time(open_min // 60, open_min % 60)
    close_dt = dt.datetime.combine(start, open_t) + dt.timedelta(seconds=length_steps * step_s)
    if close_dt.date() != start:
        return
    s = Session(start, days, open_t, close_dt.time(), step_s)
    assert s.steps_per_day == length_steps
    steps = np.array(
        data.draw(st.lists(st.integers(0, s.total_steps), min_size=1, max_size=20)),
        dtype=np.int64,
    )
    want = [reference_time_ns(start, days, open_t, close_dt.time(), step_s, int(k)) for k in steps]
    assert [s.step_to_time_ns(int(k)) for k in steps] == want
    np.testing.assert_array_equal(s.steps_to_time_ns(steps), want)
    assert all(d.weekday() < 5 for d in s.trading_dates) and len(s.trading_dates) == days


def test_scenario_session_is_cached_and_consistent():
    sc = load_scenario(base(simulation={"days": 2, "start_date": "2024-01-05", "step_seconds": 60}))
    assert sc.session is sc.session
    assert sc.session.total_steps == 780
    ts = sc.session.steps_to_time_ns(np.arange(780))
    assert np.all(np.diff(ts) > 0)
    assert np.diff(ts)[389] == (2 * 86_400 + 17.5 * 3600 + 60) * 10**9  # Fri 15:59 -> Mon 09:30
