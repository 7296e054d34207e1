"""The organisers' probe (PROTOCOL.md, "The probe"): a residual MLP trained on fixed embeddings.

Module names, creation order, seed, optimiser and batching follow the organisers' Lightning code,
so that the same embeddings get the same initial weights and the same scores.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ubp_assets.evaluation.metrics import TaskScore, score_binary, score_propensity

# Rows per forward pass when scoring: only speed depends on it, no gradients are kept.
_EVAL_BATCH = 8192


class BottleneckBlock(nn.Module):
    """Inverted bottleneck: widen, GELU, project back ("Scaling MLPs", arXiv 2306.13575)."""

    def __init__(self, thin: int, wide: int) -> None:
        super().__init__()
        self.l1 = nn.Linear(thin, wide)
        self.l2 = nn.Linear(wide, thin)
        self.gelu = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.l2(self.gelu(self.l1(x)))


class ProbeNet(nn.Module):
    """Linear(d, thin) -> LayerNorm -> 3 x [x + Bottleneck(LayerNorm(x))] -> LayerNorm -> Linear.

    Attribute names and creation order are the organisers': with the same seed the initial
    weights are the same, and their state dicts load here.
    """

    def __init__(self, input_dim: int, output_dim: int, thin: int, wide: int) -> None:
        super().__init__()
        self.input_projection = nn.Linear(input_dim, thin)
        self.ln_input = nn.LayerNorm(thin)
        self.layernorms = nn.ModuleList([nn.LayerNorm(thin) for _ in range(3)])
        self.bottlenecks = nn.ModuleList([BottleneckBlock(thin, wide) for _ in range(3)])
        self.ln_output = nn.LayerNorm(thin)
        self.linear_output = nn.Linear(thin, output_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.ln_input(self.input_projection(x))
        for layernorm, bottleneck in zip(self.layernorms, self.bottlenecks, strict=True):
            x = x + bottleneck(layernorm(x))
        return self.linear_output(self.ln_output(x))


@dataclass(frozen=True)
class ProbeProfile:
    """Probe size and training settings; "official" is the organisers' probe."""

    name: str
    thin: int
    wide: int
    epochs: int = 3
    batch_size: int = 128
    learning_rate: float = 1e-3
    seed: int = 1278


PROFILES: dict[str, ProbeProfile] = {
    "official": ProbeProfile("official", 2048, 4096),
    "fast": ProbeProfile("fast", 256, 512),
}


@dataclass(frozen=True)
class ProbeResult:
    """Scores after every epoch; a task's score is its best epoch's, as the organisers report."""

    epochs: tuple[TaskScore, ...]
    best_epoch: int  # 0-based; the first epoch with the highest score
    train_seconds: float  # training and per-epoch scoring, wall clock

    @property
    def best(self) -> TaskScore:
        return self.epochs[self.best_epoch]


def _validate(
    embeddings: np.ndarray,
    train_labels: np.ndarray,
    score_labels: np.ndarray,
    popularity: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    embeddings = np.asarray(embeddings)
    train_labels = np.asarray(train_labels)
    score_labels = np.asarray(score_labels)
    if embeddings.ndim != 2 or embeddings.shape[0] == 0 or embeddings.shape[1] == 0:
        raise ValueError(f"embeddings must be a non-empty 2-D array, got shape {embeddings.shape}")
    if not np.issubdtype(embeddings.dtype, np.floating):
        raise ValueError(f"embeddings must be floating point, got {embeddings.dtype}")
    for name, labels in (("train_labels", train_labels), ("score_labels", score_labels)):
        if labels.ndim != 2:
            raise ValueError(f"{name} must be 2-D (rows, labels), got shape {labels.shape}")
        if labels.shape[0] != embeddings.shape[0]:
            raise ValueError(
                f"{name} has {labels.shape[0]} rows but embeddings have {embeddings.shape[0]}"
            )
        if not np.isfinite(labels).all():
            raise ValueError(f"{name} hold NaN or Inf")
    if train_labels.shape[1] != score_labels.shape[1]:
        raise ValueError(
            f"train_labels have {train_labels.shape[1]} columns, score_labels "
            f"{score_labels.shape[1]}"
        )
    if popularity is None and train_labels.shape[1] != 1:
        raise ValueError(
            f"a binary task (popularity None) needs one label column, got {train_labels.shape[1]}"
        )
    if popularity is not None and np.shape(popularity) != (train_labels.shape[1],):
        raise ValueError(
            f"popularity has shape {np.shape(popularity)}, expected ({train_labels.shape[1]},)"
        )
    for lo in range(0, embeddings.shape[0], _EVAL_BATCH):  # a batch at a time: no n x d copy
        batch = embeddings[lo : lo + _EVAL_BATCH]
        if np.isnan(batch).any():
            raise ValueError("embeddings hold NaN")
        with np.errstate(over="ignore"):
            if not np.isfinite(batch.astype(np.float32)).all():
                raise ValueError("embeddings hold Inf (or values beyond float32)")
    return embeddings, train_labels.astype(np.float32), score_labels


def _torch_device(device: str) -> torch.device:
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r} requested but CUDA is not available to torch")
    return torch.device(device)


def _as_tensor(x: np.ndarray, device: torch.device) -> torch.Tensor:
    """The embeddings as a tensor on the device without a float32 copy (on the CPU, the same
    memory); float64 features become float32 here, as the net needs at least that."""
    if x.dtype not in (np.float16, np.float32):
        x = x.astype(np.float32)
    return torch.from_numpy(np.ascontiguousarray(x)).to(device)


def run_probe(
    embeddings: np.ndarray,
    train_labels: np.ndarray,
    score_labels: np.ndarray,
    *,
    popularity: np.ndarray | None,
    profile: ProbeProfile,
    device: str = "cpu",
    train_rows: np.ndarray | None = None,
    score_rows: np.ndarray | None = None,
) -> ProbeResult:
    """Train the probe on train_labels and score it against score_labels after every epoch.

    popularity None means a binary (churn-type) task with one label column, scored by AUROC;
    otherwise a propensity task scored by 0.8 AUROC + 0.1 diversity + 0.1 novelty. Rows are fed
    in order without shuffling, as the organisers' loader did; the caller's torch RNG state is
    left untouched. Deterministic on CPU.

    By default (the organisers' protocol) every row trains and is scored. `train_rows` and
    `score_rows` restrict each to a subset instead, as tuning does to score clients the probe
    never trained on.
    """
    if profile.epochs < 1 or profile.batch_size < 1:
        raise ValueError(f"profile {profile.name!r} needs epochs and batch_size of at least 1")
    x_np, y_np, score_labels = _validate(embeddings, train_labels, score_labels, popularity)
    dev = _torch_device(device)
    # The embeddings stay in their own dtype (float16 submissions: half of float32) and a batch
    # at a time is made float32 for the net, so that 1M x 2048 is never held twice.
    x_score_np = x_np if score_rows is None else x_np[np.asarray(score_rows)]
    if score_rows is not None:
        score_labels = score_labels[np.asarray(score_rows)]
    if train_rows is not None:
        x_np, y_np = x_np[np.asarray(train_rows)], y_np[np.asarray(train_rows)]
    n = x_np.shape[0]
    start = time.perf_counter()
    with torch.random.fork_rng(devices=[]):  # initialise on CPU, as the organisers did
        torch.manual_seed(profile.seed)
        net = ProbeNet(x_np.shape[1], y_np.shape[1], profile.thin, profile.wide)
    net = net.to(dev)
    x = _as_tensor(x_np, dev)
    y = torch.from_numpy(y_np).to(dev)
    x_score = x if x_score_np is x_np else _as_tensor(x_score_np, dev)
    optimizer = torch.optim.AdamW(net.parameters(), lr=profile.learning_rate)
    loss_fn = nn.BCEWithLogitsLoss()
    scores: list[TaskScore] = []
    for _ in range(profile.epochs):
        net.train()
        for lo in range(0, n, profile.batch_size):
            optimizer.zero_grad(set_to_none=True)
            batch = x[lo : lo + profile.batch_size].float()
            loss = loss_fn(net(batch), y[lo : lo + profile.batch_size])
            loss.backward()
            optimizer.step()
        net.eval()
        with torch.no_grad():
            logits = torch.cat(
                [
                    net(x_score[lo : lo + _EVAL_BATCH].float()).cpu()
                    for lo in range(0, len(x_score), _EVAL_BATCH)
                ]
            ).numpy()
        if popularity is None:
            scores.append(score_binary(logits, score_labels))
        else:
            scores.append(score_propensity(logits, score_labels, popularity))
    values = [s.score for s in scores]
    return ProbeResult(
        epochs=tuple(scores),
        best_epoch=int(np.argmax(values)),  # argmax takes the first of equal maxima
        train_seconds=time.perf_counter() - start,
    )
