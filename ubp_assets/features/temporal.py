"""Temporal family: daily and weekly cycles, peak hours, and whether engagement rises or fades."""

from __future__ import annotations

import datetime as dt

import polars as pl

from ubp_assets.features.common import TWO_PI, days_before, fsum, prefixed, ratio, registry

FAMILY = "temporal"
HOURS = [f"h{h:02d}" for h in range(24)]
MOMENTUM_WEEKS = 8

FEATURES = registry(
    FAMILY,
    {
        "events": "events in the history",
        "hour_sin_mean": ("mean of sin(2π·hour/24) over events", "median"),
        "hour_cos_mean": ("mean of cos(2π·hour/24) over events", "median"),
        "hour_concentration": (
            "length of the mean hour vector: 1 = always the same hour",
            "median",
        ),
        "dow_sin_mean": ("mean of sin(2π·weekday/7) over events", "median"),
        "dow_cos_mean": ("mean of cos(2π·weekday/7) over events", "median"),
        "dow_concentration": ("length of the mean weekday vector", "median"),
        "weekend_share": ("share of events on Saturday or Sunday", "median"),
        "peak_hour_sin": ("sin of the busiest hour of day", "median"),
        "peak_hour_cos": ("cos of the busiest hour of day", "median"),
        "peak_hour_share": ("share of events in the busiest hour", "median"),
        "active_days": "days with at least one event",
        "active_day_share": ("active days over days since the first event", "median"),
        "days_since_first": ("days from the first active day to the cutoff", "span"),
        "days_since_last": ("days from the last active day to the cutoff", "span"),
        "rate_7d": "events per day over the last 7 days",
        "rate_30d": "events per day over the last 30 days",
        "rate_all": "events per day since the first event",
        "momentum_7_30": ("7-day rate over 30-day rate: above 1 = rising", "median"),
        "momentum_30_all": ("30-day rate over the lifetime rate", "median"),
        "weekly_slope": (
            f"least-squares slope of weekly counts over the last {MOMENTUM_WEEKS} weeks, "
            "over the mean weekly count",
            "median",
        ),
    },
)


def partial(events: pl.LazyFrame) -> pl.LazyFrame:
    ts = pl.col("timestamp")
    hour = ts.dt.hour() + ts.dt.minute() / 60 + ts.dt.second() / 3600
    return (
        events.group_by("client_id", "date")
        .agg(
            pl.len().cast(pl.Int32).alias("n_events"),
            fsum((hour * TWO_PI / 24).sin()).alias("hour_sin_sum"),
            fsum((hour * TWO_PI / 24).cos()).alias("hour_cos_sum"),
            *[(ts.dt.hour() == h).sum().cast(pl.Int32).alias(HOURS[h]) for h in range(24)],
        )
        .sort("client_id", "date")
    )


def fold(partials: pl.LazyFrame, cutoff: dt.date) -> pl.LazyFrame:
    n = pl.col("n_events")
    dow = pl.col("date").dt.weekday() - 1  # Monday 0
    back = days_before(cutoff)
    week = (back - 1) // 7  # 0 = the most recent week
    x = (MOMENTUM_WEEKS - 1 - week).cast(pl.Float64) - (MOMENTUM_WEEKS - 1) / 2
    x_var = sum(((w - (MOMENTUM_WEEKS - 1) / 2) ** 2) for w in range(MOMENTUM_WEEKS))
    in_weeks = week < MOMENTUM_WEEKS
    per_client = partials.group_by("client_id").agg(
        n.sum().alias("events"),
        fsum(pl.col("hour_sin_sum")),
        fsum(pl.col("hour_cos_sum")),
        fsum(n * (dow * TWO_PI / 7).sin()).alias("dow_sin_sum"),
        fsum(n * (dow * TWO_PI / 7).cos()).alias("dow_cos_sum"),
        n.filter(dow >= 5).sum().alias("weekend"),
        *[pl.col(h).sum() for h in HOURS],
        pl.len().alias("active_days"),
        back.max().alias("days_since_first"),
        back.min().alias("days_since_last"),
        n.filter(back <= 7).sum().alias("n_7d"),
        n.filter(back <= 30).sum().alias("n_30d"),
        n.filter(in_weeks).sum().alias("n_weeks"),
        (n * x).filter(in_weeks).sum().alias("slope_num"),
    )
    events = pl.col("events")
    hours = pl.concat_list(HOURS)
    peak = hours.list.arg_max().cast(pl.Float64)
    hour_sin, hour_cos = pl.col("hour_sin_sum") / events, pl.col("hour_cos_sum") / events
    dow_sin, dow_cos = pl.col("dow_sin_sum") / events, pl.col("dow_cos_sum") / events
    rate_7d, rate_30d = pl.col("n_7d") / 7, pl.col("n_30d") / 30
    rate_all = events / pl.col("days_since_first")
    features = per_client.select(
        "client_id",
        events.cast(pl.Float64),
        hour_sin.alias("hour_sin_mean"),
        hour_cos.alias("hour_cos_mean"),
        (hour_sin**2 + hour_cos**2).sqrt().alias("hour_concentration"),
        dow_sin.alias("dow_sin_mean"),
        dow_cos.alias("dow_cos_mean"),
        (dow_sin**2 + dow_cos**2).sqrt().alias("dow_concentration"),
        (pl.col("weekend") / events).alias("weekend_share"),
        (peak * TWO_PI / 24).sin().alias("peak_hour_sin"),
        (peak * TWO_PI / 24).cos().alias("peak_hour_cos"),
        (hours.list.max() / events).alias("peak_hour_share"),
        pl.col("active_days").cast(pl.Float64),
        (pl.col("active_days") / pl.col("days_since_first")).alias("active_day_share"),
        pl.col("days_since_first").cast(pl.Float64),
        pl.col("days_since_last").cast(pl.Float64),
        rate_7d.alias("rate_7d"),
        rate_30d.alias("rate_30d"),
        rate_all.alias("rate_all"),
        ratio(rate_7d, rate_30d).alias("momentum_7_30"),
        ratio(rate_30d, rate_all).alias("momentum_30_all"),
        ratio(pl.col("slope_num") / x_var, pl.col("n_weeks") / MOMENTUM_WEEKS).alias(
            "weekly_slope"
        ),
    )
    return prefixed(features, FAMILY)
