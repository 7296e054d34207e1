"""Tables in the DuckDB warehouse, written and read as polars frames: the one way every asset
(and `ubp score`) stores and reads a table."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import duckdb
import numpy as np
import polars as pl


class Connectable(Protocol):
    """A DuckDBResource (in an asset) or a WarehouseFile (outside Dagster)."""

    def get_connection(self): ...


@dataclass(frozen=True)
class WarehouseFile:
    """The warehouse file opened directly, for commands that run outside a Dagster run."""

    path: Path

    @contextmanager
    def get_connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        conn = duckdb.connect(str(self.path))
        try:
            yield conn
        finally:
            conn.close()


def write_table(
    warehouse: Connectable, name: str, frame: pl.DataFrame | Iterable[pl.DataFrame]
) -> int:
    """Replace the table in one transaction, so readers see the old or the new one whole; given
    parts (one client shard each, say), hold one at a time. Returns the rows written."""
    parts = [frame] if isinstance(frame, pl.DataFrame) else frame
    rows = 0
    with warehouse.get_connection() as conn:
        conn.execute("BEGIN TRANSACTION")
        try:
            for i, part in enumerate(parts):
                # DuckDB reads the local variable by a replacement scan: a registered view would
                # keep every part alive until the connection closes (unregistering or not).
                _incoming = part.to_arrow()
                if i == 0:
                    conn.execute(f'CREATE OR REPLACE TABLE "{name}" AS SELECT * FROM _incoming')
                else:
                    conn.execute(f'INSERT INTO "{name}" SELECT * FROM _incoming')
                del _incoming
                rows += part.height
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    return rows


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
    selected = ", ".join(f'"{c}"' for c in columns) if columns else "*"
    where = f" WHERE client_id BETWEEN {int(clients[0])} AND {int(clients[1])}" if clients else ""
    if client_ids is not None:
        where = " WHERE client_id IN (SELECT client_id FROM _wanted) ORDER BY client_id"
    bound = f" LIMIT {int(limit)}" if limit is not None else ""
    with warehouse.get_connection() as conn:
        if client_ids is not None:
            wanted = pl.DataFrame({"client_id": np.asarray(client_ids, dtype=np.int64)})
            conn.register("_wanted", wanted.to_arrow())
        return conn.execute(f'SELECT {selected} FROM "{name}"{where}{bound}').pl()


def existing_tables(warehouse: Connectable, names: list[str]) -> set[str]:
    """Which of the named tables the warehouse holds, in one connection."""
    with warehouse.get_connection() as conn:
        found = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_name IN "
            "(SELECT unnest(?::VARCHAR[]))",
            [names],
        ).fetchall()
    return {name for (name,) in found}
