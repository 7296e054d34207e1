"""Advanced family: the seed paper's compound metrics, built from the other families' partials.

It has no partial of its own: every metric here is a function of statistics the session,
conversion and behavioral partials already hold, so a copy would only cost disk and time.

Behavioral segments (binary indicators; thresholds chosen to mark a clear minority on the
synthetic data and kept fixed so that they mean the same on the real release):
- researcher: searches are at least 15% of events, with at least 3 searches;
- browser: at least 20 page visits and never a cart or purchase;
- decisive buyer: at least one purchase and at most 10 page visits per purchase;
- loyal customer: at least 3 purchases and at least half of them in categories bought on an
  earlier day.
"""

from __future__ import annotations

import datetime as dt
import math

import polars as pl

from ubp_assets.features.common import (
    BUY,
    CART,
    SEARCH,
    VISIT,
    days_before,
    fmean,
    int_moments,
    prefixed,
    ratio,
    registry,
)
from ubp_assets.features.conversion import BIN_WIDTH, PRICE_BINS, totals
from ubp_assets.features.session import merge_sessions

FAMILY = "advanced"
RECENT_DAYS = 30
BIN_CENTERS = [b * BIN_WIDTH + BIN_WIDTH / 2 for b in range(PRICE_BINS)]

FEATURES = registry(
    FAMILY,
    {
        "price_curve_slope": (
            "weighted least-squares slope of purchases per cart against the price bin centre",
            "median",
        ),
        "price_curve_intercept": ("intercept of that line", "median"),
        "price_elasticity": (
            "slope of log(1 + purchases) against log(price bin centre): below 0 = buys cheap",
            "median",
        ),
        "discovery_auc": (
            "area under the normalised curve of distinct SKUs found over the client's active "
            "span: high = found early then revisited, low = keeps exploring",
            "median",
        ),
        "late_discovery_share": (
            f"share of distinct SKUs first found in the last {RECENT_DAYS} days",
            "median",
        ),
        "repeat_touch_share": (
            "share of SKU actions on a SKU touched before (exploitation)",
            "median",
        ),
        "search_to_visit": ("page visits per search", "median"),
        "visit_to_cart": ("add-to-carts per page visit", "median"),
        "cart_to_buy": ("purchases per add-to-cart", "median"),
        "funnel_efficiency": (
            "purchases over all search, visit and cart steps of the funnel",
            "median",
        ),
        "full_funnel_buy_share": (
            "share of purchase sessions that also had a search, a visit and a cart",
            "median",
        ),
        "progression_visit_shift": (
            "share of visits in the first half of sessions minus the share in the second half",
            "median",
        ),
        "progression_cart_shift": (
            "share of carts and purchases in the second half of sessions minus the first half",
            "median",
        ),
        "progression_search_early": (
            "share of searches that fall in the first half of sessions",
            "median",
        ),
        "purchase_days": "days with a purchase",
        "purchase_interval_mean": ("mean days between purchase days", "median"),
        "purchase_interval_cv": ("coefficient of variation of those intervals", "median"),
        "purchase_regularity": ("1 / (1 + interval CV): 1 = clockwork", "median"),
        "days_since_last_purchase": ("days from the last purchase to the cutoff", "span"),
        "purchase_overdue_ratio": (
            "days since the last purchase over the mean interval: above 1 = a purchase is due",
            "median",
        ),
        "category_cycle_days": (
            "mean days between purchases in the same category (categories bought on 2+ days)",
            "median",
        ),
        "category_repurchase_share": (
            "share of purchases in a category bought on an earlier day",
            "median",
        ),
        "segment_researcher": "indicator: researcher segment (see module notes)",
        "segment_browser": "indicator: browser segment",
        "segment_decisive_buyer": "indicator: decisive buyer segment",
        "segment_loyal_customer": "indicator: loyal customer segment",
    },
)


def _least_squares(
    xs: list[float], ys: list[pl.Expr], ws: list[pl.Expr]
) -> tuple[pl.Expr, pl.Expr]:
    """Weighted least-squares slope and intercept of y on fixed x."""
    sw = pl.sum_horizontal(ws)
    swx = pl.sum_horizontal([w * x for w, x in zip(ws, xs, strict=True)])
    swy = pl.sum_horizontal([w * y.fill_null(0) for w, y in zip(ws, ys, strict=True)])
    swxx = pl.sum_horizontal([w * x * x for w, x in zip(ws, xs, strict=True)])
    swxy = pl.sum_horizontal([w * x * y.fill_null(0) for w, x, y in zip(ws, xs, ys, strict=True)])
    denominator = sw * swxx - swx**2
    slope = ratio(sw * swxy - swx * swy, denominator)
    intercept = ratio(swy - slope * swx, sw)
    return slope, intercept


def _price_curve(t: pl.LazyFrame) -> pl.LazyFrame:
    carts = [pl.col(f"cart_bin{b}").cast(pl.Float64) for b in range(PRICE_BINS)]
    rates = [ratio(pl.col(f"buy_bin{b}"), pl.col(f"cart_bin{b}")) for b in range(PRICE_BINS)]
    slope, intercept = _least_squares(BIN_CENTERS, rates, carts)
    log_x = [math.log(c) for c in BIN_CENTERS]
    mean_log_x = sum(log_x) / PRICE_BINS
    sxx = sum((x - mean_log_x) ** 2 for x in log_x)
    elasticity = (
        pl.sum_horizontal(
            [(x - mean_log_x) * (1 + pl.col(f"buy_bin{b}")).log() for b, x in enumerate(log_x)]
        )
        / sxx
    )
    has_carts = pl.sum_horizontal(carts) > 0
    return t.select(
        "client_id",
        slope.alias("price_curve_slope"),
        intercept.alias("price_curve_intercept"),
        pl.when(has_carts).then(elasticity).alias("price_elasticity"),
    )


def _exploration(items: pl.LazyFrame, cutoff: dt.date) -> pl.LazyFrame:
    per_sku = (
        items.filter(pl.col("sku").is_not_null())
        .group_by("client_id", "sku")
        .agg(days_before(cutoff).max().alias("first"), pl.col("n_touch").sum())
    )
    span = (pl.col("first").max() - pl.col("last_active").first()).cast(pl.Float64)
    last_active = items.group_by("client_id").agg(days_before(cutoff).min().alias("last_active"))
    return (
        per_sku.join(last_active, on="client_id")
        .group_by("client_id")
        .agg(
            # Each SKU counts from its discovery to the end of the client's active span.
            ratio(
                ((pl.col("first") - pl.col("last_active")).cast(pl.Float64)).sum(),
                span * pl.len(),
            ).alias("discovery_auc"),
            (pl.col("first") <= RECENT_DAYS).mean().alias("late_discovery_share"),
            (1 - pl.len() / pl.col("n_touch").sum()).alias("repeat_touch_share"),
        )
    )


def _progression(fragments: pl.LazyFrame) -> pl.LazyFrame:
    codes = pl.col("codes")
    half = codes.list.len() // 2
    early, late = codes.list.head(half), codes.list.slice(half)

    def share(part: pl.Expr, values: list[int]) -> pl.Expr:
        hits = part.list.eval(pl.element().is_in(values)).list.sum()
        return ratio(hits, part.list.len())

    def count(part: pl.Expr, values: list[int]) -> pl.Expr:
        return part.list.eval(pl.element().is_in(values)).list.sum()

    sessions = merge_sessions(fragments).filter(codes.list.len() >= 2)
    return sessions.group_by("client_id").agg(
        fmean(share(early, [VISIT]) - share(late, [VISIT])).alias("progression_visit_shift"),
        fmean(share(late, [CART, BUY]) - share(early, [CART, BUY])).alias("progression_cart_shift"),
        ratio(count(early, [SEARCH]).sum(), count(codes, [SEARCH]).sum()).alias(
            "progression_search_early"
        ),
    )


def _funnel_sessions(fragments: pl.LazyFrame) -> pl.LazyFrame:
    sessions = merge_sessions(fragments).filter(pl.col("n_buy") > 0)
    full = (pl.col("n_search") > 0) & (pl.col("n_visit") > 0) & (pl.col("n_cart") > 0)
    return sessions.group_by("client_id").agg(full.mean().alias("full_funnel_buy_share"))


def _purchase_rhythm(partials: pl.LazyFrame, items: pl.LazyFrame, cutoff: dt.date) -> pl.LazyFrame:
    buy_days = (
        partials.filter(pl.col("n_buy") > 0)
        .select("client_id", days_before(cutoff).alias("back"))
        .sort("client_id", "back", descending=[False, True])
        .with_columns(interval=pl.col("back").shift().over("client_id") - pl.col("back"))
    )
    interval_mean, interval_var = int_moments(pl.col("interval"))
    rhythm = buy_days.group_by("client_id").agg(
        pl.len().cast(pl.Float64).alias("purchase_days"),
        interval_mean.alias("purchase_interval_mean"),
        ratio(interval_var.sqrt(), interval_mean).alias("purchase_interval_cv"),
        pl.col("back").min().cast(pl.Float64).alias("days_since_last_purchase"),
    )
    category_days = (
        items.filter(pl.col("n_buy") > 0, pl.col("category").is_not_null())
        .group_by("client_id", "category", "date")
        .agg(pl.col("n_buy").sum())
        .sort("client_id", "category", "date")
        .with_columns(
            gap=(pl.col("date") - pl.col("date").shift().over("client_id", "category"))
            .dt.total_days()
            .cast(pl.Float64)
        )
    )
    cycles = category_days.group_by("client_id").agg(
        pl.col("gap").mean().alias("category_cycle_days"),
        ratio(
            pl.col("n_buy").filter(pl.col("gap").is_not_null()).sum(), pl.col("n_buy").sum()
        ).alias("category_repurchase_share"),
    )
    return rhythm.join(cycles, on="client_id", how="left").with_columns(
        (1 / (1 + pl.col("purchase_interval_cv"))).alias("purchase_regularity"),
        ratio(pl.col("days_since_last_purchase"), pl.col("purchase_interval_mean")).alias(
            "purchase_overdue_ratio"
        ),
    )


def fold(
    partials: pl.LazyFrame, items: pl.LazyFrame, fragments: pl.LazyFrame, cutoff: dt.date
) -> pl.LazyFrame:
    """`partials` are the conversion family's, `items` the behavioral, `fragments` the session."""
    t = totals(partials)
    n_events = pl.sum_horizontal(
        pl.col(f"n_{k}") for k in ("search", "visit", "cart", "remove", "buy")
    )
    funnel = t.select(
        "client_id",
        ratio(pl.col("n_visit"), pl.col("n_search")).alias("search_to_visit"),
        ratio(pl.col("n_cart"), pl.col("n_visit")).alias("visit_to_cart"),
        ratio(pl.col("n_buy"), pl.col("n_cart")).alias("cart_to_buy"),
        ratio(pl.col("n_buy"), pl.col("n_search") + pl.col("n_visit") + pl.col("n_cart")).alias(
            "funnel_efficiency"
        ),
        ((pl.col("n_search") / n_events >= 0.15) & (pl.col("n_search") >= 3)).alias("researcher"),
        ((pl.col("n_visit") >= 20) & (pl.col("n_cart") == 0) & (pl.col("n_buy") == 0)).alias(
            "browser"
        ),
        ((pl.col("n_buy") >= 1) & (pl.col("n_visit") <= 10 * pl.col("n_buy"))).alias("decisive"),
        pl.col("n_buy"),
    )
    rhythm = _purchase_rhythm(partials, items, cutoff)
    features = (
        funnel.join(_price_curve(t), on="client_id", how="left")
        .join(_exploration(items, cutoff), on="client_id", how="left")
        .join(_funnel_sessions(fragments), on="client_id", how="left")
        .join(_progression(fragments), on="client_id", how="left")
        .join(rhythm, on="client_id", how="left")
        .with_columns(
            pl.col("researcher").cast(pl.Float64).alias("segment_researcher"),
            pl.col("browser").cast(pl.Float64).alias("segment_browser"),
            pl.col("decisive").cast(pl.Float64).alias("segment_decisive_buyer"),
            ((pl.col("n_buy") >= 3) & (pl.col("category_repurchase_share").fill_null(0) >= 0.5))
            .cast(pl.Float64)
            .alias("segment_loyal_customer"),
            pl.col("purchase_days").fill_null(0),
        )
    )
    return prefixed(features, FAMILY).select(["client_id", *FEATURES])
