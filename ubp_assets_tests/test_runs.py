"""The bookkeeping that keeps dead runs from wedging the instance: which runs are dead, their
slots, and the Optuna trials they left running."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid

import dagster as dg
import pytest

from ubp_assets.instance import write_instance_yaml
from ubp_assets.runs import (
    HOST_TAG,
    PID_TAG,
    PROCESS_START_TAG,
    _process_start,
    end_dead_runs,
    process_tags,
    resume_failed_run,
    resumed_tags,
    slot_holders,
)

POOL = "heavy_steps"


@pytest.fixture
def instance(tmp_path):
    home = write_instance_yaml(tmp_path / "home").parent
    with dg.DagsterInstance.from_config(str(home)) as instance:
        yield instance


def _started_run(
    instance,
    pid: int,
    *,
    host: str | None = None,
    process_start: str | None = None,
    holds: str | None = None,
):
    """A run in STARTED state tagged as `ubp run` tags its runs, optionally holding a slot."""
    run = instance.add_run(
        dg.DagsterRun(
            job_name="embeddings_job",
            run_id=str(uuid.uuid4()),
            status=dg.DagsterRunStatus.STARTED,
            tags={
                HOST_TAG: host or socket.gethostname(),
                PID_TAG: str(pid),
                PROCESS_START_TAG: _process_start(pid) if process_start is None else process_start,
            },
        )
    )
    if holds:
        claim = instance.event_log_storage.claim_concurrency_slot(POOL, run.run_id, holds)
        assert claim.is_claimed
    return run


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_dead_processs_run_is_failed_with_a_reason_and_its_slot_freed(instance):
    instance.event_log_storage.set_concurrency_slots(POOL, 1)
    dead = _started_run(instance, _dead_pid(), holds="hparam_study")
    assert [h.run_id for h in slot_holders(instance)] == [dead.run_id]

    ended = end_dead_runs(instance)

    assert [(e.run_id, e.step_keys) for e in ended] == [(dead.run_id, ("hparam_study",))]
    assert "process gone" in ended[0].describe() and "hparam_study" in ended[0].describe()
    run = instance.get_run_by_id(dead.run_id)
    assert run.status == dg.DagsterRunStatus.FAILURE
    assert slot_holders(instance) == []
    failure = instance.all_logs(dead.run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
    assert "gone" in failure[-1].dagster_event.message
    assert end_dead_runs(instance) == []  # nothing left to end


def test_live_runs_and_other_hosts_runs_are_left_alone(instance):
    instance.event_log_storage.set_concurrency_slots(POOL, 1)
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) as live:
        try:
            running = _started_run(instance, live.pid, holds="events")
            elsewhere = _started_run(instance, _dead_pid(), host="another-machine")
            assert end_dead_runs(instance) == []
            for run in (running, elsewhere):
                assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.STARTED
            assert [h.run_id for h in slot_holders(instance)] == [running.run_id]
        finally:
            live.kill()


def test_a_reused_pid_does_not_keep_a_dead_run_alive(instance):
    # pid 1 is alive, but started at another time than the run's tag says
    run = _started_run(instance, 1, process_start="-1")
    assert [e.run_id for e in end_dead_runs(instance)] == [run.run_id]


def test_a_finished_run_still_holding_a_slot_has_it_freed(instance):
    instance.event_log_storage.set_concurrency_slots(POOL, 1)
    run = _started_run(instance, _dead_pid(), holds="feature_matrix")
    instance.report_run_canceled(instance.get_run_by_id(run.run_id))
    ended = end_dead_runs(instance)
    assert [(e.run_id, e.status) for e in ended] == [(run.run_id, "canceled")]
    assert slot_holders(instance) == []


def test_a_trial_its_dead_run_left_running_is_failed_and_not_counted(tmp_path):
    from ubp_assets.model.tuning import (
        MARK_ATTR,
        OWNER_ATTR,
        fail_orphaned_trials,
        open_study,
        trials_owed,
    )

    url = f"sqlite:///{tmp_path / 'study.db'}"
    study = open_study(url, seed=1)

    def objective(trial):
        trial.set_user_attr(OWNER_ATTR, "dead-run")
        return trial.suggest_float("x", 0, 1)

    study.optimize(objective, n_trials=2)
    assert trials_owed(study, wanted=3) == 1  # two finished since the mark: one owed
    orphan = study.ask()
    orphan.set_user_attr(OWNER_ATTR, "dead-run")
    kept = study.ask()
    kept.set_user_attr(OWNER_ATTR, "live-run")

    resumed = open_study(url, seed=1)
    assert fail_orphaned_trials(resumed, lambda run: run == "live-run") == [orphan.number]
    states = {t.number: t.state.name for t in open_study(url, seed=1).trials}
    assert states == {0: "COMPLETE", 1: "COMPLETE", 2: "FAIL", 3: "RUNNING"}
    assert trials_owed(resumed, wanted=3) == 1  # a failed trial is not a finished one
    resumed.set_user_attr(MARK_ATTR, len(resumed.trials))
    assert trials_owed(open_study(url, seed=1), wanted=3) == 3


def test_only_a_failed_run_resumes_and_an_unknown_one_is_named(instance):
    with pytest.raises(ValueError, match="no run nope in this instance"):
        resume_failed_run(instance, "nope")
    live = _started_run(instance, os.getpid())
    with pytest.raises(ValueError, match=f"run {live.run_id} is started: only a failed run"):
        resume_failed_run(instance, live.run_id)
    assert len(instance.get_runs()) == 1  # nothing was launched


def test_a_resumed_run_keeps_its_days_and_the_users_tags_and_is_tagged_with_this_process():
    parent = {
        "dagster/asset_partition_range_start": "2022-04-14",
        "dagster/asset_partition_range_end": "2022-04-19",
        "dagster/parent_run_id": "older",
        "dagster/root_run_id": "oldest",
        "team": "growth",
        HOST_TAG: "gone-host",
        PID_TAG: "1",
        PROCESS_START_TAG: "0",
    }
    assert resumed_tags(parent) == {
        "dagster/asset_partition_range_start": "2022-04-14",
        "dagster/asset_partition_range_end": "2022-04-19",
        "team": "growth",
        **process_tags(),
    }


def test_ubp_slots_lists_holders_and_frees_a_runs_slots(tmp_path):
    from pathlib import Path

    data = tmp_path / "data"
    home = write_instance_yaml(data / "dagster_home").parent
    with dg.DagsterInstance.from_config(str(home)) as instance:
        instance.event_log_storage.set_concurrency_slots(POOL, 1)
        with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) as live:
            try:
                held = _started_run(instance, live.pid, holds="events")
                ubp = [Path(sys.executable).parent / "ubp", "slots", "--data-dir", str(data)]
                env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
                listed = subprocess.run(ubp, capture_output=True, text=True, env=env, check=True)
                assert f"{POOL}: run {held.run_id} (embeddings_job, started), step events" in (
                    listed.stdout
                )
                freed = subprocess.run(
                    [*ubp, "--free", held.run_id],
                    capture_output=True,
                    text=True,
                    env=env,
                    check=True,
                )
                assert "no pool slot is held" in freed.stdout
            finally:
                live.kill()
        assert slot_holders(instance) == []
        assert instance.get_run_by_id(held.run_id).status == dg.DagsterRunStatus.FAILURE


def test_a_step_waiting_on_a_held_slot_gets_the_holder_named(instance, monkeypatch):
    from ubp_assets import runs

    monkeypatch.setattr(runs, "WAIT_REPORT_S", 0.5)
    instance.event_log_storage.set_concurrency_slots(POOL, 1)
    holder = _started_run(instance, os.getpid(), holds="feature_matrix")

    @dg.op(pool=POOL)
    def write_warehouse() -> int:
        return 1

    @dg.job
    def pooled():
        write_warehouse()

    said: list[str] = []

    def say(message: str) -> None:
        said.append(message)
        # the user reads the message and frees the slot of the run it names
        instance.event_log_storage.free_concurrency_slots_for_run(holder.run_id)

    assert runs.execute_job(instance, pooled, say)
    assert len(said) == 1, said
    assert f"held by run {holder.run_id} (embeddings_job, started, step feature_matrix)" in said[0]
    assert "ubp slots --free" in said[0]
