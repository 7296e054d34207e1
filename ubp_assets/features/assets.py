"""Feature families as assets: a day-partitioned partial and a user-level fold for each family,
then the feature matrix. A new day costs one partial per family plus the folds."""

import dataclasses
import datetime as dt
import hashlib

import dagster as dg
import numpy as np
import polars as pl
from dagster_duckdb import DuckDBResource

from ubp_assets.events.assets import events
from ubp_assets.events.raw_reader import read_products
from ubp_assets.events.table import scan_events
from ubp_assets.features.matrix import StoredMatrixChecks, build_feature_matrix, check_stored_matrix
from ubp_assets.features.pipeline import FEATURES, FOLDS, PARTIALS, Fold, Partial
from ubp_assets.metadata import column_schema, markdown_table, png_markdown
from ubp_assets.partitions import FIRST_DAY, LAST_DAY, event_days, window_days
from ubp_assets.raw.assets import RAW_KEYS
from ubp_assets.raw.files import file_state
from ubp_assets.resources import WAREHOUSE_POOL, FeatureSettings, UbpStorage
from ubp_assets.storage import (
    DATA_FILE,
    damaged_days,
    day_range,
    missing_days,
    partition_dir,
    scan_days,
    write_day_partitions,
)
from ubp_assets.warehouse import existing_tables, read_table, write_table

PARTIAL_CODE_VERSION = "1"
FOLD_CODE_VERSION = "1"


def load_relevant_clients(storage: UbpStorage) -> np.ndarray:
    path = storage.relevant_clients_path
    if not path.is_file():
        raise dg.Failure(description=f"input/relevant_clients.npy: file not found at {path}")
    return np.load(path).astype(np.int64)


# ---- daily partials ------------------------------------------------------------------------------


def _partial_spec(name: str, spec: Partial) -> dg.AssetSpec:
    deps = [events.key]
    if spec.relevant_only:
        deps.append(RAW_KEYS["relevant_clients"])
    if spec.needs_names:
        deps.append(RAW_KEYS["product_properties"])
    return dg.AssetSpec(
        name,
        deps=deps,
        group_name=spec.group,
        kinds={"polars", "parquet"},
        code_version=PARTIAL_CODE_VERSION,
        description=spec.description,
    )


# One step for the six families: a new day's partials are small, and each step of its own cost
# more in Dagster's bookkeeping than in work. Each remains an asset of its family's group that can
# be materialized alone.
@dg.multi_asset(
    name="daily_partials",
    specs=[_partial_spec(name, spec) for name, spec in PARTIALS.items()],
    partitions_def=event_days,
    backfill_policy=dg.BackfillPolicy.single_run(),
    can_subset=True,
)
def daily_partials(context: dg.AssetExecutionContext, storage: UbpStorage):
    first, last = window_days(context)
    days = day_range(first, last)
    absent = missing_days(storage.events_dir, days)
    if absent:
        raise dg.Failure(
            description=f"events lacks {len(absent)} of these days ({absent[0]}, ...): "
            "materialize those events partitions first"
        )
    selected = {n: s for n, s in PARTIALS.items() if dg.AssetKey(n) in context.selected_asset_keys}
    day_events = scan_events(storage.events_dir, days)
    relevant_events = day_events
    if any(s.relevant_only for s in selected.values()):
        relevant = pl.Series(load_relevant_clients(storage))
        relevant_events = day_events.filter(pl.col("client_id").is_in(relevant.implode()))
    names = pl.LazyFrame()
    if any(s.needs_names for s in selected.values()):
        skus = day_events.select(pl.col("sku").drop_nulls().unique()).collect().to_series()
        names = read_products(storage.raw_path, skus).rows.select("sku", "name").lazy()
    for name, spec in selected.items():
        frame = spec.compute(relevant_events if spec.relevant_only else day_events, names)
        frame = frame.collect()
        write_day_partitions(frame, storage.partials_dir / name, days)
        yield dg.MaterializeResult(
            asset_key=name,
            metadata={
                "dagster/row_count": frame.height,
                "dagster/column_schema": column_schema(frame.schema),
                "days": f"{first}..{last}",
                "preview": dg.MetadataValue.md(markdown_table(frame)),
            },
        )


DAY_FILE_ASSETS = ["events", *PARTIALS]


@dg.multi_asset_check(
    specs=[
        dg.AssetCheckSpec(
            "day_files_intact",
            asset=name,
            description="Every stored day file is whole parquet (not truncated or cut); a "
            "damaged one is named with the command that rewrites its day.",
        )
        for name in DAY_FILE_ASSETS
    ],
    can_subset=True,
)
def day_files_intact(context: dg.AssetCheckExecutionContext, storage: UbpStorage):
    roots = {"events": storage.events_dir, **{n: storage.partials_dir / n for n in PARTIALS}}
    for key in context.selected_asset_check_keys:
        name = key.asset_key.to_user_string()
        damaged = damaged_days(roots[name])
        listing = "\n".join(
            f"- `{partition_dir(roots[name], day) / DATA_FILE}` (day {day}): {why}"
            for day, why in sorted(damaged.items())
        )
        yield dg.AssetCheckResult(
            asset_key=name,
            check_name="day_files_intact",
            passed=not damaged,
            metadata={
                "damaged_days": len(damaged),
                "damaged_files": dg.MetadataValue.md(listing or "none"),
                **(
                    {"repair": repair_command(storage, context.instance, sorted(damaged))}
                    if damaged
                    else {}
                ),
            },
        )


def repair_command(storage: UbpStorage, instance: dg.DagsterInstance, days: list[dt.date]) -> str:
    """The command that rewrites the given days (first to last) of events and every partial."""
    env = f"DAGSTER_HOME={instance.root_directory} UBP_DATA_DIR={storage.root}"
    if storage.raw_dir:
        env += f" UBP_RAW_DIR={storage.raw_path}"
    which = f"--partition {days[0]}"
    if len(days) > 1:
        which = f"--partition-range {days[0]}...{days[-1]}"
    return (
        f"{env} dagster asset materialize -m ubp_assets.definitions "
        f"--select {','.join(DAY_FILE_ASSETS)} {which}"
    )


# ---- folds -------------------------------------------------------------------------------------


def feature_cutoff(settings: FeatureSettings, challenge_split: pl.DataFrame) -> dt.date:
    train_target_start = challenge_split["train_target_start"][0].date()
    return settings.cutoff_date(train_target_start, LAST_DAY)


def history_days(cutoff: dt.date) -> list[dt.date]:
    """The days a fold sees: from the first partition to the day before the cutoff.

    This is where the no-leakage rule lives: a fold never reads a day at or after its cutoff.
    """
    return day_range(FIRST_DAY, min(cutoff - dt.timedelta(days=1), LAST_DAY))


def require_days(storage: UbpStorage, name: str, days: list[dt.date]) -> None:
    """Every given day of a partial must be stored: a fold over a gap would be silently wrong."""
    absent = missing_days(storage.partials_dir / name, days)
    if absent:
        raise dg.Failure(
            description=f"{name} lacks {len(absent)} day(s) before the cutoff "
            f"{days[-1] + dt.timedelta(days=1)} ({', '.join(map(str, absent[:5]))}"
            f"{', ...' if len(absent) > 5 else ''}): backfill those partitions first"
        )


def _fingerprint(*parts: object) -> str:
    return hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:16]


def partial_fingerprint(storage: UbpStorage, name: str, days: list[dt.date]) -> str:
    """Size and modification time of every day of a partial: equal fingerprints, equal days."""
    root = storage.partials_dir / name
    return _fingerprint(
        *(
            file_state(partition_dir(root, day) / DATA_FILE, count_rows=False).fingerprint
            for day in days
        )
    )


def _last_metadata(
    context: dg.AssetExecutionContext, keys: list[dg.AssetKey]
) -> dict[dg.AssetKey, dict[str, object]]:
    """The metadata values of each asset's latest materialization (empty where there is none),
    in one query of the instance."""
    events = context.instance.get_latest_materialization_events(keys)
    metadata: dict[dg.AssetKey, dict[str, object]] = {}
    for key in keys:
        event = events.get(key)
        found = event.asset_materialization if event is not None else None
        metadata[key] = {n: v.value for n, v in found.metadata.items()} if found else {}
    return metadata


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


FINGERPRINT = "input_fingerprint"
FOLD_KEYS = {family: dg.AssetKey(f"{family}_features") for family in FOLDS}


def _fold_spec(family: str, spec: Fold) -> dg.AssetSpec:
    return dg.AssetSpec(
        FOLD_KEYS[family],
        deps=[*spec.partials, "challenge_split"],
        group_name=family,
        kinds={"polars", "duckdb"},
        code_version=FOLD_CODE_VERSION,
        description=f"{spec.description} A table in the DuckDB warehouse. When none of the "
        "partial days it reads has changed since it was built, the stored table stands and the "
        "fold costs only a look at the files.",
    )


# One step for the six families, like the partials: on a new day most folds stand (their cutoff
# is before the day), and a step each would cost more than looking at their files.
@dg.multi_asset(
    name="family_features",
    specs=[_fold_spec(family, spec) for family, spec in FOLDS.items()],
    ins={"challenge_split": dg.AssetIn()},
    pool=WAREHOUSE_POOL,
    can_subset=True,
)
def family_features(
    context: dg.AssetExecutionContext,
    storage: UbpStorage,
    warehouse: DuckDBResource,
    feature_settings: FeatureSettings,
    challenge_split: pl.DataFrame,
):
    cutoff = feature_cutoff(feature_settings, challenge_split)
    days = history_days(cutoff)
    selected = {f: s for f, s in FOLDS.items() if FOLD_KEYS[f] in context.selected_asset_keys}
    needed = sorted({name for spec in selected.values() for name in spec.partials})
    for name in needed:
        require_days(storage, name, days)
    by_partial = {name: partial_fingerprint(storage, name, days) for name in needed}
    relevant_state = file_state(storage.relevant_clients_path).fingerprint
    last = _last_metadata(context, [FOLD_KEYS[f] for f in selected])
    stored = existing_tables(warehouse, [FOLD_KEYS[f].to_user_string() for f in selected])
    relevant = None
    standing = []
    for family, spec in selected.items():
        key = FOLD_KEYS[family]
        table_name = key.to_user_string()
        fingerprint = _fingerprint(
            *(by_partial[n] for n in spec.partials), relevant_state, cutoff, FOLD_CODE_VERSION
        )
        if last[key].get(FINGERPRINT) == fingerprint and table_name in stored:
            standing.append(table_name)
            yield dg.MaterializeResult(
                asset_key=key,
                metadata={FINGERPRINT: fingerprint, "cutoff": str(cutoff), "recomputed": False},
            )
            continue
        if relevant is None:
            relevant = pl.Series(load_relevant_clients(storage)).implode()
        partials = {n: scan_days(storage.partials_dir / n, days) for n in spec.partials}
        table, ranked = spec.compute(partials, cutoff)
        frame = table.filter(pl.col("client_id").is_in(relevant)).sort("client_id").collect()
        write_table(warehouse, table_name, frame)
        extra = {
            f"ranked_{k}_ids": dg.MetadataValue.json({"ids_by_rank": v})
            for k, v in (ranked or {}).items()
        }
        yield dg.MaterializeResult(
            asset_key=key,
            metadata={
                FINGERPRINT: fingerprint,
                "recomputed": True,
                "dagster/row_count": frame.height,
                "dagster/column_schema": column_schema(
                    frame.schema, {n: f.description for n, f in FEATURES.items()}
                ),
                "cutoff": str(cutoff),
                "features": frame.width - 1,
                "summary": dg.MetadataValue.md(_summary(frame.select(frame.columns[:61]))),
                **extra,
            },
        )

    if standing:
        context.log.info(f"no input day changed, the stored tables stand: {', '.join(standing)}")


# ---- the feature matrix --------------------------------------------------------------------------

MATRIX_CHECKS = {
    "no_nan_or_infinity": "Every value is finite.",
    "exact_client_set": "One row per relevant client, each exactly once.",
    "constant_columns": "Columns with one value for every client (reported as a warning).",
}
MATRIX_CODE_VERSION = "1"
MATRIX_TABLE = "feature_matrix"
STORED_CHECKS = "stored_checks"


@dg.asset(
    ins={"challenge_split": dg.AssetIn()},
    deps=[*FOLD_KEYS.values(), RAW_KEYS["relevant_clients"]],
    group_name="features",
    kinds={"polars", "duckdb"},
    code_version=MATRIX_CODE_VERSION,
    pool=WAREHOUSE_POOL,
    check_specs=[
        dg.AssetCheckSpec(n, asset="feature_matrix", description=d)
        for n, d in MATRIX_CHECKS.items()
    ],
    description="Every family joined for the relevant clients (one row each; clients without "
    "events get a defined row), missing values filled by each feature's rule (0 for counts, the "
    "median for rates, the history's length for day-distances), signed-log and robust scaled, "
    "clipped to ±5, float32. A table in the DuckDB warehouse; the scaler is saved beside it to "
    "encode new clients. Rebuilt only when a family table changed.",
)
def feature_matrix(
    context: dg.AssetExecutionContext,
    storage: UbpStorage,
    warehouse: DuckDBResource,
    feature_settings: FeatureSettings,
    challenge_split: pl.DataFrame,
):
    cutoff = feature_cutoff(feature_settings, challenge_split)
    metadata = _last_metadata(context, [*FOLD_KEYS.values(), context.asset_key])
    fingerprint = _fingerprint(
        *[metadata[key].get(FINGERPRINT) for key in FOLD_KEYS.values()],
        file_state(storage.relevant_clients_path).fingerprint,
        cutoff,
        MATRIX_CODE_VERSION,
    )
    last = metadata[context.asset_key]
    last_checks = last.get(STORED_CHECKS)
    if (
        last.get(FINGERPRINT) == fingerprint
        and last_checks is not None
        and existing_tables(warehouse, [MATRIX_TABLE])
    ):
        context.log.info("no family table changed; the stored feature matrix stands")
        # Nothing has written the table since the scan that followed its last write: report it.
        stored = StoredMatrixChecks(**last_checks)
        yield dg.MaterializeResult(
            metadata={
                FINGERPRINT: fingerprint,
                "cutoff": str(cutoff),
                "recomputed": False,
                STORED_CHECKS: dg.MetadataValue.json(dataclasses.asdict(stored)),
            }
        )
        yield from _check_results(stored, scanned_now=False)
        return

    relevant = load_relevant_clients(storage)
    span = (cutoff - FIRST_DAY).days
    tables = [read_table(warehouse, key.to_user_string()) for key in FOLD_KEYS.values()]
    built = build_feature_matrix(relevant, tables, FEATURES, span)
    matrix = built.matrix
    write_table(warehouse, MATRIX_TABLE, matrix)
    out_dir = storage.root / "warehouse" / "feature_matrix"
    out_dir.mkdir(parents=True, exist_ok=True)
    built.scaler.write_parquet(out_dir / "scaler.parquet")
    with warehouse.get_connection() as conn:
        stored = check_stored_matrix(conn, MATRIX_TABLE, relevant)
    by_family = built.scaler.group_by("family", maintain_order=True).agg(
        pl.len().alias("features"),
        pl.col("filled_share").mean().round(3).alias("mean_share_filled"),
        pl.col("feature").is_in(stored.constant).sum().alias("constant"),
    )
    plot = png_markdown(
        _distribution_plot(matrix, built.scaler), storage.reports_dir / "feature_matrix.png"
    )
    yield dg.MaterializeResult(
        metadata={
            FINGERPRINT: fingerprint,
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
            "scaler_path": dg.MetadataValue.path(str(out_dir / "scaler.parquet")),
            "distributions": dg.MetadataValue.md(plot),
            "constant_columns": len(stored.constant),
            STORED_CHECKS: dg.MetadataValue.json(dataclasses.asdict(stored)),
        }
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


# ---- item affinity -------------------------------------------------------------------------------

AFFINITY_CODE_VERSION = "2"
AFFINITY_TABLE = "item_affinity"


@dg.asset(
    ins={"challenge_split": dg.AssetIn()},
    deps=[events, RAW_KEYS["product_properties"]],
    group_name="affinity",
    kinds={"polars", "duckdb"},
    code_version=AFFINITY_CODE_VERSION,
    pool=WAREHOUSE_POOL,
    io_manager_key="warehouse_io",
    description="Which product each page url shows, learned from the input alone (the release "
    "has no such table): every cart add votes for the page its client visited last, at most "
    "two minutes before, and a url takes the product most of its votes name.",
)
def product_urls(
    context: dg.AssetExecutionContext,
    storage: UbpStorage,
    feature_settings: FeatureSettings,
    challenge_split: pl.DataFrame,
) -> pl.DataFrame:
    from ubp_assets.features.affinity import product_urls as learn_product_urls

    cutoff = dt.datetime.combine(feature_cutoff(feature_settings, challenge_split), dt.time())
    scanned = scan_events(storage.events_dir)
    urls = learn_product_urls(scanned, read_products(storage.raw_path).rows.lazy(), cutoff)
    visits = scanned.filter(
        pl.col("timestamp") < cutoff, pl.col("event_type") == "page_visit"
    ).select(
        pl.len().alias("visits"),
        pl.col("url").is_in(urls["url"].implode()).sum().alias("mapped"),
    )
    counts = visits.collect().row(0, named=True)
    context.add_output_metadata(
        {
            "dagster/row_count": urls.height,
            "dagster/column_schema": column_schema(urls.schema),
            "cutoff": str(cutoff.date()),
            "page_visits_mapped": round(counts["mapped"] / max(counts["visits"], 1), 4),
            "median_votes": float(urls["votes"].median() or 0),
            "preview": dg.MetadataValue.md(markdown_table(urls)),
        }
    )
    return urls


@dg.asset(
    ins={"challenge_split": dg.AssetIn(), "product_urls": dg.AssetIn()},
    deps=[events, RAW_KEYS["relevant_clients"]],
    group_name="affinity",
    kinds={"polars", "duckdb"},
    code_version=AFFINITY_CODE_VERSION,
    pool=WAREHOUSE_POOL,
    io_manager_key="warehouse_io",
    description="Per relevant client: log1p of recency-decayed page visits (60- and 7-day "
    "half-lives) and cart adds with buys (60 days) of the 120 categories most added to carts and "
    "bought in the input, the 300 SKUs most added and bought in its last 28 days, and every "
    "price bucket; page visits count through "
    "`product_urls`. Read from the event table as of the feature cutoff.",
)
def item_affinity(
    context: dg.AssetExecutionContext,
    storage: UbpStorage,
    feature_settings: FeatureSettings,
    challenge_split: pl.DataFrame,
    product_urls: pl.DataFrame,
) -> pl.DataFrame:
    from ubp_assets.features.affinity import column_names, ranked_items
    from ubp_assets.features.affinity import item_affinity as affinity

    cutoff = dt.datetime.combine(feature_cutoff(feature_settings, challenge_split), dt.time())
    scanned = scan_events(storage.events_dir)
    relevant = load_relevant_clients(storage)
    ranked = ranked_items(scanned, cutoff)
    values = affinity(scanned, product_urls, relevant, cutoff, ranked)
    frame = pl.DataFrame({"client_id": relevant}).hstack(
        pl.DataFrame(values, schema=column_names())
    )
    context.add_output_metadata(
        {
            "dagster/row_count": frame.height,
            "cutoff": str(cutoff.date()),
            "features": values.shape[1],
            "clients_with_signal": int((values.sum(axis=1) > 0).sum()),
            "preview": dg.MetadataValue.md(markdown_table(frame.select(frame.columns[:8]))),
            **{
                f"ranked_{k}_ids": dg.MetadataValue.json({"ids_by_rank": v})
                for k, v in ranked.items()
                if k != "price"
            },
        }
    )
    return frame
