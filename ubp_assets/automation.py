"""What runs by itself: a daily schedule, a sensor on the raw files, and the automation conditions
that make the rest of the graph follow.

- Each night `daily_schedule` (in `definitions`) takes yesterday in up to the feature matrix in one
  run of `update_job`.
- New days arrive in the raw files: `raw_files_sensor` notices (the files' fingerprints changed)
  and asks for exactly the day partitions the files cover and `events` lacks, as one run.
- Folds, the feature matrix, targets, baselines, embeddings and scores follow their inputs
  (`FOLLOWS_INPUTS`), once every input that exists has settled.
- The Optuna study and the autoencoder retrain weekly or when their code version changes
  (`RETRAINS_WEEKLY`), never on every new day.
"""

import datetime as dt
import json

import dagster as dg

from ubp_assets.events.schema import RAW_EVENT_FILES
from ubp_assets.features.pipeline import PARTIALS
from ubp_assets.partitions import FIRST_DAY, LAST_DAY
from ubp_assets.raw.assets import RAW_FILENAMES, RAW_KEYS, synthetic_truth
from ubp_assets.raw.files import file_state, timestamp_span
from ubp_assets.resources import UbpStorage
from ubp_assets.storage import day_range

# The day-partitioned assets: their partitions run to UBP_LAST_DAY, and the days the data does
# not cover yet stay missing without holding the rest of the graph back.
DAY_PARTITIONED = dg.AssetSelection.assets("events", *PARTIALS)
# The oracle reads the synthetic latent truth from its file; nothing observes it, so it never
# counts as a missing input.
NEVER_OBSERVED = dg.AssetSelection.assets(synthetic_truth.key)
# Eager: runs when an input updates, once none is in progress and no unpartitioned input is
# missing (user_embeddings waits for a first autoencoder).
FOLLOWS_INPUTS = (
    dg.AutomationCondition.eager().without(~dg.AutomationCondition.any_deps_missing())
    & ~dg.AutomationCondition.any_deps_missing().ignore(DAY_PARTITIONED | NEVER_OBSERVED)
).with_label("follows its inputs")
WEEKLY = "0 3 * * 1"  # Mondays 03:00
RETRAINS_WEEKLY = (
    dg.AutomationCondition.on_cron(WEEKLY) | dg.AutomationCondition.code_version_changed()
).with_label("weekly, or when its code changes")


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
