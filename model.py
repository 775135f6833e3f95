"""A small GPT, read top to bottom: pre-LayerNorm blocks, GELU MLP, causal attention.

Knobs that keep it a standard transformer: the positional scheme (`pos`: learned absolute
positions as in GPT-2, rotary as in most modern language models, or none) and interleaved
local/global attention as in Gemma 2 and 3 (`attn_window` with `window_layers`: "L" layers see
only the last few tokens, "G" layers see everything). Variants that are not standard are flagged:
`myopic` (a training regime) and `nl_barrier` (a mask that forbids line 2 to read line 1).

Every interesting activation passes through a *hook point* with a TransformerLens name:

    hook_embed, hook_pos_embed (learned positions only),
    blocks.{l}.hook_resid_pre, blocks.{l}.ln1.hook_scale, blocks.{l}.ln1.hook_normalized,
    blocks.{l}.attn.hook_q/k/v, blocks.{l}.attn.hook_rot_q/k (rotary only),
    blocks.{l}.attn.hook_attn_scores, blocks.{l}.attn.hook_pattern, blocks.{l}.attn.hook_z,
    blocks.{l}.hook_attn_out, blocks.{l}.hook_resid_mid, blocks.{l}.ln2.hook_scale,
    blocks.{l}.ln2.hook_normalized, blocks.{l}.mlp.hook_pre, blocks.{l}.mlp.hook_post,
    blocks.{l}.hook_mlp_out, blocks.{l}.hook_resid_post, ln_final.hook_scale, ln_final.hook_normalized

One mechanism serves caching, patching, steering and ablation: `model(idx, hooks=[(name, fn), ...])`
calls `fn(tensor)` at that point; if `fn` returns a tensor, it replaces the activation.
`run_with_cache` is built on it.
"""
from dataclasses import dataclass, asdict
import math
import os

import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange

from data import NL  # the line break's token id: the nl_barrier architecture needs it
POSITIONS = ("learned", "rope", "none")
CHECKPOINT_FORMAT = "couplet-planning-checkpoint"
CHECKPOINT_VERSION = 2


@dataclass(frozen=True)
class GPTConfig:
    vocab_size: int = 177
    block_size: int = 32
    n_layer: int = 4
    n_head: int = 4
    d_model: int = 128
    d_mlp: int = 512
    pos: str = "learned"      # positional scheme: "learned" (absolute), "rope" (rotary) or "none"
    attn_window: int = 0      # > 0: local layers attend only to themselves and the attn_window - 1 tokens before
    window_layers: str = ""   # which layers are local: "" = all (when attn_window > 0), else a pattern of
    #                           L (local) and G (global) repeated over the layers, e.g. "LG" = Gemma's interleave
    myopic: bool = False      # Wu, Morris & Levine 2024: no gradient from position t into positions < t
    nl_barrier: bool = False  # tokens after the line break may attend only to it and later tokens

    def validate(self):
        """Raise ValueError with a one-line reason when the shape is impossible."""
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "d_model", "d_mlp"):
            if not 1 <= getattr(self, name) <= 1 << 16:
                raise ValueError(f"--{name.replace('_', '-')} must be in [1, 65536], got {getattr(self, name)}")
        if self.d_model % self.n_head:
            raise ValueError(f"--d-model ({self.d_model}) must be divisible by --n-head ({self.n_head})")
        if self.pos not in POSITIONS:
            raise ValueError(f"--pos must be one of {', '.join(POSITIONS)}, got {self.pos!r}")
        if self.pos == "rope" and (self.d_model // self.n_head) % 2:
            raise ValueError("--pos rope needs an even head size (--d-model / --n-head)")
        if self.attn_window < 0:
            raise ValueError(f"--attn-window must be 0 (off) or positive, got {self.attn_window}")
        if set(self.window_layers) - set("LG"):
            raise ValueError(f"--window-layers is a pattern of L and G, got {self.window_layers!r}")
        params = self.n_layer * (4 * self.d_model ** 2 + 2 * self.d_model * self.d_mlp) + \
            2 * self.vocab_size * self.d_model
        if params > 2e8:
            raise ValueError(f"a model of {params / 1e6:.0f} M parameters is more than this project trains "
                             f"(at most 200 M): lower --d-model, --d-mlp or --n-layer")
        return self

    def is_local(self, layer):
        """Does this layer attend only to a window of recent tokens?"""
        if self.attn_window <= 0:
            return False
        return not self.window_layers or self.window_layers[layer % len(self.window_layers)] == "L"


class Hooks:
    """The hooks of one forward pass: name -> list of functions."""

    def __init__(self, hooks=()):
        self.table = {}
        for name, fn in hooks:
            self.table.setdefault(name, []).append(fn)

    def __call__(self, name, x):
        for fn in self.table.get(name, ()):
            out = fn(x)
            if out is not None:
                x = out
        return x

    def wants(self, *names):
        return any(n in self.table for n in names)

    def __bool__(self):
        return bool(self.table)


class LayerNorm(nn.Module):
    """LayerNorm with its scale (1/std) exposed as a hook, so attribution can freeze it."""

    def __init__(self, d, name):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.bias = nn.Parameter(torch.zeros(d))
        self.name = name

    def forward(self, x, hooks):
        if not hooks.wants(f"{self.name}.hook_scale", f"{self.name}.hook_normalized"):
            # the normalization is one kernel; the gain and bias are applied apart because the fused
            # kernel's gradient for them sums per thread, so its bits would depend on the thread count
            return F.layer_norm(x, x.shape[-1:], None, None, 1e-5) * self.weight + self.bias
        x = x - x.mean(-1, keepdim=True)
        # 1 / rsqrt, not sqrt: torch's sqrt goes through MKL's vector math, whose code path follows the CPU's
        # maker (plumbing/numerics.py); rsqrt is torch's own kernel
        scale = hooks(f"{self.name}.hook_scale", (x.pow(2).mean(-1, keepdim=True) + 1e-5).rsqrt().reciprocal())
        return hooks(f"{self.name}.hook_normalized", x / scale) * self.weight + self.bias


def rotary(x, start):
    """Rotate (B, H, T, D) queries or keys by their absolute positions start .. start+T-1: each pair
    (i, i + D/2) of dimensions turns by pos / 10000^(2i/D) (GPT-NeoX's layout, as TransformerLens)."""
    D, T = x.shape[-1], x.shape[-2]
    inv = 10000 ** (-torch.arange(0, D, 2, device=x.device, dtype=torch.float32) / D)   # (D/2,)
    angle = torch.arange(start, start + T, device=x.device, dtype=torch.float32)[:, None] * inv  # (T, D/2)
    cos, sin = torch.cat([angle.cos()] * 2, -1).to(x.dtype), torch.cat([angle.sin()] * 2, -1).to(x.dtype)
    x1, x2 = x.chunk(2, -1)
    return x * cos + torch.cat([-x2, x1], -1) * sin


class Attention(nn.Module):
    def __init__(self, cfg, layer):
        super().__init__()
        self.n_head, self.d_head = cfg.n_head, cfg.d_model // cfg.n_head
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model)
        self.myopic, self.rope, self.local = cfg.myopic, cfg.pos == "rope", cfg.is_local(layer)
        self.name = f"blocks.{layer}.attn"
        causal = torch.tril(torch.ones(cfg.block_size, cfg.block_size, dtype=torch.bool))
        if self.local:  # a sliding window: keys more than attn_window - 1 back are out of reach
            causal &= torch.triu(torch.ones_like(causal), diagonal=1 - cfg.attn_window)
        self.register_buffer("causal", causal, persistent=False)

    def heads(self, x):  # (B, T, C) -> q, k, v, each (B, H, T, D)
        return [rearrange(t, "b t (h d) -> b h t d", h=self.n_head) for t in self.qkv(x).chunk(3, -1)]

    def forward(self, x, hooks, kv=None, barrier=None):  # x: (B, T, C), already layer-normed
        B, T, C = x.shape
        n, start = self.name, kv.length if kv is not None else 0
        q, k, v = self.heads(x)
        q, k, v = hooks(f"{n}.hook_q", q), hooks(f"{n}.hook_k", k), hooks(f"{n}.hook_v", v)
        if self.rope:
            q, k = hooks(f"{n}.hook_rot_q", rotary(q, start)), hooks(f"{n}.hook_rot_k", rotary(k, start))
        if kv is not None:  # generation: prepend the cached keys/values of earlier tokens
            k, v = kv.extend(n, k, v)  # (B, H, S, D), S = cached + T
        S = k.shape[2]
        mask = self.causal[S - T:S, :S]  # (T, S): query i sits at absolute position S - T + i
        if barrier is not None:
            mask = mask & barrier  # (B, 1, T, S)
        if self.myopic and self.training:
            z = self.myopic_attention(x, q, k, v, mask)
        elif hooks.wants(f"{n}.hook_attn_scores", f"{n}.hook_pattern"):
            scores = q @ k.transpose(-2, -1) / math.sqrt(self.d_head)  # (B, H, T, S)
            scores = hooks(f"{n}.hook_attn_scores", scores.masked_fill(~mask, float("-inf")))
            pattern = hooks(f"{n}.hook_pattern", scores.softmax(-1))
            z = pattern @ v  # (B, H, T, D)
        elif S == T and barrier is None and not self.local:  # the same numbers, one fused kernel
            z = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            z = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        z = hooks(f"{n}.hook_z", z)
        return self.proj(rearrange(z, "b h t d -> b t (h d)"))

    def myopic_attention(self, x, q, k, v, mask):
        """Forward values identical to causal attention, but position t's loss cannot shape the
        keys and values of earlier positions: those come from a detached copy of the hidden state.
        Only the diagonal (a position attending to itself) keeps its live key and value."""
        _, k_past, v_past = self.heads(x.detach())
        if self.rope:
            k_past = rotary(k_past, 0)
        T = x.shape[1]
        eye = torch.eye(T, dtype=torch.bool, device=x.device)
        scores = q @ k_past.transpose(-2, -1)  # (B, H, T, T) past keys carry no gradient
        diag = (q * k).sum(-1)  # (B, H, T) live self-key
        scores = torch.where(eye, diag.unsqueeze(-1), scores) / math.sqrt(self.d_head)
        pattern = scores.masked_fill(~mask, float("-inf")).softmax(-1)
        off = pattern.masked_fill(eye, 0.0)
        return off @ v_past + pattern.diagonal(dim1=-2, dim2=-1).unsqueeze(-1) * v


class MLP(nn.Module):
    def __init__(self, cfg, name):
        super().__init__()
        self.fc = nn.Linear(cfg.d_model, cfg.d_mlp)
        self.proj = nn.Linear(cfg.d_mlp, cfg.d_model)
        self.name = name

    def forward(self, x, hooks):
        pre = hooks(f"{self.name}.hook_pre", self.fc(x))          # (B, T, d_mlp)
        post = hooks(f"{self.name}.hook_post", F.gelu(pre))
        return self.proj(post)                                   # (B, T, C)


class Block(nn.Module):
    def __init__(self, cfg, layer):
        super().__init__()
        self.name = n = f"blocks.{layer}"
        self.ln1, self.attn = LayerNorm(cfg.d_model, f"{n}.ln1"), Attention(cfg, layer)
        self.ln2, self.mlp = LayerNorm(cfg.d_model, f"{n}.ln2"), MLP(cfg, f"{n}.mlp")

    def forward(self, x, hooks, kv=None, barrier=None):
        n = self.name
        x = hooks(f"{n}.hook_resid_pre", x)
        attn = self.attn(self.ln1(x, hooks), hooks, kv, barrier)
        x = hooks(f"{n}.hook_resid_mid", x + hooks(f"{n}.hook_attn_out", attn))
        x = hooks(f"{n}.hook_resid_post", x + hooks(f"{n}.hook_mlp_out", self.mlp(self.ln2(x, hooks), hooks)))
        return x


class GPT(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg.validate()
        self.wte = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.wpe = nn.Embedding(cfg.block_size, cfg.d_model) if cfg.pos == "learned" else None
        self.blocks = nn.ModuleList([Block(cfg, l) for l in range(cfg.n_layer)])
        self.ln_f = LayerNorm(cfg.d_model, "ln_final")
        self.unembed = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        self.apply(self._init)
        for name, p in self.named_parameters():  # GPT-2: scale residual writes by depth
            if name.endswith("proj.weight"):
                nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * cfg.n_layer))

    @staticmethod
    def _init(m):
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, 0.0, 0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    def forward(self, idx, targets=None, hooks=(), kv=None):
        """idx: (B, T) token ids -> (logits (B, T, vocab), loss). With `targets` (B, T) the loss is the
        mean cross-entropy over targets that are not -1, else None. hooks: [(name, fn), ...].
        kv: a KVCache holding earlier tokens (generation); idx then holds only the new tokens.

        The fast path: when nothing hooks in, columns after the last counted target are dropped
        before anything runs. They are padding, and under the causal mask no earlier position
        reads them, so every counted logit and the loss are the same (tests/test_model.py)."""
        hooks = hooks if isinstance(hooks, Hooks) else Hooks(hooks)
        if targets is not None and not hooks and kv is None:
            keep = int((targets != -1).any(0).nonzero().max()) + 1 if (targets != -1).any() else 1
            idx, targets = idx[:, :keep], targets[:, :keep]
        B, T = idx.shape
        start = kv.length if kv is not None else 0
        if start + T > self.cfg.block_size:
            raise ValueError(f"sequence of {start + T} tokens exceeds block_size {self.cfg.block_size}")
        x = hooks("hook_embed", self.wte(idx))  # (B, T, C)
        if self.wpe is not None:
            x = x + hooks("hook_pos_embed", self.wpe(torch.arange(start, start + T, device=idx.device)))
        barrier = self.barrier_mask(idx, start, kv) if self.cfg.nl_barrier else None
        for block in self.blocks:
            x = block(x, hooks, kv, barrier)
        if kv is not None:
            kv.length += T
        logits = self.unembed(self.ln_f(x, hooks))  # (B, T, vocab)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-1)
        return logits, loss

    @staticmethod
    def barrier_mask(idx, start, kv):
        """(B, 1, T, S) True where a query may attend a key under nl_barrier: keys at or after the
        last <nl> strictly before the query (so <nl> itself still reads line 1, line 2 does not)."""
        B, T = idx.shape
        pos = torch.arange(start, start + T, device=idx.device)
        before = kv.last_nl if kv is not None and kv.last_nl is not None else \
            torch.full((B,), -1, device=idx.device)
        upto = torch.where(idx == NL, pos, -1).cummax(1).values.maximum(before[:, None])  # (B, T)
        last_before = torch.cat([before[:, None], upto[:, :-1]], 1)  # (B, T)
        if kv is not None:
            kv.last_nl = upto[:, -1]
        keys = torch.arange(start + T, device=idx.device)
        return (keys[None, None, :] >= last_before[:, :, None]).unsqueeze(1)

    def run_with_cache(self, idx, names=None, hooks=()):
        """Logits and a dict of activations (all hook points, or only `names`), detached."""
        cache = {}

        def saver(name):
            return lambda x: cache.__setitem__(name, x.detach())
        names = hook_names(self.cfg) if names is None else names
        logits, _ = self(idx, hooks=list(hooks) + [(n, saver(n)) for n in names])
        return logits, cache

    @torch.no_grad()
    def generate(self, idx, max_new_tokens, stop_token=None, hooks=(), forced=None):
        """Greedy continuation of (B, T) prompts of equal length; rows that emitted `stop_token` keep
        emitting it. forced: (B, k) tokens written instead of the model's first k choices (a
        teacher-forced start). Returns (B, T + new).

        The prompt runs once with `hooks`; each new token then runs alone against the cached keys
        and values. An edit at a prompt position therefore lasts for the whole generation (the
        edited keys/values are cached), exactly as if it were re-applied each step."""
        done = torch.zeros(idx.shape[0], dtype=torch.bool, device=idx.device)
        kv = KVCache()
        logits = self(idx, hooks=hooks, kv=kv)[0][:, -1, :]  # (B, vocab)
        for step in range(max_new_tokens):
            nxt = forced[:, step] if forced is not None and step < forced.shape[1] else logits.argmax(-1)
            if stop_token is not None:
                nxt = torch.where(done, torch.full_like(nxt, stop_token), nxt)
                done |= nxt == stop_token
            idx = torch.cat([idx, nxt[:, None]], dim=1)
            if idx.shape[1] >= self.cfg.block_size or (stop_token is not None and done.all()):
                break
            logits = self(nxt[:, None], kv=kv)[0][:, -1, :]
        return idx


class KVCache:
    """Keys and values of the tokens seen so far, per attention layer (used only by generate)."""

    def __init__(self):
        self.length, self.k, self.v, self.last_nl = 0, {}, {}, None

    def extend(self, layer, k, v):  # k, v: (B, H, T_new, D) -> everything so far
        if layer in self.k:
            k, v = torch.cat([self.k[layer], k], dim=2), torch.cat([self.v[layer], v], dim=2)
        self.k[layer], self.v[layer] = k, v
        return k, v


def hook_names(cfg):
    """Every hook point name, in forward order."""
    names = ["hook_embed"] + (["hook_pos_embed"] if cfg.pos == "learned" else [])
    for l in range(cfg.n_layer):
        b = f"blocks.{l}"
        rot = [f"{b}.attn.hook_rot_q", f"{b}.attn.hook_rot_k"] if cfg.pos == "rope" else []
        names += [f"{b}.hook_resid_pre", f"{b}.ln1.hook_scale", f"{b}.ln1.hook_normalized",
                  f"{b}.attn.hook_q", f"{b}.attn.hook_k", f"{b}.attn.hook_v", *rot,
                  f"{b}.attn.hook_attn_scores", f"{b}.attn.hook_pattern", f"{b}.attn.hook_z",
                  f"{b}.hook_attn_out", f"{b}.hook_resid_mid", f"{b}.ln2.hook_scale",
                  f"{b}.ln2.hook_normalized", f"{b}.mlp.hook_pre", f"{b}.mlp.hook_post",
                  f"{b}.hook_mlp_out", f"{b}.hook_resid_post"]
    return names + ["ln_final.hook_scale", "ln_final.hook_normalized"]


# ---- TransformerLens export -------------------------------------------------------------------
def to_transformer_lens(model):
    """(config dict, state dict) in TransformerLens' HookedTransformer names and shapes, so a trained
    model opens in TransformerLens without this project importing it (README: "TransformerLens").
    The same numbers: TL's "gelu" is exact-erf F.gelu, its "LN" puts eps=1e-5 inside the sqrt
    like ours, attention scores are divided by sqrt(d_head) in both, its rotary is GPT-NeoX's
    layout with base 10000 and its local layers keep query - window < key <= query, as ours."""
    c = model.cfg
    if c.nl_barrier:
        raise ValueError("an nl_barrier model masks attention by token, which TransformerLens cannot express")
    H, D, C = c.n_head, c.d_model // c.n_head, c.d_model
    config = dict(n_layers=c.n_layer, d_model=C, d_head=D, n_heads=H, d_mlp=c.d_mlp, d_vocab=c.vocab_size,
                  d_vocab_out=c.vocab_size, n_ctx=c.block_size, act_fn="gelu", normalization_type="LN",
                  positional_embedding_type="rotary" if c.pos == "rope" else "standard", eps=1e-5,
                  attn_only=False, default_prepend_bos=False, tokenizer_name=None)
    if c.pos == "rope":
        config.update(rotary_dim=D, rotary_base=10000, rotary_adjacent_pairs=False)
    if c.attn_window:
        config.update(attn_types=["local" if c.is_local(l) else "global" for l in range(c.n_layer)],
                      window_size=c.attn_window)
    sd = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    out = {"embed.W_E": sd["wte.weight"],  # no positions: a zero table keeps TL's "standard" path inert
           "pos_embed.W_pos": sd["wpe.weight"] if c.pos == "learned" else torch.zeros(c.block_size, C)}
    for l in range(c.n_layer):
        b = f"blocks.{l}"
        # nn.Linear stores (out, in); TL stores per-head (in -> out) matrices
        w_qkv, b_qkv = sd[f"{b}.attn.qkv.weight"].chunk(3), sd[f"{b}.attn.qkv.bias"].chunk(3)
        for name, w, bias in zip("QKV", w_qkv, b_qkv):
            out[f"{b}.attn.W_{name}"] = rearrange(w, "(h d) c -> h c d", h=H).contiguous()
            out[f"{b}.attn.b_{name}"] = rearrange(bias, "(h d) -> h d", h=H).contiguous()
        out[f"{b}.attn.W_O"] = rearrange(sd[f"{b}.attn.proj.weight"], "c (h d) -> h d c", h=H).contiguous()
        out[f"{b}.attn.b_O"] = sd[f"{b}.attn.proj.bias"]
        for ln in ("ln1", "ln2"):
            out[f"{b}.{ln}.w"], out[f"{b}.{ln}.b"] = sd[f"{b}.{ln}.weight"], sd[f"{b}.{ln}.bias"]
        out[f"{b}.mlp.W_in"] = sd[f"{b}.mlp.fc.weight"].T.contiguous()  # (C, d_mlp)
        out[f"{b}.mlp.b_in"] = sd[f"{b}.mlp.fc.bias"]
        out[f"{b}.mlp.W_out"] = sd[f"{b}.mlp.proj.weight"].T.contiguous()  # (d_mlp, C)
        out[f"{b}.mlp.b_out"] = sd[f"{b}.mlp.proj.bias"]
    out["ln_final.w"], out["ln_final.b"] = sd["ln_f.weight"], sd["ln_f.bias"]
    out["unembed.W_U"] = sd["unembed.weight"].T.contiguous()  # (C, vocab)
    out["unembed.b_U"] = torch.zeros(c.vocab_size)  # we have no unembed bias; TL wants one
    return config, out


# ---- checkpoints ------------------------------------------------------------------------------
class CheckpointError(Exception):
    """A checkpoint that cannot be used; the message is one line naming the file and the fix."""


def checkpoint_payload(model, world_config, vocab, metrics=None, train_state=None, numerics=None):
    """What a checkpoint file holds (written by plumbing.files.save_torch, read by load_checkpoint).
    numerics: the CPU code paths it was computed under (plumbing/numerics.state())."""
    return {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION,
            "model_config": asdict(model.cfg), "world_config": dict(world_config), "vocab": list(vocab),
            "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "metrics": metrics or {}, "train_state": train_state or {}, "numerics": numerics or {}}


def load_checkpoint(path, vocab=None):
    """(model, checkpoint dict). Any problem -> CheckpointError with a one-line message."""
    retrain = "run `python train.py` to create it"
    if os.path.isdir(path):
        raise CheckpointError(f"{path} is a folder; point --checkpoint at a model.pt file inside it")
    if not os.path.exists(path):
        raise CheckpointError(f"{path}: no such checkpoint; {retrain}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated, corrupt or not a torch file at all
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(e).__name__}); "
                              f"if train.py wrote it, delete it and {retrain}") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: not a couplet-planning checkpoint; point --checkpoint at one train.py wrote")
    if ckpt.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(f"{path}: checkpoint version {ckpt.get('version')} but this code reads "
                              f"version {CHECKPOINT_VERSION}; retrain with `python train.py`")
    if vocab is not None and list(vocab) != ckpt["vocab"]:
        raise CheckpointError(f"{path}: checkpoint vocabulary differs from this world's; retrain with "
                              f"`python train.py`")
    try:
        model = GPT(GPTConfig(**ckpt["model_config"]))
        model.load_state_dict(ckpt["state_dict"])
    except (TypeError, ValueError, RuntimeError, KeyError) as e:
        raise CheckpointError(f"{path}: weights do not fit the model config ({type(e).__name__}); "
                              f"retrain with `python train.py`") from None
    model.eval()
    return model, ckpt
