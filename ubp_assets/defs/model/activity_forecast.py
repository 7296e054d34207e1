"""Each client's next two weeks as the input alone can tell them, learned at earlier cut days."""

import time

import dagster as dg
import polars as pl
from dagster_duckdb import DuckDBResource

from ubp_assets.automation import FOLLOWS_INPUTS
from ubp_assets.events.table import scan_events
from ubp_assets.inputs import cutoff_time, load_relevant_clients, read_split
from ubp_assets.keys import RAW_KEYS
from ubp_assets.markdown import markdown_table
from ubp_assets.resources import (
    HEAVY_POOL,
    FeatureSettings,
    ScaleSettings,
    TrainingSettings,
    UbpStorage,
)
from ubp_assets.warehouse import write_table

FORECAST_TABLE = "activity_forecast"


@dg.asset(
    deps=["challenge_split", "events", RAW_KEYS["relevant_clients"]],
    group_name="model",
    kinds={"pytorch", "parquet"},
    code_version="1",
    pool=HEAVY_POOL,
    automation_condition=FOLLOWS_INPUTS,
    description="Self-supervised from the input alone: a network trained at six earlier cut days "
    "to predict each client's next two weeks (a buy, a cart add, any event) from their activity "
    "profile, applied at the feature cutoff. Logits per relevant client; the strongest signal "
    "for churn and conversion in the universal embedding.",
)
def activity_forecast(
    context: dg.AssetExecutionContext,
    storage: UbpStorage,
    warehouse: DuckDBResource,
    feature_settings: FeatureSettings,
    training_settings: TrainingSettings,
    *,
    scale_settings: ScaleSettings,
) -> dg.MaterializeResult:
    from ubp_assets.model.forecast import TARGETS, ForecastConfig
    from ubp_assets.model.forecast import activity_forecast as forecast

    cutoff = cutoff_time(feature_settings, read_split(warehouse))
    relevant = load_relevant_clients(storage)
    started = time.perf_counter()
    found = forecast(
        scan_events(storage.events_dir),
        relevant,
        cutoff,
        ForecastConfig(
            device=training_settings.device,
            sample_clients=training_settings.sample_clients,
            clients_per_shard=scale_settings.clients_per_shard,
        ),
        progress=context.log.info,
    )
    frame = pl.DataFrame({"client_id": relevant}).hstack(
        pl.DataFrame(found.logits, schema=[f"next_{t}" for t in TARGETS])
    )
    probabilities = frame.select(
        pl.col(f"next_{t}").map_batches(lambda s: 1 / (1 + (-s).exp())).mean() for t in TARGETS
    )
    write_table(warehouse, FORECAST_TABLE, frame)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": frame.height,
            "cutoff": str(cutoff.date()),
            "training_rows": found.training_rows,
            "trained_on": _learnt_from(*found.training_clients),
            "final_loss": round(found.final_loss, 4),
            "positive_rates_in_training": dg.MetadataValue.json(
                {k: round(v, 4) for k, v in found.positive_rates.items()}
            ),
            "mean_predicted_at_cutoff": dg.MetadataValue.json(
                {k: round(v, 4) for k, v in probabilities.row(0, named=True).items()}
            ),
            "seconds": round(time.perf_counter() - started, 1),
            "preview": dg.MetadataValue.md(markdown_table(frame)),
        }
    )


def _learnt_from(learners: int, of_clients: int) -> str:
    if learners == of_clients:
        return f"every client with an input ({learners:,}), at each cut day"
    return (
        f"a seeded sample of {learners:,} of {of_clients:,} clients with an input "
        "(UBP_TRAINING_CLIENTS), at each cut day"
    )
