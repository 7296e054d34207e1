"""Tables in the DuckDB warehouse, written and read as polars frames."""

from __future__ import annotations

import polars as pl
from dagster_duckdb import DuckDBResource


def write_table(warehouse: DuckDBResource, name: str, frame: pl.DataFrame) -> None:
    """Replace the table in one transaction, so readers see the old or the new one whole."""
    with warehouse.get_connection() as conn:
        conn.register("_incoming", frame.to_arrow())
        conn.execute(f'CREATE OR REPLACE TABLE "{name}" AS SELECT * FROM _incoming')
        conn.unregister("_incoming")


def read_table(warehouse: DuckDBResource, name: str) -> pl.DataFrame:
    with warehouse.get_connection() as conn:
        return conn.execute(f'SELECT * FROM "{name}"').pl()


def existing_tables(warehouse: DuckDBResource, names: list[str]) -> set[str]:
    """Which of the named tables the warehouse holds, in one connection."""
    with warehouse.get_connection() as conn:
        found = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_name IN "
            "(SELECT unnest(?::VARCHAR[]))",
            [names],
        ).fetchall()
    return {name for (name,) in found}
