import os

import pytest
import torch

from data import world_from_dict
from model import load_checkpoint
from interp.transcoder import (CLTConfig, CrossLayerTranscoder, collect, ending_fidelity, evaluate_clt, get_clt,
                               load_clt, random_dictionary, replacement_hooks, train_clt)

TINY_CLT = CLTConfig(n_features=32, n_couplets=300, steps=120, batch_tokens=256, sparsity=0.05)


@pytest.fixture(scope="module")
def tiny(tiny_run):
    model, ckpt = load_checkpoint(tiny_run[0])
    return model, world_from_dict(ckpt["world_config"])


@pytest.fixture(scope="module")
def trained(tiny):
    model, world = tiny
    return train_clt(model, world, TINY_CLT)


def test_training_reduces_reconstruction_error(tiny, trained):
    model, world = tiny
    torch.manual_seed(0)
    untrained = CrossLayerTranscoder(model.cfg.n_layer, model.cfg.d_model, 32).eval()
    before = evaluate_clt(model, world, untrained, n_couplets=40)
    clt, info = trained
    after = evaluate_clt(model, world, clt, n_couplets=40)
    assert after["fvu"] < 0.5 * before["fvu"] and after["fvu"] < 0.5
    assert after["loss_recovered"] > before["loss_recovered"]
    assert 0 < after["l0"] < 32 and 0 <= after["dead_fraction"] <= 1
    assert len(after["fvu_per_layer"]) == model.cfg.n_layer and info["train_tokens"] > 1000


def test_same_seed_same_weights_other_seed_other_weights(tiny):
    model, world = tiny
    short = CLTConfig(n_features=16, n_couplets=100, steps=20, batch_tokens=64)
    a, _ = train_clt(model, world, short)
    b, _ = train_clt(model, world, short)
    c, _ = train_clt(model, world, CLTConfig(**{**short.__dict__, "seed": 1}))
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert not torch.equal(a.W_enc, c.W_enc)


def test_cache_is_reused_and_rebuilt_when_stale_or_corrupt(tiny, tmp_path):
    model, world = tiny
    path = str(tmp_path / "clt.pt")
    short = CLTConfig(n_features=16, n_couplets=100, steps=10, batch_tokens=64)
    clt, info = get_clt(model, world, path, short)
    assert os.path.exists(path) and not any(p.name.startswith(".") for p in tmp_path.iterdir())
    again, info2 = get_clt(model, world, path, short)
    assert torch.equal(clt.W_enc, again.W_enc) and info2["train_seconds"] == info["train_seconds"]
    with open(path, "wb") as f:
        f.write(b"not a checkpoint")
    assert load_clt(path) is None
    rebuilt, _ = get_clt(model, world, path, short)
    assert torch.equal(rebuilt.W_enc, clt.W_enc)  # deterministic retrain
    other, info3 = get_clt(model, world, path, CLTConfig(**{**short.__dict__, "seed": 3}))
    assert info3["config"]["seed"] == 3 and not torch.equal(other.W_enc, clt.W_enc)


def ending_loss(model, world, couplets, hooks=()):
    """Mean cross-entropy of line 2's last word, computed on the whole couplet without interp.edits."""
    losses = []
    with torch.no_grad():
        for c in couplets:
            ids = torch.tensor(world.prompt_ids(c.line1) + world.encode(c.line2))
            logits = model(ids[None], hooks=hooks)[0][0, -2]  # the position that predicts the ending
            losses.append(torch.nn.functional.cross_entropy(logits[None], ids[-1:]).item())
    return sum(losses) / len(losses)


def test_ending_fidelity_measures_the_ending_with_and_without_the_clt(tiny, trained):
    model, world = tiny
    clt, info = trained
    couplets = world.split("test")[:30]
    line1s, line2s = [c.line1 for c in couplets], [c.line2 for c in couplets]
    fid = ending_fidelity(model, world, clt, line1s, line2s)
    assert set(fid) == {"n", "loss_clean", "loss_clt", "top1_agreement"} and fid["n"] == 30
    assert fid["loss_clean"] == pytest.approx(ending_loss(model, world, couplets), abs=1e-4)
    assert fid["loss_clt"] == pytest.approx(ending_loss(model, world, couplets, replacement_hooks(clt)), abs=1e-4)
    assert fid["loss_clt"] >= 0 and 0 <= fid["top1_agreement"] <= 1
    # the floor a trained dictionary must beat: a random one of the same sparsity
    l0 = max(1, round(evaluate_clt(model, world, clt, n_couplets=40)["l0"]))
    floor = ending_fidelity(model, world, random_dictionary(model, world, 32, l0), line1s, line2s)
    assert floor["loss_clean"] == fid["loss_clean"]
    assert fid["top1_agreement"] > floor["top1_agreement"]
    assert abs(fid["loss_clt"] - fid["loss_clean"]) < abs(floor["loss_clt"] - floor["loss_clean"])


def test_random_dictionary_fires_about_l0_features_per_token(tiny):
    model, world = tiny
    xs, _ = collect(model, world, world.split("train")[:200])
    for l0 in (2, 8):
        clt = random_dictionary(model, world, 32, l0, seed=0)
        acts, _ = clt(xs)
        for a in acts:  # on the activations its thresholds were set on: l0 per token, per layer
            assert l0 / 2 <= (a > 0).float().sum(-1).mean().item() <= 2 * l0
        held_out = evaluate_clt(model, world, clt, n_couplets=40)["l0"]  # and on couplets it never saw
        assert l0 / 2 <= held_out <= 2 * l0
    a, b, c = (random_dictionary(model, world, 32, 4, seed=s) for s in (0, 0, 1))
    assert torch.equal(a.W_enc, b.W_enc) and torch.equal(a.b_enc, b.b_enc) and not torch.equal(a.W_enc, c.W_enc)


def test_replacement_edit_of_a_feature_acts_only_from_its_position_on(tiny, trained):
    """`replacement_hooks(edit=...)` (what a feature clamp uses): an edit that keeps the activations
    changes nothing; clamping one feature at one position changes the logits there and later only."""
    model, world = tiny
    clt, _ = trained
    c = world.split("test")[0]
    idx = torch.tensor([world.couplet_ids(c)])
    p = len(world.prompt_ids(c.line1)) - 1  # the line break
    with torch.no_grad():
        plain = model(idx, hooks=replacement_hooks(clt))[0]
        same = model(idx, hooks=replacement_hooks(clt, edit=lambda l, a: a.clone()))[0]

        def clamp(l, a):
            a = a.clone()
            if l == 0:
                a[:, p, 3] = 50.0
            return a
        clamped = model(idx, hooks=replacement_hooks(clt, edit=clamp))[0]
    assert torch.equal(same, plain)
    assert torch.equal(clamped[:, :p], plain[:, :p])
    assert (clamped[:, p:] - plain[:, p:]).abs().amax(-1).min() > 1e-3
