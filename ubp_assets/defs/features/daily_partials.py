"""Every family's day-partitioned partial: a new day costs one partial per family."""

import dagster as dg
import polars as pl

from ubp_assets.events.raw_reader import read_products
from ubp_assets.events.table import scan_events
from ubp_assets.features.pipeline import PARTIALS, Partial
from ubp_assets.inputs import load_relevant_clients
from ubp_assets.keys import RAW_KEYS
from ubp_assets.markdown import markdown_table
from ubp_assets.metadata import column_schema
from ubp_assets.partitions import event_days, window_days
from ubp_assets.progress import Progress
from ubp_assets.resources import ScaleSettings, UbpStorage
from ubp_assets.storage import day_chunks, day_range, missing_days, write_day_partitions


def _partial_spec(name: str, spec: Partial) -> dg.AssetSpec:
    deps = ["events"]
    if spec.relevant_only:
        deps.append(RAW_KEYS["relevant_clients"])
    if spec.needs_names:
        deps.append(RAW_KEYS["product_properties"])
    return dg.AssetSpec(
        name,
        deps=deps,
        group_name=spec.group,
        kinds={"polars", "parquet"},
        code_version=spec.code_version,
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
def daily_partials(
    context: dg.AssetExecutionContext, storage: UbpStorage, scale_settings: ScaleSettings
):
    first, last = window_days(context)
    days = day_range(first, last)
    absent = missing_days(storage.events_dir, days)
    if absent:
        raise dg.Failure(
            description=f"events lacks {len(absent)} of these days ({absent[0]}, ...): "
            "materialize those events partitions first"
        )
    selected = {n: s for n, s in PARTIALS.items() if dg.AssetKey(n) in context.selected_asset_keys}
    relevant = None
    if any(s.relevant_only for s in selected.values()):
        relevant = pl.Series(load_relevant_clients(storage)).implode()
    # As many days a chunk as hold about chunk_events events (the day files' footers count them).
    day_rows = scan_events(storage.events_dir, days).select(pl.len()).collect().item()
    chunk_days = scale_settings.chunk_days(day_rows / len(days))
    chunks = day_chunks(days, chunk_days)
    names = pl.LazyFrame()
    if any(s.needs_names for s in selected.values()):
        # The names of the run's products, parsed once: a new day needs a few thousand of them.
        skus = scan_events(storage.events_dir, days).select(pl.col("sku").drop_nulls().unique())
        skus = skus.collect(engine="streaming").to_series()
        names = read_products(storage.raw_path, skus).rows.select("sku", "name").lazy()
    progress = Progress("chunk", len(chunks), context.log.info)
    rows = dict.fromkeys(selected, 0)
    previews: dict[str, pl.DataFrame] = {}
    for chunk in chunks:
        # A partial is a day's aggregate, so a chunk of days computes exactly its days' rows.
        chunk_rows = 0
        day_events = scan_events(storage.events_dir, chunk)
        relevant_events = day_events
        if relevant is not None:
            relevant_events = day_events.filter(pl.col("client_id").is_in(relevant))
        for name, spec in selected.items():
            frame = spec.compute(relevant_events if spec.relevant_only else day_events, names)
            frame = frame.collect()
            write_day_partitions(frame, storage.partials_dir / name, chunk)
            rows[name] += frame.height
            chunk_rows += frame.height
            previews.setdefault(name, frame.head(10))
        progress.advance(chunk_rows, f"{chunk[0]}..{chunk[-1]}")
    for name in selected:
        yield dg.MaterializeResult(
            asset_key=name,
            metadata={
                "dagster/row_count": rows[name],
                "dagster/column_schema": column_schema(previews[name].schema),
                "days": f"{first}..{last}",
                "chunk_days": chunk_days,
                "preview": dg.MetadataValue.md(markdown_table(previews[name])),
            },
        )
