"""The warehouse's one way to store a table: replaced whole, whatever its columns were."""

from __future__ import annotations

import polars as pl

from ubp_assets.warehouse import WarehouseFile, existing_tables, read_table, write_table


def test_a_table_follows_its_latest_columns_and_rows(tmp_path):
    warehouse = WarehouseFile(tmp_path / "warehouse.duckdb")
    # wider (an upgrade adds columns), then narrower (an upgrade drops some)
    for columns, rows in ((["a", "b"], 3), (["a", "b", "c"], 2), (["a"], 4)):
        frame = pl.DataFrame({c: [float(i) for i in range(rows)] for c in columns})
        write_table(warehouse, "item_table", frame)
        stored = read_table(warehouse, "item_table")
        assert stored.columns == columns and stored.height == rows  # replaced, not appended
        assert stored.equals(frame)
    assert existing_tables(warehouse, ["item_table", "absent"]) == {"item_table"}
