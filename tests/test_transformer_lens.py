"""`to_transformer_lens` exports our GPT in TransformerLens names and shapes.

The first test needs only torch: it re-runs the forward pass from the exported tensors the way
TransformerLens' HookedTransformer computes it. The others load the export into TransformerLens
itself and are skipped where it is not installed (it is not a project dependency)."""
import importlib.metadata

import pytest
import torch
import torch.nn.functional as F

from model import GPT, GPTConfig, load_checkpoint, to_transformer_lens

# activations whose layout is the same in both: compared directly
SAME_LAYOUT = ["hook_embed", "blocks.0.hook_resid_pre", "blocks.0.ln1.hook_scale", "blocks.0.attn.hook_pattern",
               "blocks.1.hook_attn_out", "blocks.1.mlp.hook_pre", "blocks.1.mlp.hook_post",
               "blocks.1.hook_resid_post", "ln_final.hook_normalized"]
# ours are (B, H, T, D), TransformerLens' are (B, T, H, D)
PER_HEAD = ["blocks.0.attn.hook_q", "blocks.1.attn.hook_v", "blocks.1.attn.hook_z"]


def random_model():
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=50, block_size=12, n_layer=2, n_head=2, d_model=32, d_mlp=64)).eval()


def tl_style_forward(cfg, sd, idx):
    """HookedTransformer's forward pass (LN, standard positions, gelu), written out with einsum."""
    def ln(x, name):
        x = x - x.mean(-1, keepdim=True)
        return x / (x.pow(2).mean(-1, keepdim=True) + cfg["eps"]).sqrt() * sd[f"{name}.w"] + sd[f"{name}.b"]
    T = idx.shape[1]
    x = sd["embed.W_E"][idx] + sd["pos_embed.W_pos"][:T]
    mask = torch.tril(torch.ones(T, T, dtype=torch.bool))
    for l in range(cfg["n_layers"]):
        a, h = f"blocks.{l}.attn", ln(x, f"blocks.{l}.ln1")
        q, k, v = [torch.einsum("btm,nmd->btnd", h, sd[f"{a}.W_{n}"]) + sd[f"{a}.b_{n}"] for n in "QKV"]
        scores = torch.einsum("bqnd,bknd->bnqk", q, k) / cfg["d_head"] ** 0.5
        pattern = scores.masked_fill(~mask, float("-inf")).softmax(-1)
        z = torch.einsum("bnqk,bknd->bqnd", pattern, v)
        x = x + torch.einsum("btnd,ndm->btm", z, sd[f"{a}.W_O"]) + sd[f"{a}.b_O"]
        m = f"blocks.{l}.mlp"
        pre = ln(x, f"blocks.{l}.ln2") @ sd[f"{m}.W_in"] + sd[f"{m}.b_in"]
        x = x + F.gelu(pre) @ sd[f"{m}.W_out"] + sd[f"{m}.b_out"]
    return ln(x, "ln_final") @ sd["unembed.W_U"] + sd["unembed.b_U"]


def test_export_has_transformer_lens_shapes_and_reproduces_logits():
    model = random_model()
    cfg, sd = to_transformer_lens(model)
    assert (cfg["n_layers"], cfg["d_model"], cfg["n_heads"], cfg["d_head"], cfg["d_mlp"], cfg["d_vocab"],
            cfg["n_ctx"]) == (2, 32, 2, 16, 64, 50, 12)
    assert cfg["act_fn"] == "gelu" and cfg["normalization_type"] == "LN" and cfg["eps"] == 1e-5
    shapes = {"embed.W_E": (50, 32), "pos_embed.W_pos": (12, 32), "blocks.1.attn.W_Q": (2, 32, 16),
              "blocks.1.attn.b_K": (2, 16), "blocks.1.attn.W_O": (2, 16, 32), "blocks.1.attn.b_O": (32,),
              "blocks.1.ln2.w": (32,), "blocks.1.mlp.W_in": (32, 64), "blocks.1.mlp.W_out": (64, 32),
              "ln_final.b": (32,), "unembed.W_U": (32, 50), "unembed.b_U": (50,)}
    for name, shape in shapes.items():
        assert tuple(sd[name].shape) == shape, name
    assert len(sd) == 2 + 16 * 2 + 4
    idx = torch.randint(0, 50, (3, 12))
    with torch.no_grad():
        assert (tl_style_forward(cfg, sd, idx) - model(idx)[0]).abs().max() < 1e-5


def transformer_lens_4():
    tl = pytest.importorskip("transformer_lens")
    version = importlib.metadata.version("transformer-lens")
    if int(version.split(".")[0]) < 4:
        pytest.skip(f"transformer-lens {version} has no TransformerBridge (see the TL3 test)")
    return tl


def load_tl4(model):
    """The README's TransformerLens 4 recipe."""
    from transformer_lens.model_bridge import TransformerBridge
    from transformer_lens.utilities.tl_checkpoint_conversion import convert_tl_checkpoint
    cfg, sd = to_transformer_lens(model)
    bridge = TransformerBridge.boot_native(cfg)
    result = bridge.load_state_dict(convert_tl_checkpoint(sd, bridge.cfg), strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    return bridge.eval()


def load_tl3(model):
    """The README's TransformerLens 3 recipe."""
    from transformer_lens import HookedTransformer, HookedTransformerConfig
    cfg, sd = to_transformer_lens(model)
    tl = HookedTransformer(HookedTransformerConfig(**cfg))
    tl.load_and_process_state_dict(sd, fold_ln=False, center_writing_weights=False, center_unembed=False,
                                   fold_value_biases=False)
    return tl.eval()


def compare(model, tl_model):
    idx = torch.randint(0, model.cfg.vocab_size, (4, model.cfg.block_size), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours, cache = model.run_with_cache(idx)
        theirs, tl_cache = tl_model.run_with_cache(idx)
    assert tl_cache["hook_pos_embed"].shape[-2:] == cache["hook_pos_embed"].shape
    diffs = {"logits": (theirs - ours).abs().max().item()}
    for name in SAME_LAYOUT:
        diffs[name] = (tl_cache[name] - cache[name]).abs().max().item()
    for name in PER_HEAD:
        diffs[name] = (tl_cache[name] - cache[name].transpose(1, 2)).abs().max().item()
    print("max |TransformerLens - ours|:", diffs)
    assert max(diffs.values()) <= 1e-4, diffs


@pytest.mark.parametrize("trained", [False, True])
def test_transformer_lens_4_gives_our_logits_and_activations(trained, request):
    transformer_lens_4()
    model = load_checkpoint(request.getfixturevalue("tiny_run")[0])[0] if trained else random_model()
    compare(model, load_tl4(model))


def test_transformer_lens_3_gives_our_logits_and_activations(request):
    pytest.importorskip("transformer_lens")
    version = importlib.metadata.version("transformer-lens")
    if int(version.split(".")[0]) >= 4:
        pytest.skip(f"transformer-lens {version}: TL4 loads through TransformerBridge instead")
    model = load_checkpoint(request.getfixturevalue("tiny_run")[0])[0]
    compare(model, load_tl3(model))
