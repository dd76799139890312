"""Typed options of an RL agent (the ``params`` table of a ``[[rl_agents]]`` group)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from marketsim.errors import ConfigError


class RLParams(BaseModel):
    """Per-group RL options. Unknown keys are errors (typos are reported, not dropped)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    execution: Literal["market", "ioc", "sliced"] = Field(
        "market",
        description="How 'weights' actions trade: market orders, IOC limits at mid +/- "
        "ioc_offset_ticks, or TWAP slices over the decision interval.",
    )
    ioc_offset_ticks: int = Field(2, ge=0, description="IOC limit distance beyond the touch.")
    max_order_lots: int = Field(
        100, ge=1, description="Size of a full-scale 'orders' or 'quotes' action."
    )
    max_offset_ticks: int = Field(
        10, ge=1, description="Price offset of a full-scale 'orders' or 'quotes' action."
    )
    trade_lots: int = Field(10, ge=1, description="Lots per buy/sell in 'discrete' mode.")
    min_trade_lots: int = Field(1, ge=1, description="Weight changes below this are ignored.")
    max_weight: float = Field(1.0, gt=0, description="Cap on |weight| of any single asset.")
    sector_caps: dict[str, float] = Field(
        default_factory=dict, description="Cap on the gross weight of each sector, by name."
    )
    team: str = Field("", description="Team sharing a risk budget ('' = none).")
    reward_params: dict[str, float] = Field(
        default_factory=dict, description="Keyword arguments of the reward (e.g. lam, eta)."
    )
    reward_scale: float = Field(
        1.0, gt=0, description="Multiplier of the reward (log returns per step are ~1e-4)."
    )
    reward_filter: Literal["none", "trading_only", "valid_only"] = Field(
        "none",
        description="trading_only: zero reward on steps where the agent did not trade; "
        "valid_only: zero reward when a live asset has no mid (missing data).",
    )
    exogenous: list[Literal["fundamental"]] = Field(
        default_factory=list, description="Plug-in features to observe per asset."
    )
    fundamental_noise: float = Field(
        0.0,
        ge=0,
        description="Std of the noise on the observed fundamental (log units); the "
        "feature is 100 * (log(fundamental / mid) + noise), in percent.",
    )
    signal_lead_steps: int = Field(
        0,
        ge=0,
        description="The observed fundamental is the value this many steps ahead "
        "(an early signal; 0 = current value). Requires a feed that can look ahead.",
    )
    observation_source: Literal["live", "window_replay"] = Field(
        "live",
        description="live: 'market' is the window of live book features (F = 8); "
        "window_replay: 'market' is served from the prepared .npy windows (F = number of "
        "prepared fields) at the historical fundamental's current bar; orders still go "
        "through the book. Requires fundamental.kind = 'historical'.",
    )
    window_replay_dir: str = Field(
        "", description="Prepared directory for window_replay ('' = the fundamental's path)."
    )
    window_replay_fields: list[str] = Field(
        default_factory=list, description="Prepared fields served, in order ([] = all)."
    )


def parse_rl_params(group_name: str, params: dict[str, Any]) -> RLParams:
    """Validate a group's ``params`` with messages naming ``rl_agents[<name>].params.<key>``."""
    try:
        return RLParams.model_validate(params)
    except ValidationError as e:
        lines = []
        for err in e.errors():
            key = ".".join(str(x) for x in err["loc"])
            allowed = sorted(RLParams.model_fields) if err["type"] == "extra_forbidden" else None
            msg = err["msg"] if allowed is None else f"unknown key; valid keys: {allowed}"
            lines.append(f"  rl_agents[{group_name}].params.{key} = {err.get('input')!r}: {msg}")
        raise ConfigError("invalid RL agent params:\n" + "\n".join(lines)) from None
