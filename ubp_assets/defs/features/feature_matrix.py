"""The feature matrix: every family joined for the relevant clients, filled, scaled, checked."""

import dataclasses

import dagster as dg
import numpy as np
import polars as pl
from dagster_duckdb import DuckDBResource

from ubp_assets import location
from ubp_assets.automation import FOLLOWS_INPUTS
from ubp_assets.features.matrix import (
    StoredMatrixChecks,
    check_stored_matrix,
    fit_scaler_by_columns,
    matrix_in_shards,
    matrix_summary,
)
from ubp_assets.features.pipeline import FEATURES
from ubp_assets.inputs import (
    MATRIX_TABLE,
    digest,
    feature_cutoff,
    latest_recorded,
    load_relevant_clients,
    read_split,
)
from ubp_assets.keys import FOLD_KEYS, RAW_KEYS
from ubp_assets.markdown import markdown_table, png_markdown
from ubp_assets.metadata import column_schema
from ubp_assets.partitions import FIRST_DAY
from ubp_assets.progress import Progress
from ubp_assets.raw.files import file_state
from ubp_assets.resources import HEAVY_POOL, FeatureSettings, ScaleSettings, UbpStorage
from ubp_assets.shards import client_shards
from ubp_assets.warehouse import existing_tables, read_table, scan_table, write_table

SUMMARY_CLIENTS = 50_000  # rows the summary and the plot describe
MATRIX_CHECKS = {
    "no_nan_or_infinity": "Every value is finite.",
    "exact_client_set": "One row per relevant client, each exactly once.",
    "constant_columns": "Columns with one value for every client (reported as a warning).",
}
STORED_CHECKS = "stored_checks"


@dg.asset(
    deps=["challenge_split", *FOLD_KEYS.values(), RAW_KEYS["relevant_clients"]],
    group_name="features",
    kinds={"polars", "parquet"},
    code_version="1",
    pool=HEAVY_POOL,
    automation_condition=FOLLOWS_INPUTS,
    check_specs=[
        dg.AssetCheckSpec(n, asset="feature_matrix", description=d)
        for n, d in MATRIX_CHECKS.items()
    ],
    description="Every family joined for the relevant clients (one row each; clients without "
    "events get a defined row), missing values filled by each feature's rule (0 for counts, the "
    "median for rates, the history's length for day-distances), signed-log and robust scaled, "
    "clipped to ±5, float32. A warehouse table (parquet); the scaler is saved beside it to "
    "encode new clients. The scaler is fitted over every client a batch of columns at a time, "
    "then the rows are built a client shard at a time (UBP_CLIENTS_PER_SHARD). Rebuilt only "
    "when a family table's data version changed.",
)
def feature_matrix(
    context: dg.AssetExecutionContext,
    storage: UbpStorage,
    warehouse: DuckDBResource,
    feature_settings: FeatureSettings,
    scale_settings: ScaleSettings,
):
    cutoff = feature_cutoff(feature_settings, read_split(warehouse))
    recorded = latest_recorded(context.instance, [*FOLD_KEYS.values(), context.asset_key])
    version = dg.DataVersion(
        digest(
            *[recorded[key].data_version for key in FOLD_KEYS.values()],
            file_state(storage.relevant_clients_path).fingerprint,
            cutoff,
            context.assets_def.code_versions_by_key[context.asset_key],
        )
    )
    last = recorded[context.asset_key]
    last_checks = last.metadata.get(STORED_CHECKS)
    if (
        last.data_version == version.value
        and last_checks is not None
        and existing_tables(warehouse, [MATRIX_TABLE])
    ):
        context.log.info("no family table changed; the stored feature matrix stands")
        # Nothing has written the table since the scan that followed its last write: report it.
        stored = StoredMatrixChecks(**last_checks)
        yield dg.MaterializeResult(
            data_version=version,
            metadata={
                "cutoff": str(cutoff),
                "recomputed": False,
                STORED_CHECKS: dg.MetadataValue.json(dataclasses.asdict(stored)),
            },
        )
        yield from _check_results(stored, scanned_now=False)
        return

    relevant = load_relevant_clients(storage)
    span = (cutoff - FIRST_DAY).days
    tables = [key.to_user_string() for key in FOLD_KEYS.values()]
    columns = {t: read_table(warehouse, t, limit=0).columns[1:] for t in tables}
    scaler = fit_scaler_by_columns(
        relevant, columns, lambda t, c: read_table(warehouse, t, c), FEATURES, span
    )
    shards = client_shards(relevant, scale_settings.clients_per_shard)
    progress = Progress("shard", len(shards), context.log.info)
    parts = matrix_in_shards(
        relevant,
        shards,
        lambda shard: [read_table(warehouse, t, clients=(shard.first, shard.last)) for t in tables],
        scaler,
        progress.advance,
    )
    write_table(warehouse, MATRIX_TABLE, parts)
    location.write_parquet(scaler, storage.scaler_path)
    # The summary and the plot describe a seeded sample: the whole matrix at the full release's
    # size (1M x 780 float32, 3.1 GiB) would set the step's peak for a picture.
    shown = len(relevant) > SUMMARY_CLIENTS
    matrix = read_table(
        warehouse,
        MATRIX_TABLE,
        client_ids=np.random.default_rng(0).choice(relevant, SUMMARY_CLIENTS, replace=False)
        if shown
        else None,
    )
    stored = check_stored_matrix(scan_table(warehouse, MATRIX_TABLE), relevant)
    by_family = scaler.group_by("family", maintain_order=True).agg(
        pl.len().alias("features"),
        pl.col("filled_share").mean().round(3).alias("mean_share_filled"),
        pl.col("feature").is_in(stored.constant).sum().alias("constant"),
    )
    from ubp_assets.plots import feature_distributions

    plot = png_markdown(
        feature_distributions(matrix, scaler), storage.reports_dir / "feature_matrix.png"
    )
    yield dg.MaterializeResult(
        data_version=version,
        metadata={
            "recomputed": True,
            "dagster/row_count": stored.rows,
            "dagster/column_schema": column_schema(
                matrix.schema,
                {n: f"{FEATURES[n].family}: {FEATURES[n].description}" for n in matrix.columns[1:]},
            ),
            "cutoff": str(cutoff),
            "features": matrix.width - 1,
            "client_shards": len(shards),
            "features_by_family": dg.MetadataValue.md(markdown_table(by_family)),
            "summary": dg.MetadataValue.md(matrix_summary(matrix, scaler)),
            "summary_clients": f"a seeded sample of {matrix.height:,}" if shown else "every client",
            "scaler_path": dg.MetadataValue.path(str(storage.scaler_path)),
            "distributions": dg.MetadataValue.md(plot),
            "constant_columns": len(stored.constant),
            STORED_CHECKS: dg.MetadataValue.json(dataclasses.asdict(stored)),
        },
    )
    yield from _check_results(stored, scanned_now=True)


def _check_results(stored: StoredMatrixChecks, scanned_now: bool) -> list[dg.AssetCheckResult]:
    """The matrix's checks, run on what the warehouse holds rather than on what was meant.

    scanned_now is False where the table stood unchanged and the figures are those of the scan
    that followed its last write.
    """
    return [
        dg.AssetCheckResult(
            check_name="no_nan_or_infinity",
            passed=stored.non_finite == 0,
            metadata={"non_finite_values": stored.non_finite, "scanned_now": scanned_now},
        ),
        dg.AssetCheckResult(
            check_name="exact_client_set",
            passed=stored.exact_client_set,
            metadata={
                "rows": stored.rows,
                "distinct_clients": stored.distinct_clients,
                "relevant_clients": stored.relevant_clients,
                "scanned_now": scanned_now,
            },
        ),
        dg.AssetCheckResult(
            check_name="constant_columns",
            passed=not stored.constant,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "count": len(stored.constant),
                "columns": ", ".join(stored.constant[:50]) or "none",
                "scanned_now": scanned_now,
            },
        ),
    ]
