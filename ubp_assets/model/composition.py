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
# A fit holds this many columns of every client as float64 at a time (1M x 25: 0.2 GB, a few
# copies of it at once), and `apply` this many of a shard's rows (16,384 x 1,460: 0.2 GB): whole
# shards of a thousand affinity columns in float64 held 4 GB in the embeddings step.
_COLUMNS_AT_ONCE = 25
_ROWS_AT_ONCE = 16_384


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
        client the frame lacks counts as zeros. Computed a block of rows at a time (every step is
        per value, so the blocks' rows are those of one pass)."""
        aligned = (
            pl.DataFrame({"client_id": client_ids})
            .join(frame, on="client_id", how="left", validate="1:1", maintain_order="left")
            .drop("client_id")
        )
        out = np.empty(aligned.shape, dtype=np.float32)
        for lo in range(0, aligned.height, _ROWS_AT_ONCE):
            scores = (_float64(aligned.slice(lo, _ROWS_AT_ONCE)) - self.mean) / self.spread
            if self.bound is not None:
                scores = np.clip(scores, -self.bound, self.bound)
            out[lo : lo + len(scores)] = self.weight * scores.astype(np.float32)
        return out


def _float64(frame: pl.DataFrame) -> np.ndarray:
    return frame.fill_null(0.0).to_numpy().astype(np.float64)


def compose(parts: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every composition of one shard's parts (latent, features, affinity, forecast)."""
    return {name: np.hstack([parts[p] for p in used]) for name, used in PARTS.items()}
