"""Embeddings from anywhere (a participant's own tool) scored beside the project's methods: the
same probe, the same targets, the same table and report as `probe_scores`."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl

from ubp_assets.evaluation.oracle import gap_closed
from ubp_assets.evaluation.report import score_table, with_sums, write_report
from ubp_assets.evaluation.scoring import score_method
from ubp_assets.evaluation.targets import Targets
from ubp_assets.methods import BASELINE, CEILING, METHODS
from ubp_assets.warehouse import WarehouseDir, existing_tables, read_table, write_table

SCORES_TABLE = "probe_scores"
DERIVED = ("sum_over_tasks", "gap_closed", "gap_closed_total", "profile", "device", "scored_at")


def score_beside(
    target_dir: Path,
    warehouse_dir: Path,
    reports_dir: Path,
    *,
    method: str,
    client_ids: np.ndarray,
    vectors: np.ndarray,
    profile: str,
    device: str,
) -> str:
    """Score `vectors` on every task and put the rows into the warehouse's probe_scores in place
    of any earlier ones of that name; rewrite the report. Returns the scores' markdown table.

    Refuses where there is nothing to stand beside (no targets or scores yet), where the stored
    scores came from another probe profile (the two do not compare), or where the name is one of
    the project's own methods."""
    if method in {m.name for m in METHODS}:
        raise ValueError(f"{method!r} is one of the project's methods: pick another --name")
    warehouse = WarehouseDir(warehouse_dir)
    if not (target_dir / "active_clients.npy").is_file() or not existing_tables(
        warehouse, [SCORES_TABLE]
    ):
        raise FileNotFoundError(
            f"no targets or probe scores in {warehouse_dir}: run `ubp run` first"
        )
    stored = read_table(warehouse, SCORES_TABLE)
    if stored["profile"][0] != profile:
        raise ValueError(
            f"the stored scores come from the {stored['profile'][0]!r} probe, not {profile!r}: "
            f"set UBP_PROBE_PROFILE={stored['profile'][0]} (scores of two profiles do not compare)"
        )
    rows = score_method(client_ids, vectors, Targets.read(target_dir), profile, device)
    own = pl.DataFrame([{"method": method, "dimensions": vectors.shape[1], **row} for row in rows])
    kept = stored.filter(pl.col("method") != method).drop(DERIVED)
    scores = with_sums(pl.concat([kept, own.select(kept.columns)], how="vertical_relaxed"))
    scores = gap_closed(scores, BASELINE, CEILING).with_columns(
        pl.lit(profile).alias("profile"),
        pl.lit(device).alias("device"),
        pl.lit(dt.datetime.now(dt.UTC).replace(tzinfo=None)).alias("scored_at"),
    )
    write_table(warehouse, SCORES_TABLE, scores)
    reports_dir.mkdir(parents=True, exist_ok=True)
    # the registry's methods the stored run left out stay named (an optional one may just be absent)
    scored = set(stored["method"])
    skipped = [m.name for m in METHODS if m.name not in scored and not m.optional]
    write_report(reports_dir, scores, skipped)
    return score_table(scores)
