"""Seeded, early-stopped training of the residual autoencoder, encoding, and a model file.

Everything random (weights, noise, batch order, held-out rows) follows TrainConfig.seed, so a
CPU run is bit-reproducible for the same seed and inputs.
"""

from __future__ import annotations

import io
import math
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ubp_assets import location
from ubp_assets.location import AnyPath
from ubp_assets.model.autoencoder import PAPER_HIDDEN, ResidualAutoencoder
from ubp_assets.model.losses import autoencoder_loss

_FINITE_CHECK_ROWS = 65_536


def noise_sigma(epoch: int, epochs: int, start: float = 0.10, end: float = 0.02) -> float:
    """The paper's curriculum noise: sigma linear from `start` (epoch 0) to `end` (last epoch)."""
    if epochs < 1 or not 0 <= epoch < epochs:
        raise ValueError(f"need 0 <= epoch < epochs, got epoch={epoch}, epochs={epochs}")
    if epochs == 1:
        return float(start)
    f = epoch / (epochs - 1)
    # A convex combination hits both ends exactly (start + (end - start) * f does not).
    return float(start * (1.0 - f) + end * f)


@dataclass(frozen=True)
class TrainConfig:
    latent_dim: int = 64
    lambda_con: float = 0.1
    lambda_l2: float = 1e-4
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    temperature: float = 0.2
    batch_size: int = 256
    epochs: int = 30
    patience: int = 5
    holdout_share: float = 0.1
    seed: int = 0
    device: str = "cpu"
    noise_start: float = 0.10
    noise_end: float = 0.02
    hidden: tuple[int, ...] = field(default=PAPER_HIDDEN)  # the paper's widths; small in tests

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        problems = []
        if self.latent_dim < 1:
            problems.append("latent_dim >= 1")
        if self.batch_size < 2:
            problems.append("batch_size >= 2 (BatchNorm needs two rows)")
        if self.epochs < 1 or self.patience < 1:
            problems.append("epochs >= 1 and patience >= 1")
        if not 0.0 < self.holdout_share < 1.0:
            problems.append("0 < holdout_share < 1")
        if self.temperature <= 0 or self.learning_rate <= 0:
            problems.append("temperature > 0 and learning_rate > 0")
        if min(self.lambda_con, self.lambda_l2, self.weight_decay) < 0:
            problems.append("non-negative lambda_con, lambda_l2, weight_decay")
        if min(self.noise_start, self.noise_end) < 0:
            problems.append("non-negative noise_start, noise_end")
        if not self.hidden or min(self.hidden) < 1:
            problems.append("positive hidden widths")
        if problems:
            raise ValueError(f"invalid TrainConfig, need: {'; '.join(problems)}")

    def as_dict(self) -> dict[str, Any]:
        """Plain python values (hidden as a list): fit for metadata and torch.load(weights_only)."""
        out = asdict(self)
        out["hidden"] = list(self.hidden)
        return out

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Inverse of as_dict; keys this version does not know are ignored."""
        known = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in values.items() if k in known}
        if "hidden" in kwargs:
            kwargs["hidden"] = tuple(kwargs["hidden"])
        return cls(**kwargs)


@dataclass
class TrainResult:
    model: ResidualAutoencoder  # on CPU, eval mode, best holdout weights restored
    history: list[dict[str, float]]  # one dict per epoch run, see train_autoencoder
    best_epoch: int
    samples_per_second: float  # training rows per second of optimisation (no evaluation)
    parameter_count: int  # trainable parameters (BatchNorm running stats excluded)
    device: str


def resolve_device(name: str) -> torch.device:
    """torch.device(name), refusing CUDA where there is none instead of failing mid-run."""
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(
            f"device {name!r} requested but torch.cuda.is_available() is False "
            f"(torch {torch.__version__}); use device='cpu' or a CUDA build and GPU"
        )
    return torch.device(name)


def split_holdout(n_rows: int, share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train_rows, holdout_rows): a seeded permutation, round(share * n) rows held out (>= 1)."""
    n_hold = min(max(1, round(share * n_rows)), n_rows)
    perm = np.random.default_rng(seed).permutation(n_rows)
    return np.sort(perm[n_hold:]), np.sort(perm[:n_hold])


def _as_features(features: np.ndarray) -> np.ndarray:
    x = np.asarray(features, dtype=np.float32)
    if x.ndim != 2 or x.shape[1] < 1:
        raise ValueError(f"features must be a 2-D (n, d) array with d >= 1, got {x.shape}")
    for start in range(0, x.shape[0], _FINITE_CHECK_ROWS):  # chunks: no n x d temporary
        if not np.isfinite(x[start : start + _FINITE_CHECK_ROWS]).all():
            raise ValueError("features contain NaN or infinity; impute or scale them first")
    return x


def _cpu_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def _loss_weights(config: TrainConfig) -> dict[str, float]:
    return {
        "lambda_con": config.lambda_con,
        "lambda_l2": config.lambda_l2,
        "temperature": config.temperature,
    }


@torch.no_grad()
def _evaluate(
    model: ResidualAutoencoder, x: torch.Tensor, sigma: float, config: TrainConfig
) -> tuple[float, float]:
    """(clean reconstruction MSE, the training objective) on held-out rows, in eval mode.

    The objective uses a freshly seeded noise stream each epoch, so epochs differ only by the
    model and the curriculum sigma.
    """
    model.eval()
    generator = torch.Generator(device=x.device).manual_seed(config.seed + 2)
    squared = torch.zeros((), dtype=torch.float64, device=x.device)
    total = torch.zeros((), dtype=torch.float64, device=x.device)
    for start in range(0, x.shape[0], config.batch_size):
        xb = x[start : start + config.batch_size]
        x_hat, _ = model(xb)
        squared += (x_hat - xb).pow(2).sum(dtype=torch.float64)
        terms = autoencoder_loss(model, xb, sigma, generator=generator, **_loss_weights(config))
        total += terms.total.double() * xb.shape[0]
    return (squared / x.numel()).item(), (total / x.shape[0]).item()


def train_autoencoder(
    features: np.ndarray,
    config: TrainConfig,
    on_epoch: Callable[[int, float], None] | None = None,
) -> TrainResult:
    """Train on (n, d) standardised features with early stopping on held-out clients.

    history has one dict per epoch: epoch, sigma, train_reconstruction, train_contrastive,
    train_l2, train_total (row-weighted means over the epoch's batches), holdout_reconstruction
    (MSE of the clean held-out rows, no noise) and holdout_total (the objective on them).
    `on_epoch(epoch, holdout_reconstruction)` runs after each epoch; whatever it raises (an
    Optuna prune) propagates. The global torch RNG is left as it was.
    """
    x_all = _as_features(features)
    device = resolve_device(config.device)
    train_rows, hold_rows = split_holdout(x_all.shape[0], config.holdout_share, config.seed)
    if len(train_rows) < 2:
        raise ValueError(f"need at least 2 training rows after the holdout, got {x_all.shape[0]}")
    x_train = torch.from_numpy(x_all[train_rows]).to(device)
    x_hold = torch.from_numpy(x_all[hold_rows]).to(device)

    with torch.random.fork_rng(devices=[]):  # seed the weights without touching global state
        torch.manual_seed(config.seed)
        model = ResidualAutoencoder(x_all.shape[1], config.latent_dim, config.hidden)
    model.to(device)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    noise_gen = torch.Generator(device=device).manual_seed(config.seed)
    shuffle_gen = torch.Generator().manual_seed(config.seed + 1)

    history: list[dict[str, float]] = []
    best_loss, best_epoch, best_state = math.inf, 0, None
    bad_epochs, trained_rows, train_seconds = 0, 0, 0.0
    n_train = x_train.shape[0]
    for epoch in range(config.epochs):
        sigma = noise_sigma(epoch, config.epochs, config.noise_start, config.noise_end)
        model.train()
        started = time.perf_counter()
        perm = torch.randperm(n_train, generator=shuffle_gen).to(device)
        sums = torch.zeros(4, dtype=torch.float64, device=device)
        rows = 0
        for start in range(0, n_train, config.batch_size):
            idx = perm[start : start + config.batch_size]
            if idx.numel() < 2:  # BatchNorm cannot train on a single row
                continue
            terms = autoencoder_loss(
                model, x_train[idx], sigma, generator=noise_gen, **_loss_weights(config)
            )
            optimizer.zero_grad(set_to_none=True)
            terms.total.backward()
            optimizer.step()
            parts = (terms.reconstruction, terms.contrastive, terms.l2, terms.total)
            sums += torch.stack([t.detach() for t in parts]).double() * idx.numel()
            rows += idx.numel()
        train_means = (sums / rows).tolist()  # one host sync per epoch
        train_seconds += time.perf_counter() - started
        trained_rows += rows

        hold_rec, hold_total = _evaluate(model, x_hold, sigma, config)
        history.append(
            {
                "epoch": epoch,
                "sigma": sigma,
                "train_reconstruction": train_means[0],
                "train_contrastive": train_means[1],
                "train_l2": train_means[2],
                "train_total": train_means[3],
                "holdout_reconstruction": hold_rec,
                "holdout_total": hold_total,
            }
        )
        if best_state is None or hold_rec < best_loss:
            best_loss, best_epoch, best_state, bad_epochs = hold_rec, epoch, _cpu_state(model), 0
        else:
            bad_epochs += 1
        if on_epoch is not None:
            on_epoch(epoch, hold_rec)
        if bad_epochs >= config.patience:
            break

    assert best_state is not None  # epochs >= 1
    model.to("cpu")
    model.load_state_dict(best_state)
    model.eval()
    return TrainResult(
        model=model,
        history=history,
        best_epoch=best_epoch,
        samples_per_second=trained_rows / train_seconds if train_seconds > 0 else math.inf,
        parameter_count=sum(p.numel() for p in model.parameters() if p.requires_grad),
        device=str(device),
    )


@torch.no_grad()
def encode(
    model: ResidualAutoencoder, features: np.ndarray, batch_size: int = 4096, device: str = "cpu"
) -> np.ndarray:
    """float32 (n, latent_dim) embeddings in eval mode; the model's mode and device are restored."""
    x = _as_features(features)
    target = resolve_device(device)
    was_training = model.training
    home = next(model.parameters()).device
    out = np.empty((x.shape[0], model.latent_dim), dtype=np.float32)
    model.to(target).eval()
    try:
        for start in range(0, x.shape[0], batch_size):
            xb = torch.tensor(x[start : start + batch_size], device=target)
            out[start : start + xb.shape[0]] = model.encode(xb).float().cpu().numpy()
    finally:
        model.to(home).train(was_training)
    return out


def save_model(
    path: Path,
    result_or_model: TrainResult | ResidualAutoencoder,
    config: TrainConfig,
    extra: dict[str, Any],
) -> None:
    """One torch file, written atomically (temp file in the same folder, then os.replace).

    Keep `extra` to plain python values and tensors (feature names, scaler) so that
    torch.load(weights_only=True) can read the file.
    """
    model = result_or_model.model if isinstance(result_or_model, TrainResult) else result_or_model
    if model.latent_dim != config.latent_dim or model.hidden != config.hidden:
        raise ValueError(
            f"config (latent_dim={config.latent_dim}, hidden={config.hidden}) does not describe "
            f"the model (latent_dim={model.latent_dim}, hidden={model.hidden})"
        )
    payload = {
        "state_dict": _cpu_state(model),
        "config": config.as_dict(),
        "n_features": model.n_features,
        "hidden": list(model.hidden),
        "extra": extra,
    }
    path = location.as_path(path)
    if not location.is_local(path):  # one PUT: seen whole or not at all
        buffer = io.BytesIO()
        torch.save(payload, buffer)
        location.write_bytes(path, buffer.getvalue())
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(payload, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_model(path: AnyPath) -> tuple[ResidualAutoencoder, TrainConfig, dict[str, Any]]:
    """(model on CPU in eval mode, its config, extra) from a save_model file; weights only."""
    path = location.as_path(path)
    source = path if location.is_local(path) else io.BytesIO(path.read_bytes())
    payload = torch.load(source, map_location="cpu", weights_only=True)
    config = TrainConfig.from_dict(payload["config"])
    model = ResidualAutoencoder(payload["n_features"], config.latent_dim, tuple(payload["hidden"]))
    model.load_state_dict(payload["state_dict"])
    model.eval()
    return model, config, payload["extra"]
