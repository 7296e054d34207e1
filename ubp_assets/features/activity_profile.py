"""A client's activity as of a cut day (how much of each event type over several windows, how
long since each, how many active days) and what they did in the weeks after it. The activity
forecast learns the one from the other, and the history bound (evaluation) measures what the
profile can tell at best."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl

PROFILE_WINDOWS = (1, 3, 7, 14, 28, 56, 112)
EVENT_TYPES = ("product_buy", "add_to_cart", "remove_from_cart", "page_visit", "search_query")
NEVER = 999.0  # days since an event type the client never had
TARGETS = ("buys", "carts", "returns")  # in the weeks after a cut: a buy, a cart add, any event


def client_profile(events: pl.LazyFrame, cut: dt.datetime) -> pl.DataFrame:
    """Per client with an event before the cut: log1p of event counts by type over several
    windows and in all, days since the last event of each type and since the first event,
    active days in the last 28 days and in all."""
    age = (pl.lit(cut) - pl.col("timestamp")).dt.total_seconds() / 86_400.0
    columns = []
    for kind in EVENT_TYPES:
        is_kind = pl.col("event_type") == kind
        columns += [(is_kind & (age < w)).sum().alias(f"{kind}_{w}d") for w in PROFILE_WINDOWS]
        columns.append(is_kind.sum().alias(f"{kind}_all"))
        columns.append(age.filter(is_kind).min().fill_null(NEVER).alias(f"{kind}_since"))
    columns += [
        age.max().alias("first_since"),
        pl.col("timestamp").dt.date().filter(age < 28).n_unique().alias("days_28d"),
        pl.col("timestamp").dt.date().n_unique().alias("days_all"),
    ]
    frame = (
        events.filter(pl.col("timestamp") < cut)
        .group_by("client_id")
        .agg(columns)
        .sort("client_id")
        .collect()
    )
    return frame.select("client_id", pl.exclude("client_id").cast(pl.Float64).log1p())


def profile_of(profiles: pl.DataFrame, client_ids: np.ndarray) -> np.ndarray:
    """Rows of client_ids; a client without events gets the profile of no activity at all."""
    empty = {
        c: np.log1p(NEVER) if c.endswith("_since") else 0.0
        for c in profiles.columns
        if c != "client_id"
    }
    return (
        pl.DataFrame({"client_id": client_ids.astype(np.int64)})
        .join(profiles, on="client_id", how="left", maintain_order="left")
        .with_columns(pl.col(c).fill_null(v) for c, v in empty.items())
        .drop("client_id")
        .to_numpy()
        .astype(np.float32)
    )


def next_weeks(
    events: pl.LazyFrame, client_ids: np.ndarray, cut: dt.datetime, horizon: dt.timedelta
) -> np.ndarray:
    """(clients, 3) labels: a buy, a cart add, any event in [cut, cut + horizon)."""
    after = (
        events.filter(pl.col("timestamp") >= cut, pl.col("timestamp") < cut + horizon)
        .group_by("client_id")
        .agg(
            (pl.col("event_type") == "product_buy").any().alias("buys"),
            (pl.col("event_type") == "add_to_cart").any().alias("carts"),
            pl.lit(True).alias("returns"),
        )
        .collect()
    )
    return (
        pl.DataFrame({"client_id": client_ids.astype(np.int64)})
        .join(after, on="client_id", how="left", maintain_order="left")
        .select(pl.col(TARGETS).fill_null(False))
        .to_numpy()
        .astype(np.float32)
    )
