"""The unified, typed event table: built from the raw files for a range of days, stored one parquet
file per day in a hive layout (`date=YYYY-MM-DD/data.parquet`), with rejected rows quarantined.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from ubp_assets.events.raw_reader import REASON, one_version, read_event_file, read_products
from ubp_assets.events.schema import (
    EVENT_TYPES,
    EVENTS_SCHEMA,
    RAW_EVENT_FILES,
    RAW_FILES,
    EventType,
)
from ubp_assets.raw.files import timestamp_span
from ubp_assets.storage import atomic_write, scan_days

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

    Each raw file is scanned once for the whole range, so a backfill of every day is one pass.
    `partitions` (default first..last) are all the days there are: rows outside them are undated.
    Every file is read in one version, or `RawDataError` names the one that changed.
    """
    unified, rejected = [], []
    with one_version(raw_dir, RAW_FILES.values()):
        products = read_products(raw_dir)
        for name, spec in RAW_EVENT_FILES.items():
            parsed = read_event_file(raw_dir, spec, first, last, partitions)
            unified.append(_unified(name, parsed.rows))
            rejected.append(parsed.rejected)
    events = (
        pl.concat(unified)
        .join(products.rows.select("sku", "category", "price"), on="sku", how="left")
        .select(*EVENTS_SCHEMA.names(), pl.col("timestamp").dt.date().alias("date"))
        .sort("client_id", "timestamp", "event_type")
    )
    return EventsBuild(
        events=events,
        rejected=pl.concat([*rejected, products.rejected]).cast(QUARANTINE_SCHEMA),
        products=products.rows,
    )


def write_quarantine(
    rejected: pl.DataFrame, root: str | Path, days: Iterable[dt.date]
) -> dict[str, int]:
    """Rejected rows by day (and undated ones apart); stale files of the same days are removed."""
    root = Path(root)
    counts: dict[str, int] = {}
    targets = [(d.isoformat(), rejected.filter(pl.col("date") == d)) for d in days]
    targets.append((UNDATED, rejected.filter(pl.col("date").is_null())))
    for label, frame in targets:
        path = root / (UNDATED if label == UNDATED else f"date={label}") / REJECTED_FILE
        if frame.height:
            atomic_write(frame.drop("date"), path)
            counts[label] = frame.height
        else:
            path.unlink(missing_ok=True)
    return counts


# ---- checks: pure functions over a stored slice, (passed, figures) ------------------------------


@dataclass(frozen=True)
class CheckOutcome:
    passed: bool
    figures: dict[str, int | str]


def check_keys_not_null(events: pl.LazyFrame) -> CheckOutcome:
    nulls = events.select(
        pl.col(c).null_count().alias(c) for c in ("client_id", "timestamp", "event_type")
    ).collect()
    figures = {f"null_{c}": int(nulls[c][0]) for c in nulls.columns}
    return CheckOutcome(passed=not any(figures.values()), figures=figures)


def check_timestamps_in_partition(events: pl.LazyFrame) -> CheckOutcome:
    outside = events.filter(pl.col("timestamp").dt.date() != pl.col("date"))
    n, example = outside.select(pl.len(), pl.col("timestamp").first()).collect().row(0)
    return CheckOutcome(passed=n == 0, figures={"rows_outside_their_day": n, "first": str(example)})


def check_event_types_known(events: pl.LazyFrame) -> CheckOutcome:
    types = events.select(pl.col("event_type").cast(pl.String).unique()).collect().to_series()
    unknown = sorted(t for t in types.to_list() if t not in EVENT_TYPES)
    return CheckOutcome(
        passed=not unknown, figures={"unknown_types": ", ".join(map(str, unknown)) or "none"}
    )


def count_skus_missing_from_products(events: pl.LazyFrame, products: pl.DataFrame) -> CheckOutcome:
    with_sku = events.filter(pl.col("sku").is_not_null())
    missing = with_sku.join(products.lazy().select("sku"), on="sku", how="anti")
    n_events, n_skus = missing.select(pl.len(), pl.col("sku").n_unique()).collect().row(0)
    return CheckOutcome(
        passed=n_events == 0,
        figures={"events_with_unknown_sku": n_events, "unknown_skus": n_skus},
    )


def scan_events(root: str | Path, days: Iterable[dt.date] | None = None) -> pl.LazyFrame:
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
