"""Behavioral family: how diverse a client's interests are and how much they explore.

Its partial is item-level (client, day, SKU or page) so that unique counts, entropies and Gini
coefficients over the whole history fold exactly. Popularity, which novelty is measured against,
comes from `popularity_partial` over every client, not only the relevant ones.
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from ubp_assets.features.common import (
    BUY,
    CART,
    REMOVE,
    VISIT,
    code,
    days_before,
    fsum,
    prefixed,
    ratio,
    registry,
)

FAMILY = "behavioral"
POPULAR_TOP_SHARE = 0.10
RECENT_DAYS = 30

FEATURES = registry(
    FAMILY,
    {
        "sku_actions": "buy, cart and remove events (the ones that name a SKU)",
        "unique_skus": "distinct SKUs acted on",
        "sku_exploration_rate": ("distinct SKUs over SKU actions", "median"),
        "unique_categories": "distinct categories acted on",
        "category_entropy": ("entropy (bits) of actions over categories", "median"),
        "category_gini": ("Gini coefficient of actions over the categories acted on", "median"),
        "top_category_share": ("share of actions in the client's most used category", "median"),
        "buy_category_entropy": ("entropy (bits) of purchases over categories", "median"),
        "visits": "page visits",
        "unique_urls": "distinct pages visited",
        "url_exploration_rate": ("distinct pages over visits", "median"),
        "url_entropy": ("entropy (bits) of visits over pages", "median"),
        "sku_popularity_pct": (
            "mean popularity percentile (0..1, among all SKUs by actions of all clients) "
            "of the SKUs acted on",
            "median",
        ),
        "unpopular_share": (
            f"share of actions on SKUs outside the top {POPULAR_TOP_SHARE:.0%} by popularity",
            "median",
        ),
        "new_to_client_share": (
            f"share of the client's distinct SKUs first touched in the last {RECENT_DAYS} days",
            "median",
        ),
    },
)


def partial(events: pl.LazyFrame) -> pl.LazyFrame:
    """Per client, day and item: SKU rows (with category and price) and page rows."""
    c = code()
    skus = (
        events.filter(pl.col("sku").is_not_null())
        .group_by("client_id", "date", "sku")
        .agg(
            pl.col("category").first(),
            pl.col("price").first(),
            pl.len().cast(pl.Int32).alias("n_touch"),
            (c == BUY).sum().cast(pl.Int32).alias("n_buy"),
            (c == CART).sum().cast(pl.Int32).alias("n_cart"),
            (c == REMOVE).sum().cast(pl.Int32).alias("n_remove"),
        )
    )
    pages = (
        events.filter(c == VISIT)
        .group_by("client_id", "date", "url")
        .agg(pl.len().cast(pl.Int32).alias("n_touch"))
    )
    return pl.concat([skus, pages], how="diagonal_relaxed").sort("client_id", "date", "sku", "url")


def popularity_partial(events: pl.LazyFrame) -> pl.LazyFrame:
    """Per day and SKU over every client: the population that novelty and top lists refer to."""
    return (
        events.filter(pl.col("sku").is_not_null())
        .group_by("date", "sku")
        .agg(
            pl.col("category").first(),
            pl.len().cast(pl.Int32).alias("n_touch"),
            (code() == BUY).sum().cast(pl.Int32).alias("n_buy"),
        )
        .sort("date", "sku")
    )


def sku_popularity(popularity: pl.LazyFrame) -> pl.LazyFrame:
    """Each SKU's actions over the history and its percentile among all SKUs (1 = most)."""
    totals = popularity.group_by("sku").agg(pl.col("n_touch").sum(), pl.col("n_buy").sum())
    return totals.with_columns(
        (pl.col("n_touch").rank("average") / pl.len()).alias("popularity_pct")
    )


def entropy(counts: pl.Expr) -> pl.Expr:
    p = counts / counts.sum()
    return -fsum(p * p.log(2))


def gini(counts: pl.Expr) -> pl.Expr:
    """Gini coefficient of the counts (0 = even, towards 1 = concentrated)."""
    x = counts.sort().cast(pl.Float64)
    k = x.len().cast(pl.Float64)
    rank = pl.int_range(1, x.len() + 1).cast(pl.Float64)
    return (2 * (rank * x).sum()) / (k * x.sum()) - (k + 1) / k


def fold(items: pl.LazyFrame, popularity: pl.LazyFrame, cutoff: dt.date) -> pl.LazyFrame:
    skus = items.filter(pl.col("sku").is_not_null())
    per_sku = (
        skus.group_by("client_id", "sku")
        .agg(
            pl.col("category").first(),
            pl.col("n_touch").sum(),
            pl.col("n_buy").sum(),
            days_before(cutoff).max().alias("first_touch"),
        )
        .join(sku_popularity(popularity).select("sku", "popularity_pct"), on="sku", how="left")
    )
    top_threshold = 1 - POPULAR_TOP_SHARE
    sku_features = per_sku.group_by("client_id").agg(
        pl.col("n_touch").sum().cast(pl.Float64).alias("sku_actions"),
        pl.len().cast(pl.Float64).alias("unique_skus"),
        (pl.len() / pl.col("n_touch").sum()).alias("sku_exploration_rate"),
        (fsum(pl.col("popularity_pct") * pl.col("n_touch")) / pl.col("n_touch").sum()).alias(
            "sku_popularity_pct"
        ),
        (
            pl.col("n_touch").filter(pl.col("popularity_pct") < top_threshold).sum()
            / pl.col("n_touch").sum()
        ).alias("unpopular_share"),
        (pl.col("first_touch") <= RECENT_DAYS).mean().alias("new_to_client_share"),
    )
    per_category = per_sku.group_by("client_id", "category").agg(
        pl.col("n_touch").sum(), pl.col("n_buy").sum()
    )
    category_features = per_category.group_by("client_id").agg(
        pl.len().cast(pl.Float64).alias("unique_categories"),
        entropy(pl.col("n_touch")).alias("category_entropy"),
        gini(pl.col("n_touch")).alias("category_gini"),
        (pl.col("n_touch").max() / pl.col("n_touch").sum()).alias("top_category_share"),
        pl.when(pl.col("n_buy").sum() > 0)
        .then(entropy(pl.col("n_buy").filter(pl.col("n_buy") > 0)))
        .alias("buy_category_entropy"),
    )
    pages = (
        items.filter(pl.col("url").is_not_null())
        .group_by("client_id", "url")
        .agg(pl.col("n_touch").sum())
        .group_by("client_id")
        .agg(
            pl.col("n_touch").sum().cast(pl.Float64).alias("visits"),
            pl.len().cast(pl.Float64).alias("unique_urls"),
            ratio(pl.len(), pl.col("n_touch").sum()).alias("url_exploration_rate"),
            entropy(pl.col("n_touch")).alias("url_entropy"),
        )
    )
    clients = items.select("client_id").unique()
    features = (
        clients.join(sku_features, on="client_id", how="left")
        .join(category_features, on="client_id", how="left")
        .join(pages, on="client_id", how="left")
    )
    return prefixed(features, FAMILY).select(["client_id", *FEATURES])
