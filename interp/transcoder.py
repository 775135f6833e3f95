"""A cross-layer transcoder (CLT): a sparse, readable stand-in for every MLP of the couplet GPT.

A feature of layer l reads the MLP input of layer l and writes, through separate decoders, to the
MLP outputs of layers l, l+1, ..., L-1:

    a_l      = ReLU(x_l @ W_enc[l] + b_enc[l])              x_l: (N, d)  -> a_l: (N, F)
    mlp_out' = sum_{l <= l'} a_l @ W_dec[l][l' - l] + b_dec[l']                  (N, d)

What a feature reads: `blocks.{l}.ln2.hook_normalized`, the residual stream after the LayerNorm's
centering and 1/std scaling but before its affine weight and bias. That is exactly what the MLP
sees, up to an affine map the encoder can absorb, so the CLT imitates the MLP on equal terms; every
token arrives at unit RMS (the <bos> residual is ~10x larger than others and would otherwise dominate
the encoder); and once attribution freezes the LayerNorm scale it is a *linear* function of the
residual stream, which is what the attribution graph needs.

Loss = MSE (in units of each layer's output RMS) + lambda * sum tanh(c * a * ||W_dec||) (Anthropic's
penalty; lambda ramps up over training) + a small "pre-activation" loss that pushes the encoder of
a never-firing feature back towards firing (dead-feature handling, also Anthropic's).

`python analyze.py` trains (or loads, from `clt.pt` beside the checkpoint) the CLT of each model's first seed.
"""
from dataclasses import dataclass, asdict
import hashlib
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

from data import PAD
from plumbing.files import save_torch


@dataclass(frozen=True)
class CLTConfig:
    n_features: int = 128        # per layer (1x d_model: more only adds never-firing features here)
    n_couplets: int = 3000       # training couplets whose activations are collected (~63k tokens)
    steps: int = 800
    batch_tokens: int = 512
    lr: float = 2e-3
    sparsity: float = 0.3        # lambda, reached at the end of the ramp
    sparsity_ramp: float = 0.5   # fraction of training over which lambda rises from 0
    tanh_c: float = 4.0
    preact: float = 3e-5         # weight of the dead-feature pre-activation loss
    resample_at: tuple = (0.25, 0.45, 0.65)  # fractions of training where dead features are re-seeded
    seed: int = 0


class CrossLayerTranscoder(nn.Module):
    def __init__(self, n_layer, d_model, n_features):
        super().__init__()
        L, d, Fn = n_layer, d_model, n_features
        self.n_layer, self.d_model, self.n_features = L, d, Fn
        self.W_enc = nn.Parameter(torch.randn(L, d, Fn) / math.sqrt(d))  # pre-activations ~ N(0, 1)
        self.b_enc = nn.Parameter(torch.zeros(L, Fn))
        # W_dec[l]: (F, L - l, d), the decoders of layer l's features into layers l..L-1
        self.W_dec = nn.ParameterList([nn.Parameter(torch.randn(Fn, L - l, d) * 0.1 / math.sqrt(d * (L - l)))
                                       for l in range(L)])
        self.b_dec = nn.Parameter(torch.zeros(L, d))

    def pre_acts(self, x, l):  # x: (..., d) -> (..., F)
        return x @ self.W_enc[l] + self.b_enc[l]

    def encode(self, x, l):
        return F.relu(self.pre_acts(x, l))

    def decoder(self, l, l_out):
        """(F, d): what layer l's features write into the MLP output of layer l_out >= l."""
        return self.W_dec[l][:, l_out - l]

    def decode(self, acts):  # acts: list of L tensors (N, F) -> (N, L, d)
        N = acts[0].shape[0]
        out = self.b_dec.expand(N, -1, -1).clone()
        for l, a in enumerate(acts):
            out[:, l:] += (a @ self.W_dec[l].flatten(1)).view(N, self.n_layer - l, self.d_model)
        return out

    def forward(self, xs):  # xs: (N, L, d) -> acts (list of L (N, F)), recon (N, L, d)
        acts = [self.encode(xs[:, l], l) for l in range(self.n_layer)]
        return acts, self.decode(acts)

    def decoder_norms(self):  # (L, F): norm of each feature's concatenated decoders
        return torch.stack([w.flatten(1).norm(dim=1) for w in self.W_dec])

    def config(self):
        return {"n_layer": self.n_layer, "d_model": self.d_model, "n_features": self.n_features}


# ---- activations -----------------------------------------------------------------------------------
def in_name(l):
    return f"blocks.{l}.ln2.hook_normalized"


def out_name(l):
    return f"blocks.{l}.hook_mlp_out"


@torch.no_grad()
def collect(model, world, couplets, batch=512):
    """MLP inputs and outputs at every non-pad token: xs, ys (N, L, d) float32."""
    L = model.cfg.n_layer
    names = [in_name(l) for l in range(L)] + [out_name(l) for l in range(L)]
    xs, ys = [], []
    for i in range(0, len(couplets), batch):
        idx = world.tensor(couplets[i:i + batch], model.cfg.block_size)  # (B, T)
        _, cache = model.run_with_cache(idx, names=names)
        keep = idx != PAD  # (B, T)
        xs.append(torch.stack([cache[in_name(l)][keep] for l in range(L)], 1))
        ys.append(torch.stack([cache[out_name(l)][keep] for l in range(L)], 1))
    return torch.cat(xs), torch.cat(ys)


# ---- training ---------------------------------------------------------------------------------------
def train_clt(model, world, cfg=CLTConfig(), quiet=True, data=None):
    """Train a CLT on the model's MLPs over training couplets. Returns (clt, info dict).
    `data` = (xs, ys) from `collect` skips the collection (for sweeps)."""
    t0, cpu0 = time.time(), time.process_time()  # wall and CPU time: the CPU is often shared
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    if data is None:
        data = collect(model, world, world.split("train")[:cfg.n_couplets])
    xs, ys = data  # (N, L, d) each
    mean = ys.mean(0)  # (L, d)
    # (L,) per-layer RMS; 1 / rsqrt rather than sqrt, which MKL computes by the CPU's maker (plumbing/numerics.py)
    scale = (ys - mean).pow(2).sum(-1).mean(0).rsqrt().reciprocal() / math.sqrt(ys.shape[-1])
    ys = ys / scale[None, :, None]  # train in units where every layer matters equally
    clt = CrossLayerTranscoder(model.cfg.n_layer, model.cfg.d_model, cfg.n_features)
    with torch.no_grad():
        clt.b_dec.copy_(mean / scale[:, None])
    opt = torch.optim.Adam(clt.parameters(), lr=cfg.lr)
    window = max(1, cfg.steps // 10)  # steps over which firing is counted
    fires = torch.zeros(clt.n_layer, cfg.n_features)  # firings in the current window
    dead = torch.zeros(clt.n_layer, cfg.n_features)   # under 1 in 10^4 tokens last window: dead
    N = xs.shape[0]
    for step in range(cfg.steps):
        frac = step / cfg.steps
        lam = cfg.sparsity * min(1.0, frac / cfg.sparsity_ramp)
        for g in opt.param_groups:  # constant, then linear decay over the last 20%
            g["lr"] = cfg.lr * min(1.0, (1 - frac) / 0.2)
        rows = torch.randint(0, N, (cfg.batch_tokens,), generator=gen)
        x, y = xs[rows], ys[rows]  # (B, L, d)
        pres = [clt.pre_acts(x[:, l], l) for l in range(clt.n_layer)]  # L x (B, F)
        acts = [F.relu(p) for p in pres]
        recon = clt.decode(acts)
        mse = (recon - y).pow(2).sum(-1).mean()  # per token, summed over layers
        norms = clt.decoder_norms()  # (L, F)
        a = torch.stack(acts, 1)  # (B, L, F)
        sparse = torch.tanh(cfg.tanh_c * a * norms).sum((1, 2)).mean()
        with torch.no_grad():
            fires += (a > 0).sum(0)
            if (step + 1) % window == 0:
                dead = (fires < 1e-4 * window * cfg.batch_tokens).float()
                fires.zero_()
        pre = torch.stack(pres, 1)  # (B, L, F)
        preact = (F.relu(-pre) * norms * dead).sum((1, 2)).mean()
        loss = mse + lam * sparse + cfg.preact * preact
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if any(step == int(f * cfg.steps) for f in cfg.resample_at):
            resample(clt, dead.bool(), xs, ys, gen)
        if not quiet and (step % 100 == 0 or step == cfg.steps - 1):
            print(f"clt step {step}: mse {mse.item():.4f} sparse {sparse.item():.1f} "
                  f"L0 {(a > 0).float().sum(-1).mean().item():.1f} dead {dead.mean().item():.3f}")
    with torch.no_grad():  # fold the output scale back in: the CLT now speaks in model units
        for l in range(clt.n_layer):
            clt.W_dec[l].mul_(scale[l:].view(1, -1, 1))
        clt.b_dec.mul_(scale[:, None])
    clt.eval()
    return clt, {"train_seconds": time.time() - t0, "train_cpu_seconds": time.process_time() - cpu0,
                 "train_tokens": N, "config": asdict(cfg)}


@torch.no_grad()
def resample(clt, dead, xs, ys, gen, n=4096):
    """Re-seed dead features (L, F) on tokens the CLT reconstructs worst (Anthropic 2023): the encoder
    points at the token's input, the decoder at what is missing from its outputs."""
    rows = torch.randint(0, xs.shape[0], (n,), generator=gen)
    x, y = xs[rows], ys[rows]  # (n, L, d)
    err = y - clt(x)[1]  # (n, L, d)
    alive_norm = clt.W_enc.norm(dim=1)[~dead].mean() if (~dead).any() else torch.tensor(1.0)
    for l in range(clt.n_layer):
        idx = dead[l].nonzero().flatten()
        if len(idx) == 0:
            continue
        weight = err[:, l:].pow(2).sum((1, 2))  # (n,) what layer l's features could still fix
        pick = torch.multinomial(weight, len(idx), replacement=True, generator=gen)
        xin = x[pick, l]
        clt.W_enc[l][:, idx] = (xin / xin.norm(dim=-1, keepdim=True) * alive_norm * 0.2).T
        clt.b_enc[l, idx] = -0.5 * xin.norm(dim=-1) * alive_norm * 0.2  # fires on inputs within ~60 degrees
        out = err[pick, l:]  # (k, L - l, d)
        clt.W_dec[l][idx] = out / out.flatten(1).norm(dim=-1).clamp(min=1e-6)[:, None, None] * 0.1


# ---- evaluation ---------------------------------------------------------------------------------------
def replacement_hooks(clt, layers=None, edit=None):
    """Hooks that replace the MLPs of `layers` (default all) by the CLT, reading each layer's input
    from the current (already replaced) forward pass. `edit(l, acts)` may change the (B, T, F)
    activations of layer l before they are decoded."""
    layers = range(clt.n_layer) if layers is None else layers
    acts = {}

    def read(l):
        def fn(x):  # (B, T, d)
            a = clt.encode(x, l)
            acts[l] = a if edit is None else edit(l, a)
        return fn

    def write(l):
        def fn(out):  # (B, T, d)
            rec = clt.b_dec[l].expand_as(out).clone()
            for src in range(l + 1):
                rec = rec + acts[src] @ clt.decoder(src, l)
            return rec
        return fn
    hooks = [(in_name(l), read(l)) for l in range(clt.n_layer)]
    return hooks + [(out_name(l), write(l)) for l in layers]


@torch.no_grad()
def next_token_loss(model, idx, hooks=()):
    targets = idx[:, 1:].masked_fill(idx[:, 1:] == PAD, -1)
    return model(idx[:, :-1], targets, hooks=hooks)[1].item()


@torch.no_grad()
def evaluate_clt(model, world, clt, n_couplets=500):
    """L0 per layer, FVU per layer and overall, dead-feature share (never active on held-out
    couplets), and next-token loss recovered when every MLP is replaced by the CLT."""
    couplets = world.split("test")[:n_couplets]
    xs, ys = collect(model, world, couplets)
    acts, recon = clt(xs)
    resid = (recon - ys).pow(2).sum((0, 2))  # (L,)
    total = (ys - ys.mean(0)).pow(2).sum((0, 2))  # (L,)
    l0 = [(a > 0).float().sum(-1).mean().item() for a in acts]
    dead = torch.stack([(a > 0).sum(0) == 0 for a in acts]).float().mean().item()
    idx = world.tensor(couplets, model.cfg.block_size)
    zero = [(out_name(l), lambda out: torch.zeros_like(out)) for l in range(model.cfg.n_layer)]
    ce_clean, ce_zero = next_token_loss(model, idx), next_token_loss(model, idx, zero)
    ce_clt = next_token_loss(model, idx, replacement_hooks(clt))
    return {"fvu": (resid.sum() / total.sum()).item(), "fvu_per_layer": (resid / total).tolist(),
            "l0": sum(l0) / len(l0), "l0_per_layer": l0, "dead_fraction": dead,
            "loss_clean": ce_clean, "loss_zero_mlp": ce_zero, "loss_clt": ce_clt,
            "loss_recovered": (ce_zero - ce_clt) / (ce_zero - ce_clean), "eval_tokens": xs.shape[0]}


@torch.no_grad()
def ending_fidelity(model, world, clt, line1s, line2s):
    """The CLT judged where the plan is used: at the position that predicts line 2's ending (the
    model's own line 2 teacher-forced), the ending's loss with the model's MLPs and with the CLT in
    their place, and how often the CLT's top-1 word is the model's."""
    from interp.edits import ending_logits
    prefixes = [l2[:-1] for l2 in line2s]
    target = torch.tensor([world.stoi[l2[-1]] for l2 in line2s])
    clean = ending_logits(model, world, line1s, prefixes)
    replaced = ending_logits(model, world, line1s, prefixes, hooks=replacement_hooks(clt))
    return {"n": len(line1s), "loss_clean": F.cross_entropy(clean, target).item(),
            "loss_clt": F.cross_entropy(replaced, target).item(),
            "top1_agreement": (clean.argmax(1) == replaced.argmax(1)).float().mean().item()}


def random_dictionary(model, world, n_features, l0, seed=0):
    """An untrained CLT with the trained one's sparsity: a random encoder whose bias is set per layer so
    that on average `l0` features fire per token. The floor a trained dictionary must beat (a fully
    random one fires half its features and makes graphs too big to build)."""
    torch.manual_seed(seed)
    clt = CrossLayerTranscoder(model.cfg.n_layer, model.cfg.d_model, n_features)
    xs, _ = collect(model, world, world.split("train")[:200])
    with torch.no_grad():
        for l in range(clt.n_layer):
            pre = clt.pre_acts(xs[:, l], l)  # (N, F)
            clt.b_enc[l] = -torch.quantile(pre.flatten(), 1 - min(1.0, l0 / n_features))
    return clt.eval()


# ---- save / load ------------------------------------------------------------------------------------
def model_fingerprint(model):
    """A short hash of the model weights: a cached CLT is only valid for the model it imitates."""
    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def save_clt(path, clt, info):
    save_torch(path, {"format": "couplet-clt", "config": clt.config(), "info": info,
                      "state_dict": {k: v.detach().cpu() for k, v in clt.state_dict().items()}})


def load_clt(path):
    """(clt, info), or None when the file is missing or unreadable."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        clt = CrossLayerTranscoder(**payload["config"])
        clt.load_state_dict(payload["state_dict"])
    except Exception:  # missing, truncated, or another format: the caller retrains
        return None
    return clt.eval(), payload["info"]


def get_clt(model, world, path, cfg=CLTConfig(), quiet=True):
    """The CLT cached at `path` if it was trained for these weights and this config, else train,
    evaluate and save one. Returns (clt, info) where info holds the training and eval metrics."""
    fp = model_fingerprint(model)
    cached = load_clt(path) if path else None
    if cached is not None:
        clt, info = cached
        if info.get("model_fingerprint") == fp and info.get("config") == asdict(cfg):
            return clt, info
    clt, info = train_clt(model, world, cfg, quiet=quiet)
    info.update(evaluate_clt(model, world, clt), model_fingerprint=fp)
    if path:
        save_clt(path, clt, info)
    return clt, info


