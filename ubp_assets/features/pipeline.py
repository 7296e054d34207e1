"""The feature families in one table: which partial each family keeps and how each one folds.

The assets are built from these two registries; `features_as_of` runs them in memory (tests,
benchmarks), the plainest statement of what the features are.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import polars as pl

from ubp_assets.features import advanced, behavioral, conversion, identity, session, temporal
from ubp_assets.shards import Shard


@dataclass(frozen=True)
class Partial:
    group: str
    compute: Callable[[pl.LazyFrame, pl.LazyFrame], pl.LazyFrame]  # (events, product names)
    description: str
    relevant_only: bool = True
    needs_names: bool = False
    # Dagster's code version of the asset: bump it with any change to what `compute` runs
    # (features/versions.py and its test hold that)
    code_version: str = "1"


@dataclass(frozen=True)
class Fold:
    partials: tuple[str, ...]
    # (partials by name, cutoff) -> (table, ranked item ids or None)
    compute: Callable[[dict[str, pl.LazyFrame], dt.date], tuple[pl.LazyFrame, dict | None]]
    description: str
    code_version: str = "1"  # as Partial's


PARTIALS: dict[str, Partial] = {
    "temporal_daily": Partial(
        "temporal",
        lambda ev, _: temporal.partial(ev),
        "Per client and day: events, sums of sin/cos of the hour, and counts by hour of day.",
    ),
    "session_daily": Partial(
        "session",
        lambda ev, _: session.partial(ev),
        "Per client and day: session fragments split at more than 30 minutes of inactivity, with "
        "counts by event type and part of day and the ordered event types. Fragments of a "
        "session that crosses midnight are joined when folded.",
    ),
    "behavioral_daily": Partial(
        "behavioral",
        lambda ev, _: behavioral.partial(ev),
        "Per client, day and item: actions on each SKU (with its category and price) and visits "
        "to each page, so that distinct counts, entropies and Gini coefficients fold exactly.",
    ),
    "item_popularity_daily": Partial(
        "behavioral",
        lambda ev, _: behavioral.popularity_partial(ev),
        "Per day and SKU, over every client: actions and purchases. The population that novelty "
        "and the identity family's ranked items refer to.",
        relevant_only=False,
    ),
    "conversion_daily": Partial(
        "conversion",
        lambda ev, _: conversion.partial(ev),
        "Per client and day: events by type, carts and purchases by price bin, price sums.",
    ),
    "identity_daily": Partial(
        "identity",
        identity.partial,
        "Per client and day: events by type, and sums of search vectors and of the name vectors "
        "of the SKUs acted on and bought.",
        needs_names=True,
    ),
}


def _identity(p: dict[str, pl.LazyFrame], cutoff: dt.date) -> tuple[pl.LazyFrame, dict]:
    return identity.fold(
        p["identity_daily"], p["behavioral_daily"], p["item_popularity_daily"], cutoff
    )


FOLDS: dict[str, Fold] = {
    "temporal": Fold(
        ("temporal_daily",),
        lambda p, c: (temporal.fold(p["temporal_daily"], c), None),
        "Temporal features per relevant client: hour and weekday cycles (sin/cos means and "
        "concentration), peak hour, activity rates and momentum.",
    ),
    "session": Fold(
        ("session_daily",),
        lambda p, c: (session.fold(p["session_daily"], c), None),
        "Session features per relevant client: sessions (30-minute gap, counted once across "
        "midnight), duration mean and variance, events per session, gaps between sessions, "
        "part-of-day shares, burst ratio.",
    ),
    "behavioral": Fold(
        ("behavioral_daily", "item_popularity_daily"),
        lambda p, c: (behavioral.fold(p["behavioral_daily"], p["item_popularity_daily"], c), None),
        "Behavioral features per relevant client: entropy and Gini over categories, SKU and page "
        "exploration rates, novelty seeking against SKU popularity.",
    ),
    "conversion": Fold(
        ("conversion_daily", "behavioral_daily", "session_daily"),
        lambda p, c: (
            conversion.fold(p["conversion_daily"], p["behavioral_daily"], p["session_daily"], c),
            None,
        ),
        "Conversion features per relevant client: cart abandonment, search-to-purchase and "
        "same-session conversion, purchase rate by price bin, price levels.",
    ),
    "advanced": Fold(
        ("conversion_daily", "behavioral_daily", "session_daily"),
        lambda p, c: (
            advanced.fold(p["conversion_daily"], p["behavioral_daily"], p["session_daily"], c),
            None,
        ),
        "The seed paper's advanced metrics per relevant client: price sensitivity curve and "
        "elasticity, exploration-exploitation balance, purchase journey, session progression, "
        "purchase and category cycles, behavioral segments.",
    ),
    "identity": Fold(
        ("identity_daily", "behavioral_daily", "item_popularity_daily"),
        _identity,
        "Identity features per relevant client: events by type over 1/7/30 days and all "
        "history, mean search and product-name vectors, actions and purchases by price bin and "
        "on the 100 most popular categories and SKUs (with a 7-day half-life recency).",
    ),
}


def fold_in_shards(
    spec: Fold,
    partials: dict[str, pl.LazyFrame],
    *,
    cutoff: dt.date,
    shards: list[Shard],
    relevant: pl.Series,
    progress: Callable[[int, str], None],
    ranked: dict,
) -> Iterator[pl.DataFrame]:
    """Each shard's table, folded from the shard's rows of the per-client partials and the whole
    of the others (the item popularity every client is compared with): a client's features
    depend only on its own rows and that population, so the shards' tables are the table's."""
    per_client = {name for name, frame in partials.items() if "client_id" in frame.collect_schema()}
    for shard in shards:
        inputs = {
            name: frame.filter(shard.rows()) if name in per_client else frame
            for name, frame in partials.items()
        }
        table, ranks = spec.compute(inputs, cutoff)
        ranked.update(ranks or {})
        part = table.filter(pl.col("client_id").is_in(relevant)).sort("client_id").collect()
        progress(part.height, shard.label)
        yield part


def fold_name(family: str) -> str:
    """The name of a family's fold asset (its user-level table in the warehouse)."""
    return f"{family}_features"


FEATURES = {
    **temporal.FEATURES,
    **session.FEATURES,
    **behavioral.FEATURES,
    **conversion.FEATURES,
    **advanced.FEATURES,
    **identity.FEATURES,
}


def compute_partials(
    events: pl.LazyFrame, names: pl.LazyFrame, relevant: pl.Series | None = None
) -> dict[str, pl.DataFrame]:
    """Each family's partial over the given events (any number of days)."""
    mine = events
    if relevant is not None:
        mine = events.filter(pl.col("client_id").is_in(relevant.implode()))
    return {
        name: spec.compute(mine if spec.relevant_only else events, names).collect()
        for name, spec in PARTIALS.items()
    }


def fold_families(partials: dict[str, pl.DataFrame], cutoff: dt.date) -> dict[str, pl.DataFrame]:
    """Every family's user-level table from partials, seeing only days before the cutoff."""
    before = {k: v.lazy().filter(pl.col("date") < cutoff) for k, v in partials.items()}
    return {
        family: spec.compute(before, cutoff)[0].collect().sort("client_id")
        for family, spec in FOLDS.items()
    }


def features_as_of(
    events: pl.LazyFrame, names: pl.LazyFrame, cutoff: dt.date, relevant: pl.Series | None = None
) -> dict[str, pl.DataFrame]:
    return fold_families(compute_partials(events, names, relevant), cutoff)
