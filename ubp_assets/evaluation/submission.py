"""Embeddings in the challenge's submission format, and the organisers' rules for it."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

MAX_EMBEDDING_DIM = 2048
CLIENT_IDS = "client_ids.npy"
EMBEDDINGS = "embeddings.npy"


def _atomic_save(path: Path, array: np.ndarray) -> None:
    temp = path.with_suffix(".tmp.npy")
    np.save(temp, array)
    os.replace(temp, path)


def write_submission(folder: Path, client_ids: np.ndarray, embeddings: np.ndarray) -> None:
    """client_ids.npy (int64) and embeddings.npy (float16), rows aligned; refuses to write files
    that break the format rules, so a bad method fails where it is built."""
    ids = np.asarray(client_ids, dtype=np.int64)
    vectors = np.asarray(embeddings, dtype=np.float32)
    if not np.isfinite(vectors).all():
        raise ValueError("embeddings hold NaN or infinity")
    with np.errstate(over="ignore"):
        half = vectors.astype(np.float16)
    if not np.isfinite(half).all():
        raise ValueError("embeddings overflow float16 (|value| > 65504)")
    folder.mkdir(parents=True, exist_ok=True)
    _atomic_save(folder / CLIENT_IDS, ids)
    _atomic_save(folder / EMBEDDINGS, half)


def read_submission(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    return np.load(folder / CLIENT_IDS), np.load(folder / EMBEDDINGS)


def submission_problems(
    client_ids: np.ndarray,
    embeddings: np.ndarray,
    relevant: np.ndarray,
    max_dim: int = MAX_EMBEDDING_DIM,
) -> list[str]:
    """Every way the pair breaks the organisers' rules (empty when it is valid)."""
    problems = []
    if client_ids.dtype != np.int64 or client_ids.ndim != 1:
        problems.append(f"client_ids must be 1-D int64, got {client_ids.ndim}-D {client_ids.dtype}")
    if embeddings.dtype != np.float16:
        problems.append(f"embeddings must be float16, got {embeddings.dtype}")
    if embeddings.ndim != 2:
        problems.append(f"embeddings must be 2-D, got {embeddings.ndim}-D")
    else:
        if embeddings.shape[1] > max_dim:
            problems.append(f"{embeddings.shape[1]} dimensions, at most {max_dim} allowed")
        if embeddings.shape[0] != len(client_ids):
            problems.append(f"{embeddings.shape[0]} embedding rows for {len(client_ids)} clients")
    if np.issubdtype(embeddings.dtype, np.floating) and not np.isfinite(embeddings).all():
        problems.append(f"{int((~np.isfinite(embeddings)).sum())} NaN or infinite values")
    unique = np.unique(client_ids)
    if len(unique) != len(client_ids):
        problems.append(f"{len(client_ids) - len(unique)} duplicated client ids")
    missing = np.setdiff1d(relevant, unique)
    extra = np.setdiff1d(unique, relevant)
    if len(missing) or len(extra):
        problems.append(
            f"not the relevant clients: {len(missing)} missing, {len(extra)} not relevant"
        )
    return problems
