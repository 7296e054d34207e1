"""Day-partitioned parquet datasets (hive layout: `date=YYYY-MM-DD/data.parquet`).

Every day file is written under a temporary name and renamed, so a rerun replaces a day exactly
and a failed run leaves the previous file in place.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from pathlib import Path

import polars as pl

DATA_FILE = "data.parquet"


def day_range(first: dt.date, last: dt.date) -> list[dt.date]:
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]


def partition_dir(root: str | Path, day: dt.date) -> Path:
    return Path(root) / f"date={day.isoformat()}"


def atomic_write(frame: pl.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    frame.write_parquet(tmp, statistics=True)
    tmp.replace(path)


def write_day_partitions(
    frame: pl.DataFrame, root: str | Path, days: Iterable[dt.date]
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


def stored_days(root: str | Path) -> list[dt.date]:
    return sorted(
        dt.date.fromisoformat(p.parent.name.removeprefix("date="))
        for p in Path(root).glob(f"date=*/{DATA_FILE}")
    )


def scan_days(
    root: str | Path, days: Iterable[dt.date] | None = None, schema: pl.Schema | None = None
) -> pl.LazyFrame:
    """The stored days (all, or the given ones that exist) with their `date` column."""
    wanted = stored_days(root) if days is None else list(days)
    paths = [partition_dir(root, d) / DATA_FILE for d in wanted]
    paths = [p for p in paths if p.is_file()]
    if not paths:
        if schema is None:
            raise FileNotFoundError(f"no day partitions under {root}")
        return pl.LazyFrame(schema={**schema, "date": pl.Date})
    return pl.scan_parquet(paths, hive_partitioning=True, hive_schema={"date": pl.Date})


def missing_days(root: str | Path, days: Iterable[dt.date]) -> list[dt.date]:
    return [d for d in days if not (partition_dir(root, d) / DATA_FILE).is_file()]
