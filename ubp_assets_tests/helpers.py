from __future__ import annotations

import math
from pathlib import Path

import dagster as dg

from ubp_assets.definitions import load_stage_definitions
from ubp_assets.defs.events.events import events
from ubp_assets.events.table import events_per_day
from ubp_assets.partitions import FIRST_DAY, LAST_DAY
from ubp_assets.resources import ScaleSettings, UbpStorage, build_resources
from ubp_assets.storage import day_range

RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"


def chunk_events_for(raw: Path, days: int) -> int:
    """The UBP_CHUNK_EVENTS that makes a backfill of this release build `days` days a chunk."""
    return math.ceil(days * events_per_day(raw, len(day_range(FIRST_DAY, LAST_DAY))))


def materialize_events(
    raw: Path,
    data: Path,
    first: str,
    last: str | None = None,
    instance=None,
    *,
    chunk_days: int = 14,
) -> dg.ExecuteInProcessResult:
    """Materialize the events partitions first..last in one run, as a single-run backfill does."""
    resources = build_resources(
        UbpStorage(data_dir=str(data), raw_dir=str(raw)),
        scale=ScaleSettings(chunk_events=chunk_events_for(raw, chunk_days)),
    )
    kwargs = (
        {"partition_key": first}
        if last is None
        else {"tags": {RANGE_START: first, RANGE_END: last}}
    )
    return dg.materialize(
        [events],
        resources=resources,
        instance=instance or dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
        **kwargs,
    )


def failure_message(result: dg.ExecuteInProcessResult) -> str:
    failures = [e for e in result.all_events if e.is_step_failure]
    assert failures, "the run did not fail"
    return failures[0].step_failure_data.error.message


def materialization_metadata(result: dg.ExecuteInProcessResult) -> dict:
    mats = result.asset_materializations_for_node("events")
    return {k: v.value for k, v in mats[0].metadata.items()}


def check_named(result: dg.ExecuteInProcessResult, name: str) -> dg.AssetCheckEvaluation:
    return next(e for e in result.get_asset_check_evaluations() if e.check_name == name)


def stage_assets() -> list[dg.AssetsDefinition]:
    """Every materializable asset under defs/, unbound, for `dg.materialize` over test resources."""
    return [
        a
        for a in load_stage_definitions().assets
        if isinstance(a, dg.AssetsDefinition) and a.is_materializable
    ]
