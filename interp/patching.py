"""Activation patching, measured as a normalized logit difference.

Take two line 1s that differ in one word, A and B (a rhyme swap or a cue swap), with their clean
endings e_A != e_B. Hold A's own line 2 (minus its ending) teacher-forced, so every run predicts the
ending from the same line-2 words (with the `epithet` option, e_A and e_B are the epithets, the first
words that commit to the ending: `couplet_rules.commit_split`):

    LD(run)  = logit[e_B] - logit[e_A]   at the position that predicts the ending
    runs     A (prompt A), B (prompt B), and A with B's activations copied in at some places
    effect   = sum over pairs (LD_patched - LD_A) / sum over pairs (LD_B - LD_A)

0 means the patch left A's preference untouched, 1 that it moved it as far as B's own prompt does
(given A's line 2). Pooling over pairs before dividing keeps pairs with a tiny denominator from
dominating; the 95% interval is a bootstrap over pairs.

Two kinds of patch, at every position of the prompt and of line 2 (the "smeared" question):
  single: the residual entering one layer l at that position (keys/values of layers < l stay A's);
  column: the residual entering every layer, and the final one: the position's whole computation
          is B's. `column_from1` keeps the token's own embedding (layer 0) and patches layers >= 1,
          so for the word that differs it asks "is what was computed there *after* reading the
          token used?", not "is the token used?".
Beside the LD, `top1`: the share of pairs whose freely written line 2 ends in e_B after a column
patch at a prompt position.
"""
from dataclasses import dataclass

import torch

from data import ROLES

# One bar for "a position carries a fact", used by the search, the study and the page: its column
# moves the ending at least this far (normalized LD); below WEAK it is "not used". Every per-seed LD
# is shown with its bootstrap interval, so a value near the bar reads as the coin toss it is.
CARRIES = 0.8
WEAK = 0.2
from couplet_rules import commit_split, roles
from interp.edits import Edit, activations, ending_logits, resid_hooks, write_line2
from interp.prompts import Clean, swap_pairs, well_formed
from interp.stats import rate, ratio_of_sums


@dataclass
class PairRun:
    """Everything a patch of A-B pairs needs, computed once (only pairs with two different clean endings)."""
    a: list              # A's line 1s
    b: list              # B's line 1s
    prefix: list         # A's line 2 up to the word that commits to the ending (teacher-forced)
    ea: torch.Tensor     # (N,) ids of A's clean committing word
    eb: torch.Tensor     # (N,) ids of B's
    hooks: list          # the residual hooks (resid_hooks)
    n_dropped: int       # pairs left out: an ending not well formed, or the same in A and B
    b_endings: list      # B's clean ending words (free generation's target)
    roles: list          # the role of every token of A + prefix
    cache_a: dict        # {hook: [(T, d)]} of A + prefix
    cache_b: dict        # {hook: [(T, d)]} of B + A's prefix
    ld_a: list = None    # LD in A's run
    ld_b: list = None    # LD in B's run (with A's prefix)


def pair_runs(model, world, pairs, clean):
    """The pairs with two different clean noun endings, with what every patch needs (a PairRun)."""
    a_l2, b_l2 = clean([a for a, _ in pairs]), clean([b for _, b in pairs])
    keep = [i for i in range(len(pairs)) if well_formed(a_l2[i]) and well_formed(b_l2[i])
            and commit_split(a_l2[i])[1] != commit_split(b_l2[i])[1]]
    a = [pairs[i][0] for i in keep]
    b = [pairs[i][1] for i in keep]
    prefix = [commit_split(a_l2[i])[0] for i in keep]
    ea = torch.tensor([world.stoi[commit_split(a_l2[i])[1]] for i in keep], dtype=torch.long)
    eb = torch.tensor([world.stoi[commit_split(b_l2[i])[1]] for i in keep], dtype=torch.long)
    hooks = resid_hooks(model.cfg)
    run = PairRun(a, b, prefix, ea, eb, hooks, len(pairs) - len(keep), [b_l2[i][-1] for i in keep],
                  [roles(x, p + ["?"], world.config)[:-1] for x, p in zip(a, prefix)],
                  activations(model, world, a, prefix, hooks), activations(model, world, b, prefix, hooks))
    run.ld_a = ld(ending_logits(model, world, a, prefix), ea, eb)
    run.ld_b = ld(ending_logits(model, world, b, prefix), ea, eb)
    return run


def ld(logits, ea, eb):
    rows = torch.arange(len(ea))
    return (logits[rows, eb] - logits[rows, ea]).tolist()


def patch_edits(run, i, pos, layers):
    """Edits that copy B's residual at `pos` into A's run at the given layer indices."""
    return [Edit(run.hooks[l], pos, run.cache_b[run.hooks[l]][i][pos]) for l in layers]


def is_noop(run, i, pos, layers, n_layer):
    """Exact no-ops, measured without a run: B's residuals equal A's at every patched layer (shared
    prefix, or the embedding of the same token), or only the final residual of a position before the
    last is patched (nothing reads it)."""
    last = len(run.roles[i]) - 1
    layers = [l for l in layers if not (l == n_layer and pos != last)]
    return all(torch.equal(run.cache_a[run.hooks[l]][i][pos], run.cache_b[run.hooks[l]][i][pos])
               for l in layers)


def patching(model, world, pairs, clean, columns=None, single=True, free=True, seed=0, only_layers=None):
    """LD effects of single-layer and column patches at every role (or only `columns`) of the pairs;
    with `free`, the free-generation top-1 rate of column patches at prompt positions too. With
    `only_layers`, just the single-layer patches at those layers (what choosing a site needs); the
    others are None."""
    run = pair_runs(model, world, pairs, clean)
    L = model.cfg.n_layer
    n = len(run.a)
    present = sorted({x for rs in run.roles for x in rs if columns is None or x in columns}, key=ROLES.index)
    kinds = {"column": list(range(L + 1)), "column_from1": list(range(1, L + 1))} if only_layers is None else {}
    if single:
        kinds.update({f"L{l}": [l] for l in (range(L + 1) if only_layers is None else only_layers)})
    jobs, edits = [], []  # (kind, role, pair) for each run
    noop = {}
    for role in present:
        for i in range(n):
            if role not in run.roles[i]:
                continue
            pos = run.roles[i].index(role)
            for kind, layers in kinds.items():
                if is_noop(run, i, pos, layers, L):
                    noop.setdefault((kind, role), []).append(i)
                else:
                    jobs.append((kind, role, i))
                    edits.append(patch_edits(run, i, pos, layers))
    idx = [j[2] for j in jobs]
    logits = ending_logits(model, world, [run.a[i] for i in idx], [run.prefix[i] for i in idx], edits) \
        if jobs else torch.zeros(0, model.cfg.vocab_size)
    patched = ld(logits, run.ea[idx], run.eb[idx]) if jobs else []
    num, den = {}, {}
    for (kind, role, i), v in zip(jobs, patched):
        num.setdefault((kind, role), []).append(v - run.ld_a[i])
        den.setdefault((kind, role), []).append(run.ld_b[i] - run.ld_a[i])
    for key, rows in noop.items():
        num.setdefault(key, []).extend([0.0] * len(rows))
        den.setdefault(key, []).extend(run.ld_b[i] - run.ld_a[i] for i in rows)
    # an exact no-op counts as 0 in its cell's effect; the share of such pairs says where a 0 is by construction
    effect = {key: {**ratio_of_sums(num[key], den[key], seed), "noop_fraction": len(noop.get(key, ())) / len(num[key])}
              for key in num}
    out = {"n_pairs": n, "n_dropped": run.n_dropped, "roles": present,
           "mean_ld_gap": sum(b - a for a, b in zip(run.ld_a, run.ld_b)) / max(1, n),
           "column": {r: effect.get(("column", r)) for r in present},
           "column_from1": {r: effect.get(("column_from1", r)) for r in present}}
    if single:
        out["layers"] = [f"L{l}" for l in range(L + 1)]
        out["single"] = [[_value(effect.get((f"L{l}", r))) for r in present] for l in range(L + 1)]
        out["single_noop"] = [[(effect.get((f"L{l}", r)) or {}).get("noop_fraction") for r in present]
                              for l in range(L + 1)]
    if free:
        out["top1"] = top1(model, world, run, [r for r in present if r not in line2_roles_of(run)])
    return out


def _value(e):
    return None if e is None else e["value"]


def line2_roles_of(run):
    return {r for rs, p in zip(run.roles, run.prefix) for r in rs[len(rs) - len(p):]}


def top1(model, world, run, prompt_roles):
    """{role: rate}: line 2 written freely, after B's residual entering every block at a prompt
    position is copied into A's run, ends in e_B."""
    L = model.cfg.n_layer
    out = {}
    for role in prompt_roles:
        rows = [i for i in range(len(run.a)) if role in run.roles[i][:len(world.prompt_ids(run.a[i]))]]
        edits = [patch_edits(run, i, run.roles[i].index(role), range(L)) for i in rows]
        written = write_line2(model, world, [run.a[i] for i in rows], edits) if rows else []
        out[role] = rate([w[-1:] == [run.b_endings[i]] for w, i in zip(written, rows)])
    return out


def through_training(checkpoints, world, line1s, columns=("nl", "rhyme"), n_pairs=150, seed=0):
    """Column LD effects at `columns` for rhyme-swap and cue-swap pairs, at every checkpoint
    [(step, model)]: when does a route through a position appear, and is it kept?"""
    pairs = {slot: swap_pairs(world, line1s, slot, seed)[:n_pairs] for slot in ("rhyme", "cue")}
    rows = []
    for step, model in checkpoints:
        clean = Clean(model, world)
        row = {"step": step}
        for slot, p in pairs.items():
            r = patching(model, world, p, clean, columns=columns, single=False, free=False, seed=seed)
            row[slot] = {"n_pairs": r["n_pairs"],
                         **{f"{c}_column": _value(r["column"].get(c)) for c in columns},
                         **{f"{c}_column_from1": _value(r["column_from1"].get(c)) for c in columns}}
        rows.append(row)
    return rows


def every_column(model, world, line1s, n_pairs=150, seed=0):
    """{slot: {role: LD effect}} of patching the residual that layers >= 1 read at each position (the
    `column_from1` patch, its token included) for rhyme-swap and cue-swap pairs: where the ending's facts are
    read from, when it is not the line break — in line 1 or early in line 2. The position that writes the
    ending (`end_art`, just before it) is left out: it carries everything by definition."""
    clean, out = Clean(model, world), {}
    for slot in ("rhyme", "cue"):
        r = patching(model, world, swap_pairs(world, line1s, slot, seed)[:n_pairs], clean, single=False, free=False,
                     seed=seed)
        out[slot] = {"n_pairs": r["n_pairs"], **{x: _value(r["column_from1"][x]) for x in r["roles"] if x != "end_art"}}
    return out


def choose_causal_sites(select, report, layers, roles, weak=0.2):
    """Sites by what patching one (layer, prompt position) does on *select* pairs; report-pair effects
    at the same cells come with them. family: the largest rhyme-swap effect; meaning: the largest
    cue-swap effect; joint: the largest min(rhyme, cue) — one cell carrying both. The intervention
    site is the joint site when it carries both (min >= `weak`), else the family site: the rhyme plan.
    Layer 0 (a token's own embedding) is not a site."""
    def grid(p):
        return {(l, r): p["single"][l][p["roles"].index(r)] for l in layers for r in roles
                if r in p["roles"] and p["single"][l][p["roles"].index(r)] is not None}
    sel = {slot: grid(select[slot]) for slot in ("rhyme", "cue")}
    rep = {slot: grid(report[slot]) for slot in ("rhyme", "cue")}
    cells = sorted(set(sel["rhyme"]) | set(sel["cue"]), key=lambda c: (c[0], roles.index(c[1])))
    if not cells:
        return {}
    score = {"family": lambda c: sel["rhyme"].get(c, 0.0), "meaning": lambda c: sel["cue"].get(c, 0.0),
             "joint": lambda c: min(sel["rhyme"].get(c, 0.0), sel["cue"].get(c, 0.0))}
    out = {}
    for name, f in score.items():
        best = max(cells, key=lambda c: (f(c), roles.index(c[1]), -c[0]))  # ties: later position, lower layer
        out[name] = {"layer": best[0], "role": best[1], "select": f(best),
                     "select_rhyme": sel["rhyme"].get(best), "select_cue": sel["cue"].get(best),
                     "report_rhyme": rep["rhyme"].get(best), "report_cue": rep["cue"].get(best)}
    use = "joint" if out["joint"]["select"] >= weak else "family"
    out["intervention"] = {**out[use], "chosen_as": use}
    return out
