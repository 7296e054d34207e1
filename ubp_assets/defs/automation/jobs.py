"""The jobs `ubp run`, the UI and the backfills launch, and the nightly schedule of `update_job`.

Assets are selected by key: this module imports no asset module.
"""

import dagster as dg

from ubp_assets.features.pipeline import PARTIALS
from ubp_assets.keys import FOLD_KEYS, RAW_KEYS
from ubp_assets.methods import method_assets
from ubp_assets.partitions import event_days

DAILY = dg.AssetSelection.assets("events", *PARTIALS)
FEATURES = dg.AssetSelection.assets("challenge_split", *FOLD_KEYS.values(), "feature_matrix")
EMBEDDINGS = dg.AssetSelection.assets(
    "targets",
    *method_assets(),
    "product_urls",
    "item_affinity",
    "activity_forecast",
    "hparam_study",
    "autoencoder",
    "probe_scores",
    "history_bound_scores",
)

synthetic_raw_job = dg.define_asset_job(
    "synthetic_raw_job", selection=["synthetic_raw"], description="Write a synthetic release."
)
observe_raw_job = dg.define_asset_job(
    "observe_raw_job",
    selection=dg.AssetSelection.assets(*RAW_KEYS.values()),
    description="Fingerprint the release's files; a changed file marks its dependants stale.",
)
daily_job = dg.define_asset_job(
    "daily_job",
    selection=DAILY,
    partitions_def=event_days,
    description="The day-partitioned event table and every family's daily partial; a backfill "
    "of many days runs as one pass.",
)
features_job = dg.define_asset_job(
    "features_job",
    selection=FEATURES,
    description="The challenge split, every family folded over the history, the feature matrix.",
)
update_job = dg.define_asset_job(
    "update_job",
    selection=DAILY | FEATURES,
    partitions_def=event_days,
    description="Days taken in end to end, in one run: their events partitions and daily "
    "partials, then the split, every family's fold and the feature matrix (a fold whose input "
    "days did not change stands). The nightly schedule runs it for yesterday; `ubp run` for "
    "every day. Its steps run in the run's process.",
    # A new day's five steps are small (0.1 to 2 s of work each); Dagster's default executor
    # would start a process that loads the code location for each (a new day at the tenth scale
    # took 44 s that way, 6 to 9 s in one process when it had fifteen steps).
    executor_def=dg.in_process_executor,
)
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
