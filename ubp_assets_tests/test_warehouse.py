"""The warehouse's one way to store a table: replaced whole, whatever its columns were, by one
process while others read it and write other tables."""

from __future__ import annotations

import subprocess
import sys

import polars as pl
import pytest

from ubp_assets.warehouse import WarehouseDir, existing_tables, read_table, write_table


def test_a_table_follows_its_latest_columns_and_rows(tmp_path):
    warehouse = WarehouseDir(tmp_path)
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
    warehouse = WarehouseDir(tmp_path)
    parts = [pl.DataFrame({"client_id": [3 * i, 3 * i + 1], "x": [0.5 * i, 1.0]}) for i in range(3)]
    assert write_table(warehouse, "sharded", iter(parts)) == 6
    assert read_table(warehouse, "sharded").equals(pl.concat(parts))

    def failing():
        yield parts[0].with_columns(pl.col("x") + 9)
        raise MemoryError("the second shard did not fit")

    with pytest.raises(MemoryError):
        write_table(warehouse, "sharded", failing())
    assert read_table(warehouse, "sharded").equals(pl.concat(parts))


OTHER_PROCESS = """
import sys
import polars as pl
from pathlib import Path
from ubp_assets.warehouse import WarehouseDir, read_table, write_table
warehouse = WarehouseDir(Path(sys.argv[1]))
print(read_table(warehouse, "sharded")["x"].sum())
write_table(warehouse, "other", pl.DataFrame({"client_id": [7], "y": [1.0]}))
with warehouse.get_connection() as conn:
    print(conn.execute("SELECT count(*) FROM sharded").fetchone()[0])
"""


def test_another_process_reads_the_old_table_and_writes_its_own_while_one_is_written(tmp_path):
    """No file is held by a writer: in the middle of a table's replacement, another process
    (a celery worker, another run) reads the old table whole, through polars and through
    DuckDB's views, and writes a table of its own."""
    warehouse = WarehouseDir(tmp_path)
    old = pl.DataFrame({"client_id": [1, 2], "x": [1.0, 2.0]})
    write_table(warehouse, "sharded", old)
    seen = []

    def parts():
        yield pl.DataFrame({"client_id": [1], "x": [10.0]})
        seen.append(
            subprocess.run(
                [sys.executable, "-c", OTHER_PROCESS, str(tmp_path)],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.split()
        )
        yield pl.DataFrame({"client_id": [2], "x": [20.0]})

    assert write_table(warehouse, "sharded", parts()) == 2
    assert seen == [["3.0", "2"]]  # the old table, whole, from the other process
    assert read_table(warehouse, "sharded")["x"].to_list() == [10.0, 20.0]
    assert read_table(warehouse, "other")["y"].to_list() == [1.0]
    with warehouse.get_connection() as conn:
        assert conn.execute("SELECT sum(x) FROM sharded").fetchone()[0] == 30.0


def test_the_warehouse_holds_at_most_the_memory_configured(tmp_path, monkeypatch):
    """DuckDB's limit for queries over the tables comes from UBP_WAREHOUSE_MEMORY: without one
    it may take 80% of the machine."""
    from ubp_assets.resources import ScaleSettings, UbpStorage, build_resources

    storage = UbpStorage(data_dir=str(tmp_path))
    for setting, shown in (("1GB", "953.6 MiB"), ("3GB", "2.7 GiB")):
        warehouse = build_resources(storage, scale=ScaleSettings(warehouse_memory=setting))
        with warehouse["warehouse"].get_connection() as conn:
            assert conn.execute("SELECT current_setting('memory_limit')").fetchone()[0] == shown
    monkeypatch.delenv("UBP_WAREHOUSE_MEMORY", raising=False)
    assert ScaleSettings.from_env().warehouse_memory == "2GB"
