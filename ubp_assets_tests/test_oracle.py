"""The ceiling: the oracle from the latent truth, the gap-closed figures, and the rule that only
the oracle reads the truth."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from ubp_assets.definitions import load_stage_definitions
from ubp_assets.evaluation.oracle import Windows, _beta_cdf, gap_closed, oracle_embedding
from ubp_assets.synthetic import get_scale
from ubp_assets.synthetic.release import TRUTH_FILE

TRUTH_KEY = "raw/synthetic_truth"


def test_gap_closed_on_hand_made_scores():
    scores = pl.DataFrame(
        {
            "method": ["aggregated_baseline"] * 3 + ["mine"] * 3 + ["oracle"] * 3,
            "task": ["churn", "propensity_sku", "propensity_new_sku"] * 3,
            "score": [0.70, 0.50, 0.25, 0.79, 0.62, 0.20, 0.80, 0.60, 0.24],
        }
    )
    out = {(r["method"], r["task"]): r for r in gap_closed(scores).iter_rows(named=True)}
    assert out[("mine", "churn")]["gap_closed"] == pytest.approx(0.9)
    assert out[("mine", "propensity_sku")]["gap_closed"] == pytest.approx(1.2)  # beyond the oracle
    # the oracle does not beat the baseline here: no gap to close, not a division by a negative
    assert out[("mine", "propensity_new_sku")]["gap_closed"] is None
    assert out[("oracle", "churn")]["gap_closed"] == pytest.approx(1.0)
    assert out[("aggregated_baseline", "churn")]["gap_closed"] == 0.0
    # the total compares the sums over tasks: (1.61 - 1.45) / (1.64 - 1.45)
    assert out[("mine", "churn")]["gap_closed_total"] == pytest.approx(0.16 / 0.19)


def test_without_an_oracle_every_gap_is_empty():
    scores = pl.DataFrame(
        {"method": ["aggregated_baseline", "mine"], "task": ["churn"] * 2, "score": [0.7, 0.8]}
    )
    out = gap_closed(scores)
    assert out["gap_closed"].is_null().all() and out["gap_closed_total"].is_null().all()


def test_beta_cdf_matches_closed_forms():
    u = np.linspace(0, 1, 11)[None, :].repeat(3, axis=0)
    a, b = np.array([1.0, 2.0, 1.0]), np.array([1.0, 1.0, 3.0])
    cdf = _beta_cdf(a, b, u)
    np.testing.assert_allclose(cdf[0], u[0], atol=1e-3)  # uniform
    np.testing.assert_allclose(cdf[1], u[1] ** 2, atol=1e-3)  # Beta(2, 1)
    np.testing.assert_allclose(cdf[2], 1 - (1 - u[2]) ** 3, atol=1e-3)  # Beta(1, 3)


@pytest.fixture(scope="module")
def oracle_inputs(tiny_release):
    truth = pl.read_parquet(tiny_release / TRUTH_FILE)
    products = pl.read_parquet(tiny_release / "product_properties.parquet")
    ids = np.load(tiny_release / "input" / "relevant_clients.npy")
    values = {
        "propensity_category": products["category"].unique().sort()[:20].to_numpy(),
        "propensity_sku": products["sku"][:30].to_numpy(),
        "propensity_price": np.arange(100),
    }
    scale = get_scale("tiny")
    return truth, products, ids, values, Windows(target_start=scale.days - 28, days=scale.days)


def test_the_oracle_is_one_standardised_row_per_client(oracle_inputs):
    truth, products, ids, values, windows = oracle_inputs
    matrix = oracle_embedding(truth, ids, products, values, windows, chunk_clients=300)
    assert matrix.shape == (len(ids), matrix.shape[1]) and matrix.dtype == np.float32
    assert matrix.shape[1] == 25 + 20 + 30 + 100
    assert np.isfinite(matrix).all()
    moving = matrix.std(axis=0) > 0
    np.testing.assert_allclose(matrix[:, moving].mean(axis=0), 0, atol=1e-4)
    # chunking is an implementation detail: the same rows in one chunk
    whole = oracle_embedding(truth, ids, products, values, windows, chunk_clients=10**6)
    np.testing.assert_allclose(matrix, whole, atol=1e-5)
    # rows follow the order of the ids asked for
    reversed_ = oracle_embedding(truth, ids[::-1], products, values, windows)
    np.testing.assert_allclose(reversed_[::-1], whole, atol=1e-5)


def test_clients_without_truth_are_refused(oracle_inputs):
    truth, products, ids, values, windows = oracle_inputs
    with pytest.raises(ValueError, match="no latent truth"):
        oracle_embedding(truth, np.append(ids, -5), products, values, windows)


def test_the_latent_truth_feeds_the_oracle_alone():
    graph = load_stage_definitions().resolve_asset_graph()
    truth = next(k for k in graph.get_all_asset_keys() if k.to_user_string() == TRUTH_KEY)
    readers = {k.to_user_string() for k in graph.get(truth).child_keys}
    assert readers == {"oracle_embeddings"}
    downstream = set()
    frontier = set(graph.get(truth).child_keys)
    while frontier:
        key = frontier.pop()
        downstream.add(key.to_user_string())
        frontier |= set(graph.get(key).child_keys)
    # what the truth reaches is the oracle and the reports that score it: no feature, model or
    # embedding of any other method
    assert downstream == {"oracle_embeddings", "probe_scores", "history_bound_scores"}
