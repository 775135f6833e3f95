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
                      total  = share of pairs whose ending changes to another valid couplet's, line 2
                               written freely;
                      direct = the same with A's own line 2 teacher-forced up to the ending;
                      mediated = total - direct, paired: what reaches the ending through the words written.
  3. shape_patching   B's residual entering one layer at one prompt position copied into A, for pairs
                      whose clean openers differ in length. The measure is a couplet: a valid couplet of
                      A's line 1 ending in a word of the donor's length (so its opener has the donor's
                      length), over the pairs where A's cell has such a word; the raw share of openers
                      at the donor's length beside it. Its control is the same patch from donors whose
                      opener has A's length (as foreign a residual, no other length: a valid couplet at
                      another length there is what disruption alone writes); its positive control writes
                      B's opener into A teacher-forced (a measure that sees nothing there sees no plan).
                      The layer is searched where something can be stored: not the embedding (the same
                      token in A and B) and not the final residual (the next-token prediction itself).
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
from interp.edits import Edit, activations, ending, noop_fraction, resid_hooks, write_line2
from interp.prompts import swap_options
from interp.stats import paired_difference, rate

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
def valid_change(world, line1, written, clean_ending):
    """Did an edit change the ending *and* leave a valid couplet? (A broken couplet changes everything.)"""
    return ending(written) != clean_ending and not check_couplet(line1, written, world.config)


def effects(model, world, pairs, clean, role="nl"):
    """Copy B's whole column at `role` into A. Pairs: [(a, b)] with different, well-formed clean endings.
    total / direct: the share of pairs whose ending changes to another valid couplet's, line 2 written
    freely / with A's line 2 teacher-forced up to the ending; mediated: their paired difference (what
    reaches the ending through the words written). `*_any` count every changed ending, broken or not."""
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
    total = [valid_change(world, l1, w, x) for l1, w, x in zip(a, free, ea)]
    direct = [valid_change(world, l1, w, x) for l1, w, x in zip(a, forced, ea)]
    return {"role": role, "n": len(keep), "n_dropped": len(pairs) - len(keep), "classes": counts(kinds),
            "total": rate(total), "direct": rate(direct), "mediated": paired_difference(total, direct),
            "total_any": rate([ending(w) != x for w, x in zip(free, ea)]),
            "direct_any": rate([ending(w) != x for w, x in zip(forced, ea)]),
            "total_donor": rate([ending(w) == y for w, y in zip(free, eb)]),
            "direct_donor": rate([ending(w) == y for w, y in zip(forced, eb)]),
            "opener_changed": rate([opener_length(w) != opener_length(a_l2[i]) for w, i in zip(free, keep)]),
            "noop_fraction": noop_fraction(model, world, a, edits),
            "example": _example(a[0], a_l2[keep[0]], free[0]) if keep else None}


def _example(line1, clean_l2, written):
    return {"line1": " ".join(line1), "clean": " ".join(clean_l2), "patched": " ".join(written)}


# ---- 3. the shape plan, by patching -----------------------------------------------------------------
def length_pairs(world, line1s, clean, seed=0, tries=200):
    """The shape measure's pairs, built for it: for each A whose clean couplet is valid and whose cell has
    a word of another length, a partner B (one word swapped, rhyme or cue: swap_options) whose clean
    couplet is valid and ends in a word of one of A's *other* lengths, so a valid couplet at B's length
    exists for A; and, for the same A, a control partner whose clean opener has A's own length (as foreign
    a residual, carrying no other length). Up to `tries` partners are tried per A, in a seeded order.
    Returns (donor rows, control rows), each row (a, b, a's clean line 2, b's)."""
    rng = random.Random(f"{seed}-length-pairs")
    a_l2 = clean(line1s)
    todo = []
    for a, x in zip(line1s, a_l2):
        if check_couplet(a, x, world.config) or not cell_lengths(world, a) - {length_of(ending(x))}:
            continue
        options = [b for slot in ("rhyme", "cue") for b in swap_options(world, a, slot)]
        rng.shuffle(options)
        todo.append((a, x, options[:tries]))
    b_l2 = clean([b for _, _, opts in todo for b in opts])  # one batch: every partner's clean line 2
    donors, controls, k = [], [], 0
    for a, x, opts in todo:
        ys, k = b_l2[k:k + len(opts)], k + len(opts)
        ok = [(b, y) for b, y in zip(opts, ys) if not check_couplet(b, y, world.config)]
        other = cell_lengths(world, a) - {length_of(ending(x))}
        donor = next(((b, y) for b, y in ok if length_of(ending(y)) in other), None)
        control = next(((b, y) for b, y in ok if opener_length(y) == opener_length(x)), None)
        if donor:
            donors.append((a, donor[0], x, donor[1]))
        if control:
            controls.append((a, control[0], x, control[1]))
    return donors, controls


def cell_lengths(world, line1):
    """The ending lengths (syllables) A's couplet can have: one per length among its cell's words."""
    return {length_of(w) for w in cell_of(world, line1)}


def donor_valid(world, row, written):
    """The shape measure: a valid couplet of A's line 1 whose ending has the donor's clean length (so its
    opener has the donor's length too: the meter ties them)."""
    return not check_couplet(row[0], written, world.config) and length_of(ending(written)) == length_of(ending(row[3]))


def other_valid(world, row, written):
    """The control's measure: a valid couplet of A's line 1 whose ending has another length than A's own."""
    return not check_couplet(row[0], written, world.config) and length_of(ending(written)) != length_of(ending(row[2]))


def donor_eligible(world, row):
    """A valid couplet at the donor's length exists: A's cell has a word of that length."""
    return length_of(ending(row[3])) in cell_lengths(world, row[0])


def other_eligible(world, row):
    """A valid couplet at another length than A's exists: A's cell has a word of another length."""
    return bool(cell_lengths(world, row[0]) - {length_of(ending(row[2]))})


def judge(world, rows, written, measure="donor"):
    """{opener, donor_valid (or other_valid), n_eligible}: the raw share of openers at the donor's length
    over every row, and the valid-couplet measure over the rows where it can be met."""
    valid, eligible = (donor_valid, donor_eligible) if measure == "donor" else (other_valid, other_eligible)
    ok = [i for i, r in enumerate(rows) if eligible(world, r)]
    return {"opener": rate([opener_length(w) == opener_length(r[3]) for w, r in zip(written, rows)]),
            f"{measure}_valid": rate([valid(world, rows[i], written[i]) for i in ok])}


def shape_patching(model, world, rows, roles, layers=None, measure="donor"):
    """{role: [per layer {opener, donor_valid, article, ending_changed, classes, noop_fraction}]} over `rows`
    from length_pairs: B's residual entering one layer (the last index: the final residual) at one prompt
    position copied into A, line 2 written freely. measure="other": the control's valid couplets at
    another length than A's (for same-length donors)."""
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
            sub = [rows[i] for i in ok]
            written = write_line2(model, world, [a[i] for i in ok], [edits[i] for i in ok])
            arts = [k for k, r in enumerate(sub) if article_of(r[2]) != article_of(r[3])]
            kinds = [written_class(world, r[0], w, ending(r[2]), ending(r[3])) for w, r in zip(written, sub)]
            out[role].append({"layer": l, **judge(world, sub, written, measure),
                              "article": rate([article_of(written[k]) == article_of(sub[k][3]) for k in arts]),
                              "ending_changed": rate([ending(w) != ending(r[2]) for w, r in zip(written, sub)]),
                              "classes": counts(kinds),
                              "noop_fraction": noop_fraction(model, world, [a[i] for i in ok], [edits[i] for i in ok])})
    return out


def searchable_layers(cfg):
    """The layers a search for a *stored* shape may pick: not the embedding (entering layer 0 the line
    break holds its own token, the same in A and B: a no-op) and not the final residual (it is the
    next-token prediction itself: patching it copies B's first word)."""
    return list(range(1, cfg.n_layer))


def choose_layer(select_map, layers, role="nl", key="donor_valid"):
    """Among `layers`, the one whose patch at `role` writes the most valid couplets at the donor's length on
    *select* pairs (ties: more openers at the donor's length, then the lower layer); None without pairs."""
    cells = [c for c in select_map.get(role) or [] if c["layer"] in layers and c[key]["n"]]
    best = max(cells, key=lambda c: (c[key]["rate"], c["opener"]["rate"] or 0, -c["layer"]), default=None)
    return None if best is None else best["layer"]


def forced_opener(model, world, rows):
    """The measure's positive control: B's clean opener written into A's line 2 (teacher-forced), the rest
    free. Where a valid couplet at the donor's length exists, does the model write it? A measure that sees
    nothing here cannot see a shape plan either."""
    openers = [r[3][:len(r[3]) - 4] for r in rows]  # the words before pronoun, verb, article and ending
    written = write_line2(model, world, [r[0] for r in rows], None, openers)
    return judge(world, rows, written)


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
    return {**rate(hits), "examples": examples, "noop_fraction": noop_fraction(model, world, [line1s[i] for i in ok], edits)}


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
    edit at the control position, and the opener teacher-forced (direct effect). The search leaves out
    the final residual (hooks[-1]): an edit there is an edit of the next-token prediction itself."""
    def dirs_at(hook, role):
        return length_directions(acts["fit"][hook][role], l2["fit"])

    out = {}
    tg = {k: green_targets(world, sets[k], l2[k], dirs_at(hooks[-1], "nl"), seed) for k in ("select", "report")}
    curves = [{"hook": h, "scale": s, **inject_lengths(model, world, sets["select"], tg["select"], dirs_at, h, "nl",
                                                       s, seed)} for h in hooks[:-1] for s in SCALES]
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
                                                        dirs_at, h, "nl", s, seed)} for h in hooks[:-1] for s in SCALES]
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
