"""Automatic feature labels: what makes a CLT feature fire, what it says, and a short name.

For every feature:
  - top contexts: the held-out couplet tokens where it is most active (the token in [brackets]);
  - top outputs: its decoders summed over every layer it writes to, times the final LayerNorm's
    weight, times the unembedding, de-meaned over the vocabulary. That is the feature's direct
    "logit lens" vote at its own position if nothing after it changed (the final LayerNorm's scale
    is ignored: it rescales all tokens alike and does not change the ranking);
  - label: built from those two by a rule, never typed by hand, e.g. "'cat' (line-1 end) -> bat".
"""
from collections import Counter

import torch

from data import prompt_positions
from transcoder import collect


def token_roles(world, couplet):
    """A role name for every token of `<bos> line1 <nl> line2 <eos>`."""
    names = {"bos": "bos", "cue": "cue", "rhyme": "line-1 end", "nl": "newline",
             "rhyme_article": "line-1 article", "pronoun": "line-1 pronoun"}
    roles = ["line 1"] * (len(couplet.line1) + 2)
    for role, i in prompt_positions(couplet.line1).items():
        roles[i] = names.get(role, role)
    roles += ["line 2"] * (len(couplet.line2) - 1) + ["line-2 end", "eos"]
    return roles


@torch.no_grad()
def top_outputs(model, clt, k=5):
    """(L, F, k) token ids and values of each feature's strongest de-meaned unembedding votes."""
    W_U = model.unembed.weight * model.ln_f.weight  # (V, d)
    out = []
    for l in range(clt.n_layer):
        dec = clt.W_dec[l].sum(1)  # (F, d): everything the feature writes, all layers together
        logits = dec @ W_U.T  # (F, V)
        logits = logits - logits.mean(-1, keepdim=True)
        out.append(logits.topk(k, dim=-1))
    return torch.stack([o.indices for o in out]), torch.stack([o.values for o in out])


@torch.no_grad()
def feature_table(model, clt, world, n_couplets=300, k=5):
    """Per feature: top contexts, top outputs, density and label. Returns {(layer, id): dict}."""
    couplets = world.split("test")[:n_couplets]
    xs, _ = collect(model, world, couplets)  # (N, L, d), non-pad tokens in couplet order
    where, roles = [], []
    for ci, c in enumerate(couplets):
        r = token_roles(world, c)
        where += [(ci, p) for p in range(len(r))]
        roles += r
    out_ids, out_vals = top_outputs(model, clt, k)
    table = {}
    for l in range(clt.n_layer):
        acts = clt.encode(xs[:, l], l)  # (N, F)
        density = (acts > 0).float().mean(0)
        vals, idx = acts.topk(k, dim=0)  # (k, F)
        for f in range(clt.n_features):
            ctxs = [context(world, couplets, where[i], roles[i], v)
                    for v, i in zip(vals[:, f].tolist(), idx[:, f].tolist()) if v > 0]
            outs = [world.itos[i] for i in out_ids[l, f].tolist()]
            table[(l, f)] = {"layer": l, "feature": f, "density": density[f].item(), "contexts": ctxs,
                             "outputs": outs, "output_values": [round(v, 2) for v in out_vals[l, f].tolist()],
                             "label": make_label(ctxs, outs)}
    return table


def context(world, couplets, where, role, value):
    ci, p = where
    words = world.decode(world.couplet_ids(couplets[ci]))
    return {"words": words[max(0, p - 8):p + 1], "token": words[p], "role": role,
            "activation": round(value, 3), "text": " ".join(words[max(0, p - 8):p]) + f" [{words[p]}]"}


def make_label(ctxs, outs):
    """'<token> (<role>) -> <top output>'; a token or role shared by under half the top contexts is
    shown as the two most common joined by '/'."""
    if not ctxs:
        return "dead (never active on held-out couplets)"

    def common(values):
        top = Counter(values).most_common(2)
        if top[0][1] * 2 > len(values) or len(top) == 1:
            return top[0][0]
        return f"{top[0][0]}/{top[1][0]}"
    token = common([c["token"] for c in ctxs])
    role = common([c["role"] for c in ctxs])
    return f"'{token}' ({role}) -> {outs[0]}"


def node_info(table, graph, world, i):
    """Label, contexts and outputs of node i of an attribution graph (any kind)."""
    kind = graph.node_kind(i)
    fs, es, ts, ls = graph.slices()
    if kind == "feature":
        l, p, f = graph.features[i].tolist()
        info = table[(l, f)]
        return {"kind": kind, "layer": l, "pos": p, "feature": f, "label": info["label"],
                "contexts": [c["text"] for c in info["contexts"]], "outputs": info["outputs"]}
    if kind == "error":
        l, p = divmod(i - es.start, graph.n_pos)
        return {"kind": kind, "layer": l, "pos": p, "feature": -1, "label": f"MLP {l} error", "contexts": [],
                "outputs": []}
    if kind == "token":
        p = i - ts.start
        word = world.itos[graph.tokens[p].item()]
        return {"kind": kind, "layer": -1, "pos": p, "feature": p, "label": f"token '{word}'", "contexts": [],
                "outputs": []}
    j = i - ls.start
    word = world.itos[graph.logit_ids[j].item()]
    return {"kind": kind, "layer": graph.n_layers, "pos": graph.target_pos, "feature": graph.logit_ids[j].item(),
            "label": f"logit '{word}' (p={graph.logit_probs[j].item():.3f})", "contexts": [], "outputs": []}

