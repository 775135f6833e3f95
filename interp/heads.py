"""Attention heads as units of a circuit: their names, their output at one position (hook_z) as edits, and what
each one reads (its attention from one position, summed by the role of the token it attends to).

A head's output at a position is its hook_z there (d_head numbers, before the output projection mixes heads),
so copying it between runs moves exactly what that head writes: `Edit(z_hook(layer), pos, z, head=h)`.
Heads are named as in TransformerLens' convention, "L1H2" for layer 1, head 2; a set of them as "L1H2+L0H0".
"""
import torch

from couplet_rules import roles as roles_of
from data import ROLES
from interp.edits import Edit, activations


def all_heads(cfg):
    """Every (layer, head) of the model, in order."""
    return [(l, h) for l in range(cfg.n_layer) for h in range(cfg.n_head)]


def head_name(head):
    return f"L{head[0]}H{head[1]}"


def heads_string(heads):
    """A head set as one key: "L1H2+L0H0" (greedy order); "" for no head."""
    return "+".join(head_name(h) for h in heads)


def parse_heads(text):
    """The inverse of heads_string: [(layer, head)]."""
    return [tuple(int(x) for x in t[1:].split("H")) for t in text.split("+")] if text else []


def z_hook(layer):
    return f"blocks.{layer}.attn.hook_z"


def head_edits(heads, pos, z):
    """Edits setting each head's hook_z at `pos` to z[layer, head] (z: (L, H, D))."""
    return [Edit(z_hook(l), pos, z[l, h], head=h) for l, h in heads]


def attention_and_z(model, world, line1s, prefixes, positions, pattern=True):
    """(z, masses): z (N, L, H, D) every head's hook_z at one position per prompt; masses (L, H, len(ROLES))
    every head's attention from that position summed by the role of the token it attends to, averaged over
    prompts (None without `pattern`)."""
    L = model.cfg.n_layer
    hooks = [z_hook(l) for l in range(L)] + ([f"blocks.{l}.attn.hook_pattern" for l in range(L)] if pattern else [])
    acts = activations(model, world, line1s, prefixes, hooks)
    z = torch.stack([torch.stack([acts[z_hook(l)][i][p] for l in range(L)]) for i, p in enumerate(positions)]) \
        if line1s else torch.zeros(0, L, model.cfg.n_head, model.cfg.d_model // model.cfg.n_head)
    if not pattern or not line1s:
        return z, None
    masses = torch.zeros(L, model.cfg.n_head, len(ROLES))
    for i, (l1, pre, p) in enumerate(zip(line1s, prefixes, positions)):
        names = roles_of(l1, list(pre) + ["?"], world.config)[:p + 1]  # the prompt's roles, up to the query
        onehot = torch.zeros(p + 1, len(ROLES))
        onehot[torch.arange(p + 1), torch.tensor([ROLES.index(r) for r in names])] = 1.0
        for l in range(L):
            masses[l] += acts[f"blocks.{l}.attn.hook_pattern"][i][:, p, :p + 1] @ onehot  # (H, roles)
    return z, masses / len(line1s)


def attention_table(masses, heads):
    """{"roles": the roles any head attends to, "attention": {head name: [mass per role]}}."""
    used = [r for k, r in enumerate(ROLES) if float(masses[..., k].max()) >= 0.005]
    return {"roles": used, "attention": {head_name(h): [round(float(masses[h[0], h[1], ROLES.index(r)]), 4)
                                                        for r in used] for h in heads}}


def job(name, roles, mass, target):
    """A head's job read from its attention: the roles holding half its mass (at most two) -> where it writes."""
    order = sorted(range(len(roles)), key=lambda k: -mass[k])
    reads, total = [], 0.0
    for k in order[:2]:
        reads.append(roles[k])
        total += mass[k]
        if total >= 0.5:
            break
    return f"{name}: {' + '.join(reads)} -> {target}", roles[order[0]] if order else None
