"""The shipped scenario files: they load, keep every engine invariant at every step, are
deterministic for a seed, and continue identically from a checkpoint with every trader type."""

from __future__ import annotations

import tomllib
from collections import deque
from pathlib import Path

import pytest

from agents.background import TRADER_TYPES
from agents.background.switching import switching_counts
from marketsim.model import MarketModel
from marketsim.scenario import load_scenario

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
SHIPPED = ["quickstart", "rmsc04_like", "multi_asset", "impact", "stylized_facts"]
#: Short runs; multi_asset lists BANK2 and delists TECH2 early so that both happen in the run.
RUNS = {
    "quickstart": ((), 600),
    "rmsc04_like": ((), 400),
    "multi_asset": (("assets.BANK2.add_at_step=200", "assets.TECH2.remove_at_step=450"), 600),
    "impact": (("agents.execution.params.start_s=100", "agents.execution.params.end_s=400"), 500),
    "stylized_facts": ((), 900),
}


def path(name: str) -> Path:
    return SCENARIOS / f"{name}.toml"


def check_invariants(model: MarketModel) -> None:
    model.ledger._check()
    for s in model.exchange.live_slots():
        model.exchange.books[s]._check()


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_scenario_loads_and_keeps_invariants_every_step(name):
    sc = load_scenario(path(name))
    assert sc.simulation.name == name
    overrides, steps = RUNS[name]
    m = MarketModel(path(name), overrides=overrides)
    m.step_hooks.append(check_invariants)  # runs every step, after the previous step's matching
    m.run(steps)
    check_invariants(m)
    assert m.t == steps
    assert len(m.trades()) > 0
    assert m.liquidations == 0
    # no order is rejected except cancels racing a fill (UNKNOWN_ID)
    assert set(m.exchange.rejects) <= {"UNKNOWN_ID"}
    if name == "multi_asset":
        assert m.exchange.live_slots() == [0, 2, 3]
        assert (m.trades().asset == "BANK2").any()


def test_rmsc04_like_has_the_rmsc04_population():
    sc = load_scenario(path("rmsc04_like"))
    counts = {g.type: g.count for g in sc.agents}
    assert counts == {"noise": 1000, "value": 102, "momentum": 12, "market_maker": 2}
    assert sc.session.steps_per_day == 23_400
    a = sc.assets[0]
    assert a.initial_price_ticks < a.max_price_ticks


@pytest.mark.parametrize("name", SHIPPED)
def test_same_seed_same_trades(name):
    overrides, steps = RUNS[name]
    steps = min(steps, 300)
    a = MarketModel(path(name), overrides=overrides).run(steps).trades()
    b = MarketModel(path(name), overrides=overrides).run(steps).trades()
    assert len(a) > 0
    assert a.equals(b)
    c = MarketModel(path(name), seed=12345, overrides=overrides).run(steps).trades()
    assert not a.equals(c)


def all_types_scenario() -> dict:
    """The quickstart market with every trader type: + switching, institutional, latent
    liquidity, latent orders, noise driven by the activity path and execution."""
    with open(path("quickstart"), "rb") as fh:
        sc = tomllib.load(fh)
    for g in sc["agents"]:
        if g["type"] == "momentum":  # short windows: their history matters within the run
            g["params"].update(short_window=3, long_window=8, threshold_ticks=0.0)
    sc["agents"].append(
        {"type": "switching", "count": 10, "cash": 1e6, "params": {"wake_rate_per_hour": 300.0}}
    )
    sc["agents"].append(
        {
            "type": "institutional",
            "count": 3,
            "cash": 1e6,
            "params": {"idle_mean_s": 60.0, "wake_rate_per_hour": 720.0, "meta_min_lots": 20.0},
        }
    )
    sc["agents"].append(
        {
            "type": "latent_liquidity",
            "count": 3,
            "cash": 1e6,
            "params": {
                "wake_rate_per_hour": 600.0, "threshold_ticks": {"dist": "uniform", "low": 0.5,
                "high": 8.0}, "lots_per_tick": 5, "max_position_lots": 60,
                "anchor_halflife_s": 600.0,
            },
        }
    )  # fmt: skip
    sc["agents"].append(
        {
            "type": "latent_orders",
            "count": 1,
            "cash": 1e8,
            "shares": {"ABC": 100_000},
            "params": {"wake_interval_s": 3.0, "n_orders": 500, "order_lots": 3,
                       "band_ticks": 30.0, "lifetime_s": 600.0},
        }
    )  # fmt: skip
    sc["agents"].append(
        {
            "type": "noise",
            "name": "news_noise",
            "count": 5,
            "cash": 1e6,
            "shares": {"ABC": 1000},
            "params": {"market_prob": 0.3, "activity_sigma": 0.8, "activity_on": "both",
                       "activity_grid_s": 5.0},
        }
    )  # fmt: skip
    sc["agents"].append(
        {
            "type": "execution",
            "count": 1,
            "cash": 1e7,
            "latency_steps": 1,
            "params": {"algo": "pov", "start_s": 100.0, "end_s": 1100.0, "total_lots": 2000},
        }
    )
    return sc


_PLAIN = (int, float, str, bool, list, dict, tuple, deque, type(None))


def _states(m: MarketModel) -> dict:
    """Every plain attribute of every agent (saved or not: anything that changes must be)."""
    return {
        acc: repr(sorted((k, v) for k, v in vars(a).items() if isinstance(v, _PLAIN)))
        for acc, a in m.account_agent.items()
    }


def test_checkpoint_mid_run_continues_identically_with_every_trader_type(tmp_path):
    sc = all_types_scenario()
    m = MarketModel(sc)
    types = {a.type_name for a in m.account_agent.values()}
    assert types == {
        "noise",
        "value",
        "market_maker",
        "latent_liquidity",
        "latent_orders",
        "momentum",
        "execution",
        "switching",
        "institutional",
    }
    assert types <= set(TRADER_TYPES)
    m.run(400)
    ck = m.save(tmp_path / "ck.npz")
    saved_counts = list(switching_counts(m)["switching"])
    m.run(30)
    soon = _states(m)
    m.run(870)
    m2 = MarketModel.load(ck)
    # the group's counts are rebuilt from the restored agents' states
    assert switching_counts(m2)["switching"] == saved_counts
    m2.run(30)
    assert _states(m2) == soon  # also catches state that later wake-ups would overwrite
    m2.run(870)
    ta = m.trades()
    ta = ta[ta.step >= 400].reset_index(drop=True)
    tb = m2.trades().reset_index(drop=True)
    assert len(tb) > 100
    assert ta.equals(tb)
    assert _states(m) == _states(m2)
    assert switching_counts(m) == switching_counts(m2)
    assert m.rng.bit_generator.state == m2.rng.bit_generator.state
    assert m.exchange.n_orders == m2.exchange.n_orders  # same messages, cancels included
    assert m.exchange.rejects == m2.exchange.rejects
    assert (m.exchange.books[0].orders() == m2.exchange.books[0].orders()).all()
    ex = next(a for a in m2.account_agent.values() if a.type_name == "execution")
    assert ex.filled_lots > 0


def test_checkpoint_before_a_listing_continues_identically(tmp_path):
    ov = ("assets.BANK2.add_at_step=300", "assets.TECH2.remove_at_step=600")
    m = MarketModel(path("multi_asset"), overrides=ov)
    m.run(200)
    ck = m.save(tmp_path / "ck.npz")
    m.run(500)
    m2 = MarketModel.load(ck)
    m2.run(500)
    ta = m.trades()
    assert ta[ta.step >= 200].reset_index(drop=True).equals(m2.trades().reset_index(drop=True))


def test_endowment_in_a_later_listed_asset_arrives_at_the_listing(tmp_path):
    """mm_bank holds 5000 BANK2 from the listing on (not before); shares stay conserved, and a
    checkpoint taken before the listing still delivers them."""
    ov = ("assets.BANK2.add_at_step=300", "assets.TECH2.remove_at_step=600")
    m = MarketModel(path("multi_asset"), overrides=ov)
    bank = next(a for a in m.account_agent.values() if a.group == "mm_bank")
    m.run(100)
    assert m.exchange.books[3] is None and m.ledger._positions[bank.account, 3] == 0
    ck = m.save(tmp_path / "ck.npz")
    for model in (m, MarketModel.load(ck)):
        model.step_hooks.append(check_invariants)
        model.run(201)  # the listing step (300) has run
        slot = model.exchange.slot_of("BANK2")
        assert model.ledger.issued_shares(slot) == 5000
        acc = next(a for a in model.account_agent.values() if a.group == "mm_bank").account
        assert abs(int(model.ledger._positions[acc, slot]) - 5000) <= 200  # minus what it sold
        model.ledger._check()


def _restore_and_run(m: MarketModel, st: dict, steps: int):
    m.set_state(st)
    n = len(m.trades())
    m.run(steps)
    return m.trades().iloc[n:].reset_index(drop=True), _states(m)


def test_in_memory_restore_does_not_alias_agent_state():
    m = MarketModel(all_types_scenario())
    m.run(400)
    st = m.get_state()
    n = len(m.trades())
    m.run(300)
    first = m.trades().iloc[n:].reset_index(drop=True), _states(m)
    again = _restore_and_run(m, st, 300)
    assert len(first[0]) > 100
    assert again[0].equals(first[0]) and again[1] == first[1]


def test_in_memory_state_can_be_restored_twice():
    m = MarketModel(all_types_scenario())
    m.run(400)
    st = m.get_state()
    first = _restore_and_run(m, st, 300)
    second = _restore_and_run(m, st, 300)
    assert second[0].equals(first[0]) and second[1] == first[1]
