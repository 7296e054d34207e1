"""The embedding methods: one registry that the probe, the report, the compositions and the tests
read. Adding a method is its asset (which publishes `<data>/embeddings/<name>/`) plus one line.

No Dagster here: asset names are plain strings.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Method:
    name: str  # its folder under embeddings/ and its rows in probe_scores
    asset: str  # the asset that writes the folder
    # scored only where its folder exists (the oracle needs a synthetic release's latent truth)
    optional: bool = False
    # for user_embeddings: the composition of the universal embedding this folder holds
    composition: str | None = None


BASELINE = "aggregated_baseline"  # the organisers' baseline: the gap's floor
CEILING = "oracle"  # the generator's truth: the gap's ceiling
USER_EMBEDDINGS = "user_embeddings"

# In the report's order.
METHODS: tuple[Method, ...] = (
    Method("random", "random_embeddings"),
    Method(BASELINE, "aggregated_baseline_embeddings"),
    Method("feature_matrix", "feature_matrix_embeddings"),
    Method("autoencoder_latent", USER_EMBEDDINGS, composition="latent"),
    Method("autoencoder_latent_features", USER_EMBEDDINGS, composition="latent+features"),
    Method("universal", USER_EMBEDDINGS, composition="universal"),
    Method(CEILING, "oracle_embeddings", optional=True),
)
COMPOSITIONS = {m.composition: m.name for m in METHODS if m.composition}
DEFAULT_COMPOSITION = "universal"


def method_assets(methods: tuple[Method, ...] = METHODS) -> list[str]:
    """The assets that write the methods' folders, each once, in order."""
    return list(dict.fromkeys(m.asset for m in methods))
