"""Feature families: exact folding, no leakage, sessions across midnight, against a plain
reference computed over all events at once."""

from __future__ import annotations

import datetime as dt
import itertools
import math
from collections import defaultdict

import numpy as np
import polars as pl
import pytest

from ubp_assets.events.schema import EVENT_TYPES, EVENTS_SCHEMA
from ubp_assets.features import session
from ubp_assets.features.pipeline import FEATURES, FOLDS, compute_partials, fold_families

START = dt.datetime(2022, 6, 1)
DAYS = 12
CUTOFF = dt.date(2022, 6, 11)


def random_log(seed: int, n_clients: int = 25) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Events in the table's schema over 12 days, and product names; with bursts around midnight."""
    rng = np.random.default_rng(seed)
    n_skus = 40
    skus = pl.DataFrame(
        {
            "sku": np.arange(100, 100 + n_skus, dtype=np.int64),
            "category": rng.integers(0, 8, n_skus).astype(np.int64),
            "price": rng.integers(0, 100, n_skus).astype(np.int16),
            "name": rng.integers(0, 256, (n_skus, 16)).astype(np.uint8),
        }
    ).with_columns(pl.col("name").cast(pl.Array(pl.UInt8, 16)))
    rows = []
    for client in range(n_clients):
        n = int(rng.integers(1, 60))
        seconds = set()
        # Sessions: random starts, a few right before midnight so they cross it.
        for _ in range(int(rng.integers(1, 8))):
            day = int(rng.integers(0, DAYS))
            start = day * 86400 + (
                86400 - int(rng.integers(60, 1800))
                if rng.random() < 0.3
                else int(rng.integers(0, 86000))
            )
            t = start
            for _ in range(int(rng.integers(1, max(2, n // 3)))):
                t += (
                    int(rng.integers(1, 900))
                    if rng.random() < 0.85
                    else int(rng.integers(1900, 20000))
                )
                seconds.add(t)
        for t in sorted(seconds):
            if t >= DAYS * 86400:
                continue
            kind = EVENT_TYPES[int(rng.choice(5, p=[0.08, 0.15, 0.07, 0.6, 0.1]))]
            sku = int(rng.integers(100, 100 + n_skus)) if kind in EVENT_TYPES[:3] else None
            rows.append(
                {
                    "client_id": client,
                    "timestamp": START + dt.timedelta(seconds=t),
                    "event_type": kind,
                    "sku": sku,
                    "url": int(rng.integers(0, 30)) if kind == "page_visit" else None,
                    "query": rng.integers(0, 256, 16).tolist() if kind == "search_query" else None,
                }
            )
    frame = pl.DataFrame(rows).with_columns(
        pl.col("event_type").cast(EVENTS_SCHEMA["event_type"]),
        pl.col("query").cast(pl.Array(pl.UInt8, 16)),
    )
    events = (
        frame.join(skus.select("sku", "category", "price"), on="sku", how="left")
        .select(
            *[pl.col(c).cast(t) for c, t in EVENTS_SCHEMA.items()],
            pl.col("timestamp").dt.date().alias("date"),
        )
        .sort("client_id", "timestamp", "event_type")
    )
    return events, skus.select("sku", "name")


def per_day_partials(events: pl.DataFrame, names: pl.DataFrame) -> dict[str, pl.DataFrame]:
    """Each day's partials computed on their own, as daily partitions are."""
    days = [compute_partials(day.lazy(), names.lazy()) for day in events.partition_by("date")]
    return {k: pl.concat([d[k] for d in days], how="diagonal_relaxed") for k in days[0]}


def assert_same(a: pl.DataFrame, b: pl.DataFrame) -> None:
    assert a.columns == b.columns
    assert a["client_id"].to_list() == b["client_id"].to_list()
    for column in a.columns[1:]:
        x = a[column].cast(pl.Float64).to_numpy()
        y = b[column].cast(pl.Float64).to_numpy()
        np.testing.assert_allclose(x, y, rtol=1e-9, atol=1e-9, equal_nan=True, err_msg=column)


@pytest.mark.parametrize("seed", range(4))
def test_folding_daily_partials_equals_one_pass_over_all_days(seed):
    events, names = random_log(seed)
    one_pass = fold_families(compute_partials(events.lazy(), names.lazy()), CUTOFF)
    daily = fold_families(per_day_partials(events, names), CUTOFF)
    for family in FOLDS:
        assert_same(daily[family], one_pass[family])


def test_every_registered_feature_is_produced_once():
    events, names = random_log(0)
    tables = fold_families(compute_partials(events.lazy(), names.lazy()), CUTOFF)
    produced = [c for t in tables.values() for c in t.columns if c != "client_id"]
    assert len(produced) == len(set(produced))
    assert set(produced) == set(FEATURES)
    for family, table in tables.items():
        assert all(FEATURES[c].family == family for c in table.columns[1:])


@pytest.mark.parametrize("seed", range(3))
def test_features_ignore_everything_at_or_after_the_cutoff(seed):
    events, names = random_log(seed)
    before = events.filter(pl.col("date") < CUTOFF)
    later, _ = random_log(seed + 100)
    later = later.filter(pl.col("date") >= CUTOFF)
    assert later.height > 0
    with_future = pl.concat([events, later]).sort("client_id", "timestamp", "event_type")
    a = fold_families(compute_partials(before.lazy(), names.lazy()), CUTOFF)
    b = fold_families(compute_partials(with_future.lazy(), names.lazy()), CUTOFF)
    for family in FOLDS:
        assert_same(a[family], b[family])


def _events(*times: str, client: int = 1) -> pl.DataFrame:
    stamps = [dt.datetime.fromisoformat(t) for t in times]
    return pl.DataFrame(
        {
            "client_id": [client] * len(stamps),
            "timestamp": stamps,
            "event_type": ["page_visit"] * len(stamps),
            "url": [1] * len(stamps),
        }
    ).select(
        *[
            (pl.col(c) if c in ("client_id", "timestamp", "event_type", "url") else pl.lit(None))
            .cast(t)
            .alias(c)
            for c, t in EVENTS_SCHEMA.items()
        ],
        pl.col("timestamp").dt.date().alias("date"),
    )


def _sessions(events: pl.DataFrame) -> pl.DataFrame:
    fragments = pl.concat(
        [session.partial(d.lazy()).collect() for d in events.partition_by("date")]
    )
    return session.merge_sessions(fragments.lazy()).collect()


def test_a_session_across_midnight_counts_once():
    merged = _sessions(_events("2022-06-01 23:50:00", "2022-06-02 00:10:00", "2022-06-02 00:35:00"))
    assert merged.height == 1
    assert merged["n_events"].to_list() == [3]
    assert (merged["end"] - merged["start"]).to_list() == [dt.timedelta(minutes=45)]


def test_a_gap_of_more_than_30_minutes_across_midnight_splits():
    merged = _sessions(_events("2022-06-01 23:50:00", "2022-06-02 00:20:01"))
    assert merged.height == 2
    exactly = _sessions(_events("2022-06-01 23:50:00", "2022-06-02 00:20:00"))
    assert exactly.height == 1  # a gap of exactly 30 minutes does not split


# ---- a plain reference over all events at once -------------------------------------------------


def reference(events: pl.DataFrame, cutoff: dt.date) -> dict[int, dict[str, float]]:
    """A few features of every family, computed per client with plain Python."""
    rows = events.filter(pl.col("date") < cutoff).sort("client_id", "timestamp").to_dicts()
    by_client = defaultdict(list)
    for row in rows:
        by_client[row["client_id"]].append(row)
    cutoff_dt = dt.datetime.combine(cutoff, dt.time())
    out = {}
    for client, evs in by_client.items():
        f: dict[str, float] = {}
        n = len(evs)
        hours = [
            e["timestamp"].hour + e["timestamp"].minute / 60 + e["timestamp"].second / 3600
            for e in evs
        ]
        f["temporal_events"] = n
        f["temporal_hour_sin_mean"] = sum(math.sin(2 * math.pi * h / 24) for h in hours) / n
        f["temporal_active_days"] = len({e["date"] for e in evs})
        f["temporal_rate_7d"] = sum(1 for e in evs if (cutoff - e["date"]).days <= 7) / 7
        f["temporal_weekend_share"] = sum(1 for e in evs if e["date"].weekday() >= 5) / n
        # sessions
        sessions, current = [], [evs[0]]
        for prev, e in itertools.pairwise(evs):
            if e["timestamp"] - prev["timestamp"] > dt.timedelta(minutes=30):
                sessions.append(current)
                current = []
            current.append(e)
        sessions.append(current)
        durations = [(s[-1]["timestamp"] - s[0]["timestamp"]).total_seconds() for s in sessions]
        f["session_count"] = len(sessions)
        f["session_duration_mean"] = float(np.mean(durations))
        f["session_duration_var"] = float(np.var(durations))
        gaps = [
            (b[0]["timestamp"] - a[-1]["timestamp"]).total_seconds() / 3600
            for a, b in itertools.pairwise(sessions)
        ]
        f["session_gap_median_hours"] = float(np.median(gaps)) if gaps else None
        # behavioral
        sku_evs = [e for e in evs if e["sku"] is not None]
        if sku_evs:
            f["behavioral_unique_skus"] = len({e["sku"] for e in sku_evs})
            counts = defaultdict(int)
            for e in sku_evs:
                counts[e["category"]] += 1
            total = sum(counts.values())
            f["behavioral_category_entropy"] = -sum(
                c / total * math.log2(c / total) for c in counts.values()
            )
            xs = sorted(counts.values())
            k = len(xs)
            f["behavioral_category_gini"] = (
                2 * sum((i + 1) * x for i, x in enumerate(xs)) / (k * sum(xs)) - (k + 1) / k
            )
        visits = [e for e in evs if e["event_type"] == "page_visit"]
        if visits:
            f["behavioral_url_exploration_rate"] = len({e["url"] for e in visits}) / len(visits)
        # conversion
        carted = {e["sku"] for e in evs if e["event_type"] == "add_to_cart"}
        bought = {e["sku"] for e in evs if e["event_type"] == "product_buy"}
        if carted:
            f["conversion_cart_abandonment_rate"] = len(carted - bought) / len(carted)
        with_cart = [s for s in sessions if any(e["event_type"] == "add_to_cart" for e in s)]
        if with_cart:
            converted = 0
            for s in with_cart:
                first_cart = min(e["timestamp"] for e in s if e["event_type"] == "add_to_cart")
                buys = [e["timestamp"] for e in s if e["event_type"] == "product_buy"]
                converted += bool(buys) and max(buys) > first_cart
            f["conversion_same_session_conversion_rate"] = converted / len(with_cart)
        # advanced
        buy_days = sorted({e["date"] for e in evs if e["event_type"] == "product_buy"})
        if len(buy_days) >= 2:
            f["advanced_purchase_interval_mean"] = float(
                np.mean([(b - a).days for a, b in itertools.pairwise(buy_days)])
            )
        shifts = []
        for s in sessions:
            if len(s) >= 2:
                half = len(s) // 2
                early, late = s[:half], s[half:]
                share = lambda part: sum(e["event_type"] == "page_visit" for e in part) / len(part)  # noqa: E731
                shifts.append(share(early) - share(late))
        if shifts:
            f["advanced_progression_visit_shift"] = float(np.mean(shifts))
        # identity
        f["identity_buy_7d"] = sum(
            1
            for e in evs
            if e["event_type"] == "product_buy"
            and e["timestamp"] >= cutoff_dt - dt.timedelta(days=7)
        )
        queries = [e["query"] for e in evs if e["event_type"] == "search_query"]
        if queries:
            f["identity_query_mean_00"] = float(np.mean([q[0] for q in queries]))
        out[client] = f
    return out


@pytest.mark.parametrize("seed", range(4))
def test_folded_features_match_a_plain_computation_over_all_events(seed):
    events, names = random_log(seed)
    tables = fold_families(per_day_partials(events, names), CUTOFF)
    expected = reference(events, CUTOFF)
    checked = 0
    for table in tables.values():
        for row in table.to_dicts():
            for name, value in expected.get(row["client_id"], {}).items():
                if name in row:
                    want = value
                    got = row[name]
                    if want is None:
                        assert got is None, (name, row["client_id"])
                    else:
                        assert got == pytest.approx(want, rel=1e-9, abs=1e-9), (
                            name,
                            row["client_id"],
                        )
                    checked += 1
    assert checked > 25 * 15  # every client, most of the features above
