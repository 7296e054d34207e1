"""The unified, typed event table: built from the raw files for a range of days, stored one parquet
file per day in a hive layout (`date=YYYY-MM-DD/data.parquet`), with rejected rows quarantined.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from ubp_assets import location
from ubp_assets.events.raw_reader import (
    REASON,
    Parsed,
    one_version,
    read_event_file,
    read_products,
)
from ubp_assets.events.schema import (
    EVENT_TYPES,
    EVENTS_SCHEMA,
    RAW_EVENT_FILES,
    RAW_FILES,
    EventType,
)
from ubp_assets.location import AnyPath
from ubp_assets.raw.files import file_state, timestamp_span
from ubp_assets.storage import atomic_write, day_chunks, day_range, scan_days

REJECTED_FILE = "rejected.parquet"
UNDATED = "undated"
QUARANTINE_SCHEMA = pl.Schema(
    {"file": pl.String, "row": pl.String, REASON: pl.String, "date": pl.Date}
)


@dataclass(frozen=True)
class EventsBuild:
    events: pl.DataFrame  # EVENTS_SCHEMA plus `date`
    rejected: pl.DataFrame  # QUARANTINE_SCHEMA; `date` null for rows no day can own
    products: pl.DataFrame


def _unified(name: str, rows: pl.DataFrame) -> pl.DataFrame:
    present = set(rows.columns)
    return rows.select(
        pl.col("client_id"),
        pl.col("timestamp"),
        pl.lit(name, dtype=EventType).alias("event_type"),
        *[
            (pl.col(c) if c in present else pl.lit(None)).cast(EVENTS_SCHEMA[c]).alias(c)
            for c in ("sku", "url", "query")
        ],
    )


def build_events(
    raw_dir: str | Path,
    first: dt.date,
    last: dt.date,
    partitions: tuple[dt.date, dt.date] | None = None,
) -> EventsBuild:
    """Every event with a timestamp on the days first..last, typed and joined with its product.

    Each raw file is scanned once for the whole range, so its memory grows with the range:
    `events_in_chunks` holds a few days at a time. `partitions` (default first..last) are all
    the days there are: rows outside them are undated. Every file is read in one version, or
    `RawDataError` names the one that changed.
    """
    with one_version(raw_dir, RAW_FILES.values()):
        return _build(raw_dir, first, last, partitions, read_products(raw_dir), undated=True)


def events_per_day(raw_dir: str | Path, days: int) -> float:
    """The release's events a day over its `days` days, on average, from the raw files' footers
    (nothing else is read): what sizes a backfill's chunk of days."""
    rows = sum(
        file_state(Path(raw_dir) / spec.filename).rows or 0 for spec in RAW_EVENT_FILES.values()
    )
    return rows / max(days, 1)


def events_in_chunks(
    raw_dir: str | Path,
    first: dt.date,
    last: dt.date,
    partitions: tuple[dt.date, dt.date] | None,
    chunk_days: int,
) -> Iterator[tuple[list[dt.date], EventsBuild]]:
    """`build_events` for first..last, `chunk_days` days at a time, so that memory is set by the
    chunk, not by the range; the chunks' events and rejected rows together are exactly those of
    one build over the range.

    A row belongs to the day of its timestamp, and a repeat of a row has the same timestamp, so
    each chunk's checks see everything they compare. Undated rows (no day can own them) come with
    the first chunk only. Each chunk is checked against the files' versions at the start before
    it is handed on: a file replaced between two chunks raises `RawDataError` naming it.
    """
    with one_version(raw_dir, RAW_FILES.values()) as verify:
        products = read_products(raw_dir)
        for i, chunk in enumerate(day_chunks(day_range(first, last), chunk_days)):
            build = _build(raw_dir, chunk[0], chunk[-1], partitions, products, undated=i == 0)
            verify()
            yield chunk, build


def _build(
    raw_dir: str | Path,
    first: dt.date,
    last: dt.date,
    partitions: tuple[dt.date, dt.date] | None,
    products: Parsed,
    *,
    undated: bool,
) -> EventsBuild:
    unified, rejected = [], []
    for name, spec in RAW_EVENT_FILES.items():
        parsed = read_event_file(raw_dir, spec, first, last, partitions)
        unified.append(_unified(name, parsed.rows))
        rejected.append(parsed.rejected)
    rejected.append(products.rejected)
    events = (
        pl.concat(unified)
        .join(products.rows.select("sku", "category", "price"), on="sku", how="left")
        .select(*EVENTS_SCHEMA.names(), pl.col("timestamp").dt.date().alias("date"))
        .sort("client_id", "timestamp", "event_type")
    )
    rejected_rows = pl.concat(rejected).cast(QUARANTINE_SCHEMA)
    if not undated:
        rejected_rows = rejected_rows.filter(pl.col("date").is_not_null())
    return EventsBuild(events=events, rejected=rejected_rows, products=products.rows)


def write_quarantine(
    rejected: pl.DataFrame, root: str | AnyPath, days: Iterable[dt.date], *, undated: bool = True
) -> dict[str, int]:
    """Rejected rows by day (and, with `undated`, undated ones apart); stale files of the same
    days are removed."""
    root = location.as_path(root)
    counts: dict[str, int] = {}
    targets = [(d.isoformat(), rejected.filter(pl.col("date") == d)) for d in days]
    if undated:
        targets.append((UNDATED, rejected.filter(pl.col("date").is_null())))
    for label, frame in targets:
        path = root / (UNDATED if label == UNDATED else f"date={label}") / REJECTED_FILE
        if frame.height:
            atomic_write(frame.drop("date"), path)
            counts[label] = frame.height
        else:
            path.unlink(missing_ok=True)
    return counts


# ---- checks: pure functions over a stored slice, (passed, figures); streamed: a slice may be ---
# ---- every day of the release -------------------------------------------------------------------


@dataclass(frozen=True)
class CheckOutcome:
    passed: bool
    figures: dict[str, int | str]


def check_keys_not_null(events: pl.LazyFrame) -> CheckOutcome:
    nulls = events.select(
        pl.col(c).null_count().alias(c) for c in ("client_id", "timestamp", "event_type")
    ).collect(engine="streaming")
    figures = {f"null_{c}": int(nulls[c][0]) for c in nulls.columns}
    return CheckOutcome(passed=not any(figures.values()), figures=figures)


def check_timestamps_in_partition(events: pl.LazyFrame) -> CheckOutcome:
    outside = events.filter(pl.col("timestamp").dt.date() != pl.col("date"))
    found = outside.select(pl.len(), pl.col("timestamp").first())
    n, example = found.collect(engine="streaming").row(0)
    return CheckOutcome(passed=n == 0, figures={"rows_outside_their_day": n, "first": str(example)})


def check_event_types_known(events: pl.LazyFrame) -> CheckOutcome:
    types = events.select(pl.col("event_type").cast(pl.String).unique())
    types = types.collect(engine="streaming").to_series()
    unknown = sorted(t for t in types.to_list() if t not in EVENT_TYPES)
    return CheckOutcome(
        passed=not unknown, figures={"unknown_types": ", ".join(map(str, unknown)) or "none"}
    )


def count_skus_missing_from_products(events: pl.LazyFrame, products: pl.DataFrame) -> CheckOutcome:
    with_sku = events.filter(pl.col("sku").is_not_null())
    missing = with_sku.join(products.lazy().select("sku"), on="sku", how="anti")
    found = missing.select(pl.len(), pl.col("sku").n_unique())
    n_events, n_skus = found.collect(engine="streaming").row(0)
    return CheckOutcome(
        passed=n_events == 0,
        figures={"events_with_unknown_sku": n_events, "unknown_skus": n_skus},
    )


def scan_events(root: str | AnyPath, days: Iterable[dt.date] | None = None) -> pl.LazyFrame:
    """The stored event table (all days, or the given ones) with its `date` partition column."""
    return scan_days(root, days, schema=EVENTS_SCHEMA)


def raw_days_within(raw_dir: str | Path, first: dt.date, last: dt.date) -> CheckOutcome:
    """Whether every event file's days (from parquet statistics) lie within first..last."""
    spans = {
        name: timestamp_span(Path(raw_dir) / spec.filename)
        for name, spec in RAW_EVENT_FILES.items()
    }
    known = [s for s in spans.values() if s is not None]
    if not known:
        return CheckOutcome(passed=True, figures={"raw_days": "unknown (no statistics)"})
    low, high = min(s[0] for s in known), max(s[1] for s in known)
    return CheckOutcome(
        passed=first <= low and high <= last,
        figures={"raw_days": f"{low}..{high}", "partition_days": f"{first}..{last}"},
    )
