"""The code location: every asset, check, job and resource of the project, assembled once."""

from __future__ import annotations

import dagster as dg

from ubp_assets.events.assets import events
from ubp_assets.raw.assets import RAW_KEYS, raw_files, synthetic_raw
from ubp_assets.resources import build_resources

synthetic_raw_job = dg.define_asset_job(
    "synthetic_raw_job", selection=[synthetic_raw], description="Write a synthetic release."
)
observe_raw_job = dg.define_asset_job(
    "observe_raw_job",
    selection=dg.AssetSelection.assets(*RAW_KEYS.values()),
    description="Fingerprint the release's files; a changed file marks its dependants stale.",
)
events_job = dg.define_asset_job(
    "events_job",
    selection=[events],
    description="The day-partitioned event table; a backfill of many days runs as one pass.",
)

defs = dg.Definitions(
    assets=[synthetic_raw, raw_files, events],
    jobs=[synthetic_raw_job, observe_raw_job, events_job],
    resources=build_resources(),
)
