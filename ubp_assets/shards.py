"""Client shards: the relevant clients cut into ranges of client_id, so that a per-client stage
holds one shard at a time and its memory is set by the shard's size, not by the client count.

Ranges rather than hashes: the day files of the partials are sorted by client_id and written in
small row groups, so a reader of one range skips the other ranges' row groups by their parquet
statistics, and a fold over 8 shards reads each file about once, not 8 times. The ranges are a
stable function of the relevant clients and the shard size: the same release gives the same
shards on every machine, and a shard's clients are the same whatever engine runs it.
"""

from __future__ import annotations

import ctypes
import functools
from dataclasses import dataclass

import numpy as np
import polars as pl


@dataclass(frozen=True)
class Shard:
    index: int
    count: int
    first: int  # the shard's lowest and highest client_id, inclusive
    last: int
    clients: int

    def rows(self, column: str = "client_id") -> pl.Expr:
        return pl.col(column).is_between(self.first, self.last)

    def members(self, relevant: np.ndarray) -> np.ndarray:
        """The shard's relevant clients, sorted."""
        ids = np.unique(relevant)
        return ids[(ids >= self.first) & (ids <= self.last)]

    @property
    def label(self) -> str:
        return f"clients {self.first}..{self.last}"


def client_shards(relevant: np.ndarray, clients_per_shard: int) -> list[Shard]:
    """Equal shares of the sorted relevant clients, at most `clients_per_shard` each (no clients:
    one empty shard, so that a stage still writes its empty table)."""
    ids = np.unique(relevant)
    if not len(ids):
        return [Shard(index=0, count=1, first=0, last=-1, clients=0)]
    count = -(-len(ids) // clients_per_shard)
    parts = np.array_split(ids, count)
    return [
        Shard(index=i, count=count, first=int(p[0]), last=int(p[-1]), clients=len(p))
        for i, p in enumerate(parts)
    ]


def every_client(shards: list[Shard]) -> list[pl.Expr]:
    """Per shard, the rows of every client, relevant or not, from its first client_id up to the
    next shard's: the ranges widened until they cover every client_id once, for a stage that
    reads everyone's events (`product_urls`) a shard at a time."""
    starts = [int(np.iinfo(np.int64).min), *(s.first for s in shards[1:])]
    ends = [*(s.first - 1 for s in shards[1:]), int(np.iinfo(np.int64).max)]
    return [pl.col("client_id").is_between(a, b) for a, b in zip(starts, ends, strict=True)]


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return None
    return libc if hasattr(libc, "malloc_trim") else None


def release_freed_memory() -> None:
    """Hand the memory a finished shard freed back to the system. glibc keeps the mid-sized
    buffers polars and numpy free (a wide shard's columns, hundreds of KB each, fall under its
    mmap threshold once that has risen) in its heaps: over nine shards of the full release's
    `user_embeddings` that held 6 GiB the step no longer used (13.6 GiB peak, 10.2 with this).
    A no-op where the C library is not glibc."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)
