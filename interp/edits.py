"""An edit is data; this module is the one place edits become hooks and the model writes line 2.

    Edit(hook="blocks.1.hook_resid_pre", pos=12, value=v)             # set the residual at token 12
    Edit(hook="blocks.1.hook_resid_pre", pos=12, value=d, op="add")   # add a direction there
    Edit(hook="blocks.0.attn.hook_k", pos=5, value=k)                 # per-head hooks: value (H, D)
    Edit(hook="blocks.0.attn.hook_z", pos=5, value=z, head=2)         # one head only: value (D,)

Every experiment — patching, steering, injection, suppression, ablation, feature clamps — is a list
of Edits per prompt, handed to one of the batched runs:

  write_line2(model, world, line1s, edits)          greedy line 2 after each prompt (free generation;
                                                    `forced` words can start line 2 teacher-forced)
  ending_logits(model, world, line1s, prefixes, edits)
                                                    logits at the position that predicts the ending,
                                                    with line 2's words before it teacher-forced
  activations(model, world, line1s, prefixes, hooks) every position's activation at those hooks
  ending_logits_per_set(model, world, line1s, prefixes, edit_sets)
                                                    ending_logits under many sets of edits at the last
                                                    position only: the tokens before it run once per prompt

Prompts are batched by length, so a batch needs no padding inside the prompt; an edit names its
position per prompt, so prompts of one batch may differ in where a role sits.
"""
from dataclasses import dataclass

import torch

from data import EOS, PAD
from model import KVCache


@dataclass
class Edit:
    hook: str
    pos: int
    value: torch.Tensor
    op: str = "set"   # "set": value replaces the activation; "add": value is added to it
    head: int = None  # per-head hooks only: edit this head alone (value (D,)); None = every head (value (H, D))


HEAD_HOOKS = ("attn.hook_q", "attn.hook_k", "attn.hook_v", "attn.hook_z", "attn.hook_rot_q", "attn.hook_rot_k")


def edit_hooks(edits_per_row):
    """[(name, fn)] that apply edits_per_row[r] (a list of Edits, or None) to row r of a batch."""
    table = {}
    for r, edits in enumerate(edits_per_row):
        for e in edits or ():
            if e.op not in ("set", "add"):
                raise ValueError(f"unknown edit op {e.op!r}")
            if e.head is not None and not e.hook.endswith(HEAD_HOOKS):
                raise ValueError(f"an edit of one head needs a per-head hook ({', '.join(HEAD_HOOKS)}), got {e.hook}")
            table.setdefault((e.hook, e.op, e.head is not None), []).append((r, e.pos, e.value, e.head))
    hooks = []
    for (name, op, one_head), items in table.items():
        rows = torch.tensor([r for r, _, _, _ in items])
        pos = torch.tensor([p for _, p, _, _ in items])
        vals = torch.stack([v for _, _, v, _ in items])
        heads = name.endswith(HEAD_HOOKS)  # (B, H, T, D) rather than (B, T, C)
        which = torch.tensor([h for _, _, _, h in items]) if one_head else slice(None)

        def fn(x, rows=rows, pos=pos, vals=vals, op=op, heads=heads, which=which):
            if int(pos.max()) >= x.shape[2 if heads else 1]:
                raise ValueError("an edit names a position past the end of the sequence")
            x = x.clone()
            idx = (rows, which, pos) if heads else (rows, pos)
            x[idx] = vals.to(x.dtype) if op == "set" else x[idx] + vals.to(x.dtype)
            return x
        hooks.append((name, fn))
    return hooks


def _batches(lengths, size):
    """Indices grouped by equal length, in chunks of at most `size`, in a fixed order."""
    by_len = {}
    for i, n in enumerate(lengths):
        by_len.setdefault(n, []).append(i)
    for _, idxs in sorted(by_len.items()):
        for s in range(0, len(idxs), size):
            yield idxs[s:s + size]


@torch.no_grad()
def write_line2(model, world, line1s, edits=None, forced=None, batch=512):
    """The line 2 (a list of words, without <eos>) the model writes greedily after each line 1.
    edits[i]: Edits at prompt positions of prompt i. forced[i]: words that start line 2 instead of
    the model's own choice (teacher forcing), after which the model writes the rest."""
    was = model.training
    model.eval()
    out = [None] * len(line1s)
    lengths = [(len(l), len(forced[i]) if forced else 0) for i, l in enumerate(line1s)]
    for idxs in _batches(lengths, batch):
        prompts = torch.tensor([world.prompt_ids(line1s[i]) for i in idxs])
        hooks = edit_hooks([edits[i] for i in idxs]) if edits else ()
        force = torch.tensor([world.encode(forced[i]) for i in idxs]) if forced and forced[idxs[0]] else None
        full = model.generate(prompts, model.cfg.block_size, stop_token=EOS, hooks=hooks, forced=force)
        for row, i in zip(full[:, prompts.shape[1]:].tolist(), idxs):
            out[i] = world.decode(row[:row.index(EOS)] if EOS in row else row)
    model.train(was)
    return out


def _sequences(world, line1s, prefixes):
    """Token ids of `<bos> line1 <nl> prefix` for each prompt."""
    return [world.prompt_ids(l) + world.encode(p) for l, p in zip(line1s, prefixes)]


@torch.no_grad()
def ending_logits(model, world, line1s, prefixes, edits=None, hooks=(), batch=512):
    """(N, vocab) logits at the last token of `<bos> line1 <nl> prefix`: with prefix = line 2 minus
    its ending, the model's prediction of the ending with line 2's other words teacher-forced.
    `hooks` apply to every prompt (a replacement model, say), after the edits."""
    seqs = _sequences(world, line1s, prefixes)
    out = torch.zeros(len(seqs), model.cfg.vocab_size)
    for idxs in _batches([len(s) for s in seqs], batch):
        ids = torch.tensor([seqs[i] for i in idxs])
        row_hooks = edit_hooks([edits[i] for i in idxs]) if edits else []
        out[idxs] = model(ids, hooks=[*row_hooks, *hooks])[0][:, -1].float()
    return out


@torch.no_grad()
def ending_logits_per_set(model, world, line1s, prefixes, edit_sets, batch=512):
    """(S, N, vocab): ending_logits of every prompt under each of S edit sets (edit_sets[s][i]: Edits of prompt i,
    all at its last position). The tokens before the last are the same under every set, so they run once per
    prompt and their keys and values are reused (model.KVCache); only the last token runs S times."""
    seqs = _sequences(world, line1s, prefixes)
    out = torch.zeros(len(edit_sets), len(seqs), model.cfg.vocab_size)
    for idxs in _batches([len(s) for s in seqs], batch):
        ids, T = torch.tensor([seqs[i] for i in idxs]), len(seqs[idxs[0]])
        for edits in edit_sets:
            for e in (e for i in idxs for e in edits[i] or ()):
                if e.pos != T - 1:
                    raise ValueError("ending_logits_per_set edits the last position only")
        past = KVCache()
        model(ids[:, :-1], kv=past)
        step = max(1, batch // len(idxs))  # edit sets per run
        for s0 in range(0, len(edit_sets), step):
            sets = edit_sets[s0:s0 + step]
            kv = KVCache()
            kv.length = past.length
            kv.k = {n: t.repeat(len(sets), 1, 1, 1) for n, t in past.k.items()}
            kv.v = {n: t.repeat(len(sets), 1, 1, 1) for n, t in past.v.items()}
            kv.last_nl = None if past.last_nl is None else past.last_nl.repeat(len(sets))
            rows = [[Edit(e.hook, 0, e.value, e.op, e.head) for e in edits[i] or ()] for edits in sets for i in idxs]
            logits = model(ids[:, -1:].repeat(len(sets), 1), hooks=edit_hooks(rows), kv=kv)[0][:, -1].float()
            out[s0:s0 + len(sets), idxs] = logits.view(len(sets), len(idxs), -1)
    return out


@torch.no_grad()
def activations(model, world, line1s, prefixes, hooks, batch=512):
    """{hook: list of (T_i, ...) tensors}: every position's activation of each prompt + prefix."""
    seqs = _sequences(world, line1s, prefixes)
    out = {h: [None] * len(seqs) for h in hooks}
    for idxs in _batches([len(s) for s in seqs], batch):
        _, cache = model.run_with_cache(torch.tensor([seqs[i] for i in idxs]), names=hooks)
        for h in hooks:
            heads = h.endswith(HEAD_HOOKS)
            for r, i in enumerate(idxs):
                out[h][i] = cache[h][r].transpose(0, 1) if heads else cache[h][r]  # (T, ...) first
    return out


def changes_nothing(edit, clean):
    """An edit that leaves the activation as it was: a "set" to the value it already has, or adding zero."""
    if edit.op == "add":
        return not bool(edit.value.any())
    return torch.equal(edit.value.to(clean.dtype), clean)


@torch.no_grad()
def noop_fraction(model, world, line1s, edits, prefixes=None):
    """The share of prompts (with edits) whose every edit changes nothing, compared with the clean run's
    activations: a patch from a donor whose residual there is the same (a position before the word that
    differs, the same token's embedding), or a zero vector. A control made of such edits cannot fail,
    so every control reports this beside its rate. None when no prompt has an edit."""
    rows = [i for i, e in enumerate(edits) if e]
    if not rows:
        return None
    hooks = sorted({e.hook for i in rows for e in edits[i] if e.op == "set"})
    prefixes = prefixes or [[] for _ in line1s]
    clean = activations(model, world, [line1s[i] for i in rows], [prefixes[i] for i in rows], hooks) if hooks else {}
    at = lambda e, r: clean[e.hook][r][e.pos] if e.head is None else clean[e.hook][r][e.pos][e.head]
    noop = [all(changes_nothing(e, at(e, r) if e.op == "set" else None) for e in edits[i]) for r, i in enumerate(rows)]
    return sum(noop) / len(noop)


def resid_hooks(cfg):
    """'Layer l' of a patching map = the residual stream entering block l; the last one is the
    final residual (after every block)."""
    return [f"blocks.{l}.hook_resid_pre" for l in range(cfg.n_layer)] + [f"blocks.{cfg.n_layer - 1}.hook_resid_post"]


def ending(line2):
    return line2[-1] if line2 else None


def pad_batch(seqs):
    """(B, T) right-padded with <pad>."""
    out = torch.full((len(seqs), max(len(s) for s in seqs)), PAD, dtype=torch.long)
    for i, s in enumerate(seqs):
        out[i, :len(s)] = torch.tensor(s)
    return out
