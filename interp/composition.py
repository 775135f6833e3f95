"""Is the plan composed from a meaning and a rhyme? A test that can pass.

The holdout split pairs a cue word with a rhyme family never seen together in training, while every
ending word it calls for *is* a trained ending (other cue words of the same meaning meet that family).
  behaviour        valid couplets on held-out pairs vs on seen pairs (same number of prompts)
  readable         meaning and family probes fit on seen prompts decode held-out prompts at the site
  additive         x ~ mu + a_meaning + b_family at the site: the share of the activation's variance
                   around mu that the additive fit (made on seen prompts) explains, on seen test
                   prompts and on held-out ones
"""
import torch

from couplet_rules import check_couplet, parse_line1, role_position
from lexicon import NOUNS, FAMILIES, MEANINGS
from interp.edits import activations, write_line2
from interp.probes import ridge_probe
from interp.stats import rate


def factors(world, line1s):
    out = []
    for l1 in line1s:
        p = parse_line1(l1, world.config)
        out.append((MEANINGS.index(NOUNS[p.cue].meaning), FAMILIES.index(NOUNS[p.rhyme].family)))
    return out


def site_acts(model, world, line1s, site):
    acts = activations(model, world, line1s, [[] for _ in line1s], [site.hook()])[site.hook()]
    return torch.stack([a[role_position(l1, site.role, world.config)] for a, l1 in zip(acts, line1s)])


def additive_fit(x, f):
    """mu, {meaning: a}, {family: b} by alternating least squares (a few sweeps converge)."""
    mu = x.mean(0)
    a = {m: torch.zeros_like(mu) for m, _ in f}
    b = {fa: torch.zeros_like(mu) for _, fa in f}
    for _ in range(10):
        for m in a:
            rows = [i for i, (mm, _) in enumerate(f) if mm == m]
            a[m] = torch.stack([x[i] - mu - b[f[i][1]] for i in rows]).mean(0)
        for fa in b:
            rows = [i for i, (_, ff) in enumerate(f) if ff == fa]
            b[fa] = torch.stack([x[i] - mu - a[f[i][0]] for i in rows]).mean(0)
    return mu, a, b


def explained(x, f, fit):
    mu, a, b = fit
    rows = [i for i, (m, fa) in enumerate(f) if m in a and fa in b]
    if not rows:
        return None
    pred = torch.stack([mu + a[f[i][0]] + b[f[i][1]] for i in rows])
    return 1 - ((x[rows] - pred) ** 2).sum().item() / ((x[rows] - mu) ** 2).sum().item()


def composition(model, world, fit, seen, site, n):
    held = [c.line1 for c in world.split("holdout")[:n]]
    seen = seen[:len(held)]
    out = {"holdout_pairs": [list(p) for p in world.holdout_pairs], "n": len(held)}
    if not held:
        return out
    for name, l1s in (("seen", seen), ("holdout", held)):
        l2s = write_line2(model, world, l1s)
        out[f"valid_{name}"] = rate([not check_couplet(a, b, world.config) for a, b in zip(l1s, l2s)])
    if site is None:
        return out
    has = lambda ls: [l for l in ls if role_position(l, site.role, world.config) is not None]
    fit, seen, held = has(fit), has(seen), has(held)
    xf, xs, xh = (site_acts(model, world, l, site) for l in (fit, seen, held))
    ff, fs, fh = factors(world, fit), factors(world, seen), factors(world, held)
    for k, name, n_classes in ((0, "meaning", len(MEANINGS)), (1, "family", len(FAMILIES))):
        yf = torch.tensor([f[k] for f in ff])
        out[f"probe_{name}_seen"] = ridge_probe(xf, yf, xs, torch.tensor([f[k] for f in fs]), n_classes)
        out[f"probe_{name}_holdout"] = ridge_probe(xf, yf, xh, torch.tensor([f[k] for f in fh]), n_classes)
    fit_ = additive_fit(xf, ff)
    out["additive_explained_seen"] = explained(xs, fs, fit_)
    out["additive_explained_holdout"] = explained(xh, fh, fit_)
    return out
