"""The planning experiments, one function each: probes, patching, directions, suppression,
injection, position sweep, backward planning and attention knockouts.

Every experiment edits the model through the hook points of model.py and lets the model *write*
line 2; `check_couplet`-style rules on what it wrote decide the outcome. Two facts keep this cheap:
prompts are batched by length (so a position index names the same role in every row), and the
residual stream at a prompt position never changes while line 2 is generated (attention is
causal), so an edit there is a fixed vector per row computed once from a clean run.
"""
from collections import Counter
import random

import numpy as np
import torch

from data import NOUNS, FAMILIES, MEANINGS, article, valid_endings, EOS

LINE2_ROLES = ["l2_first", "l2_pronoun", "l2_verb", "l2_article"]


class AnalysisError(Exception):
    """The experiments cannot run on this model (for instance it writes too few endings)."""


# ---- positions and layers ---------------------------------------------------------------------
def prompt_roles(line1):
    """The role of each token of the prompt `<bos> line1 <nl>`, one name per index."""
    n = len(line1)
    return (["bos", "pronoun", "seen", "cue_art", "cue"] + [f"mid{i}" for i in range(1, n - 5)]
            + ["rhyme_art", "rhyme", "nl"])


def line2_positions(line1, line2):
    """Index of each line-2 role in the full sequence `<bos> line1 <nl> line2` (line 2 valid)."""
    nl = len(line1) + 1
    m = len(line2)
    return {"l2_first": nl + 1, "l2_pronoun": nl + m - 3, "l2_verb": nl + m - 2, "l2_article": nl + m - 1}


def role_order(line1s):
    """Prompt roles in reading order, the middle words by their index."""
    mids = max((len(prompt_roles(l)) for l in line1s), default=8) - 8
    return ["bos", "pronoun", "seen", "cue_art", "cue"] + [f"mid{i}" for i in range(1, mids + 1)] + \
        ["rhyme_art", "rhyme", "nl"]


def layer_hooks(cfg):
    """'Layer l' = the residual stream entering block l; the last one is the final residual."""
    return [f"blocks.{l}.hook_resid_pre" for l in range(cfg.n_layer)] + \
        [f"blocks.{cfg.n_layer - 1}.hook_resid_post"]


# ---- running the model ------------------------------------------------------------------------
def _groups(line1s, chunk=2048):
    by_len = {}
    for i, l in enumerate(line1s):
        by_len.setdefault(len(l), []).append(i)
    for _, idxs in sorted(by_len.items()):
        for s in range(0, len(idxs), chunk):
            yield idxs[s:s + chunk]


@torch.no_grad()
def prompt_cache(model, world, line1s, hook_names):
    """Residuals at every prompt position: {hook: list of (len_i, C) tensors}, one per prompt."""
    out = {h: [None] * len(line1s) for h in hook_names}
    for idxs in _groups(line1s):
        ids = torch.tensor([world.prompt_ids(line1s[i]) for i in idxs])
        _, cache = model.run_with_cache(ids, names=hook_names)
        for h in hook_names:
            for r, i in enumerate(idxs):
                out[h][i] = cache[h][r]
    return out


@torch.no_grad()
def complete(model, world, line1s, edits=None, knockout=None):
    """Line 2 the model writes (greedy) for each line 1, under optional per-row edits.

    edits[i]: list of (hook_name, position, vector): the activation at that prompt position is
              replaced by `vector` in row i (None = no edit for that row).
    knockout[i]: prompt position whose key every line-2 query must ignore (attention score set to
              -inf before the softmax, in every layer), "line2" to hide every earlier line-2 token
              instead (each line-2 query then sees the prompt and itself), or None.
    """
    model.eval()
    out = [None] * len(line1s)
    for idxs in _groups(line1s, chunk=1024):
        prompts = torch.tensor([world.prompt_ids(line1s[i]) for i in idxs])
        hooks = []
        if edits is not None:
            table = {}
            for r, i in enumerate(idxs):
                for name, pos, vec in edits[i] or ():
                    table.setdefault(name, []).append((r, pos, vec))
            for name, items in table.items():
                rows = torch.tensor([r for r, _, _ in items])
                pos = torch.tensor([p for _, p, _ in items])
                vecs = torch.stack([v for _, _, v in items])

                def setter(x, rows=rows, pos=pos, vecs=vecs):
                    x = x.clone()
                    x[rows, pos] = vecs.to(x.dtype)
                    return x
                hooks.append((name, setter))
        step_hooks = []
        if knockout is not None:  # line-2 tokens are the generation steps, so knock out there
            rows = [r for r, i in enumerate(idxs) if isinstance(knockout[i], int)]
            prev = torch.tensor([r for r, i in enumerate(idxs) if knockout[i] == "line2"], dtype=torch.long)
            keys = torch.tensor([knockout[idxs[r]] for r in rows], dtype=torch.long)
            rows_t, start = torch.tensor(rows, dtype=torch.long), prompts.shape[1]

            def knock(scores, rows=rows_t, keys=keys, prev=prev, start=start):
                scores = scores.clone()  # (B, H, 1, S): the new token's query
                scores[rows, :, :, keys] = float("-inf")
                if len(prev):  # earlier line-2 tokens sit at start .. S-2 (S-1 is the query itself)
                    scores[prev[:, None], :, :, torch.arange(start, scores.shape[-1] - 1)] = float("-inf")
                return scores
            step_hooks = [(f"blocks.{l}.attn.hook_attn_scores", knock) for l in range(model.cfg.n_layer)]
        full = model.generate(prompts, model.cfg.block_size, stop_token=EOS, hooks=hooks, step_hooks=step_hooks)
        for row, i in zip(full[:, prompts.shape[1]:].tolist(), idxs):
            out[i] = world.decode(row[:row.index(EOS)] if EOS in row else row)
    return out


def ending(line2):
    return line2[-1] if line2 else None


def rate(hits):
    """(rate, n, 95% interval) of a list of booleans."""
    from train import wilson
    k, n = sum(bool(h) for h in hits), len(hits)
    return {"rate": k / n if n else 0.0, "n": n, "ci": wilson(k, n)}


# ---- 1. probes ------------------------------------------------------------------------------------
def ridge_probe(x_train, y_train, x_test, y_test, n_classes, lam=1.0):
    """Accuracy of a linear probe: ridge regression onto one-hot labels, argmax to classify.
    Closed form, so it is deterministic and takes microseconds (we fit hundreds of probes)."""
    mu, sd = x_train.mean(0), x_train.std(0) + 1e-6
    a = (x_train - mu) / sd
    b = (x_test - mu) / sd
    a = torch.cat([a, torch.ones(len(a), 1)], 1)
    b = torch.cat([b, torch.ones(len(b), 1)], 1)
    y = torch.nn.functional.one_hot(y_train, n_classes).double()
    w = torch.linalg.solve(a.T.double() @ a.double() + lam * torch.eye(a.shape[1], dtype=torch.float64),
                           a.T.double() @ y)
    return (b.double() @ w).argmax(1).eq(y_test).double().mean().item()


@torch.no_grad()
def residuals_by_role(model, world, couplets, layers, roles=None):
    """{layer_hook: {role: (N, C)}} over model-written couplets (line1, line2), for the prompt
    roles and the line-2 roles; rows follow `couplets`. Roles a couplet lacks are NaN rows."""
    out = {h: {} for h in layers}
    line1s = [c[0] for c in couplets]
    roles = roles or role_order(line1s) + LINE2_ROLES
    for h in layers:
        for role in roles:
            out[h][role] = torch.full((len(couplets), model.cfg.d_model), float("nan"))
    for idxs in _groups(line1s):
        seqs = [world.prompt_ids(couplets[i][0]) + world.encode(couplets[i][1][:-1]) for i in idxs]
        T = max(len(s) for s in seqs)
        ids = torch.tensor([s + [0] * (T - len(s)) for s in seqs])
        _, cache = model.run_with_cache(ids, names=layers)
        rows = torch.arange(len(idxs))
        at = torch.tensor(idxs)
        where = {role: torch.full((len(idxs),), p) for p, role in enumerate(prompt_roles(couplets[idxs[0]][0]))}
        l2 = [line2_positions(*couplets[i]) for i in idxs]  # line 2 lengths differ within a group
        where.update({role: torch.tensor([w[role] for w in l2]) for role in LINE2_ROLES})
        for h in layers:
            for role, pos in where.items():
                out[h][role][at] = cache[h][rows, pos]
    return out


def probe_experiment(model, control_model, world, fit, held, layers):
    """Probe accuracy for ending / rhyme family / meaning at every layer x role, with a shuffled-
    label control and a random-init-model control. fit and held: lists of (line1, line2)."""
    targets = {"ending": sorted(NOUNS), "family": list(FAMILIES), "meaning": list(MEANINGS)}

    def label(c, target):
        e = ending(c[1])
        return targets[target].index(e if target == "ending" else getattr(NOUNS[e], target))
    roles = role_order([c[0] for c in fit + held]) + LINE2_ROLES
    acts = {name: tuple(residuals_by_role(m, world, part, layers, roles) for part in (fit, held))
            for name, m in (("trained", model), ("random_init", control_model))}
    gen = torch.Generator().manual_seed(0)
    result = {}
    for target, classes in targets.items():
        y_fit = torch.tensor([label(c, target) for c in fit])
        y_held = torch.tensor([label(c, target) for c in held])
        y_shuf = y_fit[torch.randperm(len(y_fit), generator=gen)]
        maps = {"trained": [], "random_init": [], "shuffled_labels": []}
        for h in layers:
            rows = {k: [] for k in maps}
            for role in roles:
                a_fit, a_held = acts["trained"][0][h][role], acts["trained"][1][h][role]
                ok_fit, ok_held = ~a_fit.isnan().any(1), ~a_held.isnan().any(1)
                if ok_fit.sum() < 50 or ok_held.sum() < 20:
                    for k in rows:
                        rows[k].append(None)
                    continue
                fit_args = (ok_fit, ok_held)
                rows["trained"].append(ridge_probe(a_fit[ok_fit], y_fit[ok_fit], a_held[ok_held], y_held[ok_held], len(classes)))
                rows["shuffled_labels"].append(ridge_probe(a_fit[ok_fit], y_shuf[ok_fit], a_held[ok_held], y_held[ok_held], len(classes)))
                r_fit, r_held = acts["random_init"][0][h][role], acts["random_init"][1][h][role]
                rows["random_init"].append(ridge_probe(r_fit[fit_args[0]], y_fit[ok_fit], r_held[fit_args[1]], y_held[ok_held], len(classes)))
            for k in maps:
                maps[k].append(rows[k])
        majority = Counter(y_held.tolist()).most_common(1)[0][1] / len(y_held)
        result[target] = {"roles": roles, "layers": layers, **maps, "majority_baseline": majority,
                          "n_fit": len(fit), "n_held": len(held)}
    return result


# ---- 2. patching ----------------------------------------------------------------------------------
def swap_pairs(world, line1s, slot, seed=0):
    """For each line 1, a partner differing only in one word: slot 'rhyme' swaps the last word for one
    of another family, slot 'cue' swaps the meaning noun for one of another meaning. Same article and
    length, and the partner's (meaning, family) cell is a training cell. Returns [(a, b)]."""
    rng = random.Random(f"{seed}-{slot}")
    cells = set(world.train_cells)
    pairs = []
    for a in line1s:
        cue, rhyme = NOUNS[a[3]], NOUNS[a[-1]]
        if slot == "rhyme":
            options = [w for w, n in NOUNS.items() if n.family != rhyme.family and article(w) == article(rhyme.word)
                       and (cue.meaning, n.family) in cells and valid_endings(cue.meaning, w) and w not in a]
        else:
            options = [w for w, n in NOUNS.items() if n.meaning != cue.meaning and article(w) == article(cue.word)
                       and (n.meaning, rhyme.family) in cells and valid_endings(n.meaning, rhyme.word) and w not in a]
        if options:
            w = rng.choice(sorted(options))
            b = list(a)
            b[3 if slot == "cue" else -1] = w
            pairs.append((a, b))
    return pairs


def patching_experiment(model, world, pairs, layers, roles=None):
    """Rate at which A's ending becomes B's clean ending when B's residual at one (layer, role) is
    copied into A's run. Returns {rates: [layer][role], roles, n}."""
    a_lines, b_lines = [p[0] for p in pairs], [p[1] for p in pairs]
    a_end = [ending(l) for l in complete(model, world, a_lines)]
    b_end = [ending(l) for l in complete(model, world, b_lines)]
    keep = [i for i in range(len(pairs)) if a_end[i] != b_end[i]]
    a_lines, b_lines = [a_lines[i] for i in keep], [b_lines[i] for i in keep]
    a_end, b_end = [a_end[i] for i in keep], [b_end[i] for i in keep]
    roles = roles or role_order(a_lines)  # pass one list to give several maps the same columns
    cache_a = prompt_cache(model, world, a_lines, layers)
    cache_b = prompt_cache(model, world, b_lines, layers)
    rates = []
    for h in layers:
        rows_line, rows_edit, rows_target, rows_role, no_ops = [], [], [], [], {}
        for i, (a, b) in enumerate(zip(a_lines, b_lines)):
            for p, role in enumerate(prompt_roles(a)):
                # Two kinds of patch are exact no-ops, so A keeps its own ending (a miss) without a run:
                # B's residual equals A's there (shared prefix, or an embedding of the same token), or
                # it is the final residual of a position before <nl>, which no later layer reads.
                never_read = h == layers[-1] and p < len(a) + 1
                if never_read or torch.equal(cache_a[h][i][p], cache_b[h][i][p]):
                    no_ops[role] = no_ops.get(role, 0) + 1
                    continue
                rows_line.append(a)
                rows_edit.append([(h, p, cache_b[h][i][p])])
                rows_target.append(b_end[i])
                rows_role.append(role)
        written = complete(model, world, rows_line, edits=rows_edit)
        hits = {role: [False] * no_ops.get(role, 0) for role in roles}
        for w, t, role in zip(written, rows_target, rows_role):
            hits[role].append(ending(w) == t)
        rates.append([sum(hits[r]) / len(hits[r]) if hits[r] else None for r in roles])
    return {"roles": roles, "layers": layers, "rates": rates, "n": len(a_lines),
            "clean_a_endings": a_end[:5], "clean_b_endings": b_end[:5]}


def choose_site(rhyme_map, cue_map):
    """The planning site: the (layer, role) whose patch moves the ending for BOTH kinds of pairs —
    the ending is the intersection of rhyme and meaning, so a plan must carry both. Score =
    min(rhyme-swap rate, cue-swap rate); highest wins, ties to the earlier layer then position. Below
    0.5 the site is flagged `carries_plan: False`: the interventions still run there, to show it."""
    best = None
    for li, h in enumerate(rhyme_map["layers"]):
        for ri, role in enumerate(rhyme_map["roles"]):
            if role not in cue_map["roles"]:
                continue
            r, c = rhyme_map["rates"][li][ri], cue_map["rates"][li][cue_map["roles"].index(role)]
            if r is None or c is None:
                continue
            score = min(r, c)
            if best is None or score > best["score"] + 1e-12:
                best = {"layer": li, "hook": h, "position": role, "score": score, "rhyme_rate": r, "cue_rate": c,
                        "layers": list(rhyme_map["layers"])}
    if best is None:  # no pair had two different endings to tell apart: nothing was measured
        best = {"layer": 0, "hook": rhyme_map["layers"][0], "position": "nl", "score": 0.0, "rhyme_rate": 0.0,
                "cue_rate": 0.0, "layers": list(rhyme_map["layers"])}
    best["carries_plan"] = best["score"] >= 0.5  # else no single place holds the plan: line 2 re-reads
    return best


def fallback_to_readable_newline(site, layer_accuracy, rhyme_map, cue_map):
    """When no cell carries the plan, run the interventions where the study found it and where the
    ending is most *readable*: the line break, at the layer whose ending probe is best there. Then
    the report can show the gap between "readable" and "used" at the very same place."""
    if site["carries_plan"]:
        return site
    layer = max(range(len(layer_accuracy)), key=lambda l: (layer_accuracy[l] or 0, -l))
    r = rhyme_map["rates"][layer][rhyme_map["roles"].index("nl")] or 0.0
    c = cue_map["rates"][layer][cue_map["roles"].index("nl")] or 0.0
    return {**site, "position": "nl", "layer": layer, "hook": site["layers"][layer], "score": min(r, c),
            "rhyme_rate": r, "cue_rate": c, "rule": "no cell carries the plan: line break at its best ending-probe layer",
            "best_cell": {k: site[k] for k in ("position", "layer", "score", "rhyme_rate", "cue_rate")}}


def newline_probe_by_layer(model, world, fit_pairs, held_pairs, layers):
    """Ending-probe accuracy at <nl>, one per layer (fit and held: (line1, line2) pairs)."""
    words = sorted(NOUNS)
    acts = [residuals_by_role(model, world, pairs, layers) for pairs in (fit_pairs, held_pairs)]
    y = [torch.tensor([words.index(ending(c[1])) for c in pairs]) for pairs in (fit_pairs, held_pairs)]
    return [ridge_probe(acts[0][h]["nl"], y[0], acts[1][h]["nl"], y[1], len(words)) for h in layers]


# ---- 3-7. directions and interventions -------------------------------------------------------------
def site_vectors(model, world, line1s, site):
    """(N, C) residual at the site for each prompt (its role's index in that prompt)."""
    cache = prompt_cache(model, world, line1s, [site["hook"]])[site["hook"]]
    return torch.stack([cache[i][prompt_roles(l).index(site["position"])] for i, l in enumerate(line1s)])


def planned_word_directions(model, world, line1s, site, min_count=5):
    """Mean-difference direction per ending word at the site: mean residual over prompts whose
    written ending is that word, minus the mean over all prompts. We use mean differences, not probe
    weights, because they point from 'average' to 'planning w' in the model's own units, which is
    what an intervention should add (probe weights optimise separability, not effect)."""
    endings = [ending(l) for l in complete(model, world, line1s)]
    x = site_vectors(model, world, line1s, site)
    mu = x.mean(0)
    dirs = {}
    for w, k in Counter(endings).items():
        if w in NOUNS and k >= min_count:
            dirs[w] = x[[i for i, e in enumerate(endings) if e == w]].mean(0) - mu
    return dirs, mu, Counter(endings)


def pick_injections(line1s, clean_endings, directions, seed=0):
    """For each prompt, a word to inject from a different rhyme family than its ending (the study's
    'green'), chosen deterministically among words with a direction."""
    rng = random.Random(f"{seed}-inject")
    words = sorted(directions)
    out = []
    for line1, e in zip(line1s, clean_endings):
        fam = NOUNS[e].family if e in NOUNS else None
        options = [w for w in words if NOUNS[w].family != fam and w not in line1] or \
            [w for w in words if w != e]  # a weak model plans few families; any other word then
        if not options:
            raise AnalysisError("too few ending words have a direction to inject; train the model longer")
        out.append(rng.choice(options))
    return out


def inject(model, world, line1s, site, words, directions, scale, role=None, planned=None):
    """Write line 2 after editing the site (or `role`, same layer) of each prompt.
    planned=None: add scale x d(word), the word's direction on top of whatever is there.
    planned=[clean endings]: *steer* — add scale x (d(word) - d(planned)), the step from "planning
    the clean ending" to "planning word" (a missing direction counts as zero)."""
    pos_role = role or site["position"]
    x = site_vectors(model, world, line1s, {**site, "position": pos_role})
    edits = []
    for i, (l, w) in enumerate(zip(line1s, words)):
        step = directions[w] - (directions.get(planned[i], 0 * directions[w]) if planned else 0)
        edits.append([(site["hook"], prompt_roles(l).index(pos_role), x[i] + scale * step)])
    return complete(model, world, line1s, edits=edits)


def suppress(model, world, line1s, site, words, directions, mu, scale):
    """Remove the planned word's direction at the site: subtract `scale` times the projection of
    (x - mean) on it (scale 1 = project out, larger = push to the opposite side)."""
    x = site_vectors(model, world, line1s, site)
    edits = []
    for i, (l, w) in enumerate(zip(line1s, words)):
        if w not in directions:
            edits.append(None)
            continue
        d = directions[w] / directions[w].norm()
        edits.append([(site["hook"], prompt_roles(l).index(site["position"]), x[i] - scale * ((x[i] - mu) @ d) * d)])
    return complete(model, world, line1s, edits=edits)


def calibrate(candidates, run):
    """The first scale reaching the best rate on calibration prompts (never the reported ones)."""
    scores = {s: run(s) for s in candidates}
    best = max(scores.values())
    return min(s for s in candidates if scores[s] >= best - 1e-9), scores


def backward_stats(line1s, before, after, new_target=None):
    """Did the words before the ending change to suit the new ending? Over prompts whose ending
    changed to a valid noun: article right for the new ending (when it needed a different article),
    meter right (when the new ending has another syllable count), verb suits the new meaning."""
    from data import check_couplet
    art, meter, verb, examples = [], [], [], []
    for l1, b, a in zip(line1s, before, after):
        e_old, e_new = ending(b), ending(a)
        if e_new not in NOUNS or e_new == e_old or e_old not in NOUNS or len(a) < 5:
            continue
        broken = check_couplet(l1, a)
        if article(e_new) != article(e_old):
            art.append("article" not in broken)
        if NOUNS[e_new].syllables != NOUNS[e_old].syllables:
            meter.append("meter" not in broken)
        if NOUNS[e_new].meaning != NOUNS[e_old].meaning:
            verb.append("grammar" not in broken)
        if len(examples) < 4 and (article(e_new) != article(e_old) or NOUNS[e_new].syllables != NOUNS[e_old].syllables):
            examples.append({"line1": " ".join(l1), "before": " ".join(b), "after": " ".join(a)})
    return {"article_adapts": rate(art), "meter_adapts": rate(meter), "verb_adapts": rate(verb),
            "examples": examples}
