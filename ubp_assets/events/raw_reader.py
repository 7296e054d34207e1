"""Reading the release's files: whole-file problems raise a clear error, bad rows are set aside.

A file that is missing, lacks a column or holds a column of the wrong type cannot be read at all:
`RawDataError` names the file, the column and the problem; so it does for a file replaced or
rewritten while a run reads it (`one_version`), so that a reading sees one version of every file.
Individual bad rows (an unparsable timestamp, a malformed vector, a null or negative id, an exact
duplicate) are never dropped silently: each comes back with a reason, for the caller to count and
quarantine.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from ubp_assets.events.schema import PRODUCT_PROPERTIES, VECTOR_DIM, RawFile, Vector
from ubp_assets.storage import day_range

TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"
TIMESTAMP_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2} ([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]$"
VECTOR_PATTERN = r"^\[\s*(?:\d{1,3}\s+){" + str(VECTOR_DIM - 1) + r"}\d{1,3}\s*\]$"
REASON = "reason"


class RawDataError(ValueError):
    """A raw file that cannot be read at all; the message names the file, column and problem."""


@dataclass(frozen=True)
class Parsed:
    """Rows of one raw file: typed rows that passed, and rejected ones (file, the raw row as JSON,
    reason, and the day it belongs to where its timestamp could be read)."""

    rows: pl.DataFrame
    rejected: pl.DataFrame


def _version(path: Path) -> tuple[int, int, int] | None:
    """What changes when a file is replaced (inode) or rewritten in place (size, mtime)."""
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return None
    return (stat.st_ino, stat.st_size, stat.st_mtime_ns)


@contextmanager
def one_version(raw_dir: str | Path, specs: Iterable[RawFile]) -> Iterator[Callable[[], None]]:
    """Raise `RawDataError` naming any of the files that changed while the block read them.

    The block gets a `verify()` that raises the same error at once, for a reading in several
    parts to check before it hands a part on.

    Each polars collect opens the file anew, so a release copied in while a run reads it could
    give the run one version's products and another's events, or a half-written file's rows. A
    change is seen by comparing inode, size and mtime before and after; a read error from a file
    that changed is reported as the change it is.
    """
    paths = {spec.filename: Path(raw_dir) / spec.filename for spec in specs}
    before = {name: _version(path) for name, path in paths.items()}

    def changed() -> list[str]:
        return [name for name, path in paths.items() if _version(path) != before[name]]

    def verify() -> None:
        if moved := changed():
            raise RawDataError(_changed_message(moved))

    try:
        yield verify
    except (Exception, pl.exceptions.PanicException) as exc:  # polars panics on a file cut short
        if moved := changed():
            raise RawDataError(_changed_message(moved)) from exc
        raise
    if moved := changed():
        raise RawDataError(_changed_message(moved))


def _changed_message(names: list[str]) -> str:
    return (
        f"{', '.join(names)}: changed while this run read it (replaced or rewritten); nothing "
        "was written from it. Rerun once the copy of the release is complete"
    )


def _kind_accepts(kind: str, dtype: pl.DataType) -> bool:
    if kind in ("id", "int"):
        return dtype.is_integer()
    if kind == "timestamp":
        return dtype == pl.String or isinstance(dtype, pl.Datetime)
    if kind == "vector":
        return dtype == pl.String or (
            isinstance(dtype, pl.List | pl.Array) and dtype.inner.is_integer()
        )
    raise ValueError(kind)


EXPECTED = {
    "id": "an integer id",
    "int": "an integer",
    "timestamp": "a 'YYYY-MM-DD HH:MM:SS' string or a timestamp",
    "vector": "16 integers as a '[ ... ]' string or a list",
}


def scan_raw(raw_dir: str | Path, spec: RawFile) -> pl.LazyFrame:
    """Scan a raw file after checking that it exists and has every column with an accepted type."""
    path = Path(raw_dir) / spec.filename
    if not path.is_file():
        raise RawDataError(f"{spec.filename}: file not found at {path}")
    try:
        lazy = pl.scan_parquet(path)
        schema = lazy.collect_schema()
    except Exception as exc:  # polars raises several types for unreadable files
        raise RawDataError(f"{spec.filename}: not a readable parquet file ({exc})") from exc
    for column, kind in spec.columns.items():
        if column not in schema:
            raise RawDataError(
                f"{spec.filename}: missing column '{column}' (found: {', '.join(schema.names())})"
            )
        if not _kind_accepts(kind, schema[column]):
            raise RawDataError(
                f"{spec.filename}: column '{column}' has dtype {schema[column]}, "
                f"expected {EXPECTED[kind]}"
            )
    return lazy.select(list(spec.columns))


def parse_timestamp(column: str, dtype: pl.DataType) -> pl.Expr:
    """Naive microsecond timestamps; strings not written exactly `YYYY-MM-DD HH:MM:SS` become null.

    The parser alone would also take `2022-11-9 1:00:00`, and read `2022-11-09 23:59:60` as the
    next day; refusing such text keeps every valid timestamp in the day its text names, which is
    what lets a run pick its days' rows by text.
    """
    if dtype == pl.String:
        # No cache: timestamps are nearly all distinct, so a cache of parsed values only costs
        # (1.2 s against 0.8 s for a day's filter over the 11M page visits of the tenth scale).
        parsed = pl.col(column).str.strptime(
            pl.Datetime("us"), TIMESTAMP_FORMAT, strict=False, cache=False
        )
        # A pattern test costs less than formatting each parsed value back (0.22 s against
        # 0.52 s over the tenth scale's 15.7M page visits).
        return pl.when(pl.col(column).str.contains(TIMESTAMP_PATTERN)).then(parsed)
    if getattr(dtype, "time_zone", None):
        return (
            pl.col(column)
            .dt.convert_time_zone("UTC")
            .dt.replace_time_zone(None)
            .cast(pl.Datetime("us"))
        )
    return pl.col(column).cast(pl.Datetime("us"))


def parse_vector(column: str, dtype: pl.DataType) -> pl.Expr:
    """16 uint8 values from numpy's print form or a list; anything malformed becomes null."""
    if dtype == pl.String:
        values = pl.col(column).str.extract_all(r"\d+").cast(pl.List(pl.Int64))
        well_formed = pl.col(column).str.contains(VECTOR_PATTERN)
    else:
        values = pl.col(column).cast(pl.List(pl.Int64))
        well_formed = values.list.len() == VECTOR_DIM
    in_range = (values.list.min() >= 0) & (values.list.max() <= 255)
    return (
        pl.when(well_formed & in_range)
        .then(values.list.to_array(VECTOR_DIM).cast(Vector))
        .otherwise(None)
    )


def _reasons(spec: RawFile) -> list[tuple[pl.Expr, str]]:
    """(bad-row condition, reason) in order of precedence, over the raw and parsed columns."""
    checks: list[tuple[pl.Expr, str]] = []
    for column, kind in spec.columns.items():
        raw, parsed = pl.col(f"_raw_{column}"), pl.col(column)
        if kind == "timestamp":
            checks.append((raw.is_null(), f"null {column}"))
            checks.append((parsed.is_null(), f"unparsable {column}"))
        elif kind in ("id", "int"):
            checks.append((parsed.is_null(), f"null {column}"))
            checks.append((parsed < 0, f"negative {column}"))
            if column == "price":
                checks.append((parsed > 99, "price bucket above 99"))
        elif kind == "vector":
            checks.append((raw.is_null(), f"null {column}"))
            checks.append((parsed.is_null(), f"malformed {column}"))
    return checks


def parse_raw(
    lazy: pl.LazyFrame,
    spec: RawFile,
    key: list[str],
    duplicate_reason: str = "exact duplicate",
    owner_day: pl.Expr | None = None,
) -> Parsed:
    """Type every column, give each bad row its first reason, and set aside repeats of `key`.

    Among valid rows the first with a given `key` is kept; later ones are rejected. A rejected
    row's day is its timestamp's, else `owner_day` (over the raw columns, `_raw_<column>`).
    """
    schema = lazy.collect_schema()
    typed = []
    for column, kind in spec.columns.items():
        dtype = schema[column]
        if kind == "timestamp":
            typed.append(parse_timestamp(column, dtype).alias(column))
        elif kind == "vector":
            typed.append(parse_vector(column, dtype).alias(column))
        else:
            typed.append(pl.col(column).cast(pl.Int64))
    reason = pl.lit(None, dtype=pl.String)
    for condition, text in reversed(_reasons(spec)):
        reason = pl.when(condition).then(pl.lit(text)).otherwise(reason)
    frame = (
        lazy.with_columns(pl.col(c).alias(f"_raw_{c}") for c in spec.columns)
        .with_columns(typed)
        .with_columns(reason.alias(REASON))
        .with_columns(
            pl.when(pl.col(REASON).is_null() & ~pl.struct(key).is_first_distinct().over(REASON))
            .then(pl.lit(duplicate_reason))
            .otherwise(pl.col(REASON))
            .alias(REASON)
        )
        .collect()
    )
    good = frame.filter(pl.col(REASON).is_null()).select(list(spec.columns))
    day = pl.col("timestamp").dt.date() if "timestamp" in spec.columns else pl.lit(None, pl.Date)
    if owner_day is not None:
        day = pl.coalesce(day, owner_day)
    rejected = frame.filter(pl.col(REASON).is_not_null()).select(
        pl.lit(spec.name).alias("file"),
        pl.struct(pl.col(f"_raw_{c}").alias(c) for c in spec.columns)
        .struct.json_encode()
        .alias("row"),
        pl.col(REASON),
        day.alias("date"),
    )
    return Parsed(rows=good, rejected=rejected)


def read_event_file(
    raw_dir: str | Path,
    spec: RawFile,
    first: dt.date,
    last: dt.date,
    partitions: tuple[dt.date, dt.date] | None = None,
) -> Parsed:
    """Rows of one event file on the days first..last, plus the rows no day can own.

    A text timestamp belongs to the day its text sorts into. Valid text (`YYYY-MM-DD HH:MM:SS`)
    sorts into its own day, so a run picks its days' rows by comparing text, which parquet does
    while reading, and parses only those: a day of the tenth scale's page visits costs 0.12 s
    instead of 0.50 s for parsing every row. Text that sorts into a day but is not a valid time
    is rejected in that day. Null timestamps and text outside every day of `partitions` (default
    first..last) belong to no day: they come back rejected, undated, on every call so that no
    run can lose them.
    """
    lazy = scan_raw(raw_dir, spec)
    dtype = lazy.collect_schema()["timestamp"]
    after = last + dt.timedelta(days=1)
    start, end = dt.datetime.combine(first, dt.time()), dt.datetime.combine(after, dt.time())
    stamp = pl.col("timestamp")
    id_column = next(c for c in spec.columns if c not in ("client_id", "timestamp"))
    key = ["client_id", "timestamp", id_column]
    if dtype != pl.String:  # parquet timestamps, naive or zoned: compared as naive UTC
        in_window = parse_timestamp("timestamp", dtype).is_between(start, end, "left")
        return parse_raw(lazy.filter(stamp.is_null() | in_window), spec, key)
    span_first, span_last = partitions or (first, last)
    outside_partitions = (stamp < span_first.isoformat()) | (
        stamp >= (span_last + dt.timedelta(days=1)).isoformat()
    )

    def in_text_window(text: pl.Expr) -> pl.Expr:
        return text.is_between(pl.lit(first.isoformat()), pl.lit(after.isoformat()), "left")

    raw_text = pl.col("_raw_timestamp")
    day_starts = pl.Series([d.isoformat() for d in day_range(first, last)])
    owner_day = pl.when(in_text_window(raw_text)).then(
        pl.lit(first)
        + pl.duration(days=pl.lit(day_starts).search_sorted(raw_text, side="right") - 1)
    )
    parsed = parse_raw(
        lazy.filter(stamp.is_null() | in_text_window(stamp) | outside_partitions),
        spec,
        key=key,
        owner_day=owner_day,
    )
    # Valid timestamps outside every partition are read only to be let go: no day owns them.
    return Parsed(
        rows=parsed.rows.filter(stamp.is_between(start, end, "left")),
        rejected=parsed.rejected.filter(
            pl.col("date").is_null() | pl.col("date").is_between(first, last)
        ),
    )


def read_products(raw_dir: str | Path, skus: pl.Series | None = None) -> Parsed:
    """product_properties, typed; a SKU listed twice keeps its first row, the rest are rejected.

    `skus` limits the reading to those SKUs, whose rows come back as in a reading of every SKU:
    a day needs the names of a few thousand products, not the parsing of every name.
    """
    with one_version(raw_dir, [PRODUCT_PROPERTIES]):
        lazy = scan_raw(raw_dir, PRODUCT_PROPERTIES)
        if skus is not None:
            lazy = lazy.filter(pl.col("sku").cast(pl.Int64).is_in(skus.cast(pl.Int64).implode()))
        parsed = parse_raw(lazy, PRODUCT_PROPERTIES, ["sku"], "duplicate sku")
    rows = parsed.rows.with_columns(pl.col("price").cast(pl.Int16))
    return Parsed(rows=rows, rejected=parsed.rejected)
