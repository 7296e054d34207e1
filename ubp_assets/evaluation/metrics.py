"""The challenge's scores (PROTOCOL.md, "Metrics"), reproduced in numpy.

The organisers scored with torchmetrics' AUROC and their own Diversity and Novelty metrics; the
functions here give the same numbers, in float64, without torch, so that figures computed by this
project mean what the leaderboard's mean.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# The organisers wrote 10e-10, which is 1e-9.
_EPS = 1e-9
# Columns ranked at once by multilabel_auroc: bounds the temporary arrays to a few tens of MB.
_RANK_BLOCK_ELEMENTS = 4_000_000


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Logistic function in float64 that neither overflows nor loses precision for large |x|."""
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(under="ignore"):  # exp(-1000) is 0 to float64, and that is the answer
        e = np.exp(-np.abs(x))  # in (0, 1]: never overflows
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _check_scores_labels(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels)
    if scores.shape != labels.shape:
        raise ValueError(f"scores {scores.shape} and labels {labels.shape} differ in shape")
    if scores.shape[0] == 0:
        raise ValueError("no rows to score")
    if not np.isfinite(scores).all():
        raise ValueError("scores hold NaN or Inf")
    positive = labels == 1
    if not (positive | (labels == 0)).all():
        raise ValueError("labels must hold only 0 and 1")
    return scores, positive


def _auroc_columns(scores: np.ndarray, positive: np.ndarray) -> np.ndarray:
    """Exact AUROC of every column of 2-D arrays: Mann-Whitney U with average ranks for ties.

    A tie between a positive and a negative counts one half, as under the trapezoid of the exact
    ROC curve. A column with one class only scores 0.0, as in torchmetrics.
    """
    n = scores.shape[0]
    order = np.argsort(scores, axis=0, kind="stable")
    ranked = np.take_along_axis(scores, order, axis=0)
    index = np.arange(n)[:, None]
    new_group = np.ones(ranked.shape, dtype=bool)
    new_group[1:] = ranked[1:] != ranked[:-1]
    ends_group = np.ones(ranked.shape, dtype=bool)
    ends_group[:-1] = new_group[1:]
    # First and last sorted position of each element's tie group, carried along the column.
    first = np.maximum.accumulate(np.where(new_group, index, 0), axis=0)
    last = np.minimum.accumulate(np.where(ends_group, index, n - 1)[::-1], axis=0)[::-1]
    ranks = (first + last) / 2.0 + 1.0  # 1-based average ranks, exact halves in float64
    pos_sorted = np.take_along_axis(positive, order, axis=0)
    n_pos = pos_sorted.sum(axis=0).astype(np.float64)
    n_neg = n - n_pos
    u = (ranks * pos_sorted).sum(axis=0) - n_pos * (n_pos + 1.0) / 2.0
    both = (n_pos > 0) & (n_neg > 0)
    return np.where(both, u / np.where(both, n_pos * n_neg, 1.0), 0.0)


def binary_auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Exact ROC AUC of 1-D scores (any monotone scale: logits or probabilities) for 0/1 labels.

    Ties between a positive and a negative count one half. When labels hold one class only this
    returns 0.0, not NaN and not 0.5: torchmetrics sets the missing TPR or FPR curve to zeros and
    the trapezoid area is 0. The organisers' macro averages include such labels, so this matters.
    """
    scores, positive = _check_scores_labels(scores, labels)
    if scores.ndim != 1:
        raise ValueError(f"binary_auroc needs 1-D arrays, got shape {scores.shape}")
    return float(_auroc_columns(scores[:, None], positive[:, None])[0])


def multilabel_auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Macro average over the columns of binary_auroc; single-class columns count as 0.0."""
    scores, positive = _check_scores_labels(scores, labels)
    if scores.ndim != 2:
        raise ValueError(f"multilabel_auroc needs 2-D arrays, got shape {scores.shape}")
    n, k = scores.shape
    step = max(1, _RANK_BLOCK_ELEMENTS // n)
    per_column = np.concatenate(
        [
            _auroc_columns(scores[:, j : j + step], positive[:, j : j + step])
            for j in range(0, k, step)
        ]
    )
    return float(per_column.mean())


def single_class_labels(labels: np.ndarray) -> int:
    """How many columns hold one class only: each scores 0.0 and drags the macro AUROC down."""
    labels = np.asarray(labels)
    if labels.ndim == 1:
        labels = labels[:, None]
    positive = (labels == 1).sum(axis=0)
    return int(((positive == 0) | (positive == labels.shape[0])).sum())


def diversity(logits: np.ndarray) -> float:
    """Mean entropy of the per-user normalised sigmoid scores, over log2(number of labels).

    1.0 when every label gets the same score, near 0 when one label dominates.
    """
    logits = np.asarray(logits, dtype=np.float64)
    if logits.ndim != 2 or logits.shape[1] < 2:
        raise ValueError(f"diversity needs 2-D logits with at least 2 labels, got {logits.shape}")
    p = sigmoid(logits)
    p /= p.sum(axis=1, keepdims=True)
    entropies = -(p * np.log2(p + _EPS)).sum(axis=1)
    return float(entropies.sum() / ((logits.shape[0] + _EPS) * np.log2(logits.shape[1])))


def novelty(logits: np.ndarray, popularity: np.ndarray, k: int = 10) -> float:
    """(1 - mean over users of sum(s_i * q_i) over their top-k sigmoid scores s_i) ** 100.

    q is the popularity normalised by the sum of the k largest popularities, so a user whose
    top-k are the k most popular labels, all scored 1, contributes 1 and novelty tends to 0.
    """
    logits = np.asarray(logits, dtype=np.float64)
    popularity = np.asarray(popularity, dtype=np.float64)
    if logits.ndim != 2:
        raise ValueError(f"novelty needs 2-D logits, got shape {logits.shape}")
    if popularity.ndim != 1 or popularity.shape[0] != logits.shape[1]:
        raise ValueError(
            f"popularity has shape {popularity.shape}, expected ({logits.shape[1]},): "
            "one value per label"
        )
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if not np.isfinite(popularity).all() or (popularity < 0).any():
        raise ValueError("popularity must be finite and non-negative")
    k = min(k, popularity.shape[0])
    top_popularity = np.sort(popularity)[-k:].sum()
    if top_popularity == 0:
        raise ValueError(
            f"the {k} largest popularities sum to 0, so novelty is undefined (NaN in the "
            "organisers' code); take popularity from a window in which these labels were bought"
        )
    q = popularity / top_popularity
    s = sigmoid(logits)
    top = np.argpartition(-s, k - 1, axis=1)[:, :k]
    total = (np.take_along_axis(s, top, axis=1) * q[top]).sum()
    return float((1.0 - total / (logits.shape[0] + _EPS)) ** 100)


def propensity_score(auroc: float, diversity: float, novelty: float) -> float:
    """The challenge's propensity score: AUROC dominates, diversity and novelty add up to 0.2."""
    return 0.8 * auroc + 0.1 * diversity + 0.1 * novelty


@dataclass(frozen=True)
class TaskScore:
    """One task's scores; diversity and novelty are None for binary (churn-type) tasks."""

    auroc: float
    diversity: float | None
    novelty: float | None
    score: float


def score_binary(logits: np.ndarray, labels: np.ndarray) -> TaskScore:
    """Churn-type task: the score is the binary AUROC. Accepts (n,) or (n, 1) arrays."""
    logits = np.asarray(logits)
    labels = np.asarray(labels)
    if logits.ndim == 2 and logits.shape[1] == 1:
        logits = logits[:, 0]
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    auroc = binary_auroc(logits, labels)
    return TaskScore(auroc=auroc, diversity=None, novelty=None, score=auroc)


def score_propensity(logits: np.ndarray, labels: np.ndarray, popularity: np.ndarray) -> TaskScore:
    """Propensity task: macro AUROC, diversity and novelty, combined by propensity_score."""
    auroc = multilabel_auroc(logits, labels)
    div = diversity(logits)
    nov = novelty(logits, popularity)
    return TaskScore(
        auroc=auroc, diversity=div, novelty=nov, score=propensity_score(auroc, div, nov)
    )
