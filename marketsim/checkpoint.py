"""Saved state without pickle: numpy arrays plus tagged JSON in one ``.npz`` file.

A state is any nest of dicts, lists, tuples, ints, floats, strings, bools, None and numpy
arrays. Arrays are stored as ``.npz`` members; everything else becomes JSON with small tags for
what JSON lacks (tuples, dicts with non-string keys, numpy arrays, non-finite floats). Loading
uses ``np.load(allow_pickle=False)``: a saved file cannot run code.

Layout: member ``__meta__`` holds the UTF-8 JSON document ``{"schema": ..., "version": ...,
"kind": ..., "state": ...}``; members ``a0, a1, ...`` hold the arrays it refers to.
"""

from __future__ import annotations

import io
import json
import math
import zipfile
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np

from marketsim.errors import StateError

#: Version of the checkpoint container; bump when the layout changes incompatibly.
SCHEMA_VERSION = 1


def _encode(obj: Any, arrays: list[np.ndarray]) -> Any:
    if obj is None or isinstance(obj, bool | str):
        return obj
    if isinstance(obj, int | np.integer):
        return int(obj)
    if isinstance(obj, float | np.floating):
        f = float(obj)
        if math.isfinite(f):
            return f
        return {"__float__": repr(f)}
    if isinstance(obj, np.ndarray):
        if obj.dtype.hasobject:
            raise StateError("object arrays cannot be saved (they would need pickle)")
        arrays.append(obj)
        return {"__nd__": len(arrays) - 1}
    if isinstance(obj, tuple):
        return {"__tuple__": [_encode(x, arrays) for x in obj]}
    if isinstance(obj, deque):
        return {"__deque__": [_encode(x, arrays) for x in obj], "maxlen": obj.maxlen}
    if isinstance(obj, list):
        return [_encode(x, arrays) for x in obj]
    if isinstance(obj, dict):
        if all(isinstance(k, str) for k in obj) and not any(k.startswith("__") for k in obj):
            return {k: _encode(v, arrays) for k, v in obj.items()}
        return {"__items__": [[_encode(k, arrays), _encode(v, arrays)] for k, v in obj.items()]}
    raise StateError(f"cannot save a value of type {type(obj).__name__} in a checkpoint")


def _decode(obj: Any, arrays: dict[str, np.ndarray]) -> Any:
    if isinstance(obj, list):
        return [_decode(x, arrays) for x in obj]
    if not isinstance(obj, dict):
        return obj
    if "__nd__" in obj:
        key = f"a{obj['__nd__']}"
        if key not in arrays:
            raise StateError(f"checkpoint refers to a missing array member {key!r}")
        return arrays[key]
    if "__float__" in obj:
        return float(obj["__float__"])
    if "__tuple__" in obj:
        return tuple(_decode(x, arrays) for x in obj["__tuple__"])
    if "__deque__" in obj:
        return deque((_decode(x, arrays) for x in obj["__deque__"]), maxlen=obj["maxlen"])
    if "__items__" in obj:
        return {_hashable(_decode(k, arrays)): _decode(v, arrays) for k, v in obj["__items__"]}
    return {k: _decode(v, arrays) for k, v in obj.items()}


def _hashable(k: Any) -> Any:
    return tuple(k) if isinstance(k, list) else k


def save_state(path: str | Path, kind: str, state: Any, version: str = "") -> Path:
    """Write ``state`` to ``path`` (``.npz``); return the path. O(size of state)."""
    arrays: list[np.ndarray] = []
    doc = {
        "schema": SCHEMA_VERSION,
        "kind": kind,
        "version": version,
        "state": _encode(state, arrays),
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    members = {f"a{i}": a for i, a in enumerate(arrays)}
    members["__meta__"] = np.frombuffer(json.dumps(doc).encode(), dtype=np.uint8)
    with open(path, "wb") as fh:
        np.savez_compressed(fh, **members)
    return path


def load_state(path: str | Path, kind: str) -> Any:
    """Read a state written by :func:`save_state`, checking its kind and schema version.

    Raises:
        StateError: the file is missing, truncated, corrupted, of another kind or of an
            incompatible schema version.
    """
    path = Path(path)
    if not path.is_file():
        raise StateError(f"checkpoint {str(path)!r} does not exist")
    try:
        with np.load(path, allow_pickle=False) as z:
            members = {k: z[k] for k in z.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, io.UnsupportedOperation) as e:
        raise StateError(
            f"checkpoint {str(path)!r} is corrupted or truncated ({type(e).__name__}: {e})"
        ) from None
    if "__meta__" not in members:
        raise StateError(f"checkpoint {str(path)!r} has no __meta__ member: not a marketsim file")
    try:
        doc = json.loads(members.pop("__meta__").tobytes().decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise StateError(f"checkpoint {str(path)!r} has an unreadable header: {e}") from None
    if doc.get("schema") != SCHEMA_VERSION:
        raise StateError(
            f"checkpoint {str(path)!r} has schema version {doc.get('schema')!r}; this marketsim "
            f"reads version {SCHEMA_VERSION}"
        )
    if doc.get("kind") != kind:
        raise StateError(
            f"checkpoint {str(path)!r} holds a {doc.get('kind')!r}, expected a {kind!r}"
        )
    return _decode(doc["state"], members)
