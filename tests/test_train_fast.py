"""train.py's fast loss (packed non-pad positions) is the model's own loss, up to rounding."""
from dataclasses import replace

import torch

from conftest import TINY_WORLD, TINY_MODEL
from data import CoupletWorld, PAD
from model import GPT
from train import packed_loss, check_packed_loss, batch_indices, epoch_permutation


def tiny(**kw):
    world = CoupletWorld(TINY_WORLD)
    cfg = replace(TINY_MODEL, vocab_size=len(world.itos), block_size=world.max_len(), **kw)
    torch.manual_seed(0)
    return GPT(cfg), world.tensor(world.split("train")[:64], cfg.block_size)


def test_packed_loss_and_gradients_equal_the_models():
    model, data = tiny()
    with torch.no_grad():  # a model that is not at its init: larger, less uniform activations
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    ref = model.loss(data[:, :-1], data[:, 1:], ignore_index=PAD)
    ref_g = torch.autograd.grad(ref, list(model.parameters()))
    got = packed_loss(model, data)
    got_g = torch.autograd.grad(got, list(model.parameters()))
    assert torch.allclose(got, ref, atol=1e-5)
    for r, g in zip(ref_g, got_g):
        assert torch.allclose(g, r, atol=1e-5, rtol=1e-4)
    assert check_packed_loss(model, data, 16)


def test_fast_loss_refused_where_it_does_not_apply():
    for kw in ({"myopic": True}, {"nl_barrier": True}):
        model, data = tiny(**kw)
        assert not check_packed_loss(model, data, 16)
    model, data = tiny()
    holes = data.clone()
    holes[0, 3] = PAD  # a pad inside a row: later positions would read it
    assert not check_packed_loss(model, holes, 16)


def test_batch_indices_are_the_epoch_permutation():
    n, bs, seed = 100, 16, 3
    for step in (0, 5, 6, 13):
        epoch, i = divmod(step, n // bs)
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100003 + epoch))
        assert torch.equal(batch_indices(step, n, bs, seed), perm[i * bs:(i + 1) * bs])
    batch_indices(0, n, bs, seed).zero_()  # a caller that scribbles on its rows cannot corrupt the cache
    assert torch.equal(epoch_permutation(n, seed, 0),
                       torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100003)))
