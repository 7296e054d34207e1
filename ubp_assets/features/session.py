"""Session family: sessions split at more than 30 minutes of inactivity, and how they are used.

A day's partial holds its session fragments. A session that crosses midnight leaves a fragment on
each side; `merge_sessions` joins fragments less than the gap apart, so such a session counts once.
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from ubp_assets.features.common import (
    BUY,
    CART,
    SEARCH,
    SHORT,
    code,
    days_before,
    int_moments,
    prefixed,
    ratio,
    registry,
)

FAMILY = "session"
SESSION_GAP = dt.timedelta(minutes=30)
PARTS_OF_DAY = {"night": (0, 6), "morning": (6, 12), "afternoon": (12, 18), "evening": (18, 24)}
BURST_MIN_EVENTS = 3
BURST_EVENTS_PER_MINUTE = 1.0

FEATURES = registry(
    FAMILY,
    {
        "count": "sessions in the history",
        "count_30d": "sessions started in the last 30 days",
        "duration_mean": ("mean session duration, seconds", "median"),
        "duration_var": ("variance of session duration, seconds²", "median"),
        "events_per_session_mean": ("mean events per session", "median"),
        "events_per_session_max": "most events in one session",
        "single_event_share": ("share of sessions with one event", "median"),
        "gap_mean_hours": ("mean time between sessions, hours", "median"),
        "gap_std_hours": ("standard deviation of the time between sessions, hours", "median"),
        "gap_median_hours": ("median time between sessions, hours", "median"),
        "within_day_return_share": ("share of gaps between sessions under 24 hours", "median"),
        **{
            f"{part}_share": (f"share of events in the {part} ({a:02d}-{b:02d}h)", "median")
            for part, (a, b) in PARTS_OF_DAY.items()
        },
        "burst_ratio": (
            f"share of sessions that are dense bursts (at least {BURST_MIN_EVENTS} events, "
            f"at least {BURST_EVENTS_PER_MINUTE:g} per minute) rather than sporadic",
            "median",
        ),
    },
)
COUNTS = [f"n_{SHORT[c]}" for c in sorted(SHORT)]


def partial(events: pl.LazyFrame) -> pl.LazyFrame:
    """Session fragments of each client and day, with what the later families need of them."""
    ts = pl.col("timestamp")
    gap = ts.diff().over("client_id", "date")
    hour = ts.dt.hour()
    return (
        events.sort("client_id", "timestamp", "event_type")
        .with_columns(
            code().alias("code"),
            (gap.is_null() | (gap > SESSION_GAP)).cum_sum().over("client_id", "date").alias("frag"),
        )
        .group_by("client_id", "date", "frag", maintain_order=True)
        .agg(
            ts.min().alias("start"),
            ts.max().alias("end"),
            pl.len().cast(pl.Int32).alias("n_events"),
            *[(pl.col("code") == c).sum().cast(pl.Int32).alias(f"n_{SHORT[c]}") for c in SHORT],
            *[
                hour.is_between(a, b, closed="left").sum().cast(pl.Int32).alias(f"n_{part}")
                for part, (a, b) in PARTS_OF_DAY.items()
            ],
            ts.filter(pl.col("code") == SEARCH).min().alias("first_search"),
            ts.filter(pl.col("code") == CART).min().alias("first_cart"),
            ts.filter(pl.col("code") == BUY).max().alias("last_buy"),
            pl.col("code").alias("codes"),
        )
        .drop("frag")
    )


def merge_sessions(fragments: pl.LazyFrame) -> pl.LazyFrame:
    """Whole sessions from day fragments: a fragment that starts within the gap of the previous
    one's end continues it (as happens across midnight)."""
    gap = pl.col("start") - pl.col("end").shift().over("client_id")
    return (
        fragments.sort("client_id", "start")
        .with_columns(
            (gap.is_null() | (gap > SESSION_GAP)).cum_sum().over("client_id").alias("session")
        )
        .group_by("client_id", "session", maintain_order=True)
        .agg(
            pl.col("date").first(),
            pl.col("start").min(),
            pl.col("end").max(),
            pl.col("n_events").sum(),
            *[pl.col(c).sum() for c in COUNTS],
            *[pl.col(f"n_{part}").sum() for part in PARTS_OF_DAY],
            pl.col("first_search").min(),
            pl.col("first_cart").min(),
            pl.col("last_buy").max(),
            pl.col("codes").list.explode(keep_nulls=False, empty_as_null=False),
        )
    )


def fold(fragments: pl.LazyFrame, cutoff: dt.date) -> pl.LazyFrame:
    sessions = merge_sessions(fragments).with_columns(
        (pl.col("end") - pl.col("start")).dt.total_seconds().alias("duration"),
        (pl.col("start") - pl.col("end").shift().over("client_id")).dt.total_seconds().alias("gap"),
    )
    n = pl.col("n_events")
    minutes = (pl.col("duration") / 60).clip(lower_bound=1.0)
    burst = (n >= BURST_MIN_EVENTS) & (n / minutes >= BURST_EVENTS_PER_MINUTE)
    total = n.sum()
    duration_mean, duration_var = int_moments(pl.col("duration"))
    gap_mean, gap_var = int_moments(pl.col("gap"))
    features = sessions.group_by("client_id").agg(
        pl.len().cast(pl.Float64).alias("count"),
        (days_before(cutoff) <= 30).sum().cast(pl.Float64).alias("count_30d"),
        duration_mean.alias("duration_mean"),
        duration_var.alias("duration_var"),
        n.mean().alias("events_per_session_mean"),
        n.max().cast(pl.Float64).alias("events_per_session_max"),
        (n == 1).mean().alias("single_event_share"),
        (gap_mean / 3600).alias("gap_mean_hours"),
        (gap_var.sqrt() / 3600).alias("gap_std_hours"),
        (pl.col("gap").median() / 3600).alias("gap_median_hours"),
        ratio((pl.col("gap") < 24 * 3600).sum(), pl.col("gap").count()).alias(
            "within_day_return_share"
        ),
        *[(pl.col(f"n_{part}").sum() / total).alias(f"{part}_share") for part in PARTS_OF_DAY],
        burst.mean().alias("burst_ratio"),
    )
    return prefixed(features, FAMILY)
