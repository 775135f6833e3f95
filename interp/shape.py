"""The shape plan: line 2's length, decided at the line break and carried by the words it writes.

With a meter (the classic world: line 2 has 8 syllables) the ending's syllables fix the opener's:
"one sunny day" (4) goes with snake (1), "and then" (2) with rattlesnake (3). The opener is the token
the line break predicts, so whatever decides *which word of the cell* ends the line must be there
before line 2 starts: the second half of the definition of planning (a representation that causes
a future word and shapes the words written before it).

Every measure here judges the couplet the model writes freely, and keeps the teacher-forced run
beside it:
  1. classes          each freely written line 2 after an edit is one of CLASSES: the donor's (or the
                      injected) ending; else broken (check_couplet's rules, whatever the word); else a
                      valid couplet with the same ending word, or with a cell-mate that fits a new shape.
  2. effects          the whole column of one position copied from B into A (every layer):
                      total  = share of endings that change, line 2 written freely;
                      direct = the same with A's own line 2 teacher-forced up to the ending;
                      mediated = total - direct: what reaches the ending through the words written.
  3. shape_patching   B's residual entering one layer at one prompt position copied into A, for pairs
                      whose clean openers differ in length: the share of openers that take B's length
                      (and of articles that take B's), at every (layer, position).
  4. green / habit    add the direction of another length class at the line break ("green": a valid
                      couplet ending in a cell-mate of that length), or subtract the planned length's
                      direction ("rabbit -> habit": a valid couplet ending in the model's own runner-up);
                      each beside a norm-matched random direction, the control position, and the opener
                      teacher-forced (the direct effect). Only prompts whose cell has such a word count.
"""
import random

import torch

from couplet_rules import check_couplet, parse_line1, role_position
from lexicon import NOUNS, PRONOUNS, valid_endings, syllables
from interp.directions import random_like, word_directions
from interp.edits import Edit, activations, ending, resid_hooks, write_line2
from interp.stats import rate

CLASSES = ("same_word", "cell_mate_valid", "donor", "broken")
SCALES = (1.0, 2.0, 4.0, 8.0)
CONTROL_ROLE = "seen"  # line 1's verb: a prompt position that holds neither fact


def has_meter(world):
    return world.config.grammar == "classic" and world.config.meter


def opener_length(line2):
    """Syllables of the words before line 2's pronoun (None when it has none)."""
    p = next((i for i, w in enumerate(line2) if w in PRONOUNS), None)
    return None if p is None else syllables(line2[:p])


def article_of(line2):
    return line2[-2] if len(line2) >= 2 else None


def written_class(world, line1, written, clean_ending, donor):
    """One of CLASSES. `donor`: the ending (or set of endings) the edit pushes towards. A couplet that
    breaks a rule is "broken" even when it keeps its ending word (a new opener with the old ending
    breaks the meter)."""
    e = ending(written)
    if e in ({donor} if isinstance(donor, str) else set(donor or ())):
        return "donor"
    if check_couplet(line1, written, world.config):
        return "broken"
    return "same_word" if e == clean_ending else "cell_mate_valid"


def counts(kinds):
    return {k: kinds.count(k) for k in CLASSES}


def _cache(model, world, line1s, hooks):
    return activations(model, world, line1s, [[] for _ in line1s], hooks)


def _col_edits(cache, hooks, rows, line1s, world, role, layers):
    out = []
    for r, l1 in zip(rows, line1s):
        p = role_position(l1, role, world.config)
        out.append(None if p is None else [Edit(hooks[l], p, cache[hooks[l]][r][p]) for l in layers])
    return out


# ---- 2. total, direct, mediated ---------------------------------------------------------------------
def effects(model, world, pairs, clean, role="nl"):
    """Copy B's whole column at `role` into A. Pairs: [(a, b)] with different, well-formed clean endings."""
    a_l2, b_l2 = clean([a for a, _ in pairs]), clean([b for _, b in pairs])
    keep = [i for i in range(len(pairs)) if a_l2[i] and b_l2[i] and ending(a_l2[i]) in NOUNS
            and ending(b_l2[i]) in NOUNS and ending(a_l2[i]) != ending(b_l2[i])]
    a = [pairs[i][0] for i in keep]
    hooks = resid_hooks(model.cfg)
    cache = _cache(model, world, [pairs[i][1] for i in keep], hooks)
    edits = _col_edits(cache, hooks, range(len(keep)), a, world, role, range(len(hooks)))
    ea, eb = [ending(a_l2[i]) for i in keep], [ending(b_l2[i]) for i in keep]
    free = write_line2(model, world, a, edits)
    forced = write_line2(model, world, a, edits, [a_l2[i][:-1] for i in keep])
    kinds = [written_class(world, l1, w, x, y) for l1, w, x, y in zip(a, free, ea, eb)]
    total = rate([ending(w) != x for w, x in zip(free, ea)])
    direct = rate([ending(w) != x for w, x in zip(forced, ea)])
    return {"role": role, "n": len(keep), "n_dropped": len(pairs) - len(keep), "classes": counts(kinds),
            "total": total, "direct": direct,
            "mediated": None if total["rate"] is None else total["rate"] - direct["rate"],
            "total_donor": rate([ending(w) == y for w, y in zip(free, eb)]),
            "direct_donor": rate([ending(w) == y for w, y in zip(forced, eb)]),
            "opener_changed": rate([opener_length(w) != opener_length(a_l2[i]) for w, i in zip(free, keep)]),
            "example": _example(a[0], a_l2[keep[0]], free[0]) if keep else None}


def _example(line1, clean_l2, written):
    return {"line1": " ".join(line1), "clean": " ".join(clean_l2), "patched": " ".join(written)}


# ---- 3. the shape plan, by patching -----------------------------------------------------------------
def shape_pairs(world, pairs, clean):
    """The pairs whose clean couplets are both valid and whose openers differ in length."""
    a_l2, b_l2 = clean([a for a, _ in pairs]), clean([b for _, b in pairs])
    return [(a, b, x, y) for (a, b), x, y in zip(pairs, a_l2, b_l2)
            if not check_couplet(a, x, world.config) and not check_couplet(b, y, world.config)
            and opener_length(x) != opener_length(y)]


def shape_patching(model, world, rows, roles, layers=None):
    """{role: [per layer {opener, article, ending_changed, classes}]} over `rows` from shape_pairs:
    B's residual entering one layer (the last index: the final residual) at one prompt position."""
    hooks = resid_hooks(model.cfg)
    layers = list(range(len(hooks))) if layers is None else layers
    a = [r[0] for r in rows]
    cache = _cache(model, world, [r[1] for r in rows], hooks)
    out = {}
    for role in roles:
        out[role] = []
        for l in layers:
            edits = _col_edits(cache, hooks, range(len(rows)), a, world, role, [l])
            ok = [i for i, e in enumerate(edits) if e is not None]
            written = write_line2(model, world, [a[i] for i in ok], [edits[i] for i in ok])
            arts = [i for i in ok if article_of(rows[i][2]) != article_of(rows[i][3])]
            kinds = [written_class(world, a[i], w, ending(rows[i][2]), ending(rows[i][3])) for w, i in zip(written, ok)]
            by_i = dict(zip(ok, written))
            out[role].append({"layer": l, "opener": rate([opener_length(w) == opener_length(rows[i][3])
                                                           for w, i in zip(written, ok)]),
                              "article": rate([article_of(by_i[i]) == article_of(rows[i][3]) for i in arts]),
                              "ending_changed": rate([ending(w) != ending(rows[i][2]) for w, i in zip(written, ok)]),
                              "classes": counts(kinds)})
    return out


def choose_layer(select_map, role="nl"):
    """The layer whose patch at `role` moves the most openers on *select* pairs (ties: the lower)."""
    cells = select_map.get(role) or []
    best = max(cells, key=lambda c: ((c["opener"]["rate"] or 0), -c["layer"]), default=None)
    return None if best is None else best["layer"]


# ---- 4. green and habit: length directions at the line break ----------------------------------------
def length_of(word):
    return NOUNS[word].syllables if word in NOUNS else None


def length_directions(acts, line2s):
    """{syllables: d} at one cell: the mean-difference direction of each length of the written ending."""
    return word_directions(acts, [length_of(ending(x)) if x and ending(x) in NOUNS else None for x in line2s])[0]


def cell_of(world, line1):
    """The valid endings of this line 1: its (meaning, rhyme) cell."""
    p = parse_line1(line1, world.config)
    return valid_endings(NOUNS[p.cue].meaning, p.rhyme)


def green_targets(world, line1s, line2s, dirs, seed=0):
    """Per prompt, (length, cell-mates of that length): another length than the clean ending's, among
    the lengths with a direction and a word in the cell; None where the cell has none."""
    rng = random.Random(f"{seed}-green")
    out = []
    for l1, l2 in zip(line1s, line2s):
        e = ending(l2)
        if not l2 or e not in NOUNS or check_couplet(l1, l2, world.config):
            out.append(None)
            continue
        cell = cell_of(world, l1)
        lengths = sorted({length_of(w) for w in cell if length_of(w) != length_of(e) and length_of(w) in dirs})
        if not lengths:
            out.append(None)
            continue
        s = rng.choice(lengths)
        out.append((s, [w for w in cell if length_of(w) == s]))
    return out


def _judge(model, world, line1s, rows, vectors, role, hook, words, forced=None):
    """Rate of valid couplets ending in one of words[i] (forced: of endings in words[i], any validity)."""
    ok = [i for i in rows if vectors[i] is not None and role_position(line1s[i], role, world.config) is not None]
    edits = [[Edit(hook, role_position(line1s[i], role, world.config), vectors[i], "add")] for i in ok]
    written = write_line2(model, world, [line1s[i] for i in ok], edits, [forced[i] for i in ok] if forced else None)
    hits = [ending(w) in words[i] and (forced is not None or not check_couplet(line1s[i], w, world.config))
            for w, i in zip(written, ok)]
    examples = [{"line1": " ".join(line1s[i]), "written": " ".join(w)} for w, i, h in zip(written, ok, hits) if h][:3]
    return {**rate(hits), "examples": examples}


def inject_lengths(model, world, line1s, targets, dirs_at, hook, role, scale, seed=0, forced=None):
    """{inject, random}: add scale * d_length (or a norm-matched random direction) at (hook, role)."""
    dirs = dirs_at(hook, role)
    vec = [dirs[t[0]] * scale if t and t[0] in dirs else None for t in targets]
    rnd = [random_like(v, seed + i) if v is not None else None for i, v in enumerate(vec)]
    rows = [i for i, t in enumerate(targets) if t]
    words = [t[1] if t else () for t in targets]
    return {"inject": _judge(model, world, line1s, rows, vec, role, hook, words, forced),
            "random": _judge(model, world, line1s, rows, rnd, role, hook, words, forced)}


def suppress_length(model, world, line1s, line2s, runners, dirs_at, hook, role, scale, seed=0, forced=None):
    """{suppress, random, n_other_length, n_same_length}: subtract scale * d_(planned length) at (hook,
    role); a hit is a valid couplet ending in the model's own runner-up. Only prompts whose runner-up
    has another length than the planned ending count (a length edit cannot pick a same-length word)."""
    dirs = dirs_at(hook, role)
    rows, same = [], 0
    for i, (l2, r) in enumerate(zip(line2s, runners)):
        if r is None or not l2 or ending(l2) not in NOUNS or check_couplet(line1s[i], l2, world.config):
            continue
        if length_of(r) == length_of(ending(l2)):
            same += 1
        elif length_of(ending(l2)) in dirs:
            rows.append(i)
    vec = [-scale * dirs[length_of(ending(line2s[i]))] if i in rows else None for i in range(len(line1s))]
    rnd = [random_like(v, seed + i) if v is not None else None for i, v in enumerate(vec)]
    words = [(r,) if r else () for r in runners]
    return {"suppress": _judge(model, world, line1s, rows, vec, role, hook, words, forced),
            "random": _judge(model, world, line1s, rows, rnd, role, hook, words, forced),
            "n_other_length": len(rows), "n_same_length": same}


def best(curves, key):
    """The (hook, scale) whose rate minus its random control's is largest on *select* (ties: the
    earlier entry, so the lower layer and the smaller scale)."""
    return max(curves, key=lambda c: ((c[key]["rate"] or 0) - (c["random"]["rate"] or 0), -curves.index(c)))


def green_and_habit(model, world, sets, l2, runners, acts, hooks, seed=0):
    """Green and habit at the line break: hook and scale chosen on select, rates on report, the same
    edit at the control position, and the opener teacher-forced (direct effect)."""
    def dirs_at(hook, role):
        return length_directions(acts["fit"][hook][role], l2["fit"])

    out = {}
    tg = {k: green_targets(world, sets[k], l2[k], dirs_at(hooks[-1], "nl"), seed) for k in ("select", "report")}
    curves = [{"hook": h, "scale": s, **inject_lengths(model, world, sets["select"], tg["select"], dirs_at, h, "nl",
                                                       s, seed)} for h in hooks for s in SCALES]
    g = best(curves, "inject")
    openers = [x[:len(x) - 4] if x else [] for x in l2["report"]]
    out["green"] = {"hook": g["hook"], "scale": g["scale"], "n_no_target": sum(t is None for t in tg["report"]),
                    **inject_lengths(model, world, sets["report"], tg["report"], dirs_at, g["hook"], "nl", g["scale"],
                                     seed),
                    "control_position": inject_lengths(model, world, sets["report"], tg["report"], dirs_at, g["hook"],
                                                       CONTROL_ROLE, g["scale"], seed)["inject"],
                    "opener_forced": inject_lengths(model, world, sets["report"], tg["report"], dirs_at, g["hook"],
                                                    "nl", g["scale"], seed, forced=openers)["inject"]}
    curves = [{"hook": h, "scale": s, **suppress_length(model, world, sets["select"], l2["select"], runners["select"],
                                                        dirs_at, h, "nl", s, seed)} for h in hooks for s in SCALES]
    h = best(curves, "suppress")
    rep = suppress_length(model, world, sets["report"], l2["report"], runners["report"], dirs_at, h["hook"], "nl",
                          h["scale"], seed)
    out["habit"] = {"hook": h["hook"], "scale": h["scale"], **rep,
                    "control_position": suppress_length(model, world, sets["report"], l2["report"], runners["report"],
                                                        dirs_at, h["hook"], CONTROL_ROLE, h["scale"], seed)["suppress"],
                    "opener_forced": suppress_length(model, world, sets["report"], l2["report"], runners["report"],
                                                     dirs_at, h["hook"], "nl", h["scale"], seed,
                                                     forced=openers)["suppress"]}
    return out
