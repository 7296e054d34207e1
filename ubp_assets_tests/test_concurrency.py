"""A backfill as users launch one: from the CLI, through the queued run coordinator and the
daemon, several runs at once; the heavy-steps pool lets one step hold memory at a time, no
day is lost."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from ubp_assets.instance import write_instance_yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DAYS = ["2022-04-14", "2022-04-15", "2022-04-16", "2022-04-17"]


@pytest.mark.slow
def test_a_cli_backfill_runs_concurrently_without_lock_errors(tiny_release, tmp_path):
    home = tmp_path / "home"
    write_instance_yaml(home)  # the instance `ubp run` sets up: queued runs, pool limit 1
    # `ubp run` creates the SQLite databases before anything else starts; here the daemon and the
    # CLI would otherwise race to create them (alembic then fails in one of the two)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        instance.get_runs(limit=1)
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "UBP_DATA_DIR": str(tmp_path / "data"),
        "UBP_RAW_DIR": str(tiny_release),
    }
    # The backfill is queued first and the daemon started after: its coordinator finds every run
    # waiting, so whether runs overlap does not hang on how fast the CLI submits them.
    launched = subprocess.run(
        [
            *(BIN / "dagster", "job", "backfill", "-j", "daily_job"),
            *("-w", ROOT / "workspace.yaml", "--partitions", ",".join(DAYS), "--noprompt"),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert launched.returncode == 0, launched.stderr[-2000:]
    with dg.DagsterInstance.from_config(str(home)) as instance:
        queued = [r.dagster_run.status for r in instance.get_run_records()]
    assert queued == [dg.DagsterRunStatus.QUEUED] * len(DAYS), queued
    log = (tmp_path / "daemon.log").open("w")
    daemon = subprocess.Popen(
        [BIN / "dagster-daemon", "run", "-w", ROOT / "workspace.yaml"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        instance = dg.DagsterInstance.from_config(str(home))
        deadline = time.monotonic() + 400
        while time.monotonic() < deadline:
            records = instance.get_run_records()
            done = [r for r in records if r.dagster_run.is_finished]
            if len(records) == len(DAYS) and len(done) == len(DAYS):
                break
            time.sleep(2)
        records = instance.get_run_records()
        statuses = [r.dagster_run.status for r in records]
        log.flush()
        assert statuses == [dg.DagsterRunStatus.SUCCESS] * len(DAYS), (
            statuses,
            (tmp_path / "daemon.log").read_text()[-3000:],
        )
        spans = sorted((r.start_time, r.end_time) for r in records)
        overlapping = any(later[0] < earlier[1] for earlier, later in itertools.pairwise(spans))
        assert overlapping, "the queued coordinator never ran two runs at once"
        for name in ("events", "temporal_daily", "identity_daily"):
            assert instance.get_materialized_partitions(dg.AssetKey(name)) == set(DAYS), name
        for day in DAYS:
            assert (tmp_path / "data" / "warehouse" / "events" / f"date={day}").is_dir()
        # no step of one run failed on a file another run held (DuckDB's "Could not set lock")
        assert "could not set lock" not in (tmp_path / "daemon.log").read_text().lower()
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        try:
            daemon.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(daemon.pid, signal.SIGKILL)
        log.close()
