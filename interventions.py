"""Interventions at a planning site, the study's experiments in miniature: planned-word
directions, injection ("green"), suppression ("rabbit -> habit"), the position sweep and backward
planning. Every scale is chosen on calibration prompts and every rate reported on held-out ones.
"""
from collections import Counter

from data import NOUNS, valid_endings
import planning as P


def run_interventions(model, world, site, fit, held_lines, calib_lines, seed=0):
    """Directions, injection (steer and add-only), suppression, position sweep and backward planning
    at one site. Scales are picked on `calib_lines`, rates reported on `held_lines`."""
    dirs, mu, counts = P.planned_word_directions(model, world, fit, site)
    res = {"directions": {"method": "mean difference at the site (mean over prompts ending in w - mean over all)",
                          "n_words": len(dirs), "fit_prompts": len(fit)}}
    if len(dirs) < 2:  # a model too weak to write any ending 5 times: nothing to intervene with
        raise P.AnalysisError(f"only {len(dirs)} ending words have a direction; train the model longer or raise --n-fit")
    held_l2 = P.complete(model, world, held_lines)
    held = [(l, P.ending(l2), l2) for l, l2 in zip(held_lines, held_l2) if P.ending(l2) in NOUNS]
    # injection: scale picked on calibration prompts, reported on held-out ones
    calib_end = [P.ending(l) for l in P.complete(model, world, calib_lines)]
    calib = [(l, e) for l, e in zip(calib_lines, calib_end) if e in NOUNS]
    c_words = P.pick_injections([c[0] for c in calib], [c[1] for c in calib], dirs, seed + 7)

    c_lines, c_end = [c[0] for c in calib], [c[1] for c in calib]

    def inj_rate(scale, steer=True):
        out = P.inject(model, world, c_lines, site, c_words, dirs, scale, planned=c_end if steer else None)
        return sum(P.ending(o) == w for o, w in zip(out, c_words)) / len(c_words)
    scale, grid = P.calibrate([0.5, 1.0, 2.0, 4.0], inj_rate)
    add_scale, add_grid = P.calibrate([1.0, 2.0, 4.0, 8.0, 16.0], lambda s: inj_rate(s, steer=False))
    lines, planned = [h[0] for h in held], [h[1] for h in held]
    words = P.pick_injections(lines, planned, dirs, seed)
    injected = P.inject(model, world, lines, site, words, dirs, scale, planned=planned)
    added = P.inject(model, world, lines, site, words, dirs, add_scale)
    hits = [P.ending(o) == w for o, w in zip(injected, words)]
    res["injection"] = {**P.rate(hits), "site_rate": P.rate(hits)["rate"], "method": "steer: + scale x (d_injected - d_planned)",
                        "scale": scale, "calibration": grid,
                        "add_only": {**P.rate([P.ending(o) == w for o, w in zip(added, words)]), "scale": add_scale,
                                     "calibration": add_grid},
                        "examples": [{"line1": " ".join(l), "before": " ".join(h[2]), "after": " ".join(o), "injected": w}
                                     for l, h, o, w in list(zip(lines, held, injected, words))[:4]]}
    # specificity: injected word vs the most common other outcome
    res["directions"]["specific_share"] = _specificity(injected, words)
    # suppression on prompts whose world allows a runner-up
    two = [h for h in held if len(valid_endings(NOUNS[h[0][3]].meaning, h[0][-1])) >= 2]
    c_two = [c for c in calib if len(valid_endings(NOUNS[c[0][3]].meaning, c[0][-1])) >= 2]

    def sup_switch(outs, items):
        return [P.ending(o) != e and P.ending(o) in valid_endings(NOUNS[l[3]].meaning, l[-1])
                for o, (l, e, *_) in zip(outs, items)]

    def sup_rate(s):
        outs = P.suppress(model, world, [c[0] for c in c_two], site, [c[1] for c in c_two], dirs, mu, s)
        return sum(sup_switch(outs, c_two)) / max(1, len(c_two))
    s_scale, s_grid = P.calibrate([1.0, 2.0, 4.0, 8.0], sup_rate)
    suppressed = P.suppress(model, world, [h[0] for h in two], site, [h[1] for h in two], dirs, mu, s_scale)
    sw = sup_switch(suppressed, two)
    one = [h for h in held if len(valid_endings(NOUNS[h[0][3]].meaning, h[0][-1])) == 1]
    one_out = P.suppress(model, world, [h[0] for h in one], site, [h[1] for h in one], dirs, mu, s_scale)
    outcome = _outcomes([h[0] for h in one], [h[1] for h in one], one_out)
    res["suppression"] = {**P.rate(sw), "switch_rate": P.rate(sw)["rate"], "scale": s_scale, "calibration": s_grid,
                          "single_ending_prompts": {"n": len(one), "outcomes": outcome},
                          "examples": [{"line1": " ".join(h[0]), "before": " ".join(h[2]), "after": " ".join(o)}
                                       for h, o, s in zip(two, suppressed, sw) if s][:4]}
    # position sweep: the same injection at one position at a time
    roles = P.role_order(lines)
    by_role = {}
    for role in roles:
        sel = [i for i, l in enumerate(lines) if role in P.prompt_roles(l)]
        out = P.inject(model, world, [lines[i] for i in sel], site, [words[i] for i in sel], dirs, scale, role,
                       planned=[planned[i] for i in sel])
        by_role[role] = P.rate([P.ending(o) == words[i] for o, i in zip(out, sel)])
    site_rate = by_role[site["position"]]["rate"]
    other = max(v["rate"] for r, v in by_role.items() if r != site["position"])
    floor = 1 / len(lines)
    res["sweep"] = {"layer": site["layer"], "rates_by_position": {r: v["rate"] for r, v in by_role.items()},
                    "n_by_position": {r: v["n"] for r, v in by_role.items()},
                    "site_to_best_other_ratio": site_rate / max(other, floor), "best_other_rate": other}
    # backward planning
    res["backward"] = {"injection": P.backward_stats(lines, [h[2] for h in held], injected),
                       "suppression": P.backward_stats([h[0] for h in two], [h[2] for h in two], suppressed)}
    res["sweep"]["by_position_with_ci"] = by_role
    return res


def _specificity(outs, words):
    """Share of injected words that are the single most common ending among their own injections."""
    per = {}
    for o, w in zip(outs, words):
        per.setdefault(w, []).append(P.ending(o))
    ok = [max(set(v), key=v.count) == w for w, v in per.items()]
    return sum(ok) / max(1, len(ok))


def _outcomes(lines, before, after):
    from collections import Counter
    kinds = Counter()
    for l, b, a in zip(lines, before, after):
        e = P.ending(a)
        if e == b:
            kinds["same ending"] += 1
        elif e in NOUNS and NOUNS[e].family == NOUNS[l[-1]].family:
            kinds["same rhyme, other meaning"] += 1
        elif e in NOUNS and NOUNS[e].meaning == NOUNS[l[3]].meaning:
            kinds["same meaning, other rhyme"] += 1
        else:
            kinds["other"] += 1
    return dict(kinds)
