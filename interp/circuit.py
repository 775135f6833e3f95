"""The circuit, head by head: which attention heads move each fact to where it is used, and what each one reads.

The study says *where* a fact is used (positions, layers); this module says *how it moves*: a small set of
attention heads, each with a job read from its attention pattern, shown enough (faithfulness) and necessary
(complement) beside random heads of the same number (Wang et al. 2022's faithfulness and completeness, in
miniature; Ma & Rui 2026 path-patch rhyme routing down to five heads of Gemma-3-27B). A head's output at one
position is its hook_z there (d_head numbers); a head set S is copied between runs with `Edit(..., head=h)`
(interp/heads.py).

The algorithm:
  1. Pairs. Rhyme-swap and cue-swap pairs (prompts.swap_pairs), the ones patching.pair_runs keeps: two
     different clean endings, A's line 2 teacher-forced up to the word that commits to the ending. Select
     pairs choose every set; report pairs give every number.
  2. The re-read route (the ending). effect(S): copy the hook_z of every head in S at the position that
     predicts the ending from B's run (A's line 2, B's line 1) into A's, and take the normalized logit
     difference of patching.py pooled over pairs (ratio of sums, bootstrap interval). All heads give exactly
     1: that position's own token is the same in both runs, so its whole column becomes B's (asserted). No
     head gives 0.
  3. Greedy, on select pairs: from the empty set, add the head whose addition raises effect(S) most (ties: the
     lower layer, then the lower head), until effect(S) >= TARGET or MAX_HEADS heads. Each step is one
     batched run over every candidate set and pair.
  4. Report pairs, one batched run: faithfulness = effect(S); complement = effect(every head but S); the
     control, N_RANDOM seeded random sets of |S| heads (never S itself): their mean with a bootstrap interval
     over pairs and [min, max] over sets; each head alone; top-1, the share of pairs whose patched argmax is
     B's ending word (what the model would write there).
  5. Jobs. Each head's attention from the position it writes at, in A's clean runs of report pairs, summed by
     token role (couplet_rules.roles) and averaged over pairs. A head's job label is read from it:
     "L1H2: rhyme -> ending" (the roles that hold half its attention, at most two).
  6. The shape route (the line break), on shape.length_pairs' pairs: S's hook_z at the line break copied from
     B's prompt run into A's, line 2 written freely and judged by shape.donor_valid (a valid couplet at the
     donor's length). Relative to all heads at the line break (which is its whole column: the embedding is the
     same token): faithfulness = valid couplets at the donor's length with S over those with all heads,
     pooled over pairs. Greedy on select; complement and random sets on report. For each head alone, two
     rates: the opener's first word becomes B's (the token; pairs whose first words differ) and a valid
     couplet at the donor's length (the length). The mediated path's readers: each head's attention from the
     position that predicts the ending on the opener's words, in A's clean couplets.
  7. Ablation, beside the path patching: at the ending position of report prompts (their clean line 2s
     teacher-forced), the circuit's heads (the rhyme and cue sets together) and random sets of that size set
     to zero / to their mean over report prompts / to another report prompt's (one with another clean ending).
     Measured: how often the clean ending stays the argmax, and the drop of its logit difference to the clean
     runner-up (pooled, over the clean difference). The result says whether the answer "the circuit hurts more
     than random sets of its size" (its drop above their pooled drop's 95% interval) depends on the ablation.
"""
import math
import random
import time

import torch

from couplet_rules import commit_split
from data import ROLES
from interp.edits import ending_logits, ending_logits_per_set, write_line2
from interp.heads import (all_heads, attention_and_z, attention_table, head_edits, head_name, heads_string, job,
                          parse_heads)
from interp.patching import ld, pair_runs
from interp.prompts import well_formed
from interp import shape
from interp.stats import rate, ratio_of_sums

TARGET = 0.9      # the greedy stops once its set moves this much of what all heads move (on select pairs)
MAX_HEADS = 6     # ... or at this many heads
N_RANDOM = 20     # random head sets of the circuit's size: the control
N_RANDOM_ABLATION = 10  # ... beside each ablation of the circuit
ABLATIONS = ("zero", "mean", "resample")
OPENER = ("l2_open1", "l2_open2", "l2_open3", "l2_open4")  # line 2's opener: what the mediated path writes


# ---- the search ---------------------------------------------------------------------------------------------
def greedy(score, candidates, target=TARGET, max_size=MAX_HEADS):
    """(chosen heads, each step's score): from no head, add the candidate whose addition scores most
    (`score(list of sets) -> list of numbers, or of tuples whose first element is the score and the rest break
    ties`; ties left: the earlier candidate) until the score reaches `target` or `max_size` heads."""
    key = lambda v: (-math.inf,) if v is None or (isinstance(v, tuple) and v[0] is None) else \
        (v if isinstance(v, tuple) else (v,))
    chosen, steps = [], []
    while len(chosen) < max_size:
        rest = [c for c in candidates if c not in chosen]
        if not rest:
            break
        vals = score([chosen + [c] for c in rest])
        k = max(range(len(rest)), key=lambda k: (key(vals[k]), -k))
        chosen.append(rest[k])
        steps.append(key(vals[k])[0] if key(vals[k])[0] != -math.inf else None)
        if steps[-1] is not None and steps[-1] >= target:
            break
    return chosen, steps


def random_sets(candidates, size, avoid, n=N_RANDOM, seed=0):
    """n seeded random sets of `size` candidates (sorted), none equal to `avoid`; [] when no other set exists."""
    others = math.comb(len(candidates), size) - (len(set(avoid)) == size and set(avoid) <= set(candidates))
    if size == 0 or others < 1:
        return []
    rng, avoid, out = random.Random(f"{seed}-random-heads-{size}"), sorted(avoid), []
    while len(out) < n:
        s = sorted(rng.sample(list(candidates), size))
        if s != avoid:
            out.append(s)
    return out


def pooled(nums, den, seed=0):
    """A control over several head sets: per pair, the mean over sets of the patched change (nums: one list per
    set), pooled over pairs (ratio of sums, so the value is the mean of the sets' effects) with a bootstrap
    interval over pairs; `range` = [min, max] of the sets' own effects."""
    if not nums:
        return {"value": None, "n": len(den), "ci": [None, None], "range": None, "n_sets": 0}
    mean = [sum(col) / len(nums) for col in zip(*nums)]
    each = [v for v in (_value(x, den) for x in nums) if v is not None]
    return {**ratio_of_sums(mean, den, seed), "range": [min(each), max(each)] if each else None, "n_sets": len(nums)}


def _value(num, den):
    return sum(num) / sum(den) if den and sum(den) > 0 else None


class HeadPairs:
    """A-B pairs patched at one position each (`pos`): every head's hook_z there in A's run (za) and B's (zb),
    and A's attention from there by role (`masses`, when asked)."""

    def __init__(self, model, world, a, b, prefixes, pos, pattern=False):
        self.n, self.pos = len(a), pos
        self.za, self.masses = attention_and_z(model, world, a, prefixes, pos, pattern)
        self.zb, _ = attention_and_z(model, world, b, prefixes, pos, False)

    def noop(self, heads):
        """Share of pairs where every head of the set outputs the same in A's and B's run (the patch is a no-op)."""
        return sum(all(torch.equal(self.za[i, l, h], self.zb[i, l, h]) for l, h in heads)
                   for i in range(self.n)) / self.n if self.n else None

    def noop_of(self, sets):
        return sum(self.noop(s) for s in sets) / len(sets) if sets and self.n else None


# ---- 2-5. the re-read route: heads at the position that predicts the ending ---------------------------------
class EndingPairs(HeadPairs):
    """A PairRun (patching.pair_runs) with what a head patch needs: the position that predicts the ending, and
    every head's hook_z there in A's and in B's run (A's line 2 in both)."""

    def __init__(self, model, world, pairs, clean, pattern=False):
        self.run = run = pair_runs(model, world, pairs, clean)
        super().__init__(model, world, run.a, run.b, run.prefix, [len(r) - 1 for r in run.roles], pattern)
        self.den = [b - a for a, b in zip(run.ld_a, run.ld_b)]

    def patched(self, model, world, sets):
        """For each head set: (per-pair change of LD from A's, per-pair argmax is B's word): one batched run, the
        tokens before the patched position run once (edits.ending_logits_per_set)."""
        if not sets or not self.n:
            return [([], []) for _ in sets]
        run = self.run
        logits = ending_logits_per_set(model, world, run.a, run.prefix,
                                       [[head_edits(s, self.pos[i], self.zb[i]) for i in range(self.n)] for s in sets])
        return [([x - a for x, a in zip(ld(lg, run.ea, run.eb), run.ld_a)], (lg.argmax(-1) == run.eb).tolist())
                for lg in logits]

    def effect(self, num, heads, seed=0):
        return {**ratio_of_sums(num, self.den, seed), "noop_fraction": self.noop(heads)}

    def check(self, num):
        """A reference without an interval: all heads (1 by construction) or none (0)."""
        return {"value": _value(num, self.den), "n": self.n}


def ending_route(model, world, select, report, clean, seed=0, n_random=N_RANDOM):
    """The heads that move one fact (rhyme or cue swap pairs) into the position that predicts the ending:
    chosen greedily on `select` pairs, every number on `report` pairs (steps 2-5 of the module docstring)."""
    heads = all_heads(model.cfg)
    sel = EndingPairs(model, world, select, clean)
    if not sel.n or sum(sel.den) <= 0:
        return {"skipped": "no select pair with two different clean endings that B's prompt moves"}
    chosen, steps = greedy(lambda sets: [_value(num, sel.den) for num, _ in sel.patched(model, world, sets)], heads)
    rep = EndingPairs(model, world, report, clean, pattern=True)
    if not rep.n or sum(rep.den) <= 0:
        return {"skipped": "no report pair with two different clean endings that B's prompt moves"}
    comp = [h for h in heads if h not in chosen]
    randoms = random_sets(heads, len(chosen), chosen, n_random, seed)
    fixed = [chosen, comp, heads, []]
    out = rep.patched(model, world, fixed + [[h] for h in heads] + randoms)
    (s_num, s_top), (c_num, c_top), (a_num, a_top), (n_num, _) = out[:4]
    every = rep.check(a_num)
    if every["value"] is not None:  # that position's whole column is B's: the measure's own check
        assert abs(every["value"] - 1) < 1e-3, f"all heads at the ending position move {every['value']}, not 1"
    table = attention_table(rep.masses, heads)
    labels = {head_name(h): job(head_name(h), table["roles"], table["attention"][head_name(h)], "ending")
              for h in heads}
    return {"heads": [head_name(h) for h in chosen], "select_steps": steps, "n_select": sel.n,
            "n_pairs": rep.n, "n_dropped": rep.run.n_dropped,
            "faithfulness": rep.effect(s_num, chosen, seed), "complement": rep.effect(c_num, comp, seed),
            "all": every, "none": rep.check(n_num),
            "random": {**pooled([num for num, _ in out[4 + len(heads):]], rep.den, seed), "size": len(chosen),
                       "noop_fraction": rep.noop_of(randoms)},
            "top1": rate(s_top), "top1_complement": rate(c_top), "top1_all": rate(a_top),
            "single": {head_name(h): _value(num, rep.den) for h, (num, _) in zip(heads, out[4:4 + len(heads)])},
            **table, "jobs": {k: v[0] for k, v in labels.items()}, "reads": {k: v[1] for k, v in labels.items()}}


# ---- 6. the shape route: heads at the line break ------------------------------------------------------------
class ShapePairs(HeadPairs):
    """length_pairs rows (a, b, a's clean line 2, b's) with every head's hook_z at the line break of both prompts."""

    def __init__(self, model, world, rows, pattern=False):
        self.rows, self.a = rows, [r[0] for r in rows]
        super().__init__(model, world, self.a, [r[1] for r in rows], [[] for _ in rows],
                         [len(world.prompt_ids(a)) - 1 for a in self.a], pattern)
        self.eligible = [i for i, r in enumerate(rows) if shape.donor_eligible(world, r)]
        self.first_differs = [i for i, r in enumerate(rows) if r[2][:1] != r[3][:1]]

    def written(self, model, world, sets):
        """For each head set: (per pair a valid couplet at the donor's length, per pair line 2's first word is
        B's), line 2 written freely, one batched run."""
        if not sets or not self.n:
            return [([], []) for _ in sets]
        rows = [i for _ in sets for i in range(self.n)]
        edits = [head_edits(s, self.pos[i], self.zb[i]) for s in sets for i in range(self.n)]
        out = write_line2(model, world, [self.a[i] for i in rows], edits)
        res = []
        for k in range(len(sets)):
            w = out[k * self.n:(k + 1) * self.n]
            res.append(([shape.donor_valid(world, self.rows[i], w[i]) for i in self.eligible],
                        [w[i][:1] == self.rows[i][3][:1] for i in self.first_differs]))
        return res


def shape_route(model, world, select_rows, report_rows, seed=0, n_random=N_RANDOM):
    """The heads at the line break that write line 2's shape (step 6 of the module docstring)."""
    heads = all_heads(model.cfg)
    sel = ShapePairs(model, world, select_rows)
    (sel_all, _), = sel.written(model, world, [heads])
    if not sum(sel_all):  # no circuit to look for; how far all heads move the length on report pairs still counts
        rep = ShapePairs(model, world, report_rows)
        (rep_all, rep_token), = rep.written(model, world, [heads])
        return {"skipped": "all heads at the line break write no valid couplet at the donor's length on select pairs",
                "n_select": sel.n, "n_pairs": rep.n, "length": {"all": rate(rep_all)}, "token": {"all": rate(rep_token)}}

    def score(sets):
        return [(_value([float(x) for x in v], [float(x) for x in sel_all]), sum(t)) for v, t in
                sel.written(model, world, sets)]
    chosen, steps = greedy(score, heads)
    rep = ShapePairs(model, world, report_rows, pattern=True)
    comp = [h for h in heads if h not in chosen]
    randoms = random_sets(heads, len(chosen), chosen, n_random, seed)
    out = rep.written(model, world, [chosen, comp, heads, []] + [[h] for h in heads] + randoms)
    (s_v, s_t), (c_v, c_t), (a_v, a_t), (n_v, n_t) = out[:4]
    den = [float(x) for x in a_v]
    rel = lambda v: ratio_of_sums([float(x) for x in v], den, seed)
    table = attention_table(rep.masses, heads) if rep.n else {"roles": [], "attention": {}}
    labels = {head_name(h): job(head_name(h), table["roles"], table["attention"][head_name(h)], "nl")
              for h in heads} if rep.n else {}
    return {"heads": [head_name(h) for h in chosen], "select_steps": steps, "n_select": sel.n, "n_pairs": rep.n,
            "n_eligible": len(rep.eligible), "n_first_differs": len(rep.first_differs),
            "faithfulness": {**rel(s_v), "noop_fraction": rep.noop(chosen)},
            "complement": {**rel(c_v), "noop_fraction": rep.noop(comp)},
            "random": {**pooled([[float(x) for x in v] for v, _ in out[4 + len(heads):]], den, seed),
                       "size": len(chosen), "noop_fraction": rep.noop_of(randoms)},
            "length": {"circuit": rate(s_v), "complement": rate(c_v), "all": rate(a_v), "none": rate(n_v)},
            "token": {"circuit": rate(s_t), "complement": rate(c_t), "all": rate(a_t), "none": rate(n_t)},
            "single": {head_name(h): {"length": rate(v), "token": rate(t)}
                       for h, (v, t) in zip(heads, out[4:4 + len(heads)])},
            **table, "jobs": {k: v[0] for k, v in labels.items()}, "reads": {k: v[1] for k, v in labels.items()}}


def opener_readers(model, world, rows):
    """The mediated path's readers: each head's attention from the position that predicts the ending on the
    opener's words (l2_open*), in A's clean couplets of these rows (well-formed ones), averaged over them."""
    keep = [r for r in rows if well_formed(r[2])]
    if not keep:
        return {"n": 0, "mass": {}, "readers": []}
    prefixes = [commit_split(r[2])[0] for r in keep]
    pos = [len(world.prompt_ids(r[0])) + len(p) - 1 for r, p in zip(keep, prefixes)]
    _, masses = attention_and_z(model, world, [r[0] for r in keep], prefixes, pos)
    idx = [ROLES.index(r) for r in OPENER]
    mass = {head_name(h): round(float(masses[h[0], h[1], idx].sum()), 4) for h in all_heads(model.cfg)}
    return {"n": len(keep), "mass": mass, "readers": sorted((k for k, v in mass.items() if v >= 0.2),
                                                            key=lambda k: -mass[k])}


# ---- 7. ablation beside patching ----------------------------------------------------------------------------
def ablation(model, world, line1s, line2s, circuit_heads, seed=0, n_random=N_RANDOM_ABLATION):
    """Zero, mean and resample ablation of the circuit's heads (and of random sets of its size) at the position
    that predicts the ending, each prompt's clean line 2 teacher-forced (step 7 of the module docstring)."""
    keep = [i for i, x in enumerate(line2s) if well_formed(x)]
    if not keep or not circuit_heads:
        return {"skipped": "no circuit head or no well-formed clean line 2", "n": len(keep)}
    a = [line1s[i] for i in keep]
    prefix = [commit_split(line2s[i])[0] for i in keep]
    e = torch.tensor([world.stoi[commit_split(line2s[i])[1]] for i in keep])
    pos = [len(world.prompt_ids(x)) + len(p) - 1 for x, p in zip(a, prefix)]
    z, _ = attention_and_z(model, world, a, prefix, pos, False)
    clean = ending_logits(model, world, a, prefix)
    rows = torch.arange(len(a))
    runner = clean.scatter(1, e[:, None], -math.inf).argmax(-1)
    ld_clean = (clean[rows, e] - clean[rows, runner]).tolist()
    rng, ends = random.Random(f"{seed}-ablation-donors"), e.tolist()
    donors = [rng.choice([j for j in range(len(a)) if ends[j] != ends[i]] or [i]) for i in range(len(a))]
    heads = all_heads(model.cfg)
    randoms = random_sets(heads, len(circuit_heads), circuit_heads, n_random, seed)
    sets = [circuit_heads] + randoms
    zero, mean = torch.zeros_like(z[0]), z.mean(0)
    value = {"zero": lambda i: zero, "mean": lambda i: mean, "resample": lambda i: z[donors[i]]}
    out = {"n": len(a), "heads": heads_string(circuit_heads), "size": len(circuit_heads), "n_random": len(randoms)}
    n = len(a)
    for kind in ABLATIONS:
        logits = ending_logits_per_set(model, world, a, prefix,
                                       [[head_edits(s, pos[i], value[kind](i)) for i in range(n)] for s in sets])
        res = [((lg.argmax(-1) == e).tolist(),
                [c - d for c, d in zip(ld_clean, (lg[rows, e] - lg[rows, runner]).tolist())]) for lg in logits]
        (c_surv, c_drop), rnd = res[0], res[1:]
        out[kind] = {"survival": rate(c_surv), "drop": ratio_of_sums(c_drop, ld_clean, seed),
                     "random_survival": {"rate": sum(sum(s) for s, _ in rnd) / (n * len(rnd)) if rnd else None,
                                         "range": [min(sum(s) / n for s, _ in rnd), max(sum(s) / n for s, _ in rnd)]
                                         if rnd else None},
                     "random_drop": pooled([d for _, d in rnd], ld_clean, seed)}
        r, c = out[kind]["random_drop"], out[kind]["drop"]["value"]
        out[kind]["specific"] = None if r["ci"][1] is None or c is None else c > r["ci"][1]
    out["verdict"] = ablation_verdict(out)
    return out


def ablation_verdict(out):
    """Whether the circuit's answer depends on the ablation, from the numbers: "specific" under an ablation when
    the circuit's heads drop the clean ending's logit difference more than random sets of their size do (above
    the 95% interval of the random sets' pooled drop)."""
    spec = {k: out[k]["specific"] for k in ABLATIONS if out[k]["specific"] is not None}
    surv = {k: out[k]["survival"]["rate"] for k in ABLATIONS}
    span = (f"the clean ending survives in {', '.join(f'{surv[k]:.2f} ({k})' for k in ABLATIONS if surv[k] is not None)}"
            if any(v is not None for v in surv.values()) else "no survival measured")
    if not spec:
        return {"depends": None, "text": f"no random set to compare with; {span}"}
    yes = [k for k, v in spec.items() if v]
    depends = 0 < len(yes) < len(spec)
    if depends:
        text = (f"depends on the ablation: the circuit hurts more than random sets of its size under "
                f"{', '.join(yes)} but not under {', '.join(k for k in spec if k not in yes)}; {span}")
    else:
        text = (f"the same under every ablation: the circuit {'hurts' if yes else 'does not hurt'} more than "
                f"random sets of its size under {', '.join(spec)}; {span}")
    return {"depends": depends, "specific": spec, "text": text}


# ---- the experiment -------------------------------------------------------------------------------------------
def circuit(model, world, swap, length_pairs, report_line1s, report_line2s, clean, seed=0, n_random=N_RANDOM):
    """The whole head-level analysis of one model. swap: {slot: (select pairs, report pairs)} for "rhyme" and
    "cue"; length_pairs: {"select": (donors, controls), "report": ...} (shape.length_pairs) or None in a world
    without a meter."""
    t0 = time.time()
    out = {slot: ending_route(model, world, *swap[slot], clean, seed, n_random) for slot in ("rhyme", "cue")}
    if length_pairs is None:
        out["shape"] = {"skipped": "this world has no meter: line 2's opener does not depend on the ending"}
    else:
        out["shape"] = shape_route(model, world, length_pairs["select"][0], length_pairs["report"][0], seed, n_random)
        out["shape"]["readers"] = opener_readers(model, world, length_pairs["report"][0])
    union = [h for slot in ("rhyme", "cue") for h in parse_heads("+".join(out[slot].get("heads", [])))]
    out["ablation"] = ablation(model, world, report_line1s, report_line2s, list(dict.fromkeys(union)), seed)
    out["seconds"] = round(time.time() - t0, 2)
    return out


# ---- what the headline and the page read ---------------------------------------------------------------------
ROUTES = ("rhyme", "cue", "shape")


def headline_part(c, put, h):
    """The circuit's headline numbers (interp/headline.py): per route its heads and what each reads (site keys),
    faithfulness, complement and the random sets (each with n and a 95% interval), all heads at the line break
    (shape), and the ablation verdict."""
    if not c:
        return
    for route in ROUTES:
        r = c.get(route) or {}
        if "heads" not in r:
            continue
        h[f"circuit_{route}_heads"] = "+".join(r["heads"])
        h[f"circuit_{route}_reads"] = "+".join(r["reads"][k] or "?" for k in r["heads"])
        put(f"circuit_{route}_faithfulness", r["faithfulness"], "value")
        put(f"circuit_{route}_complement", r["complement"], "value")
        put(f"circuit_{route}_random", r["random"], "value")
    sh = c.get("shape") or {}
    if "length" in sh:
        put("circuit_shape_all_rate", sh["length"]["all"])
    v = (c.get("ablation") or {}).get("verdict")
    if v:
        h["circuit_ablation"] = v["text"]


def prediction_checks(pred, seed, n_layer):
    """{check: True / False / None (not measured or not predicted)} of a model's circuit prediction
    (worlds.CIRCUIT_PREDICTIONS) against one seed's headline."""
    out = {}
    for slot in ("rhyme", "cue"):
        reads = (seed.get(f"circuit_{slot}_reads") or "").split("+")
        roles = (pred.get("reads") or {}).get(slot)
        out[f"{slot} reads"] = None if not roles or not reads[0] else reads[0] in roles
        k, heads = (pred.get("max_heads") or {}).get(slot), seed.get(f"circuit_{slot}_heads")
        faith = seed.get(f"circuit_{slot}_faithfulness")
        out[f"{slot} heads"] = None if k is None or heads is None or faith is None else \
            len(parse_heads(heads)) <= k and faith >= 0.8
    moves, all_rate = pred.get("shape_moves"), seed.get("circuit_shape_all_rate")
    out["shape moves"] = None if moves is None or all_rate is None else (all_rate >= 0.2) == moves
    where, heads = pred.get("shape_layers"), seed.get("circuit_shape_heads")
    out["shape layers"] = None if where is None or not heads else \
        all((l >= n_layer / 2) == (where == "late") for l, _ in parse_heads(heads))
    verdict, expect = seed.get("circuit_ablation"), pred.get("ablation_depends")
    out["ablation"] = None if expect is None or not verdict or verdict.startswith("no random") else \
        verdict.startswith("depends") == expect
    return out
