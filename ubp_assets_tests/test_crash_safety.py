"""Faults a user can cause: a killed or interrupted `ubp run`, a raw file replaced while a run reads
it, a truncated day file. None may wedge the instance or leave a table that differs from an
uninterrupted run's."""

from __future__ import annotations

import datetime as dt
import os
import re
import shlex
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from ubp_assets.defs.features.day_files_intact import DAY_FILE_ASSETS, day_files_intact
from ubp_assets.events.raw_reader import RawDataError, one_version
from ubp_assets.events.schema import RAW_FILES
from ubp_assets.events.table import build_events
from ubp_assets.partitions import FIRST_DAY
from ubp_assets.resources import UbpStorage, build_resources
from ubp_assets.runs import slot_holders
from ubp_assets.storage import (
    DATA_FILE,
    DamagedDayError,
    damage,
    damaged_days,
    partition_dir,
    scan_days,
)
from ubp_assets.warehouse import WarehouseDir

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
# A study of three short trials and a short final training: the faults, not the model, are tested
RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"
QUICK_MODEL = {"UBP_TRIALS": "3", "UBP_TRIAL_EPOCHS": "10", "UBP_EPOCHS": "3"}


def test_the_instance_ubp_run_writes_monitors_runs_and_frees_slots_of_ended_ones(tmp_path):
    from ubp_assets.instance import write_instance_yaml

    home = write_instance_yaml(tmp_path / "home").parent
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert instance.run_monitoring_enabled
        assert instance.run_monitoring_start_timeout_seconds == 180
        assert instance.run_monitoring_settings["free_slots_after_run_end_seconds"] == 30


# ---- a day file truncated in the warehouse ---------------------------------------------------


def _day_file(root: Path, day) -> Path:
    return partition_dir(root, day) / DATA_FILE


def test_damage_tells_a_whole_parquet_file_from_a_cut_one(tmp_path):
    path = tmp_path / "day.parquet"
    pl.DataFrame({"x": range(1000)}).write_parquet(path)
    assert damage(path) is None
    whole = path.read_bytes()
    for keep in (len(whole) - 1, len(whole) // 2, 20, 3, 0):
        path.write_bytes(whole[:keep])
        assert damage(path), f"a file cut to {keep} of {len(whole)} bytes passed as whole"
    path.write_bytes(whole[:-8] + b"\xff\xff\xff\x7fPAR1")  # a footer longer than the file
    assert "footer" in damage(path)


def test_scanning_a_damaged_day_names_its_file_and_day(tmp_path):
    day = FIRST_DAY
    path = _day_file(tmp_path, day)
    path.parent.mkdir(parents=True)
    pl.DataFrame({"x": [1, 2]}).write_parquet(path)
    assert scan_days(tmp_path).collect().height == 2
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(DamagedDayError, match=rf"{day}.*damaged") as raised:
        scan_days(tmp_path)
    assert str(path) in str(raised.value)


@pytest.mark.slow
def test_a_truncated_day_file_is_named_by_its_check_and_a_rerun_of_its_day_repairs_it(
    tiny_release, tmp_path
):
    from ubp_assets.definitions import make_definitions

    home, data = tmp_path / "home", tmp_path / "data"
    home.mkdir()
    storage = UbpStorage(data_dir=str(data), raw_dir=str(tiny_release))
    defs = make_definitions(build_resources(storage))
    days = ["2022-04-14", "2022-04-15"]
    with dg.DagsterInstance.from_config(str(home)) as instance:
        job = defs.resolve_job_def("daily_job")
        result = job.execute_in_process(
            instance=instance,
            tags={RANGE_START: days[0], RANGE_END: days[1]},
        )
        assert result.success
        passed = {e.asset_key.to_user_string(): e.passed for e in _intact(result)}
        assert passed == dict.fromkeys(DAY_FILE_ASSETS, True)

        damaged = _day_file(storage.events_dir, dt.date.fromisoformat(days[1]))
        partial = _day_file(storage.partials_dir / "session_daily", dt.date.fromisoformat(days[1]))
        good = {damaged: damaged.read_bytes(), partial: partial.read_bytes()}
        damaged.write_bytes(good[damaged][: len(good[damaged]) // 2])  # a copy cut short
        partial.write_bytes(b"")

        checked = dg.materialize(
            [day_files_intact],
            resources=build_resources(storage),
            instance=instance,
            selection=dg.AssetSelection.all_asset_checks(),
        )
        by_asset = {e.asset_key.to_user_string(): e for e in _intact(checked)}
        failed = {name for name, e in by_asset.items() if not e.passed}
        assert failed == {"events", "session_daily"}
        events_check = by_asset["events"].metadata
        assert str(damaged) in events_check["damaged_files"].value
        assert events_check["damaged_days"].value == 1
        repair = events_check["repair"].value

    # the named command, as a user would paste it, rewrites the day
    words = shlex.split(repair)
    start = words.index("dg")
    env = {**os.environ, **dict(w.split("=", 1) for w in words[:start])}
    done = subprocess.run(
        [BIN / "dg", *words[start + 1 :]],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert damaged.read_bytes() == good[damaged]
    assert partial.read_bytes() == good[partial]
    with dg.DagsterInstance.from_config(str(home)) as instance:
        checked = dg.materialize(
            [day_files_intact],
            resources=build_resources(storage),
            instance=instance,
            selection=dg.AssetSelection.all_asset_checks(),
        )
        assert all(e.passed for e in _intact(checked))


def _intact(result: dg.ExecuteInProcessResult) -> list[dg.AssetCheckEvaluation]:
    return [e for e in result.get_asset_check_evaluations() if e.check_name == "day_files_intact"]


# ---- a raw file replaced while a run reads it ------------------------------------------------


def _other_version(raw: Path, name: str, into: Path) -> None:
    """A second, different version of one raw file: every other row of it."""
    pl.read_parquet(raw / name).gather_every(2).write_parquet(into)


def test_a_raw_file_replaced_between_two_reads_fails_the_reading_with_its_name(
    raw_copy, tmp_path, monkeypatch
):
    from ubp_assets.events import table

    name = RAW_FILES["product_properties"].filename
    _other_version(raw_copy, name, tmp_path / "new.parquet")
    reads = []
    original = table.read_event_file

    def read_then_replace(*args, **kwargs):
        # the release's products are read first; a copy lands while the events are read
        if not reads:
            os.replace(tmp_path / "new.parquet", raw_copy / name)
        reads.append(args[1].name)
        return original(*args, **kwargs)

    monkeypatch.setattr(table, "read_event_file", read_then_replace)
    with pytest.raises(RawDataError, match=rf"{name}: changed while this run read it"):
        build_events(raw_copy, FIRST_DAY, FIRST_DAY)
    assert reads, "the replacement was never made"
    monkeypatch.undo()
    whole = build_events(raw_copy, FIRST_DAY, FIRST_DAY)  # the new version alone reads fine
    assert whole.events.height > 0


def test_a_raw_file_rewritten_in_place_is_named_even_when_its_reading_fails(raw_copy):
    name = RAW_FILES["page_visit"].filename
    path = raw_copy / name
    with (
        pytest.raises(RawDataError, match=rf"{name}: changed while"),
        one_version(raw_copy, RAW_FILES.values()),
    ):
        path.write_bytes(path.read_bytes()[:100])  # a copy in progress, in place
        pl.read_parquet(path)


def test_a_run_racing_a_raw_file_replacement_fails_naming_it_or_reads_one_version(
    raw_copy, tmp_path
):
    """A writer replaces page_visit.parquet over and over, alternating two versions, while the
    events are built again and again: each build either fails with the file's name or equals the
    build of one version alone; never a mix."""
    name = RAW_FILES["page_visit"].filename
    versions = {"a": tmp_path / "a.parquet", "b": tmp_path / "b.parquet"}
    (raw_copy / name).rename(versions["a"])
    _other_version(tmp_path, "a.parquet", versions["b"])
    expected = {}
    for label, path in versions.items():
        (raw_copy / name).write_bytes(path.read_bytes())
        expected[label] = build_events(raw_copy, FIRST_DAY, FIRST_DAY).events
    assert not expected["a"].equals(expected["b"])
    writer = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import os, shutil, sys, time\n"
            "a, b, dest = sys.argv[1:]\n"
            "while True:\n"
            "    for src in (a, b):\n"
            "        shutil.copyfile(src, dest + '.part'); os.replace(dest + '.part', dest)\n"
            "        time.sleep(0.1)\n",
            str(versions["a"]),
            str(versions["b"]),
            str(raw_copy / name),
        ]
    )
    outcomes = {"failed naming it": 0, "a": 0, "b": 0}
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and sum(outcomes.values()) < 40:
            try:
                built = build_events(raw_copy, FIRST_DAY, FIRST_DAY).events
            except RawDataError as exc:
                assert name in str(exc)
                outcomes["failed naming it"] += 1
                continue
            matches = [label for label, frame in expected.items() if built.equals(frame)]
            assert matches, "a build read a mix of the file's two versions"
            outcomes[matches[0]] += 1
    finally:
        writer.kill()
        writer.wait()
    assert outcomes["failed naming it"] > 0, outcomes  # the race did happen


# ---- a killed or interrupted `ubp run`, then a rerun -------------------------------------------


class UbpRun:
    """`ubp run --scale tiny` in a subprocess, its output collected line by line."""

    def __init__(self, data: Path):
        self.data = data
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            [BIN / "ubp", "run", "--scale", "tiny", "--data-dir", data],
            cwd=ROOT,
            env={**os.environ, **QUICK_MODEL},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    @property
    def log(self) -> str:
        """The run's full log (Dagster's DEBUG events), whose path `ubp run` prints first."""
        found = re.search(r"DEBUG included, goes to (\S+\.log)", self.output)
        return Path(found.group(1)).read_text() if found else ""

    def signal_when(self, ready: Callable[[], bool], sig: int, timeout: float = 400) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            assert self.process.poll() is None, f"ended before the fault:\n{self.output[-3000:]}"
            assert time.monotonic() < deadline, f"no moment for the fault:\n{self.output[-3000:]}"
            time.sleep(0.02)
        self.process.send_signal(sig)

    def wait(self, timeout: float = 900) -> int:
        code = self.process.wait(timeout=timeout)
        self.reader.join(timeout=10)
        return code


def _writing_day_files(data: Path) -> Callable[[], bool]:
    """True while the events' day files are being written: some written, not all."""
    events = data / "warehouse" / "events"

    def ready() -> bool:
        return 0 < len(list(events.glob(f"date=*/{DATA_FILE}"))) < 200

    return ready


def _step_started(run: UbpRun, step: str, after_s: float) -> Callable[[], bool]:
    marker = f'Started execution of step "{step}"'
    seen: list[float] = []

    def ready() -> bool:
        if not seen and marker in run.log:
            seen.append(time.monotonic())
        return bool(seen) and time.monotonic() - seen[0] >= after_s

    return ready


def _trial_running_after_one_finished(data: Path) -> Callable[[], bool]:
    database = data / "models" / "hparam_study.db"

    def ready() -> bool:
        if not database.exists():
            return False
        try:
            with sqlite3.connect(database, timeout=0.1) as conn:
                states = [s for (s,) in conn.execute("SELECT state FROM trials")]
        except sqlite3.Error:
            return False
        return "RUNNING" in states and "COMPLETE" in states

    return ready


def _trial_states(data: Path) -> list[str]:
    with sqlite3.connect(data / "models" / "hparam_study.db") as conn:
        return [s for (s,) in conn.execute("SELECT state FROM trials ORDER BY number")]


def _held_slots(data: Path) -> list[tuple[str, str]]:
    with dg.DagsterInstance.from_config(str(data / "dagster_home")) as instance:
        return [(h.run_id, h.step_key) for h in slot_holders(instance)]


def _run_statuses(data: Path) -> dict[str, list[str]]:
    with dg.DagsterInstance.from_config(str(data / "dagster_home")) as instance:
        statuses: dict[str, list[str]] = {}
        for run in instance.get_runs():
            statuses.setdefault(run.job_name, []).append(run.status.value)
        return statuses


def _stored_files(data: Path) -> dict[str, bytes]:
    """Every day file and the feature matrix, by path under the data directory."""
    warehouse = data / "warehouse"
    paths = [*warehouse.glob("events/date=*/*.parquet"), *warehouse.glob("partials/*/*/*.parquet")]
    return {str(p.relative_to(data)): p.read_bytes() for p in sorted(paths)}


def _feature_matrix(data: Path) -> pl.DataFrame:

    with WarehouseDir(data / "warehouse").get_connection() as conn:
        return conn.execute("SELECT * FROM feature_matrix ORDER BY client_id").pl()


@pytest.mark.slow
def test_killed_and_interrupted_runs_leave_nothing_a_rerun_waits_on(tmp_path):
    reference = tmp_path / "reference"
    assert UbpRun(reference).wait() == 0
    faulty = tmp_path / "faulty"

    # SIGKILL while the events' day files are written (an out-of-memory kill)
    run = UbpRun(faulty)
    run.signal_when(_writing_day_files(faulty), signal.SIGKILL)
    assert run.wait() == -signal.SIGKILL
    # a day is written under a temporary name and renamed: no stored day is half written
    assert _stored_files(faulty) and not damaged_days(faulty / "warehouse" / "events")

    # Ctrl-C in a step that holds the warehouse pool's slot: canceled, its slot freed, exit 130
    run = UbpRun(faulty)
    run.signal_when(_step_started(run, "family_features", after_s=0.5), signal.SIGINT)
    assert run.wait() == 130, run.output[-3000:]
    assert "ended 1 run(s)" in run.output  # the killed one, found before this run started
    assert "canceled, its pool slots freed" in run.output
    assert _held_slots(faulty) == []
    assert "CANCELED" in _run_statuses(faulty)["update_job"]

    # SIGKILL in the middle of an Optuna trial, after one trial finished
    run = UbpRun(faulty)
    run.signal_when(_trial_running_after_one_finished(faulty), signal.SIGKILL)
    assert run.wait() == -signal.SIGKILL
    assert _held_slots(faulty), "the killed run held no slot: the test wedges nothing"

    # the rerun ends the dead run, frees its slot, completes without waiting on it
    run = UbpRun(faulty)
    assert run.wait() == 0, run.output[-3000:]
    assert "ended 1 run(s)" in run.output and "process gone" in run.output
    assert "blocked by limit" not in run.log and "Started execution" in run.log
    assert _held_slots(faulty) == []
    unfinished = {"STARTED", "STARTING", "CANCELING", "NOT_STARTED", "QUEUED"}
    assert not unfinished & {s for v in _run_statuses(faulty).values() for s in v}

    assert _stored_files(faulty) == _stored_files(reference)
    assert _feature_matrix(faulty).equals(_feature_matrix(reference))
    # the study ran as many trials to their end (complete or pruned), plus the interrupted one
    reference_trials, trials = _trial_states(reference), _trial_states(faulty)
    finished = [s for s in trials if s in ("COMPLETE", "PRUNED")]
    assert len(finished) == len([s for s in reference_trials if s != "FAIL"]) == 3
    assert trials.count("FAIL") == 1 and len(trials) == 4, trials
