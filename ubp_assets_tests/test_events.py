"""The day-partitioned event table, materialized through Dagster."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from ubp_assets.events.schema import EVENTS_SCHEMA
from ubp_assets.events.table import (
    check_event_types_known,
    check_keys_not_null,
    check_timestamps_in_partition,
    count_skus_missing_from_products,
    scan_events,
)
from ubp_assets.warehouse import WarehouseDir
from ubp_assets_tests.conftest import EVENT_FILES, read_events
from ubp_assets_tests.helpers import check_named, materialization_metadata, materialize_events

DAY = "2022-06-01"


def stored_day(data, day=DAY) -> pl.DataFrame:
    return pl.read_parquet(data / "warehouse" / "events" / f"date={day}" / "data.parquet")


def test_a_partition_holds_exactly_its_days_events(tiny_release, tmp_path):
    result = materialize_events(tiny_release, tmp_path, DAY)
    assert result.success
    stored = stored_day(tmp_path)
    assert stored.schema == EVENTS_SCHEMA
    raw = read_events(tiny_release)
    products = pl.read_parquet(tiny_release / "product_properties.parquet")
    for name in EVENT_FILES:
        day_rows = raw[name].filter(pl.col("timestamp").str.starts_with(DAY))
        ours = stored.filter(pl.col("event_type") == name)
        assert ours.height == day_rows.unique().height, name
        assert sorted(ours["client_id"].unique()) == sorted(day_rows["client_id"].unique())
    with_sku = stored.filter(pl.col("sku").is_not_null()).join(products, on="sku")
    assert (with_sku["category"] == with_sku["category_right"]).all()
    assert (with_sku["price"].cast(pl.Int64) == with_sku["price_right"]).all()
    assert stored["timestamp"].dt.date().unique().to_list() == [dt.date(2022, 6, 1)]
    meta = materialization_metadata(result)
    assert meta["dagster/row_count"] == stored.height
    assert meta["rows_page_visit"] == stored.filter(pl.col("event_type") == "page_visit").height
    assert "client_id" in meta["preview"]


def test_one_run_over_a_range_equals_day_by_day_runs(tiny_release, tmp_path):
    assert materialize_events(tiny_release, tmp_path / "range", "2022-06-01", "2022-06-05").success
    for day in ("2022-06-01", "2022-06-03", "2022-06-05"):
        single = tmp_path / f"single-{day}"
        assert materialize_events(tiny_release, single, day).success
        assert stored_day(tmp_path / "range", day).equals(stored_day(single, day))
    written = sorted(p.name for p in (tmp_path / "range/warehouse/events").iterdir())
    assert written == [f"date=2022-06-0{i}" for i in range(1, 6)]


def test_rematerializing_a_partition_replaces_it_exactly(tiny_release, tmp_path):
    assert materialize_events(tiny_release, tmp_path, DAY).success
    original = stored_day(tmp_path)
    path = tmp_path / "warehouse" / "events" / f"date={DAY}" / "data.parquet"
    pl.concat([original, original.head(5)]).write_parquet(path)  # a corrupted partition
    assert materialize_events(tiny_release, tmp_path, DAY).success
    assert stored_day(tmp_path).equals(original)


def test_checks_pass_on_clean_data_and_the_warehouse_sees_the_table(tiny_release, tmp_path):
    result = materialize_events(tiny_release, tmp_path, "2022-06-01", "2022-06-02")
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert set(evaluations) == {
        "keys_not_null",
        "timestamps_in_partition",
        "event_types_known",
        "skus_in_product_properties",
        "raw_days_within_partitions",
    }
    assert all(e.passed for e in evaluations.values())
    with WarehouseDir(tmp_path / "warehouse").get_connection() as conn:
        count = conn.execute("SELECT count(*) FROM events").fetchone()[0]
    assert (
        count
        == stored_day(tmp_path, "2022-06-01").height + stored_day(tmp_path, "2022-06-02").height
    )


def _frame(**columns) -> pl.LazyFrame:
    base = {
        "client_id": [1, 2],
        "timestamp": [dt.datetime(2022, 6, 1, 10), dt.datetime(2022, 6, 1, 23, 59)],
        "event_type": ["page_visit", "product_buy"],
        "sku": [None, 10],
        "date": [dt.date(2022, 6, 1)] * 2,
    }
    base.update(columns)
    return pl.LazyFrame(base)


def test_checks_fail_on_data_built_to_fail_them():
    products = pl.DataFrame({"sku": [10]})
    assert check_keys_not_null(_frame()).passed
    assert not check_keys_not_null(_frame(client_id=[1, None])).passed
    assert check_timestamps_in_partition(_frame()).passed
    late = _frame(timestamp=[dt.datetime(2022, 6, 1), dt.datetime(2022, 6, 2, 0, 0, 1)])
    outcome = check_timestamps_in_partition(late)
    assert not outcome.passed and outcome.figures["rows_outside_their_day"] == 1
    assert check_event_types_known(_frame()).passed
    assert not check_event_types_known(_frame(event_type=["page_visit", "wishlist"])).passed
    assert count_skus_missing_from_products(_frame(), products).passed
    missing = count_skus_missing_from_products(_frame(sku=[None, 11]), products)
    assert not missing.passed and missing.figures["events_with_unknown_sku"] == 1


def test_unknown_skus_are_reported_as_a_warning(raw_copy, tmp_path):
    products = pl.read_parquet(raw_copy / "product_properties.parquet")
    bought = pl.read_parquet(raw_copy / "product_buy.parquet")
    gone = bought.filter(pl.col("timestamp").str.starts_with(DAY))["sku"].unique()
    assert gone.len() > 0
    products.filter(~pl.col("sku").is_in(gone.implode())).write_parquet(
        raw_copy / "product_properties.parquet"
    )
    result = materialize_events(raw_copy, tmp_path, DAY)
    assert result.success  # a warning, not an error
    check = check_named(result, "skus_in_product_properties")
    assert not check.passed and check.severity.value == "WARN"
    assert check.metadata["unknown_skus"].value >= gone.len()
    assert (
        stored_day(tmp_path).filter(pl.col("sku").is_in(gone.implode()))["category"].is_null().all()
    )


def test_scan_events_reads_back_all_days(tiny_release, tmp_path):
    assert materialize_events(tiny_release, tmp_path, "2022-06-01", "2022-06-03").success
    frame = scan_events(tmp_path / "warehouse" / "events").collect()
    assert frame["date"].n_unique() == 3
    assert (frame["timestamp"].dt.date() == frame["date"]).all()


@pytest.mark.parametrize("day", ["2022-04-14", "2022-11-09"])
def test_first_and_last_days_materialize(tiny_release, tmp_path, day):
    assert materialize_events(tiny_release, tmp_path, day).success
    assert stored_day(tmp_path, day).height > 0


def test_raw_days_outside_the_partitions_are_reported(raw_copy, tmp_path):
    """Days before the first partition would never be materialized: the check says so."""
    visits = pl.read_parquet(raw_copy / "page_visit.parquet")
    early = visits.head(2).with_columns(pl.lit("2022-03-01 12:00:00").alias("timestamp"))
    pl.concat([early, visits]).write_parquet(raw_copy / "page_visit.parquet")
    result = materialize_events(raw_copy, tmp_path, DAY)
    assert result.success  # a warning, not an error
    check = check_named(result, "raw_days_within_partitions")
    assert not check.passed and check.severity.value == "WARN"
    assert check.metadata["raw_days"].value == "2022-03-01..2022-11-09"
