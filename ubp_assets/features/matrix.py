"""The feature matrix: every family joined for the relevant clients, filled, scaled, float32.

Fill rule (per feature, declared with it): counts and amounts take 0; rates and means that are
undefined without events take the median over the clients that have them; day-distances take the
whole history's length. Scaling: signed log1p (tames heavy tails), then robust centring and scaling
(median and inter-quartile range, or the standard deviation where the IQR is 0), clipped to ±5.
The fitted parameters are kept so that new clients can be encoded the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from ubp_assets.features.common import Feature
from ubp_assets.markdown import markdown_table
from ubp_assets.shards import Shard

CLIP = 5.0


@dataclass(frozen=True)
class FeatureMatrix:
    matrix: pl.DataFrame  # client_id, then one float32 column per feature
    scaler: pl.DataFrame  # feature, family, fill, fill_value, center, scale, filled_share


def join_families(relevant: np.ndarray, tables: Sequence[pl.DataFrame]) -> pl.DataFrame:
    """One row per relevant client, in the order given; clients without data get nulls here."""
    frame = pl.DataFrame({"client_id": np.asarray(relevant, dtype=np.int64)})
    for table in tables:
        frame = frame.join(table, on="client_id", how="left", maintain_order="left")
    return frame


def fit_scaler(frame: pl.DataFrame, features: dict[str, Feature], span_days: float) -> pl.DataFrame:
    names = [c for c in frame.columns if c != "client_id"]
    medians = frame.select(pl.col(names).cast(pl.Float64).fill_nan(None).median()).row(0)
    fills = []
    for name, median in zip(names, medians, strict=True):
        rule = features[name].fill
        value = {"zero": 0.0, "span": float(span_days)}.get(rule)
        fills.append(value if value is not None else (0.0 if median is None else float(median)))
    filled = _fill(frame, dict(zip(names, fills, strict=True)))
    logged = filled.select(_signed_log(pl.col(names)))
    q = logged.select(
        pl.col(names).median().name.suffix("|c"),
        (pl.col(names).quantile(0.75) - pl.col(names).quantile(0.25)).name.suffix("|iqr"),
        pl.col(names).std(ddof=0).name.suffix("|std"),
    ).row(0, named=True)
    rows = []
    for name, fill in zip(names, fills, strict=True):
        iqr, std = q[f"{name}|iqr"], q[f"{name}|std"]
        scale = iqr if iqr > 0 else (std if std > 0 else 1.0)
        rows.append(
            {
                "feature": name,
                "family": features[name].family,
                "fill": features[name].fill,
                "fill_value": fill,
                "center": q[f"{name}|c"],
                "scale": scale,
            }
        )
    return pl.DataFrame(rows)


def apply_scaler(frame: pl.DataFrame, scaler: pl.DataFrame) -> pl.DataFrame:
    """Fill, log, centre, scale and clip, in the scaler's feature order; float32."""
    names = scaler["feature"].to_list()
    filled = _fill(frame, dict(zip(names, scaler["fill_value"].to_list(), strict=True)))
    return filled.select(
        "client_id",
        *[
            ((_signed_log(pl.col(n)) - c) / s).clip(-CLIP, CLIP).cast(pl.Float32).alias(n)
            for n, c, s in zip(names, scaler["center"], scaler["scale"], strict=True)
        ],
    )


def build_feature_matrix(
    relevant: np.ndarray,
    tables: Sequence[pl.DataFrame],
    features: dict[str, Feature],
    span_days: float,
) -> FeatureMatrix:
    joined = join_families(relevant, tables)
    _require_registered(joined.columns[1:], features)
    scaler = _fit_with_filled_share(joined, features, span_days)
    return FeatureMatrix(matrix=apply_scaler(joined, scaler), scaler=scaler)


def _require_registered(names: Sequence[str], features: dict[str, Feature]) -> None:
    unknown = [c for c in names if c not in features]
    if unknown:
        raise ValueError(f"columns without a registered feature: {unknown[:5]}")


def _fit_with_filled_share(
    joined: pl.DataFrame, features: dict[str, Feature], span_days: float
) -> pl.DataFrame:
    """The scaler of the joined columns, with the share of clients whose value each filled."""
    missing = joined.select(
        pl.exclude("client_id").cast(pl.Float64).fill_nan(None).null_count() / joined.height
    ).row(0)
    return fit_scaler(joined, features, span_days).with_columns(
        pl.Series("filled_share", missing, dtype=pl.Float64)
    )


def fit_scaler_by_columns(
    relevant: np.ndarray,
    columns_by_table: dict[str, list[str]],
    read_columns: Callable[[str, list[str]], pl.DataFrame],
    features: dict[str, Feature],
    span_days: float,
    *,
    batch: int = 100,
) -> pl.DataFrame:
    """`build_feature_matrix`'s scaler, fitted `batch` columns at a time from the stored family
    tables: a column's fill, centre, scale and filled share depend on that column alone (over
    every relevant client), so the batches' scalers are the whole one's, and memory is set by
    the batch, not by the width times the client count."""
    parts = []
    for table, names in columns_by_table.items():
        _require_registered(names, features)
        for start in range(0, len(names), batch):
            chosen = names[start : start + batch]
            joined = join_families(relevant, [read_columns(table, ["client_id", *chosen])])
            parts.append(_fit_with_filled_share(joined, features, span_days))
    return pl.concat(parts)


def matrix_in_shards(
    relevant: np.ndarray,
    shards: Sequence[Shard],
    read_shard: Callable[[Shard], list[pl.DataFrame]],
    scaler: pl.DataFrame,
    progress: Callable[[int, str], None],
) -> Iterator[pl.DataFrame]:
    """The matrix's rows a shard at a time: the shard's relevant clients (in the order of the
    relevant list) joined with their rows of every family table, then filled and scaled with the
    whole matrix's scaler, so that each row equals the unsharded matrix's row for that client.
    With one shard the order is the relevant list's, as `build_feature_matrix` gives it."""
    ids = np.asarray(relevant, dtype=np.int64)
    for shard in shards:
        mine = ids[(ids >= shard.first) & (ids <= shard.last)]
        part = apply_scaler(join_families(mine, read_shard(shard)), scaler)
        progress(part.height, shard.label)
        yield part


@dataclass(frozen=True)
class StoredMatrixChecks:
    rows: int
    distinct_clients: int
    relevant_clients: int
    exact_client_set: bool  # one row per relevant client, each once
    non_finite: int  # NaN, infinite or null values
    constant: list[str]  # features with one value for every client


def check_stored_matrix(matrix: pl.LazyFrame, relevant: np.ndarray) -> StoredMatrixChecks:
    """The matrix's checks over the stored table, streamed: one scan, the client ids the only
    column held whole."""
    columns = [c for c in matrix.collect_schema().names() if c != "client_id"]
    bad = [
        (~pl.col(c).is_finite()).fill_null(True).sum().alias(f"bad{i}")
        for i, c in enumerate(columns)
    ]
    same = [(pl.col(c).min() == pl.col(c).max()).alias(f"same{i}") for i, c in enumerate(columns)]
    row = (
        matrix.select(
            pl.len().alias("rows"), pl.col("client_id").n_unique().alias("distinct"), *bad, *same
        )
        .collect(engine="streaming")
        .row(0)
    )
    rows, distinct = row[0], row[1]
    non_finite = sum(row[2 : 2 + len(columns)])
    ids = matrix.select("client_id").collect(engine="streaming")["client_id"].to_numpy()
    wanted = np.unique(relevant)
    exact = rows == distinct == len(wanted) and bool(np.array_equal(np.sort(ids), wanted))
    constant = [c for c, flat in zip(columns, row[2 + len(columns) :], strict=True) if flat]
    return StoredMatrixChecks(rows, distinct, len(wanted), exact, int(non_finite), constant)


def _fill(frame: pl.DataFrame, values: dict[str, float]) -> pl.DataFrame:
    return frame.with_columns(
        pl.col(n).cast(pl.Float64).fill_nan(None).fill_null(v).alias(n) for n, v in values.items()
    )


def _signed_log(expr: pl.Expr) -> pl.Expr:
    return expr.sign() * expr.abs().log1p()


def matrix_summary(matrix: pl.DataFrame, scaler: pl.DataFrame) -> str:
    quantiles = matrix.select(
        pl.exclude("client_id").quantile(q).name.suffix(f"|{name}")
        for name, q in (("p05", 0.05), ("p50", 0.5), ("p95", 0.95))
    ).row(0, named=True)
    summary = scaler.select(
        "feature",
        "family",
        pl.col("filled_share").round(3),
        *[
            pl.Series(q, [round(quantiles[f"{n}|{q}"], 2) for n in scaler["feature"]])
            for q in ("p05", "p50", "p95")
        ],
    )
    return (
        "Scaled values (5th, 50th, 95th percentiles) and the share of clients whose value was "
        "filled, for the first 80 features:\n\n" + markdown_table(summary, max_rows=80)
    )
