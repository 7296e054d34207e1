"""Where the data lives: one typed resource, configured from environment variables.

Every path hangs off `data_dir` (UBP_DATA_DIR, default ./data) except the raw release, which
UBP_RAW_DIR can point at a real RecSys Challenge 2025 download left exactly as released.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import dagster as dg
import polars as pl
from dagster_duckdb import DuckDBIOManager, DuckDBResource
from dagster_duckdb_polars import DuckDBPolarsTypeHandler
from pydantic import Field

WAREHOUSE_POOL = "duckdb_warehouse"


class UbpStorage(dg.ConfigurableResource):
    """Paths of the raw release, the day-partitioned tables, the quarantine and the warehouse."""

    data_dir: str = Field(description="Root of everything the pipeline writes.")
    raw_dir: str = Field(
        default="", description="The release's folder; empty means <data_dir>/raw."
    )

    @property
    def root(self) -> Path:
        return Path(self.data_dir).expanduser().resolve()

    @property
    def raw_path(self) -> Path:
        return Path(self.raw_dir).expanduser().resolve() if self.raw_dir else self.root / "raw"

    @property
    def events_dir(self) -> Path:
        return self.root / "warehouse" / "events"

    @property
    def quarantine_dir(self) -> Path:
        return self.root / "quarantine"

    @property
    def warehouse_path(self) -> Path:
        return self.root / "warehouse.duckdb"

    @property
    def partials_dir(self) -> Path:
        return self.root / "warehouse" / "partials"

    @property
    def reports_dir(self) -> Path:
        return self.root / "reports"

    @property
    def target_dir(self) -> Path:
        """The six tasks' target lists and windows, in the organisers' `target/` layout."""
        return self.root / "evaluation" / "target"

    @property
    def embeddings_dir(self) -> Path:
        """One folder per embedding method, each in the challenge's submission format."""
        return self.root / "embeddings"

    @property
    def models_dir(self) -> Path:
        """The Optuna study's database and one autoencoder file per materialization."""
        return self.root / "models"

    @property
    def relevant_clients_path(self) -> Path:
        return self.raw_path / "input" / "relevant_clients.npy"

    @classmethod
    def from_env(cls) -> UbpStorage:
        return cls(
            data_dir=os.environ.get("UBP_DATA_DIR", str(Path.cwd() / "data")),
            raw_dir=os.environ.get("UBP_RAW_DIR", ""),
        )


class FeatureSettings(dg.ConfigurableResource):
    """Which history the user-level features see (UBP_FEATURE_CUTOFF).

    "split" (default): days before the challenge split's train_target_start, so that scoring on
    the target windows is honest; "all": every stored day, for final embeddings; or a date
    (YYYY-MM-DD): days before it.
    """

    cutoff: str = Field(default="split", description='"split", "all" or a date YYYY-MM-DD')

    def cutoff_date(self, train_target_start: dt.date, last_day: dt.date) -> dt.date:
        if self.cutoff == "split":
            return train_target_start
        if self.cutoff == "all":
            return last_day + dt.timedelta(days=1)
        try:
            return dt.date.fromisoformat(self.cutoff)
        except ValueError:
            raise ValueError(
                f"feature cutoff {self.cutoff!r} is not 'split', 'all' or a YYYY-MM-DD date"
            ) from None

    @classmethod
    def from_env(cls) -> FeatureSettings:
        return cls(cutoff=os.environ.get("UBP_FEATURE_CUTOFF", "split"))


class ProbeSettings(dg.ConfigurableResource):
    """How embeddings are scored (UBP_PROBE_PROFILE, UBP_DEVICE).

    "official": the organisers' probe widths (2048/4096, about 51M parameters: a GPU's work);
    "fast": the same structure at 256/512, for CPUs and tests. Scores from the two profiles are
    not comparable with each other; every report says which produced it.
    """

    profile: str = Field(default="fast", description='"official" or "fast"')
    device: str = Field(default="cpu", description='torch device: "cpu" or "cuda"')

    @classmethod
    def from_env(cls) -> ProbeSettings:
        return cls(
            profile=os.environ.get("UBP_PROBE_PROFILE", "fast"),
            device=os.environ.get("UBP_DEVICE", "cpu"),
        )


class TrainingSettings(dg.ConfigurableResource):
    """Where and how long the autoencoder trains (UBP_DEVICE, UBP_TRIALS, UBP_TRIAL_EPOCHS,
    UBP_STUDY_TIMEOUT, UBP_EPOCHS). A materialization of hparam_study adds `trials` trials to the
    stored study, within `study_timeout_s`."""

    device: str = Field(default="cpu", description='torch device: "cpu" or "cuda"')
    trials: int = Field(default=5, description="trials each hparam_study materialization adds")
    trial_epochs: int = Field(default=6, description="autoencoder epochs in a tuning trial")
    study_timeout_s: int = Field(default=1800, description="wall-clock limit of one study run")
    epochs: int = Field(default=25, description="the final autoencoder's epochs (early-stopped)")

    @classmethod
    def from_env(cls) -> TrainingSettings:
        env = os.environ
        return cls(
            device=env.get("UBP_DEVICE", "cpu"),
            trials=int(env.get("UBP_TRIALS", "5")),
            trial_epochs=int(env.get("UBP_TRIAL_EPOCHS", "6")),
            study_timeout_s=int(env.get("UBP_STUDY_TIMEOUT", "1800")),
            epochs=int(env.get("UBP_EPOCHS", "25")),
        )


class ReplacingPolarsTypeHandler(DuckDBPolarsTypeHandler):
    """Writes an unpartitioned table anew instead of inserting into the old one.

    The stock handler keeps a table's first schema forever, so a table whose columns change
    (an upgrade that adds or drops columns) could never be written again.
    """

    def handle_output(self, context, table_slice, obj: pl.DataFrame, connection):
        if not table_slice.partition_dimensions and not obj.is_empty():
            connection.execute(f"DROP TABLE IF EXISTS {table_slice.schema}.{table_slice.table}")
        super().handle_output(context, table_slice, obj, connection)


class WarehouseIOManager(DuckDBIOManager):
    """Polars frames as DuckDB tables in the warehouse; unpartitioned tables are replaced."""

    @staticmethod
    def type_handlers():
        return [ReplacingPolarsTypeHandler()]

    @staticmethod
    def default_load_type():
        return pl.DataFrame


def build_resources(
    storage: UbpStorage | None = None,
    features: FeatureSettings | None = None,
    probe: ProbeSettings | None = None,
    training: TrainingSettings | None = None,
) -> dict[str, object]:
    storage = storage or UbpStorage.from_env()
    storage.root.mkdir(parents=True, exist_ok=True)
    database = str(storage.warehouse_path)
    return {
        "storage": storage,
        "feature_settings": features or FeatureSettings.from_env(),
        "probe_settings": probe or ProbeSettings.from_env(),
        "training_settings": training or TrainingSettings.from_env(),
        "warehouse": DuckDBResource(database=database),
        "warehouse_io": WarehouseIOManager(database=database, schema="main"),
    }
