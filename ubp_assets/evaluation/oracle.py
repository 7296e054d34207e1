"""The ceiling on synthetic data: an embedding built from each client's latent truth.

The generator (ubp_assets/synthetic/generator.py) draws every event from hidden per-client traits
and writes them to a side file. Turned into what the tasks ask (the expected activity in each
window, the chance of buying each target category, SKU and price bucket over the target weeks),
they are what no history-based embedding can beat except by the probe's luck: the ceiling that
the gap-closed figures measure against. Only the evaluation stage reads the side file; nothing
here is available on the real release.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

# The generator's funnel (generate_chunk): a visit of a favourite SKU with probability
# 0.6 * loyalty, a cart with rate * (0.5 + fit), a buy with conversion * (0.4 + 0.8 * fit).
FAVOURITE_VISIT = 0.6
FAV_SKU_SLOTS = 8
_GRID = 512


@dataclass(frozen=True)
class Windows:
    """Day indices from the first day of the history: the input ends at `target_start`, the
    train target window is the next 14 days, the validation window the 14 after."""

    target_start: int
    days: int  # the generator's span: history and both target windows

    @property
    def spans(self) -> dict[str, tuple[int, int]]:
        t = self.target_start
        return {
            "input_last_28d": (t - 28, t),
            "train_target": (t, t + 14),
            "validation_target": (t + 14, t + 28),
        }


def _beta_cdf(a: np.ndarray, b: np.ndarray, u: np.ndarray) -> np.ndarray:
    """CDF of Beta(a, b) per row at the rows' points u (n, k): a midpoint grid, interpolated."""
    x = (np.arange(_GRID) + 0.5) / _GRID
    log_pdf = (a[:, None] - 1) * np.log(x) + (b[:, None] - 1) * np.log1p(-x)
    pdf = np.exp(log_pdf - log_pdf.max(axis=1, keepdims=True))
    cdf = np.concatenate([np.zeros((len(a), 1)), np.cumsum(pdf, axis=1)], axis=1)
    cdf /= cdf[:, -1:]
    position = np.clip(u, 0.0, 1.0) * _GRID
    lower = np.minimum(np.floor(position).astype(np.int64), _GRID - 1)
    below = np.take_along_axis(cdf, lower, axis=1)
    above = np.take_along_axis(cdf, lower + 1, axis=1)
    return below + (position - lower) * (above - below)


def window_sessions(truth: pl.DataFrame, windows: Windows) -> dict[str, np.ndarray]:
    """Expected sessions of each client in each window, up to the scale's constant: sessions
    fall at start + Beta(rise, fade) * (end - start) at a rate set by activity."""
    start = truth["start_day"].to_numpy().astype(np.float64)
    end = truth["end_day"].to_numpy().astype(np.float64)
    active = np.maximum(end - start, 1.0)
    rate = truth["activity"].to_numpy() * active / windows.days
    bounds = np.array([edge for span in windows.spans.values() for edge in span], dtype=float)
    u = np.clip((bounds[None, :] - start[:, None]) / active[:, None], 0.0, 1.0)
    cdf = _beta_cdf(truth["rise"].to_numpy(), truth["fade"].to_numpy(), u)
    return {
        name: rate * (cdf[:, 2 * i + 1] - cdf[:, 2 * i]) for i, name in enumerate(windows.spans)
    }


def _price_fit(level: np.ndarray, sensitivity: np.ndarray, buckets: np.ndarray) -> np.ndarray:
    """How much more likely a cart and a buy are at each price bucket (n, buckets)."""
    gap = np.maximum(buckets[None, :] - level[:, None], 0.0) / 20.0
    fit = np.exp(-sensitivity[:, None] * gap)
    return (0.5 + fit) * (0.4 + 0.8 * fit)


def oracle_embedding(
    truth: pl.DataFrame,
    client_ids: np.ndarray,
    products: pl.DataFrame,
    values: dict[str, np.ndarray],
    windows: Windows,
    *,
    chunk_clients: int = 20_000,
) -> np.ndarray:
    """One row per client of client_ids (float32, columns standardised): the traits themselves,
    the expected sessions and buys per window, and the chance of buying each value of every
    propensity task (`values`: task -> ids) over the four target weeks.

    Every client must be in the truth: the oracle is defined only where the generator ran.
    """
    order = pl.DataFrame({"client_id": client_ids.astype(np.int64)}).with_row_index("row")
    found = order.join(truth, on="client_id", how="left", validate="1:1").sort("row")
    missing = found["activity"].is_null().sum()
    if missing:
        raise ValueError(f"{missing} clients have no latent truth: not a synthetic release?")

    catalog = products.select("sku", "category", "price")
    categories = np.sort(catalog["category"].unique().to_numpy())
    category_index = {int(c): i for i, c in enumerate(categories)}
    sku_category = np.searchsorted(categories, catalog["category"].to_numpy())
    sku_price = catalog["price"].to_numpy()
    buckets = np.arange(100, dtype=np.float64)
    per_category = np.bincount(sku_category, minlength=len(categories)).astype(np.float64)
    # P(price bucket | category) and the share of products in each category (exploration picks
    # categories by popularity, and products follow popularity).
    price_given_category = np.zeros((len(categories), len(buckets)))
    np.add.at(price_given_category, (sku_category, sku_price), 1.0)
    price_given_category /= np.maximum(per_category[:, None], 1.0)
    category_share = per_category / per_category.sum()
    sku_row = {int(s): i for i, s in enumerate(catalog["sku"].to_numpy())}

    blocks = [
        _oracle_rows(
            found.slice(lo, chunk_clients),
            windows,
            values,
            category_index=category_index,
            category_share=category_share,
            price_given_category=price_given_category,
            sku_row=sku_row,
            sku_category=sku_category,
            sku_price=sku_price,
            per_category=per_category,
            buckets=buckets,
        )
        for lo in range(0, found.height, chunk_clients)
    ]
    matrix = np.concatenate(blocks).astype(np.float64)
    spread = matrix.std(axis=0)
    matrix = (matrix - matrix.mean(axis=0)) / np.where(spread > 0, spread, 1.0)
    return matrix.astype(np.float32)


def _oracle_rows(
    truth: pl.DataFrame,
    windows: Windows,
    values: dict[str, np.ndarray],
    *,
    category_index: dict[int, int],
    category_share: np.ndarray,
    price_given_category: np.ndarray,
    sku_row: dict[int, int],
    sku_category: np.ndarray,
    sku_price: np.ndarray,
    per_category: np.ndarray,
    buckets: np.ndarray,
) -> np.ndarray:
    n = truth.height
    col = {name: truth[name].to_numpy() for name in truth.columns if name != "client_id"}
    loyalty, explorer = col["loyalty"], col["explorer"]

    # Where sessions go: a favourite category by its weight, or any category by popularity.
    fav = np.vectorize(category_index.__getitem__, otypes=[np.int64])(
        np.stack(truth["fav_category"].to_list())
    )
    fav_weight = np.stack(truth["fav_category_weight"].to_list())
    session_category = np.outer(explorer, category_share)
    np.add.at(
        session_category,
        (np.repeat(np.arange(n), fav.shape[1]), fav.ravel()),
        ((1 - explorer)[:, None] * fav_weight).ravel(),
    )
    # Visits: a favourite SKU with probability 0.6 * loyalty, else a product of the session's
    # category (uniform within it: popularity is the same for every client).
    fav_sku = np.vectorize(sku_row.__getitem__, otypes=[np.int64])(
        np.stack(truth["fav_sku"].to_list())
    )
    fav_share = FAVOURITE_VISIT * loyalty
    visit_category = (1 - fav_share)[:, None] * session_category
    np.add.at(
        visit_category,
        (np.repeat(np.arange(n), FAV_SKU_SLOTS), sku_category[fav_sku.ravel()]),
        np.repeat(fav_share / FAV_SKU_SLOTS, FAV_SKU_SLOTS),
    )
    fit = _price_fit(col["price_level"], col["price_sensitivity"], buckets)  # (n, 100)

    sessions = window_sessions(truth, windows)
    visits_per_session = col["session_visits"] * (1 - col["generic_share"])
    buys_per_visit = col["cart_rate"] * col["conversion"] * (fit.mean(axis=1))
    scalars = [
        np.log(col["activity"]),
        col["start_day"] / windows.days,
        col["end_day"] / windows.days,
        col["churned"].astype(np.float64),
        col["fade"],
        col["rise"],
        np.log(col["weekend_factor"]),
        np.sin(2 * np.pi * col["peak_hour"] / 24),
        np.cos(2 * np.pi * col["peak_hour"] / 24),
        col["hour_spread"],
        explorer,
        loyalty,
        col["conversion"],
        np.log(col["cart_rate"]),
        col["search_rate"],
        col["generic_share"],
        np.log(col["session_visits"]),
        col["price_level"] / 100,
        col["price_sensitivity"],
    ]
    for expected in sessions.values():
        buys = expected * visits_per_session * buys_per_visit
        scalars += [np.log1p(expected), np.exp(-buys)]
    target_visits = (
        (sessions["train_target"] + sessions["validation_target"])
        * visits_per_session
        * col["cart_rate"]
        * col["conversion"]
    )

    def chance(intensity: np.ndarray) -> np.ndarray:
        return 1.0 - np.exp(-target_visits[:, None] * intensity)

    blocks = [np.stack(scalars, axis=1)]
    # The expected fit of each category's price mix, per client.
    category_fit = fit @ price_given_category.T  # (n, categories)
    for task, ids in values.items():
        if task == "propensity_category":
            columns = np.array([category_index.get(int(c), -1) for c in ids])
            known = columns >= 0
            intensity = np.zeros((n, len(ids)))
            intensity[:, known] = (visit_category * category_fit)[:, columns[known]]
        elif task == "propensity_price":
            intensity = (visit_category @ price_given_category) * fit
            intensity = intensity[:, np.clip(ids.astype(np.int64), 0, 99)]
        else:  # the SKU tasks
            rows = np.array([sku_row.get(int(s), -1) for s in ids])
            known = rows >= 0
            intensity = np.zeros((n, len(ids)))
            r = rows[known]
            c = sku_category[r]
            from_category = (1 - fav_share)[:, None] * session_category[:, c] / per_category[c]
            from_favourite = (fav_share / FAV_SKU_SLOTS)[:, None] * (
                fav_sku[:, :, None] == r[None, None, :]
            ).sum(axis=1)
            intensity[:, known] = (from_category + from_favourite) * fit[:, sku_price[r]]
        blocks.append(chance(intensity))
    return np.concatenate(blocks, axis=1)


def gap_closed(
    scores: pl.DataFrame, baseline: str = "aggregated_baseline", ceiling: str = "oracle"
) -> pl.DataFrame:
    """`scores` (method, task, score) with the share of the baseline-to-ceiling gap each method
    closes, per task (`gap_closed`) and over the sum of the tasks (`gap_closed_total`):
    (method - baseline) / (ceiling - baseline). Null where the ceiling is missing or does not
    beat the baseline (a task whose labels are too thin to rank the two)."""

    def share(value: pl.Expr, low: pl.Expr, high: pl.Expr) -> pl.Expr:
        return pl.when(high > low).then((value - low) / (high - low)).otherwise(None)

    def of(method: str, frame: pl.DataFrame, keys: list[str], name: str) -> pl.DataFrame:
        return frame.filter(pl.col("method") == method).select(*keys, pl.col("score").alias(name))

    per_task = (
        scores.join(of(baseline, scores, ["task"], "_low"), on="task", how="left")
        .join(of(ceiling, scores, ["task"], "_high"), on="task", how="left")
        .with_columns(share(pl.col("score"), pl.col("_low"), pl.col("_high")).alias("gap_closed"))
        .drop("_low", "_high")
    )
    totals = scores.group_by("method").agg(pl.col("score").sum())
    total = (
        totals.join(of(baseline, totals, [], "_low"), how="cross").join(
            of(ceiling, totals, [], "_high"), how="cross"
        )
        if {baseline, ceiling} <= set(totals["method"])
        else totals.with_columns(_low=pl.lit(0.0), _high=pl.lit(0.0))
    ).select(
        "method",
        share(pl.col("score"), pl.col("_low"), pl.col("_high")).alias("gap_closed_total"),
    )
    return per_task.join(total, on="method", how="left")
