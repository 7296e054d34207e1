"""Where the data lives: one typed resource, configured from environment variables.

Every path hangs off `data_dir` (UBP_DATA_DIR, default ./data) except the raw release, which
UBP_RAW_DIR can point at a real RecSys Challenge 2025 download left exactly as released.
"""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
from dagster_duckdb import DuckDBResource
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

    @classmethod
    def from_env(cls) -> UbpStorage:
        return cls(
            data_dir=os.environ.get("UBP_DATA_DIR", str(Path.cwd() / "data")),
            raw_dir=os.environ.get("UBP_RAW_DIR", ""),
        )


def build_resources(storage: UbpStorage | None = None) -> dict[str, object]:
    storage = storage or UbpStorage.from_env()
    storage.root.mkdir(parents=True, exist_ok=True)
    return {
        "storage": storage,
        "warehouse": DuckDBResource(database=str(storage.warehouse_path)),
    }
