"""The challenge's split as an asset: it fixes the input cutoff the features use for scoring."""

import dagster as dg
import polars as pl

from ubp_assets.evaluation.split import split_from_events
from ubp_assets.events.assets import events
from ubp_assets.events.table import scan_events
from ubp_assets.resources import UbpStorage


@dg.asset(
    deps=[events],
    group_name="evaluation",
    kinds={"polars", "duckdb"},
    code_version="1",
    io_manager_key="warehouse_io",
    description="The RecSys Challenge 2025 time split computed from the events exactly as the "
    "organisers do: end_date is the latest product_buy, train_target_start is midnight of "
    "end_date - 27 days (the input ends there), validation_target_start is 14 days later.",
)
def challenge_split(context: dg.AssetExecutionContext, storage: UbpStorage) -> pl.DataFrame:
    split = split_from_events(scan_events(storage.events_dir))
    context.add_output_metadata({k: v for k, v in split.as_dict().items()})
    return pl.DataFrame(
        {
            "end_date": [split.end_date],
            "train_target_start": [split.train_target_start],
            "validation_target_start": [split.validation_target_start],
        }
    )
