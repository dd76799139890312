"""The prepared-data directory: its manifest, writer, loader and the window server.

:func:`marketsim.data.prepare` writes a directory with this layout (``T`` bars on the common
calendar, ``N`` tickers sorted by name, ``F`` fields in the order asked for, ``W`` the window
length)::

    manifest.json   tickers, fields, calendar, window, sha256 of every file, row counts, sources
    bars.parquet    long table, T*N rows ordered by (time, ticker): time timestamp[ns, UTC],
                    ticker dictionary<string>, one float64 column per field, valid bool.
                    Missing bars are rows with NaN fields and valid=False.
    times.npy       int64 (T,): bar timestamps, ns since the Unix epoch (UTC), increasing
    values.npy      float32 (T, N, F): the fields, NaN where a value is missing
    mask.npy        bool (T, N): True where the bar is present and every field is finite
                    (a bar with some fields missing keeps its finite values, mask False)
    windows.npy     float32 (T, N, W, F), only if windows were materialised:
                    windows[t, k, w] = values[t - W + 1 + w, k] (NaN before the first bar)

Why this layout: every array is C-ordered with time first, so the data of one time step, and
of one window (``values[t - W + 1 : t + 1]``), is one contiguous block of the file, and a
memory-mapped read of a window touches ``W * N * F * 4`` consecutive bytes whether or not
``windows.npy`` exists. ``windows.npy`` repeats every value ``W`` times; it saves the
transpose and the padding copy per window, which pays off for random-access training on data
that fits the disk, and :meth:`PreparedData.window` returns the same numbers either way.
``bars.parquet`` keeps float64 (exact input values); the ``.npy`` arrays are float32 for
observations. Nothing is ever forward-filled or zero-filled: a missing bar is NaN with
``mask`` False, and it is the consumer's explicit choice what to put there (see
:class:`WindowReplay`'s ``fill_value``).

Serving speed (same machine, 100 tickers x W=64 x 5 fields): ``window(t)`` returns views,
~170-270 k windows/s either way; ``batch`` copies, ~15 k windows/s from ``windows.npy`` and
~1.5-2.5 k windows/s from ``values.npy`` (the transpose of 20-byte rows dominates).

Bar timestamps label the *start* of the bar (a bar stamped 09:31 with a 1 min frequency holds
trades in [09:31, 09:32)); replaying code must only release a bar's close after it ends.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from marketsim import __version__
from marketsim.errors import ConfigError, DataError

__all__ = [
    "FORMAT_VERSION",
    "Manifest",
    "PreparedData",
    "WindowReplay",
    "load_prepared",
    "sha256_file",
    "write_prepared",
]

logger = logging.getLogger(__name__)

#: Version of the prepared-directory format written into ``manifest.json``.
FORMAT_VERSION = 1
#: Name of the manifest file inside a prepared directory.
MANIFEST_NAME = "manifest.json"
#: Bytes of ``windows.npy`` written per chunk while materialising (bounds peak memory).
_CHUNK_BYTES = 64 << 20


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes, read in chunks. O(file size), ~1 GB/s."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def iso_utc(ns: int) -> str:
    """ISO-8601 text of a UTC timestamp given in ns since the epoch."""
    return pd.Timestamp(int(ns), tz="UTC").isoformat()


@dataclass(frozen=True)
class Manifest:
    """Contents of ``manifest.json``: what a prepared directory holds and how to check it.

    Attributes:
        tickers: Ticker per column ``k`` of the arrays (sorted).
        fields: Field per last-axis index of ``values`` / ``windows``.
        window: Window length ``W``.
        calendar: ``kind`` ("union", "grid" or "explicit"), ``start`` and ``end`` (ISO-8601,
            UTC), ``frequency`` (pandas frequency string or None) and ``n_times``.
        files: Per output file name: ``sha256`` and ``bytes``.
        rows: Row counts: ``source_rows`` (data rows read), ``bars`` (T*N), ``valid_bars``.
        sources: Per input file: ``path``, ``layout``, ``rows``, ``sha256``.
        windows_materialized: Whether ``windows.npy`` exists.
        bar_freq: Frequency raw data was aggregated to (None: bars used as given).
        version: Format version (:data:`FORMAT_VERSION`).
        marketsim_version: Version of marketsim that wrote the directory.
    """

    tickers: tuple[str, ...]
    fields: tuple[str, ...]
    window: int
    calendar: dict[str, Any]
    files: dict[str, dict[str, Any]]
    rows: dict[str, int]
    sources: tuple[dict[str, Any], ...] = ()
    windows_materialized: bool = False
    bar_freq: str | None = None
    version: int = FORMAT_VERSION
    marketsim_version: str = __version__
    time_label: str = field(default="start")

    @property
    def n_times(self) -> int:
        """Number of bars on the calendar (``T``)."""
        return int(self.calendar["n_times"])

    @property
    def n_tickers(self) -> int:
        """Number of tickers (``N``)."""
        return len(self.tickers)

    @property
    def n_fields(self) -> int:
        """Number of fields (``F``)."""
        return len(self.fields)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (the file's content)."""
        return {
            "version": self.version,
            "marketsim_version": self.marketsim_version,
            "tickers": list(self.tickers),
            "fields": list(self.fields),
            "window": self.window,
            "calendar": dict(self.calendar),
            "time_label": self.time_label,
            "bar_freq": self.bar_freq,
            "windows_materialized": self.windows_materialized,
            "files": {k: dict(v) for k, v in self.files.items()},
            "rows": dict(self.rows),
            "sources": [dict(s) for s in self.sources],
        }

    @classmethod
    def from_dict(cls, d: Any, where: str = MANIFEST_NAME) -> Manifest:
        """Build from :meth:`to_dict` output.

        Raises:
            DataError: A key is missing or of the wrong type, or the version is unknown.
        """
        if not isinstance(d, dict):
            raise DataError(f"{where}: expected a JSON object, got {type(d).__name__}")
        try:
            version = d["version"]
            if version != FORMAT_VERSION:
                raise DataError(
                    f"{where}: format version {version!r} is not supported (this marketsim "
                    f"reads version {FORMAT_VERSION}); re-run `marketsim data prepare`"
                )
            m = cls(
                tickers=tuple(str(t) for t in d["tickers"]),
                fields=tuple(str(f) for f in d["fields"]),
                window=int(d["window"]),
                calendar=dict(d["calendar"]),
                files={str(k): dict(v) for k, v in d["files"].items()},
                rows={str(k): int(v) for k, v in d["rows"].items()},
                sources=tuple(dict(s) for s in d.get("sources", ())),
                windows_materialized=bool(d["windows_materialized"]),
                bar_freq=d.get("bar_freq"),
                version=int(version),
                marketsim_version=str(d.get("marketsim_version", "")),
                time_label=str(d.get("time_label", "start")),
            )
            int(m.calendar["n_times"])
        except KeyError as exc:
            raise DataError(f"{where}: missing key {exc.args[0]!r}") from None
        except (TypeError, ValueError, AttributeError) as exc:
            raise DataError(f"{where}: malformed manifest: {exc}") from None
        return m

    def save(self, path: str | os.PathLike) -> None:
        """Write as indented JSON (atomically: temp file, then rename)."""
        tmp = Path(f"{path}.tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Manifest:
        """Read ``manifest.json``.

        Raises:
            DataError: The file is missing, not JSON, or not a valid manifest.
        """
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise DataError(
                f"{p}: no manifest; is {p.parent} a directory written by `marketsim data prepare`?"
            ) from None
        try:
            d = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(f"{p}: not valid JSON (line {exc.lineno}): {exc.msg}") from None
        return cls.from_dict(d, str(p))


# ---------------------------------------------------------------------------------- writing
def _write_windows(path: Path, values: np.ndarray, window: int) -> None:
    """Write ``windows.npy`` (T, N, W, F) float32 from ``values`` (T, N, F), chunked."""
    t_len, n, f = values.shape
    mm = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(t_len, n, window, f))
    padded = np.full((t_len + window - 1, n, f), np.nan, dtype=np.float32)
    padded[window - 1 :] = values
    per_t = max(1, n * window * f * 4)
    chunk = max(1, _CHUNK_BYTES // per_t)
    for a in range(0, t_len, chunk):
        b = min(t_len, a + chunk)
        # view (b - a, N, F, W) of the padded history; windows[t] ends at bar t
        sw = np.lib.stride_tricks.sliding_window_view(padded[a : b + window - 1], window, axis=0)
        mm[a:b] = sw.transpose(0, 1, 3, 2)
    mm.flush()
    del mm


def write_prepared(
    out_dir: Path,
    *,
    times: np.ndarray,
    tickers: Sequence[str],
    fields: Sequence[str],
    dense: np.ndarray,
    window: int,
    materialize_windows: bool,
    calendar: dict[str, Any],
    sources: Sequence[dict[str, Any]],
    source_rows: int,
    bar_freq: str | None,
) -> Manifest:
    """Write every file of a prepared directory, then ``manifest.json`` last.

    Args:
        out_dir: Existing directory.
        times: int64 (T,) increasing ns timestamps.
        tickers: N names.
        fields: F names.
        dense: float64 (T, N, F), NaN where missing.
        window: W >= 1.
        materialize_windows: Also write ``windows.npy``.
        calendar: ``kind`` and ``frequency`` (start, end, n_times are filled in here).
        sources: Per input file description for the manifest.
        source_rows: Data rows read from all inputs.
        bar_freq: Aggregation frequency or None.

    Returns:
        The manifest written. O(T*N*F*W) with windows, else O(T*N*F).
    """
    t_len, n, f = dense.shape
    valid = np.isfinite(dense).all(axis=2)
    manifest_path = out_dir / MANIFEST_NAME
    if manifest_path.exists():
        manifest_path.unlink()  # the directory is invalid until the new manifest lands
    files: dict[str, Path] = {}

    tick_idx = np.tile(np.arange(n, dtype=np.int32), t_len)
    cols: dict[str, Any] = {
        "time": pa.array(np.repeat(times, n).view("datetime64[ns]"), pa.timestamp("ns", "UTC")),
        "ticker": pa.DictionaryArray.from_arrays(tick_idx, pa.array(list(tickers), pa.string())),
    }
    flat = dense.reshape(t_len * n, f)
    for j, name in enumerate(fields):
        cols[name] = pa.array(np.ascontiguousarray(flat[:, j]), pa.float64())
    cols["valid"] = pa.array(valid.reshape(-1), pa.bool_())
    files["bars.parquet"] = out_dir / "bars.parquet"
    pq.write_table(pa.table(cols), files["bars.parquet"])

    files["times.npy"] = out_dir / "times.npy"
    np.save(files["times.npy"], np.ascontiguousarray(times, dtype=np.int64))
    files["values.npy"] = out_dir / "values.npy"
    values32 = dense.astype(np.float32)
    np.save(files["values.npy"], values32)
    files["mask.npy"] = out_dir / "mask.npy"
    np.save(files["mask.npy"], valid)
    windows_path = out_dir / "windows.npy"
    if materialize_windows:
        _write_windows(windows_path, values32, window)
        files["windows.npy"] = windows_path
    elif windows_path.exists():
        windows_path.unlink()

    cal = dict(calendar)
    cal.update(
        start=iso_utc(times[0]) if t_len else None,
        end=iso_utc(times[-1]) if t_len else None,
        n_times=int(t_len),
    )
    manifest = Manifest(
        tickers=tuple(tickers),
        fields=tuple(fields),
        window=int(window),
        calendar=cal,
        files={
            name: {"sha256": sha256_file(p), "bytes": p.stat().st_size} for name, p in files.items()
        },
        rows={
            "source_rows": int(source_rows),
            "bars": int(t_len * n),
            "valid_bars": int(valid.sum()),
        },
        sources=tuple(dict(s) for s in sources),
        windows_materialized=bool(materialize_windows),
        bar_freq=bar_freq,
    )
    manifest.save(manifest_path)
    logger.info("prepared %d tickers x %d bars (%d valid) in %s", n, t_len, valid.sum(), out_dir)
    return manifest


# ---------------------------------------------------------------------------------- reading
def _window_views(
    values: np.ndarray, mask: np.ndarray, windows: np.ndarray | None, window: int, t: int
) -> tuple[np.ndarray, np.ndarray]:
    """The window ending at bar ``t``: ``(x (N, W, F), m (N, W))``; views when possible."""
    w0 = t - window + 1
    if windows is not None:
        x = windows[t]
    elif w0 >= 0:
        x = values[w0 : t + 1].transpose(1, 0, 2)
    else:
        n, f = values.shape[1:]
        x = np.full((n, window, f), np.nan, dtype=values.dtype)
        x[:, -w0:] = values[: t + 1].transpose(1, 0, 2)
    if w0 >= 0:
        m = mask[w0 : t + 1].T
    else:
        m = np.zeros((mask.shape[1], window), dtype=bool)
        m[:, -w0:] = mask[: t + 1].T
    return x, m


@dataclass
class PreparedData:
    """A prepared directory opened for reading; arrays are read-only memory maps.

    Attributes:
        path: The directory.
        manifest: Its manifest.
        times: int64 (T,) bar start times, ns since the epoch, UTC.
        values: float32 (T, N, F), NaN where missing.
        mask: bool (T, N), True where the bar is valid.
        windows: float32 (T, N, W, F) if materialised, else None (use :meth:`window`).
    """

    path: Path
    manifest: Manifest
    times: np.ndarray
    values: np.ndarray
    mask: np.ndarray
    windows: np.ndarray | None

    def __post_init__(self) -> None:
        # Plain ndarray views of the memory maps: slicing np.memmap costs ~2 us per call in
        # its __array_finalize__, a plain view ~0.2 us.
        self._plain = tuple(
            None if a is None else np.asarray(a) for a in (self.values, self.mask, self.windows)
        )

    @property
    def tickers(self) -> tuple[str, ...]:
        """Ticker per column."""
        return self.manifest.tickers

    @property
    def fields(self) -> tuple[str, ...]:
        """Field per last-axis index."""
        return self.manifest.fields

    @property
    def window_length(self) -> int:
        """Window length ``W``."""
        return self.manifest.window

    @property
    def n_times(self) -> int:
        """Number of bars ``T``."""
        return int(self.times.shape[0])

    @property
    def timestamps(self) -> pd.DatetimeIndex:
        """Bar start times as a UTC DatetimeIndex."""
        return pd.DatetimeIndex(self.times.view("datetime64[ns]")).tz_localize("UTC")

    def ticker_index(self, ticker: str) -> int:
        """Column of ``ticker``.

        Raises:
            ConfigError: Unknown ticker (the message lists the known ones).
        """
        try:
            return self.tickers.index(ticker)
        except ValueError:
            known = ", ".join(self.tickers[:20]) + (" ..." if len(self.tickers) > 20 else "")
            raise ConfigError(
                f"ticker {ticker!r} is not in the prepared data {self.path}; known: {known}"
            ) from None

    def field_index(self, name: str) -> int:
        """Last-axis index of field ``name``.

        Raises:
            ConfigError: Unknown field (the message lists the prepared ones).
        """
        try:
            return self.fields.index(name)
        except ValueError:
            raise ConfigError(
                f"field {name!r} is not in the prepared data {self.path}; prepared fields: "
                f"{', '.join(self.fields)}"
            ) from None

    def field(self, name: str) -> np.ndarray:
        """Exact float64 ``(T, N)`` values of one field, read from ``bars.parquet``. O(T*N)."""
        self.field_index(name)
        col = pq.read_table(self.path / "bars.parquet", columns=[name]).column(0)
        arr = col.to_numpy().astype(np.float64, copy=False)
        return arr.reshape(self.n_times, len(self.tickers))

    def bars(self) -> pd.DataFrame:
        """The whole ``bars.parquet`` as a DataFrame (T*N rows)."""
        return pq.read_table(self.path / "bars.parquet").to_pandas()

    def window(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        """Observation window ending at bar ``t`` (inclusive).

        Returns:
            ``(x, m)``: float32 ``(N, W, F)`` values (NaN before the first bar or where
            missing) and bool ``(N, W)`` validity. Read-only views into the memory maps when
            ``t >= W - 1`` (``x`` is contiguous only if windows are materialised). O(1) for
            views, O(N*W*F) near the start.

        Raises:
            ConfigError: ``t`` is outside ``[0, T)``.
        """
        t = _check_t(t, self.n_times)
        return _window_views(*self._plain, self.window_length, t)


def _check_t(t: Any, n_times: int) -> int:
    if isinstance(t, bool) or not isinstance(t, int | np.integer) or not 0 <= t < n_times:
        raise ConfigError(f"t must be an integer bar index in [0, {n_times}), got t={t!r}")
    return int(t)


def _verify(path: Path, manifest: Manifest) -> None:
    for name, info in manifest.files.items():
        p = path / name
        if not p.exists():
            raise DataError(
                f"{p}: file listed in {MANIFEST_NAME} is missing; re-run `marketsim data prepare`"
            )
        got = sha256_file(p)
        if got != info.get("sha256"):
            raise DataError(
                f"{p}: sha256 mismatch: {MANIFEST_NAME} says {info.get('sha256')}, the file "
                f"has {got}; the file was modified or corrupted, re-run `marketsim data prepare`"
            )


def _load_array(path: Path, dtype: Any, shape: tuple[int, ...], mmap: bool) -> np.ndarray:
    try:
        arr = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except FileNotFoundError:
        raise DataError(f"{path}: missing; re-run `marketsim data prepare`") from None
    except ValueError as exc:
        raise DataError(f"{path}: not a readable .npy array: {exc}") from None
    if arr.dtype != np.dtype(dtype) or arr.shape != shape:
        raise DataError(
            f"{path}: expected dtype {np.dtype(dtype)} shape {shape} (from {MANIFEST_NAME}), "
            f"got dtype {arr.dtype} shape {arr.shape}"
        )
    if not mmap:
        arr.flags.writeable = False
    return arr


def load_prepared(
    path: str | os.PathLike, *, verify: bool = True, mmap: bool = True
) -> PreparedData:
    """Open a directory written by :func:`marketsim.data.prepare`.

    Args:
        path: The directory.
        verify: Check every file's sha256 against the manifest first (O(total bytes), about
            1 s per GB).
        mmap: Memory-map the ``.npy`` arrays (``np.load(..., mmap_mode="r")``); False reads
            them into memory (read-only).

    Returns:
        The data with read-only arrays.

    Raises:
        DataError: Missing or malformed manifest, a missing file, a hash mismatch (the message
            names the file and both hashes) or an array whose dtype/shape disagrees.
    """
    p = Path(path)
    manifest = Manifest.load(p / MANIFEST_NAME)
    if verify:
        _verify(p, manifest)
    t_len, n, f, w = manifest.n_times, manifest.n_tickers, manifest.n_fields, manifest.window
    times = _load_array(p / "times.npy", np.int64, (t_len,), mmap)
    values = _load_array(p / "values.npy", np.float32, (t_len, n, f), mmap)
    mask = _load_array(p / "mask.npy", np.bool_, (t_len, n), mmap)
    windows = None
    if manifest.windows_materialized:
        windows = _load_array(p / "windows.npy", np.float32, (t_len, n, w, f), mmap)
    return PreparedData(p, manifest, times, values, mask, windows)


# ---------------------------------------------------------------------------------- replay
class WindowReplay:
    """Serves observation windows straight from a prepared directory's arrays.

    Used for fast offline training (the RL env's window-replay mode): no order book, no
    model, just ``(values, mask)`` windows per bar. Windows end at bar ``t`` inclusive, so an
    agent acting after bar ``t`` closes sees exactly ``window(t)``.

    Example::

        replay = WindowReplay("prepared/", tickers=["AAA", "BBB"], max_assets=4)
        x, m = replay.window(replay.first_full)   # (4, W, F) float32, (4, W) bool

    Args:
        data: A :class:`PreparedData` or the directory path.
        tickers: Tickers to serve, in slot order (default: all, in the prepared order).
        fields: Fields to serve, in order (default: all).
        max_assets: Pad the ticker axis to this many slots (missing slots: NaN, mask False).
        fill_value: If not None, masked entries of ``x`` are replaced by it (an explicit
            choice; the arrays on disk keep NaN). None keeps NaN.
        verify: Hash-check the directory when ``data`` is a path.

    Raises:
        ConfigError: Unknown ticker or field, or ``max_assets`` below the ticker count.
    """

    def __init__(
        self,
        data: PreparedData | str | os.PathLike,
        *,
        tickers: Sequence[str] | None = None,
        fields: Sequence[str] | None = None,
        max_assets: int | None = None,
        fill_value: float | None = None,
        verify: bool = True,
    ):
        if not isinstance(data, PreparedData):
            data = load_prepared(data, verify=verify)
        self.data = data
        self.tickers: tuple[str, ...] = tuple(data.tickers if tickers is None else tickers)
        self.fields: tuple[str, ...] = tuple(data.fields if fields is None else fields)
        if not self.tickers or not self.fields:
            raise ConfigError("WindowReplay: tickers and fields must not be empty")
        self._cols = np.array([data.ticker_index(t) for t in self.tickers], dtype=np.int64)
        self._fidx = np.array([data.field_index(f) for f in self.fields], dtype=np.int64)
        n_slots = len(self.tickers) if max_assets is None else max_assets
        if isinstance(n_slots, bool) or not isinstance(n_slots, int | np.integer):
            raise ConfigError(f"WindowReplay: max_assets must be an integer, got {max_assets!r}")
        if n_slots < len(self.tickers):
            raise ConfigError(
                f"WindowReplay: max_assets={max_assets} is smaller than the {len(self.tickers)} "
                "tickers asked for"
            )
        self.n_slots = int(n_slots)
        if fill_value is not None and not math.isfinite(float(fill_value)):
            raise ConfigError(f"WindowReplay: fill_value must be finite or None, got {fill_value}")
        self.fill_value = None if fill_value is None else float(fill_value)
        self._identity = (
            self.n_slots == len(data.tickers)
            and np.array_equal(self._cols, np.arange(len(data.tickers)))
            and np.array_equal(self._fidx, np.arange(len(data.fields)))
            and self.fill_value is None
        )

    @property
    def window_length(self) -> int:
        """``W``."""
        return self.data.window_length

    @property
    def first_full(self) -> int:
        """First bar whose window has no padding before the data starts (``W - 1``)."""
        return self.data.window_length - 1

    def __len__(self) -> int:
        return self.data.n_times

    def window(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        """Window ending at bar ``t``: float32 ``(n_slots, W, F)`` and bool ``(n_slots, W)``.

        With the default selection (all tickers and fields, no padding or fill) these are
        read-only views into the memory maps (O(1), about 1-2 us); otherwise new arrays
        (O(n_slots*W*F)).

        Raises:
            ConfigError: ``t`` outside ``[0, T)``.
        """
        d = self.data
        t = _check_t(t, d.n_times)
        x, m = _window_views(*d._plain, d.window_length, t)
        if self._identity:
            return x, m
        k = len(self.tickers)
        out = np.full((self.n_slots, d.window_length, len(self.fields)), np.nan, np.float32)
        out[:k] = x[self._cols][:, :, self._fidx]
        mask = np.zeros((self.n_slots, d.window_length), dtype=bool)
        mask[:k] = m[self._cols]
        self._fill(out, mask)
        return out, mask

    def batch(self, ts: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Windows for many bars at once: ``(B, n_slots, W, F)`` and ``(B, n_slots, W)``.

        Equal to stacking :meth:`window` over ``ts``, in one vectorised gather (new,
        writable arrays). O(B*n_slots*W*F).

        Raises:
            ConfigError: an index outside ``[0, T)``.
        """
        d = self.data
        idx = np.asarray(ts)
        if idx.ndim != 1 or idx.dtype.kind not in "iu":
            raise ConfigError(f"ts must be a 1-D array of integer bar indices, got {ts!r}")
        if idx.size and (idx.min() < 0 or idx.max() >= d.n_times):
            raise ConfigError(
                f"ts must lie in [0, {d.n_times}), got values from {idx.min()} to {idx.max()}"
            )
        values, mask, windows = d._plain
        w = d.window_length
        b = idx.size
        k = len(self.tickers)
        all_cols = k == values.shape[1] and bool((self._cols == np.arange(k)).all())
        all_fields = bool(
            len(self._fidx) == values.shape[2] and (self._fidx == np.arange(len(self._fidx))).all()
        )
        rows = idx[:, None] + np.arange(1 - w, 1)  # (B, W) bar of each window position
        pad = rows < 0
        rows = np.maximum(rows, 0)
        if windows is not None and all_cols:
            x = windows[idx]  # (B, N, W, F), already NaN-padded
        else:
            g = values[rows] if all_cols else values[rows[:, :, None], self._cols]  # (B,W,k,F)
            x = g.transpose(0, 2, 1, 3)
        if not all_fields:
            x = x[..., self._fidx]
        m = (mask[rows] if all_cols else mask[rows[:, :, None], self._cols]).transpose(0, 2, 1)
        if k == self.n_slots:
            out = np.ascontiguousarray(x)
            msk = np.ascontiguousarray(m)
        else:
            out = np.full((b, self.n_slots, w, len(self.fields)), np.nan, np.float32)
            out[:, :k] = x
            msk = np.zeros((b, self.n_slots, w), dtype=bool)
            msk[:, :k] = m
        for i in np.flatnonzero(pad[:, 0]).tolist():  # windows reaching before bar 0
            out[i, :, pad[i]] = np.nan
            msk[i, :, pad[i]] = False
        self._fill(out, msk)
        return out, msk

    def _fill(self, out: np.ndarray, mask: np.ndarray) -> None:
        if self.fill_value is not None:
            out[~mask] = self.fill_value
