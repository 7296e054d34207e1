"""Identity family: what a client touched and bought, by category, SKU and price, with recency,
and the mean of their search and product-name vectors.

The seed paper is silent here, but the propensity tasks ask about specific categories and SKUs,
so the embedding must carry them. Item columns are named by popularity rank (`cat000` is the
category with the most purchases in the last 30 days of the history, then the most actions);
the ids behind the ranks are recorded in the asset's metadata.
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from ubp_assets.events.schema import VECTOR_DIM
from ubp_assets.features.common import (
    BUY,
    CART,
    REMOVE,
    SEARCH,
    SHORT,
    VISIT,
    Feature,
    code,
    days_before,
    fsum,
    prefixed,
    ratio,
    registry,
)

FAMILY = "identity"
TOP_CATEGORIES = 100
TOP_SKUS = 100
PRICE_BINS = 10
WINDOWS = (1, 7, 30)
HALF_LIFE_DAYS = 7.0
RANKING_DAYS = 30

_static: dict[str, tuple[str, str] | str] = {
    **{
        f"{SHORT[c]}_{w}d": f"{SHORT[c]} events in the last {w} days"
        for c in (BUY, CART, REMOVE, VISIT, SEARCH)
        for w in WINDOWS
    },
    **{
        f"{SHORT[c]}_all": f"{SHORT[c]} events in the history"
        for c in (BUY, CART, REMOVE, VISIT, SEARCH)
    },
    **{
        f"query_mean_{i:02d}": (f"mean search vector, dimension {i}", "median")
        for i in range(VECTOR_DIM)
    },
    **{
        f"name_touch_mean_{i:02d}": (f"mean name vector of SKUs acted on, dimension {i}", "median")
        for i in range(VECTOR_DIM)
    },
    **{
        f"name_buy_mean_{i:02d}": (f"mean name vector of SKUs bought, dimension {i}", "median")
        for i in range(VECTOR_DIM)
    },
    **{
        f"price{b}_{kind}": f"{kind} events on SKUs in price buckets {b * 10}..{b * 10 + 9}"
        for b in range(PRICE_BINS)
        for kind in ("touch", "buy")
    },
}
_items: dict[str, tuple[str, str] | str] = {
    f"{prefix}{r:03d}_{kind}": text.format(rank=r)
    for prefix, noun, k in (("cat", "category", TOP_CATEGORIES), ("sku", "SKU", TOP_SKUS))
    for r in range(k)
    for kind, text in (
        ("touch", f"actions on the popularity-rank-{{rank}} {noun}"),
        ("buy", f"purchases of the popularity-rank-{{rank}} {noun}"),
        (
            "recent",
            f"actions on the rank-{{rank}} {noun}, decayed with a {HALF_LIFE_DAYS:g}-day half-life",
        ),
    )
}
FEATURES: dict[str, Feature] = registry(FAMILY, {**_static, **_items})


def partial(events: pl.LazyFrame, names: pl.LazyFrame) -> pl.LazyFrame:
    """Per client and day: events by type, and sums of query and product-name vectors.

    `names` holds each SKU's name vector (sku, name) from product_properties.
    """
    c = code()
    query = pl.col("query").arr
    with_names = events.join(names, on="sku", how="left")
    touched = pl.col("sku").is_not_null() & pl.col("name").is_not_null()
    bought = touched & (c == BUY)
    return (
        with_names.group_by("client_id", "date")
        .agg(
            *[(c == v).sum().cast(pl.Int32).alias(f"n_{SHORT[v]}") for v in SHORT],
            *[query.get(i).cast(pl.Int64).sum().alias(f"q{i:02d}") for i in range(VECTOR_DIM)],
            *[
                pl.col("name").arr.get(i).filter(touched).cast(pl.Int64).sum().alias(f"nt{i:02d}")
                for i in range(VECTOR_DIM)
            ],
            *[
                pl.col("name").arr.get(i).filter(bought).cast(pl.Int64).sum().alias(f"nb{i:02d}")
                for i in range(VECTOR_DIM)
            ],
            touched.sum().cast(pl.Int32).alias("n_named_touch"),
            bought.sum().cast(pl.Int32).alias("n_named_buy"),
        )
        .sort("client_id", "date")
    )


def top_items(popularity: pl.LazyFrame, cutoff: dt.date) -> dict[str, list[int]]:
    """Categories and SKUs ranked by purchases in the last days of the history, then actions."""
    recent = days_before(cutoff) <= RANKING_DAYS
    ranked = {}
    for column, k in (("category", TOP_CATEGORIES), ("sku", TOP_SKUS)):
        order = (
            popularity.filter(pl.col(column).is_not_null())
            .group_by(column)
            .agg(
                pl.col("n_buy").filter(recent).sum().alias("recent_buys"),
                pl.col("n_touch").sum().alias("touches"),
            )
            .sort(["recent_buys", "touches", column], descending=[True, True, False])
            .head(k)
            .collect()
        )
        ranked[column] = order[column].to_list()
    return ranked


def _item_columns(
    items: pl.LazyFrame, column: str, ids: list[int], *, prefix: str, k: int, cutoff: dt.date
) -> pl.LazyFrame:
    """One column per ranked item and kind; ranks the history has no item for stay null."""
    decay = (0.5 ** ((days_before(cutoff) - 1) / HALF_LIFE_DAYS)).cast(pl.Float64)
    rank = {item: r for r, item in enumerate(ids)}
    per_item = (
        items.filter(pl.col(column).is_in(ids))
        .group_by("client_id", column)
        .agg(
            pl.col("n_touch").sum().cast(pl.Float64).alias("touch"),
            pl.col("n_buy").sum().cast(pl.Float64).alias("buy"),
            fsum(pl.col("n_touch") * decay).alias("recent"),
        )
        .collect()
    )
    wide = per_item.with_columns(
        pl.col(column).replace_strict(rank, return_dtype=pl.Int32).alias("rank")
    ).pivot(
        on="rank", index="client_id", values=["touch", "buy", "recent"], aggregate_function=None
    )
    renamed = {
        f"{kind}_{r}": f"{prefix}{r:03d}_{kind}"
        for kind in ("touch", "buy", "recent")
        for r in range(k)
    }
    wide = wide.rename({k: v for k, v in renamed.items() if k in wide.columns})
    missing = [v for v in renamed.values() if v not in wide.columns]
    return wide.with_columns(pl.lit(None, pl.Float64).alias(m) for m in missing).lazy()


def fold(
    partials: pl.LazyFrame,
    items: pl.LazyFrame,
    popularity: pl.LazyFrame,
    cutoff: dt.date,
) -> tuple[pl.LazyFrame, dict[str, list[int]]]:
    """The family's features and the category and SKU ids behind the ranked columns."""
    back = days_before(cutoff)
    counts = partials.group_by("client_id").agg(
        *[
            pl.col(f"n_{SHORT[c]}")
            .filter(back <= w)
            .sum()
            .cast(pl.Float64)
            .alias(f"{SHORT[c]}_{w}d")
            for c in (BUY, CART, REMOVE, VISIT, SEARCH)
            for w in WINDOWS
        ],
        *[pl.col(f"n_{SHORT[c]}").sum().cast(pl.Float64).alias(f"{SHORT[c]}_all") for c in SHORT],
        *[pl.col(f"q{i:02d}").sum() for i in range(VECTOR_DIM)],
        *[pl.col(f"nt{i:02d}").sum() for i in range(VECTOR_DIM)],
        *[pl.col(f"nb{i:02d}").sum() for i in range(VECTOR_DIM)],
        pl.col("n_named_touch").sum(),
        pl.col("n_named_buy").sum(),
    )
    vectors = counts.select(
        pl.exclude([f"{p}{i:02d}" for p in ("q", "nt", "nb") for i in range(VECTOR_DIM)]),
        *[
            ratio(pl.col(f"q{i:02d}"), pl.col("search_all")).alias(f"query_mean_{i:02d}")
            for i in range(VECTOR_DIM)
        ],
        *[
            ratio(pl.col(f"nt{i:02d}"), pl.col("n_named_touch")).alias(f"name_touch_mean_{i:02d}")
            for i in range(VECTOR_DIM)
        ],
        *[
            ratio(pl.col(f"nb{i:02d}"), pl.col("n_named_buy")).alias(f"name_buy_mean_{i:02d}")
            for i in range(VECTOR_DIM)
        ],
    )
    skus = items.filter(pl.col("sku").is_not_null())
    price_bin = (pl.col("price") // (100 // PRICE_BINS)).clip(upper_bound=PRICE_BINS - 1)
    prices = skus.group_by("client_id").agg(
        *[
            pl.col(column).filter(price_bin == b).sum().cast(pl.Float64).alias(f"price{b}_{kind}")
            for b in range(PRICE_BINS)
            for kind, column in (("touch", "n_touch"), ("buy", "n_buy"))
        ]
    )
    ranked = top_items(popularity, cutoff)
    features = (
        vectors.join(prices, on="client_id", how="left")
        .join(
            _item_columns(
                skus, "category", ranked["category"], prefix="cat", k=TOP_CATEGORIES, cutoff=cutoff
            ),
            on="client_id",
            how="left",
        )
        .join(
            _item_columns(skus, "sku", ranked["sku"], prefix="sku", k=TOP_SKUS, cutoff=cutoff),
            on="client_id",
            how="left",
        )
    )
    return prefixed(features, FAMILY).select(["client_id", *FEATURES]), ranked
