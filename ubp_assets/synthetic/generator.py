"""A synthetic RecSys Challenge 2025 release, drawn from latent per-client traits.

Clients have hidden traits (activity, category tastes, loyalty, price sensitivity, conversion
propensity, a daily and weekly rhythm, and for some an end of engagement). Sessions and funnels are
drawn from those traits, so that the history reveals them only through noisy behaviour and the
target windows depend on them: the downstream tasks are learnable but not trivial.

Everything is vectorised numpy over chunks of clients, so memory is bounded by the chunk size and
the output is a function of (scale, seed) alone.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import polars as pl

from ubp_assets.synthetic.scales import TARGET_DAYS, Scale

EVENT_FILES = ("product_buy", "add_to_cart", "remove_from_cart", "page_visit", "search_query")
VECTOR_DIM = 16
SECONDS_PER_DAY = 86_400
FAV_CATEGORY_SLOTS = 6
FAV_SKU_SLOTS = 8
NEW_SKU_SHARE = 0.15
NEW_SKU_HYPE = 6.0
# Shopping by weekday (Monday first): a little more early in the week, least on Saturday.
WEEKDAY_RHYTHM = np.array([1.0, 0.97, 0.95, 0.92, 0.88, 0.72, 0.85])


@dataclass(frozen=True)
class Catalog:
    """Products and the category tree, shared by every chunk of clients."""

    sku_id: np.ndarray  # int64, opaque ids
    sku_category: np.ndarray  # int, category index
    sku_price: np.ndarray  # int, bucket 0..99
    sku_launch_day: np.ndarray  # int, day index (<= 0: before the history)
    sku_url: np.ndarray  # int64, product page url id
    sku_name: np.ndarray  # uint8 (n_skus, 16)
    category_id: np.ndarray  # int64, opaque ids
    category_center: np.ndarray  # float (n_categories, 16)
    category_weight: np.ndarray  # float, popularity
    category_price_level: np.ndarray  # float, mean price bucket
    generic_urls: np.ndarray  # int64, non-product pages
    # SKUs sorted by category with a running popularity sum, for per-category sampling.
    by_category: np.ndarray
    cum_weight: np.ndarray
    category_lo: np.ndarray
    category_hi: np.ndarray
    category_top_sku: np.ndarray


def _opaque_ids(n: int, rng: np.random.Generator) -> np.ndarray:
    """Distinct, unordered int64 ids: a random affine permutation of a range a little larger."""
    span = int(n * 1.3) + 11
    multiplier = int(rng.integers(1, span))
    while np.gcd(multiplier, span) != 1:
        multiplier += 1
    offset = int(rng.integers(0, span))
    return (np.arange(n, dtype=np.int64) * multiplier + offset) % span


def quantize(vectors: np.ndarray) -> np.ndarray:
    """Map standard-normal coordinates to the release's 0..255 integers."""
    return np.clip(np.rint(128 + 40 * vectors), 0, 255).astype(np.uint8)


def build_catalog(scale: Scale, seed: int) -> Catalog:
    rng = np.random.default_rng(np.random.SeedSequence([seed, 1]))
    n_cat, n_sku = scale.n_categories, scale.n_skus
    n_groups = max(4, n_cat // 25)
    group_center = rng.normal(0, 1.0, (n_groups, VECTOR_DIM))
    category_group = rng.integers(0, n_groups, n_cat)
    category_center = group_center[category_group] + rng.normal(0, 0.5, (n_cat, VECTOR_DIM))
    category_weight = rng.permutation(1.0 / np.arange(1, n_cat + 1) ** 0.9)
    category_price_level = rng.uniform(10, 90, n_cat)

    # Every category owns at least one SKU; the rest follow category popularity.
    sku_category = np.concatenate(
        [
            np.arange(n_cat),
            rng.choice(n_cat, n_sku - n_cat, p=category_weight / category_weight.sum()),
        ]
    )
    rng.shuffle(sku_category)
    # Prices are quantile buckets over products, as in the release.
    raw_price = category_price_level[sku_category] + rng.normal(0, 15, n_sku)
    sku_price = (np.argsort(np.argsort(raw_price)) * 100 // n_sku).astype(np.int64)
    sku_popularity = rng.lognormal(0, 1.6, n_sku)
    is_new = rng.random(n_sku) < NEW_SKU_SHARE
    sku_launch_day = np.where(is_new, rng.integers(1, scale.days, n_sku), 0)
    sku_popularity = np.where(is_new, sku_popularity * NEW_SKU_HYPE, sku_popularity)
    sku_name = quantize(category_center[sku_category] + rng.normal(0, 0.35, (n_sku, VECTOR_DIM)))

    order = np.lexsort((-sku_popularity, sku_category))
    sorted_category = sku_category[order]
    category_lo_idx = np.searchsorted(sorted_category, np.arange(n_cat), side="left")
    category_hi_idx = np.searchsorted(sorted_category, np.arange(n_cat), side="right")
    # The most popular SKU of each category is always on sale: the fallback for unlaunched picks.
    top = order[category_lo_idx]
    sku_launch_day[top] = 0
    cum_weight = np.cumsum(sku_popularity[order])
    cum_before = np.concatenate([[0.0], cum_weight])

    n_urls = n_sku + scale.n_generic_urls
    url_ids = _opaque_ids(n_urls, rng)
    return Catalog(
        sku_id=_opaque_ids(n_sku, rng),
        sku_category=sku_category,
        sku_price=sku_price,
        sku_launch_day=sku_launch_day,
        sku_url=url_ids[:n_sku],
        sku_name=sku_name,
        category_id=_opaque_ids(n_cat, rng),
        category_center=category_center,
        category_weight=category_weight,
        category_price_level=category_price_level,
        generic_urls=url_ids[n_sku:],
        by_category=order,
        cum_weight=cum_weight,
        category_lo=cum_before[category_lo_idx],
        category_hi=cum_before[category_hi_idx],
        category_top_sku=top,
    )


def _sample_in_category(
    catalog: Catalog, category: np.ndarray, day: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Popularity-weighted SKU of each category, on sale on that day."""
    lo, hi = catalog.category_lo[category], catalog.category_hi[category]
    sku = np.full(len(category), -1, dtype=np.int64)
    pending = np.ones(len(category), dtype=bool)
    for _ in range(3):
        u = lo[pending] + rng.random(pending.sum()) * (hi[pending] - lo[pending])
        pos = np.minimum(
            np.searchsorted(catalog.cum_weight, u, side="right"), len(catalog.cum_weight) - 1
        )
        pick = catalog.by_category[pos]
        on_sale = catalog.sku_launch_day[pick] <= day[pending]
        idx = np.flatnonzero(pending)
        sku[idx[on_sale]] = pick[on_sale]
        pending[idx[on_sale]] = False
        if not pending.any():
            break
    sku[pending] = catalog.category_top_sku[category[pending]]
    return sku


@dataclass(frozen=True)
class Chunk:
    events: dict[str, pl.DataFrame]  # per event file: client_id, timestamp (epoch s), sku/url/query
    relevant_clients: np.ndarray
    truth: pl.DataFrame


def _pick_slot(weights: np.ndarray, rows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Index of a slot drawn from each row's weights (rows may repeat)."""
    cum = np.cumsum(weights[rows], axis=1)
    u = rng.random(len(rows)) * cum[:, -1]
    return (cum < u[:, None]).sum(axis=1).clip(max=weights.shape[1] - 1)


def generate_chunk(
    scale: Scale, catalog: Catalog, seed: int, chunk_index: int, client_ids: np.ndarray
) -> Chunk:
    rng = np.random.default_rng(np.random.SeedSequence([seed, 2, chunk_index]))
    n = len(client_ids)
    days = scale.days
    horizon = days * SECONDS_PER_DAY

    # ---- latent traits -------------------------------------------------------------------------
    activity = rng.lognormal(-0.5 * 1.3**2, 1.3, n)  # mean 1, heavy tail
    start_day = np.where(rng.random(n) < 0.6, 0, rng.integers(0, days - 14, n))
    churns = rng.random(n) < 0.4
    end_day = np.where(churns, rng.uniform(start_day + 10, days + 40), days + 40).clip(max=days)
    churned = end_day < days
    # Engagement density over [start, end): Beta(a, b); fading clients have b > 1.
    fade = np.where(churned, rng.uniform(1.2, 3.0, n), np.where(rng.random(n) < 0.3, 1.3, 1.0))
    rise = np.where(~churned & (rng.random(n) < 0.25), 1.6, 1.0)
    weekend_factor = rng.lognormal(0, 0.6, n)
    peak_hour = rng.choice([9.0, 13.0, 20.0], n, p=[0.3, 0.3, 0.4]) + rng.normal(0, 1.5, n)
    hour_spread = rng.uniform(1.0, 4.0, n)
    explorer = rng.beta(1.0, 5.0, n)
    concentration = np.where(explorer > 0.3, 2.0, 0.4)
    fav_category = rng.choice(
        scale.n_categories,
        (n, FAV_CATEGORY_SLOTS),
        p=catalog.category_weight / catalog.category_weight.sum(),
    )
    fav_category_weight = rng.gamma(concentration[:, None], 1.0, (n, FAV_CATEGORY_SLOTS)) + 1e-9
    loyalty = rng.beta(2.0, 3.0, n)
    conversion = rng.beta(2.0, 3.0, n)
    cart_rate = rng.beta(1.2, 30.0, n)
    search_rate = rng.beta(1.0, 6.0, n)
    generic_share = rng.beta(2.0, 5.0, n)
    session_visits = rng.lognormal(np.log(3.5), 0.5, n)
    price_level = np.average(
        catalog.category_price_level[fav_category], axis=1, weights=fav_category_weight
    ) + rng.normal(0, 10, n)
    price_sensitivity = rng.beta(2.0, 2.0, n)
    query_offset = rng.normal(0, 0.3, (n, VECTOR_DIM))
    fav_sku_category = fav_category[
        np.arange(n)[:, None], _pick_slot_matrix(fav_category_weight, FAV_SKU_SLOTS, rng)
    ]
    fav_sku = _sample_in_category(
        catalog, fav_sku_category.ravel(), np.zeros(n * FAV_SKU_SLOTS), rng
    ).reshape(n, FAV_SKU_SLOTS)

    # ---- sessions: Poisson candidates thinned by the weekly rhythm ------------------------------
    active_days = np.maximum(end_day - start_day, 1.0)
    rate = scale.mean_sessions * activity * active_days / (days * 0.8)
    n_candidates = rng.poisson(rate)
    s_client = np.repeat(np.arange(n), n_candidates)
    position = rng.beta(rise[s_client], fade[s_client])
    s_day = np.floor(start_day[s_client] + position * active_days[s_client]).astype(np.int64)
    weekday = (s_day + scale.first_day.weekday()) % 7
    weekday_weight = WEEKDAY_RHYTHM[weekday] * np.where(weekday >= 5, weekend_factor[s_client], 1.0)
    keep = rng.random(len(s_client)) < weekday_weight / np.maximum(weekend_factor[s_client], 1.0)
    s_client, s_day = s_client[keep], s_day[keep]
    n_sessions = len(s_client)
    hour = (peak_hour[s_client] + rng.normal(0, 1, n_sessions) * hour_spread[s_client]) % 24
    s_start = s_day * SECONDS_PER_DAY + (hour * 3600).astype(np.int64)
    s_explore = rng.random(n_sessions) < explorer[s_client]
    s_category = np.where(
        s_explore,
        rng.choice(
            scale.n_categories,
            n_sessions,
            p=catalog.category_weight / catalog.category_weight.sum(),
        ),
        fav_category[s_client, _pick_slot(fav_category_weight, s_client, rng)],
    )

    # ---- searches open some sessions ------------------------------------------------------------
    n_search = rng.poisson(search_rate[s_client] * 1.8)
    q_session = np.repeat(np.arange(n_sessions), n_search)
    q_rank = _rank_within(q_session)
    q_time = s_start[q_session] + q_rank * 40 + rng.integers(0, 40, len(q_session))
    q_vec = quantize(
        catalog.category_center[s_category[q_session]]
        + query_offset[s_client[q_session]]
        + rng.normal(0, 0.45, (len(q_session), VECTOR_DIM))
    )
    search_offset = np.bincount(q_session, minlength=n_sessions) * 40

    # ---- page visits: product pages of the session's category or favourites, or generic pages ---
    n_visit = 1 + rng.poisson(np.maximum(session_visits[s_client] - 1, 0.1))
    v_session = np.repeat(np.arange(n_sessions), n_visit)
    v_client = s_client[v_session]
    v_day = s_day[v_session]
    gaps = rng.exponential(50.0, len(v_session)).astype(np.int64) + 1
    v_time = s_start[v_session] + search_offset[v_session] + _cumsum_within(v_session, gaps)
    v_sku = _sample_in_category(catalog, s_category[v_session], v_day, rng)
    use_fav = rng.random(len(v_session)) < loyalty[v_client] * 0.6
    fav_pick = fav_sku[v_client, rng.integers(0, FAV_SKU_SLOTS, len(v_session))]
    fav_on_sale = catalog.sku_launch_day[fav_pick] <= v_day
    v_sku = np.where(use_fav & fav_on_sale, fav_pick, v_sku)
    generic = rng.random(len(v_session)) < generic_share[v_client]
    v_url = np.where(
        generic,
        catalog.generic_urls[
            (rng.zipf(1.4, len(v_session)) + v_client * 7) % len(catalog.generic_urls)
        ],
        catalog.sku_url[v_sku],
    )

    # ---- the funnel: cart, then buy or remove ---------------------------------------------------
    price_gap = np.maximum(catalog.sku_price[v_sku] - price_level[v_client], 0) / 20.0
    price_fit = np.exp(-price_sensitivity[v_client] * price_gap)
    carted = ~generic & (rng.random(len(v_session)) < cart_rate[v_client] * (0.5 + price_fit))
    c_idx = np.flatnonzero(carted)
    c_time = v_time[c_idx] + rng.integers(5, 90, len(c_idx))
    bought = rng.random(len(c_idx)) < conversion[v_client[c_idx]] * (0.4 + 0.8 * price_fit[c_idx])
    b_idx = c_idx[bought]
    b_time = c_time[bought] + rng.integers(30, 600, len(b_idx))
    removed = ~bought & (rng.random(len(c_idx)) < 0.45)
    r_idx = c_idx[removed]
    r_time = c_time[removed] + rng.integers(10, 900, len(r_idx))

    ids = client_ids
    frames = {
        "page_visit": _frame(ids[v_client], v_time, url=v_url),
        "add_to_cart": _frame(ids[v_client[c_idx]], c_time, sku=catalog.sku_id[v_sku[c_idx]]),
        "product_buy": _frame(ids[v_client[b_idx]], b_time, sku=catalog.sku_id[v_sku[b_idx]]),
        "remove_from_cart": _frame(ids[v_client[r_idx]], r_time, sku=catalog.sku_id[v_sku[r_idx]]),
        "search_query": _frame(ids[s_client[q_session]], q_time, query=q_vec),
    }
    frames = {name: df.filter(pl.col("timestamp") < horizon) for name, df in frames.items()}

    # Relevant clients: a share of those with any history before the target windows.
    input_end = (days - TARGET_DAYS) * SECONDS_PER_DAY
    seen = np.zeros(n, dtype=bool)
    for client, time in ((v_client, v_time), (s_client[q_session], q_time)):
        seen[client[time < input_end]] = True
    eligible = np.flatnonzero(seen)
    quota = min(len(eligible), round(scale.n_relevant * n / scale.n_clients))
    relevant = np.sort(ids[rng.choice(eligible, quota, replace=False)])

    truth = pl.DataFrame(
        {
            "client_id": ids,
            "activity": activity,
            "start_day": start_day.astype(np.int32),
            "end_day": end_day,
            "churned": churned,
            "fade": fade,
            "rise": rise,
            "weekend_factor": weekend_factor,
            "peak_hour": peak_hour % 24,
            "hour_spread": hour_spread,
            "explorer": explorer,
            "loyalty": loyalty,
            "conversion": conversion,
            "cart_rate": cart_rate,
            "search_rate": search_rate,
            "generic_share": generic_share,
            "session_visits": session_visits,
            "price_level": price_level,
            "price_sensitivity": price_sensitivity,
            "fav_category": catalog.category_id[fav_category],
            "fav_category_weight": fav_category_weight / fav_category_weight.sum(1, keepdims=True),
            "fav_sku": catalog.sku_id[fav_sku],
        }
    )
    return Chunk(events=frames, relevant_clients=relevant, truth=truth)


def _pick_slot_matrix(weights: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    rows = np.repeat(np.arange(len(weights)), k)
    return _pick_slot(weights, rows, rng).reshape(len(weights), k)


def _rank_within(group: np.ndarray) -> np.ndarray:
    """0, 1, 2, ... within runs of equal values of a sorted array."""
    if len(group) == 0:
        return group
    starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
    run_start = np.repeat(starts, np.diff(np.r_[starts, len(group)]))
    return np.arange(len(group)) - run_start


def _cumsum_within(group: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Running sum of values within runs of equal values of a sorted group array."""
    if len(group) == 0:
        return values
    total = np.cumsum(values)
    starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
    before = np.r_[0, total][starts]
    return total - np.repeat(before, np.diff(np.r_[starts, len(group)]))


def _frame(
    client_id: np.ndarray,
    time: np.ndarray,
    *,
    sku: np.ndarray | None = None,
    url: np.ndarray | None = None,
    query: np.ndarray | None = None,
) -> pl.DataFrame:
    columns: dict[str, object] = {
        "client_id": client_id.astype(np.int64),
        "timestamp": time.astype(np.int64),
    }
    if sku is not None:
        columns["sku"] = sku.astype(np.int64)
    if url is not None:
        columns["url"] = url.astype(np.int64)
    if query is not None:
        columns["query"] = pl.Series("query", query, dtype=pl.Array(pl.UInt8, VECTOR_DIM))
    return pl.DataFrame(columns)


def iter_chunks(scale: Scale, seed: int, catalog: Catalog) -> Iterator[Chunk]:
    rng = np.random.default_rng(np.random.SeedSequence([seed, 3]))
    all_ids = _opaque_ids(scale.n_clients, rng)
    for index, start in enumerate(range(0, scale.n_clients, scale.chunk_clients)):
        yield generate_chunk(
            scale, catalog, seed, index, all_ids[start : start + scale.chunk_clients]
        )


def epoch_origin(scale: Scale) -> dt.datetime:
    return dt.datetime.combine(scale.first_day, dt.time())
