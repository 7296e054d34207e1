"""The data directory on an S3-compatible object store (moto's server, `.ci/start-s3`): the day
files, the quarantine and the tables are read and written there, and what the features come
to is what a local run gives."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest

from ubp_assets.location import data_location
from ubp_assets.resources import TrainingSettings, UbpStorage
from ubp_assets.storage import (
    DamagedDayError,
    damaged_days,
    scan_days,
    stored_days,
    write_day_partitions,
)
from ubp_assets.warehouse import WarehouseDir, existing_tables, read_table, write_table
from ubp_assets_tests.test_feature_assets import run_daily, run_features

TABLES = ("temporal_features", "session_features", "identity_features", "feature_matrix")


def test_day_files_and_tables_round_trip_on_the_object_store(s3_data):
    url, _ = s3_data
    root = data_location(url)
    days = [dt.date(2022, 6, 1), dt.date(2022, 6, 2), dt.date(2022, 6, 3)]
    frame = pl.DataFrame(
        {"client_id": [1, 2, 3], "x": [1.0, 2.0, 3.0], "date": [*days[:2], days[0]]}
    )
    assert write_day_partitions(frame, root / "events", days) == {
        days[0]: 2,
        days[1]: 1,
        days[2]: 0,
    }
    assert stored_days(root / "events") == days
    assert scan_days(root / "events").collect().sort("client_id")["x"].to_list() == [1.0, 2.0, 3.0]

    damaged = root / "events" / "date=2022-06-02" / "data.parquet"
    damaged.write_bytes(damaged.read_bytes()[:-20])  # a copy cut short
    assert set(damaged_days(root / "events")) == {days[1]}
    with pytest.raises(DamagedDayError, match="2022-06-02"):
        scan_days(root / "events")

    warehouse = WarehouseDir(root)
    parts = [pl.DataFrame({"client_id": [2 * i, 2 * i + 1], "y": [float(i)] * 2}) for i in range(3)]
    for _ in range(3):  # replaced, not appended; old versions pruned
        assert write_table(warehouse, "sharded", iter(parts)) == 6
    assert read_table(warehouse, "sharded").equals(pl.concat(parts))
    assert read_table(warehouse, "sharded", clients=(2, 3))["client_id"].to_list() == [2, 3]
    assert existing_tables(warehouse, ["sharded", "absent"]) == {"sharded"}
    assert len(list((root / "tables" / "sharded").glob("v*"))) == 2  # current and the one before


def test_features_built_on_the_object_store_equal_a_local_run(s3_data, tiny_release, tmp_path):
    """The events, the daily partials, the folds and the matrix, with every file on the object
    store and the release read from its local folder: the same tables as on a local disk."""
    url, _ = s3_data
    local = tmp_path / "local"
    for data in (local, url):
        assert run_daily(tiny_release, data).success
        assert run_features(tiny_release, data).success
    remote, here = WarehouseDir(data_location(url) / "warehouse"), WarehouseDir(local / "warehouse")
    for name in TABLES:
        assert read_table(remote, name).equals(read_table(here, name)), name
    root = data_location(url)
    assert stored_days(root / "warehouse" / "events") == stored_days(local / "warehouse" / "events")
    assert (root / "warehouse" / "feature_matrix" / "scaler.parquet").is_file()
    assert not (Path.cwd() / "s3:").exists()  # nothing went to a local folder named after it


def test_what_cannot_live_on_an_object_store_is_refused_with_the_setting_to_change(s3_data):
    url, _ = s3_data
    storage = UbpStorage(data_dir=url)
    with pytest.raises(ValueError, match="UBP_RAW_DIR"):
        _ = storage.raw_path
    with pytest.raises(ValueError, match="UBP_OPTUNA_STORAGE"):
        TrainingSettings().study_url(storage)
    with pytest.raises(ValueError, match="local folder"):
        UbpStorage(data_dir=url, raw_dir="s3://bucket/raw")


def test_ubp_commands_send_an_object_store_data_dir_to_dagster_job_execute(tmp_path):
    from ubp_assets.cli import main

    with pytest.raises(SystemExit, match="dagster job execute"):
        main(["run", "--scale", "tiny", "--data-dir", "s3://bucket/prefix"])
    assert not (Path.cwd() / "s3:").exists()
