"""The warehouse's I/O manager: a table whose columns change is written anew, not refused."""

from __future__ import annotations

import dagster as dg
import duckdb
import polars as pl

from ubp_assets.resources import WarehouseIOManager


def _table_of(columns: list[str]) -> dg.AssetsDefinition:
    @dg.asset(name="item_table", io_manager_key="warehouse_io")
    def item_table() -> pl.DataFrame:
        return pl.DataFrame({c: [1.0, 2.0, 3.0] for c in columns})

    return item_table


def test_an_unpartitioned_table_follows_its_latest_columns(tmp_path):
    database = tmp_path / "warehouse.duckdb"
    io_manager = WarehouseIOManager(database=str(database), schema="main")
    # wider (an upgrade adds columns), then narrower (an upgrade drops some)
    for columns in (["a", "b"], ["a", "b", "c"], ["a"]):
        result = dg.materialize([_table_of(columns)], resources={"warehouse_io": io_manager})
        assert result.success
        with duckdb.connect(str(database), read_only=True) as conn:
            stored = conn.execute("SELECT * FROM main.item_table").pl()
        assert stored.columns == columns and stored.height == 3  # replaced, not appended
