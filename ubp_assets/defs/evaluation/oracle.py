"""The ceiling on synthetic data: each relevant client's latent truth turned into the answers."""

import datetime as dt
import json
import time

import dagster as dg
import polars as pl
from dagster_duckdb import DuckDBResource

from ubp_assets.automation import FOLLOWS_INPUTS
from ubp_assets.evaluation.oracle import Windows, oracle_embedding
from ubp_assets.evaluation.targets import Targets
from ubp_assets.inputs import load_relevant_clients, read_split
from ubp_assets.keys import RAW_FILENAMES, RAW_KEYS, SYNTHETIC_TRUTH
from ubp_assets.location import remove_tree
from ubp_assets.methods import CEILING
from ubp_assets.publish import SUBMISSION_CHECK, publish_embeddings, submission_check_spec
from ubp_assets.resources import HEAVY_POOL, UbpStorage
from ubp_assets.synthetic.release import MANIFEST, TRUTH_FILE


@dg.asset(
    deps=[
        "challenge_split",
        "targets",
        SYNTHETIC_TRUTH,
        RAW_KEYS["relevant_clients"],
        RAW_KEYS["product_properties"],
    ],
    group_name="baselines",
    kinds={"polars", "numpy"},
    code_version="1",
    pool=HEAVY_POOL,
    automation_condition=FOLLOWS_INPUTS,
    check_specs=[submission_check_spec("oracle_embeddings")],
    description="The ceiling on synthetic data: each relevant client's latent truth as the "
    "generator drew it, turned into what the tasks ask (expected sessions and buys per window, "
    "the chance of buying each target category, SKU and price bucket). On the real release "
    "there is no truth and no oracle; the probe report then leaves the gap columns empty.",
)
def oracle_embeddings(
    context: dg.AssetExecutionContext, storage: UbpStorage, warehouse: DuckDBResource
):
    truth_path = storage.raw_path / TRUTH_FILE
    manifest_path = storage.raw_path / MANIFEST
    if not truth_path.is_file() or not manifest_path.is_file():
        remove_tree(storage.embeddings_dir / CEILING)
        context.log.info(f"no latent truth at {truth_path}: not a synthetic release, no oracle")
        yield dg.MaterializeResult(metadata={"available": False, "truth": str(truth_path)})
        yield dg.AssetCheckResult(
            check_name=SUBMISSION_CHECK,
            passed=True,
            metadata={"problems": "none: no oracle on a release without latent truth"},
        )
        return
    started = time.perf_counter()
    manifest = json.loads(manifest_path.read_text())
    first_day = dt.date.fromisoformat(manifest["first_day"])
    last_day = dt.date.fromisoformat(manifest["last_day"])
    windows = Windows(
        target_start=(read_split(warehouse).train_target_start.date() - first_day).days,
        days=(last_day - first_day).days + 1,
    )
    relevant = load_relevant_clients(storage)
    vectors = oracle_embedding(
        pl.scan_parquet(truth_path)  # the relevant clients' truth only: 1M of 18.7M at full
        .join(pl.LazyFrame({"client_id": relevant}), on="client_id", how="semi")
        .collect(),
        relevant,
        pl.read_parquet(storage.raw_path / RAW_FILENAMES["product_properties"]),
        Targets.read(storage.target_dir).values,
        windows,
    )
    yield from publish_embeddings(
        storage,
        relevant,
        {CEILING: vectors},
        time.perf_counter() - started,
        metadata={
            "available": True,
            "truth": dg.MetadataValue.path(str(truth_path)),
            "target_start_day": windows.target_start,
        },
    )
