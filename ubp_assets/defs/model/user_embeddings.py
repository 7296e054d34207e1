"""Every relevant client's universal embedding, in every composition the registry lists."""

import time
from typing import Literal

import dagster as dg
import numpy as np
import polars as pl
from dagster_duckdb import DuckDBResource
from pydantic import Field

from ubp_assets.automation import FOLLOWS_INPUTS
from ubp_assets.inputs import read_features
from ubp_assets.methods import COMPOSITIONS, DEFAULT_COMPOSITION, USER_EMBEDDINGS
from ubp_assets.model.composition import AFFINITY_BOUND, FORECAST_WEIGHT, compositions
from ubp_assets.publish import publish_embeddings, submission_check_spec
from ubp_assets.resources import WAREHOUSE_POOL, UbpStorage
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
    kinds={"pytorch", "duckdb", "numpy"},
    code_version="2",
    pool=WAREHOUSE_POOL,
    automation_condition=FOLLOWS_INPUTS,
    check_specs=[submission_check_spec(USER_EMBEDDINGS)],
    description="Every relevant client's embedding from the latest autoencoder: "
    "embeddings/user_embeddings/ in the submission format (client_ids.npy int64, "
    "embeddings.npy float16) and the warehouse table user_embeddings, in the configured "
    "composition (by default `universal`: the latent, the item affinity and the activity "
    "forecast). Every composition is also published for the probe to score.",
)
def user_embeddings(storage: UbpStorage, warehouse: DuckDBResource, config: UserEmbeddingsConfig):
    from ubp_assets.model.training import encode, load_model

    if not storage.autoencoder_path.is_file():
        raise dg.Failure(
            description=f"{storage.autoencoder_path} is missing: materialize autoencoder first"
        )
    model, trained_with, extra = load_model(storage.autoencoder_path)
    client_ids, features, names = read_features(warehouse)
    if names != extra["feature_names"]:
        raise dg.Failure(
            description="the feature matrix's columns differ from the ones the autoencoder was "
            "trained on: rematerialize autoencoder"
        )
    started = time.perf_counter()
    vectors, widths = compositions(
        encode(model, features),
        features,
        read_table(warehouse, "item_affinity"),
        read_table(warehouse, "activity_forecast"),
        client_ids,
    )
    chosen = vectors[config.composition]
    table = pl.DataFrame({"client_id": client_ids}).hstack(
        pl.DataFrame(chosen.astype(np.float32), schema=[f"e{j}" for j in range(chosen.shape[1])])
    )
    write_table(warehouse, USER_EMBEDDINGS, table)
    published = {
        USER_EMBEDDINGS: chosen,
        **{method: vectors[composition] for composition, method in COMPOSITIONS.items()},
    }
    yield from publish_embeddings(
        storage,
        client_ids,
        published,
        time.perf_counter() - started,
        metadata={
            "composition": config.composition,
            "affinity_bound": AFFINITY_BOUND,
            "forecast_weight": FORECAST_WEIGHT,
            "model_path": dg.MetadataValue.path(str(storage.autoencoder_path)),
            "latent_dim": trained_with.latent_dim,
            "dimensions_by_part": dg.MetadataValue.json(widths),
            "dagster/row_count": len(client_ids),
        },
    )
