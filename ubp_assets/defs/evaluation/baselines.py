"""The baselines' embeddings: the noise floor, the organisers' aggregated features, and the
scaled feature matrix itself."""

import time

import dagster as dg
import numpy as np
from dagster_duckdb import DuckDBResource
from pydantic import Field

from ubp_assets.automation import FOLLOWS_INPUTS
from ubp_assets.evaluation.baseline import BASELINE_DIM, aggregated_baseline
from ubp_assets.evaluation.submission import SubmissionWriter
from ubp_assets.events.table import scan_events
from ubp_assets.inputs import MATRIX_TABLE, load_relevant_clients, read_split
from ubp_assets.keys import RAW_KEYS
from ubp_assets.methods import BASELINE
from ubp_assets.publish import publish_embeddings, published, submission_check_spec
from ubp_assets.resources import HEAVY_POOL, ScaleSettings, UbpStorage
from ubp_assets.shards import client_shards
from ubp_assets.warehouse import read_table


class RandomEmbeddingsConfig(dg.Config):
    dimensions: int = Field(default=64, description="width of the Gaussian vectors")
    seed: int = Field(default=0)


@dg.asset(
    deps=[RAW_KEYS["relevant_clients"]],
    group_name="baselines",
    kinds={"numpy"},
    code_version="1",
    automation_condition=FOLLOWS_INPUTS,
    check_specs=[submission_check_spec("random_embeddings")],
    description="Gaussian noise per relevant client: the sanity floor. The probe sees the same "
    "clients in training and scoring, so a large probe can memorise even these (PROTOCOL.md).",
)
def random_embeddings(storage: UbpStorage, config: RandomEmbeddingsConfig):
    started = time.perf_counter()
    relevant = load_relevant_clients(storage)
    vectors = np.random.default_rng(config.seed).standard_normal((len(relevant), config.dimensions))
    yield from publish_embeddings(
        storage, relevant, {"random": vectors}, time.perf_counter() - started
    )


@dg.asset(
    deps=["challenge_split", "events", RAW_KEYS["relevant_clients"]],
    group_name="baselines",
    kinds={"polars", "numpy"},
    code_version="1",
    pool=HEAVY_POOL,
    automation_condition=FOLLOWS_INPUTS,
    check_specs=[submission_check_spec("aggregated_baseline_embeddings")],
    description=f"The organisers' aggregated-features baseline ({BASELINE_DIM} dimensions) from "
    "the input (events before train_target_start): counts of the 10 most frequent SKUs, "
    "categories and price buckets over the last 1, 7 and 30 days for buys, cart adds and "
    "removals, the same over urls for page visits, the mean query vector for searches.",
)
def aggregated_baseline_embeddings(storage: UbpStorage, warehouse: DuckDBResource):
    started = time.perf_counter()
    relevant = load_relevant_clients(storage)
    split = read_split(warehouse)
    vectors = aggregated_baseline(
        scan_events(storage.events_dir), relevant, split.train_target_start
    )
    yield from publish_embeddings(
        storage, relevant, {BASELINE: vectors}, time.perf_counter() - started
    )


@dg.asset(
    deps=["feature_matrix"],
    group_name="baselines",
    kinds={"parquet", "numpy"},
    code_version="1",
    pool=HEAVY_POOL,
    automation_condition=FOLLOWS_INPUTS,
    check_specs=[submission_check_spec("feature_matrix_embeddings")],
    description="The scaled feature matrix itself as an embedding: what the seed paper's "
    "autoencoder has to compress without losing. Copied a client shard at a time.",
)
def feature_matrix_embeddings(
    storage: UbpStorage, warehouse: DuckDBResource, scale_settings: ScaleSettings
):
    started = time.perf_counter()
    relevant = load_relevant_clients(storage)
    dims = read_table(warehouse, MATRIX_TABLE, limit=0).width - 1
    writer = SubmissionWriter(storage.embeddings_dir / "feature_matrix", len(relevant), dims)
    for shard in client_shards(relevant, scale_settings.clients_per_shard):
        matrix = read_table(warehouse, MATRIX_TABLE, clients=(shard.first, shard.last))
        writer.write(matrix["client_id"].to_numpy(), matrix.drop("client_id").to_numpy())
    writer.commit()
    yield from published(storage, ["feature_matrix"], time.perf_counter() - started)
