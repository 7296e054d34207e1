"""Names of the release's files as assets, shared by every stage that depends on them by key."""

from __future__ import annotations

import dagster as dg

from ubp_assets.events.schema import RAW_FILES, RELEVANT_CLIENTS
from ubp_assets.features.pipeline import FOLDS, fold_name
from ubp_assets.synthetic.release import TRUTH_FILE

RAW_FILENAMES = {
    **{name: spec.filename for name, spec in RAW_FILES.items()},
    "relevant_clients": RELEVANT_CLIENTS,
}
RAW_KEYS = {name: dg.AssetKey(["raw", name]) for name in RAW_FILENAMES}
# The generator's latent truth: only the oracle reads it, so that no method can score by knowing
# what it is scored against.
SYNTHETIC_TRUTH = dg.AssetKey(["raw", "synthetic_truth"])
SYNTHETIC_TRUTH_FILE = TRUTH_FILE
# Each family's fold, by family.
FOLD_KEYS = {family: dg.AssetKey(fold_name(family)) for family in FOLDS}
