"""The day-partitioned event table and its checks, wired to the pure functions of `table`."""

import dagster as dg
import polars as pl
from dagster_duckdb import DuckDBResource

from ubp_assets.events.raw_reader import REASON, RawDataError
from ubp_assets.events.schema import COLUMN_DESCRIPTIONS, EVENT_TYPES, EVENTS_SCHEMA, RAW_FILES
from ubp_assets.events.table import (
    build_events,
    check_event_types_known,
    check_keys_not_null,
    check_timestamps_in_partition,
    count_skus_missing_from_products,
    raw_days_within,
    scan_events,
    write_quarantine,
)
from ubp_assets.keys import RAW_KEYS
from ubp_assets.markdown import markdown_table
from ubp_assets.metadata import column_schema
from ubp_assets.partitions import FIRST_DAY, LAST_DAY, event_days, window_days
from ubp_assets.resources import WAREHOUSE_POOL, UbpStorage
from ubp_assets.storage import DATA_FILE, day_range, write_day_partitions

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
    pool=WAREHOUSE_POOL,
    check_specs=[
        dg.AssetCheckSpec(name, asset="events", description=d) for name, d in CHECKS.items()
    ],
    description="Every event of the five raw files as one typed table (client_id, timestamp, "
    "event_type, sku, category, price, url, query), one parquet file per day in a hive layout. "
    "A run over many days scans each raw file once; rerunning a day replaces it exactly. Bad rows "
    "are counted and written to the quarantine, never dropped silently.",
)
def events(
    context: dg.AssetExecutionContext, storage: UbpStorage, warehouse: DuckDBResource
) -> dg.MaterializeResult:
    first, last = window_days(context)
    days = day_range(first, last)
    context.log.info(
        f"building events for {first}..{last} ({len(days)} days) from {storage.raw_path}"
    )
    try:
        build = build_events(storage.raw_path, first, last, (FIRST_DAY, LAST_DAY))
    except RawDataError as exc:
        raise dg.Failure(description=str(exc)) from exc
    written = write_day_partitions(build.events, storage.events_dir, days)
    write_quarantine(build.rejected, storage.quarantine_dir, days)
    _register_views(warehouse, storage)

    stored = scan_events(storage.events_dir, days)
    outcomes = {
        "keys_not_null": (check_keys_not_null(stored), dg.AssetCheckSeverity.ERROR),
        "timestamps_in_partition": (
            check_timestamps_in_partition(stored),
            dg.AssetCheckSeverity.ERROR,
        ),
        "event_types_known": (check_event_types_known(stored), dg.AssetCheckSeverity.ERROR),
        "skus_in_product_properties": (
            count_skus_missing_from_products(stored, build.products),
            dg.AssetCheckSeverity.WARN,
        ),
        "raw_days_within_partitions": (
            raw_days_within(storage.raw_path, FIRST_DAY, LAST_DAY),
            dg.AssetCheckSeverity.WARN,
        ),
    }
    by_type = build.events.group_by("event_type").len().sort("event_type")
    reasons = build.rejected.group_by("file", REASON).len().sort("file", REASON)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": build.events.height,
            "dagster/column_schema": column_schema(EVENTS_SCHEMA, COLUMN_DESCRIPTIONS),
            "days": f"{first}..{last}",
            "partitions_written": len(written),
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
            "preview": dg.MetadataValue.md(markdown_table(build.events.drop("date"))),
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


def _register_views(warehouse: DuckDBResource, storage: UbpStorage) -> None:
    """SQL access to the parquet partitions from the warehouse file, without copying them."""
    pattern = storage.events_dir / "date=*" / DATA_FILE
    with warehouse.get_connection() as conn:
        conn.execute(
            f"CREATE OR REPLACE VIEW events AS SELECT * FROM read_parquet('{pattern}', "
            "hive_partitioning = true, hive_types = {'date': DATE})"
        )
