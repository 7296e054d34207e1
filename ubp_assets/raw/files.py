"""Cheap fingerprints of the release's files, so that a changed file makes its dependants stale."""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

from ubp_assets import location
from ubp_assets.location import AnyPath


@dataclass(frozen=True)
class FileState:
    path: AnyPath
    exists: bool
    size: int = 0
    modified_ns: int = 0
    rows: int | None = None

    @property
    def fingerprint(self) -> str:
        """Size, modification time and row count, hashed: no need to read gigabytes of data."""
        if not self.exists:
            return "missing"
        text = f"{self.size}:{self.modified_ns}:{self.rows}"
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def file_state(path: str | AnyPath, count_rows: bool = True) -> FileState:
    """count_rows=False skips the parquet footer: for files this project writes itself, always
    atomically, size and modification time already tell a rewrite (a stat costs 7x less). The
    path may be on an object store (`location.py`), whose objects have a size and a time too."""
    path = location.as_path(path)
    if not path.is_file():
        return FileState(path=path, exists=False)
    stat = path.stat()
    rows = None
    if count_rows and path.suffix == ".parquet":
        try:
            with path.open("rb") as handle:
                rows = pq.read_metadata(handle).num_rows
        except (
            Exception
        ):  # an unreadable file still gets a fingerprint; reading it will fail loudly
            rows = None
    return FileState(
        path=path, exists=True, size=stat.st_size, modified_ns=stat.st_mtime_ns, rows=rows
    )


def timestamp_span(path: str | Path) -> tuple[dt.date, dt.date] | None:
    """First and last day of a parquet file's `timestamp` column, from its row-group statistics
    (nothing is read but the footer); None where the file keeps no statistics or has no rows."""
    meta = pq.read_metadata(path)
    names = [meta.schema.column(i).name for i in range(meta.num_columns)]
    if "timestamp" not in names or meta.num_row_groups == 0:
        return None
    column = names.index("timestamp")
    lows, highs = [], []
    for group in range(meta.num_row_groups):
        stats = meta.row_group(group).column(column).statistics
        if stats is None or not stats.has_min_max:
            return None
        lows.append(stats.min)
        highs.append(stats.max)
    try:
        return _day(min(lows)), _day(max(highs))
    except (TypeError, ValueError):  # mixed or unparsable values: no cheap answer
        return None


def _day(value: object) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    return dt.date.fromisoformat(str(value)[:10])
