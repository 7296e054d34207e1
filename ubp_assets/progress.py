"""Progress lines for long steps (`[n/N] part label: rows; rows/s, time left`).

The `[n/N] ` start is what `ubp run` knows them by (`run_log.PROGRESS`)."""

from __future__ import annotations

import time
from collections.abc import Callable


class Progress:
    """Counts parts of a step as they finish and logs one line for each.

    The time left extrapolates the mean time per part so far, which is what a person watching a
    backfill of equal chunks wants to know; the first part includes the step's fixed costs, so
    the estimate errs long early on.
    """

    def __init__(self, part: str, parts: int, log: Callable[[str], None]) -> None:
        self.part, self.parts, self.log = part, parts, log
        self.done, self.rows = 0, 0
        self.started = time.perf_counter()

    def advance(self, rows: int, label: str = "") -> None:
        self.done += 1
        self.rows += rows
        elapsed = time.perf_counter() - self.started
        left = elapsed / self.done * (self.parts - self.done)
        where = f" {label}" if label else ""
        self.log(
            f"[{self.done}/{self.parts}] {self.part}{where}: {rows:,} rows; "
            f"{self.rows / max(elapsed, 1e-9):,.0f} rows/s, {duration(left)} left"
        )


def duration(seconds: float) -> str:
    """Seconds as a person reads them: 42.1s, 3.5 min, 1.6 h."""
    if seconds < 120:
        return f"{seconds:.1f}s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"
