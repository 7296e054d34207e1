"""Which executor runs the jobs' steps (UBP_EXECUTOR), read when the definitions load.

"multiprocess" (the default): Dagster's own, a process per step on this machine. "celery":
each step is a task on a Celery broker (UBP_CELERY_BROKER, Redis by default; results at
UBP_CELERY_BACKEND, the broker by default), executed by workers started with
`dagster-celery worker start` on any machine that reaches the broker, the instance's Postgres and
the data. The workers' file (`worker_yaml`) holds the executor's own config, so the two cannot
point at different brokers. A job that names its executor (`update_job`: in-process) keeps it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import yaml

EXECUTORS = ("multiprocess", "celery")
DEFAULT_BROKER = "redis://127.0.0.1:6379/0"


def celery_config(env: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The celery executor's config: broker and result backend."""
    broker = env.get("UBP_CELERY_BROKER") or DEFAULT_BROKER
    return {"broker": broker, "backend": env.get("UBP_CELERY_BACKEND") or broker}


def worker_yaml(env: Mapping[str, str] = os.environ) -> str:
    """What `dagster-celery worker start -y FILE` reads: the same config, under `execution`."""
    return yaml.safe_dump({"execution": {"config": celery_config(env)}}, sort_keys=False)


def executor_from_env(env: Mapping[str, str] = os.environ) -> dg.ExecutorDefinition | None:
    """The jobs' default executor; None leaves Dagster's (multiprocess)."""
    name = env.get("UBP_EXECUTOR") or "multiprocess"
    if name not in EXECUTORS:
        raise ValueError(f"UBP_EXECUTOR={name!r} is not one of {list(EXECUTORS)}")
    if name == "multiprocess":
        return None
    from dagster_celery import celery_executor  # celery is imported only where it is used

    return celery_executor.configured(celery_config(env), name="celery")


def _wait_for_workers(
    broker: str, names: tuple[str, ...], procs: list[subprocess.Popen], logs: list[Path]
) -> None:
    from celery import Celery

    app = Celery(broker=broker, backend=broker)
    deadline = time.monotonic() + 120
    answered: set[str] = set()
    while time.monotonic() < deadline:
        answered = {name.split("@")[0] for reply in app.control.ping(timeout=1) for name in reply}
        if answered >= set(names):
            return
        if any(p.poll() is not None for p in procs):
            break
        time.sleep(1)
    tails = "\n".join(p.read_text()[-1500:] for p in logs)
    raise RuntimeError(
        f"celery workers {sorted(set(names) - answered)} never answered (or exited):\n{tails}"
    )


@contextmanager
def celery_workers(
    names: tuple[str, ...], env: Mapping[str, str], folder: Path
) -> Iterator[tuple[list[Path], list[subprocess.Popen]]]:
    """`dagster-celery worker start` once per name, one pool process each, as a user starts them
    (the broker and the code location from `env`; their config file and logs in `folder`).
    Yields their log files and processes once every one answers a ping; stops them (and their
    pools) afterwards. For the tests and the benchmark: the README shows the commands."""
    bin_dir = Path(sys.executable).parent
    env = {**env, "PATH": f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"}  # it starts `celery`
    config = folder / "celery.yaml"
    config.write_text(worker_yaml(env))
    logs = [folder / f"{name}.log" for name in names]
    workers = [
        subprocess.Popen(
            [
                *(bin_dir / "dagster-celery", "worker", "start", "-A", "dagster_celery.app"),
                *("-y", config, "-n", name, "--", "--concurrency=1"),
            ],
            cwd=folder,
            env=env,
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        for name, log in zip(names, logs, strict=True)
    ]
    try:
        _wait_for_workers(celery_config(env)["broker"], names, workers, logs)
        yield logs, workers
    finally:
        for worker in workers:
            os.killpg(worker.pid, 15)  # the worker and its pool's process
        for worker in workers:
            worker.wait(timeout=60)


if __name__ == "__main__":  # python -m ubp_assets.executors > celery.yaml
    print(worker_yaml(), end="")
