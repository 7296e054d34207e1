"""What `ubp run` shows of its runs: one line per finished step with its time, the progress of
long steps every little while, warnings and errors; every event, DEBUG included, goes to a log
file, read from the instance's event log as the run writes it (so `tail -f` follows it too)."""

from __future__ import annotations

import datetime as dt
import logging
import re
import time
from collections.abc import Callable
from pathlib import Path

import dagster as dg

from ubp_assets.progress import duration

# Progress lines (`ubp_assets.progress`) start "[n/N] "; the terminal gets one every so often.
PROGRESS = re.compile(r"^\[\d+/\d+\] ")
PROGRESS_EVERY_S = 15.0
QUIET_CONSOLE = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


class RunLog:
    """The log file of one `ubp run` and the terminal's share of it."""

    def __init__(self, path: Path, say: Callable[[str], None]) -> None:
        self.path, self.say = path, say
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = path.open("a", encoding="utf-8")
        self._cursor: str | None = None
        self._run_id: str | None = None
        self._last_progress: dict[str | None, float] = {}

    def follow(self, instance: dg.DagsterInstance, run_id: str) -> None:
        """Write the run's events recorded since the last call; say the terminal's share."""
        if run_id != self._run_id:
            self._run_id, self._cursor = run_id, None
        while True:
            page = instance.get_records_for_run(run_id, cursor=self._cursor, limit=1000)
            for record in page.records:
                self._write(record.event_log_entry)
            self._cursor = page.cursor
            if not page.has_more:
                break
        self._file.flush()

    def _write(self, entry) -> None:
        stamp = dt.datetime.fromtimestamp(entry.timestamp).isoformat(sep=" ", timespec="seconds")
        level = logging.getLevelName(entry.level)
        kind = entry.dagster_event.event_type_value if entry.dagster_event else "LOG"
        step = entry.step_key or "-"
        self._file.write(f"{stamp} {level} {entry.job_name} {step} {kind} {entry.message}\n")
        event = entry.dagster_event
        if event is not None and event.event_type == dg.DagsterEventType.STEP_SUCCESS:
            seconds = event.event_specific_data.duration_ms / 1000
            self.say(f"  {step}: {duration(seconds)}")
        elif event is not None and event.event_type == dg.DagsterEventType.STEP_FAILURE:
            self.say(f"  {step}: failed ({event.step_failure_data.error.message.strip()})")
        elif entry.level >= logging.WARNING and event is None:
            self.say(f"  {step}: {entry.message}")
        elif event is None and PROGRESS.match(entry.user_message or ""):
            now = time.monotonic()
            if now - self._last_progress.get(entry.step_key, -PROGRESS_EVERY_S) >= PROGRESS_EVERY_S:
                self._last_progress[entry.step_key] = now
                self.say(f"  {step}: {entry.user_message}")

    def close(self) -> None:
        self._file.close()
