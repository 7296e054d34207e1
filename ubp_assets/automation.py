"""The automation conditions each asset declares: what follows its inputs and what retrains weekly.

- Each night `daily_schedule` (defs/automation) takes yesterday in up to the feature matrix in one
  run of `update_job`; `raw_files_sensor` asks for the day partitions new raw files cover.
- Folds, the feature matrix, targets, baselines, embeddings and scores follow their inputs
  (`FOLLOWS_INPUTS`), once every input that exists has settled.
- The Optuna study and the autoencoder retrain weekly or when their code version changes
  (`RETRAINS_WEEKLY`), never on every new day.
- The day-partitioned assets and `synthetic_raw` declare none: the schedule, the sensor and a
  person start them.
"""

import dagster as dg

from ubp_assets.features.pipeline import PARTIALS
from ubp_assets.keys import SYNTHETIC_TRUTH

# The day-partitioned assets: their partitions run to UBP_LAST_DAY, and the days the data does
# not cover yet stay missing without holding the rest of the graph back.
DAY_PARTITIONED = dg.AssetSelection.assets("events", *PARTIALS)
# The oracle reads the synthetic latent truth from its file; nothing observes it, so it never
# counts as a missing input.
NEVER_OBSERVED = dg.AssetSelection.assets(SYNTHETIC_TRUTH)
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
