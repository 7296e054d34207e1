"""Item affinity: the url -> product mapping learned from the log, and the decayed counts."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest

from ubp_assets.events.schema import EVENTS_SCHEMA
from ubp_assets.features.affinity import (
    HALF_LIVES,
    SKU_RANKING_DAYS,
    TOP_CATEGORIES,
    TOP_SKUS,
    column_names,
    item_affinity,
    ranked_items,
    url_products,
    url_votes,
)
from ubp_assets.shards import client_shards, every_client

T0 = dt.datetime(2022, 10, 1)
CUTOFF = dt.datetime(2022, 10, 13)
PRODUCTS = pl.LazyFrame(
    {"sku": [70, 71, 72], "category": [7, 7, 8], "price": [10, 55, 99]},
    schema={"sku": pl.Int64, "category": pl.Int64, "price": pl.Int16},
)


def log(*rows: tuple[int, float, str, int | None, int | None]) -> pl.LazyFrame:
    """(client, seconds after T0, event type, sku, url) rows as the event table holds them."""
    products = PRODUCTS.collect()
    frame = pl.DataFrame(
        {
            "client_id": [r[0] for r in rows],
            "timestamp": [T0 + dt.timedelta(seconds=r[1]) for r in rows],
            "event_type": [r[2] for r in rows],
            "sku": [r[3] for r in rows],
            "url": [r[4] for r in rows],
        },
        schema_overrides={"sku": pl.Int64, "url": pl.Int64},
    ).join(products, on="sku", how="left")
    return (
        frame.with_columns(
            pl.lit(None, EVENTS_SCHEMA["query"]).alias("query"),
            pl.col("timestamp").dt.date().alias("date"),
        )
        .select(list(EVENTS_SCHEMA))
        .cast(dict(EVENTS_SCHEMA))
        .lazy()
    )


def product_urls(events: pl.LazyFrame) -> pl.DataFrame:
    return url_products(url_votes(events, CUTOFF), PRODUCTS)


def test_a_url_is_the_product_carted_right_after_visiting_it():
    events = log(
        (1, 0, "page_visit", None, 500),
        (1, 30, "add_to_cart", 70, None),  # votes 500 -> 70
        (2, 100, "page_visit", None, 500),
        (2, 150, "add_to_cart", 70, None),  # votes 500 -> 70
        (3, 200, "page_visit", None, 500),
        (3, 210, "add_to_cart", 71, None),  # a stray vote: 70 keeps 2 of 3
        (4, 0, "page_visit", None, 600),
        (4, 500, "add_to_cart", 72, None),  # more than two minutes later: no vote
        (5, 0, "page_visit", None, 700),
        (5, 10, "page_visit", None, 701),
        (5, 20, "add_to_cart", 72, None),  # the last page before the cart votes, not the first
        (6, 0, "page_visit", None, 800),
        (6, 10, "add_to_cart", 70, None),
        (7, 0, "page_visit", None, 800),
        (7, 10, "add_to_cart", 71, None),  # 800 is split 1:1 -> 70 by id, with half the votes
    )
    urls = product_urls(events)
    mapped = {r["url"]: r for r in urls.iter_rows(named=True)}
    assert set(mapped) == {500, 701, 800}
    assert (mapped[500]["sku"], mapped[500]["votes"]) == (70, 2)
    assert mapped[500]["share"] == pytest.approx(2 / 3)
    assert (mapped[500]["category"], mapped[500]["price"]) == (7, 10)
    assert mapped[701]["sku"] == 72
    assert mapped[800]["sku"] == 70


def test_a_url_no_majority_agrees_on_is_left_unmapped():
    events = log(
        (1, 0, "page_visit", None, 900),
        (1, 5, "add_to_cart", 70, None),
        (2, 0, "page_visit", None, 900),
        (2, 5, "add_to_cart", 71, None),
        (3, 0, "page_visit", None, 900),
        (3, 5, "add_to_cart", 72, None),
    )
    assert product_urls(events).height == 0


def test_events_at_or_after_the_cutoff_teach_nothing():
    late = CUTOFF - T0
    events = log(
        (1, late.total_seconds(), "page_visit", None, 500),
        (1, late.total_seconds() + 5, "add_to_cart", 70, None),
    )
    assert product_urls(events).height == 0


def test_categories_rank_over_the_input_and_skus_over_its_last_weeks():
    day = 86_400
    old = -(SKU_RANKING_DAYS + 2) * day  # before the SKU ranking's weeks, inside the input
    events = log(
        (1, old, "product_buy", 70, None),
        (2, old, "add_to_cart", 70, None),
        (3, old + 60, "add_to_cart", 71, None),
        (1, 10 * day, "product_buy", 72, None),
        (2, 11 * day, "page_visit", None, 500),  # visits do not rank
        (3, 12 * day, "add_to_cart", 71, None),  # at the cutoff: ignored
    )
    ranked = ranked_items(events, CUTOFF)
    assert ranked["category"] == [7, 8]  # 7: three old engagements, 8: one recent buy
    assert ranked["sku"] == [72]  # 70 and 71 were engaged with only before the last weeks
    assert ranked["price"] == list(range(100))


def test_affinity_counts_visits_through_the_mapping_with_decay():
    day = 86_400
    events = log(
        (1, 0, "page_visit", None, 500),
        (1, 30, "add_to_cart", 70, None),
        (1, 6 * day, "page_visit", None, 500),  # a visit of sku 70, 7 days before the cutoff
        (2, 11 * day, "product_buy", 72, None),  # a buy one day before the cutoff
        (2, 12 * day + 10, "page_visit", None, 500),  # at the cutoff: ignored
    )
    urls = product_urls(events)
    ranked = ranked_items(events, CUTOFF)
    assert ranked["sku"] == [70, 72] and ranked["category"] == [7, 8]
    ids = np.array([2, 1, 3])  # client 3 has no events
    values = item_affinity(events, urls, ids, CUTOFF, ranked)
    frame = pl.DataFrame(values, schema=column_names(), orient="row")
    # one width whatever the data: 3 signals x (120 categories + 300 SKUs), 2 x 100 price buckets
    assert frame.shape == (3, 3 * (TOP_CATEGORIES + TOP_SKUS) + 2 * 100) == (3, 1_460)
    assert (frame["sku002_visit_60d"] == 0).all()  # a rank no SKU fills stays zero
    row = dict(zip(frame.columns, frame.row(1), strict=True))  # client 1
    ages = np.array([12.0, 6.0])  # its two visits of sku 70's page, in days before the cutoff
    visits_60 = (0.5 ** (ages / HALF_LIVES["60d"])).sum()
    visits_7 = (0.5 ** (ages / HALF_LIVES["7d"])).sum()
    assert row["sku000_visit_60d"] == pytest.approx(np.log1p(visits_60), rel=1e-6)
    assert row["cat000_visit_7d"] == pytest.approx(np.log1p(visits_7), rel=1e-6)
    assert row["price10_visit_60d"] == pytest.approx(np.log1p(visits_60), rel=1e-6)
    cart_age = 12.0 - 30 / 86_400
    assert row["sku000_cart_buy_60d"] == pytest.approx(np.log1p(0.5 ** (cart_age / 60)), rel=1e-6)
    assert row["sku001_visit_60d"] == row["sku001_cart_buy_60d"] == 0.0
    buyer = dict(zip(frame.columns, frame.row(0), strict=True))  # client 2
    assert buyer["sku001_cart_buy_60d"] == pytest.approx(np.log1p(0.5 ** (1 / 60)), rel=1e-6)
    assert buyer["cat001_cart_buy_60d"] == buyer["sku001_cart_buy_60d"]
    assert buyer["sku000_visit_60d"] == 0.0  # its visit lies at the cutoff
    assert not any(frame.row(2))  # no events: all zeros


def random_log(seed: int = 0, clients: int = 400) -> pl.LazyFrame:
    """Clients who visit product pages (url 500 + k shows sku 70 + k), cart most of what they
    visit a few seconds later, sometimes stray to another page first, and buy some of it."""
    rng = np.random.default_rng(seed)
    rows = []
    for client in rng.choice(10_000, clients, replace=False):
        for _ in range(rng.integers(1, 12)):
            at, k = rng.uniform(0, 11.5 * 86_400), int(rng.integers(0, 3))
            rows.append((int(client), at, "page_visit", None, 500 + k))
            if rng.random() < 0.2:
                rows.append(
                    (int(client), at + 5, "page_visit", None, 500 + int(rng.integers(0, 3)))
                )
            if rng.random() < 0.7:
                rows.append((int(client), at + 10, "add_to_cart", 70 + k, None))
            if rng.random() < 0.3:
                rows.append((int(client), at + 20, "product_buy", 70 + k, None))
    return log(*rows)


def test_shards_learn_the_urls_and_count_the_affinity_of_one_pass():
    """Votes summed over the shards widened to every client, and each shard's affinity rows,
    equal one pass over everyone: a client's votes and counts are their own events' alone."""
    events = random_log()
    clients = events.select(pl.col("client_id").unique().sort()).collect()["client_id"]
    relevant = clients.gather_every(3).to_numpy()
    shards = client_shards(relevant, len(relevant) // 4 + 1)
    assert len(shards) == 4
    votes = url_votes(events, CUTOFF)
    parts = [url_votes(events.filter(rows), CUTOFF) for rows in every_client(shards)]
    assert sum(p["votes"].sum() for p in parts) == votes["votes"].sum() > 0
    urls = url_products(votes, PRODUCTS)
    assert url_products(pl.concat(parts), PRODUCTS).equals(urls)
    assert urls["url"].to_list() == [500, 501, 502] and urls["sku"].to_list() == [70, 71, 72]
    ranked = ranked_items(events, CUTOFF)
    whole = item_affinity(events, urls, np.sort(relevant), CUTOFF, ranked)
    sharded = np.concatenate(
        [
            item_affinity(events.filter(s.rows()), urls, s.members(relevant), CUTOFF, ranked)
            for s in shards
        ]
    )
    assert (whole > 0).mean() > 0.01
    np.testing.assert_array_equal(sharded, whole)
