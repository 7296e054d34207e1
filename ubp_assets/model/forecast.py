"""Self-supervised activity forecast: will the client buy, add to cart, come back at all in the
next two weeks, learned from the input history alone.

The challenge's top teams turned the log into its own teacher: cut the input at an earlier day,
describe every client as of that day, and learn the two weeks after it, which the input still
holds. Repeated at several earlier cut days, that gives a model of "what comes next" that never
sees a target window; applied at the cutoff, its three predictions are the strongest single
signal for churn and conversion we measured (docs/quality.md).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import polars as pl

from ubp_assets.features.activity_profile import TARGETS, client_profile, next_weeks, profile_of


@dataclass(frozen=True)
class ForecastConfig:
    horizon_days: int = 14
    training_cuts: int = 6  # cut days at 1..6 horizons before the cutoff
    hidden: int = 128
    epochs: int = 6
    batch_size: int = 1024
    learning_rate: float = 2e-3
    seed: int = 0
    device: str = "cpu"
    # Clients the network learns from: all with an input up to this many, else a seeded sample
    # (at the full release's size 100,000 of 18.7M, six cut days each).
    sample_clients: int = 100_000
    clients_per_shard: int = 125_000  # relevant clients profiled at a time at the cutoff


@dataclass(frozen=True)
class ActivityForecast:
    logits: np.ndarray  # (clients, 3), in the order of TARGETS
    training_rows: int
    training_clients: tuple[int, int]  # (clients learnt from, clients with an input)
    positive_rates: dict[str, float]
    final_loss: float


def _learners(before: pl.LazyFrame, size: int, seed: int) -> tuple[pl.LazyFrame, tuple[int, int]]:
    """The input of the clients the network learns from (every client with an input, or a
    seeded sample of `size` of them, read once), and (their count, the count of all)."""
    everyone = (
        before.select(pl.col("client_id").unique()).collect(engine="streaming")["client_id"].sort()
    )
    if size >= len(everyone):
        return before, (len(everyone), len(everyone))
    chosen = np.random.default_rng(seed).choice(everyone.to_numpy(), size, replace=False)
    sampled = before.join(
        pl.LazyFrame({"client_id": np.sort(chosen)}), on="client_id", how="semi"
    ).collect(engine="streaming")
    return sampled.lazy(), (size, len(everyone))


def profile_at_cutoff(
    before: pl.LazyFrame,
    client_ids: np.ndarray,
    cutoff: dt.datetime,
    clients_per_shard: int,
    progress: Callable[[str], None] | None = None,
) -> np.ndarray:
    """The profiles of client_ids at the cutoff, one client shard at a time (a client's profile
    is their own events' alone, so the shards' profiles are those of one pass)."""
    from ubp_assets.shards import client_shards

    parts = []
    for shard in client_shards(client_ids, clients_per_shard):
        ids = pl.LazyFrame({"client_id": shard.members(client_ids)})
        parts.append(
            client_profile(before.filter(shard.rows()).join(ids, "client_id", "semi"), cutoff)
        )
        if progress and shard.count > 1:
            progress(f"[{shard.index + 1}/{shard.count}] profiles at the cutoff: {shard.label}")
    return profile_of(pl.concat(parts), client_ids)


def activity_forecast(
    events: pl.LazyFrame,
    client_ids: np.ndarray,
    cutoff: dt.datetime,
    config: ForecastConfig = ForecastConfig(),
    progress: Callable[[str], None] | None = None,
) -> ActivityForecast:
    """Logits of the next-weeks outcomes at `cutoff` for client_ids, from a network trained at
    earlier cut days on every client's input (no event at or after `cutoff` is read)."""
    import torch
    from torch import nn

    before = events.filter(pl.col("timestamp") < cutoff)
    learners, of_clients = _learners(before, config.sample_clients, config.seed)
    horizon = dt.timedelta(days=config.horizon_days)
    x_parts, y_parts = [], []
    for k in range(1, config.training_cuts + 1):
        cut = cutoff - horizon * k
        profiles = client_profile(learners, cut)
        ids = profiles["client_id"].to_numpy()
        x_parts.append(profile_of(profiles, ids))
        y_parts.append(next_weeks(learners, ids, cut, horizon))
    x, y = np.concatenate(x_parts), np.concatenate(y_parts)
    mean, spread = x.mean(axis=0), x.std(axis=0) + 1e-6

    torch.manual_seed(config.seed)
    device = torch.device(config.device)
    net = nn.Sequential(
        nn.Linear(x.shape[1], config.hidden),
        nn.GELU(),
        nn.Linear(config.hidden, config.hidden // 2),
        nn.GELU(),
        nn.Linear(config.hidden // 2, len(TARGETS)),
    ).to(device)
    optimiser = torch.optim.AdamW(net.parameters(), lr=config.learning_rate, weight_decay=1e-4)
    features = torch.from_numpy((x - mean) / spread).to(device)
    labels = torch.from_numpy(y).to(device)
    order = torch.Generator().manual_seed(config.seed)
    loss_sum = 0.0
    for epoch in range(config.epochs):
        loss_sum = 0.0
        for rows in torch.randperm(len(x), generator=order).split(config.batch_size):
            batch = rows.to(device)
            loss = nn.functional.binary_cross_entropy_with_logits(
                net(features[batch]), labels[batch]
            )
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            loss_sum += loss.item() * len(batch)
        if progress:
            progress(f"epoch {epoch + 1}/{config.epochs}: loss {loss_sum / len(x):.4f}")
    at_cutoff = (
        profile_at_cutoff(before, client_ids, cutoff, config.clients_per_shard, progress) - mean
    ) / spread
    net.eval()
    with torch.no_grad():
        logits = net(torch.from_numpy(at_cutoff.astype(np.float32)).to(device)).cpu().numpy()
    return ActivityForecast(
        logits=logits,
        training_rows=len(x),
        training_clients=of_clients,
        positive_rates={t: float(y[:, i].mean()) for i, t in enumerate(TARGETS)},
        final_loss=loss_sum / len(x),
    )
