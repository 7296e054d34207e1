"""Dagster's celery executor for real: Redis as the broker (`.ci/start-redis`), two workers
started with `dagster-celery worker start` as processes of their own, the instance on Postgres
(`.ci/start-postgres`). A backfill of days of `daily_job`, launched with `dagster job execute`
as a user would, is executed step by step by the workers; its day files equal an in-process
run's. Without either server the test skips, unless UBP_REQUIRE_POSTGRES=1 and
UBP_REQUIRE_REDIS=1 (CI), where it fails.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from ubp_assets.definitions import load_stage_definitions, make_definitions
from ubp_assets.executors import celery_workers
from ubp_assets.features.pipeline import PARTIALS
from ubp_assets.instance import write_instance_yaml
from ubp_assets.resources import ScaleSettings, UbpStorage, build_resources
from ubp_assets.storage import day_range
from ubp_assets_tests.helpers import RANGE_END, RANGE_START, chunk_events_for

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
FIRST, LAST = "2022-04-14", "2022-04-19"
WORKERS = ("w1", "w2")


DAYS = [d.isoformat() for d in day_range(dt.date.fromisoformat(FIRST), dt.date.fromisoformat(LAST))]
# the backfill of FIRST..LAST, launched as a user launches it
BACKFILL = (
    *(BIN / "dagster", "job", "execute", "-m", "ubp_assets.definitions", "-j", "daily_job"),
    *("--tags", json.dumps({RANGE_START: FIRST, RANGE_END: LAST})),
)


def _celery_env(
    pg_database: dict[str, str],
    redis_url: str,
    raw: Path,
    tmp_path: Path,
    monkeypatch,
    *,
    days: int,
) -> tuple[Path, int, dict[str, str]]:
    """A Postgres instance's home, the UBP_CHUNK_EVENTS that builds `days` days a chunk, and the
    environment the workers and the launching command share: instance, data, broker. The
    DAGSTER_PG_* variables are set here too, for the instance the test reads."""
    for var, value in pg_database.items():
        monkeypatch.setenv(var, value)
    home = write_instance_yaml(tmp_path / "home", postgres=True).parent
    chunk_events = chunk_events_for(raw, days)
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "UBP_DATA_DIR": str(tmp_path / "data"),
        "UBP_RAW_DIR": str(raw),
        "UBP_CHUNK_EVENTS": str(chunk_events),
        "UBP_EXECUTOR": "celery",
        "UBP_CELERY_BROKER": redis_url,
    }
    return home, chunk_events, env


def _materialized(entries) -> Counter:
    """(asset, day) of every materialization in a run's events."""
    return Counter(
        (e.dagster_event.asset_key.to_user_string(), e.dagster_event.partition)
        for e in entries
        if e.is_dagster_event and e.dagster_event.is_step_materialization
    )


EVERY_DAY_ONCE = Counter((a, d) for a in ("events", *PARTIALS) for d in DAYS)


def _assert_equal_to_an_in_process_run(
    tmp_path: Path, raw: Path, chunk_events: int, days: int
) -> None:
    """The same days in one process, on a data directory of its own: every parquet file (day
    files and quarantine) is there in both, and equal."""
    local = tmp_path / "local"
    storage = UbpStorage(data_dir=str(local), raw_dir=str(raw))
    defs = make_definitions(
        build_resources(storage, scale=ScaleSettings(chunk_events=chunk_events))
    )
    job = defs.resolve_job_def("daily_job")
    assert job.execute_in_process(tags={RANGE_START: FIRST, RANGE_END: LAST}).success
    spread, alone = _parquet_files(tmp_path / "data"), _parquet_files(local)
    assert sorted(spread) == sorted(alone)
    assert len([name for name in alone if "date=" in name]) == days * (1 + len(PARTIALS))
    for name, frame in alone.items():
        assert spread[name].equals(frame), name


def _parquet_files(root: Path) -> dict[str, pl.DataFrame]:
    """Every parquet file under `root` (day files, quarantine), by its path inside it."""
    return {str(p.relative_to(root)): pl.read_parquet(p) for p in sorted(root.rglob("*.parquet"))}


@pytest.mark.slow
def test_a_backfill_runs_step_by_step_on_two_celery_workers_and_equals_an_in_process_run(
    pg_database, redis_url, tiny_release, tmp_path, monkeypatch
):
    home, chunk_events, env = _celery_env(  # three chunks of two days in the events step
        pg_database, redis_url, tiny_release, tmp_path, monkeypatch, days=2
    )
    with celery_workers(WORKERS, env, tmp_path) as (logs, _):
        launched = subprocess.run(
            BACKFILL,
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    tails = "\n".join(p.read_text()[-2000:] for p in logs)
    assert launched.returncode == 0, (launched.stdout[-3000:], launched.stderr[-3000:], tails)

    with dg.DagsterInstance.from_config(str(home)) as instance:
        [record] = instance.get_run_records()
        assert record.dagster_run.status == dg.DagsterRunStatus.SUCCESS
        entries = instance.all_logs(record.dagster_run.run_id)
    ran_on = {
        e.step_key: e.dagster_event.engine_event_data.metadata["Celery worker"].value
        for e in entries
        if e.is_dagster_event
        and e.dagster_event.event_type == dg.DagsterEventType.ENGINE_EVENT
        and "Celery worker" in e.dagster_event.engine_event_data.metadata
    }
    steps = {node.name for node in load_stage_definitions().resolve_job_def("daily_job").nodes}
    assert set(ran_on) == steps == {"events", "daily_partials", "day_files_intact"}  # a task each
    # which idle worker takes a task is the broker's choice: three steps in a row may all land on
    # one, so the test asks only that each ran on one of the started workers
    assert {host.split("@")[0] for host in ran_on.values()} <= set(WORKERS), ran_on
    assert _materialized(entries) == EVERY_DAY_ONCE
    _assert_equal_to_an_in_process_run(tmp_path, tiny_release, chunk_events, len(DAYS))


def _children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (a celery worker's pool)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _kill_the_pool_after(instance, worker: subprocess.Popen, step: str, needle: str) -> str:
    """Wait for the one run to log `needle` from `step`, then SIGKILL the worker's pool process
    (the child of the `celery worker` that `dagster-celery worker start` runs), as the kernel's
    out-of-memory killer would. Returns the run's id."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        records = instance.get_run_records()
        if records:
            run_id = records[0].dagster_run.run_id
            logged = instance.all_logs(run_id)
            if any(e.step_key == step and needle in e.user_message for e in logged):
                pool = [pid for celery in _children(worker.pid) for pid in _children(celery)]
                assert pool, "the worker has no pool process"
                for pid in pool:
                    os.kill(pid, 9)
                return run_id
        time.sleep(0.02)
    raise AssertionError(f"no run logged {needle!r} from {step} in 300 s")


@pytest.mark.slow
def test_a_worker_killed_in_the_middle_of_a_step_fails_the_run_and_ubp_resume_completes_it(
    pg_database, redis_url, tiny_release, tmp_path, monkeypatch
):
    home, chunk_events, env = _celery_env(  # a chunk a day: killed after the first
        pg_database, redis_url, tiny_release, tmp_path, monkeypatch, days=1
    )
    days = len(DAYS)
    with celery_workers(("w1",), env, tmp_path) as (logs, [worker]):
        launched = subprocess.Popen(
            BACKFILL,
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        with dg.DagsterInstance.from_config(str(home)) as instance:
            run_id = _kill_the_pool_after(instance, worker, "events", f"[1/{days}] chunk")
        output, _ = launched.communicate(timeout=300)
        assert launched.returncode != 0, output[-3000:]
        written = len(list((tmp_path / "data").rglob("events/date=*/*.parquet")))
        with dg.DagsterInstance.from_config(str(home)) as instance:
            failed = instance.get_run_by_id(run_id)
            assert failed.status == dg.DagsterRunStatus.FAILURE
            [failure] = instance.all_logs(run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
        reason = str(failure.dagster_event.event_specific_data.error)
        assert "WorkerLostError" in reason and "[events]" in reason, reason
        assert written >= 1, "the pool was killed before the first day's file was written"

        resumed = subprocess.run(
            [BIN / "ubp", "resume", run_id],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    tails = "\n".join(p.read_text()[-2000:] for p in logs)
    assert resumed.returncode == 0, (resumed.stdout[-3000:], resumed.stderr[-3000:], tails)

    with dg.DagsterInstance.from_config(str(home)) as instance:
        [second] = [r for r in instance.get_runs() if r.run_id != run_id]
        assert second.parent_run_id == run_id and second.status == dg.DagsterRunStatus.SUCCESS
        entries = instance.all_logs(second.run_id)
    assert _materialized(entries) == EVERY_DAY_ONCE
    _assert_equal_to_an_in_process_run(tmp_path, tiny_release, chunk_events, days)
