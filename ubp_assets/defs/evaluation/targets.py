"""The six tasks' targets in the organisers' `target/` layout."""

import dagster as dg
import polars as pl
from dagster_duckdb import DuckDBResource

from ubp_assets.automation import FOLLOWS_INPUTS
from ubp_assets.evaluation.targets import build_targets, target_summary
from ubp_assets.events.table import scan_events
from ubp_assets.inputs import load_relevant_clients, read_split
from ubp_assets.keys import RAW_KEYS
from ubp_assets.markdown import markdown_table
from ubp_assets.resources import HEAVY_POOL, UbpStorage


@dg.asset(
    deps=["challenge_split", "events", RAW_KEYS["relevant_clients"]],
    group_name="evaluation",
    kinds={"polars", "numpy"},
    code_version="1",
    pool=HEAVY_POOL,
    automation_condition=FOLLOWS_INPUTS,
    description="The six tasks' targets in the organisers' `target/` layout: the 100 categories "
    "and 100 SKUs bought most in the train target window, 100 new SKUs (bought there, seen in "
    "no input event) and the 100 price buckets, each with its popularity for novelty; the "
    "active clients; the relevant clients' buys of the train and validation windows (labels "
    "for training and for scoring).",
)
def targets(storage: UbpStorage, warehouse: DuckDBResource) -> dg.MaterializeResult:
    relevant = load_relevant_clients(storage)
    built = build_targets(scan_events(storage.events_dir), read_split(warehouse), relevant)
    built.write(storage.target_dir)
    summary = target_summary(built)
    new_sku_buys = summary.filter(pl.col("task") == "propensity_new_sku")["validation_buys"]
    return dg.MaterializeResult(
        metadata={
            "target_dir": dg.MetadataValue.path(str(storage.target_dir)),
            "active_clients": len(built.active_clients),
            "relevant_clients": len(relevant),
            "train_window_buys": built.train_target.height,
            "validation_window_buys": built.validation_target.height,
            "tasks": dg.MetadataValue.md(
                markdown_table(summary)
                + "\n\nBuys of the task's values by the relevant clients in each window. A "
                "propensity task whose values get only a handful of validation buys scores "
                "noise, whatever the embedding."
            ),
            "new_sku_validation_buys": int(new_sku_buys[0]) if len(new_sku_buys) else 0,
        }
    )
