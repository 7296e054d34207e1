"""`ubp run`'s own runs, kept from wedging the instance: each is tagged with the process that runs
it, so a later `ubp run` can tell a run whose process died (an out-of-memory kill, a closed laptop)
from a live one; dead runs are marked failed and the pool slots they hold are freed. Ctrl-C (or
SIGTERM) cancels the run through Dagster's own interruption, which frees its slots too.

Runs the daemon launches are watched by Dagster's run monitoring instead (see `instance.py`).
"""

from __future__ import annotations

import ctypes
import datetime as dt
import os
import signal
import socket
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from ubp_assets.run_log import QUIET_CONSOLE, RunLog

HOST_TAG = "ubp/host"
PID_TAG = "ubp/pid"
PROCESS_START_TAG = "ubp/process_start"  # tells a reused pid from the process that ran the run
UNFINISHED = [
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]
WAIT_REPORT_S = 60.0  # a step waiting on a pool this long gets the slot's holder named


def _process_start(pid: int) -> str:
    """The process's start time in clock ticks since boot (Linux), or "" where /proc is absent."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[19]


def process_tags() -> dict[str, str]:
    """Tags naming this process, for every run it executes."""
    pid = os.getpid()
    return {
        HOST_TAG: socket.gethostname(),
        PID_TAG: str(pid),
        PROCESS_START_TAG: _process_start(pid),
    }


def _process_alive(pid: int, started: str) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process holds the pid now
        return False
    return not started or _process_start(pid) in ("", started)


@dataclass(frozen=True)
class EndedRun:
    run_id: str
    job_name: str
    status: str
    step_keys: tuple[str, ...]  # the steps whose pool slots were freed

    def describe(self) -> str:
        steps = ", ".join(self.step_keys) or "none"
        return f"{self.run_id[:8]} ({self.job_name}, {self.status}; slots held by: {steps})"


def _claimed_slots(instance: dg.DagsterInstance, pool: str | None = None):
    """(pool, slot) of every claimed slot of every pool, or of one."""
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return
    for key in sorted(storage.get_concurrency_keys()):
        if pool is None or key == pool:
            for slot in storage.get_concurrency_info(key).claimed_slots:
                yield key, slot


def _claimed_steps(instance: dg.DagsterInstance) -> dict[str, list[str]]:
    """run id -> the steps holding a pool slot."""
    held: dict[str, list[str]] = {}
    for _, slot in _claimed_slots(instance):
        held.setdefault(slot.run_id, []).append(slot.step_key)
    return held


def end_dead_runs(instance: dg.DagsterInstance) -> list[EndedRun]:
    """Mark failed the unfinished runs of `ubp run` on this host whose process is gone, then free
    the pool slots of every finished run that still holds or waits for one. Runs of other hosts
    and live processes are left alone."""
    held = _claimed_steps(instance)
    host = socket.gethostname()
    ended = []
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=UNFINISHED, tags={HOST_TAG: host})):
        pid = int(run.tags.get(PID_TAG, "0"))
        if pid == os.getpid() or _process_alive(pid, run.tags.get(PROCESS_START_TAG, "")):
            continue
        instance.report_run_failed(
            run,
            message=f"ubp run found this run's process (pid {pid} on {host}) gone: it was "
            "killed or its machine stopped; marked failed and its pool slots freed",
        )
        ended.append(
            EndedRun(run.run_id, run.job_name, "process gone", tuple(held.get(run.run_id, ())))
        )
    storage = instance.event_log_storage
    if storage.supports_global_concurrency_limits:
        already = {e.run_id for e in ended}
        for run_id in storage.get_concurrency_run_ids():
            run = instance.get_run_by_id(run_id)
            if run is not None and not run.is_finished:
                continue
            storage.free_concurrency_slots_for_run(run_id)
            if run_id not in already:
                status = run.status.value.lower() if run else "deleted"
                job = run.job_name if run else "?"
                ended.append(EndedRun(run_id, job, status, tuple(held.get(run_id, ()))))
    return ended


@dataclass(frozen=True)
class SlotHolder:
    pool: str
    run_id: str
    step_key: str
    job_name: str
    status: str


def slot_holders(instance: dg.DagsterInstance, pool: str | None = None) -> list[SlotHolder]:
    """Who holds each pool's slots (every pool, or one)."""
    holders = []
    for key, slot in _claimed_slots(instance, pool):
        run = instance.get_run_by_id(slot.run_id)
        holders.append(
            SlotHolder(
                key,
                slot.run_id,
                slot.step_key,
                run.job_name if run else "?",
                run.status.value.lower() if run else "deleted",
            )
        )
    return holders


def waiting_steps(instance: dg.DagsterInstance, run_id: str, longer_than_s: float):
    """(pool, step key, seconds waited) of the run's steps still waiting for a pool slot."""
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return []
    now = dt.datetime.now(dt.UTC)
    waiting = []
    for pool in storage.get_concurrency_keys():
        for step in storage.get_concurrency_info(pool).pending_steps:
            if step.run_id != run_id or step.assigned_timestamp is not None:
                continue
            waited = (now - step.enqueued_timestamp).total_seconds()
            if waited > longer_than_s:
                waiting.append((pool, step.step_key, waited))
    return waiting


class RunInterrupted(Exception):
    """Ctrl-C or SIGTERM ended `ubp run`; the run was canceled and its slots freed."""


def _raise_in(thread: threading.Thread, error: type[BaseException]) -> None:
    """Raise `error` in `thread` at its next Python instruction: what a signal does to the main
    thread, delivered to the thread that executes the run."""
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread.ident), ctypes.py_object(error)
    )


def execute_job(
    instance: dg.DagsterInstance,
    job: dg.JobDefinition,
    say: Callable[[str], None],
    *,
    run_config: dict | None = None,
    tags: dict[str, str] | None = None,
    log: RunLog | None = None,
    asset_selection: list[dg.AssetKey] | None = None,
) -> bool:
    """Execute `job` in process, tagged with this process, and report whether it succeeded.

    The run executes in a worker thread so that the main thread stays free for signals: Dagster
    defers an interrupt that arrives while a step waits for a pool slot, so a run blocked on a
    slot could not be stopped. Ctrl-C or SIGTERM marks the run canceling and interrupts it as
    Dagster's own signal handling does: the run ends canceled and its slots are freed. A second
    Ctrl-C stops at once. A step that waits on a pool for over a minute gets the holder named.
    With a `log`, Dagster's console shows only warnings and errors; the log has the rest.
    `asset_selection` runs those of the job's assets only.
    """
    run_id = str(uuid.uuid4())  # the form of Dagster's own run ids
    outcome: dict[str, object] = {}

    def target() -> None:
        try:
            outcome["result"] = job.execute_in_process(
                instance=instance,
                run_config={**(run_config or {}), **(QUIET_CONSOLE if log else {})},
                tags={**(tags or {}), **process_tags()},
                run_id=run_id,
                raise_on_error=False,
                asset_selection=asset_selection,
            )
        except BaseException as exc:  # an interrupt outside a step: the run still ends below
            outcome["error"] = exc

    worker = threading.Thread(target=target, name=f"ubp-{job.name}", daemon=True)
    # SIGTERM (and SIGINT, even where a shell started this process ignoring it) interrupts
    previous = {
        sig: signal.signal(sig, signal.default_int_handler)
        for sig in (signal.SIGINT, signal.SIGTERM)
    }
    reported: set[str] = set()
    try:
        worker.start()
        try:
            while worker.is_alive():
                worker.join(timeout=1.0)
                if log:
                    log.follow(instance, run_id)
                for pool, step, waited in waiting_steps(instance, run_id, WAIT_REPORT_S):
                    if step not in reported:
                        reported.add(step)
                        say(_waiting_message(instance, pool, step, waited))
        except KeyboardInterrupt:
            _cancel(instance, worker, run_id, say)
            raise RunInterrupted(run_id) from None
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if log:
            log.follow(instance, run_id)
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["result"].success  # type: ignore[union-attr]


def _waiting_message(instance: dg.DagsterInstance, pool: str, step: str, waited: float) -> str:
    holders = slot_holders(instance, pool)
    named = "; ".join(
        f"run {h.run_id} ({h.job_name}, {h.status}, step {h.step_key})" for h in holders
    )
    return (
        f"step {step} has waited {waited:.0f}s for pool {pool}, held by {named or 'no run'}. "
        f"If that run is dead: `ubp slots --free RUN_ID` (or the UI's Deployment > Concurrency)"
    )


def _cancel(
    instance: dg.DagsterInstance, worker: threading.Thread, run_id: str, say: Callable[[str], None]
) -> None:
    say("interrupted: canceling the run when its current operation returns (Ctrl-C again: at once)")
    run = instance.get_run_by_id(run_id)
    if run is not None and not run.is_finished:
        instance.report_run_canceling(run, message="ubp run was interrupted (Ctrl-C or SIGTERM)")
    _raise_in(worker, dg.DagsterExecutionInterruptedError)
    hard = False
    while worker.is_alive():
        try:
            worker.join(timeout=0.5)
        except KeyboardInterrupt:
            hard = True
            break
    run = instance.get_run_by_id(run_id)
    if run is not None and not run.is_finished:
        instance.report_run_canceled(run, message="ubp run was interrupted before the run ended")
    instance.event_log_storage.free_concurrency_slots_for_run(run_id)
    say(
        f"run {run_id} canceled, its pool slots freed; stored days and tables are whole, and the "
        "next `ubp run` continues from them"
    )
    if hard:
        os._exit(130)


def resumed_tags(parent: dict[str, str]) -> dict[str, str]:
    """The tags a resumed run carries: the parent's partition range and the user's own. Dagster's
    lineage tags (parent, root, retry) are set by the re-execution, and the process tags are this
    process's, which executes the new run (the parent's would name a process that is gone)."""
    ours = (HOST_TAG, PID_TAG, PROCESS_START_TAG)
    carried = {
        k: v
        for k, v in parent.items()
        if k not in ours and ("partition" in k or not k.startswith("dagster/"))
    }
    return {**carried, **process_tags()}


def resume_failed_run(instance: dg.DagsterInstance, run_id: str) -> dg.DagsterRun:
    """Re-execute a failed run from its failure: the steps that failed or never ran, with the
    parent's tags (its partition range) and the code location's definitions, so the executor is
    the configured one (celery workers, say), as when the run was launched. The steps that
    succeeded are not run again; a failed step starts over, and since every file and table is
    replaced whole, what it wrote before it died is replaced, not added to. Returns the new run."""
    from dagster._core.definitions.reconstruct import ReconstructableRepository

    parent = instance.get_run_by_id(run_id)
    if parent is None:
        raise ValueError(f"no run {run_id} in this instance")
    if parent.status != dg.DagsterRunStatus.FAILURE:
        raise ValueError(
            f"run {run_id} is {parent.status.value.lower()}: only a failed run resumes"
        )
    instance.event_log_storage.free_concurrency_slots_for_run(run_id)  # a dead worker's step
    job = ReconstructableRepository.for_module(
        "ubp_assets.definitions", "defs", working_directory=os.getcwd()
    ).get_reconstructable_job(parent.job_name)
    with dg.execute_job(
        job,
        instance,
        tags=resumed_tags(parent.tags),
        reexecution_options=dg.ReexecutionOptions.from_failure(run_id, instance),
        raise_on_error=False,
    ) as result:
        return result.dagster_run
