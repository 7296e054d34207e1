"""The universal embedding's parts put side by side: the latent, the scaled features, the item
affinity and the activity forecast, each standardised (and bounded or weighted) over the clients.
"""

from __future__ import annotations

import numpy as np
import polars as pl

# The forecast's three columns are scaled up after standardising: among a thousand affinity
# columns the probe otherwise under-uses them. Chosen on the train target window (probe trained
# on one half of the clients, scored on the other; docs/quality.md).
FORECAST_WEIGHT = 16.0
# Affinity columns are sparse: a client with a rare item lies tens of standard deviations out
# and, through the probe's first LayerNorm, drowns the rest of their row. Each standardised
# column is clipped to this bound instead (near "above the mean on this item or not"). Chosen
# on the train-window halves like the weight above.
AFFINITY_BOUND = 0.5


def standardised(
    frame: pl.DataFrame, client_ids: np.ndarray, bound: float | None = None
) -> np.ndarray:
    """`frame`'s columns (after client_id) in the order of client_ids, each to mean 0 and
    standard deviation 1 over the clients (constant columns to 0), clipped to +-bound if one is
    given, float32."""
    values = (
        pl.DataFrame({"client_id": client_ids})
        .join(frame, on="client_id", how="left", validate="1:1", maintain_order="left")
        .drop("client_id")
        .fill_null(0.0)
        .to_numpy()
        .astype(np.float64)
    )
    spread = values.std(axis=0)
    scores = (values - values.mean(axis=0)) / np.where(spread > 0, spread, 1.0)
    if bound is not None:
        scores = np.clip(scores, -bound, bound)
    return scores.astype(np.float32)


def compositions(
    latent: np.ndarray,
    features: np.ndarray,
    affinity: pl.DataFrame,
    forecast: pl.DataFrame,
    client_ids: np.ndarray,
) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """Every composition by name (the registry's `Method.composition`), and each part's width."""
    near = standardised(affinity, client_ids, AFFINITY_BOUND)
    ahead = FORECAST_WEIGHT * standardised(forecast, client_ids)
    vectors = {
        "latent": latent,
        "latent+features": np.hstack([latent, features]),
        "universal": np.hstack([latent, near, ahead]),
    }
    widths = {
        "latent": latent.shape[1],
        "features": features.shape[1],
        "affinity": near.shape[1],
        "forecast": ahead.shape[1],
    }
    return vectors, widths
