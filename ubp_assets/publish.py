"""Publishing an embedding: the submission files written, then checked as written. Every
method's asset goes through here, so every method meets the same check."""

from __future__ import annotations

import dagster as dg
import numpy as np
import polars as pl

from ubp_assets.evaluation.submission import (
    CLIENT_IDS,
    EMBEDDINGS,
    StoredEmbeddings,
    submission_problems,
    write_submission,
)
from ubp_assets.inputs import load_relevant_clients
from ubp_assets.location import load_npy
from ubp_assets.markdown import markdown_table
from ubp_assets.resources import UbpStorage

SUBMISSION_CHECK = "submission_format"


def submission_check_spec(asset: str) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(
        SUBMISSION_CHECK,
        asset=asset,
        description="The organisers' rules: client_ids int64, exactly the relevant clients "
        "each once; embeddings float16, 2-D, at most 2048 columns, no NaN or infinity.",
    )


def publish_embeddings(
    storage: UbpStorage,
    client_ids: np.ndarray,
    vectors_by_method: dict[str, np.ndarray],
    seconds: float,
    *,
    metadata: dict | None = None,
):
    """Write each method's submission files, then check them as written (`published`)."""
    for method, vectors in vectors_by_method.items():
        write_submission(storage.embeddings_dir / method, client_ids, vectors)
    yield from published(storage, list(vectors_by_method), seconds, metadata=metadata)


def published(storage: UbpStorage, methods: list[str], seconds: float, *, metadata=None):
    """Check each method's submission files as written (one check result for them all); the
    materialization describes the first. `metadata` adds to what every embedding asset reports.
    The embeddings are read a block of rows at a time: at the real size a method's file is a few
    GB (universal: 3 GB), which held whole, with its mask of finite values, added to the step's
    peak.
    """
    relevant = load_relevant_clients(storage)
    problems: list[str] = []
    first = None
    for method in methods:
        folder = storage.embeddings_dir / method
        stored, stored_ids = (
            StoredEmbeddings.open(folder / EMBEDDINGS),
            load_npy(folder / CLIENT_IDS),
        )
        found = submission_problems(stored_ids, stored, relevant)
        prefix = f"{method}: " if len(methods) > 1 else ""
        problems += [prefix + p for p in found]
        first = first or (method, folder, stored, stored_ids[:5])
    method, folder, stored, head_ids = first
    head, shape = stored.head(5), stored.shape
    nbytes = int(np.prod(shape, dtype=np.int64)) * stored.dtype.itemsize
    preview = pl.DataFrame(
        {"client_id": head_ids}
        | {f"dim_{j}": head[:, j].astype(np.float32) for j in range(min(8, shape[1]))}
    )
    yield dg.MaterializeResult(
        metadata={
            "method": method,
            "folder": dg.MetadataValue.path(str(folder)),
            "clients": shape[0],
            "dimensions": shape[1],
            "build_seconds": round(seconds, 2),
            "size_mib": round(nbytes / 2**20, 2),
            "preview": dg.MetadataValue.md(markdown_table(preview)),
            **({"also_published": ", ".join(methods[1:])} if len(methods) > 1 else {}),
            **(metadata or {}),
        },
    )
    yield dg.AssetCheckResult(
        check_name=SUBMISSION_CHECK,
        passed=not problems,
        metadata={"problems": "; ".join(problems) or "none"},
    )
