"""The history bound: fresh clients of the release's generator, a predictor that reads no event
after the cutoff and learns, and each method's share of what the history can show."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest

from ubp_assets.evaluation.history_bound import (
    BoundConfig,
    history_bound,
    history_shares,
    population_chunks,
    population_size,
    training_rows,
)
from ubp_assets.evaluation.metrics import binary_auroc
from ubp_assets.features.activity_profile import TARGETS, next_weeks
from ubp_assets.synthetic import get_scale

SCALE = get_scale("tiny")
DAY = dt.timedelta(days=1)
CUTOFF = dt.datetime.combine(SCALE.last_day - dt.timedelta(days=27), dt.time())


def test_shares_of_the_history_bound_on_hand_made_scores():
    methods = ["aggregated_baseline", "universal", "oracle"]
    scores = pl.DataFrame(
        {
            "method": methods * 3,
            "task": ["churn"] * 3 + ["conversion"] * 3 + ["propensity_sku"] * 3,
            "score": [0.70, 0.78, 0.85, 0.60, 0.61, 0.90, 0.5, 0.6, 0.7],
            "gap_closed": [0.0, 8 / 15, 1.0, 0.0, 1 / 30, 1.0, 0.0, 0.5, 1.0],
        }
    )
    bound = pl.DataFrame(
        {
            "method": ["history_bound"] * 2,
            "task": ["churn", "conversion"],
            "score": [0.80, 0.59],  # no better than the baseline on conversion
            "gap_closed": [2 / 3, -1 / 30],
        }
    )
    out = {(r["method"], r["task"]): r for r in history_shares(scores, bound).iter_rows(named=True)}
    assert {t for _, t in out} == {"churn", "conversion"}  # the bound's tasks only
    assert out[("universal", "churn")]["history_share"] == pytest.approx(0.8)
    assert out[("history_bound", "churn")]["history_share"] == pytest.approx(1.0)
    assert out[("aggregated_baseline", "churn")]["history_share"] == pytest.approx(0.0)
    assert out[("oracle", "churn")]["history_share"] == pytest.approx(1.5)
    assert out[("universal", "churn")]["gap_closed"] == pytest.approx(8 / 15)  # carried over
    # a bound that does not beat the baseline measures nothing: no share, not a negative ratio
    assert out[("universal", "conversion")]["history_share"] is None


@pytest.fixture(scope="module")
def population():
    clients = population_size(SCALE)
    assert clients == 20 * SCALE.n_clients
    events = pl.concat([c.collect() for c in population_chunks(SCALE, 7, clients)])
    return events


def test_the_population_is_new_clients_drawn_like_the_release(population, tiny_release):
    ids = population["client_id"].unique()
    assert (ids < 0).all() and ids.len() <= 20 * SCALE.n_clients
    release = pl.read_parquet(tiny_release / "page_visit.parquet")
    assert not set(ids.to_list()) & set(release["client_id"].to_list())
    again = pl.concat([c.collect() for c in population_chunks(SCALE, 7, 3_000)])
    first = population.filter(pl.col("client_id") >= -3_000)
    assert again.sort(pl.all()).equals(first.sort(pl.all()))  # seeded
    assert population["timestamp"].min() >= dt.datetime.combine(SCALE.first_day, dt.time())
    # the same generator's clients: page visits per client with any, as in the release
    visits = population.filter(pl.col("event_type") == "page_visit").group_by("client_id").len()
    per_release = release.group_by("client_id").len()["len"].mean()
    assert visits["len"].mean() == pytest.approx(per_release, rel=0.2)


def test_the_bound_learns_and_reads_no_evaluated_event_after_the_cutoff(population):
    x, y = training_rows([population.lazy()], CUTOFF)
    assert x.shape[0] == y.shape[0] and y.shape[1] == 2
    assert 0.0 < y.mean() < 0.5
    held_out = pl.concat([c.collect() for c in population_chunks(SCALE, 8, 6_000)])
    ids = held_out.filter(pl.col("timestamp") < CUTOFF)["client_id"].unique().sort().to_numpy()
    config = BoundConfig(max_epochs=4)
    bound = history_bound(
        x, y, evaluated=held_out.lazy(), client_ids=ids, cutoff=CUTOFF, config=config
    )
    assert bound.logits.shape == (len(ids), 2) and 1 <= bound.best_epoch <= 4
    # it ranks buyers of each window above non-buyers among clients it never trained on
    for k in range(2):
        window = next_weeks(held_out.lazy(), ids, CUTOFF + 14 * k * DAY, 14 * DAY)
        bought = window[:, TARGETS.index("buys")]
        assert binary_auroc(bound.logits[:, k], bought) > 0.7
    # the evaluated clients' events at or after the cutoff change nothing
    before = held_out.filter(pl.col("timestamp") < CUTOFF).lazy()
    same = history_bound(x, y, evaluated=before, client_ids=ids, cutoff=CUTOFF, config=config)
    np.testing.assert_array_equal(bound.logits, same.logits)
