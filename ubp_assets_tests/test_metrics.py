"""The challenge's metrics against values worked out by hand and a brute-force AUROC."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ubp_assets.evaluation.metrics import (
    TaskScore,
    binary_auroc,
    diversity,
    multilabel_auroc,
    novelty,
    propensity_score,
    score_binary,
    score_propensity,
    sigmoid,
    single_class_labels,
)


def logit(p: list[float]) -> np.ndarray:
    """Logits whose sigmoid is exactly the given probabilities (up to rounding)."""
    p_arr = np.asarray(p, dtype=np.float64)
    return np.log(p_arr / (1.0 - p_arr))


def pairwise_auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    """O(n^2) reference: the share of (positive, negative) pairs ranked right, ties one half."""
    pos = scores[labels == 1]
    neg = scores[labels == 0]
    diff = pos[:, None] - neg[None, :]
    return float(((diff > 0).sum() + 0.5 * (diff == 0).sum()) / diff.size)


# --- AUROC -----------------------------------------------------------------------------------


def test_binary_auroc_counts_a_tie_as_half():
    # Positives 0.4 and 0.8, negatives 0.1 and 0.4; the four (pos, neg) pairs:
    # (0.4, 0.1) -> 1, (0.4, 0.4) -> 1/2 (tie), (0.8, 0.1) -> 1, (0.8, 0.4) -> 1.
    # AUROC = 3.5 / 4 = 0.875.
    scores = np.array([0.1, 0.4, 0.4, 0.8])
    labels = np.array([0, 0, 1, 1])
    assert binary_auroc(scores, labels) == pytest.approx(0.875, abs=1e-12)


def test_binary_auroc_perfect_and_reversed():
    scores = np.array([0.3, -1.0, 2.0, 5.0, 0.0])
    labels = np.array([0, 0, 1, 1, 0])  # positives 2.0, 5.0 above every negative
    assert binary_auroc(scores, labels) == 1.0
    assert binary_auroc(-scores, labels) == 0.0


def test_binary_auroc_accepts_float_and_bool_labels():
    scores = np.array([0.1, 0.4, 0.4, 0.8])
    expected = binary_auroc(scores, np.array([0, 0, 1, 1]))
    assert binary_auroc(scores, np.array([0.0, 0.0, 1.0, 1.0])) == expected
    assert binary_auroc(scores, np.array([False, False, True, True])) == expected


@pytest.mark.parametrize("value", [0, 1])
def test_binary_auroc_single_class_is_zero_as_in_torchmetrics(value):
    scores = np.array([0.2, 0.9, 0.5])
    assert binary_auroc(scores, np.full(3, value)) == 0.0


def test_binary_auroc_invariant_to_monotone_transform():
    rng = np.random.default_rng(3)
    scores = rng.normal(size=300)
    labels = rng.integers(0, 2, 300)
    base = binary_auroc(scores, labels)
    # sigmoid keeps order; exp(3x) + 7 too; both keep the ties there are.
    assert binary_auroc(sigmoid(scores), labels) == pytest.approx(base, abs=1e-12)
    assert binary_auroc(np.exp(3 * scores) + 7, labels) == pytest.approx(base, abs=1e-12)


@pytest.mark.parametrize("seed", range(6))
def test_binary_auroc_matches_pairwise_reference_with_many_ties(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 400))
    scores = rng.integers(0, 5, n).astype(np.float64)  # 5 distinct values: ties everywhere
    labels = (rng.random(n) < rng.uniform(0.1, 0.9)).astype(np.int64)
    labels[0], labels[-1] = 0, 1  # both classes present
    assert binary_auroc(scores, labels) == pytest.approx(pairwise_auroc(scores, labels), abs=1e-12)


def test_binary_auroc_rejects_bad_input():
    with pytest.raises(ValueError, match="shape"):
        binary_auroc(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="0 and 1"):
        binary_auroc(np.zeros(3), np.array([0, 2, 1]))
    with pytest.raises(ValueError, match="NaN"):
        binary_auroc(np.array([0.1, np.nan]), np.array([0, 1]))


def test_multilabel_auroc_is_macro_mean_with_single_class_columns_as_zero():
    scores = np.array(
        [
            [0.1, 0.9, 0.5, 0.3],
            [0.4, 0.2, 0.6, 0.1],
            [0.4, 0.3, 0.7, 0.2],
            [0.8, 0.1, 0.8, 0.4],
        ]
    )
    labels = np.array(
        [
            [0, 1, 0, 1],
            [0, 0, 0, 1],
            [1, 1, 0, 1],
            [1, 0, 0, 1],
        ]
    )
    # column 0: the tie example above, 0.875
    # column 1: positives 0.9, 0.3; negatives 0.2, 0.1: all four pairs right -> 1.0
    # column 2: no positive -> 0.0;  column 3: no negative -> 0.0
    # macro mean = (0.875 + 1.0 + 0.0 + 0.0) / 4 = 0.46875
    assert multilabel_auroc(scores, labels) == pytest.approx(0.46875, abs=1e-12)
    assert single_class_labels(labels) == 2


def test_multilabel_auroc_matches_per_column_reference_across_blocks(monkeypatch):
    from ubp_assets.evaluation import metrics

    monkeypatch.setattr(metrics, "_RANK_BLOCK_ELEMENTS", 150)  # 50 rows -> blocks of 3 columns
    rng = np.random.default_rng(11)
    scores = rng.integers(0, 4, (50, 8)).astype(np.float64)
    labels = rng.integers(0, 2, (50, 8))
    labels[:, 5] = 0  # a single-class column
    expected = [pairwise_auroc(scores[:, j], labels[:, j]) for j in range(8) if j != 5] + [0.0]
    assert multilabel_auroc(scores, labels) == pytest.approx(np.mean(expected), abs=1e-12)


def test_single_class_labels_counts_constant_columns():
    labels = np.array([[0, 1, 1, 0], [0, 1, 0, 0], [0, 1, 1, 1]])
    # column 0 all 0, column 1 all 1, columns 2 and 3 mixed
    assert single_class_labels(labels) == 2
    assert single_class_labels(np.array([0, 0, 1])) == 0


# --- diversity ---------------------------------------------------------------------------------


def test_sigmoid_is_stable_for_large_logits():
    with np.errstate(all="raise"):
        s = sigmoid(np.array([-1000.0, -30.0, 0.0, 30.0, 1000.0]))
    assert s[0] == 0.0
    assert s[2] == 0.5
    assert s[4] == 1.0
    assert s[1] == pytest.approx(math.exp(-30) / (1 + math.exp(-30)), rel=1e-12)


def test_diversity_is_one_when_every_label_scores_the_same():
    logits = np.array([[0.0] * 6, [3.0] * 6, [-5.0] * 6])
    # p = 1/6 per label in every row, entropy log2(6): divided by log2(6) -> 1 (eps aside)
    assert diversity(logits) == pytest.approx(1.0, abs=1e-6)


def test_diversity_near_zero_for_one_hot_scores():
    logits = np.full((2, 5), -30.0)
    logits[0, 0] = 30.0
    logits[1, 3] = 30.0
    # the 1e-9 inside the organisers' log2 makes the dominant term -p*log2(p + 1e-9) a hair
    # below 0, so the value is ~-1e-9 rather than exactly 0
    assert abs(diversity(logits)) < 1e-6


def test_diversity_two_labels_by_hand():
    # sigmoid(0) = 1/2, sigmoid(ln 3) = 3/4; normalised: 0.5/1.25 = 0.4 and 0.75/1.25 = 0.6.
    # Each row's entropy: -(0.4 log2(0.4 + 1e-9) + 0.6 log2(0.6 + 1e-9)) ~ 0.971;
    # two rows with the same entropy: 2 h / ((2 + 1e-9) * log2(2)).
    logits = np.array([[0.0, math.log(3)], [math.log(3), 0.0]])
    h = -(0.4 * math.log2(0.4 + 1e-9) + 0.6 * math.log2(0.6 + 1e-9))
    assert diversity(logits) == pytest.approx(2 * h / ((2 + 1e-9) * 1.0), rel=1e-12)


def test_diversity_needs_two_labels():
    with pytest.raises(ValueError, match="2 labels"):
        diversity(np.zeros((3, 1)))


# --- novelty -----------------------------------------------------------------------------------

NOVELTY_P = [[0.02, 0.05, 0.01, 0.001], [0.001, 0.01, 0.04, 0.03]]
NOVELTY_POPULARITY = np.array([4.0, 3.0, 2.0, 1.0])


def test_novelty_by_hand_k_smaller_than_labels():
    # k = 2: q = popularity / (4 + 3) = [4, 3, 2, 1] / 7.
    # row 0: top-2 s = 0.05 (q 3/7), 0.02 (q 4/7) -> (0.15 + 0.08) / 7 = 0.23 / 7
    # row 1: top-2 s = 0.04 (q 2/7), 0.03 (q 1/7) -> (0.08 + 0.03) / 7 = 0.11 / 7
    # total 0.34 / 7 over 2 rows -> (1 - (0.34 / 7) / (2 + 1e-9)) ** 100 ~ 0.0856
    expected = (1 - (0.34 / 7) / (2 + 1e-9)) ** 100
    got = novelty(logit(NOVELTY_P), NOVELTY_POPULARITY, k=2)
    assert got == pytest.approx(expected, rel=1e-9)


def test_novelty_by_hand_k_larger_than_labels():
    # k = 10 > 4 labels -> k = 4: q = popularity / 10 = [0.4, 0.3, 0.2, 0.1]; every label counts.
    # row 0: 0.02*0.4 + 0.05*0.3 + 0.01*0.2 + 0.001*0.1 = 0.008 + 0.015 + 0.002 + 0.0001 = 0.0251
    # row 1: 0.001*0.4 + 0.01*0.3 + 0.04*0.2 + 0.03*0.1 = 0.0004 + 0.003 + 0.008 + 0.003 = 0.0144
    # (1 - 0.0395 / (2 + 1e-9)) ** 100
    expected = (1 - 0.0395 / (2 + 1e-9)) ** 100
    assert novelty(logit(NOVELTY_P), NOVELTY_POPULARITY) == pytest.approx(expected, rel=1e-9)


def test_novelty_zero_popularity_raises():
    logits = logit(NOVELTY_P)
    with pytest.raises(ValueError, match="sum to 0"):
        novelty(logits, np.zeros(4))
    with pytest.raises(ValueError, match="one value per label"):
        novelty(logits, np.ones(3))


# --- combined scores ---------------------------------------------------------------------------


def test_propensity_score_arithmetic():
    # 0.8 * 0.7 + 0.1 * 0.5 + 0.1 * 0.2 = 0.56 + 0.05 + 0.02 = 0.63
    assert propensity_score(0.7, 0.5, 0.2) == pytest.approx(0.63, abs=1e-12)


def test_score_binary_accepts_a_single_column():
    logits = np.array([[0.1], [0.4], [0.4], [0.8]])
    labels = np.array([[0], [0], [1], [1]])
    assert score_binary(logits, labels) == TaskScore(0.875, None, None, 0.875)


def test_score_propensity_combines_its_parts():
    logits = logit(NOVELTY_P)
    labels = np.array([[1, 0, 0, 1], [0, 1, 1, 0]])
    result = score_propensity(logits, labels, NOVELTY_POPULARITY)
    assert result.auroc == multilabel_auroc(logits, labels)
    assert result.diversity == diversity(logits)
    assert result.novelty == novelty(logits, NOVELTY_POPULARITY)
    assert result.score == pytest.approx(
        0.8 * result.auroc + 0.1 * result.diversity + 0.1 * result.novelty, abs=1e-12
    )
