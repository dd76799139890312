"""Key paths through pydantic config schemas: readable error messages and ``key=value`` overrides.

Generic over the root model (the scenario uses it with :class:`marketsim.scenario.Scenario`):

* :func:`format_validation_error` turns a pydantic ``ValidationError`` into one line per
  error, ``agents[1].count = -5: must be >= 0``, and lists the valid keys next to an unknown
  key.
* :func:`apply_overrides` sets ``agents.0.count=10``-style overrides in raw (dict) config
  data, checking each key against the schema.
* :func:`reason` and :class:`Issues` build pydantic errors with a literal message at a key
  path, for cross-field validators.

A model whose field types depend on the data (an agent group's ``params`` model depends on
its ``type``) declares a classmethod ``_schema_fields(node: Mapping) -> dict[str, Any]``
returning the annotations to use in place of the static ones.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import os
import re
import tomllib
import types
from collections.abc import Iterable, Mapping
from typing import Annotated, Any, Union, get_args, get_origin

import numpy as np
from pydantic import BaseModel, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

from marketsim.errors import ConfigError

__all__ = [
    "Issues",
    "apply_overrides",
    "format_validation_error",
    "key_path",
    "reason",
    "show_value",
    "valid_keys_at",
]


def reason(text: str) -> PydanticCustomError:
    """A pydantic error (type ``config``) whose message is ``text`` verbatim. O(1)."""
    return PydanticCustomError("config", "{reason}", {"reason": text})


class Issues:
    """Collects problems at key paths and raises them together as one ValidationError.

    Raised inside a validator, the paths are taken relative to the model being validated.

    Example:
        >>> issues = Issues("Scenario")
        >>> issues.add(("simulation", "max_assets"), 1, "must be >= the number of assets (2)")
        >>> issues.raise_any()  # doctest: +SKIP
    """

    def __init__(self, title: str):
        self.title = title
        self.items: list[InitErrorDetails] = []

    def add(self, loc: tuple[str | int, ...], value: Any, text: str) -> None:
        """Record that the value at ``loc`` is bad; ``text`` says what is allowed."""
        self.items.append(InitErrorDetails(type=reason(text), loc=loc, input=value))

    def raise_any(self) -> None:
        """Raise a ValidationError holding every recorded problem, if there is any."""
        if self.items:
            raise ValidationError.from_exception_data(self.title, self.items)


# ---------------------------------------------------------------- schema walking


def _strip(ann: Any) -> Any:
    """Remove ``Annotated`` and ``Optional`` wrappers from a type annotation."""
    while True:
        origin = get_origin(ann)
        if origin is Annotated:
            ann = get_args(ann)[0]
            continue
        if origin in (Union, types.UnionType):
            args = [a for a in get_args(ann) if a is not type(None)]
            if len(args) == 1:
                ann = args[0]
                continue
        return ann


def _as_model(ann: Any) -> type[BaseModel] | None:
    ann = _strip(ann)
    return ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None


def _fields_of(model: type[BaseModel], node: Any) -> dict[str, Any]:
    """Field name -> annotation of ``model`` for the raw table ``node``."""
    fields = {name: f.annotation for name, f in model.model_fields.items()}
    hook = getattr(model, "_schema_fields", None)
    if hook is not None:
        fields.update(hook(node if isinstance(node, Mapping) else {}))
    return fields


def valid_keys_at(root: type[BaseModel], loc: tuple[str | int, ...], data: Any) -> list[str] | None:
    """The schema's keys of the table at ``loc`` in ``data``; None when free-form. O(len(loc))."""
    ann: Any = root
    node = data
    for part in loc:
        model, origin = _as_model(ann), get_origin(_strip(ann))
        if model is not None and isinstance(part, str):
            fields = _fields_of(model, node)
            if part not in fields:
                return None
            ann = fields[part]
            node = node.get(part) if isinstance(node, Mapping) else None
        elif origin is list and isinstance(part, int):
            ann = get_args(_strip(ann))[0]
            node = node[part] if isinstance(node, list) and 0 <= part < len(node) else None
        elif origin is dict:
            ann = get_args(_strip(ann))[1]
            node = node.get(part) if isinstance(node, Mapping) else None
        else:
            return None
    model = _as_model(ann)
    return sorted(_fields_of(model, node)) if model is not None else None


# ---------------------------------------------------------------- error messages

_EXPLAIN = {
    "missing": "required key is missing",
    "greater_than": "must be > {gt}",
    "greater_than_equal": "must be >= {ge}",
    "less_than": "must be < {lt}",
    "less_than_equal": "must be <= {le}",
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "int_from_float": "must be a whole number",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "finite_number": "must be a finite number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "string_type": "must be a string",
    "string_pattern_mismatch": "must match the pattern {pattern}",
    "list_type": "must be a list",
    "too_short": "must have at least {min_length} item(s)",
    "too_long": "must have at most {max_length} item(s)",
    "dict_type": "must be a table",
    "model_type": "must be a table",
    "model_attributes_type": "must be a table",
    "literal_error": "must be one of {expected}",
    "date_type": "must be a date like 2024-01-02",
    "date_parsing": "must be a date like 2024-01-02",
    "date_from_datetime_parsing": "must be a date like 2024-01-02",
    "date_from_datetime_inexact": "must be a date like 2024-01-02 (no time of day)",
    "time_type": 'must be a time like "09:30"',
    "time_parsing": 'must be a time like "09:30"',
}
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def key_path(loc: tuple[str | int, ...]) -> str:
    """``("agents", 1, "count")`` -> ``agents[1].count``; odd keys quoted. O(len(loc))."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _IDENT.fullmatch(part):
            out += f".{part}" if out else part
        else:
            out += f"[{json.dumps(part)}]"
    return out or "(top level)"


def show_value(value: Any) -> str:
    """A short TOML-like rendering of a value for messages (at most 80 characters). O(size)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    if isinstance(value, dict | list | tuple):
        text = json.dumps(value, default=str, ensure_ascii=False)
    else:
        text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _tidy(value: Any) -> Any:
    """Bounds as written: pydantic turns ``ge=0`` of a float field into 0.0; show 0."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return int(value)
    return value


def _explain(error: Any, root: type[BaseModel], data: Any) -> str:
    kind, ctx = error["type"], error.get("ctx") or {}
    if kind == "extra_forbidden":
        keys = valid_keys_at(root, tuple(error["loc"][:-1]), data)
        return "unknown key" + (f"; valid keys: {', '.join(keys)}" if keys else "")
    if kind == "string_too_short" and ctx.get("min_length") == 1:
        return "must not be empty"
    if kind == "value_error":
        return str(error["msg"]).removeprefix("Value error, ")
    if kind in _EXPLAIN:
        try:
            return _EXPLAIN[kind].format(**{k: _tidy(v) for k, v in ctx.items()})
        except (KeyError, IndexError):
            pass
    msg = str(error["msg"])
    return msg[:1].lower() + msg[1:]


def format_validation_error(
    err: ValidationError,
    root: type[BaseModel],
    data: Any = None,
    source: str | os.PathLike[str] | None = None,
    what: str = "scenario",
) -> str:
    """One line per error, ``key.path = value: what is allowed``, under a header. O(errors).

    Args:
        err: the error raised while validating ``data`` as ``root``.
        root: the model that was validated.
        data: the raw input (used to list the valid keys next to an unknown key).
        source: file name for the header.
        what: what was validated, for the header.

    Example:
        ``scenario file q.toml is invalid (1 error):\\n  agents[1].count = -5: must be >= 0``
    """
    lines = []
    for error in err.errors(include_url=False):
        path, text = key_path(tuple(error["loc"])), _explain(error, root, data)
        if error["type"] == "missing" or error.get("input") is None:
            lines.append(f"  {path}: {text}")
        else:
            lines.append(f"  {path} = {show_value(error['input'])}: {text}")
    n = len(lines)
    where = f"{what} file {source}" if source is not None else what
    return f"{where} is invalid ({n} error{'s' if n != 1 else ''}):\n" + "\n".join(lines)


# ---------------------------------------------------------------- overrides


def _parse_value(raw: str) -> Any:
    """A TOML value (``7``, ``1.5``, ``true``, ``[1, 2]``, ``2024-01-03``, ...) or the string."""
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def _entry_index(
    entries: list[Any], model: type[BaseModel] | None, parts: list[str], i: int, where: str
) -> tuple[int, int]:
    """Resolve ``parts[i:]`` to an index of ``entries``: a number, a symbol or a name.

    Returns:
        (index, number of key parts consumed): symbols may contain dots (``BRK.B``).
    """
    n = len(entries)
    if parts[i].isdigit():
        idx = int(parts[i])
        if idx >= n:
            raise ConfigError(f"index {idx} is out of range: {where} has {n} entries")
        return idx, 1
    fields = model.model_fields if model is not None else {}
    labels = []
    for entry in entries:
        entry = entry if isinstance(entry, Mapping) else {}
        if "symbol" in fields:
            labels.append(entry.get("symbol"))
        elif "name" in fields:
            default = fields["name"].default
            labels.append(entry.get("name") or entry.get("type") or default)
        else:
            labels.append(None)
    for used in range(len(parts) - i, 0, -1):
        label = ".".join(parts[i : i + used])
        hits = [k for k, lab in enumerate(labels) if lab == label]
        if len(hits) > 1:
            raise ConfigError(f"{label!r} matches entries {hits} of {where}; use an index")
        if hits:
            return hits[0], used
    named = ", ".join(str(lab) for lab in labels if isinstance(lab, str))
    raise ConfigError(
        f"no entry {parts[i]!r} in {where}: use an index 0..{n - 1}"
        + (f" or one of: {named}" if named else "")
    )


def _apply_one(root: type[BaseModel], data: dict[str, Any], item: str) -> None:
    key, sep, raw = item.partition("=")
    key = key.strip()
    parts = key.split(".")
    if not sep or not key or "" in parts:
        raise ConfigError("must look like key=value, e.g. simulation.seed=7")
    value = _parse_value(raw.strip())
    node: Any = data
    ann: Any = root
    i, where = 0, "the top level"
    while True:
        model, origin = _as_model(ann), get_origin(_strip(ann))
        if origin is list:
            if not isinstance(node, list):
                raise ConfigError(f"{where} is {show_value(node)}, not a list")
            child_ann = get_args(_strip(ann))[0]
            child, used = _entry_index(node, _as_model(child_ann), parts, i, where)
        else:
            if not isinstance(node, dict):
                raise ConfigError(f"{where} is {show_value(node)}, not a table")
            child, used = parts[i], 1
            if model is not None:
                fields = _fields_of(model, node)
                if child not in fields:
                    raise ConfigError(
                        f"unknown key {'.'.join(parts[: i + 1])!r}; valid keys at {where}: "
                        + ", ".join(sorted(fields))
                    )
                child_ann = fields[child]
            else:
                child_ann = get_args(_strip(ann))[1] if origin is dict else Any
        i += used
        if i == len(parts):
            node[child] = value
            return
        if isinstance(node, dict) and node.get(child) is None:
            node[child] = [] if get_origin(_strip(child_ann)) is list else {}
        node, ann, where = node[child], child_ann, ".".join(parts[:i])


def apply_overrides(
    root: type[BaseModel], data: Mapping[str, Any], overrides: Iterable[str]
) -> dict[str, Any]:
    """Apply ``key=value`` overrides to raw config data; returns a new dict. O(size).

    Keys are dotted paths through ``root``'s schema; list entries are picked by index
    (``agents.0.count=10``), or by ``symbol`` / ``name`` (default: ``type``) for lists of
    models that have such a field (``assets.ABC.tick_size=0.05``). Values are parsed as TOML
    values, else kept as strings. Keys the schema knows may be set even when ``data`` omits
    them; free-form tables (``dict`` fields) take any key. The result is not validated.

    Raises:
        ConfigError: malformed override, unknown key (the message lists the valid keys at that
            level), or an index / name that matches no entry.
    """
    if isinstance(overrides, str):
        overrides = [overrides]
    out = copy.deepcopy(dict(data))
    for item in overrides:
        try:
            _apply_one(root, out, item)
        except ConfigError as exc:
            raise ConfigError(f"override {item!r}: {exc}") from None
    return out
