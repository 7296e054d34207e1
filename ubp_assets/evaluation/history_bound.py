"""What the input history can show at best about churn and conversion, on synthetic data.

The oracle (`oracle.py`) knows when each client's engagement ends; the history shows that only
as fading activity, so no embedding built from the history can reach the oracle. How far below
it the history's own ceiling lies is measurable, because the generator can draw as many more
clients as we like: the history bound is a network trained, on a fresh population of the
release's generator and catalogue, to predict each client's buys in both target windows from
their history alone, with the true outcomes as labels. Applied to the evaluated clients, whose
target windows and latent truth it never reads, it is what a history-based predictor with
unlimited supervision achieves. Probed like every method, it tells which part of the
baseline-to-oracle gap the history can close at all.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import polars as pl

from ubp_assets.features.activity_profile import TARGETS, client_profile, next_weeks, profile_of
from ubp_assets.synthetic.generator import build_catalog, epoch_origin, generate_chunk
from ubp_assets.synthetic.scales import Scale

WINDOW = dt.timedelta(days=14)
OUTCOMES = ("buys_train_window", "buys_validation_window")
# Clients of the fresh population: 20 times the release's, at most this many. 800,000 demo
# clients hold about 60M events, drawn a chunk at a time; with 200,000 the bound scored 0.003 to
# 0.004 lower on churn and conversion, far less than what separates it from the oracle.
POPULATION_CAP = 800_000
POPULATION_FACTOR = 20


@dataclass(frozen=True)
class BoundConfig:
    hidden: int = 256
    max_epochs: int = 12
    batch_size: int = 1024
    learning_rate: float = 1e-3
    weight_decay: float = 1e-2
    dropout: float = 0.2
    held_out: float = 0.1  # of the population, for choosing the epoch
    seed: int = 0
    device: str = "cpu"


def population_size(scale: Scale) -> int:
    return min(POPULATION_CAP, POPULATION_FACTOR * scale.n_clients)


def population_chunks(scale: Scale, seed: int, clients: int) -> Iterator[pl.LazyFrame]:
    """Fresh clients of the release's generator, chunk by chunk: the chunks after the release's
    own (same seed, same catalogue, their own random streams), with negative ids so that none is
    a release client. Each chunk's events (client_id, timestamp, event_type) over the whole
    span, the target windows included."""
    catalog = build_catalog(scale, seed)
    origin = epoch_origin(scale)
    first_chunk = -(-scale.n_clients // scale.chunk_clients)
    for index, start in enumerate(range(0, clients, scale.chunk_clients)):
        ids = -1 - np.arange(start, min(start + scale.chunk_clients, clients), dtype=np.int64)
        chunk = generate_chunk(scale, catalog, seed, first_chunk + index, ids)
        yield pl.concat(
            [
                frame.select(
                    "client_id",
                    (pl.lit(origin) + pl.duration(seconds=pl.col("timestamp"))).alias("timestamp"),
                    pl.lit(kind).alias("event_type"),
                )
                for kind, frame in chunk.events.items()
            ]
        ).lazy()


def training_rows(
    chunks: Iterable[pl.LazyFrame], cutoff: dt.datetime
) -> tuple[np.ndarray, np.ndarray]:
    """Profiles at the cutoff of every population client with history before it, and their
    buys in the two windows after it."""
    buys = TARGETS.index("buys")
    xs, ys = [], []
    for events in chunks:
        profiles = client_profile(events, cutoff)
        ids = profiles["client_id"].to_numpy()
        xs.append(profile_of(profiles, ids))
        windows = [next_weeks(events, ids, cutoff + WINDOW * k, WINDOW) for k in range(2)]
        ys.append(np.stack([window[:, buys] for window in windows], axis=1))
    return np.concatenate(xs), np.concatenate(ys)


@dataclass(frozen=True)
class HistoryBound:
    logits: np.ndarray  # (clients, 2) in the order of OUTCOMES
    training_rows: int
    held_out_loss: float
    best_epoch: int
    positive_rates: dict[str, float]


def history_bound(
    x: np.ndarray,
    y: np.ndarray,
    *,
    evaluated: pl.LazyFrame,
    client_ids: np.ndarray,
    cutoff: dt.datetime,
    config: BoundConfig = BoundConfig(),
) -> HistoryBound:
    """Train on the population's (x, y), keep the epoch with the lowest held-out loss, and give
    the logits of the evaluated clients from their events before `cutoff` (none after is read)."""
    import copy

    import torch
    from torch import nn

    mean, spread = x.mean(axis=0), x.std(axis=0) + 1e-6
    rng = np.random.default_rng(config.seed)
    held = rng.random(len(x)) < config.held_out
    device = torch.device(config.device)
    torch.manual_seed(config.seed)
    net = nn.Sequential(
        nn.Linear(x.shape[1], config.hidden),
        nn.GELU(),
        nn.Dropout(config.dropout),
        nn.Linear(config.hidden, config.hidden // 2),
        nn.GELU(),
        nn.Linear(config.hidden // 2, len(OUTCOMES)),
    ).to(device)
    optimiser = torch.optim.AdamW(
        net.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    features = torch.from_numpy(((x - mean) / spread).astype(np.float32)).to(device)
    labels = torch.from_numpy(y).to(device)
    train, check = torch.from_numpy(np.flatnonzero(~held)), torch.from_numpy(np.flatnonzero(held))
    order = torch.Generator().manual_seed(config.seed)
    best_loss, best_epoch, best_state = float("inf"), 0, None
    for epoch in range(config.max_epochs):
        net.train()
        for rows in train[torch.randperm(len(train), generator=order)].split(config.batch_size):
            batch = rows.to(device)
            loss = nn.functional.binary_cross_entropy_with_logits(
                net(features[batch]), labels[batch]
            )
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        net.eval()
        with torch.no_grad():
            rows = check.to(device)
            loss = nn.functional.binary_cross_entropy_with_logits(
                net(features[rows]), labels[rows]
            ).item()
        if loss < best_loss:
            best_loss, best_epoch, best_state = loss, epoch, copy.deepcopy(net.state_dict())
    assert best_state is not None
    net.load_state_dict(best_state)
    net.eval()
    at_cutoff = (profile_of(client_profile(evaluated, cutoff), client_ids) - mean) / spread
    with torch.no_grad():
        logits = net(torch.from_numpy(at_cutoff.astype(np.float32)).to(device)).cpu().numpy()
    return HistoryBound(
        logits=logits,
        training_rows=len(x),
        held_out_loss=best_loss,
        best_epoch=best_epoch + 1,
        positive_rates={o: float(y[:, i].mean()) for i, o in enumerate(OUTCOMES)},
    )


def bound_embedding(logits: np.ndarray) -> np.ndarray:
    """The logits standardised: the probe sees them at the scale of every other method."""
    return ((logits - logits.mean(axis=0)) / (logits.std(axis=0) + 1e-9)).astype(np.float32)


def history_shares(
    scores: pl.DataFrame, bound: pl.DataFrame, baseline: str = "aggregated_baseline"
) -> pl.DataFrame:
    """Every method's scores on the bound's tasks (method, task, score, gap_closed from
    `scores`) with the history bound's own rows, and `history_share`: (method - baseline) /
    (history_bound - baseline), the share of what the history can show that a method shows.
    Null where the bound does not beat the baseline."""
    tasks = bound["task"].unique()
    rows = pl.concat(
        [
            scores.filter(pl.col("task").is_in(tasks.implode())).select(
                "method", "task", "score", "gap_closed"
            ),
            bound.select("method", "task", "score", "gap_closed"),
        ]
    )
    low = rows.filter(pl.col("method") == baseline).select("task", _low="score")
    high = bound.select("task", _high="score")
    return (
        rows.join(low, on="task", how="left")
        .join(high, on="task", how="left")
        .with_columns(
            pl.when(pl.col("_high") > pl.col("_low"))
            .then((pl.col("score") - pl.col("_low")) / (pl.col("_high") - pl.col("_low")))
            .alias("history_share")
        )
        .drop("_low", "_high")
    )
