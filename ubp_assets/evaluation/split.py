"""The challenge's time split (PROTOCOL.md), computed exactly as the organisers do."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass

import polars as pl

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


def split_from_events(events: pl.LazyFrame) -> ChallengeSplit:
    end = (
        events.filter(pl.col("event_type") == "product_buy")
        .select(pl.col("timestamp").max())
        .collect()
        .item()
    )
    if end is None:
        raise ValueError("no product_buy events: the challenge split needs at least one purchase")
    return challenge_split(end)
