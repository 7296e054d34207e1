"""The universal embedding's parts put side by side: the latent, the scaled features, the item
affinity and the activity forecast, each standardised (and bounded or weighted) over the clients.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

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


# Each composition by name (the registry's `Method.composition`): its parts, side by side.
PARTS: dict[str, tuple[str, ...]] = {
    "latent": ("latent",),
    "latent+features": ("latent", "features"),
    "universal": ("latent", "affinity", "forecast"),
}
_COLUMNS_AT_ONCE = 100  # columns a fit holds as float64 at a time: 1M x 100 is 0.8 GB


@dataclass(frozen=True)
class ColumnScale:
    """A table's columns to mean 0 and standard deviation 1 over every client (constant columns
    to 0), clipped to +-bound if one is given, times weight: fitted once over the whole table,
    applied a client shard at a time, so that every shard is scaled alike."""

    mean: np.ndarray
    spread: np.ndarray
    bound: float | None = None
    weight: float = 1.0

    @classmethod
    def fit(
        cls,
        read_columns: Callable[[list[str]], pl.DataFrame],
        columns: list[str],
        bound: float | None = None,
        weight: float = 1.0,
    ) -> ColumnScale:
        """Over the stored clients, 100 columns at a time (numpy reduces a column over the rows in
        the same order whatever its neighbours, so the figures are those of one pass)."""
        means, spreads = [], []
        for lo in range(0, len(columns), _COLUMNS_AT_ONCE):
            values = _float64(read_columns(columns[lo : lo + _COLUMNS_AT_ONCE]))
            means.append(values.mean(axis=0))
            spreads.append(values.std(axis=0))
        empty = np.zeros(0)
        mean = np.concatenate(means) if means else empty
        spread = np.concatenate(spreads) if spreads else empty
        return cls(mean, np.where(spread > 0, spread, 1.0), bound, weight)

    def apply(self, frame: pl.DataFrame, client_ids: np.ndarray) -> np.ndarray:
        """`frame`'s columns (after client_id) in the order of client_ids, scaled, float32; a
        client the frame lacks counts as zeros."""
        values = _float64(
            pl.DataFrame({"client_id": client_ids})
            .join(frame, on="client_id", how="left", validate="1:1", maintain_order="left")
            .drop("client_id")
        )
        scores = (values - self.mean) / self.spread
        if self.bound is not None:
            scores = np.clip(scores, -self.bound, self.bound)
        return self.weight * scores.astype(np.float32)


def _float64(frame: pl.DataFrame) -> np.ndarray:
    return frame.fill_null(0.0).to_numpy().astype(np.float64)


def compose(parts: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every composition of one shard's parts (latent, features, affinity, forecast)."""
    return {name: np.hstack([parts[p] for p in used]) for name, used in PARTS.items()}
