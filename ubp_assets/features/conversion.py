"""Conversion family: how often interest turns into purchases, and how price changes that."""

from __future__ import annotations

import datetime as dt

import polars as pl

from ubp_assets.features.common import (
    BUY,
    CART,
    SHORT,
    code,
    prefixed,
    ratio,
    registry,
)
from ubp_assets.features.session import merge_sessions

FAMILY = "conversion"
PRICE_BINS = 5  # price buckets 0..99 in bins of 20
BIN_WIDTH = 100 // PRICE_BINS

FEATURES = registry(
    FAMILY,
    {
        "cart_abandonment_rate": ("share of carted SKUs never bought", "median"),
        "cart_removal_rate": ("remove-from-cart events per add-to-cart", "median"),
        "search_to_purchase_rate": (
            "share of sessions with a search that end in a purchase after it",
            "median",
        ),
        "same_session_conversion_rate": (
            "share of sessions with an add-to-cart that have a purchase after it",
            "median",
        ),
        "buys_per_visit": ("purchases per page visit", "median"),
        "carts_per_visit": ("add-to-carts per page visit", "median"),
        **{
            f"buy_rate_price_bin{k}": (
                f"purchases per add-to-cart, price buckets {lo}..{lo + BIN_WIDTH - 1}",
                "median",
            )
            for k, lo in enumerate(range(0, 100, BIN_WIDTH))
        },
        "mean_cart_price": ("mean price bucket of carted SKUs", "median"),
        "mean_buy_price": ("mean price bucket of bought SKUs", "median"),
        "buy_price_gap": (
            "mean bought price minus mean carted price: below 0 = value-driven",
            "median",
        ),
    },
)


def partial(events: pl.LazyFrame) -> pl.LazyFrame:
    c = code()
    price_bin = (pl.col("price") // BIN_WIDTH).clip(upper_bound=PRICE_BINS - 1)
    priced = pl.col("price").is_not_null()
    return (
        events.group_by("client_id", "date")
        .agg(
            *[(c == v).sum().cast(pl.Int32).alias(f"n_{SHORT[v]}") for v in SHORT],
            *[
                ((c == v) & (price_bin == b)).sum().cast(pl.Int32).alias(f"{k}_bin{b}")
                for k, v in (("cart", CART), ("buy", BUY))
                for b in range(PRICE_BINS)
            ],
            *[
                pl.col("price")
                .filter((c == v) & priced)
                .cast(pl.Int64)
                .sum()
                .alias(f"{k}_price_sum")
                for k, v in (("cart", CART), ("buy", BUY))
            ],
            *[
                ((c == v) & priced).sum().cast(pl.Int32).alias(f"{k}_priced")
                for k, v in (("cart", CART), ("buy", BUY))
            ],
        )
        .sort("client_id", "date")
    )


def totals(partials: pl.LazyFrame) -> pl.LazyFrame:
    """Every count of the partial summed over the history, per client."""
    return partials.group_by("client_id").agg(pl.exclude("client_id", "date").sum())


def fold(
    partials: pl.LazyFrame, items: pl.LazyFrame, fragments: pl.LazyFrame, cutoff: dt.date
) -> pl.LazyFrame:
    del cutoff  # rates over the whole history; the partials are already cut
    t = totals(partials)
    carted = (
        items.filter(pl.col("sku").is_not_null())
        .group_by("client_id", "sku")
        .agg(pl.col("n_cart").sum(), pl.col("n_buy").sum())
        .filter(pl.col("n_cart") > 0)
        .group_by("client_id")
        .agg((pl.col("n_buy") == 0).mean().alias("cart_abandonment_rate"))
    )
    sessions = (
        merge_sessions(fragments)
        .group_by("client_id")
        .agg(
            ratio(
                (pl.col("last_buy") > pl.col("first_search")).sum(), pl.col("first_search").count()
            ).alias("search_to_purchase_rate"),
            ratio(
                (pl.col("last_buy") > pl.col("first_cart")).sum(), pl.col("first_cart").count()
            ).alias("same_session_conversion_rate"),
        )
    )
    mean_cart = ratio(pl.col("cart_price_sum"), pl.col("cart_priced"))
    mean_buy = ratio(pl.col("buy_price_sum"), pl.col("buy_priced"))
    features = (
        t.select(
            "client_id",
            ratio(pl.col("n_remove"), pl.col("n_cart")).alias("cart_removal_rate"),
            ratio(pl.col("n_buy"), pl.col("n_visit")).alias("buys_per_visit"),
            ratio(pl.col("n_cart"), pl.col("n_visit")).alias("carts_per_visit"),
            *[
                ratio(pl.col(f"buy_bin{b}"), pl.col(f"cart_bin{b}")).alias(f"buy_rate_price_bin{b}")
                for b in range(PRICE_BINS)
            ],
            mean_cart.alias("mean_cart_price"),
            mean_buy.alias("mean_buy_price"),
            (mean_buy - mean_cart).alias("buy_price_gap"),
        )
        .join(carted, on="client_id", how="left")
        .join(sessions, on="client_id", how="left")
    )
    return prefixed(features, FAMILY).select(["client_id", *FEATURES])
