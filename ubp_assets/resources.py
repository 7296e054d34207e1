"""Where the data lives: one typed resource, configured from environment variables.

Every path hangs off `data_dir` (UBP_DATA_DIR, default ./data) except the raw release, which
UBP_RAW_DIR can point at a real RecSys Challenge 2025 download left exactly as released.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import dagster as dg
from dagster_duckdb import DuckDBResource
from dagster_duckdb_polars import DuckDBPolarsIOManager
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


def build_resources(
    storage: UbpStorage | None = None, features: FeatureSettings | None = None
) -> dict[str, object]:
    storage = storage or UbpStorage.from_env()
    storage.root.mkdir(parents=True, exist_ok=True)
    database = str(storage.warehouse_path)
    return {
        "storage": storage,
        "feature_settings": features or FeatureSettings.from_env(),
        "warehouse": DuckDBResource(database=database),
        "warehouse_io": DuckDBPolarsIOManager(database=database, schema="main"),
    }
