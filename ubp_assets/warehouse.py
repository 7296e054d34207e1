"""Tables in the DuckDB warehouse, written and read as polars frames: the one way every asset
(and `ubp score`) stores and reads a table."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import duckdb
import polars as pl


class Connectable(Protocol):
    """A DuckDBResource (in an asset) or a WarehouseFile (outside Dagster)."""

    def get_connection(self): ...


@dataclass(frozen=True)
class WarehouseFile:
    """The warehouse file opened directly, for commands that run outside a Dagster run."""

    path: Path

    @contextmanager
    def get_connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        conn = duckdb.connect(str(self.path))
        try:
            yield conn
        finally:
            conn.close()


def write_table(warehouse: Connectable, name: str, frame: pl.DataFrame) -> None:
    """Replace the table in one transaction, so readers see the old or the new one whole."""
    with warehouse.get_connection() as conn:
        conn.register("_incoming", frame.to_arrow())
        conn.execute(f'CREATE OR REPLACE TABLE "{name}" AS SELECT * FROM _incoming')
        conn.unregister("_incoming")


def read_table(warehouse: Connectable, name: str) -> pl.DataFrame:
    with warehouse.get_connection() as conn:
        return conn.execute(f'SELECT * FROM "{name}"').pl()


def existing_tables(warehouse: Connectable, names: list[str]) -> set[str]:
    """Which of the named tables the warehouse holds, in one connection."""
    with warehouse.get_connection() as conn:
        found = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_name IN "
            "(SELECT unnest(?::VARCHAR[]))",
            [names],
        ).fetchall()
    return {name for (name,) in found}
