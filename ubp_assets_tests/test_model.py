"""The seed paper's residual contrastive autoencoder: architecture, losses, training, file."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ubp_assets.model.autoencoder import PAPER_HIDDEN, ResidualAutoencoder, ResidualBlock
from ubp_assets.model.losses import autoencoder_loss, info_nce, latent_l2
from ubp_assets.model.training import (
    TrainConfig,
    encode,
    load_model,
    noise_sigma,
    save_model,
    split_holdout,
    train_autoencoder,
)

SMALL = {"hidden": (32, 16), "latent_dim": 8, "batch_size": 64}


def low_rank(n: int, seed: int, rank: int = 4, d: int = 40) -> np.ndarray:
    """Rows on a rank-`rank` subspace (fixed loadings) plus small noise."""
    loadings = np.random.default_rng(1000).normal(size=(rank, d))
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, rank)) @ loadings + 0.05 * rng.normal(size=(n, d))


@pytest.fixture(scope="module")
def standardized() -> tuple[np.ndarray, np.ndarray]:
    """(train, fresh test rows from the same distribution), scaled with the train statistics."""
    train, test = low_rank(512, 0), low_rank(256, 1)
    mu, sd = train.mean(axis=0), train.std(axis=0)
    return ((train - mu) / sd).astype(np.float32), ((test - mu) / sd).astype(np.float32)


# --- architecture -----------------------------------------------------------------------------


@pytest.mark.parametrize("latent", [32, 64])
def test_paper_widths_and_shapes(latent):
    model = ResidualAutoencoder(40, latent_dim=latent).eval()
    x = torch.randn(7, 40)
    with torch.no_grad():
        x_hat, z = model(x)
    assert x_hat.shape == x.shape
    assert z.shape == (7, latent)
    assert encode(model, x.numpy()).shape == (7, latent)

    enc_blocks = [m for m in model.encoder if isinstance(m, ResidualBlock)]
    assert [b.linear.out_features for b in enc_blocks] == [512, 256, 128, 64]
    assert [b.linear.in_features for b in enc_blocks] == [40, 512, 256, 128]
    latent_layer = model.encoder[-1]
    assert type(latent_layer) is nn.Linear
    assert (latent_layer.in_features, latent_layer.out_features) == (64, latent)

    dec_blocks = [m for m in model.decoder if isinstance(m, ResidualBlock)]
    assert [(b.linear.in_features, b.linear.out_features) for b in dec_blocks] == [
        (latent, 64),
        (64, 128),
        (128, 256),
        (256, 512),
    ]
    out_layer = model.decoder[-1]
    assert type(out_layer) is nn.Linear
    assert (out_layer.in_features, out_layer.out_features) == (512, 40)

    for block in enc_blocks + dec_blocks:
        assert isinstance(block.norm, nn.BatchNorm1d)
        assert block.norm.num_features == block.linear.out_features
        assert isinstance(block.act, nn.GELU)
        same = block.linear.in_features == block.linear.out_features
        assert isinstance(block.skip, nn.Identity) == same
        if not same:
            assert isinstance(block.skip, nn.Linear)
            assert block.skip.bias is None
    # With latent 64 the decoder's first block is 64 -> 64: an identity skip, no projection.
    assert isinstance(dec_blocks[0].skip, nn.Identity) == (latent == 64)


@pytest.mark.parametrize(("d_in", "d_out"), [(8, 8), (8, 5)])
def test_block_matches_the_formula(d_in, d_out):
    torch.manual_seed(3)
    block = ResidualBlock(d_in, d_out)
    assert isinstance(block.skip, nn.Identity) == (d_in == d_out)
    x = torch.randn(16, d_in)
    w, b = block.linear.weight, block.linear.bias
    gamma, beta, eps = block.norm.weight, block.norm.bias, block.norm.eps
    skip = x if d_in == d_out else x @ block.skip.weight.T
    with torch.no_grad():
        gamma.uniform_(0.5, 2.0)
        beta.normal_()
        # Training mode: the batch's mean and biased variance.
        h = x @ w.T + b
        normed = (h - h.mean(0)) / torch.sqrt(h.var(0, unbiased=False) + eps) * gamma + beta
        expected = F.gelu(normed) + skip
        torch.testing.assert_close(block.train()(x), expected, rtol=1e-5, atol=1e-5)
        # Eval mode: the running statistics (set to something other than their defaults).
        block.norm.running_mean.normal_()
        block.norm.running_var.uniform_(0.5, 2.0)
        rm, rv = block.norm.running_mean, block.norm.running_var
        expected = F.gelu((h - rm) / torch.sqrt(rv + eps) * gamma + beta) + skip
        torch.testing.assert_close(block.eval()(x), expected, rtol=1e-5, atol=1e-5)


# --- losses -----------------------------------------------------------------------------------


def test_info_nce_prefers_matching_views():
    z = torch.linalg.qr(torch.randn(64, 32, generator=torch.Generator().manual_seed(0)))[0][:32]
    shuffled = z[torch.randperm(32, generator=torch.Generator().manual_seed(1))]
    matched = info_nce(z, z, temperature=0.1)
    mismatched = info_nce(z, shuffled, temperature=0.1)
    assert matched < 0.1 * mismatched
    assert mismatched > math.log(32) * 0.5


@pytest.mark.parametrize("t", [0.1, 0.5, 1.0])
def test_info_nce_one_hot_by_hand(t):
    scale = torch.tensor([[1.0], [2.0], [0.5], [3.0]], dtype=torch.float64)
    z = torch.eye(4, dtype=torch.float64) * scale  # the scale must not matter
    expected = -math.log(math.exp(1 / t) / (math.exp(1 / t) + 3))
    assert info_nce(z, z, temperature=t).item() == pytest.approx(expected, rel=1e-6)


def test_info_nce_is_symmetric():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(6, 3, generator=g), torch.randn(6, 3, generator=g)
    assert info_nce(a, b, 0.2).item() == pytest.approx(info_nce(b, a, 0.2).item(), rel=1e-6)


def test_latent_l2_by_hand():
    z = torch.tensor([[1.0, 2.0], [3.0, -4.0]])
    assert latent_l2(z).item() == pytest.approx(((1 + 4) + (9 + 16)) / 2)


def test_autoencoder_loss_combines_terms_and_follows_the_generator():
    torch.manual_seed(0)
    model = ResidualAutoencoder(10, latent_dim=4, hidden=(16, 8)).eval()
    x = torch.randn(12, 10)
    weights = {"lambda_con": 0.3, "lambda_l2": 0.01, "temperature": 0.2}
    with torch.no_grad():
        t1 = autoencoder_loss(model, x, 0.1, generator=torch.Generator().manual_seed(5), **weights)
        t2 = autoencoder_loss(model, x, 0.1, generator=torch.Generator().manual_seed(5), **weights)
        t3 = autoencoder_loss(model, x, 0.1, generator=torch.Generator().manual_seed(6), **weights)
        clean = autoencoder_loss(model, x, 0.0, generator=torch.Generator(), **weights)
        x_hat, z = model(x)
    assert t1.total.item() == pytest.approx(
        t1.reconstruction.item() + 0.3 * t1.contrastive.item() + 0.01 * t1.l2.item(), rel=1e-6
    )
    assert t1.total.item() == t2.total.item()
    assert t1.total.item() != t3.total.item()
    # sigma 0: both views are x, so the terms reduce to the clean model's.
    assert clean.reconstruction.item() == pytest.approx(F.mse_loss(x_hat, x).item(), rel=1e-6)
    assert clean.contrastive.item() == pytest.approx(info_nce(z, z, 0.2).item(), rel=1e-6)
    assert clean.l2.item() == pytest.approx(latent_l2(z).item(), rel=1e-6)


def test_reconstruction_is_denoising():
    """View 1 is decoded and compared with the clean x; the views draw noise 1 then noise 2."""
    torch.manual_seed(0)
    model = ResidualAutoencoder(10, latent_dim=4, hidden=(16, 8)).eval()
    x, sigma = torch.randn(12, 10), 0.5
    g = torch.Generator().manual_seed(9)
    noise1, noise2 = torch.randn(x.shape, generator=g), torch.randn(x.shape, generator=g)
    with torch.no_grad():
        terms = autoencoder_loss(
            model,
            x,
            sigma,
            lambda_con=0.1,
            lambda_l2=0.0,
            temperature=0.2,
            generator=torch.Generator().manual_seed(9),
        )
        x_hat1, z1 = model(x + sigma * noise1)
        z2 = model.encode(x + sigma * noise2)
    assert terms.reconstruction.item() == pytest.approx(F.mse_loss(x_hat1, x).item(), rel=1e-6)
    noisy_target = F.mse_loss(x_hat1, x + sigma * noise1).item()
    assert terms.reconstruction.item() != pytest.approx(noisy_target, rel=1e-3)
    assert terms.contrastive.item() == pytest.approx(info_nce(z1, z2, 0.2).item(), rel=1e-6)
    assert terms.l2.item() == pytest.approx(latent_l2(z1).item(), rel=1e-6)


# --- training ---------------------------------------------------------------------------------


def test_noise_sigma_curriculum():
    assert noise_sigma(0, 10) == 0.10
    assert noise_sigma(9, 10) == 0.02
    sigmas = [noise_sigma(e, 10) for e in range(10)]
    assert all(a > b for a, b in itertools.pairwise(sigmas))
    steps = np.diff(sigmas)
    np.testing.assert_allclose(steps, steps[0])  # linear
    assert noise_sigma(0, 1) == 0.10
    with pytest.raises(ValueError):
        noise_sigma(10, 10)


def test_training_is_deterministic_and_seeded(standardized):
    x, _ = standardized
    config = TrainConfig(**SMALL, epochs=3, noise_start=0.3, noise_end=0.1)
    rng_before = torch.random.get_rng_state()
    first = train_autoencoder(x, config)
    assert torch.equal(torch.random.get_rng_state(), rng_before)  # global RNG untouched
    second = train_autoencoder(x, config)
    other = train_autoencoder(x, TrainConfig(**SMALL, epochs=3, seed=1))

    assert first.history == second.history
    state1, state2 = first.model.state_dict(), second.model.state_dict()
    assert state1.keys() == state2.keys()
    assert all(torch.equal(state1[k], state2[k]) for k in state1)
    state3 = other.model.state_dict()
    assert not torch.equal(state1["encoder.0.linear.weight"], state3["encoder.0.linear.weight"])

    assert [h["epoch"] for h in first.history] == [0, 1, 2]
    assert [h["sigma"] for h in first.history] == [noise_sigma(e, 3, 0.3, 0.1) for e in range(3)]
    for h in first.history:
        assert h["train_total"] == pytest.approx(
            h["train_reconstruction"]
            + config.lambda_con * h["train_contrastive"]
            + config.lambda_l2 * h["train_l2"],
            rel=1e-5,
        )
    assert not first.model.training
    assert all(p.device.type == "cpu" for p in first.model.parameters())
    assert first.parameter_count == sum(p.numel() for p in first.model.parameters())
    assert first.samples_per_second > 0
    assert first.device == "cpu"


def test_trained_model_beats_the_mean_predictor(standardized):
    x, test = standardized
    result = train_autoencoder(x, TrainConfig(**SMALL, epochs=15, learning_rate=3e-3))
    with torch.no_grad():
        x_hat, _ = result.model(torch.from_numpy(test))
    model_mse = float(((x_hat.numpy() - test) ** 2).mean())
    mean_mse = float(((test - x.mean(axis=0)) ** 2).mean())
    assert model_mse < 0.5 * mean_mse
    # The held-out clients during training tell the same story.
    best = result.history[result.best_epoch]["holdout_reconstruction"]
    _, hold = split_holdout(len(x), 0.1, 0)
    assert best < 0.5 * float(((x[hold] - x.mean(axis=0)) ** 2).mean())


def test_early_stopping_restores_the_best_epoch():
    # Pure noise through a 2-d latent at a high learning rate: the held-out error soon stops
    # improving, whatever the details.
    x = np.random.default_rng(0).normal(size=(96, 40)).astype(np.float32)
    config = TrainConfig(
        hidden=(32, 16),
        latent_dim=2,
        batch_size=32,
        learning_rate=5e-2,
        holdout_share=0.33,
        epochs=60,
        patience=2,
    )
    result = train_autoencoder(x, config)
    losses = [h["holdout_reconstruction"] for h in result.history]
    assert len(losses) < config.epochs
    assert result.best_epoch == int(np.argmin(losses))
    assert len(losses) == result.best_epoch + config.patience + 1  # stopped after `patience`
    # The returned weights are the best epoch's, not the last one's.
    _, hold = split_holdout(len(x), config.holdout_share, config.seed)
    with torch.no_grad():
        x_hat, _ = result.model(torch.from_numpy(x[hold]))
    restored = float(((x_hat.numpy() - x[hold]) ** 2).mean())
    assert restored == pytest.approx(losses[result.best_epoch], rel=1e-5)


def test_on_epoch_sees_every_epoch_and_its_exceptions_propagate(standardized):
    x, _ = standardized
    seen: list[tuple[int, float]] = []
    result = train_autoencoder(
        x, TrainConfig(**SMALL, epochs=4, patience=10), on_epoch=lambda e, v: seen.append((e, v))
    )
    assert seen == [(h["epoch"], h["holdout_reconstruction"]) for h in result.history]
    assert [e for e, _ in seen] == [0, 1, 2, 3]

    class Pruned(Exception):
        pass

    calls: list[int] = []

    def prune_at_one(epoch: int, _value: float) -> None:
        calls.append(epoch)
        if epoch == 1:
            raise Pruned

    with pytest.raises(Pruned):
        train_autoencoder(x, TrainConfig(**SMALL, epochs=4, patience=10), on_epoch=prune_at_one)
    assert calls == [0, 1]


def test_split_holdout_partitions_rows():
    train, hold = split_holdout(50, 0.1, 3)
    assert len(hold) == 5
    assert sorted(np.concatenate([train, hold]).tolist()) == list(range(50))
    assert len(split_holdout(5, 0.01, 0)[1]) == 1  # at least one held-out row
    assert not np.array_equal(hold, split_holdout(50, 0.1, 4)[1])


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="NaN"):
        train_autoencoder(np.full((10, 3), np.nan, dtype=np.float32), TrainConfig(**SMALL))
    with pytest.raises(ValueError, match="2-D"):
        train_autoencoder(np.zeros(10, dtype=np.float32), TrainConfig(**SMALL))
    with pytest.raises(ValueError, match="batch_size"):
        TrainConfig(batch_size=1)


# --- encoding and the model file --------------------------------------------------------------


def test_save_load_round_trip(standardized, tmp_path):
    x, test = standardized
    config = TrainConfig(**SMALL, epochs=2)
    result = train_autoencoder(x, config)
    extra = {"feature_names": [f"f{i}" for i in range(40)], "scaler": {"mean": [0.0] * 40}}
    path = tmp_path / "models" / "ae.pt"
    save_model(path, result, config, extra)
    assert [p.name for p in path.parent.iterdir()] == ["ae.pt"]  # no temp file left behind

    model, loaded_config, loaded_extra = load_model(path)
    assert loaded_config == config
    assert loaded_extra == extra
    assert not model.training
    np.testing.assert_array_equal(encode(model, test), encode(result.model, test))
    assert encode(model, test, batch_size=7).dtype == np.float32

    payload = torch.load(path, weights_only=True)
    assert set(payload) == {"state_dict", "config", "n_features", "hidden", "extra"}
    assert payload["n_features"] == 40
    assert payload["hidden"] == list(SMALL["hidden"])

    # A bare model saves too, and overwriting replaces the file.
    save_model(path, model, config, {})
    assert load_model(path)[2] == {}
    with pytest.raises(ValueError, match="latent_dim"):
        save_model(path, model, TrainConfig(**{**SMALL, "latent_dim": 3}), {})


def test_encode_restores_mode_and_batches_consistently(standardized):
    x, _ = standardized
    torch.manual_seed(0)
    model = ResidualAutoencoder(40, latent_dim=8, hidden=(32, 16))
    model.train()
    whole = encode(model, x)
    assert model.training
    np.testing.assert_allclose(encode(model, x, batch_size=33), whole, rtol=1e-5, atol=1e-6)
    with torch.no_grad():
        direct = model.eval().encode(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(whole, direct, rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA present: nothing to refuse")
def test_cuda_without_cuda_is_a_clear_error(standardized):
    x, _ = standardized
    with pytest.raises(RuntimeError, match=r"cuda\.is_available\(\) is False"):
        train_autoencoder(x, TrainConfig(**SMALL, device="cuda"))
    with pytest.raises(RuntimeError, match="cuda"):
        encode(ResidualAutoencoder(40, 8, (16,)), x, device="cuda:0")


def test_paper_hidden_default():
    assert PAPER_HIDDEN == (512, 256, 128, 64)
    assert TrainConfig().hidden == PAPER_HIDDEN
    assert TrainConfig().latent_dim == 64
