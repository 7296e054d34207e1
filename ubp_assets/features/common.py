"""Shared pieces of the feature families: the feature registry, day arithmetic, safe ratios.

Each family is a pair of pure functions over polars lazy frames: `partial` turns one or more days of
events into per-client-per-day sufficient statistics, and `fold` turns the partials of every day
before a cutoff into one row per client. Folding is exact: it gives what a computation over all
events at once would give, however the days were batched.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Literal

import polars as pl

Fill = Literal["zero", "median", "span"]
EVENT_CODES = {
    "product_buy": 0,
    "add_to_cart": 1,
    "remove_from_cart": 2,
    "page_visit": 3,
    "search_query": 4,
}
BUY, CART, REMOVE, VISIT, SEARCH = (EVENT_CODES[k] for k in EVENT_CODES)
SHORT = {BUY: "buy", CART: "cart", REMOVE: "remove", VISIT: "visit", SEARCH: "search"}


@dataclass(frozen=True)
class Feature:
    """One engineered feature: what it means and how a client without the data gets a value.

    fill: "zero" for counts and amounts, "median" for rates and means that are undefined without
    events (the population median, so the gap is not mistaken for an extreme), "span" for
    day-distances (the whole history: as far back as can be seen).
    """

    family: str
    description: str
    fill: Fill = "zero"


def registry(family: str, entries: dict[str, tuple[str, Fill] | str]) -> dict[str, Feature]:
    out = {}
    for name, entry in entries.items():
        description, fill = (entry, "zero") if isinstance(entry, str) else entry
        out[f"{family}_{name}"] = Feature(family, description, fill)
    return out


def code() -> pl.Expr:
    """The event type as its small integer code (the enum's physical value)."""
    return pl.col("event_type").to_physical().cast(pl.Int8)


def days_before(cutoff: dt.date) -> pl.Expr:
    """1 for the day before the cutoff, 2 for the one before, and so on."""
    return (pl.lit(cutoff) - pl.col("date")).dt.total_days().cast(pl.Int32)


def ratio(numerator: pl.Expr, denominator: pl.Expr) -> pl.Expr:
    """numerator / denominator, null where the denominator is zero (undefined, not infinite)."""
    return pl.when(denominator > 0).then(numerator / denominator).otherwise(None)


FIXED_POINT = 2.0**32


def fsum(values: pl.Expr) -> pl.Expr:
    """Sum of float values, the same in every run.

    Polars splits group-bys across threads and float addition is not associative, so a plain
    float sum can change in its last bits from run to run. Each value is rounded to a multiple
    of 2^-32 and summed as an integer, which is exact in any order. Integer sums (and the mean of
    integers or booleans) need no such care.
    """
    return (values * FIXED_POINT).round().cast(pl.Int64).sum() / FIXED_POINT


def fmean(values: pl.Expr) -> pl.Expr:
    """Mean of float values, the same in every run; null where there are none."""
    return ratio(fsum(values), values.count())


def int_moments(values: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
    """Mean and population variance of integer values from exact integer sums; null where
    there are none."""
    n = values.count()
    mean = ratio(values.sum().cast(pl.Float64), n)
    squares = ratio((values.cast(pl.Int64) ** 2).sum().cast(pl.Float64), n)
    return mean, (squares - mean**2).clip(lower_bound=0.0)


def prefixed(frame: pl.LazyFrame, family: str) -> pl.LazyFrame:
    return frame.rename(lambda c: c if c == "client_id" else f"{family}_{c}")


TWO_PI = 2 * math.pi
