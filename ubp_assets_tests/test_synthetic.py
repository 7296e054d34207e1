"""The synthetic release: the challenge's exact form, deterministic, and realistic in structure."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest

from ubp_assets.synthetic import get_scale, write_release
from ubp_assets.synthetic.release import format_vectors
from ubp_assets_tests.conftest import EVENT_FILES, read_events

REAL_SHARES = {
    "page_visit": 156 / 175.4,
    "search_query": 10 / 175.4,
    "add_to_cart": 5.7 / 175.4,
    "remove_from_cart": 1.9 / 175.4,
    "product_buy": 1.8 / 175.4,
}
TIMESTAMP_RE = r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$"


def parse_vectors(column: pl.Series) -> np.ndarray:
    return np.array([np.array(s.strip("[]").split(), dtype=np.int64) for s in column.to_list()])


def test_files_have_the_release_schema(tiny_release):
    expected = {
        "product_buy": {"client_id": pl.Int64, "timestamp": pl.String, "sku": pl.Int64},
        "add_to_cart": {"client_id": pl.Int64, "timestamp": pl.String, "sku": pl.Int64},
        "remove_from_cart": {"client_id": pl.Int64, "timestamp": pl.String, "sku": pl.Int64},
        "page_visit": {"client_id": pl.Int64, "timestamp": pl.String, "url": pl.Int64},
        "search_query": {"client_id": pl.Int64, "timestamp": pl.String, "query": pl.String},
        "product_properties": {
            "sku": pl.Int64,
            "category": pl.Int64,
            "price": pl.Int64,
            "name": pl.String,
        },
    }
    for name, schema in expected.items():
        frame = pl.read_parquet(tiny_release / f"{name}.parquet")
        assert dict(frame.schema) == schema, name
        assert frame.height > 0
        if "timestamp" in schema:
            assert frame["timestamp"].str.contains(TIMESTAMP_RE).all()
            parsed = frame["timestamp"].str.strptime(pl.Datetime, "%Y-%m-%d %H:%M:%S")
            assert parsed.min() >= dt.datetime(2022, 4, 14)
            assert parsed.max() < dt.datetime(2022, 11, 10)


def test_vectors_are_numpy_print_form_of_16_bytes(tiny_release):
    for name, column in (("search_query", "query"), ("product_properties", "name")):
        text = pl.read_parquet(tiny_release / f"{name}.parquet")[column]
        values = parse_vectors(text)
        assert values.shape == (len(text), 16)
        assert values.min() >= 0 and values.max() <= 255
        # Exactly numpy's own rendering, padding included.
        for row, s in zip(values[:200], text.to_list()[:200], strict=True):
            assert s == str(row.astype(np.uint8))


def test_format_vectors_matches_numpy_for_every_width():
    rows = np.array([[1] * 16, [5] + [42] * 15, [0] * 15 + [255]], dtype=np.uint8)
    assert format_vectors(rows).to_list() == [str(r) for r in rows]


def test_prices_ids_and_relevant_clients(tiny_release):
    products = pl.read_parquet(tiny_release / "product_properties.parquet")
    assert products["price"].min() >= 0 and products["price"].max() <= 99
    assert products["price"].n_unique() == 100  # quantile buckets
    assert products["sku"].is_unique().all()
    events = read_events(tiny_release)
    for frame in events.values():
        assert frame["client_id"].min() >= 0
    for name in ("product_buy", "add_to_cart", "remove_from_cart"):
        assert events[name]["sku"].is_in(products["sku"].implode()).all()
    relevant = np.load(tiny_release / "input" / "relevant_clients.npy")
    assert relevant.dtype == np.int64 and relevant.ndim == 1
    assert len(np.unique(relevant)) == len(relevant) == get_scale("tiny").n_relevant
    with_history = pl.concat([f.select("client_id") for f in events.values()])["client_id"]
    assert np.isin(relevant, with_history.to_numpy()).all()


def test_same_seed_same_release_other_seed_other_release(tiny_release, tmp_path):
    again = tmp_path / "again"
    write_release(get_scale("tiny"), 7, again)
    other = tmp_path / "other"
    write_release(get_scale("tiny"), 8, other)
    for name in (*EVENT_FILES, "product_properties"):
        a = pl.read_parquet(tiny_release / f"{name}.parquet")
        assert a.equals(pl.read_parquet(again / f"{name}.parquet")), name
        assert not a.equals(pl.read_parquet(other / f"{name}.parquet")), name
    assert np.array_equal(
        np.load(tiny_release / "input/relevant_clients.npy"),
        np.load(again / "input/relevant_clients.npy"),
    )


@pytest.fixture(scope="module")
def demo(demo_release):
    events = read_events(demo_release)
    for name, frame in events.items():
        events[name] = frame.with_columns(
            pl.col("timestamp").str.strptime(pl.Datetime, "%Y-%m-%d %H:%M:%S")
        )
    return events


def test_event_type_shares_close_to_the_real_release(demo):
    total = sum(f.height for f in demo.values())
    assert 2_000_000 < total < 6_000_000  # "a few million events"
    for name, real in REAL_SHARES.items():
        share = demo[name].height / total
        assert real / 1.5 < share < real * 1.5, (name, share, real)


def test_activity_is_heavy_tailed(demo):
    per_client = (
        pl.concat([f.select("client_id") for f in demo.values()]).group_by("client_id").len()["len"]
    )
    assert per_client.median() < 0.5 * per_client.mean()
    top = per_client.sort(descending=True).head(len(per_client) // 100).sum()
    assert top / per_client.sum() > 0.15  # the top 1% of clients hold a large share
    assert per_client.quantile(0.25) <= 15


def test_daily_and_weekly_rhythm(demo):
    stamps = pl.concat([f.select("timestamp") for f in demo.values()])["timestamp"]
    hours = stamps.dt.hour().value_counts().sort("timestamp")["count"].to_numpy()
    assert hours[2:5].mean() < 0.4 * hours[9:13].mean()  # nights are quiet
    weekdays = stamps.dt.weekday().value_counts().sort("timestamp")["count"].to_numpy()
    assert weekdays[5] < 0.9 * weekdays[0]  # Saturday below Monday


def test_new_skus_launch_over_time(demo):
    """Popular SKUs would all show up in the first days unless some launch later."""
    first_seen = (
        pl.concat([demo[n].select("sku", "timestamp") for n in ("add_to_cart", "product_buy")])
        .group_by("sku")
        .agg(pl.col("timestamp").min(), pl.len())
        .filter(pl.col("len") >= 20)
    )
    days = (first_seen["timestamp"] - first_seen["timestamp"].min()).dt.total_days()
    assert (days > 30).mean() > 0.08
    assert (days > 120).sum() >= 10


def test_funnel_buys_follow_carts_and_sessions_have_gaps(demo):
    carts = demo["add_to_cart"].select("client_id", "sku", cart_time="timestamp")
    buys = demo["product_buy"].join(carts, on=["client_id", "sku"], how="left")
    preceded = (
        buys.group_by(pl.col("client_id"), pl.col("sku"), pl.col("timestamp"))
        .agg((pl.col("cart_time") <= pl.col("timestamp")).any())
        .get_column("cart_time")
    )
    assert preceded.mean() > 0.95
    visits = demo["page_visit"].sort("client_id", "timestamp")
    gaps = visits.select(
        pl.col("timestamp").diff().over("client_id").dt.total_seconds().alias("gap")
    ).drop_nulls()["gap"]
    assert (gaps < 30 * 60).mean() > 0.6  # most steps fall inside a session
    assert (gaps > 6 * 3600).mean() > 0.05  # and sessions are apart


def test_name_and_query_vectors_sit_near_their_category(demo_release, demo):
    products = pl.read_parquet(demo_release / "product_properties.parquet")
    names = parse_vectors(products["name"]).astype(float)
    categories = products["category"].to_numpy()
    centers = {c: names[categories == c].mean(0) for c in np.unique(categories)}
    rng = np.random.default_rng(0)
    idx = rng.choice(len(names), 500, replace=False)
    own = np.array([np.linalg.norm(names[i] - centers[categories[i]]) for i in idx])
    other_cat = rng.choice(list(centers), 500)
    other = np.array(
        [np.linalg.norm(names[i] - centers[c]) for i, c in zip(idx, other_cat, strict=True)]
    )
    assert np.median(own) < 0.6 * np.median(other)


def test_some_clients_fade_and_stop(demo):
    last = (
        pl.concat([f.select("client_id", "timestamp") for f in demo.values()])
        .group_by("client_id")
        .agg(pl.col("timestamp").max(), pl.col("timestamp").min().alias("first"))
    )
    end = last["timestamp"].max()
    gone = ((end - last["timestamp"]).dt.total_days() > 28).mean()
    assert 0.15 < gone < 0.7


def test_future_purchases_follow_the_history(demo):
    """Target-window buys are predictable from the input, but far from fully."""
    buys = demo["product_buy"]
    cutoff = dt.datetime(2022, 10, 13)  # train_target_start of this calendar
    seen = (
        pl.concat(
            [
                demo[n].filter(pl.col("timestamp") < cutoff).select("client_id", "sku")
                for n in ("add_to_cart", "product_buy", "remove_from_cart")
            ]
        )
        .unique()
        .with_columns(seen=pl.lit(True))
    )
    future = buys.filter(pl.col("timestamp") >= cutoff).join(
        seen, on=["client_id", "sku"], how="left"
    )
    repeat_share = future["seen"].fill_null(False).mean()
    assert 0.05 < repeat_share < 0.9
