"""The code location: every asset, check, job and resource of the project, assembled once."""

from __future__ import annotations

import dagster as dg

from ubp_assets.automation import (
    FOLLOWS_INPUTS,
    RETRAINS_WEEKLY,
    automation_sensor,
    raw_files_sensor,
)
from ubp_assets.evaluation.assets import (
    aggregated_baseline_embeddings,
    challenge_split,
    feature_matrix_embeddings,
    history_bound_scores,
    oracle_embeddings,
    probe_scores,
    random_embeddings,
    targets,
)
from ubp_assets.events.assets import events
from ubp_assets.features.assets import (
    daily_partials,
    day_files_intact,
    family_features,
    feature_matrix,
    item_affinity,
    product_urls,
)
from ubp_assets.model.assets import activity_forecast, autoencoder, hparam_study, user_embeddings
from ubp_assets.raw.assets import RAW_KEYS, raw_files, synthetic_raw, synthetic_truth
from ubp_assets.resources import build_resources

synthetic_raw_job = dg.define_asset_job(
    "synthetic_raw_job", selection=[synthetic_raw], description="Write a synthetic release."
)
observe_raw_job = dg.define_asset_job(
    "observe_raw_job",
    selection=dg.AssetSelection.assets(*RAW_KEYS.values()),
    description="Fingerprint the release's files; a changed file marks its dependants stale.",
)
daily_job = dg.define_asset_job(
    "daily_job",
    selection=[events, daily_partials],
    description="The day-partitioned event table and every family's daily partial; a backfill "
    "of many days runs as one pass.",
)
features_job = dg.define_asset_job(
    "features_job",
    selection=[challenge_split, family_features, feature_matrix],
    description="The challenge split, every family folded over the history, the feature matrix.",
)
update_job = dg.define_asset_job(
    "update_job",
    selection=[events, daily_partials, challenge_split, family_features, feature_matrix],
    description="Days taken in end to end, in one run: their events partitions and daily "
    "partials, then the split, every family's fold and the feature matrix (a fold whose input "
    "days did not change stands). The nightly schedule runs it for yesterday; `ubp run` for "
    "every day. Its steps run in the run's process.",
    # A new day's five steps are small (0.1 to 2 s of work each); Dagster's default executor
    # would start a process that loads the code location for each (a new day at the tenth scale
    # took 44 s that way, 6 to 9 s in one process when it had fifteen steps).
    executor_def=dg.in_process_executor,
)
EMBEDDINGS = [
    targets,
    random_embeddings,
    aggregated_baseline_embeddings,
    feature_matrix_embeddings,
    oracle_embeddings,
    product_urls,
    item_affinity,
    activity_forecast,
    hparam_study,
    autoencoder,
    user_embeddings,
    probe_scores,
    history_bound_scores,
]
embeddings_job = dg.define_asset_job(
    "embeddings_job",
    selection=EMBEDDINGS,
    description="The six tasks' targets, every method's embeddings (the baselines, the oracle, "
    "the tuned autoencoder's and the universal embedding with its item affinity) and the "
    "probe's scores of them all, and what the history can show of churn and conversion.",
)

daily_schedule = dg.build_schedule_from_partitioned_job(
    update_job,
    hour_of_day=2,
    name="daily_schedule",
    description="Each night, one run takes yesterday in: its events partition and daily "
    "partials, then the folds and the feature matrix.",
    default_status=dg.DefaultScheduleStatus.STOPPED,
)

# Who starts what: the schedule takes a new day in up to the feature matrix in one run; the
# raw-files sensor runs the day partitions the files cover; the rest of the graph follows them
# by declarative automation, except the model, which retrains weekly.
MANUAL = {"synthetic_raw"}
WEEKLY = {"hparam_study", "autoencoder"}


def with_automation(spec: dg.AssetSpec) -> dg.AssetSpec:
    name = spec.key.to_user_string()
    if name in MANUAL or spec.partitions_def is not None:
        return spec
    condition = RETRAINS_WEEKLY if name in WEEKLY else FOLLOWS_INPUTS
    return spec.replace_attributes(automation_condition=condition)


ASSETS = dg.map_asset_specs(
    with_automation,
    [
        synthetic_raw,
        events,
        daily_partials,
        challenge_split,
        family_features,
        feature_matrix,
        *EMBEDDINGS,
    ],
)


def make_definitions(resources: dict[str, object]) -> dg.Definitions:
    """The code location's definitions over the given resources (tests point them elsewhere)."""
    return dg.Definitions(
        assets=[*ASSETS, raw_files, synthetic_truth],
        asset_checks=[day_files_intact],
        jobs=[
            synthetic_raw_job,
            observe_raw_job,
            daily_job,
            update_job,
            features_job,
            embeddings_job,
        ],
        schedules=[daily_schedule],
        sensors=[raw_files_sensor, automation_sensor],
        resources=resources,
    )


defs = make_definitions(build_resources())
