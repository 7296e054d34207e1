"""Named sizes of the synthetic release, from seconds-long test data to the real release's size."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

# The real release ends on 2022-11-09; keeping the same calendar lets the synthetic data and the
# real data share partitions and split dates.
LAST_DAY = dt.date(2022, 11, 9)
HISTORY_DAYS = 182
TARGET_DAYS = 28


@dataclass(frozen=True)
class Scale:
    name: str
    n_clients: int
    n_relevant: int
    n_skus: int
    n_categories: int
    n_generic_urls: int
    # Mean sessions per client over the whole span; sets events per client.
    mean_sessions: float
    chunk_clients: int
    days: int = HISTORY_DAYS + TARGET_DAYS

    @property
    def first_day(self) -> dt.date:
        return LAST_DAY - dt.timedelta(days=self.days - 1)

    @property
    def last_day(self) -> dt.date:
        return LAST_DAY


SCALES: dict[str, Scale] = {
    s.name: s
    for s in (
        # Seconds: unit and wiring tests.
        Scale("tiny", 1_500, 1_000, 1_200, 40, 300, 14.0, 1_500),
        # Minutes for the whole pipeline on 2 cores: the main job's default.
        Scale("demo", 40_000, 20_000, 20_000, 400, 5_000, 26.0, 20_000),
        # A tenth of the real release: the benchmark size (about 17M events).
        Scale("tenth", 1_870_000, 100_000, 126_000, 680, 200_000, 3.3, 250_000),
        # A quarter: how the cost of a new day scales, still within a 24 GiB machine (44M events).
        Scale("quarter", 4_675_000, 250_000, 315_000, 1_700, 500_000, 3.3, 250_000),
        # The real release's size: about 175M events, 18.7M clients.
        Scale("full", 18_700_000, 1_000_000, 1_260_000, 6_800, 2_000_000, 3.3, 250_000),
    )
}


def get_scale(name: str) -> Scale:
    try:
        return SCALES[name]
    except KeyError:
        raise ValueError(f"unknown scale {name!r}; choose one of {sorted(SCALES)}") from None
