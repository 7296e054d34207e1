"""Every family's user-level table, folded from its partials over the history before the cutoff.

A fold's data version is a digest of its code version (Dagster's, from the asset spec), the
cutoff and the files of every partial day it reads: where the latest materialization has that
data version and the table is in the warehouse, the table stands and the fold costs only a look
at the files. The UI's provenance and the "stands" decision are the same record.
"""

import datetime as dt

import dagster as dg
import polars as pl
from dagster_duckdb import DuckDBResource

from ubp_assets.automation import FOLLOWS_INPUTS
from ubp_assets.features.pipeline import FEATURES, FOLDS, Fold, fold_in_shards
from ubp_assets.inputs import (
    digest,
    feature_cutoff,
    latest_recorded,
    load_relevant_clients,
    read_split,
)
from ubp_assets.keys import FOLD_KEYS, RAW_KEYS
from ubp_assets.markdown import markdown_table
from ubp_assets.metadata import column_schema
from ubp_assets.partitions import FIRST_DAY, LAST_DAY
from ubp_assets.progress import Progress
from ubp_assets.raw.files import file_state
from ubp_assets.resources import HEAVY_POOL, FeatureSettings, ScaleSettings, UbpStorage
from ubp_assets.shards import client_shards
from ubp_assets.storage import DATA_FILE, day_range, missing_days, partition_dir, scan_days
from ubp_assets.warehouse import existing_tables, read_table, write_table

SUMMARY_COLUMNS = 61  # client_id and the first 60 features: what a metadata table can show


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


def partial_fingerprint(storage: UbpStorage, name: str, days: list[dt.date]) -> str:
    """Size and modification time of every day of a partial: equal fingerprints, equal days."""
    root = storage.partials_dir / name
    return digest(
        *(
            file_state(partition_dir(root, day) / DATA_FILE, count_rows=False).fingerprint
            for day in days
        )
    )


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


def _fold_spec(family: str, spec: Fold) -> dg.AssetSpec:
    return dg.AssetSpec(
        FOLD_KEYS[family],
        deps=[*spec.partials, "challenge_split", RAW_KEYS["relevant_clients"]],
        group_name=family,
        kinds={"polars", "parquet"},
        code_version=spec.code_version,
        automation_condition=FOLLOWS_INPUTS,
        description=f"{spec.description} A warehouse table (parquet), folded a client "
        "shard at a time (UBP_CLIENTS_PER_SHARD). When none of the partial days it reads has "
        "changed since it was built, the stored table stands and the fold costs only a look at "
        "the files.",
    )


# One step for the six families, like the partials: on a new day most folds stand (their cutoff
# is before the day), and a step each would cost more than looking at their files.
@dg.multi_asset(
    name="family_features",
    specs=[_fold_spec(family, spec) for family, spec in FOLDS.items()],
    pool=HEAVY_POOL,
    can_subset=True,
)
def family_features(
    context: dg.AssetExecutionContext,
    storage: UbpStorage,
    warehouse: DuckDBResource,
    feature_settings: FeatureSettings,
    scale_settings: ScaleSettings,
):
    cutoff = feature_cutoff(feature_settings, read_split(warehouse))
    days = history_days(cutoff)
    selected = {f: s for f, s in FOLDS.items() if FOLD_KEYS[f] in context.selected_asset_keys}
    needed = sorted({name for spec in selected.values() for name in spec.partials})
    for name in needed:
        require_days(storage, name, days)
    by_partial = {name: partial_fingerprint(storage, name, days) for name in needed}
    relevant_state = file_state(storage.relevant_clients_path).fingerprint
    recorded = latest_recorded(context.instance, [FOLD_KEYS[f] for f in selected])
    stored = existing_tables(warehouse, [FOLD_KEYS[f].to_user_string() for f in selected])
    code_versions = context.assets_def.code_versions_by_key
    shards = None
    standing = []
    for family, spec in selected.items():
        key = FOLD_KEYS[family]
        table_name = key.to_user_string()
        version = digest(
            *(by_partial[n] for n in spec.partials), relevant_state, cutoff, code_versions[key]
        )
        if recorded[key].data_version == version and table_name in stored:
            standing.append(table_name)
            yield dg.MaterializeResult(
                asset_key=key,
                data_version=dg.DataVersion(version),
                metadata={"cutoff": str(cutoff), "recomputed": False},
            )
            continue
        if shards is None:
            relevant = load_relevant_clients(storage)
            shards = client_shards(relevant, scale_settings.clients_per_shard)
            relevant = pl.Series(relevant).implode()
        partials = {n: scan_days(storage.partials_dir / n, days) for n in spec.partials}
        progress = Progress(f"{family} shard", len(shards), context.log.info)
        ranked: dict = {}
        parts = fold_in_shards(
            spec,
            partials,
            cutoff=cutoff,
            shards=shards,
            relevant=relevant,
            progress=progress.advance,
            ranked=ranked,
        )
        rows = write_table(warehouse, table_name, parts)
        schema = read_table(warehouse, table_name, limit=0).schema
        summarised = read_table(warehouse, table_name, columns=schema.names()[:SUMMARY_COLUMNS])
        extra = {
            f"ranked_{k}_ids": dg.MetadataValue.json({"ids_by_rank": v}) for k, v in ranked.items()
        }
        yield dg.MaterializeResult(
            asset_key=key,
            data_version=dg.DataVersion(version),
            metadata={
                "recomputed": True,
                "dagster/row_count": rows,
                "dagster/column_schema": column_schema(
                    schema, {n: f.description for n, f in FEATURES.items()}
                ),
                "cutoff": str(cutoff),
                "features": len(schema) - 1,
                "client_shards": len(shards),
                "summary": dg.MetadataValue.md(_summary(summarised)),
                **extra,
            },
        )

    if standing:
        context.log.info(f"no input day changed, the stored tables stand: {', '.join(standing)}")
