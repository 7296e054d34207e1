"""The sensors: one on the raw files' fingerprints, and the one that evaluates every asset's
automation condition."""

import datetime as dt
import json

import dagster as dg

from ubp_assets.events.schema import RAW_EVENT_FILES
from ubp_assets.keys import RAW_FILENAMES, RAW_KEYS
from ubp_assets.partitions import FIRST_DAY, LAST_DAY
from ubp_assets.raw.files import file_state, timestamp_span
from ubp_assets.resources import UbpStorage
from ubp_assets.storage import day_range


def raw_fingerprints(storage: UbpStorage) -> dict[str, str]:
    return {
        name: file_state(storage.raw_path / filename).fingerprint
        for name, filename in RAW_FILENAMES.items()
    }


def raw_days(storage: UbpStorage) -> list[dt.date]:
    """The partition days the raw event files cover, from their parquet statistics."""
    spans = [
        timestamp_span(storage.raw_path / RAW_FILENAMES[name])
        for name in RAW_EVENT_FILES
        if (storage.raw_path / RAW_FILENAMES[name]).is_file()
    ]
    spans = [s for s in spans if s is not None]
    if not spans:
        return []
    first = max(min(s[0] for s in spans), FIRST_DAY)
    last = min(max(s[1] for s in spans), LAST_DAY)
    return day_range(first, last) if first <= last else []


def missing_ranges(days: list[dt.date], have: set[str]) -> list[tuple[str, str]]:
    """Contiguous runs of the days whose partition is not materialized, as (first, last) keys."""
    ranges: list[tuple[str, str]] = []
    for day in days:
        key = day.isoformat()
        if key in have:
            continue
        if ranges and dt.date.fromisoformat(ranges[-1][1]) + dt.timedelta(days=1) == day:
            ranges[-1] = (ranges[-1][0], key)
        else:
            ranges.append((key, key))
    return ranges


@dg.sensor(
    job_name="daily_job",
    minimum_interval_seconds=300,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Watches the raw files' fingerprints (size, mtime, row count). When they change "
    "it records the new data versions of raw/* and asks for exactly the day partitions the "
    "files now cover that events lacks, one run per contiguous range (a single-run backfill).",
)
def raw_files_sensor(context: dg.SensorEvaluationContext, storage: UbpStorage):
    fingerprints = raw_fingerprints(storage)
    cursor = json.dumps(fingerprints, sort_keys=True)
    if cursor == context.cursor:
        return dg.SkipReason("the raw files have not changed")
    before = json.loads(context.cursor) if context.cursor else {}
    have = context.instance.get_materialized_partitions(dg.AssetKey("events"))
    ranges = missing_ranges(raw_days(storage), have)
    observations = [
        dg.AssetObservation(asset_key=RAW_KEYS[name], tags={"dagster/data_version": fingerprint})
        for name, fingerprint in fingerprints.items()
        if before.get(name) != fingerprint
    ]
    requests = [
        dg.RunRequest(
            run_key=f"{first}..{last}:{cursor}",
            tags={
                "dagster/asset_partition_range_start": first,
                "dagster/asset_partition_range_end": last,
            },
        )
        for first, last in ranges
    ]
    return dg.SensorResult(run_requests=requests, asset_events=observations, cursor=cursor)


automation_sensor = dg.AutomationConditionSensorDefinition(
    "automation_sensor",
    target=dg.AssetSelection.all(),
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Evaluates every asset's automation condition: the features, embeddings and "
    "scores follow new partitions; the model retrains weekly.",
)
