"""The project's resources: where the data lives, the typed per-run settings, the warehouse.

Every path hangs off `data_dir` (UBP_DATA_DIR, default ./data) except the raw release, which
UBP_RAW_DIR can point at a real RecSys Challenge 2025 download left exactly as released. The
environment gives the defaults only where the definitions load (`from_env`), never at import;
the CLI and the tests pass their settings in. Choices are `Literal`s, so a wrong one fails when
the definitions load, with the allowed values.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource
from pydantic import Field, field_validator

from ubp_assets.location import AnyPath, data_location, is_local
from ubp_assets.warehouse import open_views

# The steps that hold a chunk of days or a shard of clients: one at a time per instance by
# default, so that memory is set by one step; a cluster raises the pool's limit (dagster.yaml).
HEAVY_POOL = "heavy_steps"


class UbpStorage(dg.ConfigurableResource):
    """Paths of the raw release, the day-partitioned tables, the quarantine and the warehouse.

    The data directory is a local folder or an object store's URL (`s3://bucket/prefix`,
    `location.py`); the raw release is read from a local folder (a copy or a mounted bucket on
    each machine), since its files are fingerprinted and memory-mapped."""

    data_dir: str = Field(description="Root of everything the pipeline writes: a folder or URL.")
    raw_dir: str = Field(
        default="", description="The release's local folder; empty means <data_dir>/raw."
    )

    @field_validator("raw_dir")
    @classmethod
    def _local_release(cls, value: str) -> str:
        if "://" in value:
            raise ValueError(f"the raw release {value!r} must be a local folder, not a URL")
        return value

    @property
    def root(self) -> AnyPath:
        return data_location(self.data_dir)

    @property
    def raw_path(self) -> Path:
        if self.raw_dir:
            return Path(self.raw_dir).expanduser().resolve()
        if not is_local(self.root):
            raise ValueError(
                f"the data is on an object store ({self.data_dir}): set UBP_RAW_DIR to the "
                "release's local folder (its files are fingerprinted and memory-mapped)"
            )
        return self.root / "raw"

    @property
    def events_dir(self) -> AnyPath:
        return self.warehouse_dir / "events"

    @property
    def quarantine_dir(self) -> AnyPath:
        return self.root / "quarantine"

    @property
    def warehouse_dir(self) -> AnyPath:
        """The day files (`events/`, `partials/`) and the tables (`tables/`): `warehouse.py`."""
        return self.root / "warehouse"

    @property
    def partials_dir(self) -> AnyPath:
        return self.warehouse_dir / "partials"

    @property
    def reports_dir(self) -> AnyPath:
        return self.root / "reports"

    @property
    def target_dir(self) -> AnyPath:
        """The six tasks' target lists and windows, in the organisers' `target/` layout."""
        return self.root / "evaluation" / "target"

    @property
    def embeddings_dir(self) -> AnyPath:
        """One folder per embedding method, each in the challenge's submission format."""
        return self.root / "embeddings"

    @property
    def models_dir(self) -> AnyPath:
        """The Optuna study's database and one autoencoder file per materialization."""
        return self.root / "models"

    @property
    def relevant_clients_path(self) -> Path:
        return self.raw_path / "input" / "relevant_clients.npy"

    @property
    def scaler_path(self) -> AnyPath:
        """The feature matrix's scaler, saved beside it to encode new clients."""
        return self.warehouse_dir / "feature_matrix" / "scaler.parquet"

    @property
    def best_params_path(self) -> AnyPath:
        """The study's best trial, which the autoencoder trains with."""
        return self.models_dir / "best_params.json"

    @property
    def autoencoder_path(self) -> AnyPath:
        """The latest trained autoencoder, with the feature names and scaler it was trained on."""
        return self.models_dir / "autoencoder.pt"

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

    @field_validator("cutoff")
    @classmethod
    def _split_all_or_date(cls, value: str) -> str:
        if value not in ("split", "all"):
            try:
                dt.date.fromisoformat(value)
            except ValueError:
                raise ValueError(
                    f"feature cutoff {value!r} is not 'split', 'all' or a YYYY-MM-DD date"
                ) from None
        return value

    def cutoff_date(self, train_target_start: dt.date, last_day: dt.date) -> dt.date:
        if self.cutoff == "split":
            return train_target_start
        if self.cutoff == "all":
            return last_day + dt.timedelta(days=1)
        return dt.date.fromisoformat(self.cutoff)

    @classmethod
    def from_env(cls) -> FeatureSettings:
        return cls(cutoff=os.environ.get("UBP_FEATURE_CUTOFF", "split"))


class ProbeSettings(dg.ConfigurableResource):
    """How embeddings are scored (UBP_PROBE_PROFILE, UBP_DEVICE, UBP_PROBE_METHODS).

    "official": the organisers' probe widths (2048/4096, about 51M parameters: a GPU's work, and
    the default where UBP_DEVICE=cuda); "fast": the same structure at 256/512, for CPUs and
    tests. Scores from the two profiles are not comparable with each other; every report says
    which produced it. `methods` names the registry's methods to score (empty: every one): on a
    CPU, seven methods for a million clients take hours.
    """

    profile: Literal["official", "fast"] = Field(default="fast", description="the probe's widths")
    device: Literal["cpu", "cuda"] = Field(default="cpu", description="torch device")
    methods: list[str] = Field(
        default=[], description="the methods probe_scores scores, by name; empty: every one"
    )

    @field_validator("methods")
    @classmethod
    def _registered(cls, value: list[str]) -> list[str]:
        from ubp_assets.methods import METHODS

        known = [m.name for m in METHODS]
        unknown = [name for name in value if name not in known]
        if unknown:
            raise ValueError(f"probe methods {unknown} are not in the registry: {known}")
        return value

    def scores(self, name: str) -> bool:
        return not self.methods or name in self.methods

    @classmethod
    def from_env(cls) -> ProbeSettings:
        device = os.environ.get("UBP_DEVICE", "cpu")
        methods = os.environ.get("UBP_PROBE_METHODS", "")
        return cls(
            profile=os.environ.get("UBP_PROBE_PROFILE", "official" if device == "cuda" else "fast"),
            device=device,
            methods=[m.strip() for m in methods.split(",") if m.strip()],
        )


class TrainingSettings(dg.ConfigurableResource):
    """Where, how long and on how many clients the models train (UBP_DEVICE, UBP_TRIALS,
    UBP_TRIAL_EPOCHS, UBP_STUDY_TIMEOUT, UBP_EPOCHS, UBP_TRAINING_CLIENTS, UBP_OPTUNA_STORAGE).
    A materialization of hparam_study adds `trials` trials to the stored study, within
    `study_timeout_s`."""

    device: Literal["cpu", "cuda"] = Field(default="cpu", description="torch device")
    trials: int = Field(default=5, description="trials each hparam_study materialization adds")
    trial_epochs: int = Field(default=6, description="autoencoder epochs in a tuning trial")
    study_timeout_s: int = Field(default=1800, description="wall-clock limit of one study run")
    epochs: int = Field(default=25, description="the final autoencoder's epochs (early-stopped)")
    sample_clients: int = Field(
        default=100_000,
        ge=2,
        description="clients the study, the autoencoder and the activity forecast train on: all "
        "of them up to this many (the demo scale), else a seeded sample; every client is encoded",
    )
    study_storage: str = Field(
        default="",
        description="the Optuna study's storage URL (an RDB URL such as postgresql://..., so that "
        "several workers add trials to one study); empty: SQLite at models/hparam_study.db",
    )

    def study_url(self, storage: UbpStorage) -> str:
        if self.study_storage:
            return self.study_storage
        if not is_local(storage.models_dir):
            raise ValueError(
                f"the data is on an object store ({storage.data_dir}), where SQLite cannot "
                "live: set UBP_OPTUNA_STORAGE to the study's database URL (Postgres)"
            )
        return f"sqlite:///{storage.models_dir / 'hparam_study.db'}"

    @classmethod
    def from_env(cls) -> TrainingSettings:
        env = os.environ
        return cls(
            device=env.get("UBP_DEVICE", "cpu"),
            trials=int(env.get("UBP_TRIALS", "5")),
            trial_epochs=int(env.get("UBP_TRIAL_EPOCHS", "6")),
            study_timeout_s=int(env.get("UBP_STUDY_TIMEOUT", "1800")),
            epochs=int(env.get("UBP_EPOCHS", "25")),
            sample_clients=int(env.get("UBP_TRAINING_CLIENTS", "100000")),
            study_storage=env.get("UBP_OPTUNA_STORAGE", ""),
        )


class ScaleSettings(dg.ConfigurableResource):
    """How much a step holds at once (UBP_CHUNK_EVENTS, UBP_CLIENTS_PER_SHARD): memory is set by
    these, not by the data.

    A backfill of the day partitions, from the UI or `ubp run`, builds a chunk of days at a time
    in one run, as many days as hold about `chunk_events` events (`chunk_days`): 14 days at the
    quarter scale, 3 at the full release's (about 0.84M events a day), where 14 days held 4.0 GiB
    in the events step against 1.6 for 4 days. The families' folds work on the relevant clients
    in shards of at most `clients_per_shard` (`shards.py`): one shard at the demo scale, eight at
    the full release's; a table is written a part (a shard) at a time. `warehouse_memory` caps
    what DuckDB's queries over the tables hold, which is otherwise up to 80% of the machine.
    """

    chunk_events: int = Field(
        default=3_000_000, ge=1, description="events a backfill builds at a time, in whole days"
    )
    clients_per_shard: int = Field(
        default=125_000, ge=1, description="relevant clients a per-client stage holds at a time"
    )
    warehouse_memory: str = Field(
        default="2GB",
        description="DuckDB's memory_limit for queries over the tables (UBP_WAREHOUSE_MEMORY)",
    )

    def chunk_days(self, events_per_day: float) -> int:
        """Days a chunk holds: as many as fit `chunk_events` at this many events a day, one at
        the least."""
        return max(1, int(self.chunk_events // max(events_per_day, 1.0)))

    @classmethod
    def from_env(cls) -> ScaleSettings:
        env = os.environ
        return cls(
            chunk_events=int(env.get("UBP_CHUNK_EVENTS", "3000000")),
            clients_per_shard=int(env.get("UBP_CLIENTS_PER_SHARD", "125000")),
            warehouse_memory=env.get("UBP_WAREHOUSE_MEMORY", "2GB"),
        )


class Warehouse(DuckDBResource):
    """The warehouse's tables (read and written with `ubp_assets.warehouse`), and DuckDB over
    them: `get_connection()` opens an in-memory database with a view over each table and over
    `events`' day files. No file is held open between connections."""

    database: str = ":memory:"
    warehouse_dir: str = Field(description="the folder of the tables and the day files")

    @property
    def root(self) -> AnyPath:
        return data_location(self.warehouse_dir)

    @contextmanager
    def get_connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with super().get_connection() as conn:
            open_views(conn, self.root)
            yield conn


def build_resources(
    storage: UbpStorage | None = None,
    features: FeatureSettings | None = None,
    probe: ProbeSettings | None = None,
    training: TrainingSettings | None = None,
    scale: ScaleSettings | None = None,
) -> dict[str, object]:
    """The resources, each given or (where not) from the environment's settings."""
    storage = storage or UbpStorage.from_env()
    scale = scale or ScaleSettings.from_env()
    return {
        "storage": storage,
        "feature_settings": features or FeatureSettings.from_env(),
        "probe_settings": probe or ProbeSettings.from_env(),
        "training_settings": training or TrainingSettings.from_env(),
        "scale_settings": scale,
        "warehouse": Warehouse(
            warehouse_dir=str(storage.warehouse_dir),
            connection_config={"memory_limit": scale.warehouse_memory},
        ),
    }
