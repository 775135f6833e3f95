"""Linear probes: is the future ending *readable* at a (layer, position)? (Readable is not used:
patching decides that.) One pipeline for every model, so two models' maps compare like with like.

Targets, at every layer and every role of the prompt and of line 2 (line 2 teacher-forced with the
model's own words, minus the ending):
  family   the rhyme family the ending must have (a function of line 1: the same labels for every model)
  meaning  the meaning the ending must have (likewise)
  ending   the word the model itself writes at the end of line 2
  length   that word's syllables: the line's shape, which the meter ties to the opener
Controls beside each map: the same probe on a random-init model of the same shape (fed the same
tokens) and on shuffled labels (Othello-GPT practice).
"""
from collections import Counter

import torch

from data import ROLES
from couplet_rules import parse_line1, roles
from lexicon import NOUNS, FAMILIES, MEANINGS
from interp.edits import activations, resid_hooks
from interp.prompts import well_formed
from interp.stats import rate


def ridge_probe(x_fit, y_fit, x_test, y_test, n_classes, lam=1.0):
    """Accuracy of a linear probe: ridge regression onto one-hot labels, argmax to classify.
    Closed form (the normal equations, solved exactly), so it is deterministic and fast (we fit hundreds)."""
    mu, sd = x_fit.mean(0), x_fit.std(0) + 1e-6
    a = torch.cat([(x_fit - mu) / sd, torch.ones(len(x_fit), 1)], 1).float()
    b = torch.cat([(x_test - mu) / sd, torch.ones(len(x_test), 1)], 1).float()
    y = torch.nn.functional.one_hot(y_fit, n_classes).float()
    # the products in float32, the solve in float64: MKL's float64 products follow the CPU's maker even in its
    # reproducible mode (plumbing/numerics.py), its float32 ones do not
    w = solve_spd((a.T @ a).double() + lam * torch.eye(a.shape[1], dtype=torch.float64), (a.T @ y).double())
    return (b @ w.float()).argmax(1).eq(y_test).double().mean().item()


def solve_spd(a, b):
    """x with a @ x = b, for a symmetric positive definite a: Gauss-Jordan elimination (no pivoting needed
    for such a matrix) in plain tensor arithmetic. torch.linalg.solve would call MKL's LAPACK, whose code
    path follows the CPU's maker, so the probes' bits would too (plumbing/numerics.py)."""
    a, b = a.clone(), b.clone()
    for k in range(a.shape[0]):
        p = a[k, k].clone()
        a[k], b[k] = a[k] / p, b[k] / p          # row k now has a 1 on the diagonal
        f = a[:, k].clone()
        f[k] = 0.0
        a -= f[:, None] * a[k]                   # clear column k in every other row
        b -= f[:, None] * b[k]
    return b


def labels(world, line1s, line2s, target):
    """Class index per prompt (None where the model wrote no noun ending, for target 'ending')."""
    if target == "ending":
        words = sorted(NOUNS)
        return [words.index(l2[-1]) if well_formed(l2) else None for l2 in line2s]
    if target == "length":
        return [NOUNS[l2[-1]].syllables if well_formed(l2) else None for l2 in line2s]
    out = []
    for l1 in line1s:
        p = parse_line1(l1, world.config)
        out.append(FAMILIES.index(NOUNS[p.rhyme].family) if target == "family" else MEANINGS.index(NOUNS[p.cue].meaning))
    return out


def by_role(model, world, line1s, line2s):
    """{hook: {role: (N, d) with NaN rows where a prompt lacks the role}} over prompt + line 2."""
    hooks = resid_hooks(model.cfg)
    prefixes = [l2[:-1] if well_formed(l2) else [] for l2 in line2s]
    acts = activations(model, world, line1s, prefixes, hooks)
    names = [roles(l1, p + ["?"], world.config)[:-1] for l1, p in zip(line1s, prefixes)]
    present = sorted({r for rs in names for r in rs}, key=ROLES.index)
    out = {h: {r: torch.full((len(line1s), model.cfg.d_model), float("nan")) for r in present} for h in hooks}
    for i, rs in enumerate(names):
        for p, r in enumerate(rs):
            for h in hooks:
                out[h][r][i] = acts[h][i][p]
    return out, present


def probe_maps(acts, control, y, hooks, present, min_rows=40, seed=0):
    """Probe accuracy grids [layer][role] per target, fit on the 'fit' prompts and scored on every
    other prompt set, for the trained model, the random-init control and shuffled labels.
    acts[set] / control[set]: by_role() output; y[set][target]: labels (None = skip)."""
    gen = torch.Generator().manual_seed(seed)
    sets = [s for s in acts if s != "fit"]
    out = {"roles": present, "layers": [f"L{l}" for l in range(len(hooks))]}
    for target, n_classes in (("family", len(FAMILIES)), ("meaning", len(MEANINGS)), ("ending", len(NOUNS)),
                              ("length", 1 + max(n.syllables for n in NOUNS.values()))):
        maps = {k: {s: [] for s in sets} for k in ("trained", "random_init", "shuffled_labels")}
        yf_all = y["fit"][target]
        for h in hooks:
            rows = {k: {s: [] for s in sets} for k in maps}
            for role in present:
                fit_rows = [i for i, v in enumerate(yf_all) if v is not None and not acts["fit"][h][role][i].isnan().any()]
                yf = torch.tensor([yf_all[i] for i in fit_rows])
                shuffled = yf[torch.randperm(len(yf), generator=gen)]
                for s in sets:
                    ok = [i for i, v in enumerate(y[s][target]) if v is not None and not acts[s][h][role][i].isnan().any()]
                    if len(fit_rows) < min_rows or len(ok) < min_rows // 2:
                        for k in rows:
                            rows[k][s].append(None)
                        continue
                    ys = torch.tensor([y[s][target][i] for i in ok])
                    for k, src, labels_fit in (("trained", acts, yf), ("shuffled_labels", acts, shuffled),
                                               ("random_init", control, yf)):
                        rows[k][s].append(ridge_probe(src["fit"][h][role][fit_rows], labels_fit,
                                                      src[s][h][role][ok], ys, n_classes))
            for k in maps:
                for s in sets:
                    maps[k][s].append(rows[k][s])
        counted = [v for v in y[sets[-1]][target] if v is not None]
        out[target] = {**maps, "majority_baseline": Counter(counted).most_common(1)[0][1] / len(counted)
                       if counted else None}
    return out


SITE_TARGETS = {"family": "family", "meaning": "meaning", "joint": "ending"}


def choose_sites(maps, layers, roles):
    """The rule that picks each site, on *select* prompts only: the cell (layer, prompt role) whose
    probe beats the same probe on the random-init model by the most (family site: the rhyme family;
    meaning site: the meaning; joint site: the ending word itself, which needs both). Raw accuracy
    would pick the rhyme word's own token, where even random weights decode its family. Ties go to
    the later position, then the lower layer. Report-prompt accuracy and the random-init probe at
    the same cell come with each site."""
    out = {}
    for name, target in SITE_TARGETS.items():
        m = maps[target]
        j_of = {r: maps["roles"].index(r) for r in roles if r in maps["roles"]}
        sel, ctl = m["trained"]["select"], m["random_init"]["select"]
        cells = [(sel[l][j] - ctl[l][j], j, -l) for l in layers for j in j_of.values() if sel[l][j] is not None]
        if not cells:
            out[name] = None
            continue
        gain, j, neg_l = max(cells)
        layer = -neg_l
        out[name] = {"layer": layer, "role": maps["roles"][j], "target": target, "select": sel[layer][j],
                     "select_gain_over_random_init": gain, "report": m["trained"]["report"][layer][j],
                     "random_init_report": m["random_init"]["report"][layer][j],
                     "majority_baseline": m["majority_baseline"]}
    return out


def cell_favourite_rate(world, fit_l1s, fit_l2s, line1s, line2s):
    """The baseline of an ending-word probe: predict, for each prompt, the ending the model wrote most
    often on *fit* prompts of the same (meaning, family) cell. Greedy endings are nearly a function of
    the cell, so a probe that reads the cell alone scores this much with no word-level plan."""
    def cell(l1):
        p = parse_line1(l1, world.config)
        return NOUNS[p.cue].meaning, NOUNS[p.rhyme].family
    seen = {}
    for l1, l2 in zip(fit_l1s, fit_l2s):
        if well_formed(l2):
            seen.setdefault(cell(l1), Counter())[l2[-1]] += 1
    hits = [seen[cell(l1)].most_common(1)[0][0] == l2[-1] if cell(l1) in seen else False
            for l1, l2 in zip(line1s, line2s) if well_formed(l2)]
    return rate(hits)
