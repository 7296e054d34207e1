"""Day partitions over the data's time span.

The span defaults to the synthetic release's calendar (2022-04-14..2022-11-09), which also covers
the real release; UBP_FIRST_DAY and UBP_LAST_DAY (inclusive, YYYY-MM-DD) move it, for example when
new days of events arrive.
"""

from __future__ import annotations

import datetime as dt
import os

import dagster as dg

FIRST_DAY = dt.date.fromisoformat(os.environ.get("UBP_FIRST_DAY", "2022-04-14"))
LAST_DAY = dt.date.fromisoformat(os.environ.get("UBP_LAST_DAY", "2022-11-09"))

event_days = dg.DailyPartitionsDefinition(
    start_date=FIRST_DAY.isoformat(),
    end_date=(LAST_DAY + dt.timedelta(days=1)).isoformat(),
)


def window_days(context: dg.AssetExecutionContext) -> tuple[dt.date, dt.date]:
    """First and last day (inclusive) of the partitions this run materializes."""
    window = context.partition_time_window
    return window.start.date(), (window.end - dt.timedelta(days=1)).date()
