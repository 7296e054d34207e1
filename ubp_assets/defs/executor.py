"""The jobs' default executor, chosen when the definitions load (UBP_EXECUTOR; see
ubp_assets/executors.py): Dagster's multiprocess one, or Celery workers."""

import dagster as dg

from ubp_assets.executors import executor_from_env


@dg.definitions
def executor() -> dg.Definitions:
    return dg.Definitions(executor=executor_from_env())
