"""Day-partitioned parquet datasets (hive layout: `date=YYYY-MM-DD/data.parquet`).

Every day file is written under a temporary name and renamed, so a rerun replaces a day exactly
and a failed run leaves the previous file in place. A file damaged from outside (a disk that
filled during a copy, a sync cut short) is found by its parquet framing before it is read.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import polars as pl

from ubp_assets import location
from ubp_assets.location import AnyPath

DATA_FILE = "data.parquet"
PARQUET_MAGIC = b"PAR1"


class DamagedDayError(OSError):
    """A stored day file that is not whole parquet; the message names the file and its day."""


def day_range(first: dt.date, last: dt.date) -> list[dt.date]:
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]


def day_chunks(days: list[dt.date], size: int) -> list[list[dt.date]]:
    """The days in runs of `size` (the last one shorter): what a backfill builds at a time."""
    return [days[start : start + size] for start in range(0, len(days), size)]


def partition_dir(root: str | AnyPath, day: dt.date) -> AnyPath:
    return location.as_path(root) / f"date={day.isoformat()}"


# Day files are sorted by client_id; row groups this small let a reader of one client shard skip
# the others' by their statistics (`shards.py`).
ROW_GROUP_ROWS = 32_768


def atomic_write(frame: pl.DataFrame, path: AnyPath) -> None:
    location.write_parquet(frame, path, statistics=True, row_group_size=ROW_GROUP_ROWS)


def write_day_partitions(
    frame: pl.DataFrame, root: str | AnyPath, days: Iterable[dt.date]
) -> dict[dt.date, int]:
    """Replace each day's file with exactly that day's rows (by the `date` column); a day without
    rows gets an empty file, so that every materialized partition exists on disk."""
    by_day = frame.partition_by("date", as_dict=True, include_key=False)
    empty = frame.clear().drop("date")
    counts = {}
    for day in days:
        rows = by_day.get((day,), empty)
        atomic_write(rows, partition_dir(root, day) / DATA_FILE)
        counts[day] = rows.height
    return counts


def stored_days(root: str | AnyPath) -> list[dt.date]:
    return sorted(
        dt.date.fromisoformat(p.parent.name.removeprefix("date="))
        for p in location.as_path(root).glob(f"date=*/{DATA_FILE}")
    )


def damage(path: AnyPath) -> str | None:
    """Why `path` is not a whole parquet file, or None: parquet starts and ends with its magic, and
    the footer length written before the last magic must fit in the file. Reads 12 bytes."""
    size = path.stat().st_size
    if size < 12:
        return f"{size} bytes long, shorter than any parquet file"
    with path.open("rb") as file:
        head = file.read(4)
        file.seek(-8, 2)
        tail = file.read(8)
    if head != PARQUET_MAGIC or tail[4:] != PARQUET_MAGIC:
        return "its parquet framing is cut or overwritten (truncated?)"
    if int.from_bytes(tail[:4], "little") + 12 > size:
        return "its footer is longer than the file (truncated?)"
    return None


def damaged_days(root: str | AnyPath, days: Iterable[dt.date] | None = None) -> dict[dt.date, str]:
    """Stored days (all, or the given ones) whose file is damaged, with why."""
    wanted = stored_days(root) if days is None else list(days)
    found = {}
    for day in wanted:
        path = partition_dir(root, day) / DATA_FILE
        if path.is_file() and (why := damage(path)):
            found[day] = why
    return found


def scan_days(
    root: str | AnyPath, days: Iterable[dt.date] | None = None, schema: pl.Schema | None = None
) -> pl.LazyFrame:
    """The stored days (all, or the given ones that exist) with their `date` column; a damaged day
    file raises `DamagedDayError` rather than a reader's error deep in a query."""
    wanted = stored_days(root) if days is None else list(days)
    damaged = damaged_days(root, wanted)
    if damaged:
        day, why = min(damaged.items())
        raise DamagedDayError(
            f"{partition_dir(root, day) / DATA_FILE} (day {day}) is damaged: {why}; "
            f"{len(damaged)} damaged day(s) under {root}. Rerun the day to rewrite it"
        )
    paths = [partition_dir(root, d) / DATA_FILE for d in wanted]
    paths = [p for p in paths if p.is_file()]
    if not paths:
        if schema is None:
            raise FileNotFoundError(f"no day partitions under {root}")
        return pl.LazyFrame(schema={**schema, "date": pl.Date})
    return location.scan_parquet(paths, hive_partitioning=True, hive_schema={"date": pl.Date})


def missing_days(root: str | AnyPath, days: Iterable[dt.date]) -> list[dt.date]:
    return [d for d in days if not (partition_dir(root, d) / DATA_FILE).is_file()]
