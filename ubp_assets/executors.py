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
from collections.abc import Mapping

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


if __name__ == "__main__":  # python -m ubp_assets.executors > celery.yaml
    print(worker_yaml(), end="")
