"""The warehouse's tables, written and read as polars frames: the one way every asset (and
`ubp score`) stores and reads a table.

A table is a folder of parquet files under `<data_dir>/warehouse/tables/<name>/`, no DuckDB file:
DuckDB allows one writer per file, which would make every table wait on every other and keep
workers on other machines out. Each write puts its parts (one client shard each, say) into a new
version folder and then renames the table's `_current` pointer onto it, so a reader sees the old
table or the new one whole, a write that fails leaves the old one, and runs writing different
tables never wait for each other. DuckDB is the query layer: `get_connection()` opens an
in-memory database with a view over each table and over the day files of `events`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

import duckdb
import numpy as np
import polars as pl

from ubp_assets import location
from ubp_assets.location import AnyPath
from ubp_assets.storage import DATA_FILE, atomic_write

POINTER = "_current"


class Connectable(Protocol):
    """The `Warehouse` resource (in an asset) or a `WarehouseDir` (outside Dagster)."""

    @property
    def root(self) -> AnyPath: ...

    def get_connection(self): ...


def tables_dir(root: str | AnyPath) -> AnyPath:
    return location.as_path(root) / "tables"


def open_views(conn: duckdb.DuckDBPyConnection, root: str | AnyPath) -> None:
    """A view over each stored table and over the day files of `events`, so that SQL reads the
    parquet in place. On an object store DuckDB reads through its httpfs extension, configured
    from the same AWS variables (`location.py`)."""
    root = location.as_path(root)
    if not location.is_local(root):
        _object_store_access(conn)
    for name, files in _current_files(root).items():
        listed = ", ".join(f"'{location.as_arg(f)}'" for f in files)
        conn.execute(f'CREATE OR REPLACE VIEW "{name}" AS SELECT * FROM read_parquet([{listed}])')
    if any((root / "events").glob(f"date=*/{DATA_FILE}")):
        pattern = location.as_arg(root / "events") + f"/date=*/{DATA_FILE}"
        conn.execute(
            f"CREATE OR REPLACE VIEW events AS SELECT * FROM read_parquet('{pattern}', "
            "hive_partitioning = true, hive_types = {'date': DATE})"
        )


def _object_store_access(conn: duckdb.DuckDBPyConnection) -> None:
    endpoint = os.environ.get("AWS_ENDPOINT_URL", "")
    try:
        conn.execute("LOAD httpfs")
    except duckdb.Error as error:
        raise RuntimeError(
            "SQL over tables on an object store needs DuckDB's httpfs extension, which is not "
            "installed here (`INSTALL httpfs` where there is network); the assets do not need "
            f"it: read the tables with ubp_assets.warehouse.read_table ({error})"
        ) from None
    options = {
        "KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID", ""),
        "SECRET": os.environ.get("AWS_SECRET_ACCESS_KEY", ""),
        "REGION": os.environ.get("AWS_REGION", "us-east-1"),
    }
    if endpoint:
        options |= {
            "ENDPOINT": endpoint.split("://", 1)[-1],
            "URL_STYLE": "path",
            "USE_SSL": str(not endpoint.startswith("http://")).lower(),
        }
    listed = ", ".join(f"{k} '{v}'" if k != "USE_SSL" else f"{k} {v}" for k, v in options.items())
    conn.execute(f"CREATE OR REPLACE SECRET ubp_data (TYPE s3, {listed})")


@dataclass(frozen=True)
class WarehouseDir:
    """The warehouse folder opened directly, for commands and tests outside a Dagster run."""

    root: AnyPath
    memory_limit: str = "2GB"

    @contextmanager
    def get_connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        conn = duckdb.connect(config={"memory_limit": self.memory_limit})
        try:
            open_views(conn, self.root)
            yield conn
        finally:
            conn.close()


def write_table(
    warehouse: Connectable, name: str, frame: pl.DataFrame | Iterable[pl.DataFrame]
) -> int:
    """Replace the table whole; given parts (one client shard each, say), hold one at a time.
    Returns the rows written."""
    parts = [frame] if isinstance(frame, pl.DataFrame) else frame
    folder = tables_dir(warehouse.root) / name
    version = f"v{time.time_ns()}-{os.getpid()}"  # sorts by when the write began
    rows, written = 0, 0
    try:
        for part in parts:
            path = folder / version / f"part-{written:05d}.parquet"
            atomic_write(part, path)
            rows, written = rows + part.height, written + 1
        if not written:
            raise ValueError(f"no parts to write to table {name!r}")
    except BaseException:
        location.remove_tree(folder / version)
        raise
    previous = _version(folder)
    location.write_text(folder / POINTER, version)
    _prune(folder, below=previous)
    return rows


def _version(folder: AnyPath) -> str | None:
    pointer = folder / POINTER
    return pointer.read_text().strip() if pointer.is_file() else None


def _prune(folder: AnyPath, below: str | None) -> None:
    """Remove the versions older than the one just replaced: that one stays for a reader that
    listed it a moment ago, and a newer one may be another run's write still under way."""
    if below is None:
        return
    for old in folder.glob("v*"):
        if old.name < below:
            location.remove_tree(old)


def _current_files(
    root: str | AnyPath, names: Iterable[str] | None = None
) -> dict[str, list[AnyPath]]:
    found = {}
    folders = (
        [tables_dir(root) / n for n in names]
        if names is not None
        else sorted(p.parent for p in tables_dir(root).glob(f"*/{POINTER}"))
    )
    for folder in folders:
        version = _version(folder)
        if version is not None:
            found[folder.name] = sorted((folder / version).glob("part-*.parquet"))
    return found


def scan_table(warehouse: Connectable, name: str) -> pl.LazyFrame:
    """The table as a lazy frame over its files, for a query streamed over a large table."""
    files = _current_files(warehouse.root, [name]).get(name)
    if files is None:
        raise FileNotFoundError(
            f"the warehouse has no table {name!r} under {tables_dir(warehouse.root)}: "
            "materialize the asset that writes it"
        )
    return location.scan_parquet(files)


def read_table(
    warehouse: Connectable,
    name: str,
    columns: list[str] | None = None,
    *,
    limit: int | None = None,
    clients: tuple[int, int] | None = None,
    client_ids: np.ndarray | None = None,
) -> pl.DataFrame:
    """The table, or the given columns, its first `limit` rows (0: its schema alone), or the rows
    whose client_id lies in `clients` (first, last), in the stored order; or the rows of the
    given `client_ids` (a sample, say), in client_id order."""
    table = scan_table(warehouse, name)
    if clients is not None:
        table = table.filter(pl.col("client_id").is_between(int(clients[0]), int(clients[1])))
    if client_ids is not None:
        wanted = pl.LazyFrame({"client_id": np.asarray(client_ids, dtype=np.int64)})
        table = table.join(wanted, on="client_id", how="semi").sort("client_id")
    if columns:
        table = table.select(columns)
    if limit is not None:
        table = table.head(int(limit))
    return table.collect()


def existing_tables(warehouse: Connectable, names: list[str]) -> set[str]:
    """Which of the named tables the warehouse holds."""
    return set(_current_files(warehouse.root, names))


def drop_table(warehouse: Connectable, name: str) -> None:
    location.remove_tree(tables_dir(warehouse.root) / name)
