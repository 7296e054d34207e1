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
from ubp_assets.resources import WAREHOUSE_POOL, FeatureSettings, UbpStorage
from ubp_assets.warehouse import read_table, write_table

AFFINITY_CODE_VERSION = "2"


@dg.asset(
    deps=["challenge_split", "events", RAW_KEYS["product_properties"]],
    group_name="affinity",
    kinds={"polars", "duckdb"},
    code_version=AFFINITY_CODE_VERSION,
    pool=WAREHOUSE_POOL,
    automation_condition=FOLLOWS_INPUTS,
    description="Which product each page url shows, learned from the input alone (the release "
    "has no such table): every cart add votes for the page its client visited last, at most "
    "two minutes before, and a url takes the product most of its votes name.",
)
def product_urls(
    storage: UbpStorage, warehouse: DuckDBResource, feature_settings: FeatureSettings
) -> dg.MaterializeResult:
    from ubp_assets.features.affinity import product_urls as learn_product_urls

    cutoff = cutoff_time(feature_settings, read_split(warehouse))
    scanned = scan_events(storage.events_dir)
    urls = learn_product_urls(scanned, read_products(storage.raw_path).rows.lazy(), cutoff)
    visits = scanned.filter(
        pl.col("timestamp") < cutoff, pl.col("event_type") == "page_visit"
    ).select(
        pl.len().alias("visits"),
        pl.col("url").is_in(urls["url"].implode()).sum().alias("mapped"),
    )
    counts = visits.collect().row(0, named=True)
    write_table(warehouse, "product_urls", urls)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": urls.height,
            "dagster/column_schema": column_schema(urls.schema),
            "cutoff": str(cutoff.date()),
            "page_visits_mapped": round(counts["mapped"] / max(counts["visits"], 1), 4),
            "median_votes": float(urls["votes"].median() or 0),
            "preview": dg.MetadataValue.md(markdown_table(urls)),
        }
    )


@dg.asset(
    deps=["challenge_split", "product_urls", "events", RAW_KEYS["relevant_clients"]],
    group_name="affinity",
    kinds={"polars", "duckdb"},
    code_version=AFFINITY_CODE_VERSION,
    pool=WAREHOUSE_POOL,
    automation_condition=FOLLOWS_INPUTS,
    description="Per relevant client: log1p of recency-decayed page visits (60- and 7-day "
    "half-lives) and cart adds with buys (60 days) of the 120 categories most added to carts and "
    "bought in the input, the 300 SKUs most added and bought in its last 28 days, and every "
    "price bucket; page visits count through "
    "`product_urls`. Read from the event table as of the feature cutoff.",
)
def item_affinity(
    storage: UbpStorage, warehouse: DuckDBResource, feature_settings: FeatureSettings
) -> dg.MaterializeResult:
    from ubp_assets.features.affinity import column_names, ranked_items
    from ubp_assets.features.affinity import item_affinity as affinity

    cutoff = cutoff_time(feature_settings, read_split(warehouse))
    scanned = scan_events(storage.events_dir)
    relevant = load_relevant_clients(storage)
    ranked = ranked_items(scanned, cutoff)
    values = affinity(scanned, read_table(warehouse, "product_urls"), relevant, cutoff, ranked)
    frame = pl.DataFrame({"client_id": relevant}).hstack(
        pl.DataFrame(values, schema=column_names())
    )
    write_table(warehouse, "item_affinity", frame)
    return dg.MaterializeResult(
        metadata={
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
