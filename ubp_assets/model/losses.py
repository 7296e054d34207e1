"""The paper's training objective: MSE + lambda_con * InfoNCE + lambda_l2 * ||z||^2."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ubp_assets.model.autoencoder import ResidualAutoencoder


def info_nce(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """Symmetric InfoNCE with in-batch negatives: row i of z1 must pick row i of z2.

    Rows are L2-normalised, so the logits are cosine similarities / temperature.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    if z1.shape != z2.shape or z1.ndim != 2:
        raise ValueError(f"need two (n, d) tensors of one shape, got {z1.shape} and {z2.shape}")
    a = F.normalize(z1, dim=1)
    b = F.normalize(z2, dim=1)
    logits = a @ b.T / temperature
    targets = torch.arange(z1.shape[0], device=z1.device)
    return 0.5 * (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets))


def latent_l2(z: torch.Tensor) -> torch.Tensor:
    """Mean over rows of ||z||^2: keeps the embedding's scale from drifting."""
    return z.pow(2).sum(dim=1).mean()


@dataclass
class LossTerms:
    """0-dim tensors; `total` carries the graph for backward(), use float() to log the others."""

    reconstruction: torch.Tensor
    contrastive: torch.Tensor
    l2: torch.Tensor
    total: torch.Tensor


def autoencoder_loss(
    model: ResidualAutoencoder,
    x: torch.Tensor,
    sigma: float,
    *,
    lambda_con: float,
    lambda_l2: float,
    temperature: float,
    generator: torch.Generator,
) -> LossTerms:
    """The paper's loss on two views x + N(0, sigma^2) with independent noise.

    Denoising: the reconstruction is the MSE between the clean x and the decoding of view 1.
    The contrastive term pulls the latents of the two views of a user together and pushes other
    users apart. The noise comes from `generator` (on x's device) so a seed fixes it.
    The model's train/eval mode is the caller's business. The weights are keyword-only so
    they cannot be swapped by position.
    """
    noise1 = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    noise2 = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    x_hat1, z1 = model(x + sigma * noise1)
    z2 = model.encode(x + sigma * noise2)
    reconstruction = F.mse_loss(x_hat1, x)
    contrastive = info_nce(z1, z2, temperature)
    l2 = latent_l2(z1)
    total = reconstruction + lambda_con * contrastive + lambda_l2 * l2
    return LossTerms(reconstruction=reconstruction, contrastive=contrastive, l2=l2, total=total)
