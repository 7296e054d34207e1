"""The warehouse's one way to store a table: replaced whole, whatever its columns were."""

from __future__ import annotations

import polars as pl
import pytest

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


def test_a_table_written_in_parts_is_their_concatenation_or_the_old_table(tmp_path):
    """Parts (one client shard each) make one table in their order; a part that fails to come
    leaves the table as it was, not half replaced."""
    warehouse = WarehouseFile(tmp_path / "warehouse.duckdb")
    parts = [pl.DataFrame({"client_id": [3 * i, 3 * i + 1], "x": [0.5 * i, 1.0]}) for i in range(3)]
    assert write_table(warehouse, "sharded", iter(parts)) == 6
    assert read_table(warehouse, "sharded").equals(pl.concat(parts))

    def failing():
        yield parts[0].with_columns(pl.col("x") + 9)
        raise MemoryError("the second shard did not fit")

    with pytest.raises(MemoryError):
        write_table(warehouse, "sharded", failing())
    assert read_table(warehouse, "sharded").equals(pl.concat(parts))


def test_the_warehouse_holds_at_most_the_memory_configured(tmp_path, monkeypatch):
    """DuckDB's limit comes from UBP_WAREHOUSE_MEMORY: without one it would keep a whole
    uncommitted table (a shard-by-shard replacement) in memory."""
    from ubp_assets.resources import ScaleSettings, UbpStorage, build_resources

    storage = UbpStorage(data_dir=str(tmp_path))
    for setting, shown in (("1GB", "953.6 MiB"), ("3GB", "2.7 GiB")):
        warehouse = build_resources(storage, scale=ScaleSettings(warehouse_memory=setting))
        with warehouse["warehouse"].get_connection() as conn:
            assert conn.execute("SELECT current_setting('memory_limit')").fetchone()[0] == shown
    monkeypatch.delenv("UBP_WAREHOUSE_MEMORY", raising=False)
    assert ScaleSettings.from_env().warehouse_memory == "2GB"
