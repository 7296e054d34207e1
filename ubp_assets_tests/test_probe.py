"""The organisers' probe: learns what can be learnt, not what cannot, and is deterministic."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import torch

from ubp_assets.evaluation.probe import PROFILES, ProbeNet, ProbeProfile, run_probe

TINY = ProbeProfile("t", 8, 16, epochs=2)
SMALL = ProbeProfile("s", 32, 64, epochs=3, batch_size=64)


@pytest.fixture(autouse=True)
def one_thread():
    """These nets are tiny: on a shared 2-core machine one thread is several times faster."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def gaussian(n: int, d: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)


def test_profiles_match_the_protocol():
    official = PROFILES["official"]
    assert (official.thin, official.wide, official.epochs) == (2048, 4096, 3)
    assert (official.batch_size, official.learning_rate, official.seed) == (128, 1e-3, 1278)
    assert (PROFILES["fast"].thin, PROFILES["fast"].wide) == (256, 512)


def test_probe_net_parameter_count_by_hand():
    # d = 4, thin = 8, wide = 16, one output:
    # input_projection 4*8 + 8 = 40; ln_input 2*8 = 16; three layernorms 3 * 16 = 48;
    # three bottlenecks 3 * ((8*16 + 16) + (16*8 + 8)) = 3 * (144 + 136) = 840;
    # ln_output 16; linear_output 8*1 + 1 = 9.  Total 40 + 16 + 48 + 840 + 16 + 9 = 969.
    net = ProbeNet(4, 1, TINY.thin, TINY.wide)
    assert sum(p.numel() for p in net.parameters()) == 969
    assert net(torch.zeros(5, 4)).shape == (5, 1)


def test_learnable_binary_task_scores_high():
    x = gaussian(2000, 16, 0)
    y = (x[:, :1] > 0).astype(np.float32)
    result = run_probe(x, y, y, popularity=None, profile=PROFILES["fast"])
    assert result.best.auroc > 0.9
    assert result.best.diversity is None and result.best.novelty is None
    assert result.best.score == result.best.auroc


def test_random_embeddings_and_independent_labels_score_near_half():
    rng = np.random.default_rng(1)
    x = gaussian(2000, 16, 2)
    train = (rng.random((2000, 1)) < 0.5).astype(np.float32)
    score = (rng.random((2000, 1)) < 0.5).astype(np.float32)
    result = run_probe(x, train, score, popularity=None, profile=SMALL)
    assert all(0.40 <= s.auroc <= 0.60 for s in result.epochs)


def test_propensity_task_scores_and_best_epoch():
    rng = np.random.default_rng(4)
    x = gaussian(600, 12, 5)
    # Five labels, partly driven by the embeddings so the epochs differ.
    labels = ((x[:, :5] + rng.normal(size=(600, 5))) > 1.0).astype(np.float32)
    popularity = np.array([50.0, 30.0, 10.0, 5.0, 1.0])
    result = run_probe(x, labels, labels, popularity=popularity, profile=SMALL)
    assert len(result.epochs) == SMALL.epochs
    for s in result.epochs:
        assert s.diversity is not None and 0.0 <= s.diversity <= 1.0
        assert s.novelty is not None and 0.0 <= s.novelty <= 1.0
        assert 0.0 <= s.auroc <= 1.0
        assert s.score == pytest.approx(0.8 * s.auroc + 0.1 * s.diversity + 0.1 * s.novelty)
    values = [s.score for s in result.epochs]
    assert result.best_epoch == values.index(max(values))
    assert result.best == result.epochs[result.best_epoch]
    assert result.train_seconds > 0


def test_same_inputs_give_identical_scores_and_leave_the_rng_alone():
    x = gaussian(300, 6, 7).astype(np.float16)  # submissions are float16
    y = (x[:, 1:2] > 0).astype(np.float32)
    before = torch.get_rng_state()
    first = run_probe(x, y, y, popularity=None, profile=TINY)
    second = run_probe(x, y, y, popularity=None, profile=TINY)
    assert first.epochs == second.epochs
    assert len(first.epochs) == TINY.epochs
    assert torch.equal(torch.get_rng_state(), before)


def test_float16_embeddings_score_as_their_float32_values_without_a_float32_copy():
    x = gaussian(300, 6, 7).astype(np.float16)
    y = (x[:, 1:2] > 0).astype(np.float32)
    as_float32 = run_probe(x.astype(np.float32), y, y, popularity=None, profile=TINY)
    half = run_probe(x, y, y, popularity=None, profile=TINY)
    assert half.epochs == as_float32.epochs  # a batch at a time in float32: the same numbers
    rows = run_probe(x, y, y, popularity=None, profile=TINY, train_rows=np.arange(300))
    assert rows.epochs == as_float32.epochs
    # numpy's allocations while it runs on 60,000 x 128 float16 (15 MiB; float32: 29 MiB)
    wide = gaussian(60_000, 128, 8).astype(np.float16)
    labels = (wide[:, :1] > 0).astype(np.float32)
    one_epoch = ProbeProfile("e", 8, 16, epochs=1, batch_size=4096)
    tracemalloc.start()
    run_probe(wide, labels, labels, popularity=None, profile=one_epoch)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < wide.nbytes, (peak, wide.nbytes)


def test_bad_input_raises_clear_errors():
    x = gaussian(10, 3, 0)
    y = np.zeros((10, 1), dtype=np.float32)
    y[::2] = 1
    with pytest.raises(ValueError, match="rows"):
        run_probe(x, y[:9], y[:9], popularity=None, profile=TINY)
    with pytest.raises(ValueError, match="2-D"):
        run_probe(x, y[:, 0], y[:, 0], popularity=None, profile=TINY)
    bad = x.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        run_probe(bad, y, y, popularity=None, profile=TINY)
    with pytest.raises(ValueError, match="one label column"):
        run_probe(x, np.hstack([y, y]), np.hstack([y, y]), popularity=None, profile=TINY)


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_cuda_without_cuda_raises():
    x = gaussian(10, 3, 0)
    y = (x[:, :1] > 0).astype(np.float32)
    with pytest.raises(RuntimeError, match="CUDA"):
        run_probe(x, y, y, popularity=None, profile=TINY, device="cuda")


def test_held_out_rows_are_scored_on_what_the_probe_never_saw():
    x = gaussian(2000, 16, 3)
    y = (x[:, :1] > 0).astype(np.float32)
    first, second = np.arange(1000), np.arange(1000, 2000)
    held_out = run_probe(
        x, y, y, popularity=None, profile=SMALL, train_rows=first, score_rows=second
    )
    assert held_out.best.auroc > 0.85  # the rule generalises to clients it never saw
    # labels independent of the vectors: the probe can memorise its own rows, not others'
    noise = (np.random.default_rng(4).random((2000, 1)) < 0.5).astype(np.float32)
    memorised = run_probe(x, noise, noise, popularity=None, profile=SMALL)
    unseen = run_probe(
        x, noise, noise, popularity=None, profile=SMALL, train_rows=first, score_rows=second
    )
    assert 0.4 < unseen.best.auroc < 0.6
    assert memorised.best.auroc > unseen.best.auroc
