"""Dagster's celery executor for real: Redis as the broker (`.ci/start-redis`), two workers
started with `dagster-celery worker start` as processes of their own, the instance on Postgres
(`.ci/start-postgres`), the data on an S3-compatible server (`.ci/start-s3`). A backfill of days
of `daily_job` and then `features_job`, launched with `dagster job execute` as a user would, are
executed step by step by the workers; their day files and tables equal an in-process run's.
Without a server the tests skip, unless UBP_REQUIRE_POSTGRES=1, UBP_REQUIRE_REDIS=1 and
UBP_REQUIRE_S3=1 (CI), where they fail.
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
from ubp_assets.location import AnyPath, data_location
from ubp_assets.resources import FeatureSettings, ScaleSettings, UbpStorage, build_resources
from ubp_assets.storage import day_range
from ubp_assets.warehouse import WarehouseDir, existing_tables, read_table
from ubp_assets_tests.helpers import RANGE_END, RANGE_START, chunk_events_for

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
FIRST, LAST = "2022-04-14", "2022-04-19"
WORKERS = ("w1", "w2")


DAYS = [d.isoformat() for d in day_range(dt.date.fromisoformat(FIRST), dt.date.fromisoformat(LAST))]
EXECUTE = (BIN / "dagster", "job", "execute", "-m", "ubp_assets.definitions", "-j")
# the backfill of FIRST..LAST, launched as a user launches it
BACKFILL = (*EXECUTE, "daily_job", "--tags", json.dumps({RANGE_START: FIRST, RANGE_END: LAST}))
# enough days for a challenge split and the folds, which see the days before the cutoff
FEATURE_LAST, CUTOFF = "2022-05-03", "2022-05-01"
FEATURE_DAYS = day_range(dt.date.fromisoformat(FIRST), dt.date.fromisoformat(FEATURE_LAST))
FEATURE_BACKFILL = (
    *(*EXECUTE, "daily_job", "--tags"),
    json.dumps({RANGE_START: FIRST, RANGE_END: FEATURE_LAST}),
)


def _celery_env(
    pg_database: dict[str, str],
    redis_url: str,
    raw: Path,
    tmp_path: Path,
    monkeypatch,
    *,
    days: int,
    data_dir: str = "",
) -> tuple[Path, int, dict[str, str]]:
    """A Postgres instance's home, the UBP_CHUNK_EVENTS that builds `days` days a chunk, and the
    environment the workers and the launching command share: instance, data (`tmp_path/data`
    unless `data_dir`), broker. The DAGSTER_PG_* variables are set here too, for the instance
    the test reads."""
    for var, value in pg_database.items():
        monkeypatch.setenv(var, value)
    home = write_instance_yaml(tmp_path / "home", postgres=True).parent
    chunk_events = chunk_events_for(raw, days)
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "UBP_DATA_DIR": data_dir or str(tmp_path / "data"),
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


def _parquet_files(root: AnyPath) -> dict[str, pl.DataFrame]:
    """Every parquet file under `root` (day files, quarantine; not the tables, whose version
    folders are named by when they were written), by its path inside it."""
    return {
        str(p).removeprefix(f"{root}/"): pl.read_parquet(str(p))
        for p in sorted(root.rglob("*.parquet"), key=str)
        if "/tables/" not in str(p)
    }


def _execute(command, env) -> None:
    done = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-3000:])


def _steps_ran_on(entries) -> dict[str, str]:
    """step -> the celery worker that executed it, from the run's engine events."""
    return {
        e.step_key: e.dagster_event.engine_event_data.metadata["Celery worker"].value
        for e in entries
        if e.is_dagster_event
        and e.dagster_event.event_type == dg.DagsterEventType.ENGINE_EVENT
        and "Celery worker" in e.dagster_event.engine_event_data.metadata
    }


@pytest.mark.slow
def test_a_backfill_and_the_features_run_on_two_celery_workers_with_the_data_on_s3(  # noqa: PLR0917 (fixtures)
    pg_database, redis_url, s3_data, tiny_release, tmp_path, monkeypatch
):
    """Every day once, every step a task on one of the workers, no lock error, and the day
    files, the quarantine and every table (the folds over four client shards, the matrix) equal
    to an in-process run's on a local disk."""
    url, aws = s3_data
    home, chunk_events, env = _celery_env(  # chunks of six days in the events step
        pg_database, redis_url, tiny_release, tmp_path, monkeypatch, days=6, data_dir=url
    )
    env |= {**aws, "UBP_FEATURE_CUTOFF": CUTOFF, "UBP_CLIENTS_PER_SHARD": "300"}
    with celery_workers(WORKERS, env, tmp_path) as (logs, _):
        try:
            _execute(FEATURE_BACKFILL, env)
            _execute((*EXECUTE, "features_job"), env)
        except AssertionError as failed:
            raise AssertionError((failed, *(p.read_text()[-2000:] for p in logs))) from None
    tails = "".join(p.read_text() for p in logs).lower()
    assert "could not set lock" not in tails and "traceback" not in tails

    days = [d.isoformat() for d in FEATURE_DAYS]
    with dg.DagsterInstance.from_config(str(home)) as instance:
        backfill, features = sorted(instance.get_run_records(), key=lambda r: r.create_timestamp)
        assert {r.dagster_run.status for r in (backfill, features)} == {dg.DagsterRunStatus.SUCCESS}
        daily, folded = (instance.all_logs(r.dagster_run.run_id) for r in (backfill, features))
    assert _materialized(daily) == Counter((a, d) for a in ("events", *PARTIALS) for d in days)
    for entries, job in ((daily, "daily_job"), (folded, "features_job")):
        ran_on = _steps_ran_on(entries)
        steps = {node.name for node in load_stage_definitions().resolve_job_def(job).nodes}
        assert set(ran_on) == steps, job  # a task each
        # which idle worker takes a task is the broker's choice
        assert {host.split("@")[0] for host in ran_on.values()} <= set(WORKERS), ran_on
    assert {"temporal_features", "feature_matrix"} <= {
        e.dagster_event.asset_key.to_user_string()
        for e in folded
        if e.is_dagster_event and e.dagster_event.is_step_materialization
    }

    local = tmp_path / "local"
    storage = UbpStorage(data_dir=str(local), raw_dir=str(tiny_release))
    defs = make_definitions(
        build_resources(
            storage,
            FeatureSettings(cutoff=CUTOFF),
            scale=ScaleSettings(chunk_events=chunk_events, clients_per_shard=300),
        )
    )
    tags = {RANGE_START: FIRST, RANGE_END: FEATURE_LAST}
    assert defs.resolve_job_def("daily_job").execute_in_process(tags=tags).success
    assert defs.resolve_job_def("features_job").execute_in_process().success
    remote = data_location(url)
    spread, alone = _parquet_files(remote), _parquet_files(local)
    assert sorted(spread) == sorted(alone)
    assert len([n for n in alone if "date=" in n]) >= len(days) * (1 + len(PARTIALS))
    for name, frame in alone.items():
        assert spread[name].equals(frame), name
    here, there = WarehouseDir(local / "warehouse"), WarehouseDir(remote / "warehouse")
    names = sorted(p.parent.name for p in (local / "warehouse" / "tables").glob("*/_current"))
    assert existing_tables(there, names) == set(names) and "feature_matrix" in names
    for name in names:
        assert read_table(there, name).equals(read_table(here, name)), name


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
