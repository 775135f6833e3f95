"""The loss train.py descends is the model's own next-token loss over non-pad targets, however the
batch is split over processes; batches are a pure function of (seed, step)."""
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from conftest import TINY_WORLD, TINY_MODEL, tiny_train_config
from data import CoupletWorld, PAD
from model import GPT, load_checkpoint
from plumbing.ddp import shard_loss
from train import batch_indices, epoch_permutation, inputs_and_targets, train


def tiny(**kw):
    world = CoupletWorld(TINY_WORLD)
    cfg = replace(TINY_MODEL, vocab_size=len(world.itos), block_size=world.max_len(), **kw)
    torch.manual_seed(0)
    model = GPT(cfg)
    with torch.no_grad():  # a model that is not at its init: larger, less uniform activations
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model, world.tensor(world.split("train")[:64], cfg.block_size)


def reference_loss(model, batch):
    """Mean cross-entropy over every next token that is not <pad>, from the full-width logits
    (a hook forces the plain path: no columns dropped)."""
    logits, _ = model(batch[:, :-1], hooks=[("hook_embed", lambda x: None)])
    y = batch[:, 1:]
    keep = y != PAD
    return F.cross_entropy(logits[keep], y[keep])


def test_inputs_and_targets_ignore_pad_only():
    _, data = tiny()
    x, y = inputs_and_targets(data)
    assert torch.equal(x, data[:, :-1])
    assert torch.equal(y == -1, data[:, 1:] == PAD) and (y == -1).any() and (y != -1).any()
    assert torch.equal(y[y != -1], data[:, 1:][data[:, 1:] != PAD])


@pytest.mark.parametrize("kw", [{}, {"myopic": True}, {"nl_barrier": True}])
def test_training_loss_and_gradients_are_the_models_own(kw):
    model, data = tiny(**kw)
    model.train()
    ref = reference_loss(model, data)
    ref_g = torch.autograd.grad(ref, list(model.parameters()))
    got = shard_loss(model, *inputs_and_targets(data), 0, 1)
    got_g = torch.autograd.grad(got, list(model.parameters()))
    assert torch.allclose(got, ref, atol=1e-5)
    for r, g in zip(ref_g, got_g):
        assert torch.allclose(g, r, atol=1e-5, rtol=1e-4)
    assert got.item() > 1.0  # not a degenerate (all-ignored) loss


def test_shards_of_unequal_token_counts_add_up_to_the_whole_batch():
    """What DDP averages over N processes: each shard's loss times N, so the mean of the shards'
    gradients is the one-process gradient even when the shards hold different numbers of tokens."""
    model, data = tiny()
    x, y = inputs_and_targets(data)
    half = len(data) // 2
    assert (y[:half] != -1).sum() != (y[half:] != -1).sum()  # the case that a plain mean gets wrong
    whole = shard_loss(model, *inputs_and_targets(data), 0, 1)
    parts = [shard_loss(model, *inputs_and_targets(data), r, 2) for r in range(2)]
    assert torch.allclose((parts[0] + parts[1]) / 2, whole, atol=1e-6)
    g_whole = torch.autograd.grad(whole, list(model.parameters()))
    g_parts = [torch.autograd.grad(p, list(model.parameters())) for p in parts]
    for w, a, b in zip(g_whole, *g_parts):
        assert torch.allclose((a + b) / 2, w, atol=1e-6, rtol=1e-4)


def test_the_logged_first_loss_is_the_forward_loss_of_the_first_batch(tmp_path):
    cfg = tiny_train_config(tmp_path, max_steps=5, seed=3)
    assert train(TINY_WORLD, TINY_MODEL, cfg, on_step=lambda r: True, quiet=True) is None  # stop after step 1
    state = load_checkpoint(str(tmp_path / "model.pt"))[1]["train_state"]
    assert state["step"] == 1 and state["losses"][0][0] == 1
    world = CoupletWorld(TINY_WORLD)
    model_cfg = replace(TINY_MODEL, vocab_size=len(world.itos), block_size=world.max_len())
    torch.manual_seed(cfg.seed)  # the run's initial weights
    model = GPT(model_cfg)
    data = world.tensor(world.split("train"), model_cfg.block_size)
    batch = data[batch_indices(0, len(data), cfg.batch_size, cfg.seed)]
    with torch.no_grad():
        expected = model(*inputs_and_targets(batch))[1].item()
    assert state["losses"][0][1] == pytest.approx(expected, abs=1e-4)


def test_batch_indices_are_the_epoch_permutation():
    n, bs, seed = 100, 16, 3
    for step in (0, 5, 6, 13):
        epoch, i = divmod(step, n // bs)
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100003 + epoch))
        assert torch.equal(batch_indices(step, n, bs, seed), perm[i * bs:(i + 1) * bs])
    batch_indices(0, n, bs, seed).zero_()  # a caller that scribbles on its rows cannot corrupt the cache
    assert torch.equal(epoch_permutation(n, seed, 0),
                       torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100003)))
