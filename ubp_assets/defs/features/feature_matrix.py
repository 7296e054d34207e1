"""The feature matrix: every family joined for the relevant clients, filled, scaled, checked."""

import dataclasses

import dagster as dg
import polars as pl
from dagster_duckdb import DuckDBResource

from ubp_assets.automation import FOLLOWS_INPUTS
from ubp_assets.features.matrix import StoredMatrixChecks, build_feature_matrix, check_stored_matrix
from ubp_assets.features.pipeline import FEATURES, FOLDS
from ubp_assets.inputs import (
    MATRIX_TABLE,
    digest,
    feature_cutoff,
    latest_recorded,
    load_relevant_clients,
    read_split,
)
from ubp_assets.keys import RAW_KEYS
from ubp_assets.markdown import markdown_table, png_markdown
from ubp_assets.metadata import column_schema
from ubp_assets.partitions import FIRST_DAY
from ubp_assets.raw.files import file_state
from ubp_assets.resources import WAREHOUSE_POOL, FeatureSettings, UbpStorage
from ubp_assets.warehouse import existing_tables, read_table, write_table

FOLD_KEYS = [dg.AssetKey(f"{family}_features") for family in FOLDS]
MATRIX_CHECKS = {
    "no_nan_or_infinity": "Every value is finite.",
    "exact_client_set": "One row per relevant client, each exactly once.",
    "constant_columns": "Columns with one value for every client (reported as a warning).",
}
STORED_CHECKS = "stored_checks"


@dg.asset(
    deps=["challenge_split", *FOLD_KEYS, RAW_KEYS["relevant_clients"]],
    group_name="features",
    kinds={"polars", "duckdb"},
    code_version="1",
    pool=WAREHOUSE_POOL,
    automation_condition=FOLLOWS_INPUTS,
    check_specs=[
        dg.AssetCheckSpec(n, asset="feature_matrix", description=d)
        for n, d in MATRIX_CHECKS.items()
    ],
    description="Every family joined for the relevant clients (one row each; clients without "
    "events get a defined row), missing values filled by each feature's rule (0 for counts, the "
    "median for rates, the history's length for day-distances), signed-log and robust scaled, "
    "clipped to ±5, float32. A table in the DuckDB warehouse; the scaler is saved beside it to "
    "encode new clients. Rebuilt only when a family table's data version changed.",
)
def feature_matrix(
    context: dg.AssetExecutionContext,
    storage: UbpStorage,
    warehouse: DuckDBResource,
    feature_settings: FeatureSettings,
):
    cutoff = feature_cutoff(feature_settings, read_split(warehouse))
    recorded = latest_recorded(context.instance, [*FOLD_KEYS, context.asset_key])
    version = dg.DataVersion(
        digest(
            *[recorded[key].data_version for key in FOLD_KEYS],
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
    tables = [read_table(warehouse, key.to_user_string()) for key in FOLD_KEYS]
    built = build_feature_matrix(relevant, tables, FEATURES, span)
    matrix = built.matrix
    write_table(warehouse, MATRIX_TABLE, matrix)
    storage.scaler_path.parent.mkdir(parents=True, exist_ok=True)
    built.scaler.write_parquet(storage.scaler_path)
    with warehouse.get_connection() as conn:
        stored = check_stored_matrix(conn, MATRIX_TABLE, relevant)
    by_family = built.scaler.group_by("family", maintain_order=True).agg(
        pl.len().alias("features"),
        pl.col("filled_share").mean().round(3).alias("mean_share_filled"),
        pl.col("feature").is_in(stored.constant).sum().alias("constant"),
    )
    from ubp_assets.plots import feature_distributions

    plot = png_markdown(
        feature_distributions(matrix, built.scaler), storage.reports_dir / "feature_matrix.png"
    )
    yield dg.MaterializeResult(
        data_version=version,
        metadata={
            "recomputed": True,
            "dagster/row_count": matrix.height,
            "dagster/column_schema": column_schema(
                matrix.schema,
                {n: f"{FEATURES[n].family}: {FEATURES[n].description}" for n in matrix.columns[1:]},
            ),
            "cutoff": str(cutoff),
            "features": matrix.width - 1,
            "features_by_family": dg.MetadataValue.md(markdown_table(by_family)),
            "summary": dg.MetadataValue.md(_matrix_summary(matrix, built.scaler)),
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


def _matrix_summary(matrix: pl.DataFrame, scaler: pl.DataFrame) -> str:
    quantiles = matrix.select(
        pl.exclude("client_id").quantile(q).name.suffix(f"|{name}")
        for name, q in (("p05", 0.05), ("p50", 0.5), ("p95", 0.95))
    ).row(0, named=True)
    summary = scaler.select(
        "feature",
        "family",
        pl.col("filled_share").round(3),
        *[
            pl.Series(q, [round(quantiles[f"{n}|{q}"], 2) for n in scaler["feature"]])
            for q in ("p05", "p50", "p95")
        ],
    )
    return (
        "Scaled values (5th, 50th, 95th percentiles) and the share of clients whose value was "
        "filled, for the first 80 features:\n\n" + markdown_table(summary, max_rows=80)
    )
