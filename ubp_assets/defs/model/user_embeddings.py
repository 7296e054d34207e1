"""Every relevant client's universal embedding, in every composition the registry lists."""

import time
from typing import Literal

import dagster as dg
import numpy as np
import polars as pl
from dagster_duckdb import DuckDBResource
from pydantic import Field

from ubp_assets.automation import FOLLOWS_INPUTS
from ubp_assets.evaluation.submission import SubmissionWriter
from ubp_assets.inputs import MATRIX_TABLE, load_relevant_clients
from ubp_assets.methods import COMPOSITIONS, DEFAULT_COMPOSITION, USER_EMBEDDINGS
from ubp_assets.model.composition import (
    AFFINITY_BOUND,
    FORECAST_WEIGHT,
    PARTS,
    ColumnScale,
    compose,
)
from ubp_assets.progress import Progress
from ubp_assets.publish import published, submission_check_spec
from ubp_assets.resources import HEAVY_POOL, ScaleSettings, UbpStorage
from ubp_assets.shards import client_shards, release_freed_memory
from ubp_assets.warehouse import read_table, write_table


class UserEmbeddingsConfig(dg.Config):
    composition: Literal[tuple(COMPOSITIONS)] = Field(  # the registry's compositions
        default=DEFAULT_COMPOSITION,
        description='"latent" (the paper\'s profile), "latent+features" (the latent beside the '
        'scaled features) or "universal" (the latent, the item affinity and the activity '
        "forecast, standardised); the submission and the warehouse table hold this one, and "
        "every composition is published for the probe to score.",
    )


@dg.asset(
    deps=["autoencoder", "feature_matrix", "item_affinity", "activity_forecast"],
    group_name="model",
    kinds={"pytorch", "parquet", "numpy"},
    code_version="2",
    pool=HEAVY_POOL,
    automation_condition=FOLLOWS_INPUTS,
    check_specs=[submission_check_spec(USER_EMBEDDINGS)],
    description="Every relevant client's embedding from the latest autoencoder, encoded a "
    "client shard at a time (UBP_CLIENTS_PER_SHARD): "
    "embeddings/user_embeddings/ in the submission format (client_ids.npy int64, "
    "embeddings.npy float16) and the warehouse table user_embeddings, in the configured "
    "composition (by default `universal`: the latent, the item affinity and the activity "
    "forecast). Every composition is also published for the probe to score.",
)
def user_embeddings(
    context: dg.AssetExecutionContext,
    storage: UbpStorage,
    warehouse: DuckDBResource,
    scale_settings: ScaleSettings,
    config: UserEmbeddingsConfig,
):
    from ubp_assets.model.training import encode, load_model

    if not storage.autoencoder_path.is_file():
        raise dg.Failure(
            description=f"{storage.autoencoder_path} is missing: materialize autoencoder first"
        )
    model, trained_with, extra = load_model(storage.autoencoder_path)
    names = read_table(warehouse, MATRIX_TABLE, limit=0).columns[1:]
    if names != extra["feature_names"]:
        raise dg.Failure(
            description="the feature matrix's columns differ from the ones the autoencoder was "
            "trained on: rematerialize autoencoder"
        )
    started = time.perf_counter()
    scales = {
        part: ColumnScale.fit(
            lambda columns, table=table: read_table(warehouse, table, columns),
            read_table(warehouse, table, limit=0).columns[1:],
            bound,
            weight,
        )
        for part, table, bound, weight in (
            ("affinity", "item_affinity", AFFINITY_BOUND, 1.0),
            ("forecast", "activity_forecast", None, FORECAST_WEIGHT),
        )
    }
    widths = {
        "latent": trained_with.latent_dim,
        "features": len(names),
        **{part: len(scale.mean) for part, scale in scales.items()},
    }
    relevant = load_relevant_clients(storage)
    folders = {USER_EMBEDDINGS: config.composition, **{m: c for c, m in COMPOSITIONS.items()}}
    writers = {
        method: SubmissionWriter(
            storage.embeddings_dir / method, len(relevant), sum(widths[p] for p in PARTS[used])
        )
        for method, used in folders.items()
    }
    shards = client_shards(relevant, scale_settings.clients_per_shard)
    progress = Progress("shard", len(shards), context.log.info)

    def chosen_rows(shard) -> pl.DataFrame:
        """One shard encoded and composed: every folder gets its rows, the table the chosen
        composition's (returned alone, so the shard's parts are freed before the table insert)."""
        rows = (shard.first, shard.last)
        matrix = read_table(warehouse, MATRIX_TABLE, clients=rows)
        ids, features = matrix["client_id"].to_numpy(), matrix.drop("client_id").to_numpy()
        del matrix
        parts = {"latent": encode(model, features), "features": features}
        for part, table in (("affinity", "item_affinity"), ("forecast", "activity_forecast")):
            parts[part] = scales[part].apply(read_table(warehouse, table, clients=rows), ids)
        vectors = compose(parts)
        for method, writer in writers.items():
            writer.write(ids, vectors[folders[method]])
        chosen = np.asarray(vectors[config.composition], dtype=np.float32)
        return pl.DataFrame({"client_id": ids}).hstack(
            pl.DataFrame(chosen, schema=[f"e{j}" for j in range(chosen.shape[1])])
        )

    def chosen_in_shards():
        for shard in shards:
            yield chosen_rows(shard)
            release_freed_memory()
            progress.advance(shard.clients, shard.label)

    rows = write_table(warehouse, USER_EMBEDDINGS, chosen_in_shards())
    for writer in writers.values():
        writer.commit()
    yield from published(
        storage,
        list(writers),
        time.perf_counter() - started,
        metadata={
            "composition": config.composition,
            "affinity_bound": AFFINITY_BOUND,
            "forecast_weight": FORECAST_WEIGHT,
            "model_path": dg.MetadataValue.path(str(storage.autoencoder_path)),
            "latent_dim": trained_with.latent_dim,
            "dimensions_by_part": dg.MetadataValue.json(widths),
            "client_shards": len(shards),
            "dagster/row_count": rows,
        },
    )
