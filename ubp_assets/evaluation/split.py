"""The challenge's time split (PROTOCOL.md), computed exactly as the organisers do."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from pathlib import Path

import polars as pl

from ubp_assets.storage import scan_days, stored_days

DAYS_IN_TARGET = 14


@dataclass(frozen=True)
class ChallengeSplit:
    end_date: dt.datetime  # the latest product_buy timestamp
    train_target_start: dt.datetime  # midnight of end_date - 27 days; the input ends here
    validation_target_start: dt.datetime  # train_target_start + 14 days

    @property
    def input_cutoff(self) -> dt.date:
        """Features in evaluation mode see only days before this one."""
        return self.train_target_start.date()

    def as_dict(self) -> dict[str, str]:
        return {k: v.isoformat(sep=" ") for k, v in asdict(self).items()}


def challenge_split(end_date: dt.datetime) -> ChallengeSplit:
    train_start = dt.datetime.combine(
        (end_date - dt.timedelta(days=2 * DAYS_IN_TARGET - 1)).date(), dt.time()
    )
    return ChallengeSplit(
        end_date=end_date,
        train_target_start=train_start,
        validation_target_start=train_start + dt.timedelta(days=DAYS_IN_TARGET),
    )


def _latest_buy(events: pl.LazyFrame) -> dt.datetime | None:
    return (
        events.filter(pl.col("event_type") == "product_buy")
        .select(pl.col("timestamp").max())
        .collect()
        .item()
    )


NO_BUYS = "no product_buy events: the challenge split needs at least one purchase"


def split_from_events(events: pl.LazyFrame) -> ChallengeSplit:
    end = _latest_buy(events)
    if end is None:
        raise ValueError(NO_BUYS)
    return challenge_split(end)


def split_from_event_days(events_dir: str | Path) -> ChallengeSplit:
    """The split from the stored day partitions, newest day first.

    Each day's file holds only that day's events, so the newest day with a purchase holds the
    latest one: a new day reads a day or two, not the whole history.
    """
    for day in reversed(stored_days(events_dir)):
        end = _latest_buy(scan_days(events_dir, [day]))
        if end is not None:
            return challenge_split(end)
    raise ValueError(NO_BUYS)
