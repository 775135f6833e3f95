import os

import pytest
import torch

from data import world_from_dict
from model import load_checkpoint
from transcoder import CLTConfig, CrossLayerTranscoder, evaluate_clt, get_clt, load_clt, train_clt

TINY_CLT = CLTConfig(n_features=32, n_couplets=300, steps=120, batch_tokens=256, sparsity=0.05)


@pytest.fixture(scope="module")
def tiny(tiny_run):
    model, ckpt = load_checkpoint(tiny_run[0])
    return model, world_from_dict(ckpt["world_config"])


def test_training_reduces_reconstruction_error(tiny):
    model, world = tiny
    torch.manual_seed(0)
    untrained = CrossLayerTranscoder(model.cfg.n_layer, model.cfg.d_model, 32).eval()
    before = evaluate_clt(model, world, untrained, n_couplets=40)
    clt, info = train_clt(model, world, TINY_CLT)
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
