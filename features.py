"""Planned-word features: CLT features at a planning site that stand for one future line ending.

A *site* is a prompt role from `data.prompt_positions` (e.g. "rhyme", "nl") and a layer. For each
held-out prompt the model writes its line 2; we then ask, feature by feature, what the features
active at the site do to the ending:

  effect(f) = drop of every noun's de-meaned logit at the position that predicts the ending, when
              f is clamped to 0 at the site (the real model runs; only f's decoder writes change).

f is a *planned-word feature* for the ending e when its effect is about e itself: e's logit drops
by at least `min_drop`, and by at least `margin` more than the logit of every *rival* — every other
noun that shares e's rhyme family or e's meaning. A "rhymes with -at" feature lowers cat and rat
alike and an "animal" feature lowers cat and dog alike: neither counts. Nouns sharing nothing with e
are ignored: their logits are far below and move by large, meaningless amounts.

Interventions clamp features at the site inside the real model during generation: the MLP outputs
of every layer the feature writes to get (new value - current value) x decoder added at the site.
  - suppression: clamp the ending's planned-word features to 0 -> does line 2 now end with another
    valid ending (`data.valid_endings`)?
  - injection: also clamp up the planned-word features of a word from another rhyme family ->
    does line 2 end with the injected word?
"""
from collections import defaultdict
import os
import random
import time

import torch

from attribution import couplet_graph, graph_scores, prune
from data import NOUNS, PAD, prompt_positions, valid_endings
from features_html import section_html
from labels import feature_table
from train import write_line2, wilson
from transcoder import CLTConfig, get_clt, in_name, one_thread, out_name
from viewer import viewer_html, write_graph_json


# ---- clamping features at a site -------------------------------------------------------------------
def clamp_hooks(clt, layer, pos, values, mask):
    """Hooks that set CLT features of `layer` at position pos[b] of row b to values[b] where mask[b]
    (both (B, F)). The rest of the model runs unchanged, so the error of the CLT stays in place."""
    rows = torch.arange(len(pos))
    delta = {}

    def read(x):  # (B, T, d): the features' current activations at the site
        a = clt.encode(x[rows, pos], layer)  # (B, F)
        delta["acts"] = torch.where(mask, values - a, torch.zeros_like(a))

    def write(l):
        def fn(out):  # (B, T, d)
            out = out.clone()
            out[rows, pos] += delta["acts"] @ clt.decoder(layer, l)
            return out
        return fn
    return [(in_name(layer), read)] + [(out_name(l), write(l)) for l in range(layer, clt.n_layer)]


@torch.no_grad()
def site_activations(model, clt, world, line1s, role, layer):
    """(n, F) feature activations at the site of each prompt (the prompt alone: attention is causal)."""
    ids = [world.prompt_ids(l1) for l1 in line1s]
    idx = pad(ids)
    _, cache = model.run_with_cache(idx, names=[in_name(layer)])
    pos = torch.tensor([prompt_positions(l1)[role] for l1 in line1s])
    return clt.encode(cache[in_name(layer)][torch.arange(len(ids)), pos], layer)


def pad(seqs):
    out = torch.full((len(seqs), max(len(s) for s in seqs)), PAD, dtype=torch.long)
    for i, s in enumerate(seqs):
        out[i, :len(s)] = torch.tensor(s)
    return out


# ---- finding planned-word features ----------------------------------------------------------------
@torch.no_grad()
def ending_effects(model, clt, world, line1s, line2s, role, layer, top_k=8, batch=256):
    """For each prompt: the candidate features (top_k active at the site by activation x decoder norm)
    and their effects (n_cand, n_nouns) on the nouns' log-probabilities where the ending is predicted."""
    acts = site_activations(model, clt, world, line1s, role, layer)  # (n, F)
    score = acts * clt.decoder_norms()[layer]
    nouns = torch.tensor([world.stoi[w] for w in NOUNS])
    rows = []  # (prompt, feature or -1 for the clean run)
    for i in range(len(line1s)):
        k = min(top_k, int((acts[i] > 0).sum()))
        rows += [(i, -1)] + [(i, f) for f in score[i].topk(k).indices.tolist()]
    out = []
    for s in range(0, len(rows), batch):
        chunk = rows[s:s + batch]
        seqs = [world.prompt_ids(line1s[i]) + world.encode(line2s[i][:-1]) for i, _ in chunk]
        idx = pad(seqs)
        pos = torch.tensor([prompt_positions(line1s[i])[role] for i, _ in chunk])
        mask = torch.zeros(len(chunk), clt.n_features, dtype=torch.bool)
        for r, (_, f) in enumerate(chunk):
            if f >= 0:
                mask[r, f] = True
        logits = model(idx, hooks=clamp_hooks(clt, layer, pos, torch.zeros(mask.shape), mask))
        last = logits[torch.arange(len(chunk)), torch.tensor([len(q) - 1 for q in seqs])]  # (b, V)
        out.append((last - last.mean(-1, keepdim=True))[:, nouns])  # de-meaned logits
    noun_logits = torch.cat(out)  # (rows, n_nouns)
    result, r = [], 0
    for i in range(len(line1s)):  # rows are [clean, candidates...] per prompt, in order
        j = r + 1
        while j < len(rows) and rows[j][0] == i:
            j += 1
        feats = [f for _, f in rows[r + 1:j]]
        result.append({"features": feats, "acts": [acts[i, f].item() for f in feats],
                       "drops": noun_logits[r][None] - noun_logits[r + 1:j]})  # (n_cand, n_nouns)
        r = j
    return result, list(NOUNS)


def rivals(word, nouns):
    """Indices of the nouns sharing `word`'s rhyme family or meaning (word excluded)."""
    n = NOUNS[word]
    return [i for i, w in enumerate(nouns) if w != word and (NOUNS[w].family == n.family or NOUNS[w].meaning == n.meaning)]


def is_planned(drops, nouns, word, min_drop=1.0, margin=0.5):
    """(n_cand,) bool: is each candidate's effect (row of drops) specific to `word`?"""
    e = drops[:, nouns.index(word)]
    rival = drops[:, rivals(word, nouns)].max(-1).values
    return (e >= min_drop) & (e - rival >= margin)


def find_planned(model, clt, world, line1s, line2s, role, layer, **kw):
    """Per prompt: {ending: [(feature, activation), ...]} of planned-word features at the site."""
    effects, nouns = ending_effects(model, clt, world, line1s, line2s, role, layer)
    per_prompt = []
    for e, l2 in zip(effects, line2s):
        hits = is_planned(e["drops"], nouns, l2[-1], **kw).tolist() if e["features"] else []
        fa = [(f, a) for f, a, h in zip(e["features"], e["acts"], hits) if h]
        per_prompt.append({l2[-1]: fa} if fa else {})
    return per_prompt


def word_dictionary(per_prompt):
    """word -> {feature: mean activation}, over every prompt where the feature planned that word."""
    acc = defaultdict(lambda: defaultdict(list))
    for found in per_prompt:
        for w, fa in found.items():
            for f, a in fa:
                acc[w][f].append(a)
    return {w: {f: sum(v) / len(v) for f, v in fs.items()} for w, fs in acc.items()}


# ---- interventions --------------------------------------------------------------------------------------
@torch.no_grad()
def write_with_clamps(model, clt, world, line1s, role, layer, clamps):
    """Line 2s written while features are clamped: clamps[i] = {feature: value} for prompt i.
    Prompts go to write_line2 one length at a time, so the rows of its batch are in our order."""
    out = [None] * len(line1s)
    groups = defaultdict(list)
    for i, l1 in enumerate(line1s):
        groups[len(l1)].append(i)
    for idxs in groups.values():
        pos = torch.tensor([prompt_positions(line1s[i])[role] for i in idxs])
        values = torch.zeros(len(idxs), clt.n_features)
        mask = torch.zeros(len(idxs), clt.n_features, dtype=torch.bool)
        for r, i in enumerate(idxs):
            for f, v in clamps[i].items():
                values[r, f], mask[r, f] = v, True
        hooks = clamp_hooks(clt, layer, pos, values, mask)
        for i, l2 in zip(idxs, write_line2(model, world, [line1s[i] for i in idxs], hooks=hooks)):
            out[i] = l2
    return out


def injection_word(couplet, ending, dictionary, rng):
    """A word with planned-word features from another rhyme family than line 1's rhyme word; the same
    meaning when one exists, so line 2 can stay sensible."""
    family = NOUNS[couplet.line1[-1]].family
    options = sorted(w for w in dictionary if NOUNS[w].family != family and w != ending)
    same = [w for w in options if NOUNS[w].meaning == couplet.meaning]
    return rng.choice(same or options) if options else None


def rate(k, n):
    return {"rate": k / n if n else None, "k": k, "n": n, "ci": wilson(k, n)}  # None: nothing to test


def planned_word_experiment(model, clt, world, role, layer, n_prompts=200, seed=0, gain=1.0):
    """Planned-word feature rate, suppression and injection over held-out prompts."""
    couplets = world.split("test")[:n_prompts]
    line1s = [c.line1 for c in couplets]
    line2s = write_line2(model, world, line1s)
    ok = [i for i, l2 in enumerate(line2s) if l2 and l2[-1] in NOUNS]
    line1s, line2s, couplets = [line1s[i] for i in ok], [line2s[i] for i in ok], [couplets[i] for i in ok]
    endings = [l2[-1] for l2 in line2s]
    per_prompt = find_planned(model, clt, world, line1s, line2s, role, layer)
    has = [e in found for e, found in zip(endings, per_prompt)]
    dictionary = word_dictionary(per_prompt)
    # suppression: every feature known to plan the ending (from any prompt) clamped to 0
    sup = [{f: 0.0 for f in dictionary.get(e, {})} for e in endings]
    sup_l2 = write_with_clamps(model, clt, world, line1s, role, layer, sup)
    sup_n = [i for i, s in enumerate(sup) if s]
    sup_k = sum(1 for i in sup_n if sup_l2[i] and sup_l2[i][-1] != endings[i]
                and sup_l2[i][-1] in valid_endings(couplets[i].meaning, line1s[i][-1]))
    # injection: suppress as above and clamp the injected word's features to gain x their mean activation
    rng = random.Random(seed)
    words = [injection_word(c, e, dictionary, rng) for c, e in zip(couplets, endings)]
    inj = [{**s, **{f: gain * a for f, a in dictionary[w].items()}} if w else {} for s, w in zip(sup, words)]
    inj_l2 = write_with_clamps(model, clt, world, line1s, role, layer, inj)
    inj_n = [i for i, w in enumerate(words) if w]
    inj_k = sum(1 for i in inj_n if inj_l2[i] and inj_l2[i][-1] == words[i])
    examples = [{"line1": " ".join(line1s[i]), "line2": " ".join(line2s[i]),
                 "suppressed": " ".join(sup_l2[i]), "injected_word": words[i], "injected": " ".join(inj_l2[i])}
                for i in inj_n[:5]]
    return {"site": {"position": role, "layer": layer},
            "planned_word_prompt_rate": rate(sum(has), len(has)),
            "suppression_rate": rate(sup_k, len(sup_n)), "injection_rate": rate(inj_k, len(inj_n)),
            "n": len(line1s), "words_with_features": len(dictionary),
            "features_per_prompt": sum(len(fa) for f in per_prompt for fa in f.values()) / max(1, len(per_prompt)),
            "dictionary": {w: sorted(fs) for w, fs in sorted(dictionary.items())}, "examples": examples}


def planned_rate_by_layer(model, clt, world, role, n_prompts=100):
    """Share of prompts whose ending has a planned-word feature at `role`, for every CLT layer:
    where along depth (if anywhere) the site holds word-specific features."""
    couplets = world.split("test")[:n_prompts]
    line1s = [c.line1 for c in couplets]
    line2s = write_line2(model, world, line1s)
    ok = [i for i, l2 in enumerate(line2s) if l2 and l2[-1] in NOUNS]
    line1s, line2s = [line1s[i] for i in ok], [line2s[i] for i in ok]
    out = {}
    for layer in range(clt.n_layer):
        found = find_planned(model, clt, world, line1s, line2s, role, layer)
        out[layer] = rate(sum(l2[-1] in f for l2, f in zip(line2s, found)), len(line2s))
    return out


# ---- the report section -------------------------------------------------------------------------------
def featured_prompt(world, line1s, line2s, per_prompt):
    """The first prompt whose ending has a planned-word feature and a runner-up ending exists;
    else the first prompt with a planned-word feature; else the first prompt."""
    for need_runner_up in (True, False):
        for i, (l1, l2, found) in enumerate(zip(line1s, line2s, per_prompt)):
            c = NOUNS[l1[3]].meaning
            if l2[-1] in found and (not need_runner_up or len(valid_endings(c, l1[-1])) > 1):
                return i
    return 0


def graph_stats(model, clt, world, line1s, line2s):
    """Scores, sizes and build time of each prompt's graph, averaged."""
    rows = []
    for l1, l2 in zip(line1s, line2s):
        g = couplet_graph(model, clt, world, l1, l2)
        node_mask, edge_mask, _ = prune(g)
        r, c = graph_scores(g)
        rows.append({"replacement_score": r, "completeness_score": c, "n_nodes": int(node_mask.sum()),
                     "n_edges": int(edge_mask.sum()), "n_active_features": g.n_features, "seconds": g.seconds})
    return {k: sum(r[k] for r in rows) / len(rows) for k in rows[0]}


@one_thread()
def features_section(model, world, site, out_dir, seed=0, n_prompts=200, n_graphs=50, clt_path=None,
                     clt_cfg=None):
    """Train/load the CLT, build attribution graphs, find planned-word features at `site`
    ({"position": role, "layer": int, "hook": name}) and test them causally. site["layer"] is the CLT
    layer searched and clamped: its features read blocks.{layer}.ln2 at that position and write to the
    MLP outputs of layers >= layer (the hook name is only recorded). `rate_by_layer` repeats the
    search at the same position for every layer.
    The CLT is cached at clt_path (default out_dir/clt.pt) and retrained only when stale.
    Returns (results dict, html <section id="features">)."""
    t0 = time.time()
    os.makedirs(out_dir, exist_ok=True)
    cfg = clt_cfg or CLTConfig(seed=seed)
    clt, info = get_clt(model, world, clt_path or os.path.join(out_dir, "clt.pt"), cfg)
    keys = ("fvu", "fvu_per_layer", "l0", "l0_per_layer", "dead_fraction", "loss_recovered", "loss_clean",
            "loss_zero_mlp", "loss_clt", "train_seconds", "train_tokens", "eval_tokens")
    keys = [k for k in keys if k in info] + [k for k in ("train_cpu_seconds",) if k in info]
    transcoder = {k: info[k] for k in keys}
    transcoder["n_features_per_layer"] = clt.n_features
    role, layer = site["position"], int(site["layer"])
    planned = planned_word_experiment(model, clt, world, role, layer, n_prompts, seed)
    planned["rate_by_layer"] = planned_rate_by_layer(model, clt, world, role, min(n_prompts, 100))
    couplets = world.split("test")[:max(n_graphs, 1)]
    line1s = [c.line1 for c in couplets]
    line2s = write_line2(model, world, line1s)
    ok = [i for i, l2 in enumerate(line2s) if l2 and l2[-1] in NOUNS]
    line1s, line2s = [line1s[i] for i in ok], [line2s[i] for i in ok]
    per_prompt = find_planned(model, clt, world, line1s, line2s, role, layer)
    k = featured_prompt(world, line1s, line2s, per_prompt)
    table = feature_table(model, clt, world)
    graph = couplet_graph(model, clt, world, line1s[k], line2s[k])
    node_mask, edge_mask, _ = prune(graph)
    replacement, completeness = graph_scores(graph)
    write_graph_json(os.path.join(out_dir, "graph.json"), graph, world, table, slug="couplet-featured")
    site_feats = sorted({f for fa in per_prompt[k].values() for f, _ in fa})
    results = {
        "transcoder": transcoder,
        "graph": {"prompt": " ".join(line1s[k]), "line2": " ".join(line2s[k]),
                  "replacement_score": replacement, "completeness_score": completeness,
                  "n_nodes": int(node_mask.sum()), "n_edges": int(edge_mask.sum()),
                  "n_active_features": graph.n_features, "seconds": graph.seconds,
                  "mean_over_prompts": graph_stats(model, clt, world, line1s, line2s),
                  "n_prompts_for_mean": len(line1s)},
        "features": dict(planned, cis={k2: planned[k2]["ci"] for k2 in
                                        ("planned_word_prompt_rate", "suppression_rate", "injection_rate")},
                         featured_site_features={f: table[(layer, f)]["label"] for f in site_feats}),
        "site": dict(site), "seconds": 0.0}
    results["features"]["planned_word_prompt_rate"] = planned["planned_word_prompt_rate"]["rate"]
    results["features"]["suppression_rate"] = planned["suppression_rate"]["rate"]
    results["features"]["injection_rate"] = planned["injection_rate"]["rate"]
    results["features"]["counts"] = {k2: planned[k2] for k2 in
                                     ("planned_word_prompt_rate", "suppression_rate", "injection_rate")}
    viewer = viewer_html(graph, world, table)
    results["seconds"] = time.time() - t0
    return results, section_html(results, viewer)
