"""Item affinity: which categories, products and price buckets each client keeps coming back to,
page visits included.

Page visits are most of the log but carry only a url: the release has no url -> product table.
The log itself has one, though: a client adds to the cart the product whose page they are on, so
the page visited last before a cart add (within `MAX_PAGE_TO_CART`) is, over many carts, that
product's page. `url_votes` and `url_products` learn the mapping from the input; `item_affinity`
then counts visits alongside carts and buys, with recency decay, for the most interacted items.
On the synthetic data this lifts the propensity tasks most (docs/quality.md).
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl

from ubp_assets.features.common import fsum

PRICE_BUCKETS = 100  # the release's price is a bucket 0..99
MAX_PAGE_TO_CART = dt.timedelta(minutes=2)
MIN_URL_SHARE = 0.5  # a url maps to a product only if most of its carts agree
TOP_CATEGORIES = 120
TOP_SKUS = 300
SKU_RANKING_DAYS = 28  # SKUs come and go faster than categories: rank them by the recent weeks
HALF_LIVES = {"7d": 7.0, "60d": 60.0}
# (name, event types, half-life) per item; prices get no short window (100 buckets are broad).
ITEM_SIGNALS = (
    ("visit_60d", ("page_visit",), "60d"),
    ("visit_7d", ("page_visit",), "7d"),
    ("cart_buy_60d", ("add_to_cart", "product_buy"), "60d"),
)
PRICE_SIGNALS = ("visit_60d", "cart_buy_60d")


def url_votes(events: pl.LazyFrame, cutoff: dt.datetime) -> pl.DataFrame:
    """(url, sku, votes): each cart add before the cutoff votes for the page its client visited
    last, at most two minutes before. A vote is one client's events' alone, so the votes of
    client shards, summed, are those of one pass."""
    before = events.filter(pl.col("timestamp") < cutoff)
    carts = (
        before.filter(pl.col("event_type") == "add_to_cart")
        .select("client_id", "timestamp", "sku")
        .sort("timestamp")
    )
    visits = (
        before.filter(pl.col("event_type") == "page_visit")
        .select("client_id", pl.col("timestamp").alias("visited_at"), "url")
        .sort("visited_at")
    )
    return (
        carts.join_asof(
            visits,
            left_on="timestamp",
            right_on="visited_at",
            by="client_id",
            strategy="backward",
            tolerance=MAX_PAGE_TO_CART,
            check_sortedness=False,  # both sides are sorted by time, so within each client too
        )
        .drop_nulls("url")
        .group_by("url", "sku")
        .agg(pl.len().alias("votes"))
        .collect()
    )


def url_products(votes: pl.DataFrame, products: pl.LazyFrame) -> pl.DataFrame:
    """url -> sku, category, price: a url takes the product most of its votes name (the votes
    of several client shards are summed first)."""
    return (
        votes.lazy()
        .group_by("url", "sku")
        .agg(pl.col("votes").sum())
        .sort(["url", "votes", "sku"], descending=[False, True, False])
        .group_by("url", maintain_order=True)
        .agg(
            pl.col("sku").first(),
            pl.col("votes").first(),
            (pl.col("votes").first() / pl.col("votes").sum()).alias("share"),
        )
        .filter(pl.col("share") >= MIN_URL_SHARE)
        .join(products.select("sku", "category", "price"), on="sku", how="left")
        .sort("url")
        .collect()
    )


def with_visited_products(events: pl.LazyFrame, urls: pl.DataFrame) -> pl.LazyFrame:
    """Page visits of mapped urls gain the product's sku, category and price."""
    mapped = urls.lazy().select(
        "url",
        pl.col("sku").alias("_sku"),
        pl.col("category").alias("_category"),
        pl.col("price").cast(pl.Int16).alias("_price"),
    )
    return (
        events.join(mapped, on="url", how="left")
        .with_columns(
            pl.coalesce("sku", "_sku").alias("sku"),
            pl.coalesce("category", "_category").alias("category"),
            pl.coalesce("price", "_price").alias("price"),
        )
        .drop("_sku", "_category", "_price")
    )


def ranked_items(events: pl.LazyFrame, cutoff: dt.datetime) -> dict[str, list[int]]:
    """Categories by cart adds and buys in the whole input, SKUs by those of the last
    SKU_RANKING_DAYS before the cutoff, the most first (ties by id); every price bucket.

    At the demo scale the recent ranking covers more of the train window's 100 target SKUs and
    scored higher on the train-window halves (docs/quality.md).
    """
    engaged = events.filter(
        pl.col("timestamp") < cutoff, pl.col("event_type").is_in(["add_to_cart", "product_buy"])
    )
    recent = engaged.filter(pl.col("timestamp") >= cutoff - dt.timedelta(days=SKU_RANKING_DAYS))
    ranked = {}
    for column, k, source in (("category", TOP_CATEGORIES, engaged), ("sku", TOP_SKUS, recent)):
        ranked[column] = (
            source.drop_nulls(column)
            .group_by(column)
            .agg(pl.len().alias("n"))
            .sort(["n", column], descending=[True, False])
            .head(k)
            .collect()[column]
            .to_list()
        )
    ranked["price"] = list(range(PRICE_BUCKETS))
    return ranked


# Columns per ranked list, whatever the data: ranks no item fills stay zero, so the table and the
# embedding keep one width from day to day and from scale to scale.
RANKS = {"category": TOP_CATEGORIES, "sku": TOP_SKUS, "price": PRICE_BUCKETS}


def column_names() -> list[str]:
    names = []
    for column, prefix in (("category", "cat"), ("sku", "sku")):
        names += [f"{prefix}{r:03d}_{s}" for s, _, _ in ITEM_SIGNALS for r in range(RANKS[column])]
    names += [f"price{b:02d}_{s}" for s in PRICE_SIGNALS for b in range(PRICE_BUCKETS)]
    return names


def item_affinity(
    events: pl.LazyFrame,
    urls: pl.DataFrame,
    client_ids: np.ndarray,
    cutoff: dt.datetime,
    ranked: dict[str, list[int]],
) -> np.ndarray:
    """log1p of recency-decayed event counts per client (rows of client_ids) and ranked item,
    for each signal (the width of `column_names()`); float32, zeros for clients without such
    events and for ranks no item fills. A client's row is their own events' alone: a client
    shard's rows are those of one pass."""
    age = (pl.lit(cutoff) - pl.col("timestamp")).dt.total_seconds() / 86_400.0
    decays = {name: 0.5 ** (age / days) for name, days in HALF_LIVES.items()}
    clients = pl.DataFrame({"client_id": client_ids.astype(np.int64)}).with_row_index("row")
    touched = (
        with_visited_products(
            events.filter(
                pl.col("timestamp") < cutoff,
                pl.col("event_type").is_in(["page_visit", "add_to_cart", "product_buy"]),
            ),
            urls,
        )
        .join(clients.lazy(), on="client_id", how="inner")
        .with_columns(**{f"decay_{name}": d for name, d in decays.items()})
    )
    values = np.zeros((len(client_ids), len(column_names())), dtype=np.float32)
    start = 0
    for column, signals in (
        ("category", ITEM_SIGNALS),
        ("sku", ITEM_SIGNALS),
        ("price", [s for s in ITEM_SIGNALS if s[0] in PRICE_SIGNALS]),
    ):
        ids = ranked[column]
        rank = pl.DataFrame(
            {column: pl.Series(ids).cast(touched.collect_schema()[column]), "col": range(len(ids))}
        )
        per_item = (
            touched.join(rank.lazy(), on=column, how="inner")
            .group_by("row", "col")
            .agg(
                fsum(pl.col(f"decay_{half_life}") * pl.col("event_type").is_in(kinds)).alias(name)
                for name, kinds, half_life in signals
            )
            .collect()
        )
        rows, cols = per_item["row"].to_numpy(), per_item["col"].to_numpy()
        for name, _, _ in signals:  # one sum per (row, col): no two land in one cell
            values[rows, start + cols] = np.log1p(per_item[name].to_numpy())
            start += RANKS[column]
    return values
