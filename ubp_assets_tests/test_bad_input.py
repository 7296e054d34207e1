"""Bad raw input: whole-file problems fail with a clear message, bad rows are quarantined."""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path

import polars as pl
import pytest

from ubp_assets.events.raw_reader import RawDataError, read_products
from ubp_assets.events.schema import RAW_EVENT_FILES
from ubp_assets.events.table import build_events, events_per_day
from ubp_assets.partitions import FIRST_DAY, LAST_DAY
from ubp_assets.resources import ScaleSettings
from ubp_assets.storage import day_range
from ubp_assets_tests.helpers import failure_message, materialization_metadata, materialize_events

DAY = "2022-06-01"
FIRST, LAST = dt.date(2022, 6, 1), dt.date(2022, 6, 1)


def rewrite(raw, name, change) -> None:
    path = raw / f"{name}.parquet"
    change(pl.read_parquet(path)).write_parquet(path)


def build(raw):
    return build_events(raw, FIRST, LAST)


def rejected(build_result, reason) -> pl.DataFrame:
    return build_result.rejected.filter(pl.col("reason") == reason)


# ---- whole-file problems: a clear error naming the file, the column and the problem ------------


def test_missing_file(raw_copy, tmp_path):
    (raw_copy / "page_visit.parquet").unlink()
    result = materialize_events(raw_copy, tmp_path, DAY)
    assert not result.success
    message = failure_message(result)
    assert "page_visit.parquet: file not found" in message
    assert not (tmp_path / "warehouse" / "events" / f"date={DAY}").exists()


def test_missing_column(raw_copy, tmp_path):
    rewrite(raw_copy, "product_buy", lambda f: f.drop("sku"))
    message = failure_message(materialize_events(raw_copy, tmp_path, DAY))
    assert "product_buy.parquet: missing column 'sku'" in message


def test_wrong_dtype(raw_copy, tmp_path):
    rewrite(raw_copy, "add_to_cart", lambda f: f.with_columns(pl.col("client_id").cast(pl.String)))
    message = failure_message(materialize_events(raw_copy, tmp_path, DAY))
    assert "add_to_cart.parquet: column 'client_id' has dtype String, expected an integer id" in (
        message
    )


def test_not_a_parquet_file(raw_copy):
    (raw_copy / "search_query.parquet").write_text("hello")
    with pytest.raises(RawDataError, match=r"search_query\.parquet: not a readable parquet"):
        build(raw_copy)


def test_a_failed_run_keeps_the_previous_partition(raw_copy, tmp_path):
    assert materialize_events(raw_copy, tmp_path, DAY).success
    path = tmp_path / "warehouse" / "events" / f"date={DAY}" / "data.parquet"
    before = pl.read_parquet(path)
    rewrite(raw_copy, "product_buy", lambda f: f.drop("sku"))
    assert not materialize_events(raw_copy, tmp_path, DAY).success
    assert pl.read_parquet(path).equals(before)


# ---- bad rows: counted, quarantined with a reason, never silently dropped -----------------------


def test_unparsable_timestamps_are_quarantined_as_undated(raw_copy, tmp_path):
    rewrite(
        raw_copy,
        "page_visit",
        lambda f: f.with_columns(
            pl.when(pl.int_range(pl.len()) < 3)
            .then(pl.lit("2022-13-45 99:00:00"))
            .when(pl.int_range(pl.len()) == 3)
            .then(pl.lit("yesterday"))
            .when(pl.int_range(pl.len()) == 4)
            .then(None)
            .otherwise(pl.col("timestamp"))
            .alias("timestamp")
        ),
    )
    result = materialize_events(raw_copy, tmp_path, DAY)
    assert result.success
    meta = materialization_metadata(result)
    assert meta["quarantined_rows"] >= 5
    assert "unparsable timestamp" in meta["quarantined_by_reason"]
    undated = pl.read_parquet(tmp_path / "quarantine" / "undated" / "rejected.parquet")
    reasons = undated["reason"].value_counts()
    assert dict(zip(reasons["reason"], reasons["count"], strict=True)) == {
        "unparsable timestamp": 4,
        "null timestamp": 1,
    }
    assert (
        json.loads(undated.filter(pl.col("reason") == "null timestamp")["row"][0])["timestamp"]
        is None
    )


def test_a_backfill_chunk_holds_about_chunk_events_events(raw_copy):
    """The days a chunk holds follow the release's events a day, counted from the raw files'
    footers: four times the events a day, a quarter of the days (so the full release's chunk
    holds what the quarter's does), and never less than one day."""
    days = len(day_range(FIRST_DAY, LAST_DAY))
    rows = sum(
        pl.scan_parquet(raw_copy / spec.filename).select(pl.len()).collect().item()
        for spec in RAW_EVENT_FILES.values()
    )
    per_day = events_per_day(raw_copy, days)
    assert per_day == rows / days > 0
    settings = ScaleSettings(chunk_events=math.ceil(14 * per_day))
    assert settings.chunk_days(per_day) == 14
    assert settings.chunk_days(4 * per_day) == 3
    assert settings.chunk_days(100 * per_day) == 1


def test_a_chunked_backfill_equals_one_pass_and_quarantines_each_row_once(raw_copy, tmp_path):
    """Three days at a time over ten days writes the same day files and quarantine as one pass,
    with undated rows (a null timestamp, a duplicate SKU) and dated ones (a duplicate event,
    a bad time inside a day) each quarantined once."""
    first, last = "2022-06-01", "2022-06-10"
    visits = pl.read_parquet(raw_copy / "page_visit.parquet").with_row_index()
    on_day = visits.filter(pl.col("timestamp").str.starts_with("2022-06-05"))["index"]
    swap = (
        pl.when(pl.col("index") == on_day[0])
        .then(None)
        .when(pl.col("index") == on_day[1])
        .then(pl.lit("2022-06-05 25:00:00"))
        .otherwise(pl.col("timestamp"))
    )
    damaged = visits.with_columns(swap.alias("timestamp")).drop("index")
    repeat = damaged[on_day[2] : on_day[2] + 1]
    rewrite(raw_copy, "page_visit", lambda f: pl.concat([damaged, repeat]))
    rewrite(raw_copy, "product_properties", lambda f: pl.concat([f, f.head(1)]))

    one_pass, chunked = tmp_path / "one_pass", tmp_path / "chunked"
    assert materialize_events(raw_copy, one_pass, first, last, chunk_days=100).success
    result = materialize_events(raw_copy, chunked, first, last, chunk_days=3)
    assert result.success

    def files(root: Path) -> dict[str, pl.DataFrame]:
        return {
            str(p.relative_to(root)): pl.read_parquet(p) for p in sorted(root.rglob("*.parquet"))
        }

    for folder in ("warehouse/events", "quarantine"):
        ours, theirs = files(chunked / folder), files(one_pass / folder)
        assert ours.keys() == theirs.keys() and ours
        assert all(ours[name].equals(theirs[name]) for name in ours), folder
    assert len(files(chunked / "warehouse/events")) == 10
    quarantined = pl.concat(files(chunked / "quarantine").values())
    assert quarantined.filter(pl.col("row").is_duplicated()).is_empty()
    counts = dict(quarantined.group_by("reason").len().rows())
    assert counts == {
        "null timestamp": 1,
        "unparsable timestamp": 1,
        "exact duplicate": 1,
        "duplicate sku": 1,
    }
    meta = materialization_metadata(result)
    assert meta["quarantined_rows"] == quarantined.height and meta["chunk_days"] == 3


def test_a_day_owns_the_timestamps_whose_text_sorts_into_it(raw_copy):
    """A run of one day reads only the rows whose text sorts into it, yet agrees with a run of
    every day on that day's events and rejects: text in the day that is not exactly a valid
    `YYYY-MM-DD HH:MM:SS` is rejected there (even where a lenient parser would read it), text
    outside every day comes back undated, and a valid time outside every day is let go."""
    stamps = {
        0: f"{DAY} 99:00:00",
        1: f"{DAY} 1:00:00",
        2: f"{DAY}T10:00:00",
        3: "2022-6-01 10:00:00",
        4: "not a time",
        5: "2021-01-01 00:00:00",
        6: f"{DAY} 23:59:60",
    }
    index = pl.int_range(pl.len())
    swap = pl.col("timestamp")
    for i, text in stamps.items():
        swap = pl.when(index == i).then(pl.lit(text)).otherwise(swap)
    rewrite(raw_copy, "page_visit", lambda f: f.with_columns(swap.alias("timestamp")))
    span = (dt.date(2022, 4, 14), dt.date(2022, 11, 9))

    day = build_events(raw_copy, FIRST, LAST, span)
    every_day = build_events(raw_copy, *span, span)

    assert day.events.height > 0
    assert day.events.equals(every_day.events.filter(pl.col("date") == FIRST))

    def ours(rejected: pl.DataFrame) -> dict[str, tuple[str | None, str]]:
        rows = rejected.filter(pl.col("file") == "page_visit").with_columns(
            pl.col("row").str.json_path_match("$.timestamp").alias("text")
        )
        rows = rows.filter(pl.col("text").is_in(list(stamps.values())))
        return {
            t: (d and d.isoformat(), r) for t, d, r in rows.select("text", "date", "reason").rows()
        }

    expected = {
        stamps[0]: (DAY, "unparsable timestamp"),
        stamps[1]: (DAY, "unparsable timestamp"),
        stamps[2]: (DAY, "unparsable timestamp"),
        stamps[3]: (None, "unparsable timestamp"),
        stamps[4]: (None, "unparsable timestamp"),
        stamps[6]: (DAY, "unparsable timestamp"),
    }
    assert ours(day.rejected) == expected
    in_day_or_undated = pl.col("date").is_null() | (pl.col("date") == FIRST)
    assert ours(every_day.rejected.filter(in_day_or_undated)) == expected
    assert every_day.events.filter(pl.col("timestamp").dt.year() == 2021).is_empty()


def test_malformed_queries_are_quarantined_in_their_day(raw_copy, tmp_path):
    queries = pl.read_parquet(raw_copy / "search_query.parquet")
    on_day = queries.with_row_index().filter(pl.col("timestamp").str.starts_with(DAY))["index"]
    bad = {
        on_day[0]: "[1 2 3]",  # too short
        on_day[1]: "[ 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 300]",  # out of range
        on_day[2]: "[ 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 x]",  # not a number
        on_day[3]: "1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16",  # no brackets
    }
    rewrite(
        raw_copy,
        "search_query",
        lambda f: (
            f.with_row_index()
            .with_columns(
                pl.col("index")
                .replace_strict(bad, default=None, return_dtype=pl.String)
                .alias("bad")
            )
            .select("client_id", "timestamp", pl.coalesce("bad", "query").alias("query"))
        ),
    )
    result = materialize_events(raw_copy, tmp_path, DAY)
    assert result.success
    day_file = tmp_path / "quarantine" / f"date={DAY}" / "rejected.parquet"
    quarantined = pl.read_parquet(day_file).filter(pl.col("reason") == "malformed query")
    assert quarantined.height == 4
    assert sorted(json.loads(r)["query"] for r in quarantined["row"]) == sorted(bad.values())
    stored = pl.read_parquet(tmp_path / "warehouse" / "events" / f"date={DAY}" / "data.parquet")
    searches = stored.filter(pl.col("event_type") == "search_query")
    assert searches.height == queries.filter(pl.col("timestamp").str.starts_with(DAY)).height - 4


def test_negative_and_null_ids_are_quarantined(raw_copy):
    def damage(frame):
        on_day = frame["timestamp"].str.starts_with(DAY)
        idx = frame.with_row_index().filter(on_day)["index"]
        return frame.with_columns(
            pl.when(pl.int_range(pl.len()) == idx[0])
            .then(-5)
            .when(pl.int_range(pl.len()) == idx[1])
            .then(None)
            .otherwise(pl.col("client_id"))
            .alias("client_id"),
            pl.when(pl.int_range(pl.len()) == idx[2])
            .then(None)
            .otherwise(pl.col("sku"))
            .alias("sku"),
        )

    rewrite(raw_copy, "add_to_cart", damage)
    result = build(raw_copy)
    assert rejected(result, "negative client_id").height == 1
    assert rejected(result, "null client_id").height == 1
    assert rejected(result, "null sku").height == 1
    assert (result.events["client_id"] >= 0).all()
    assert result.events.filter(pl.col("event_type") == "add_to_cart")["sku"].null_count() == 0


def test_exact_duplicates_keep_one_copy(raw_copy):
    buys = pl.read_parquet(raw_copy / "product_buy.parquet")
    day_buys = buys.filter(pl.col("timestamp").str.starts_with(DAY))
    clean = build(raw_copy)
    rewrite(raw_copy, "product_buy", lambda f: pl.concat([f, day_buys.head(3), day_buys.head(1)]))
    result = build(raw_copy)
    assert (
        rejected(result, "exact duplicate").height == rejected(clean, "exact duplicate").height + 4
    )
    assert result.events.equals(clean.events)


def test_bad_product_rows_are_quarantined(raw_copy):
    rewrite(
        raw_copy,
        "product_properties",
        lambda f: f.with_columns(
            pl.when(pl.int_range(pl.len()) == 0).then(150).otherwise(pl.col("price")).alias("price")
        ),
    )
    result = build(raw_copy)
    assert rejected(result, "price bucket above 99").height == 1
    assert rejected(result, "price bucket above 99")["file"].to_list() == ["product_properties"]


def test_products_read_for_some_skus_are_those_of_a_full_reading(raw_copy):
    """A day reads only its SKUs' products; a repeated SKU must still keep its first listing."""
    products = pl.read_parquet(raw_copy / "product_properties.parquet")
    first_two = products.head(2)["sku"].to_list()
    repeated = products.head(1).with_columns(pl.lit(7, products.schema["price"]).alias("price"))
    pl.concat([products, repeated]).write_parquet(raw_copy / "product_properties.parquet")
    skus = pl.Series([*first_two, products["sku"][-1]])

    some = read_products(raw_copy, skus)
    every = read_products(raw_copy)

    assert some.rows.sort("sku").equals(
        every.rows.filter(pl.col("sku").is_in(skus.implode())).sort("sku")
    )
    assert some.rows.height == 3
    assert some.rows.filter(pl.col("sku") == first_two[0])["price"].to_list() == [
        products["price"][0]
    ]
    assert some.rejected["reason"].to_list() == ["duplicate sku"]


def test_timestamp_and_list_columns_are_read_like_strings(raw_copy, tiny_release):
    rewrite(
        raw_copy,
        "search_query",
        lambda f: f.with_columns(
            pl.col("timestamp").str.strptime(pl.Datetime("ns"), "%Y-%m-%d %H:%M:%S"),
            pl.col("query").str.extract_all(r"\d+").cast(pl.List(pl.Int32)),
        ),
    )
    assert build(raw_copy).events.equals(build(tiny_release).events)


def test_zoned_parquet_timestamps_are_read_as_naive_utc(raw_copy, tiny_release):
    """A day's rows are picked after the zone is taken off, not by the wall clock of the zone."""
    rewrite(
        raw_copy,
        "product_buy",
        lambda f: f.with_columns(
            pl.col("timestamp")
            .str.strptime(pl.Datetime("us"), "%Y-%m-%d %H:%M:%S")
            .dt.replace_time_zone("UTC")
            .dt.convert_time_zone("Asia/Tokyo")
        ),
    )
    assert build(raw_copy).events.equals(build(tiny_release).events)
