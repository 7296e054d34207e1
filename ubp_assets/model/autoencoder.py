"""The seed paper's residual autoencoder (section 3.2): the latent is the user embedding."""

from __future__ import annotations

import itertools

import torch
from torch import nn

PAPER_HIDDEN: tuple[int, ...] = (512, 256, 128, 64)


class ResidualBlock(nn.Module):
    """y = GELU(BatchNorm1d(Linear(x))) + skip(x).

    The skip is the identity when the widths match and a bias-free linear projection otherwise,
    so every layer of the paper's stack can carry its input forward (gradient flow, fine detail).
    """

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, out_features)
        self.norm = nn.BatchNorm1d(out_features)
        self.act = nn.GELU()
        self.skip: nn.Module = (
            nn.Identity()
            if in_features == out_features
            else nn.Linear(in_features, out_features, bias=False)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.linear(x))) + self.skip(x)


class ResidualAutoencoder(nn.Module):
    """Encoder n_features -> hidden... -> latent; the decoder mirrors it back to n_features.

    The latent layer and the output layer are plain linear maps: the latent is the embedding
    (no activation clips it) and the output reconstructs standardised, signed features.
    """

    def __init__(
        self, n_features: int, latent_dim: int = 64, hidden: tuple[int, ...] = PAPER_HIDDEN
    ) -> None:
        super().__init__()
        hidden = tuple(int(h) for h in hidden)
        if n_features < 1 or latent_dim < 1 or not hidden or min(hidden) < 1:
            raise ValueError(
                f"need positive sizes, got n_features={n_features}, latent_dim={latent_dim}, "
                f"hidden={hidden}"
            )
        self.n_features = int(n_features)
        self.latent_dim = int(latent_dim)
        self.hidden = hidden

        enc_dims = (self.n_features, *hidden)
        self.encoder = nn.Sequential(
            *(ResidualBlock(a, b) for a, b in itertools.pairwise(enc_dims)),
            nn.Linear(hidden[-1], self.latent_dim),
        )
        dec_dims = (self.latent_dim, *reversed(hidden))
        self.decoder = nn.Sequential(
            *(ResidualBlock(a, b) for a, b in itertools.pairwise(dec_dims)),
            nn.Linear(hidden[0], self.n_features),
        )

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (x_hat, z)."""
        z = self.encode(x)
        return self.decode(z), z
