"""Write the synthetic release to disk in exactly the challenge's file layout and encodings."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq

from ubp_assets.synthetic.generator import (
    EVENT_FILES,
    VECTOR_DIM,
    Catalog,
    build_catalog,
    epoch_origin,
    iter_chunks,
)
from ubp_assets.synthetic.scales import Scale

TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"
TRUTH_DIR = "synthetic_truth"
MANIFEST = "synthetic_manifest.json"
TRUTH_FILE = Path(TRUTH_DIR) / "client_traits.parquet"


def format_vectors(vectors: np.ndarray) -> pl.Series:
    """numpy's print form of each uint8 row, as the release stores query and name: '[ 11   2 255]'.

    numpy pads every element to the widest one in its array, so rows are grouped by that width.
    """
    vectors = np.asarray(vectors, dtype=np.uint8)
    width = np.where(vectors.max(axis=1) >= 100, 3, np.where(vectors.max(axis=1) >= 10, 2, 1))
    frame = pl.DataFrame(vectors, schema=[f"v{i}" for i in range(vectors.shape[1])]).with_columns(
        width=pl.Series(width)
    )
    out = pl.Series("text", [""] * len(vectors), dtype=pl.String)
    for w in (1, 2, 3):
        rows = width == w
        if rows.any():
            padded = [pl.col(f"v{i}").cast(pl.String).str.pad_start(w) for i in range(VECTOR_DIM)]
            text = frame.filter(pl.Series(rows)).select(
                pl.concat_str([pl.lit("["), pl.concat_str(padded, separator=" "), pl.lit("]")])
            )
            out = out.scatter(np.flatnonzero(rows), text.to_series())
    return out


def to_release_form(name: str, frame: pl.DataFrame, origin) -> pl.DataFrame:
    """Epoch seconds to 'YYYY-MM-DD HH:MM:SS' strings, vectors to numpy's print form."""
    out = frame.with_columns(
        (pl.lit(origin) + pl.duration(seconds=pl.col("timestamp")))
        .dt.strftime(TIMESTAMP_FORMAT)
        .alias("timestamp")
    ).sort("timestamp", "client_id")
    if name == "search_query":
        out = out.with_columns(format_vectors(out["query"].to_numpy()).alias("query"))
    return out


def products_frame(catalog: Catalog) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "sku": catalog.sku_id,
            "category": catalog.category_id[catalog.sku_category],
            "price": catalog.sku_price.astype(np.int64),
            "name": format_vectors(catalog.sku_name),
        }
    ).sort("sku")


@dataclass
class ReleaseSummary:
    scale: str
    seed: int
    out_dir: str
    first_day: str
    last_day: str
    rows: dict[str, int] = field(default_factory=dict)
    n_clients: int = 0
    n_relevant: int = 0
    n_skus: int = 0
    seconds: float = 0.0

    @property
    def n_events(self) -> int:
        return sum(v for k, v in self.rows.items() if k in EVENT_FILES)


def write_release(
    scale: Scale,
    seed: int,
    out_dir: str | Path,
    progress: Callable[[str], None] | None = None,
) -> ReleaseSummary:
    """Write the six parquet files, input/relevant_clients.npy and the latent truth side file.

    Files are written under temporary names and renamed at the end, so an interrupted run never
    leaves a half-written release that looks complete.
    """
    started = time.perf_counter()
    out = Path(out_dir)
    (out / "input").mkdir(parents=True, exist_ok=True)
    (out / TRUTH_DIR).mkdir(parents=True, exist_ok=True)
    catalog = build_catalog(scale, seed)
    origin = epoch_origin(scale)
    summary = ReleaseSummary(
        scale=scale.name,
        seed=seed,
        out_dir=str(out),
        first_day=str(scale.first_day),
        last_day=str(scale.last_day),
        n_clients=scale.n_clients,
        n_skus=scale.n_skus,
    )

    writers: dict[str, pq.ParquetWriter] = {}
    relevant: list[np.ndarray] = []
    n_chunks = -(-scale.n_clients // scale.chunk_clients)

    def append(name: str, frame: pl.DataFrame) -> None:
        table = frame.to_arrow()
        if name not in writers:
            writers[name] = pq.ParquetWriter(out / f".{name}.parquet.tmp", table.schema)
        writers[name].write_table(table)
        summary.rows[name] = summary.rows.get(name, 0) + frame.height

    try:
        for index, chunk in enumerate(iter_chunks(scale, seed, catalog)):
            for name in EVENT_FILES:
                append(name, to_release_form(name, chunk.events[name], origin))
            append(TRUTH_DIR, chunk.truth)
            relevant.append(chunk.relevant_clients)
            if progress:
                progress(f"chunk {index + 1}/{n_chunks}: {summary.n_events:,} events so far")
        append("product_properties", products_frame(catalog))
    finally:
        for writer in writers.values():
            writer.close()

    for name in (*EVENT_FILES, "product_properties"):
        (out / f".{name}.parquet.tmp").replace(out / f"{name}.parquet")
    (out / f".{TRUTH_DIR}.parquet.tmp").replace(out / TRUTH_FILE)
    relevant_ids = np.sort(np.concatenate(relevant)).astype(np.int64)
    np.save(out / "input" / "relevant_clients.npy", relevant_ids)
    summary.n_relevant = len(relevant_ids)
    summary.rows.pop(TRUTH_DIR, None)
    summary.seconds = round(time.perf_counter() - started, 2)
    (out / MANIFEST).write_text(json.dumps(asdict(summary), indent=2))
    return summary
