"""The challenge split, the six tasks' targets and labels, the organisers' baseline and the
submission rules, each against a slow plain-Python reference or values worked out by hand."""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict

import numpy as np
import polars as pl
import pytest

from ubp_assets.evaluation.baseline import BASELINE_DIM, BLOCKS, aggregated_baseline
from ubp_assets.evaluation.split import (
    challenge_split,
    split_from_event_days,
    split_from_events,
)
from ubp_assets.evaluation.submission import (
    StoredEmbeddings,
    read_submission,
    submission_problems,
    write_submission,
)
from ubp_assets.evaluation.targets import TASKS, Targets, build_targets, labels, task_clients
from ubp_assets.events.schema import EVENT_TYPES, EVENTS_SCHEMA
from ubp_assets.storage import day_range, write_day_partitions

# ---- the split -----------------------------------------------------------------------------------


def test_split_dates_follow_the_protocol():
    split = challenge_split(dt.datetime(2022, 11, 9, 22, 10, 32))
    # end - 27 days = 2022-10-13 22:10:32 -> midnight; validation 14 days later
    assert split.train_target_start == dt.datetime(2022, 10, 13)
    assert split.validation_target_start == dt.datetime(2022, 10, 27)
    assert split.input_cutoff == dt.date(2022, 10, 13)


def test_end_date_is_the_latest_buy_not_the_latest_event():
    frame = pl.LazyFrame(
        {
            "event_type": ["product_buy", "product_buy", "page_visit"],
            "timestamp": [
                dt.datetime(2022, 6, 1, 8),
                dt.datetime(2022, 6, 30, 23, 59, 59),
                dt.datetime(2022, 7, 20),
            ],
        }
    )
    split = split_from_events(frame)
    assert split.end_date == dt.datetime(2022, 6, 30, 23, 59, 59)
    assert split.train_target_start == dt.datetime(2022, 6, 3)  # June 30 - 27 days
    with pytest.raises(ValueError, match="no product_buy"):
        split_from_events(frame.filter(pl.col("event_type") == "page_visit"))


def test_the_split_from_stored_days_equals_the_split_over_every_event(tmp_path):
    frame = pl.DataFrame(
        {
            "event_type": ["product_buy", "product_buy", "page_visit", "product_buy"],
            "timestamp": [
                dt.datetime(2022, 6, 1, 8),
                dt.datetime(2022, 6, 30, 23, 59, 59),
                dt.datetime(2022, 7, 20),  # later days hold no purchase
                dt.datetime(2022, 6, 30, 9),
            ],
        }
    ).with_columns(date=pl.col("timestamp").dt.date())
    write_day_partitions(frame, tmp_path, day_range(dt.date(2022, 6, 1), dt.date(2022, 7, 21)))
    assert split_from_event_days(tmp_path) == split_from_events(frame.lazy())
    assert split_from_event_days(tmp_path).end_date == dt.datetime(2022, 6, 30, 23, 59, 59)
    visits = frame.filter(pl.col("event_type") == "page_visit")
    write_day_partitions(visits, tmp_path / "visits", [dt.date(2022, 7, 20)])
    with pytest.raises(ValueError, match="no product_buy"):
        split_from_event_days(tmp_path / "visits")


# ---- random event logs and slow references -------------------------------------------------------

START = dt.datetime(2022, 9, 1)
SPLIT = challenge_split(dt.datetime(2022, 10, 30, 18))  # input before 2022-10-04


def random_events(seed: int, clients: int = 60, n: int = 4000) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    kinds = rng.choice(len(EVENT_TYPES), n, p=[0.2, 0.15, 0.1, 0.4, 0.15])
    seconds = rng.integers(0, 60 * 86400, n)
    sku = rng.integers(1, 40, n)
    product = pl.Series(np.isin(kinds, [0, 1, 2]))
    frame = pl.DataFrame(
        {
            "client_id": rng.integers(1, clients + 1, n),
            "timestamp": [START + dt.timedelta(seconds=int(s)) for s in seconds],
            "event_type": [EVENT_TYPES[k] for k in kinds],
            "sku": sku,
            "url": rng.integers(1, 25, n),
            "query": rng.integers(0, 256, (n, 16)).tolist(),
        }
    ).with_columns(
        pl.when(product).then(pl.col("sku")),
        pl.when(product).then(pl.col("sku") % 7).alias("category"),
        pl.when(product).then(pl.col("sku") % 11).alias("price"),
        pl.when(pl.col("event_type") == "page_visit").then(pl.col("url")).alias("url"),
        pl.when(pl.col("event_type") == "search_query").then(pl.col("query")).alias("query"),
    )
    return frame.select(EVENTS_SCHEMA.names()).cast(dict(EVENTS_SCHEMA))


def top_values(counter: Counter, n: int) -> list[int]:
    return [v for v, _ in sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))[:n]]


def reference_targets(rows: list[dict], relevant: set[int], top_n: int):
    split = SPLIT
    buys = [r for r in rows if r["event_type"] == "product_buy"]
    inputs = [r for r in rows if r["timestamp"] < split.train_target_start]
    train = [
        r
        for r in buys
        if split.train_target_start <= r["timestamp"] < split.validation_target_start
    ]
    valid = [r for r in buys if split.validation_target_start <= r["timestamp"] <= split.end_date]
    input_buys = [r for r in inputs if r["event_type"] == "product_buy"]
    values, popularity = {}, {}
    for task, column in (("propensity_category", "category"), ("propensity_sku", "sku")):
        values[task] = top_values(Counter(r[column] for r in train), top_n)
        history = Counter(r[column] for r in input_buys)
        popularity[task] = [history[v] for v in values[task]]
    seen = {r["sku"] for r in inputs if r["sku"] is not None}
    new = Counter(r["sku"] for r in train if r["sku"] not in seen)
    values["propensity_new_sku"] = top_values(new, top_n)
    window = Counter(r["sku"] for r in train)
    popularity["propensity_new_sku"] = [window[v] for v in values["propensity_new_sku"]]
    values["propensity_price"] = list(range(100))
    history = Counter(r["price"] for r in input_buys)
    popularity["propensity_price"] = [history[v] for v in range(100)]
    active = sorted({r["client_id"] for r in input_buys} & relevant)
    return values, popularity, active, train, valid


def reference_labels(task_name: str, client_ids, window_rows, values):
    task = TASKS[task_name]
    by_client = defaultdict(set)
    bought = set()
    for r in window_rows:
        bought.add(r["client_id"])
        if task.column:
            by_client[r["client_id"]].add(r[task.column])
    if task.column is None:
        return np.array([[0.0 if c in bought else 1.0] for c in client_ids], dtype=np.float32)
    return np.array(
        [[1.0 if v in by_client[c] else 0.0 for v in values] for c in client_ids],
        dtype=np.float32,
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_targets_and_labels_match_a_slow_reference(seed):
    frame = random_events(seed)
    relevant = np.arange(1, 71, dtype=np.int64)[::-1].copy()  # some without events, reversed
    top_n = 8  # fewer values than distinct ones, so the ranking and its ties matter
    built = build_targets(frame.lazy(), SPLIT, relevant, top_n=top_n)
    rows = frame.to_dicts()
    rel_rows = [r for r in rows if r["client_id"] in set(relevant.tolist())]
    values, _, active, train, valid = reference_targets(rel_rows, set(relevant), top_n)
    # the target lists come from every client's buys, as the organisers' lists do
    all_values, all_popularity, _, _, _ = reference_targets(rows, set(relevant), top_n)
    for task in values:
        assert built.values[task].tolist() == all_values[task], task
        assert built.popularity[task].tolist() == all_popularity[task], task
    assert built.active_clients.tolist() == active
    assert built.train_target.height == len(train)
    assert built.validation_target.height == len(valid)

    for name, task in TASKS.items():
        ids = relevant[task_clients(task, relevant, built)]
        if task.active_only:
            assert sorted(ids.tolist()) == active
        for window, ref_rows in ((built.train_target, train), (built.validation_target, valid)):
            got = labels(task, ids, window, built)
            want = reference_labels(name, ids.tolist(), ref_rows, built.values.get(name, []))
            np.testing.assert_array_equal(got, want, err_msg=name)


def test_targets_round_trip_through_the_organisers_layout(tmp_path):
    built = build_targets(random_events(3).lazy(), SPLIT, np.arange(1, 61, dtype=np.int64))
    built.write(tmp_path)
    assert (tmp_path / "propensity_sku.npy").is_file()
    assert (tmp_path / "popularity_propensity_sku.npy").is_file()
    again = Targets.read(tmp_path)
    for task, values in built.values.items():
        np.testing.assert_array_equal(again.values[task], values)
        np.testing.assert_array_equal(again.popularity[task], built.popularity[task])
    assert again.train_target.equals(built.train_target)


def test_new_skus_are_absent_from_every_input_event():
    built = build_targets(random_events(4, n=6000).lazy(), SPLIT, np.arange(1, 61))
    frame = random_events(4, n=6000)
    seen = set(
        frame.filter(pl.col("timestamp") < SPLIT.train_target_start)["sku"].drop_nulls().to_list()
    )
    assert not seen & set(built.values["propensity_new_sku"].tolist())
    assert (built.popularity["propensity_new_sku"] > 0).all()


# ---- the organisers' baseline --------------------------------------------------------------------


def reference_baseline(rows: list[dict], relevant: list[int], cutoff: dt.datetime) -> np.ndarray:
    """The organisers' calculators, client by client, on time-sorted events."""
    rel = set(relevant)
    rows = [r for r in rows if r["timestamp"] < cutoff and r["client_id"] in rel]
    out = {c: [] for c in relevant}
    for event_type, columns in BLOCKS.items():
        typed = sorted((r for r in rows if r["event_type"] == event_type), key=lambda r: r["ts"])
        if not columns:
            for c in relevant:
                queries = [r["query"] for r in typed if r["client_id"] == c]
                out[c] += list(np.mean(queries, axis=0)) if queries else [0.0] * 16
            continue
        latest = max((r["timestamp"] for r in typed), default=None)
        tops = {
            col: top_values(Counter(r[col] for r in typed if r[col] is not None), 10)
            for col in columns
        }
        for c in relevant:
            mine = [r for r in typed if r["client_id"] == c]
            block = [float(len(mine))]
            for days in (1, 7, 30):
                recent = [
                    r for r in mine if latest and r["timestamp"] >= latest - dt.timedelta(days)
                ]
                for col in columns:
                    counts = Counter(r[col] for r in recent)
                    block += [float(counts[v]) for v in tops[col]] + [0.0] * (10 - len(tops[col]))
            out[c] += block
    return np.array([out[c] for c in relevant], dtype=np.float64)


def test_aggregated_baseline_matches_the_organisers_calculators():
    frame = random_events(5, clients=30, n=3000).with_row_index("ts")
    relevant = [3, 1, 2, *range(4, 36)]  # 31..35 have no events: zero rows
    got = aggregated_baseline(frame.lazy(), np.array(relevant), SPLIT.train_target_start)
    want = reference_baseline(frame.to_dicts(), relevant, SPLIT.train_target_start)
    assert got.shape == (len(relevant), BASELINE_DIM) == (35, 320)
    np.testing.assert_allclose(got, want, rtol=1e-6)
    assert not got[-4:].any()


# ---- the submission format -----------------------------------------------------------------------


def test_valid_submission_round_trips_and_passes(tmp_path):
    relevant = np.array([5, 3, 9], dtype=np.int64)
    write_submission(tmp_path, relevant[::-1], np.ones((3, 4)))
    ids, vectors = read_submission(tmp_path)
    assert ids.dtype == np.int64 and vectors.dtype == np.float16
    assert submission_problems(ids, vectors, relevant) == []


@pytest.mark.parametrize(
    ("ids", "vectors", "problem"),
    [
        (np.array([1, 2, 3]), np.ones((3, 2), np.float32), "float16"),
        (np.array([1, 2, 3]), np.ones((3, 2049), np.float16), "at most 2048"),
        (np.array([1, 2, 2]), np.ones((3, 2), np.float16), "duplicated"),
        (np.array([1, 2]), np.ones((2, 2), np.float16), "1 missing"),
        (np.array([1, 2, 4]), np.ones((3, 2), np.float16), "1 not relevant"),
        (np.array([1, 2, 3]), np.full((3, 2), np.nan, np.float16), "NaN"),
        (np.array([1, 2, 3]), np.ones((2, 2), np.float16), "2 embedding rows"),
        (np.array([1, 2, 3], np.int32), np.ones((3, 2), np.float16), "int64"),
    ],
)
def test_each_broken_rule_is_reported(ids, vectors, problem, tmp_path):
    relevant = np.array([1, 2, 3], dtype=np.int64)
    found = submission_problems(ids.astype(ids.dtype), vectors, relevant)
    assert any(problem in p for p in found), found
    np.save(tmp_path / "embeddings.npy", vectors)
    stored = StoredEmbeddings.open(tmp_path / "embeddings.npy")
    assert submission_problems(ids, stored, relevant) == found  # the file read in blocks


def test_stored_embeddings_are_read_in_blocks_as_numpy_loads_them(tmp_path):
    values = np.arange(70, dtype=np.float16).reshape(10, 7)
    values[1, 1], values[8, 3] = np.nan, np.inf
    np.save(tmp_path / "c.npy", values)
    np.save(tmp_path / "f.npy", np.asfortranarray(values))
    stored = StoredEmbeddings.open(tmp_path / "c.npy")
    assert (stored.shape, stored.dtype) == ((10, 7), np.float16)
    blocks = list(stored.blocks(rows=3))
    assert [len(b) for b in blocks] == [3, 3, 3, 1]
    np.testing.assert_array_equal(np.concatenate(blocks), values)
    np.testing.assert_array_equal(stored.head(2), values[:2])
    assert stored.nonfinite() == 2
    column_major = StoredEmbeddings.open(tmp_path / "f.npy")
    np.testing.assert_array_equal(np.concatenate(list(column_major.blocks(rows=3))), values)
    assert column_major.nonfinite() == 2


def test_writing_refuses_values_float16_cannot_hold(tmp_path):
    with pytest.raises(ValueError, match="NaN"):
        write_submission(tmp_path, np.array([1]), np.array([[np.nan]]))
    with pytest.raises(ValueError, match="overflow"):
        write_submission(tmp_path, np.array([1]), np.array([[1e6]]))
    assert not (tmp_path / "embeddings.npy").exists()
