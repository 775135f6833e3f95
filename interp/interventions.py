"""Interventions at a site (one layer, one prompt position), judged by the line 2 the model writes.

  add_only     x += s * d_w           the study's "inject green": add a word's direction on top of
                                      the plan; beside it the same edit with a norm-matched random
                                      direction, at every scale s (a dose-response curve)
  steer        x += d_w - d_planned   move from the planned word's mean to w's (secondary)
  class_mean   x  = m_w               replace the site by w's class mean: a patch, not an injection
  suppress     x -= s * c_planned     remove the planned word's contrastive direction; the outcome
                                      of every prompt is classed, free and with the clean opener
                                      teacher-forced (a switch of the plan vs a switch through the opener)
  sweep        add_only of a word differing in one fact at every (layer, position), with directions
               fit there and each cell's scale chosen on select
  resample     keys and values of one position replaced by another prompt's (resample ablation)

Scales are chosen on *select* prompts and every rate is reported on *report* prompts.
"""
from dataclasses import dataclass
import random

from couplet_rules import parse_line1, role_position
from lexicon import NOUNS, valid_endings
from interp.directions import random_like
from interp.edits import Edit, ending, ending_logits, noop_fraction, write_line2, activations
from interp.stats import rate

SCALES = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0)


@dataclass(frozen=True)
class Site:
    layer: int
    role: str

    def hook(self):
        return f"blocks.{self.layer}.hook_resid_pre"

    def as_dict(self):
        return {"layer": self.layer, "role": self.role}


def _pos(world, line1, role):
    return role_position(line1, role, world.config)


def at_site(world, site, line1s, vectors, op="add"):
    """One Edit per prompt (None where the prompt lacks the site's role or the vector is None)."""
    out = []
    for l1, v in zip(line1s, vectors):
        p = _pos(world, l1, site.role)
        out.append(None if p is None or v is None else [Edit(site.hook(), p, v, op)])
    return out


KINDS = {  # what the injected word changes, relative to the planned ending
    "other_rhyme": lambda w, e: w.family != e.family and w.meaning == e.meaning,
    "other_meaning": lambda w, e: w.family == e.family and w.meaning != e.meaning,
    "two_facts": lambda w, e: w.family != e.family and w.meaning != e.meaning,
}


def injection_targets(world, line1s, endings, words, kind, seed=0):
    """A word to inject per prompt, among `words` (those with a direction), not in line 1, differing
    from the clean ending as KINDS[kind] says. None where the clean ending is not a noun or no word
    qualifies."""
    rng = random.Random(f"{seed}-{kind}")
    out = []
    for l1, e in zip(line1s, endings):
        if e not in NOUNS:
            out.append(None)
            continue
        ok = [w for w in sorted(words) if w not in l1 and KINDS[kind](NOUNS[w], NOUNS[e])]
        out.append(rng.choice(ok) if ok else None)
    return out


def hit_rate(model, world, line1s, edits, targets, forced=None):
    """rate of line 2s that end with the target word, over prompts with a target and an edit."""
    rows = [i for i, (e, t) in enumerate(zip(edits, targets)) if e is not None and t is not None]
    written = write_line2(model, world, [line1s[i] for i in rows], [edits[i] for i in rows],
                          [forced[i] for i in rows] if forced else None)
    return {**rate([ending(w) == targets[i] for w, i in zip(written, rows)]),
            "noop_fraction": noop_fraction(model, world, [line1s[i] for i in rows], [edits[i] for i in rows])}


def add_only(model, world, site, line1s, targets, dirs, scales=SCALES, seed=0):
    """{scale: {inject, random}}: rate of line 2s ending with the target after adding s * d_target
    (or s * a random direction of d_target's norm) at the site."""
    d = [dirs.get(t) if t else None for t in targets]
    rnd = [random_like(v, seed + i) if v is not None else None for i, v in enumerate(d)]
    out = {}
    for s in scales:
        out[str(s)] = {
            "inject": hit_rate(model, world, line1s, at_site(world, site, line1s, [v * s if v is not None else None
                                                                                 for v in d]), targets),
            "random": hit_rate(model, world, line1s, at_site(world, site, line1s, [v * s if v is not None else None
                                                                                 for v in rnd]), targets)}
    return out


def best_scale(curve, key="inject", control="random"):
    """The non-zero scale with the largest rate minus its control's rate (ties: the larger scale, so a
    sweep never runs at a scale that cannot act). Scale 0 is the no-op check, never chosen."""
    def margin(s):
        row = curve[s]
        return (row[key]["rate"] or 0) - ((row[control]["rate"] or 0) if control else 0), float(s)
    return max((s for s in curve if float(s) > 0), key=margin)


def secondary_rows(model, world, site, line1s, targets, endings, dirs, means):
    """The edits that are not injections, named for what they are: steer (d_w - d_planned) and
    replace-by-class-mean (m_w)."""
    steer = [dirs[t] - dirs[e] if t in dirs and e in dirs else None for t, e in zip(targets, endings)]
    replace = [means.get(t) if t else None for t in targets]
    return {"steer": hit_rate(model, world, line1s, at_site(world, site, line1s, steer), targets),
            "class_mean_replace": hit_rate(model, world, line1s, at_site(world, site, line1s, replace, "set"),
                                           targets)}


# ---- suppression ---------------------------------------------------------------------------------
def is_edit(v, tol=1e-6):
    """A vector that changes the residual: not exactly (or numerically) zero."""
    return v is not None and v.norm().item() > tol
OUTCOMES = ("same", "runner_up", "same_rhyme_other_meaning", "same_meaning_other_rhyme", "other")


def opener(line2):
    """The words of line 2 before its first article: what commits line 2's start."""
    i = next((k for k, w in enumerate(line2) if w in ("a", "an")), len(line2))
    return line2[:i]


def runner_ups(model, world, line1s, clean_l2s):
    """The model's own second choice per prompt: the highest-logit valid ending other than the clean
    one, at the ending position with the clean line 2 teacher-forced (None if none)."""
    logits = ending_logits(model, world, line1s, [l2[:-1] for l2 in clean_l2s])
    out = []
    for l1, l2, row in zip(line1s, clean_l2s, logits):
        p = parse_line1(l1, world.config)
        exclude = l1 if world.config.grammar == "list" and world.config.exclude_line1 else ()
        valid = [w for w in valid_endings(NOUNS[p.cue].meaning, p.rhyme, exclude) if w != ending(l2)]
        out.append(max(valid, key=lambda w: row[world.stoi[w]].item()) if valid else None)
    return out


def outcome(written, planned, runner):
    e = ending(written)
    if e == planned:
        return "same"
    if e == runner:
        return "runner_up"
    if e in NOUNS and NOUNS[e].family == NOUNS[planned].family:
        return "same_rhyme_other_meaning"
    if e in NOUNS and NOUNS[e].meaning == NOUNS[planned].meaning:
        return "same_meaning_other_rhyme"
    return "other"


def suppress(model, world, site, line1s, clean_l2s, runners, cdirs, scale):
    """Outcome counts of subtracting scale * c_planned at the site, free and with the clean opener
    teacher-forced; `runner_up_rate` of each, and how often the free opener changed. Only prompts whose
    edit exists count: a word alone in its cell with a direction has c_w = 0 exactly (counted apart,
    as `n_zero_edit`), and one without a direction has none (`n_no_direction`)."""
    with_dir = [i for i, l2 in enumerate(clean_l2s) if ending(l2) in cdirs and runners[i] is not None]
    rows = [i for i in with_dir if is_edit(cdirs[ending(clean_l2s[i])])]
    l1s = [line1s[i] for i in rows]
    edits = at_site(world, site, l1s, [-scale * cdirs[ending(clean_l2s[i])] for i in rows])
    norms = sorted(scale * cdirs[ending(clean_l2s[i])].norm().item() for i in rows)
    out = {"n": len(rows), "scale": scale, "n_zero_edit": len(with_dir) - len(rows),
           "n_no_direction": sum(runners[i] is not None for i in range(len(line1s))) - len(with_dir),
           "edit_norm": {"min": norms[0], "median": norms[len(norms) // 2], "max": norms[-1]} if norms else None}
    for mode, forced in (("free", None), ("opener_forced", [opener(clean_l2s[i]) for i in rows])):
        written = write_line2(model, world, l1s, edits, forced)
        kinds = [outcome(w, ending(clean_l2s[i]), runners[i]) for w, i in zip(written, rows)]
        out[mode] = {"counts": {k: kinds.count(k) for k in OUTCOMES},
                     "runner_up_rate": rate([k == "runner_up" for k in kinds]),
                     "valid_switch_rate": rate([k not in ("same", "other") for k in kinds])}
        if mode == "free":
            out[mode]["opener_changed"] = rate([opener(w) != opener(clean_l2s[i]) for w, i in zip(written, rows)])
    return out


# ---- the sweep -----------------------------------------------------------------------------------
def sweep(model, world, select, report, fit_dirs_at, layers, roles, site, scales=(1.0, 4.0), seed=0):
    """Add-only injection of each prompt's target at every (layer, role) cell, with directions fit at
    that cell (`fit_dirs_at(layer, role)` -> {word: d}). select / report: (line1s, targets). Each cell's
    scale is chosen on select (rate minus its random control), and so is the best cell other than the
    site; every reported rate is the report prompts' at the chosen scale, with its n and CI. The targets
    should differ from the plan in one fact, so every cell that holds that fact can write them."""
    grid, chosen, on_select = [], [], {}
    for layer in layers:
        row, srow = [], []
        for role in roles:
            dirs, cell = fit_dirs_at(layer, role), Site(layer, role)
            curve = {}
            for s in scales:
                d = [dirs.get(t) * s if t in dirs else None for t in select[1]]
                curve[str(s)] = {"inject": hit_rate(model, world, select[0], at_site(world, cell, select[0], d), select[1]),
                                 "random": hit_rate(model, world, select[0], at_site(
                                     world, cell, select[0], [random_like(v, seed + i) if v is not None else None
                                                              for i, v in enumerate(d)]), select[1])}
            s = float(best_scale(curve))
            on_select[(layer, role)] = curve[str(s)]["inject"]["rate"] or 0.0
            vecs = [dirs[t] * s if t in dirs else None for t in report[1]]
            row.append(hit_rate(model, world, report[0], at_site(world, cell, report[0], vecs), report[1]))
            srow.append(s)
        grid.append(row)
        chosen.append(srow)
    others = [c for c in on_select if Site(*c) != site]
    best = max(others, key=lambda c: (on_select[c], -c[0]), default=None)

    def at(c):
        return grid[layers.index(c[0])][roles.index(c[1])]
    has_site = site.layer in layers and site.role in roles
    return {"layers": [f"L{l}" for l in layers], "roles": list(roles), "scale": chosen,
            "rate": [[r["rate"] for r in row] for row in grid], "n": [[r["n"] for r in row] for row in grid],
            "site": site.as_dict(), "site_rate": at((site.layer, site.role)) if has_site else None,
            "best_other": None if best is None else {"layer": best[0], "role": best[1], "select": on_select[best],
                                                     **at(best)}}


# ---- resample ablation ---------------------------------------------------------------------------
def resample(model, world, line1s, clean_l2s, roles, seed=0):
    """{role: outcome rates}: keys and values of every layer at that position replaced by those of
    another report prompt of the same length (a different line 1, so a different plan). Outcomes:
    the ending kept, another valid ending of A's line 1, or neither."""
    rng = random.Random(seed)
    by_len = {}
    for i, l1 in enumerate(line1s):
        by_len.setdefault(len(l1), []).append(i)
    donors = [rng.choice([j for j in by_len[len(l1)] if line1s[j] != l1] or [None]) for l1 in line1s]
    hooks = [f"blocks.{l}.attn.hook_{kv}" for l in range(model.cfg.n_layer) for kv in ("k", "v")]
    rows = [i for i, d in enumerate(donors) if d is not None]
    cache = activations(model, world, [line1s[donors[i]] for i in rows], [[] for _ in rows], hooks)
    out = {}
    for role in roles:
        edits, keep = [], []
        for r, i in enumerate(rows):
            p = _pos(world, line1s[i], role)
            if p is not None:
                keep.append(i)
                edits.append([Edit(h, p, cache[h][r][p]) for h in hooks])
        written = write_line2(model, world, [line1s[i] for i in keep], edits)
        kinds = []
        for w, i in zip(written, keep):
            p = parse_line1(line1s[i], world.config)
            exclude = line1s[i] if world.config.grammar == "list" and world.config.exclude_line1 else ()
            valid = valid_endings(NOUNS[p.cue].meaning, p.rhyme, exclude)
            kinds.append("kept" if ending(w) == ending(clean_l2s[i]) else "other_valid" if ending(w) in valid
                         else "invalid")
        out[role] = {**{k: rate([x == k for x in kinds]) for k in ("kept", "other_valid", "invalid")},
                     "noop_fraction": noop_fraction(model, world, [line1s[i] for i in keep], edits)}
    return out
