"""Feature families as assets: a day-partitioned partial and a user-level fold for each family,
then the feature matrix. A new day costs one partial per family plus the folds."""

import datetime as dt

import dagster as dg
import numpy as np
import polars as pl

from ubp_assets.events.assets import events
from ubp_assets.events.raw_reader import read_products
from ubp_assets.events.table import scan_events
from ubp_assets.features.matrix import build_feature_matrix
from ubp_assets.features.pipeline import FEATURES, FOLDS, PARTIALS, Fold, Partial
from ubp_assets.metadata import column_schema, markdown_table, png_markdown
from ubp_assets.partitions import FIRST_DAY, LAST_DAY, event_days, window_days
from ubp_assets.raw.assets import RAW_KEYS
from ubp_assets.resources import WAREHOUSE_POOL, FeatureSettings, UbpStorage
from ubp_assets.storage import day_range, missing_days, scan_days, write_day_partitions

PARTIAL_CODE_VERSION = "1"
FOLD_CODE_VERSION = "1"


def load_relevant_clients(storage: UbpStorage) -> np.ndarray:
    path = storage.relevant_clients_path
    if not path.is_file():
        raise dg.Failure(description=f"input/relevant_clients.npy: file not found at {path}")
    return np.load(path).astype(np.int64)


# ---- daily partials ------------------------------------------------------------------------------


def _partial_asset(name: str, spec: Partial) -> dg.AssetsDefinition:
    deps = [events]
    if spec.relevant_only:
        deps.append(RAW_KEYS["relevant_clients"])
    if spec.needs_names:
        deps.append(RAW_KEYS["product_properties"])

    @dg.asset(
        name=name,
        partitions_def=event_days,
        backfill_policy=dg.BackfillPolicy.single_run(),
        deps=deps,
        group_name=spec.group,
        kinds={"polars", "parquet"},
        code_version=PARTIAL_CODE_VERSION,
        description=spec.description,
    )
    def _partial(context: dg.AssetExecutionContext, storage: UbpStorage) -> dg.MaterializeResult:
        first, last = window_days(context)
        days = day_range(first, last)
        absent = missing_days(storage.events_dir, days)
        if absent:
            raise dg.Failure(
                description=f"events lacks {len(absent)} of these days ({absent[0]}, ...): "
                "materialize those events partitions first"
            )
        day_events = scan_events(storage.events_dir, days)
        if spec.relevant_only:
            relevant = pl.Series(load_relevant_clients(storage))
            day_events = day_events.filter(pl.col("client_id").is_in(relevant.implode()))
        names = (
            read_products(storage.raw_path).rows.select("sku", "name").lazy()
            if spec.needs_names
            else pl.LazyFrame()
        )
        frame = spec.compute(day_events, names).collect()
        write_day_partitions(frame, storage.partials_dir / name, days)
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": frame.height,
                "dagster/column_schema": column_schema(frame.schema),
                "days": f"{first}..{last}",
                "preview": dg.MetadataValue.md(markdown_table(frame)),
            }
        )

    return _partial


PARTIAL_ASSETS = {name: _partial_asset(name, spec) for name, spec in PARTIALS.items()}


# ---- folds -------------------------------------------------------------------------------------


def feature_cutoff(settings: FeatureSettings, challenge_split: pl.DataFrame) -> dt.date:
    train_target_start = challenge_split["train_target_start"][0].date()
    return settings.cutoff_date(train_target_start, LAST_DAY)


def load_partials(storage: UbpStorage, name: str, cutoff: dt.date) -> pl.LazyFrame:
    """Every stored day of a partial before the cutoff; all of them must be there.

    This is where the no-leakage rule lives: a fold never sees a day at or after its cutoff.
    """
    last = min(cutoff - dt.timedelta(days=1), LAST_DAY)
    days = day_range(FIRST_DAY, last)
    absent = missing_days(storage.partials_dir / name, days)
    if absent:
        raise dg.Failure(
            description=f"{name} lacks {len(absent)} day(s) before the cutoff {cutoff} "
            f"({', '.join(map(str, absent[:5]))}{', ...' if len(absent) > 5 else ''}): backfill "
            "those partitions first"
        )
    return scan_days(storage.partials_dir / name, days)


def _summary(frame: pl.DataFrame) -> str:
    stats = (
        frame.drop("client_id")
        .describe(percentiles=(0.5,))
        .transpose(include_header=True, column_names="statistic")
        .select(
            pl.col("column").alias("feature"),
            pl.col("null_count").cast(pl.Float64).cast(pl.Int64).alias("nulls"),
            "mean",
            "min",
            pl.col("50%").alias("median"),
            "max",
        )
    )
    return markdown_table(stats, max_rows=60)


def _fold_asset(family: str, spec: Fold) -> dg.AssetsDefinition:
    @dg.asset(
        name=f"{family}_features",
        deps=[PARTIAL_ASSETS[n] for n in spec.partials],
        ins={"challenge_split": dg.AssetIn()},
        group_name=family,
        kinds={"polars", "duckdb"},
        code_version=FOLD_CODE_VERSION,
        io_manager_key="warehouse_io",
        pool=WAREHOUSE_POOL,
        description=spec.description,
    )
    def _fold(
        context: dg.AssetExecutionContext,
        storage: UbpStorage,
        feature_settings: FeatureSettings,
        challenge_split: pl.DataFrame,
    ) -> pl.DataFrame:
        cutoff = feature_cutoff(feature_settings, challenge_split)
        relevant = pl.Series(load_relevant_clients(storage)).implode()
        partials = {n: load_partials(storage, n, cutoff) for n in spec.partials}
        table, ranked = spec.compute(partials, cutoff)
        frame = table.filter(pl.col("client_id").is_in(relevant)).sort("client_id").collect()
        extra = (
            {}
            if ranked is None
            else {
                f"ranked_{k}_ids": dg.MetadataValue.json({"ids_by_rank": v})
                for k, v in ranked.items()
            }
        )
        context.add_output_metadata(
            {
                "dagster/row_count": frame.height,
                "dagster/column_schema": column_schema(
                    frame.schema, {n: f.description for n, f in FEATURES.items()}
                ),
                "cutoff": str(cutoff),
                "features": frame.width - 1,
                "summary": dg.MetadataValue.md(_summary(frame.select(frame.columns[:61]))),
                **extra,
            }
        )
        return frame

    return _fold


FOLD_ASSETS = {family: _fold_asset(family, spec) for family, spec in FOLDS.items()}
PARTIALS_LIST = list(PARTIAL_ASSETS.values())
FOLDS_LIST = list(FOLD_ASSETS.values())


# ---- the feature matrix --------------------------------------------------------------------------

MATRIX_CHECKS = {
    "no_nan_or_infinity": "Every value is finite.",
    "exact_client_set": "One row per relevant client, each exactly once.",
    "constant_columns": "Columns with one value for every client (reported as a warning).",
}


@dg.asset(
    ins={a.key.to_user_string(): dg.AssetIn() for a in FOLDS_LIST}
    | {"challenge_split": dg.AssetIn()},
    deps=[RAW_KEYS["relevant_clients"]],
    group_name="features",
    kinds={"polars", "duckdb"},
    code_version="1",
    io_manager_key="warehouse_io",
    pool=WAREHOUSE_POOL,
    check_specs=[
        dg.AssetCheckSpec(n, asset="feature_matrix", description=d)
        for n, d in MATRIX_CHECKS.items()
    ],
    description="Every family joined for the relevant clients (one row each; clients without "
    "events get a defined row), missing values filled by each feature's rule (0 for counts, the "
    "median for rates, the history's length for day-distances), signed-log and robust scaled, "
    "clipped to ±5, float32. The scaler is saved beside it to encode new clients.",
)
def feature_matrix(
    context: dg.AssetExecutionContext,
    storage: UbpStorage,
    feature_settings: FeatureSettings,
    challenge_split: pl.DataFrame,
    **family_tables: pl.DataFrame,
):
    cutoff = feature_cutoff(feature_settings, challenge_split)
    relevant = load_relevant_clients(storage)
    span = (cutoff - FIRST_DAY).days
    built = build_feature_matrix(relevant, list(family_tables.values()), FEATURES, span)
    matrix = built.matrix
    out_dir = storage.root / "warehouse" / "feature_matrix"
    out_dir.mkdir(parents=True, exist_ok=True)
    built.scaler.write_parquet(out_dir / "scaler.parquet")
    values = matrix.drop("client_id").to_numpy()
    finite = bool(np.isfinite(values).all())
    ids = matrix["client_id"]
    exact = ids.is_unique().all() and set(ids.to_list()) == set(relevant.tolist())
    by_family = built.scaler.group_by("family", maintain_order=True).agg(pl.len().alias("features"))
    plot = png_markdown(
        _distribution_plot(matrix, built.scaler), storage.reports_dir / "feature_matrix.png"
    )
    yield dg.Output(
        matrix,
        metadata={
            "dagster/row_count": matrix.height,
            "dagster/column_schema": column_schema(
                matrix.schema,
                {n: f"{FEATURES[n].family}: {FEATURES[n].description}" for n in matrix.columns[1:]},
            ),
            "cutoff": str(cutoff),
            "features": matrix.width - 1,
            "features_by_family": dg.MetadataValue.md(markdown_table(by_family)),
            "scaler_path": dg.MetadataValue.path(str(out_dir / "scaler.parquet")),
            "distributions": dg.MetadataValue.md(plot),
            "constant_columns": len(built.constant),
        },
    )
    yield dg.AssetCheckResult(
        check_name="no_nan_or_infinity",
        passed=finite,
        metadata={"non_finite_values": int((~np.isfinite(values)).sum())},
    )
    yield dg.AssetCheckResult(
        check_name="exact_client_set",
        passed=bool(exact),
        metadata={"rows": matrix.height, "relevant_clients": len(relevant)},
    )
    yield dg.AssetCheckResult(
        check_name="constant_columns",
        passed=not built.constant,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "count": len(built.constant),
            "columns": ", ".join(built.constant[:50]) or "none",
        },
    )


def _distribution_plot(matrix: pl.DataFrame, scaler: pl.DataFrame):
    """A histogram of the scaled values of the first two features of every family."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    chosen = scaler.group_by("family", maintain_order=True).head(2)
    n = chosen.height
    cols = 4
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.4 * rows), squeeze=False)
    for ax, name in zip(axes.flat, chosen["feature"], strict=False):
        ax.hist(matrix[name].to_numpy(), bins=40, color="#4C72B0")
        ax.set_title(name, fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.suptitle("Scaled feature distributions (two per family)", fontsize=10)
    fig.tight_layout()
    return fig
