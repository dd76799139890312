"""Scenario files: the validated schema of a run, its loader, command-line overrides and hash.

A scenario is a TOML file (see ``scenarios/``) with the tables ``[simulation]``, ``[exchange]``,
``[[assets]]``, ``[fundamental]``, ``[[agents]]`` and ``[[rl_agents]]``. :func:`load_scenario`
reads it (or a dict, or an existing :class:`Scenario`), applies ``key=value`` overrides and
validates it; every problem is reported at once in one :class:`~marketsim.errors.ConfigError`,
one line per problem, each naming the key path, the bad value and what is allowed::

    scenario file quickstart.toml is invalid (2 errors):
      agents[1].count = -5: must be >= 0
      simulation.close = 09:00:00: must be after open (09:30:00)

Agent types register the pydantic model of their ``[agents.params]`` table with
:func:`register_agent_params`; ``agents.background`` is imported on first use so that its
types are known.

Example:
    >>> sc = load_scenario({"assets": [{"symbol": "ABC"}]}, ["simulation.seed=7"])
    >>> sc.simulation.seed, sc.session.steps_per_day
    (7, 23400)
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib
import json
import logging
import os
import tomllib
from collections.abc import Iterable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from marketsim import config_paths
from marketsim.config_paths import Issues, reason
from marketsim.errors import ConfigError
from marketsim.session import Session, session_ns, step_ns_of

__all__ = [
    "AGENT_PARAMS",
    "FUNDAMENTAL_KINDS",
    "AgentConfig",
    "AssetConfig",
    "ExchangeConfig",
    "FundamentalConfig",
    "RLAgentConfig",
    "Scenario",
    "SimulationConfig",
    "apply_overrides",
    "format_validation_error",
    "load_scenario",
    "register_agent_params",
]

logger = logging.getLogger(__name__)

# ---------------------------------------------------------------- registries

#: Params model of each agent type, by the ``type`` name used in ``[[agents]]``.
#: Filled by :func:`register_agent_params` (the modules of ``agents.background`` call it).
AGENT_PARAMS: dict[str, type[BaseModel]] = {}

#: Known ``[fundamental].kind`` values.
FUNDAMENTAL_KINDS: tuple[str, ...] = ("mean_reverting", "gbm", "regime_switching", "historical")

_agent_types_loaded = False


def register_agent_params(type_name: str, params_model: type[BaseModel]) -> type[BaseModel]:
    """Register the params model of agent type ``type_name`` for scenario validation. O(1).

    The model must forbid unknown keys (``model_config = ConfigDict(extra="forbid")``) so that
    typos in scenario files are reported instead of silently dropped. Numeric fields should be
    annotated :data:`marketsim.params.Num` / ``IntNum`` to allow per-agent distributions.

    Returns:
        ``params_model``.

    Raises:
        ConfigError: bad name or model, or the name is taken by a different model.
    """
    if not isinstance(type_name, str) or not type_name:
        raise ConfigError(f"type_name = {type_name!r}: must be a non-empty string")
    if not (isinstance(params_model, type) and issubclass(params_model, BaseModel)):
        raise ConfigError(f"params_model = {params_model!r}: must be a pydantic BaseModel class")
    extra = params_model.model_config.get("extra")
    if extra != "forbid":
        raise ConfigError(
            f"{params_model.__name__}.model_config['extra'] = {extra!r}: must be 'forbid' "
            "so that unknown scenario keys are reported, not dropped"
        )
    old = AGENT_PARAMS.get(type_name)
    same = old is not None and (old.__module__, old.__qualname__) == (
        params_model.__module__,
        params_model.__qualname__,
    )
    if old is not None and not same:
        raise ConfigError(
            f"agent type {type_name!r} is already registered with {old.__module__}."
            f"{old.__qualname__}; pick another type name"
        )
    AGENT_PARAMS[type_name] = params_model
    return params_model


def _ensure_agent_types_loaded() -> None:
    """Import ``agents.background`` once so that its agent types register. O(1) after that.

    A missing package (early in the project, or a stripped-down install) is not an error:
    validation goes on with whatever is registered. Errors inside the package propagate.
    """
    global _agent_types_loaded
    if _agent_types_loaded:
        return
    try:
        importlib.import_module("agents.background")
    except ModuleNotFoundError as exc:
        if exc.name not in ("agents", "agents.background"):
            raise
        logger.debug("agents.background not importable; known agent types: %s", AGENT_PARAMS)
    _agent_types_loaded = True


# ---------------------------------------------------------------- schema


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class SimulationConfig(_Config):
    """``[simulation]``: clock, calendar, seed and recording cadence."""

    name: str = Field("scenario", min_length=1, description="Run name used in logs and reports.")
    seed: int = Field(0, ge=0, description="Seed of every random generator of the run.")
    step_seconds: float = Field(
        1.0, gt=0, description="Simulated seconds per step; must cut the session into whole steps."
    )
    start_date: dt.date = Field(
        dt.date(2024, 1, 2), description="First date; trading days are weekdays from here on."
    )
    days: int = Field(1, ge=1, description="Number of trading days.")
    open: dt.time = Field(dt.time(9, 30), description="Session open, market-local time.")
    close: dt.time = Field(dt.time(16), description="Session close, after open on the same day.")
    record_every: int = Field(60, ge=1, description="Steps between account/position snapshots.")
    max_assets: int = Field(
        8, ge=1, description="Asset slots (fixed RL space size); >= the number of assets."
    )
    quotes_every: int = Field(1, ge=0, description="Steps between top-of-book rows; 0 = none.")
    record_orders: bool = Field(False, description="Record every order sent to the exchange.")
    l2_every: int = Field(
        0, ge=0, description="Steps between order-book depth snapshots; 0 = none."
    )

    @field_validator("open", "close")
    @classmethod
    def _naive(cls, t: dt.time) -> dt.time:
        if t.tzinfo is not None:
            raise reason("must be a market-local time without a time zone")
        return t

    @model_validator(mode="after")
    def _check_session(self) -> SimulationConfig:
        issues = Issues("SimulationConfig")
        length = session_ns(self.open, self.close)
        if length <= 0:
            issues.add(("close",), self.close, f"must be after open ({self.open.isoformat()})")
        elif step_ns_of(self.step_seconds) < 1 or length % step_ns_of(self.step_seconds):
            issues.add(
                ("step_seconds",),
                self.step_seconds,
                f"must divide the session ({length / 1e9:g} s from open to close) into whole steps",
            )
        issues.raise_any()
        return self

    @property
    def session(self) -> Session:
        """The step clock (see :class:`marketsim.session.Session`). Cached; O(1)."""
        return _session(self.start_date, self.days, self.open, self.close, self.step_seconds)


@lru_cache(maxsize=64)
def _session(start: dt.date, days: int, o: dt.time, c: dt.time, step: float) -> Session:
    return Session(start, days, o, c, step)


class ExchangeConfig(_Config):
    """``[exchange]``: fees, margin and market-wide trading rules."""

    maker_fee_bps: float = Field(
        0.0, ge=-100, le=100, description="Fee on passive fills in bps; negative = rebate."
    )
    taker_fee_bps: float = Field(0.0, ge=0, le=100, description="Fee on aggressive fills in bps.")
    maintenance_margin: float = Field(
        0.05, ge=0, le=1, description="Equity / gross exposure below which accounts are liquidated."
    )
    default_leverage_limit: float = Field(
        10.0, ge=1, description="Max gross exposure / equity unless an agent group overrides it."
    )
    short_selling: bool = Field(True, description="Market-wide rule; false = short-sale ban.")
    position_limit_lots: int = Field(
        0, ge=0, description="Cap on |position| per account and asset in lots; 0 = none."
    )

    @model_validator(mode="after")
    def _check_margin(self) -> ExchangeConfig:
        if self.maintenance_margin * self.default_leverage_limit > 1:
            issues = Issues("ExchangeConfig")
            issues.add(
                ("maintenance_margin",),
                self.maintenance_margin,
                f"must be <= 1/default_leverage_limit ({1 / self.default_leverage_limit:g}), "
                "or accounts at the leverage limit are already below maintenance margin",
            )
            issues.raise_any()
        return self


class AssetConfig(_Config):
    """One ``[[assets]]`` entry: an instrument with its own order book."""

    symbol: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="Unique ticker.")
    tick_size: float = Field(0.01, gt=0, description="Price increment in currency.")
    lot_size: int = Field(1, ge=1, description="Shares per lot (quantities are in lots).")
    initial_price: float = Field(100.0, gt=0, description="Initial price in currency.")
    sector: str = Field("", description="Sector label (sector correlations, reports).")
    max_price_ticks: int = Field(
        65536, ge=16, le=2**26, description="Book ladder size: prices are 1..max_price_ticks-1."
    )
    add_at_step: int = Field(0, ge=0, description="Step at which the asset starts trading.")
    remove_at_step: int = Field(-1, ge=-1, description="Step at which it is delisted; -1 = never.")

    @model_validator(mode="after")
    def _check_ranges(self) -> AssetConfig:
        issues = Issues("AssetConfig")
        ticks = self.initial_price / self.tick_size
        if not 1 <= round(ticks) < self.max_price_ticks:
            issues.add(
                ("initial_price",),
                self.initial_price,
                f"is {ticks:g} ticks of {self.tick_size:g}; must be within [1, max_price_ticks = "
                f"{self.max_price_ticks}) ticks: change tick_size or max_price_ticks",
            )
        if self.remove_at_step != -1 and self.remove_at_step <= self.add_at_step:
            issues.add(
                ("remove_at_step",),
                self.remove_at_step,
                f"must be -1 (never) or > add_at_step ({self.add_at_step})",
            )
        issues.raise_any()
        return self

    @property
    def initial_price_ticks(self) -> int:
        """``initial_price`` in integer ticks (rounded to the nearest tick)."""
        return round(self.initial_price / self.tick_size)


_Corr = Annotated[float, Field(ge=-1, le=1)]


class FundamentalConfig(_Config):
    """``[fundamental]``: the exogenous value process and its cross-asset correlation."""

    kind: str = Field("mean_reverting", description=f"One of {', '.join(FUNDAMENTAL_KINDS)}.")
    params: dict[str, Any] = Field(
        default_factory=dict, description="Process parameters, validated by the feed."
    )
    correlation: list[list[_Corr]] | None = Field(
        None, description="n_assets x n_assets correlation matrix, in [[assets]] order."
    )
    intra_sector_corr: _Corr | None = Field(
        None, description="Correlation of assets in the same sector (instead of correlation)."
    )
    inter_sector_corr: _Corr | None = Field(
        None, description="Correlation of assets in different sectors; default 0."
    )

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, kind: str) -> str:
        if kind not in FUNDAMENTAL_KINDS:
            raise reason(f"unknown kind; known kinds: {', '.join(FUNDAMENTAL_KINDS)}")
        return kind

    @model_validator(mode="after")
    def _check_exclusive(self) -> FundamentalConfig:
        issues = Issues("FundamentalConfig")
        sectored = self.intra_sector_corr is not None or self.inter_sector_corr is not None
        if self.correlation is not None and sectored:
            key = "intra_sector_corr" if self.intra_sector_corr is not None else "inter_sector_corr"
            issues.add((key,), getattr(self, key), "cannot be combined with correlation; use one")
        elif self.inter_sector_corr is not None and self.intra_sector_corr is None:
            issues.add(
                ("inter_sector_corr",),
                self.inter_sector_corr,
                "needs intra_sector_corr as well",
            )
        issues.raise_any()
        return self


class _AccountConfig(_Config):
    """Fields shared by scripted and RL agent groups: endowment, latency, trading rights."""

    count: int = Field(1, ge=0, description="Number of agents in the group; 0 disables it.")
    cash: float = Field(0.0, ge=0, description="Cash endowment per agent in currency.")
    shares: dict[str, Annotated[int, Field(ge=0)]] = Field(
        default_factory=dict, description="Endowment per agent in lots, by symbol."
    )
    latency_steps: int = Field(0, ge=0, description="Order-entry latency in steps.")
    latency_jitter_steps: int = Field(
        0, ge=0, description="Extra order-entry delay, uniform in 0..jitter steps."
    )
    md_latency_steps: int = Field(0, ge=0, description="Market-data latency in steps.")
    leverage_limit: float | None = Field(
        None, ge=1, description="Max gross exposure / equity; default exchange's."
    )
    allow_short: bool = Field(True, description="May go short (if the exchange allows it).")
    assets: list[str] | None = Field(
        None, min_length=1, description="Symbols the group trades; default all."
    )


class AgentConfig(_AccountConfig):
    """One ``[[agents]]`` group of scripted background agents of one type."""

    type: str = Field(description="Registered agent type name (see register_agent_params).")
    name: str = Field(
        min_length=1, description="Label used in reports, unique among groups; default = type."
    )
    params: Any = Field(
        default_factory=dict,
        validate_default=True,
        description="Type-specific parameters, validated by the type's params model.",
    )

    @model_validator(mode="before")
    @classmethod
    def _default_name(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and data.get("name") is None:
            # A missing or bad type is reported under ``type``; don't report ``name`` as well.
            type_name = data.get("type")
            data = {**data, "name": type_name if isinstance(type_name, str) and type_name else "?"}
        return data

    @field_validator("type")
    @classmethod
    def _known_type(cls, type_name: str) -> str:
        _ensure_agent_types_loaded()
        if type_name not in AGENT_PARAMS:
            known = ", ".join(sorted(AGENT_PARAMS)) or "(none registered)"
            raise reason(f"unknown agent type; known types: {known}")
        return type_name

    @field_validator("params")
    @classmethod
    def _typed_params(cls, params: Any, info: ValidationInfo) -> Any:
        model = AGENT_PARAMS.get(info.data.get("type", ""))
        return params if model is None else model.model_validate(params)

    @classmethod
    def _schema_fields(cls, node: Mapping[str, Any]) -> dict[str, Any]:
        """``params`` is the registered model of the group's ``type`` (for config_paths)."""
        type_name = node.get("type")
        model = AGENT_PARAMS.get(type_name) if isinstance(type_name, str) else None
        return {"params": model or dict[str, Any]}


class RLAgentConfig(_AccountConfig):
    """One ``[[rl_agents]]`` group of learning agents (checked further by the RL environment)."""

    name: str = Field(
        "rl", min_length=1, description="Agent id, or the id prefix when count > 1 (name_0, ...)."
    )
    action_mode: Literal["weights", "orders", "quotes", "discrete"] = Field(
        "weights", description="How actions map to orders."
    )
    reward: str = Field("log_return", min_length=1, description="Reward name or dotted path.")
    decision_interval_steps: int = Field(1, ge=1, description="Steps between decisions.")
    window: int = Field(32, ge=1, description="Observation window length in feature rows.")
    params: dict[str, Any] = Field(default_factory=dict, description="Free-form options.")

    def agent_names(self) -> list[str]:
        """Agent ids of the group: ``[name]`` when count == 1, else ``name_0..name_{n-1}``."""
        if self.count == 1:
            return [self.name]
        return [f"{self.name}_{i}" for i in range(self.count)]


class OrderFlowReplayConfig(_Config):
    """``[replay.orderflow]``: LOBSTER messages replayed into one asset's book
    (see :mod:`marketsim.replay`)."""

    path: str = Field(min_length=1, description="LOBSTER message file (relative to the cwd).")
    asset: str = Field(min_length=1, description="Scenario asset the messages are for.")
    step_seconds: float | None = Field(
        None, gt=0, description="Seconds per model step; default simulation.step_seconds."
    )
    executions: Literal["marketable", "reduce"] = Field(
        "marketable", description="Executions as IOCs that trade (marketable) or as reductions."
    )
    start_s: float | None = Field(
        None, ge=0, description="Seconds after midnight of model step 0; default the open."
    )
    cash: float = Field(1e9, ge=0, description="Cash endowment of each replay account.")
    shares: int = Field(10_000_000, ge=0, description="Lots endowed to each replay account.")


class ReplayConfig(_Config):
    """``[replay]``: exogenous order flow sent into the books (optional table)."""

    orderflow: OrderFlowReplayConfig | None = Field(
        None, description="LOBSTER order-flow replay into one asset's book."
    )


class Scenario(_Config):
    """A validated scenario. Build it with :func:`load_scenario`. Immutable.

    Attributes:
        simulation, exchange, assets, fundamental, agents, rl_agents: the file's tables.
    """

    simulation: SimulationConfig = Field(default_factory=SimulationConfig, description="Clock.")
    exchange: ExchangeConfig = Field(default_factory=ExchangeConfig, description="Exchange rules.")
    assets: list[AssetConfig] = Field(min_length=1, description="Traded instruments.")
    fundamental: FundamentalConfig = Field(
        default_factory=FundamentalConfig, description="Exogenous value process."
    )
    agents: list[AgentConfig] = Field(default_factory=list, description="Scripted agent groups.")
    rl_agents: list[RLAgentConfig] = Field(default_factory=list, description="RL agent groups.")
    replay: ReplayConfig | None = Field(
        None, description="Optional order-flow replay (see marketsim.replay)."
    )

    @model_validator(mode="after")
    def _cross_check(self) -> Scenario:
        issues = Issues("Scenario")
        index: dict[str, int] = {}
        for i, asset in enumerate(self.assets):
            if asset.symbol in index:
                issues.add(
                    ("assets", i, "symbol"),
                    asset.symbol,
                    f"duplicates assets[{index[asset.symbol]}].symbol; symbols must be unique",
                )
            index.setdefault(asset.symbol, i)
            if asset.add_at_step >= self.session.total_steps:
                issues.add(
                    ("assets", i, "add_at_step"),
                    asset.add_at_step,
                    f"must be < total_steps ({self.session.total_steps}) or it never trades",
                )
        if self.simulation.max_assets < len(self.assets):
            issues.add(
                ("simulation", "max_assets"),
                self.simulation.max_assets,
                f"must be >= the number of assets ({len(self.assets)})",
            )
        self._check_correlation(issues)
        self._check_accounts(issues, sorted(index))
        issues.raise_any()
        return self

    def _check_correlation(self, issues: Issues) -> None:
        f, n = self.fundamental, len(self.assets)
        if f.correlation is not None:
            loc: tuple[str | int, ...] = ("fundamental", "correlation")
            if len(f.correlation) != n or any(len(row) != n for row in f.correlation):
                shape = f"{len(f.correlation)} rows of lengths {[len(r) for r in f.correlation]}"
                issues.add(
                    loc, f.correlation, f"must be {n} x {n} (one row per asset), got {shape}"
                )
                return
            c = np.asarray(f.correlation)
            for i in range(n):
                if c[i, i] != 1.0:
                    issues.add((*loc, i, i), float(c[i, i]), "diagonal entries must be 1")
                for j in range(i + 1, n):
                    if c[i, j] != c[j, i]:
                        text = f"must equal [{j}][{i}] ({c[j, i]:g}): the matrix must be symmetric"
                        issues.add((*loc, i, j), float(c[i, j]), text)
            if issues.items:
                return
        elif f.intra_sector_corr is not None:
            key = "intra_sector_corr" if f.inter_sector_corr is None else "inter_sector_corr"
            loc = ("fundamental", key)
        else:
            return
        low = float(np.linalg.eigvalsh(self.correlation_matrix()).min())
        if low < -1e-9:
            issues.add(
                loc,
                getattr(f, loc[-1]),
                f"gives a correlation matrix that is not positive semi-definite (smallest "
                f"eigenvalue {low:.3g})",
            )

    def _check_accounts(self, issues: Issues, symbols: list[str]) -> None:
        known = ", ".join(symbols)
        names: dict[str, str] = {}
        mm = self.exchange.maintenance_margin
        groups = (("agents", self.agents), ("rl_agents", self.rl_agents))
        for key, group in groups:
            for i, cfg in enumerate(group):
                for sym, lots in cfg.shares.items():
                    if sym not in symbols:
                        issues.add((key, i, "shares", sym), lots, f"unknown symbol; known: {known}")
                seen: set[str] = set()
                for j, sym in enumerate(cfg.assets or ()):
                    if sym not in symbols:
                        issues.add((key, i, "assets", j), sym, f"unknown symbol; known: {known}")
                    elif sym in seen:
                        issues.add((key, i, "assets", j), sym, "is listed twice")
                    seen.add(sym)
                if cfg.name in names:
                    issues.add(
                        (key, i, "name"),
                        cfg.name,
                        f"duplicates {names[cfg.name]}.name; give each group a distinct name",
                    )
                names.setdefault(cfg.name, f"{key}[{i}]")
                if cfg.leverage_limit is not None and cfg.leverage_limit * mm > 1:
                    issues.add(
                        (key, i, "leverage_limit"),
                        cfg.leverage_limit,
                        f"must be <= 1/exchange.maintenance_margin ({1 / mm:g}), or accounts at "
                        "the limit are already below maintenance margin",
                    )

    # -------------------------------------------------------------- helpers

    @property
    def session(self) -> Session:
        """The step clock: ``steps_per_day``, ``total_steps``, ``step_to_time_ns``, ..."""
        return self.simulation.session

    @property
    def symbols(self) -> list[str]:
        """Symbols in ``[[assets]]`` order (= asset slot order)."""
        return [a.symbol for a in self.assets]

    def asset(self, symbol: str) -> AssetConfig:
        """The asset with ``symbol``. O(n_assets). Raises ConfigError listing known symbols."""
        for a in self.assets:
            if a.symbol == symbol:
                return a
        raise ConfigError(f"symbol = {symbol!r}: unknown; known: {', '.join(self.symbols)}")

    def correlation_matrix(self) -> np.ndarray:
        """Correlation of the fundamental shocks across assets, ``(n, n)`` float64. O(n^2).

        The explicit ``correlation``, else the sector model (``intra_sector_corr`` within a
        sector, ``inter_sector_corr`` (default 0) across), else the identity.
        """
        f, n = self.fundamental, len(self.assets)
        if f.correlation is not None:
            return np.array(f.correlation, dtype=np.float64)
        if f.intra_sector_corr is None:
            return np.eye(n)
        sectors = np.array([a.sector for a in self.assets])
        same = sectors[:, None] == sectors[None, :]
        c = np.where(same, f.intra_sector_corr, f.inter_sector_corr or 0.0)
        np.fill_diagonal(c, 1.0)
        return c.astype(np.float64)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict of the full validated content (defaults filled in). O(size)."""
        d = self.model_dump(mode="json")
        if d.get("replay") is None:  # absent table: keep the hashes of existing scenarios
            d.pop("replay", None)
        return d

    def hash(self) -> str:
        """First 16 hex digits of the sha256 of the canonical JSON of :meth:`to_dict`. O(size).

        Identical for the same content, whatever the key order or omitted defaults in the file.
        """
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]

    @classmethod
    def json_schema(cls) -> dict[str, Any]:
        """JSON schema of scenario files, with each registered agent type's params. O(types)."""
        _ensure_agent_types_loaded()
        schema = cls.model_json_schema()
        defs = schema.setdefault("$defs", {})
        rules = []
        for type_name, model in sorted(AGENT_PARAMS.items()):
            sub = model.model_json_schema(ref_template="#/$defs/{model}")
            for key, value in sub.pop("$defs", {}).items():
                defs.setdefault(key, value)
            ref = f"AgentParams_{type_name}"
            defs[ref] = sub
            rules.append(
                {
                    "if": {"properties": {"type": {"const": type_name}}, "required": ["type"]},
                    "then": {"properties": {"params": {"$ref": f"#/$defs/{ref}"}}},
                }
            )
        if rules:
            defs["AgentConfig"]["allOf"] = rules
            defs["AgentConfig"]["properties"]["type"]["enum"] = sorted(AGENT_PARAMS)
        return schema


# ---------------------------------------------------------------- loading


def apply_overrides(data: Mapping[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Apply ``key=value`` overrides to raw scenario data; returns a new dict. O(size).

    Keys are dotted paths through the schema; list entries are picked by index
    (``agents.0.count=10``), ``[[assets]]`` also by symbol (``assets.ABC.tick_size=0.05``,
    ``assets.BRK.B.lot_size=10``) and ``[[agents]]`` / ``[[rl_agents]]`` by name (default:
    type) (``agents.noise.params.wake_rate_per_hour=2``). Values are parsed as TOML values,
    else kept as strings (``assets.ABC.sector=tech``). Keys the schema knows may be set even
    when the file omits them. The result is validated by :func:`load_scenario`, not here.

    Raises:
        ConfigError: malformed override, unknown key (the message names it and lists the
            valid keys at that level), or an index / name that matches no entry.
    """
    _ensure_agent_types_loaded()
    return config_paths.apply_overrides(Scenario, data, overrides)


def format_validation_error(
    err: ValidationError, data: Any = None, source: str | os.PathLike[str] | None = None
) -> str:
    """The ConfigError message for a ValidationError of :class:`Scenario`. O(errors)."""
    return config_paths.format_validation_error(err, Scenario, data, source, what="scenario")


def load_scenario(
    source: str | os.PathLike[str] | Mapping[str, Any] | Scenario,
    overrides: Iterable[str] = (),
) -> Scenario:
    """Read, override and validate a scenario. O(size of the scenario).

    Args:
        source: path of a ``.toml`` file, a dict of the same structure, or a Scenario.
        overrides: ``key=value`` strings, see :func:`apply_overrides`.

    Raises:
        ConfigError: unreadable file, invalid TOML, bad override, or invalid content (all
            problems listed, one per line, with the file name).

    Example:
        >>> load_scenario({"assets": [{"symbol": "ABC"}]}).symbols
        ['ABC']
    """
    origin: Path | None = None
    if isinstance(source, Scenario):
        if not overrides:
            return source
        data: Any = source.to_dict()
    elif isinstance(source, Mapping):
        data = source
    elif isinstance(source, str | os.PathLike):
        origin = Path(source)
        try:
            text = origin.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(f"scenario file {origin} not found") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"scenario file {origin} cannot be read: {exc}") from None
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"scenario file {origin} is not valid TOML: {exc}") from None
    else:
        raise ConfigError(
            f"source = {source!r}: must be a path to a .toml file, a dict or a Scenario"
        )
    if overrides:
        data = apply_overrides(data, overrides)
    _ensure_agent_types_loaded()
    try:
        return Scenario.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, data, origin)) from None
