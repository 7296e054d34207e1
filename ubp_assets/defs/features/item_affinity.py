"""Which items each client leans to: the page urls mapped to products, then per-client affinity
to the most bought categories, SKUs and price buckets."""

import dagster as dg
import polars as pl
from dagster_duckdb import DuckDBResource

from ubp_assets.automation import FOLLOWS_INPUTS
from ubp_assets.events.raw_reader import read_products
from ubp_assets.events.table import scan_events
from ubp_assets.inputs import cutoff_time, load_relevant_clients, read_split
from ubp_assets.keys import RAW_KEYS
from ubp_assets.markdown import markdown_table
from ubp_assets.metadata import column_schema
from ubp_assets.progress import Progress
from ubp_assets.resources import HEAVY_POOL, FeatureSettings, ScaleSettings, UbpStorage
from ubp_assets.shards import client_shards, every_client
from ubp_assets.warehouse import read_table, write_table

AFFINITY_CODE_VERSION = "2"


@dg.asset(
    deps=[
        "challenge_split",
        "events",
        RAW_KEYS["product_properties"],
        RAW_KEYS["relevant_clients"],  # where the client shards are cut, not what they sum to
    ],
    group_name="affinity",
    kinds={"polars", "parquet"},
    code_version=AFFINITY_CODE_VERSION,
    pool=HEAVY_POOL,
    automation_condition=FOLLOWS_INPUTS,
    description="Which product each page url shows, learned from the input alone (the release "
    "has no such table): every cart add votes for the page its client visited last, at most "
    "two minutes before, and a url takes the product most of its votes name. Everyone's events "
    "are read a client shard at a time (the relevant clients' shards widened to every client).",
)
def product_urls(
    context: dg.AssetExecutionContext,
    storage: UbpStorage,
    warehouse: DuckDBResource,
    feature_settings: FeatureSettings,
    scale_settings: ScaleSettings,
) -> dg.MaterializeResult:
    from ubp_assets.features.affinity import url_products, url_votes

    cutoff = cutoff_time(feature_settings, read_split(warehouse))
    scanned = scan_events(storage.events_dir)
    shards = client_shards(load_relevant_clients(storage), scale_settings.clients_per_shard)
    progress = Progress("votes of shard", len(shards), context.log.info)
    votes = []
    for shard, rows in zip(shards, every_client(shards), strict=True):
        votes.append(url_votes(scanned.filter(rows), cutoff))
        progress.advance(int(votes[-1]["votes"].sum()), shard.label)
    urls = url_products(pl.concat(votes), read_products(storage.raw_path).rows.lazy())
    visits = scanned.filter(
        pl.col("timestamp") < cutoff, pl.col("event_type") == "page_visit"
    ).select(
        pl.len().alias("visits"),
        pl.col("url").is_in(urls["url"].implode()).sum().alias("mapped"),
    )
    counts = visits.collect(engine="streaming").row(0, named=True)
    write_table(warehouse, "product_urls", urls)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": urls.height,
            "dagster/column_schema": column_schema(urls.schema),
            "cutoff": str(cutoff.date()),
            "page_visits_mapped": round(counts["mapped"] / max(counts["visits"], 1), 4),
            "median_votes": float(urls["votes"].median() or 0),
            "client_shards": len(shards),
            "preview": dg.MetadataValue.md(markdown_table(urls)),
        }
    )


@dg.asset(
    deps=["challenge_split", "product_urls", "events", RAW_KEYS["relevant_clients"]],
    group_name="affinity",
    kinds={"polars", "parquet"},
    code_version=AFFINITY_CODE_VERSION,
    pool=HEAVY_POOL,
    automation_condition=FOLLOWS_INPUTS,
    description="Per relevant client: log1p of recency-decayed page visits (60- and 7-day "
    "half-lives) and cart adds with buys (60 days) of the 120 categories most added to carts and "
    "bought in the input, the 300 SKUs most added and bought in its last 28 days, and every "
    "price bucket; page visits count through "
    "`product_urls`. Read from the event table as of the feature cutoff, a client shard at a "
    "time.",
)
def item_affinity(
    context: dg.AssetExecutionContext,
    storage: UbpStorage,
    warehouse: DuckDBResource,
    feature_settings: FeatureSettings,
    scale_settings: ScaleSettings,
) -> dg.MaterializeResult:
    from ubp_assets.features.affinity import column_names, ranked_items
    from ubp_assets.features.affinity import item_affinity as affinity

    cutoff = cutoff_time(feature_settings, read_split(warehouse))
    scanned = scan_events(storage.events_dir)
    relevant = load_relevant_clients(storage)
    ranked = ranked_items(scanned, cutoff)
    urls = read_table(warehouse, "product_urls")
    shards = client_shards(relevant, scale_settings.clients_per_shard)
    progress = Progress("shard", len(shards), context.log.info)
    with_signal, preview = 0, None

    def in_shards():
        nonlocal with_signal, preview
        for shard in shards:
            ids = shard.members(relevant)
            values = affinity(scanned.filter(shard.rows()), urls, ids, cutoff, ranked)
            with_signal += int((values.sum(axis=1) > 0).sum())
            frame = pl.DataFrame({"client_id": ids}).hstack(
                pl.DataFrame(values, schema=column_names())
            )
            preview = frame.select(frame.columns[:8]).head(10) if preview is None else preview
            yield frame
            progress.advance(len(ids), shard.label)

    rows = write_table(warehouse, "item_affinity", in_shards())
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": rows,
            "cutoff": str(cutoff.date()),
            "features": len(column_names()),
            "clients_with_signal": with_signal,
            "client_shards": len(shards),
            "preview": dg.MetadataValue.md(markdown_table(preview)),
            **{
                f"ranked_{k}_ids": dg.MetadataValue.json({"ids_by_rank": v})
                for k, v in ranked.items()
                if k != "price"
            },
        }
    )
