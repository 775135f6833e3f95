import os

import pytest
import torch

from model import GPT, GPTConfig, hook_names, checkpoint_payload, load_checkpoint, CheckpointError
from plumbing.files import save_torch
from conftest import TINY_MODEL


def tiny_model():
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=50, block_size=12, n_layer=2, n_head=2, d_model=32, d_mlp=64)).eval()


def test_cache_has_every_hook_with_the_right_shape():
    model = tiny_model()
    idx = torch.randint(0, 50, (3, 10))
    logits, cache = model.run_with_cache(idx)
    assert logits.shape == (3, 10, 50)
    assert set(cache) == set(hook_names(model.cfg))
    assert cache["hook_embed"].shape == (3, 10, 32)
    assert cache["hook_pos_embed"].shape == (10, 32)
    assert cache["blocks.1.hook_resid_pre"].shape == (3, 10, 32)
    assert cache["blocks.0.attn.hook_pattern"].shape == (3, 2, 10, 10)
    assert cache["blocks.0.mlp.hook_post"].shape == (3, 10, 64)
    assert cache["ln_final.hook_scale"].shape == (3, 10, 1)
    pattern = cache["blocks.1.attn.hook_pattern"]
    assert torch.allclose(pattern.sum(-1), torch.ones(3, 2, 10))
    assert pattern[0, 0].triu(1).abs().max() == 0  # causal


def test_resid_stream_adds_up():
    model = tiny_model()
    _, c = model.run_with_cache(torch.randint(0, 50, (2, 8)))
    for l in range(2):
        assert torch.allclose(c[f"blocks.{l}.hook_resid_mid"],
                              c[f"blocks.{l}.hook_resid_pre"] + c[f"blocks.{l}.hook_attn_out"], atol=1e-6)
        assert torch.allclose(c[f"blocks.{l}.hook_resid_post"],
                              c[f"blocks.{l}.hook_resid_mid"] + c[f"blocks.{l}.hook_mlp_out"], atol=1e-6)


def test_identity_patch_leaves_logits_unchanged_and_a_real_patch_changes_them():
    model = tiny_model()
    a, b = torch.randint(0, 50, (1, 10)), torch.randint(0, 50, (1, 10))
    clean = model(a)[0]
    name = "blocks.1.hook_resid_pre"
    _, cache_a = model.run_with_cache(a, names=[name])
    _, cache_b = model.run_with_cache(b, names=[name])

    def patch_from(cache):
        def fn(x):
            x = x.clone()
            x[:, 4] = cache[name][:, 4]
            return x
        return fn
    assert torch.equal(model(a, hooks=[(name, patch_from(cache_a))])[0], clean)
    patched = model(a, hooks=[(name, patch_from(cache_b))])[0]
    assert not torch.allclose(patched, clean)
    assert torch.allclose(patched[:, :4], clean[:, :4], atol=1e-6)  # causal: earlier positions untouched


def test_pattern_path_and_fused_path_agree():
    model = tiny_model()
    idx = torch.randint(0, 50, (2, 12))
    fused = model(idx)[0]
    logits, _ = model.run_with_cache(idx, names=["blocks.0.attn.hook_pattern"])
    assert torch.allclose(fused, logits, atol=1e-5)


def test_fused_layernorm_agrees_with_the_hooked_one():
    model = tiny_model()
    idx = torch.randint(0, 50, (2, 12))
    names = [f"blocks.{l}.{ln}.hook_scale" for l in range(model.cfg.n_layer) for ln in ("ln1", "ln2")]
    names.append("ln_final.hook_scale")
    fused = model(idx)[0]
    hooked, _ = model.run_with_cache(idx, names=names)
    assert torch.allclose(fused, hooked, atol=1e-5)


def test_myopic_forward_equals_normal_forward():
    torch.manual_seed(0)
    normal = GPT(GPTConfig(vocab_size=50, block_size=12, n_layer=2, n_head=2, d_model=32, d_mlp=64))
    myopic = GPT(GPTConfig(vocab_size=50, block_size=12, n_layer=2, n_head=2, d_model=32, d_mlp=64, myopic=True))
    myopic.load_state_dict(normal.state_dict())
    idx = torch.randint(0, 50, (2, 12))
    normal.train(), myopic.train()
    assert torch.allclose(normal(idx)[0], myopic(idx)[0], atol=1e-5)


def test_myopic_blocks_gradient_from_later_loss_into_earlier_positions():
    torch.manual_seed(0)
    for myopic, expect_grad in ((False, True), (True, False)):
        model = GPT(GPTConfig(vocab_size=50, block_size=12, n_layer=2, n_head=2, d_model=32, d_mlp=64,
                              myopic=myopic)).train()
        idx = torch.randint(0, 50, (1, 8))
        acts = {}

        def keep(x):
            x.retain_grad()
            acts["x"] = x
        logits = model(idx, hooks=[("blocks.0.hook_resid_mid", keep)])[0]
        logits[0, 7].logsumexp(-1).backward()  # a loss at the last position only
        early = acts["x"].grad[0, :7].abs().max().item()
        assert (early > 0) == expect_grad, (myopic, early)
        assert acts["x"].grad[0, 7].abs().max().item() > 0  # the diagonal stays live


def test_bad_configs_are_refused():
    for bad in (dict(n_layer=0), dict(d_model=30, n_head=4), dict(n_head=0)):
        with pytest.raises(ValueError):
            GPTConfig(**bad).validate()


def test_checkpoint_round_trip_and_bad_checkpoints(tmp_path):
    model = tiny_model()
    path = str(tmp_path / "m.pt")
    save_torch(path, checkpoint_payload(model, {"seed": 0}, ["<pad>"] * 50, {"x": 1.0}))
    loaded, ckpt = load_checkpoint(path)
    idx = torch.randint(0, 50, (2, 6))
    assert torch.equal(loaded(idx)[0], model(idx)[0])
    assert ckpt["metrics"] == {"x": 1.0} and not [f for f in os.listdir(tmp_path) if "tmp" in f]

    def message(p, **kw):
        with pytest.raises(CheckpointError) as e:
            load_checkpoint(p, **kw)
        assert "\n" not in str(e.value) and p in str(e.value)
        return str(e.value)
    assert "no such checkpoint" in message(str(tmp_path / "missing.pt"))
    (tmp_path / "text.pt").write_text("hello")
    assert "not a readable checkpoint" in message(str(tmp_path / "text.pt"))
    data = open(path, "rb").read()
    (tmp_path / "trunc.pt").write_bytes(data[: len(data) // 2])
    assert "not a readable checkpoint" in message(str(tmp_path / "trunc.pt"))
    torch.save({"hello": 1}, tmp_path / "other.pt")
    assert "not a couplet-planning checkpoint" in message(str(tmp_path / "other.pt"))
    ck = torch.load(path, weights_only=True)
    ck["version"] = 999
    torch.save(ck, tmp_path / "future.pt")
    assert "version 999" in message(str(tmp_path / "future.pt"))
    ck["version"] = 2
    ck["model_config"]["d_model"] = 64
    torch.save(ck, tmp_path / "mismatch.pt")
    assert "do not fit" in message(str(tmp_path / "mismatch.pt"))
    assert "vocabulary differs" in message(path, vocab=["x"] * 50)


def test_kv_cache_generation_equals_full_recompute():
    model = tiny_model()
    idx = torch.randint(0, 50, (3, 5))
    ref = idx.clone()
    for _ in range(6):
        ref = torch.cat([ref, model(ref)[0][:, -1].argmax(-1, keepdim=True)], 1)
    assert torch.equal(model.generate(idx, 6), ref)


def test_nl_barrier_hides_line1_from_line2_only():
    from data import NL
    torch.manual_seed(0)
    cfg = GPTConfig(vocab_size=50, block_size=12, n_layer=2, n_head=2, d_model=32, d_mlp=64, nl_barrier=True)
    model = GPT(cfg).eval()
    a = torch.tensor([[1, 5, 6, 7, NL, 9, 10, 11]])
    b = a.clone()
    b[0, 2] = 30  # change a line-1 token
    _, ca = model.run_with_cache(a, names=["blocks.0.hook_resid_mid"])
    _, cb = model.run_with_cache(b, names=["blocks.0.hook_resid_mid"])
    ra, rb = ca["blocks.0.hook_resid_mid"][0], cb["blocks.0.hook_resid_mid"][0]
    assert not torch.allclose(ra[2:5], rb[2:5])        # line 1 and the <nl> itself see the change
    assert torch.allclose(ra[5:], rb[5:], atol=1e-6)   # line 2 does not (it can only read <nl>)
    _, cache = model.run_with_cache(a, names=["blocks.0.attn.hook_pattern"])
    p = cache["blocks.0.attn.hook_pattern"][0, :, 6]  # a line-2 query
    assert p[:, :4].abs().max() == 0 and p[:, 4].min() > 0
    ref = a[:, :6]
    for _ in range(3):
        ref = torch.cat([ref, model(ref)[0][:, -1].argmax(-1, keepdim=True)], 1)
    assert torch.equal(model.generate(a[:, :6], 3), ref)  # the KV cache keeps the barrier


def test_attention_window_hides_old_tokens_and_survives_the_kv_cache():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=50, block_size=12, n_layer=1, n_head=2, d_model=32, d_mlp=64,
                          attn_window=3)).eval()
    idx = torch.randint(0, 50, (1, 10))
    _, cache = model.run_with_cache(idx, names=["blocks.0.attn.hook_pattern"])
    p = cache["blocks.0.attn.hook_pattern"][0, :, 9]  # the last query sees positions 7, 8, 9 only
    assert p[:, :7].abs().max() == 0 and p[:, 7:].min() > 0
    b = idx.clone()
    b[0, 2] = (b[0, 2] + 1) % 50  # one layer: a token 7 back cannot change the last logits
    assert torch.allclose(model(idx)[0][0, 9], model(b)[0][0, 9], atol=1e-6)
    ref = idx[:, :5]
    for _ in range(4):
        ref = torch.cat([ref, model(ref)[0][:, -1].argmax(-1, keepdim=True)], 1)
    assert torch.equal(model.generate(idx[:, :5], 4), ref)


def test_fast_path_loss_equals_the_plain_path():
    """Trailing all-ignored columns are dropped inside forward(); the loss must not change."""
    model = tiny_model()
    idx = torch.randint(0, 50, (3, 12))
    targets = torch.randint(0, 50, (3, 12))
    targets[:, 7:] = -1
    _, fast = model(idx, targets)
    logits, _ = model(idx, hooks=[("hook_embed", lambda x: None)])  # any hook takes the plain path
    plain = torch.nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-1)
    assert torch.allclose(fast, plain, atol=1e-6)


@pytest.mark.parametrize("kw", [dict(pos="rope"), dict(pos="none"),
                                dict(pos="rope", attn_window=3, window_layers="LG")])
def test_positional_schemes_and_interleave_keep_the_kv_cache_exact(kw):
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=50, block_size=12, n_layer=2, n_head=2, d_model=32, d_mlp=64, **kw)).eval()
    idx = torch.randint(0, 50, (2, 5))
    ref = idx.clone()
    for _ in range(5):
        ref = torch.cat([ref, model(ref)[0][:, -1].argmax(-1, keepdim=True)], 1)
    assert torch.equal(model.generate(idx, 5), ref)


def test_interleave_makes_only_L_layers_local():
    cfg = GPTConfig(n_layer=4, attn_window=3, window_layers="LG")
    assert [cfg.is_local(l) for l in range(4)] == [True, False, True, False]
    assert all(GPTConfig(n_layer=2, attn_window=3).is_local(l) for l in range(2))
    with pytest.raises(ValueError):
        GPTConfig(window_layers="LX").validate()
