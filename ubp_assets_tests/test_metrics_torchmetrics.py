"""The numpy AUROCs against torchmetrics 1.3.2, the library the organisers scored with.

torchmetrics is a dev dependency; this file fails, rather than skips, without it. Scores are
float32, as the organisers' models give them, so the two agree to float32 rounding (1e-6).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torchmetrics
from torchmetrics.classification import BinaryAUROC, MultilabelAUROC

from ubp_assets.evaluation.metrics import binary_auroc, multilabel_auroc, single_class_labels

TOL = 1e-6
NO_POSITIVE = "No positive samples in targets"
NO_NEGATIVE = "No negative samples in targets"


def tm_binary(scores: np.ndarray, labels: np.ndarray) -> float:
    metric = BinaryAUROC()
    metric.update(torch.from_numpy(scores), torch.from_numpy(labels))
    return float(metric.compute())


def tm_multilabel(scores: np.ndarray, labels: np.ndarray, average: str | None = "macro"):
    metric = MultilabelAUROC(num_labels=scores.shape[1], average=average)
    metric.update(torch.from_numpy(scores), torch.from_numpy(labels))
    return metric.compute().numpy().astype(np.float64)


def random_case(seed: int, n: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """float32 probabilities and int64 labels that depend on them, so AUROC is well above 0.5."""
    rng = np.random.default_rng(seed)
    probs = rng.random((n, k)).astype(np.float32)
    labels = (rng.random((n, k)) < 0.2 + 0.6 * probs).astype(np.int64)
    return probs, labels


def test_pinned_torchmetrics_version():
    # The organisers' version: the one-class behaviour checked below changed across releases.
    assert torchmetrics.__version__ == "1.3.2"


@pytest.mark.parametrize("seed", range(4))
def test_binary_auroc_matches_torchmetrics_on_random_probabilities(seed):
    probs, labels = random_case(seed, 3000, 1)
    expected = tm_binary(probs[:, 0], labels[:, 0])
    assert 0.6 < expected < 0.9  # a case where ranking matters, not a degenerate one
    assert binary_auroc(probs[:, 0], labels[:, 0]) == pytest.approx(expected, abs=TOL)


def test_binary_auroc_on_moderate_logits_matches_torchmetrics_sigmoid():
    # Scores outside [0, 1] make torchmetrics apply a sigmoid; the numpy AUROC ranks the logits
    # as they are. For |logit| well below 17 float32's sigmoid keeps their order.
    rng = np.random.default_rng(5)
    logits = rng.normal(size=3000).astype(np.float32)
    labels = (rng.random(3000) < 1 / (1 + np.exp(-logits))).astype(np.int64)
    assert binary_auroc(logits, labels) == pytest.approx(tm_binary(logits, labels), abs=TOL)


@pytest.mark.parametrize("seed", range(3))
def test_multilabel_auroc_matches_torchmetrics_macro_on_random_data(seed):
    probs, labels = random_case(10 + seed, 800, 25)
    assert single_class_labels(labels) == 0
    expected = tm_multilabel(probs, labels)
    assert multilabel_auroc(probs, labels) == pytest.approx(float(expected), abs=TOL)


def test_ties_match_torchmetrics():
    # Rounded to one decimal the scores take 11 values: nearly every positive ties negatives,
    # and both sides must count such a pair one half.
    probs, labels = random_case(20, 2000, 12)
    probs = np.round(probs, 1).astype(np.float32)
    assert len(np.unique(probs)) == 11
    for j in range(3):
        got = binary_auroc(probs[:, j], labels[:, j])
        assert got == pytest.approx(tm_binary(probs[:, j], labels[:, j]), abs=TOL)
    expected = float(tm_multilabel(probs, labels))
    assert multilabel_auroc(probs, labels) == pytest.approx(expected, abs=TOL)


def test_one_class_columns_count_as_zero_in_both():
    # The organisers' macro AUROC keeps labels nobody bought in the window: torchmetrics 1.3.2
    # warns, scores them 0.0 (not NaN, not 0.5) and averages them in, and so does the project.
    probs, labels = random_case(30, 500, 8)
    labels[:, [1, 4, 6]] = 0  # nobody bought these
    labels[:, 3] = 1  # everybody bought this
    assert single_class_labels(labels) == 4
    with pytest.warns(UserWarning) as caught:
        per_label = tm_multilabel(probs, labels, average=None)
        macro = float(tm_multilabel(probs, labels))
    messages = {str(w.message).split(",")[0] for w in caught}
    assert messages == {NO_POSITIVE, NO_NEGATIVE}
    np.testing.assert_array_equal(per_label[[1, 3, 4, 6]], 0.0)
    assert macro == pytest.approx(per_label.mean(), abs=TOL)
    mixed = [0, 2, 5, 7]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the project scores them silently
        got = multilabel_auroc(probs, labels)
        for j in mixed:
            col = binary_auroc(probs[:, j], labels[:, j])
            assert col == pytest.approx(per_label[j], abs=TOL)
    # macro = (sum of the four mixed columns + 4 * 0.0) / 8: half the mixed columns' mean
    assert got == pytest.approx(macro, abs=TOL)
    assert got == pytest.approx(per_label[mixed].mean() * 4 / 8, abs=TOL)
    assert got < 0.5  # the zeros drag the score below chance


@pytest.mark.parametrize(("value", "warning"), [(0, NO_POSITIVE), (1, NO_NEGATIVE)])
def test_binary_single_class_is_zero_in_both(value, warning):
    probs = np.array([0.2, 0.9, 0.5, 0.7], dtype=np.float32)
    labels = np.full(4, value, dtype=np.int64)
    with pytest.warns(UserWarning, match=warning):
        assert tm_binary(probs, labels) == 0.0
    assert binary_auroc(probs, labels) == 0.0


def test_large_logits_differ_because_torchmetrics_saturates_float32_sigmoid():
    # The one real difference: float32 sigmoid rounds every logit above about 17 to 1.0, so
    # torchmetrics ties what the numpy AUROC still ranks. Logits 20 (negative) and 30
    # (positive): the project says 1.0, torchmetrics 0.5.
    logits = np.array([20.0, 30.0], dtype=np.float32)
    labels = np.array([0, 1])
    assert binary_auroc(logits, labels) == 1.0
    assert tm_binary(logits, labels) == 0.5
    # In general torchmetrics on float32 logits equals the project on float32 sigmoids.
    rng = np.random.default_rng(40)
    logits = (rng.normal(size=3000) * 20).astype(np.float32)
    labels = (rng.random(3000) < 1 / (1 + np.exp(-logits / 20))).astype(np.int64)
    squashed = torch.from_numpy(logits).sigmoid().numpy()
    assert (squashed == 1.0).mean() > 0.1
    expected = tm_binary(logits, labels)
    assert binary_auroc(squashed, labels) == pytest.approx(expected, abs=TOL)
    assert binary_auroc(logits, labels) - expected > 1e-3
