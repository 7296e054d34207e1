"""The challenge's time split, computed from the stored events as the organisers compute it."""

import dagster as dg
from dagster_duckdb import DuckDBResource

from ubp_assets.automation import FOLLOWS_INPUTS
from ubp_assets.evaluation.split import split_from_event_days
from ubp_assets.inputs import SPLIT_TABLE, split_frame
from ubp_assets.resources import HEAVY_POOL, UbpStorage
from ubp_assets.warehouse import write_table


@dg.asset(
    deps=["events"],
    group_name="evaluation",
    kinds={"polars", "parquet"},
    code_version="1",
    pool=HEAVY_POOL,
    automation_condition=FOLLOWS_INPUTS,
    description="The RecSys Challenge 2025 time split computed from the events exactly as the "
    "organisers do: end_date is the latest product_buy, train_target_start is midnight of "
    "end_date - 27 days (the input ends there), validation_target_start is 14 days later.",
)
def challenge_split(storage: UbpStorage, warehouse: DuckDBResource) -> dg.MaterializeResult:
    split = split_from_event_days(storage.events_dir)
    write_table(warehouse, SPLIT_TABLE, split_frame(split))
    return dg.MaterializeResult(metadata=split.as_dict())
