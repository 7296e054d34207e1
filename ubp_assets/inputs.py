"""What an asset reads of what earlier assets stored: the relevant clients, the split, the
feature cutoff, the feature matrix. One reader each, so that no asset module imports another."""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass

import dagster as dg
import numpy as np
import polars as pl
from dagster_duckdb import DuckDBResource

from ubp_assets.evaluation.split import ChallengeSplit
from ubp_assets.partitions import LAST_DAY
from ubp_assets.resources import FeatureSettings, UbpStorage
from ubp_assets.warehouse import read_table

SPLIT_TABLE = "challenge_split"
MATRIX_TABLE = "feature_matrix"
# where Dagster records a materialization's data version
DATA_VERSION_TAG = "dagster/data_version"


def load_relevant_clients(storage: UbpStorage) -> np.ndarray:
    path = storage.relevant_clients_path
    if not path.is_file():
        raise dg.Failure(description=f"input/relevant_clients.npy: file not found at {path}")
    return np.load(path).astype(np.int64)


def read_split(warehouse: DuckDBResource) -> ChallengeSplit:
    row = read_table(warehouse, SPLIT_TABLE).row(0, named=True)
    return ChallengeSplit(
        row["end_date"], row["train_target_start"], row["validation_target_start"]
    )


def feature_cutoff(settings: FeatureSettings, split: ChallengeSplit) -> dt.date:
    """The first day the user-level features do not see."""
    return settings.cutoff_date(split.train_target_start.date(), LAST_DAY)


def cutoff_time(settings: FeatureSettings, split: ChallengeSplit) -> dt.datetime:
    return dt.datetime.combine(feature_cutoff(settings, split), dt.time())


def read_features(warehouse: DuckDBResource) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The feature matrix as (client ids, float32 values, feature names)."""
    matrix = read_table(warehouse, MATRIX_TABLE)
    return matrix["client_id"].to_numpy(), matrix.drop("client_id").to_numpy(), matrix.columns[1:]


@dataclass(frozen=True)
class TrainingRows:
    """The feature matrix's rows a model trains on: every client, or a seeded sample of them."""

    client_ids: np.ndarray
    features: np.ndarray
    names: list[str]
    of_clients: int  # the matrix's clients, sampled or not

    @property
    def described(self) -> str:
        n = len(self.client_ids)
        if n == self.of_clients:
            return f"every client ({n:,})"
        return f"a seeded sample of {n:,} of {self.of_clients:,} clients (UBP_TRAINING_CLIENTS)"


def read_training_rows(warehouse: DuckDBResource, size: int, seed: int) -> TrainingRows:
    """The whole feature matrix when it has at most `size` clients (the demo scale), else the
    rows of `size` clients drawn with `seed`: training memory and time are set by `size`, not by
    the release, and the same matrix gives the same sample."""
    ids = read_table(warehouse, MATRIX_TABLE, ["client_id"])["client_id"].to_numpy()
    if size >= len(ids):
        client_ids, features, names = read_features(warehouse)
        return TrainingRows(client_ids, features, names, len(ids))
    chosen = ids[np.random.default_rng(seed).choice(len(ids), size, replace=False)]
    matrix = read_table(warehouse, MATRIX_TABLE, client_ids=chosen)
    return TrainingRows(
        matrix["client_id"].to_numpy(),
        matrix.drop("client_id").to_numpy(),
        matrix.columns[1:],
        len(ids),
    )


def split_frame(split: ChallengeSplit) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "end_date": [split.end_date],
            "train_target_start": [split.train_target_start],
            "validation_target_start": [split.validation_target_start],
        }
    )


@dataclass(frozen=True)
class Recorded:
    """What the instance recorded of an asset's latest materialization."""

    data_version: str | None
    metadata: dict[str, object]


def latest_recorded(
    instance: dg.DagsterInstance, keys: list[dg.AssetKey]
) -> dict[dg.AssetKey, Recorded]:
    """Each asset's latest data version and metadata values (None and empty where it has none),
    in one query of the instance."""
    events = instance.get_latest_materialization_events(keys)
    found: dict[dg.AssetKey, Recorded] = {}
    for key in keys:
        event = events.get(key)
        done = event.asset_materialization if event is not None else None
        found[key] = Recorded(
            data_version=done.tags.get(DATA_VERSION_TAG) if done and done.tags else None,
            metadata={n: v.value for n, v in done.metadata.items()} if done else {},
        )
    return found


def digest(*parts: object) -> str:
    """A short, stable digest of the parts' text: the data versions this project computes."""
    return hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:16]
