"""What the release's files must hold, and the typed event table built from them."""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

EVENT_TYPES = ("product_buy", "add_to_cart", "remove_from_cart", "page_visit", "search_query")
EventType = pl.Enum(list(EVENT_TYPES))
VECTOR_DIM = 16
Vector = pl.Array(pl.UInt8, VECTOR_DIM)


@dataclass(frozen=True)
class RawFile:
    """One parquet file of the release: its columns and the kind each must be."""

    name: str
    columns: dict[str, str]  # column -> kind: "id", "timestamp", "vector", "int"

    @property
    def filename(self) -> str:
        return f"{self.name}.parquet"


RAW_EVENT_FILES: dict[str, RawFile] = {
    "product_buy": RawFile(
        "product_buy", {"client_id": "id", "timestamp": "timestamp", "sku": "id"}
    ),
    "add_to_cart": RawFile(
        "add_to_cart", {"client_id": "id", "timestamp": "timestamp", "sku": "id"}
    ),
    "remove_from_cart": RawFile(
        "remove_from_cart", {"client_id": "id", "timestamp": "timestamp", "sku": "id"}
    ),
    "page_visit": RawFile("page_visit", {"client_id": "id", "timestamp": "timestamp", "url": "id"}),
    "search_query": RawFile(
        "search_query", {"client_id": "id", "timestamp": "timestamp", "query": "vector"}
    ),
}
PRODUCT_PROPERTIES = RawFile(
    "product_properties", {"sku": "id", "category": "id", "price": "int", "name": "vector"}
)
RAW_FILES: dict[str, RawFile] = {**RAW_EVENT_FILES, PRODUCT_PROPERTIES.name: PRODUCT_PROPERTIES}
RELEVANT_CLIENTS = "input/relevant_clients.npy"

EVENTS_SCHEMA = pl.Schema(
    {
        "client_id": pl.Int64,
        "timestamp": pl.Datetime("us"),
        "event_type": EventType,
        "sku": pl.Int64,
        "category": pl.Int64,
        "price": pl.Int16,
        "url": pl.Int64,
        "query": Vector,
    }
)

PRODUCTS_SCHEMA = pl.Schema(
    {"sku": pl.Int64, "category": pl.Int64, "price": pl.Int16, "name": Vector}
)

COLUMN_DESCRIPTIONS = {
    "client_id": "opaque client id",
    "timestamp": "event time (naive, as released)",
    "event_type": "one of " + ", ".join(EVENT_TYPES),
    "sku": "product id (buy, cart and remove events)",
    "category": "product category from product_properties (null if the SKU is unknown)",
    "price": "price bucket 0..99 from product_properties (null if the SKU is unknown)",
    "url": "page id (page_visit events)",
    "query": "search text embedding, 16 quantized integers (search_query events)",
}
