"""Attribution graphs for one prompt, in the style of circuit-tracer, in six small steps.

(a) `record`: run the prompt once and keep every activation.
(b) `replacement_forward`: the *local replacement model*. Attention patterns and LayerNorm scales
    are frozen at their recorded values and every MLP output is rebuilt from CLT features plus an
    *error* vector (true MLP output minus the CLT's reconstruction). On this prompt it reproduces the
    model exactly, and it is an affine function of its sources: token embeddings, feature
    activations and errors. Features are nodes: what happens inside their ReLU is not traced.
(c) `build_graph`: nodes = features (layer, position, id), error nodes (layer, position), token
    nodes (embedding + position) and target logits. The weight of an edge source -> target is the
    source's share of the target's input: for a feature target its encoder pre-activation, for a
    logit target the de-meaned logit (logit minus mean logit, as circuit-tracer's de-meaned
    unembedding). Every target row plus its constant `bias` (all model and CLT biases) sums to the
    target's value exactly.
(d) `prune`: influence on the target logits; keep the nodes carrying 80% and edges carrying 98%.
(e) `graph_scores`: replacement and completeness scores (circuit-tracer's definitions).
(f) `kept_graph`: the pruned graph as plain data (nodes with their layer, position and label; signed
    edges) for a viewer; nothing here draws.
"""
from dataclasses import dataclass
import time

import torch

from interp.transcoder import in_name, out_name


# ---- (a) context ----------------------------------------------------------------------------------
@dataclass
class Context:
    tokens: torch.Tensor   # (T,)
    cache: dict            # hook name -> activation of this prompt (batch dim dropped)
    logits: torch.Tensor   # (T, V)
    embed: torch.Tensor    # (T, d) token + position embedding: what a token node writes
    acts: torch.Tensor     # (L, T, F) CLT feature activations
    errors: torch.Tensor   # (L, T, d) true MLP output minus CLT reconstruction


def frozen_names(L):
    """The hook points whose values the local replacement model freezes."""
    names = ["ln_final.hook_scale"]
    for l in range(L):
        names += [f"blocks.{l}.ln1.hook_scale", f"blocks.{l}.ln2.hook_scale", f"blocks.{l}.attn.hook_pattern"]
    return names


def reconstruct(clt, acts):
    """(L, T, d) CLT outputs for activations acts (L, T, F): layer l gets every layer <= l."""
    return torch.stack([clt.b_dec[l] + sum(acts[s] @ clt.decoder(s, l) for s in range(l + 1))
                        for l in range(clt.n_layer)])


@torch.no_grad()
def record(model, clt, tokens):
    """Run one prompt (T,) and record everything attribution needs."""
    logits, cache = model.run_with_cache(tokens[None])
    cache = {k: v if k == "hook_pos_embed" else v[0] for k, v in cache.items()}  # pos embed has no batch dim
    L = model.cfg.n_layer
    acts = torch.stack([clt.encode(cache[in_name(l)], l) for l in range(L)])  # (L, T, F)
    mlp = torch.stack([cache[out_name(l)] for l in range(L)])                 # (L, T, d)
    embed = cache["hook_embed"] + cache.get("hook_pos_embed", 0)  # rotary / no positions: token only
    return Context(tokens, cache, logits[0], embed, acts, mlp - reconstruct(clt, acts))


# ---- (b) local replacement model -----------------------------------------------------------------------
def frozen_forward(model, ctx, embed, mlp_outs):
    """Logits (T, V) and the CLT inputs (L, T, d) of the prompt with attention patterns and
    LayerNorm scales frozen, the input embedding replaced by embed (T, d) and every MLP's output by
    mlp_outs (L, T, d): an affine function of embed and mlp_outs."""
    L = model.cfg.n_layer
    seen = {}

    def const(name):  # a frozen value: no gradient flows through it
        return lambda x: ctx.cache[name][None]

    def keep(l):
        return lambda x: seen.__setitem__(l, x[0])

    def mlp(l):
        return lambda x: mlp_outs[l][None]
    hooks = [(n, const(n)) for n in frozen_names(L)]
    hooks += [("hook_embed", lambda x: embed[None]), ("hook_pos_embed", lambda x: torch.zeros_like(x))]
    hooks += [(in_name(l), keep(l)) for l in range(L)] + [(out_name(l), mlp(l)) for l in range(L)]
    logits = model(ctx.tokens[None], hooks=hooks)[0][0]
    return logits, torch.stack([seen[l] for l in range(L)])


def replacement_forward(model, clt, ctx, embed, acts, errors):
    """The local replacement model: logits (T, V) and CLT inputs (L, T, d) as an affine function of
    embed (T, d), feature activations acts (L, T, F) and errors (L, T, d). With ctx's own values it
    equals the model on this prompt."""
    return frozen_forward(model, ctx, embed, reconstruct(clt, acts) + errors)


# ---- (c) the graph -------------------------------------------------------------------------------------
@dataclass
class Graph:
    """Adjacency rows are targets, columns sources, nodes in circuit-tracer's order:
    [features (n_f), errors (L*T, layer-major), tokens (T), logits (n_l)]."""
    tokens: torch.Tensor          # (T,)
    features: torch.Tensor        # (n_f, 3) layer, position, feature id
    activations: torch.Tensor     # (n_f,)
    logit_ids: torch.Tensor       # (n_l,) vocabulary ids of the target logits
    logit_probs: torch.Tensor     # (n_l,) their probabilities: the weights of influence
    target_pos: int               # position whose next-token logits are the targets
    adjacency: torch.Tensor       # (N, N)
    bias: torch.Tensor            # (N,) constant input of each target (0 for sources)
    values: torch.Tensor          # (N,) each node's input value: pre-activation / de-meaned logit
    n_layers: int
    seconds: float = 0.0

    @property
    def n_features(self):
        return self.features.shape[0]

    @property
    def n_pos(self):
        return self.tokens.shape[0]

    def slices(self):
        """index ranges (features, errors, tokens, logits) in node order."""
        f, e = self.n_features, self.n_features + self.n_layers * self.n_pos
        t = e + self.n_pos
        return slice(0, f), slice(f, e), slice(e, t), slice(t, t + len(self.logit_ids))

    def node_kind(self, i):
        fs, es, ts, ls = self.slices()
        return "feature" if i < fs.stop else "error" if i < es.stop else "token" if i < ts.stop else "logit"


def pick_logits(logits_row, must=None, max_n=5, mass=0.95):
    """Target logits: `must` (the word the model writes) then the most likely others until their
    probability covers `mass`, at least one runner-up, at most max_n."""
    probs = logits_row.softmax(-1)
    order = probs.argsort(descending=True).tolist()
    ids = [must] if must is not None else []
    for i in order:
        if len(ids) >= max_n or (len(ids) >= 2 and probs[ids].sum() >= mass):
            break
        if i not in ids:
            ids.append(i)
    ids = torch.tensor(ids)
    return ids, probs[ids]


def seeds(clt, feats, logit_ids, target_pos, T, V, dtype):
    """Gradient seeds, one row per target: feature k's encoder column at its (layer, position) of the
    CLT inputs (L, T, d); for logit j the one-hot of its token minus 1/V (the de-meaning)."""
    n_f, n_l = feats.shape[0], len(logit_ids)
    L, d = clt.n_layer, clt.d_model
    s_x = torch.zeros(n_f + n_l, L, T, d, dtype=dtype)
    l, p, f = feats.unbind(1)
    s_x[torch.arange(n_f), l, p] = clt.W_enc.transpose(1, 2)[l, f].detach()
    s_logit = torch.zeros(n_f + n_l, T, V, dtype=dtype)
    s_logit[n_f + torch.arange(n_l), target_pos] = -1.0 / V
    s_logit[n_f + torch.arange(n_l), target_pos, logit_ids] += 1.0
    return s_x, s_logit


def target_values(clt, feats, logit_ids, target_pos, logits, xs):
    """(n_f + n_l,): pre-activations of the active features, then the de-meaned target logits."""
    l, p, f = feats.unbind(1)
    pre = (xs[l, p] * clt.W_enc.transpose(1, 2)[l, f]).sum(-1) + clt.b_enc[l, f]  # (n_f,)
    row = logits[target_pos]
    return torch.cat([pre, row[logit_ids] - row.mean()])


def feature_edges(clt, feats, acts, g_mlp):
    """(n_t, n_f): activation x (each decoder . the target's gradient at the MLP output it writes).
    g_mlp: (n_t, L, T, d) gradients of every target w.r.t. every MLP output."""
    out = torch.zeros(g_mlp.shape[0], feats.shape[0], dtype=g_mlp.dtype)
    for l in range(clt.n_layer):
        k = (feats[:, 0] == l).nonzero().flatten()
        if len(k) == 0:
            continue
        p, f = feats[k, 1], feats[k, 2]
        dec = clt.W_dec[l][f]  # (k, L - l, d): the decoders of these features into layers l..L-1
        g = g_mlp[:, l:, p].transpose(1, 2)  # (n_t, k, L - l, d)
        out[:, k] = (g * dec).sum((-1, -2)) * acts[k]
    return out


def build_graph(model, clt, tokens, target_pos=-1, must=None, max_logits=5):
    """The full attribution graph of `tokens` (T,) for the logits at target_pos."""
    t0 = time.time()
    graph = _build_graph(model, clt, tokens, target_pos, must, max_logits)
    graph.seconds = time.time() - t0
    return graph


def _build_graph(model, clt, tokens, target_pos, must, max_logits):
    ctx = record(model, clt, tokens)
    T, L = tokens.shape[0], model.cfg.n_layer
    target_pos = target_pos % T
    logit_ids, logit_probs = pick_logits(ctx.logits[target_pos], must, max_logits)
    feats = ctx.acts.nonzero()  # (n_f, 3): layer, position, feature
    n_f, n_l = feats.shape[0], len(logit_ids)
    mlp = reconstruct(clt, ctx.acts) + ctx.errors  # (L, T, d) = the true MLP outputs
    src = [ctx.embed.clone().requires_grad_(), mlp.requires_grad_()]
    with torch.enable_grad():  # one backward pass per target, batched: row k = d target_k / d sources
        logits, xs = frozen_forward(model, ctx, *src)
        s_x, s_logit = seeds(clt, feats, logit_ids, target_pos, T, logits.shape[-1], logits.dtype)
        g_embed, g_mlp = torch.autograd.grad([xs, logits], src, [s_x, s_logit], is_grads_batched=True)
    with torch.no_grad():
        values = target_values(clt, feats, logit_ids, target_pos, logits, xs)
        zero = target_values(clt, feats, logit_ids, target_pos,  # the constant part: all sources off
                             *frozen_forward(model, ctx, torch.zeros_like(ctx.embed),
                                             reconstruct(clt, torch.zeros_like(ctx.acts))))
        n = n_f + L * T + T + n_l
        A = torch.zeros(n, n, dtype=values.dtype)
        rows = torch.cat([torch.arange(n_f), torch.arange(n - n_l, n)])  # the targets' node indices
        l, p, f = feats.unbind(1)
        A[rows, :n_f] = feature_edges(clt, feats, ctx.acts[l, p, f], g_mlp)
        A[rows, n_f:n_f + L * T] = (g_mlp * ctx.errors).sum(-1).flatten(1)  # error vector . gradient
        A[rows, n_f + L * T:n - n_l] = (g_embed * ctx.embed).sum(-1)        # embedding . gradient
    bias, vals = torch.zeros(n, dtype=A.dtype), torch.zeros(n, dtype=A.dtype)
    bias[rows], vals[rows] = zero, values
    return Graph(tokens, feats, ctx.acts[l, p, f], logit_ids, logit_probs, target_pos, A, bias, vals, L)


# ---- (d) pruning by influence ----------------------------------------------------------------------------
def normalize_rows(A):
    """|A| with each row summing to 1 (all-zero rows stay zero)."""
    a = A.abs()
    return a / a.sum(1, keepdim=True).clamp(min=1e-10)


def influence(A_norm, weights):
    """weights @ (A + A^2 + ...): A is a DAG's adjacency, so the series ends after depth steps."""
    cur = weights @ A_norm
    total = cur.clone()
    for _ in range(A_norm.shape[0]):
        cur = cur @ A_norm
        if not cur.any():
            break
        total += cur
    return total


def logit_weights(graph):
    w = torch.zeros(graph.adjacency.shape[0], dtype=graph.adjacency.dtype)
    w[graph.slices()[3]] = graph.logit_probs.to(w.dtype)
    return w


def find_threshold(scores, fraction):
    """The smallest score among the top ones that together cover `fraction` of the total."""
    s = scores.flatten().sort(descending=True).values
    cum = s.cumsum(0) / s.sum().clamp(min=1e-30)
    i = min(int(torch.searchsorted(cum, torch.tensor(fraction, dtype=cum.dtype))), len(s) - 1)
    return s[i]


def prune(graph, node_threshold=0.8, edge_threshold=0.98):
    """(node_mask (N,), edge_mask (N, N), node influence (N,)). Tokens and logits are always kept;
    no edge is kept whose source or target was dropped; a kept feature or error needs a kept
    outgoing edge and a kept feature a kept incoming edge (circuit-tracer's rules)."""
    A, w = graph.adjacency, logit_weights(graph)
    fs, es, ts, ls = graph.slices()
    node_inf = influence(normalize_rows(A), w)
    node_mask = node_inf >= find_threshold(node_inf, node_threshold)
    node_mask[ts.start:] = True
    pruned = A * node_mask[:, None] * node_mask[None, :]
    pn = normalize_rows(pruned)
    edge_scores = pn * (influence(pn, w) + w)[:, None]
    edge_mask = (edge_scores >= find_threshold(edge_scores, edge_threshold)) & (pruned != 0)
    while True:  # drop nodes left without outgoing (or, for features, incoming) edges
        old = node_mask.clone()
        edge_mask &= node_mask[:, None] & node_mask[None, :]
        node_mask[:ts.start] &= edge_mask[:, :ts.start].any(0)
        node_mask[fs] &= edge_mask[fs].any(1)
        if torch.equal(old, node_mask):
            break
    return node_mask, edge_mask, node_inf


# ---- (e) scores --------------------------------------------------------------------------------------------
def graph_scores(graph):
    """(replacement, completeness). Replacement: the share of the influence reaching the logits
    from tokens rather than errors (errors are the unexplained part). Completeness: each node's
    share of input from non-error sources, averaged with influence (+ logit) weights."""
    A, w = graph.adjacency, logit_weights(graph)
    fs, es, ts, ls = graph.slices()
    An = normalize_rows(A)
    inf = influence(An, w)
    tok, err = inf[ts].sum(), inf[es].sum()
    replacement = tok / (tok + err)
    non_error = 1 - An[:, es].sum(1)
    out = inf + w
    completeness = (non_error * out).sum() / out.sum()
    return replacement.item(), completeness.item()


# ---- (f) export ---------------------------------------------------------------------------------------------
def cumulative_influence(node_inf):
    """(N,) circuit-tracer's node score: the share of all influence carried by the nodes ranked at or
    above this one (small = among the most influential)."""
    scores, order = node_inf.sort(descending=True)
    out = torch.empty_like(node_inf)
    out[order] = scores.cumsum(0) / scores.sum().clamp(min=1e-30)
    return out


def kept_graph(graph, node_mask, edge_mask, node_inf, words, target_words, labels):
    """{'n_layers', 'words', 'nodes': [{kind, layer, pos, label, influence, cumulative, ...}], 'edges':
    [{source, target, weight}]} of the kept nodes and edges. Layers: -1 for token embeddings, n_layers
    for the target logits; edges index `nodes`; cumulative: `cumulative_influence`; a feature also has
    its `feature` id and `activation`, a token its vocabulary id `token`, a logit its `token`, `word`
    and `prob`. words: the token of every position; target_words: the words of the target logits;
    labels: {feature node index: automatic label}."""
    fs, es, ts, ls = graph.slices()
    T, keep = graph.n_pos, node_mask.nonzero().flatten().tolist()
    cumulative = cumulative_influence(node_inf)
    nodes, index = [], {}
    for i in keep:
        kind = graph.node_kind(i)
        if kind == "feature":
            layer, pos, fid = (int(v) for v in graph.features[i])
            label = f"L{layer} #{fid} " + labels.get(i, "")
            extra = {"feature": fid, "activation": round(float(graph.activations[i]), 5)}
        elif kind == "error":
            layer, pos = divmod(i - es.start, T)
            label = f"error L{layer} at '{words[pos]}': what the transcoder misses"
            extra = {}
        elif kind == "token":
            layer, pos = -1, i - ts.start
            label = f"token '{words[pos]}'"
            extra = {"token": int(graph.tokens[pos])}
        else:
            k = i - ls.start
            layer, pos = graph.n_layers, graph.target_pos % T
            label = f"logit '{target_words[k]}' (p = {float(graph.logit_probs[k]):.2f})"
            extra = {"token": int(graph.logit_ids[k]), "word": target_words[k],
                     "prob": round(float(graph.logit_probs[k]), 5)}
        index[i] = len(nodes)
        nodes.append({"kind": kind, "layer": layer, "pos": pos, "label": label.strip(),
                      "influence": round(float(node_inf[i]), 5), "cumulative": round(float(cumulative[i]), 5),
                      **extra})
    A = graph.adjacency * edge_mask
    rows, cols = A.nonzero(as_tuple=True)
    edges = [{"source": index[s], "target": index[t], "weight": round(float(A[t, s]), 5)}
             for t, s in zip(rows.tolist(), cols.tolist()) if s in index and t in index]
    return {"n_layers": graph.n_layers, "words": list(words), "nodes": nodes, "edges": edges}


# ---- a couplet's graph ---------------------------------------------------------------------------------
def couplet_tokens(world, line1, line2):
    """`<bos> line1 <nl> line2 minus its ending`: the last position predicts the ending."""
    return torch.tensor(world.prompt_ids(line1) + world.encode(line2[:-1]))


def couplet_graph(model, clt, world, line1, line2):
    """Graph of the ending the model wrote (line2[-1]) and its runner-ups."""
    tokens = couplet_tokens(world, line1, line2)
    return build_graph(model, clt, tokens, -1, must=world.stoi[line2[-1]])
