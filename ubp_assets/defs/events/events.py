"""The day-partitioned event table and its checks, wired to the pure functions of `table`."""

import datetime as dt

import dagster as dg
import polars as pl

from ubp_assets.events.raw_reader import REASON, RawDataError
from ubp_assets.events.schema import COLUMN_DESCRIPTIONS, EVENT_TYPES, EVENTS_SCHEMA, RAW_FILES
from ubp_assets.events.table import (
    check_event_types_known,
    check_keys_not_null,
    check_timestamps_in_partition,
    count_skus_missing_from_products,
    events_in_chunks,
    events_per_day,
    raw_days_within,
    scan_events,
    write_quarantine,
)
from ubp_assets.keys import RAW_KEYS
from ubp_assets.markdown import markdown_table
from ubp_assets.metadata import column_schema
from ubp_assets.partitions import FIRST_DAY, LAST_DAY, event_days, window_days
from ubp_assets.progress import Progress
from ubp_assets.resources import HEAVY_POOL, ScaleSettings, UbpStorage
from ubp_assets.storage import day_chunks, day_range, write_day_partitions

CHECKS = {
    "keys_not_null": "client_id, timestamp and event_type are never null.",
    "timestamps_in_partition": "Every event lies inside its partition's day.",
    "event_types_known": "Every event_type is one of the five of the release.",
    "skus_in_product_properties": "Events whose SKU product_properties does not list "
    "(reported as a warning: their category and price are null).",
    "raw_days_within_partitions": "The raw files' first and last days (from their parquet "
    "statistics) fall inside the day partitions; days outside would never be materialized "
    "(a warning: set UBP_FIRST_DAY / UBP_LAST_DAY).",
}


@dg.asset(
    partitions_def=event_days,
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=[RAW_KEYS[name] for name in RAW_FILES],
    group_name="events",
    kinds={"polars", "parquet", "duckdb"},
    code_version="1",
    pool=HEAVY_POOL,
    check_specs=[
        dg.AssetCheckSpec(name, asset="events", description=d) for name, d in CHECKS.items()
    ],
    description="Every event of the five raw files as one typed table (client_id, timestamp, "
    "event_type, sku, category, price, url, query), one parquet file per day in a hive layout. "
    "A run over many days builds them a chunk of days at a time (as many as hold about "
    "UBP_CHUNK_EVENTS events), so its memory is set by the chunk; rerunning a day replaces it "
    "exactly. Bad rows are counted and written to the quarantine, never dropped silently.",
)
def events(
    context: dg.AssetExecutionContext,
    storage: UbpStorage,
    scale_settings: ScaleSettings,
) -> dg.MaterializeResult:
    first, last = window_days(context)
    days = day_range(first, last)
    chunk_days = scale_settings.chunk_days(
        events_per_day(storage.raw_path, len(day_range(FIRST_DAY, LAST_DAY)))
    )
    progress = Progress("chunk", len(day_chunks(days, chunk_days)), context.log.info)
    context.log.info(
        f"building events for {first}..{last} ({len(days)} days, {chunk_days} at a time) "
        f"from {storage.raw_path}"
    )
    built: list[dt.date] = []
    rows, by_type, reasons, preview = 0, [], [], None
    try:
        chunks = events_in_chunks(storage.raw_path, first, last, (FIRST_DAY, LAST_DAY), chunk_days)
        for chunk, build in chunks:
            write_day_partitions(build.events, storage.events_dir, chunk)
            write_quarantine(build.rejected, storage.quarantine_dir, chunk, undated=not built)
            built.extend(chunk)
            rows += build.events.height
            by_type.append(build.events.group_by("event_type").len())
            reasons.append(build.rejected.group_by("file", REASON).len())
            products = build.products
            preview = preview if preview is not None else build.events.head(10).drop("date")
            progress.advance(build.events.height, f"{chunk[0]}..{chunk[-1]}")
    except RawDataError as exc:
        written = f"; {built[0]}..{built[-1]} were written before it changed" if built else ""
        raise dg.Failure(description=f"{exc}{written}") from exc
    by_type = pl.concat(by_type).group_by("event_type").agg(pl.col("len").sum()).sort("event_type")
    reasons = pl.concat(reasons).group_by("file", REASON).agg(pl.col("len").sum())
    reasons = reasons.sort("file", REASON)

    stored = scan_events(storage.events_dir, days)
    outcomes = {
        "keys_not_null": (check_keys_not_null(stored), dg.AssetCheckSeverity.ERROR),
        "timestamps_in_partition": (
            check_timestamps_in_partition(stored),
            dg.AssetCheckSeverity.ERROR,
        ),
        "event_types_known": (check_event_types_known(stored), dg.AssetCheckSeverity.ERROR),
        "skus_in_product_properties": (
            count_skus_missing_from_products(stored, products),
            dg.AssetCheckSeverity.WARN,
        ),
        "raw_days_within_partitions": (
            raw_days_within(storage.raw_path, FIRST_DAY, LAST_DAY),
            dg.AssetCheckSeverity.WARN,
        ),
    }
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": rows,
            "dagster/column_schema": column_schema(EVENTS_SCHEMA, COLUMN_DESCRIPTIONS),
            "days": f"{first}..{last}",
            "partitions_written": len(built),
            "chunk_days": chunk_days,
            "rows_per_event_type": dg.MetadataValue.md(markdown_table(by_type)),
            **{
                f"rows_{t}": int(by_type.filter(pl.col("event_type") == t)["len"].sum())
                for t in EVENT_TYPES
            },
            "quarantined_rows": int(reasons["len"].sum()),
            "quarantined_by_reason": dg.MetadataValue.md(
                markdown_table(reasons, max_rows=50) if reasons.height else "no rejected rows"
            ),
            "quarantine_dir": dg.MetadataValue.path(str(storage.quarantine_dir)),
            "preview": dg.MetadataValue.md(markdown_table(preview)),
            "path": dg.MetadataValue.path(str(storage.events_dir)),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name=name,
                passed=outcome.passed,
                severity=severity,
                metadata=dict(outcome.figures),
            )
            for name, (outcome, severity) in outcomes.items()
        ],
    )
