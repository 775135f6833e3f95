"""The shape plan's measures that write line 2 with a model (interp/shape.py), on the poet fixture (a
model that writes valid couplets, so every loop counts something): built so each can be met, controls that
could fail, and each output against a re-computation from the public building blocks (docs/mutation.md)."""
import pytest
import torch

from data import CoupletWorld, WorldConfig
from couplet_rules import check_couplet, role_position
from lexicon import NOUNS
from model import load_checkpoint
from interp import shape
from interp.edits import Edit, activations, ending, noop_fraction, resid_hooks, write_line2
from interp.prompts import Clean, swap_pairs
from interp.shape import _cache, _col_edits
from interp.directions import random_like
from interp.interventions import runner_ups
from interp.stats import paired_difference, rate


LIST = WorldConfig(n_train=50, n_test=10, grammar="list")


def test_patching_the_line_breaks_final_residual_decides_the_first_word(tiny_run):
    """An exact check of the patch: the line break's final residual alone decides line 2's first word.
    Set it to the final residual of <bos> (same run) and line 2 starts with what the model predicts after
    <bos>; copy every layer of A's own column and nothing changes."""
    model, ckpt = load_checkpoint(tiny_run[0])
    world = CoupletWorld(WorldConfig(**ckpt["world_config"]))
    a = [c.line1 for c in world.split("test")[:30]]
    hooks = resid_hooks(model.cfg)
    last, own = len(hooks) - 1, _cache(model, world, a, hooks)
    nl = [len(world.prompt_ids(x)) - 1 for x in a]
    edits = [[Edit(hooks[last], p, own[hooks[last]][i][0])] for i, p in enumerate(nl)]
    with torch.no_grad():
        after_bos = [world.itos[int(model(torch.tensor([world.prompt_ids(x)]))[0][0, 0].argmax())] for x in a]
    clean = write_line2(model, world, a)
    assert any(c[:1] != [w] for c, w in zip(clean, after_bos))  # the edit changes something: the check can fail
    assert [w[:1] for w in write_line2(model, world, a, edits)] == [[w] for w in after_bos]
    same = write_line2(model, world, a, _col_edits(own, hooks, range(len(a)), a, world, "nl", range(last + 1)))
    assert same == clean


@pytest.fixture(scope="module")
def poem(poet):
    """The poet, its world, 120 test line 1s and their shape pairs (donors of another length, controls)."""
    model, ckpt = load_checkpoint(poet)
    world = CoupletWorld(WorldConfig(**ckpt["world_config"]))
    line1s = [c.line1 for c in world.split("test")[:120]]
    clean = Clean(model, world)
    donors, controls = shape.length_pairs(world, line1s, clean)
    return model, world, line1s, clean, donors, controls


def test_length_pairs_are_built_so_the_measure_can_be_met(poem):
    _, world, _, _, donors, controls = poem
    assert len(donors) >= 5 and len(controls) >= 5
    for a, b, x, y in donors:  # a valid couplet of A at B's length exists, and B's length is not A's
        assert not check_couplet(a, x, world.config) and not check_couplet(b, y, world.config)
        assert shape.length_of(ending(y)) in shape.cell_lengths(world, a) - {shape.length_of(ending(x))}
        assert sum(u != v for u, v in zip(a, b)) == 1 and len(a) == len(b)
    for a, b, x, y in controls:  # as foreign a donor, of A's own length; A could still change length
        assert shape.opener_length(x) == shape.opener_length(y) and shape.other_eligible(world, (a, b, x, y))


def test_the_layer_search_leaves_out_the_embedding_and_the_next_token_prediction(poem):
    """Entering layer 0 the line break is its own token's embedding, the same in A and B: every edit there is
    a no-op and writes the clean line 2. The final residual is the next-token prediction: patching it makes
    line 2's first word B's. Neither can be chosen as the place a shape is stored."""
    model, world, _, _, donors, _ = poem
    grid = shape.shape_patching(model, world, donors, ["nl"])["nl"]
    assert grid[0]["noop_fraction"] == 1.0 and grid[0]["classes"]["same_word"] == len(donors)
    assert all(c["noop_fraction"] == 0.0 for c in grid[1:])  # every other layer's edit changes the residual
    first = write_line2(model, world, [r[0] for r in donors],
                        shape._col_edits(shape._cache(model, world, [r[1] for r in donors], resid_hooks(model.cfg)),
                                         resid_hooks(model.cfg), range(len(donors)), [r[0] for r in donors], world,
                                         "nl", [model.cfg.n_layer]))
    assert [w[:1] for w in first] == [r[3][:1] for r in donors]
    best = {"nl": [{"layer": l, "donor_valid": {"rate": r, "n": 9}, "opener": {"rate": r}}
                   for l, r in enumerate([1.0, 0.2, 0.1, 1.0])]}  # the two forbidden layers score best
    assert shape.choose_layer(best, shape.searchable_layers(model.cfg)) == 1
    assert shape.searchable_layers(model.cfg) == list(range(1, model.cfg.n_layer))


def test_the_control_and_the_site_change_the_residual_and_the_positive_control_can_see(poem):
    model, world, _, _, donors, controls = poem
    ctl = shape.shape_patching(model, world, controls, ["nl"], [1], "other")["nl"][0]
    assert ctl["other_valid"]["n"] == len(controls) and ctl["noop_fraction"] == 0.0
    pos = shape.forced_opener(model, world, donors)
    assert pos["donor_valid"]["n"] == len(donors) and pos["donor_valid"]["rate"] > 0.3
    assert pos["opener"]["rate"] >= pos["donor_valid"]["rate"]  # every valid couplet at B's length has B's opener


def test_effects_count_valid_changes_and_a_self_patch_is_a_noop(poem):
    model, world, line1s, clean, _, _ = poem
    pairs = swap_pairs(world, line1s, "rhyme")
    e = shape.effects(model, world, pairs, clean)
    assert e["n"] > 20 and e["noop_fraction"] == 0.0
    assert e["total"]["k"] <= e["total_any"]["k"] and e["direct"]["k"] <= e["direct_any"]["k"]
    assert e["mediated"]["value"] == pytest.approx(e["total"]["rate"] - e["direct"]["rate"])
    lo, hi = e["mediated"]["ci"]
    assert lo <= e["mediated"]["value"] <= hi
    own = shape.effects(model, world, [(a, a) for a, _ in pairs], clean)  # B = A: nothing can change
    assert own["n"] == 0  # the same ending in A and B: no pair to count
    same = [(a, a) for a, _ in pairs]
    rows = shape.shape_patching(model, world, [(a, a, x, x) for (a, _), x in zip(same[:20], clean([a for a, _ in same[:20]]))],
                                ["nl"], [1])["nl"][0]
    assert rows["noop_fraction"] == 1.0 and rows["ending_changed"]["k"] == 0


def test_green_and_habit_count_eligible_prompts_and_zero_is_a_noop(poem):
    model, world, line1s, clean, _, _ = poem
    fit = [c.line1 for c in world.split("train")[:400]]
    fit_l2 = clean(fit)
    hook = resid_hooks(model.cfg)[1]
    acts = torch.stack([a[-1] for a in shape.activations(model, world, fit, [[] for _ in fit], [hook])[hook]])
    dirs = shape.length_directions(acts, fit_l2)
    l2 = clean(line1s)
    targets = shape.green_targets(world, line1s, l2, dirs)
    zero = shape.inject_lengths(model, world, line1s, targets, lambda h, r: dirs, hook, "nl", 0.0)
    some = shape.inject_lengths(model, world, line1s, targets, lambda h, r: dirs, hook, "nl", 4.0)
    assert zero["inject"]["n"] > 5 and zero["inject"]["noop_fraction"] == 1.0 and zero["inject"]["k"] == 0
    assert some["inject"]["noop_fraction"] == 0.0 and some["random"]["noop_fraction"] == 0.0
    assert some["inject"]["k"] > some["random"]["k"]  # the length direction does what a random one does not
    for ex in some["inject"]["examples"]:  # a hit is a valid couplet
        assert not check_couplet(ex["line1"].split(), ex["written"].split(), world.config)


# ---- the measures that drive a model, against a re-computation from the public building blocks (docs/mutation.md) ----
@pytest.fixture(scope="module")
def verse(poet):
    """The poet, its world, the clean line 2s and 60 test line 1s (no pairs: each test below builds its own)."""
    model, ckpt = load_checkpoint(poet)
    world = CoupletWorld(WorldConfig(**ckpt["world_config"]))
    return model, world, Clean(model, world), [c.line1 for c in world.split("test")[:60]]


def column(model, world, line1s, donors, role, layers):
    """B's residual at A's `role` position, entering each of `layers`: one list of set-Edits per A (None: no role)."""
    hooks = resid_hooks(model.cfg)
    acts = activations(model, world, donors, [[] for _ in donors], hooks)
    out = []
    for r, l1 in enumerate(line1s):
        p = role_position(l1, role, world.config)
        out.append(None if p is None else [Edit(hooks[l], p, acts[hooks[l]][r][p]) for l in layers])
    return out


def test_col_edits_copy_each_layers_donor_residual_at_the_roles_position_or_none():
    world = CoupletWorld(LIST)
    line1s = ["today she saw a goat and a cake".split(), "she saw a goat and a cake".split()]
    hooks = ["h0", "h1"]
    cache = {h: [torch.arange(40.0).view(10, 4) + 100 * k + 1000 * r for r in range(2)] for k, h in enumerate(hooks)}
    got = _col_edits(cache, hooks, [1, 0], line1s, world, "pre1", [1, 0])  # the rows of the cache, in their order
    assert got[1] is None  # no preamble in the second line 1
    assert [(e.hook, e.pos, e.op) for e in got[0]] == [("h1", 1, "set"), ("h0", 1, "set")]
    assert torch.equal(got[0][0].value, cache["h1"][1][1]) and torch.equal(got[0][1].value, cache["h0"][1][1])
    [[e]] = _col_edits(cache, hooks, [0], line1s[1:], world, "rhyme", [0])  # the list grammar's rhyme: its last noun
    assert e.pos == 7 and torch.equal(e.value, cache["h0"][0][7])


def expected_effects(model, world, pairs, clean, role):
    a_l2, b_l2 = clean([a for a, _ in pairs]), clean([b for _, b in pairs])
    keep = [i for i, (x, y) in enumerate(zip(a_l2, b_l2)) if x and y and x[-1] in NOUNS and y[-1] in NOUNS
            and x[-1] != y[-1]]
    a, x, y = [pairs[i][0] for i in keep], [a_l2[i] for i in keep], [b_l2[i] for i in keep]
    edits = column(model, world, a, [pairs[i][1] for i in keep], role, range(model.cfg.n_layer + 1))
    free = write_line2(model, world, a, edits)
    forced = write_line2(model, world, a, edits, [l2[:-1] for l2 in x])
    changed = [[w[-1] != c[-1] and not check_couplet(l1, w, world.config) for l1, w, c in zip(a, out, x)]
               for out in (free, forced)]
    return {"role": role, "n": len(keep), "n_dropped": len(pairs) - len(keep),
            "classes": shape.counts([shape.written_class(world, l1, w, c[-1], d[-1])
                                     for l1, w, c, d in zip(a, free, x, y)]),
            "total": rate(changed[0]), "direct": rate(changed[1]), "mediated": paired_difference(*changed),
            "total_any": rate([w[-1] != c[-1] for w, c in zip(free, x)]),
            "direct_any": rate([w[-1] != c[-1] for w, c in zip(forced, x)]),
            "total_donor": rate([w[-1] == d[-1] for w, d in zip(free, y)]),
            "direct_donor": rate([w[-1] == d[-1] for w, d in zip(forced, y)]),
            "opener_changed": rate([shape.opener_length(w) != shape.opener_length(c) for w, c in zip(free, x)]),
            "noop_fraction": noop_fraction(model, world, a, edits),
            "example": {"line1": " ".join(a[0]), "clean": " ".join(x[0]), "patched": " ".join(free[0])}}


def test_effects_are_the_rates_of_the_line2s_written_after_copying_bs_column(verse):
    model, world, clean, line1s = verse
    swaps = swap_pairs(world, line1s[:40], "rhyme")
    donors, _ = shape.length_pairs(world, line1s, clean, tries=40)
    own = [(a, a) for a in line1s[:5]]  # the same ending in A and B: dropped
    for pairs, role in ((swaps[:20] + own, "rhyme"), ([(a, b) for a, b, _, _ in donors], "nl")):
        got = shape.effects(model, world, pairs, clean, role)
        assert got == expected_effects(model, world, pairs, clean, role)
        assert got["n"] + got["n_dropped"] == len(pairs) and sum(got["classes"].values()) == got["n"]
    swapped = shape.effects(model, world, swaps[:20] + own, clean, "rhyme")
    assert swapped["n_dropped"] == 5 and swapped["direct_any"]["k"] > 0 and swapped["total_donor"]["k"] > 0
    assert got["total"]["k"] > 0 and got["classes"]["cell_mate_valid"] > 0 and got["opener_changed"]["k"] > 0
    pairs = [(a, b) for a, b, _, _ in donors]
    assert shape.effects(model, world, pairs, clean) == got  # the line break by default


def test_shape_patching_judges_the_line2s_written_after_copying_one_layers_residual(verse):
    model, world, clean, line1s = verse
    donors, controls = shape.length_pairs(world, line1s, clean, tries=40)
    rows = donors + controls
    assert any(shape.article_of(r[2]) != shape.article_of(r[3]) for r in rows)  # the article rate counts something
    got = shape.shape_patching(model, world, rows, ["nl", "rhyme"], [1, 2])
    assert got == shape.shape_patching(model, world, rows, ["nl", "rhyme"], [1, 2], "donor")  # the donor's measure
    for role in ("nl", "rhyme"):
        for cell, layer in zip(got[role], [1, 2]):
            edits = column(model, world, [r[0] for r in rows], [r[1] for r in rows], role, [layer])
            written = write_line2(model, world, [r[0] for r in rows], edits)
            arts = [(w, r) for w, r in zip(written, rows) if shape.article_of(r[2]) != shape.article_of(r[3])]
            assert cell == {"layer": layer, **shape.judge(world, rows, written),
                            "article": rate([shape.article_of(w) == shape.article_of(r[3]) for w, r in arts]),
                            "ending_changed": rate([w[-1] != r[2][-1] for w, r in zip(written, rows)]),
                            "classes": shape.counts([shape.written_class(world, r[0], w, r[2][-1], r[3][-1])
                                                     for w, r in zip(written, rows)]),
                            "noop_fraction": noop_fraction(model, world, [r[0] for r in rows], edits)}
            assert cell["donor_valid"]["n"] == len(donors) + sum(shape.donor_eligible(world, r) for r in controls)
    assert got["nl"][1]["ending_changed"]["k"] > 0 and got["rhyme"][0]["classes"]["donor"] > 0
    assert got["nl"][0]["article"]["n"] > 0


def judged(model, world, line1s, rows, vectors, role, hook, words, forced=None):
    """_judge's promise: over `rows` with a vector and the role, add vectors[i] at (hook, role) and count the line
    2s ending in words[i], in a valid couplet when written freely; the first three hits; the no-op share."""
    ok = [i for i in rows if vectors[i] is not None and role_position(line1s[i], role, world.config) is not None]
    edits = [[Edit(hook, role_position(line1s[i], role, world.config), vectors[i], "add")] for i in ok]
    written = write_line2(model, world, [line1s[i] for i in ok], edits, [forced[i] for i in ok] if forced else None)
    hits = [bool(w) and w[-1] in words[i] and (forced is not None or not check_couplet(line1s[i], w, world.config))
            for w, i in zip(written, ok)]
    return {**rate(hits), "examples": [{"line1": " ".join(line1s[i]), "written": " ".join(w)}
                                       for w, i, h in zip(written, ok, hits) if h][:3],
            "noop_fraction": noop_fraction(model, world, [line1s[i] for i in ok], edits)}


@pytest.fixture(scope="module")
def lengths(verse):
    """Length directions fit on 300 train line 1s at every residual hook, at the line break and at line 1's verb."""
    model, world, clean, _ = verse
    fit = [c.line1 for c in world.split("train")[:300]]
    hooks = resid_hooks(model.cfg)
    acts = activations(model, world, fit, [[] for _ in fit], hooks)
    pos = {r: [role_position(l1, r, world.config) for l1 in fit] for r in ("nl", shape.CONTROL_ROLE)}
    acts = {h: {r: torch.stack([a[p] for a, p in zip(acts[h], pos[r])]) for r in pos} for h in hooks}
    fit_l2 = clean(fit)
    table = {(h, r): shape.length_directions(acts[h][r], fit_l2) for h in hooks for r in pos}
    return fit, fit_l2, acts, table


def test_inject_lengths_adds_the_lengths_direction_or_a_norm_matched_random_one(verse, lengths):
    model, world, clean, line1s = verse
    _, _, _, table = lengths
    hook = resid_hooks(model.cfg)[1]
    dirs_at = lambda h, r: table[(h, r)]  # noqa: E731  (a KeyError for any other site)
    l2 = clean(line1s)
    targets = shape.green_targets(world, line1s, l2, table[(hook, "nl")])
    assert sum(t is not None for t in targets) > 10
    k = next(i for i, t in enumerate(targets) if t)
    targets[k] = (7, targets[k][1])  # a length with no direction: not counted
    openers = [x[:len(x) - 4] for x in l2]
    rows = [i for i, t in enumerate(targets) if t]
    words = [t[1] if t else () for t in targets]
    for role, scale, forced in (("nl", 4.0, None), ("nl", 8.0, openers), (shape.CONTROL_ROLE, 8.0, None)):
        d = table[(hook, role)]
        vec = [d[t[0]] * scale if t and t[0] in d else None for t in targets]
        rnd = [random_like(v, i) if v is not None else None for i, v in enumerate(vec)]
        got = shape.inject_lengths(model, world, line1s, targets, dirs_at, hook, role, scale, forced=forced)
        assert got == {"inject": judged(model, world, line1s, rows, vec, role, hook, words, forced),
                       "random": judged(model, world, line1s, rows, rnd, role, hook, words, forced)}
        assert got["inject"]["n"] == got["random"]["n"] == len(rows) - 1
        for v, r in zip(vec, rnd):
            assert (v is None and r is None) or torch.allclose(v.norm(), r.norm())
    zero = shape.inject_lengths(model, world, line1s, targets, dirs_at, hook, "nl", 0.0)
    assert zero["inject"]["noop_fraction"] == zero["random"]["noop_fraction"] == 1.0 and zero["inject"]["k"] == 0
    # words: every noun, so a hit is a valid couplet (teacher-forced: any noun ending); the random control's seed
    # is the prompt's index + seed (0 by default), and it decides which couplets a large edit breaks
    nouns = [(t[0], list(NOUNS)) if t else None for t in targets]
    d = table[(hook, "nl")]
    for scale, seed, forced in ((4.0, None, None), (4.0, 1, None), (16.0, 2, None), (16.0, 2, openers)):
        args = () if seed is None else (seed, forced)
        got = shape.inject_lengths(model, world, line1s, nouns, dirs_at, hook, "nl", scale, *args)["random"]
        rnd = [random_like(d[t[0]] * scale, (seed or 0) + i) if t and t[0] in d else None for i, t in enumerate(nouns)]
        assert got == judged(model, world, line1s, rows, rnd, "nl", hook, [t[1] if t else () for t in nouns], forced)
        assert len(got["examples"]) == min(3, got["k"])


def test_suppress_length_subtracts_the_planned_lengths_direction_where_the_runner_up_has_another(verse, lengths):
    model, world, clean, line1s = verse
    _, _, _, table = lengths
    hook = resid_hooks(model.cfg)[1]
    l2 = clean(line1s)
    runners = runner_ups(model, world, line1s, l2)
    d = dict(table[(hook, "nl")])
    eligible = [i for i, (x, r) in enumerate(zip(l2, runners)) if r is not None and x and x[-1] in NOUNS
                and not check_couplet(line1s[i], x, world.config)]
    same = [i for i in eligible if shape.length_of(runners[i]) == shape.length_of(l2[i][-1])]
    other = [i for i in eligible if i not in same]
    gone = shape.length_of(l2[other[0]][-1])
    del d[gone]  # the planned length of some prompts has no direction: they are not counted
    rows = [i for i in other if shape.length_of(l2[i][-1]) in d]
    assert same and rows and len(rows) < len(other)
    words = [(r,) if r else () for r in runners]
    for role, scale, seed, forced in (("nl", 4.0, 0, None), ("nl", 16.0, 2, [x[:len(x) - 4] for x in l2]),
                                      (shape.CONTROL_ROLE, 8.0, 0, None)):
        dirs_at = {(hook, role): d}.get
        got = shape.suppress_length(model, world, line1s, l2, runners, lambda h, r: dirs_at((h, r)), hook, role, scale,
                                    seed, forced)
        vec = [-scale * d[shape.length_of(l2[i][-1])] if i in rows else None for i in range(len(line1s))]
        rnd = [random_like(v, seed + i) if v is not None else None for i, v in enumerate(vec)]
        assert got == {"suppress": judged(model, world, line1s, rows, vec, role, hook, words, forced),
                       "random": judged(model, world, line1s, rows, rnd, role, hook, words, forced),
                       "n_other_length": len(rows), "n_same_length": len(same)}
        assert got["suppress"]["n"] == got["random"]["n"] == len(rows) and got["suppress"]["noop_fraction"] == 0.0
    full = lambda h, r: table[(h, r)]  # noqa: E731
    free = shape.suppress_length(model, world, line1s, l2, runners, full, hook, "nl", 16.0)
    assert free == shape.suppress_length(model, world, line1s, l2, runners, full, hook, "nl", 16.0, 0)
    assert free["suppress"]["k"] > 0 and len(free["suppress"]["examples"]) == min(3, free["suppress"]["k"])


@pytest.fixture(scope="module")
def green(verse, lengths):
    """green_and_habit's inputs: fit prompts, 30 select and 30 report prompts, their clean line 2s and
    runners-up."""
    model, world, clean, line1s = verse
    sets = {"fit": lengths[0], "select": line1s[:30], "report": line1s[30:]}
    l2 = {k: clean(v) for k, v in sets.items()}
    return sets, l2, {k: runner_ups(model, world, sets[k], l2[k]) for k in ("select", "report")}


def test_green_and_habit_choose_hook_and_scale_on_select_and_report_on_report(verse, lengths, green):
    model, world, _, _ = verse
    _, fit_l2, acts, _ = lengths
    hooks = resid_hooks(model.cfg)
    sets, l2, runners = green
    for seed in (0, 1):
        green_and_habit_on(model, world, sets, l2, runners, acts, fit_l2, hooks, seed)


def test_the_opener_forced_runs_write_after_each_report_prompts_clean_opener(verse, lengths, green, monkeypatch):
    """The direct effect's runs are given the clean opener (line 2 before its article and ending) of the prompt
    they edit, and write on from it. On this model forced and free runs often hit alike, so the rates alone
    cannot show that a run was forced: the line 2s written are checked."""
    model, world, _, _ = verse
    acts, hooks = lengths[2], resid_hooks(model.cfg)
    sets, l2, runners = green
    opener = {tuple(a): x[:len(x) - 4] for a, x in zip(sets["report"], l2["report"])}
    forced_calls = []

    def spy(model, world, line1s, edits=None, forced=None, **kw):
        written = write_line2(model, world, line1s, edits, forced, **kw)
        if forced is not None:
            forced_calls.append(len(line1s))
            for a, f, w in zip(line1s, forced, written):
                assert f == opener[tuple(a)] and w[:len(f)] == f  # its own clean opener, and the line goes on from it
        return written
    monkeypatch.setattr(shape, "write_line2", spy)
    out = shape.green_and_habit(model, world, sets, l2, runners, {"fit": acts}, hooks)
    # green's and habit's edits, each beside its random control: four forced runs over the counted prompts
    assert forced_calls == [out["green"]["opener_forced"]["n"]] * 2 + [out["habit"]["opener_forced"]["n"]] * 2
    assert all(n > 0 for n in forced_calls)


def test_every_random_control_of_green_and_habit_is_drawn_from_the_seed_it_is_given(verse, lengths, green,
                                                                                   monkeypatch):
    """Each random direction is random_like(v, seed + row): a call that dropped the seed would draw from 0 + row.
    (On this model two seeds' random controls often hit alike, so the rates alone cannot show it.)"""
    model, world, _, line1s = verse
    acts = lengths[2]
    sets, l2, runners = green
    seeds = []

    def spy(v, seed):
        seeds.append(seed)
        return random_like(v, seed)
    monkeypatch.setattr(shape, "random_like", spy)
    shape.green_and_habit(model, world, sets, l2, runners, {"fit": acts}, resid_hooks(model.cfg), 1000)
    assert seeds and min(seeds) >= 1000 and max(seeds) < 1000 + len(line1s)


def green_and_habit_on(model, world, sets, l2, runners, acts, fit_l2, hooks, seed):
    args = () if seed == 0 else (seed,)  # seed 0 by default
    out = shape.green_and_habit(model, world, sets, l2, runners, {"fit": acts}, hooks, *args)
    dirs_at = lambda h, r: shape.length_directions(acts[h][r], fit_l2)  # noqa: E731
    tg = {k: shape.green_targets(world, sets[k], l2[k], dirs_at(hooks[-1], "nl"), seed) for k in ("select", "report")}
    openers = [x[:len(x) - 4] for x in l2["report"]]
    for name, run, args in (("green", shape.inject_lengths, {k: (sets[k], tg[k]) for k in tg}),
                            ("habit", shape.suppress_length, {k: (sets[k], l2[k], runners[k]) for k in tg})):
        key = "inject" if name == "green" else "suppress"
        got = out[name]
        curves = [{"hook": h, "scale": s, **run(model, world, *args["select"], dirs_at, h, "nl", s, seed)}
                  for h in hooks[:-1] for s in shape.SCALES]  # never the final residual
        chosen = shape.best(curves, key)
        assert (got["hook"], got["scale"]) == (chosen["hook"], chosen["scale"])
        report = run(model, world, *args["report"], dirs_at, got["hook"], "nl", got["scale"], seed)
        assert got["control_position"] == run(model, world, *args["report"], dirs_at, got["hook"], shape.CONTROL_ROLE,
                                              got["scale"], seed)[key]
        assert got["opener_forced"] == run(model, world, *args["report"], dirs_at, got["hook"], "nl", got["scale"],
                                           seed, forced=openers)[key]
        extra = {"n_no_target": sum(t is None for t in tg["report"])} if name == "green" else {}
        assert got == {"hook": got["hook"], "scale": got["scale"], **report, **extra,
                       "control_position": got["control_position"], "opener_forced": got["opener_forced"]}
        for rate_ in (got[key], got["random"], got["control_position"], got["opener_forced"]):
            assert rate_["n"] > 0 and rate_["noop_fraction"] == 0.0  # every reported rate: its n and its no-op share
        assert report != run(model, world, *args["select"], dirs_at, got["hook"], "nl", got["scale"], seed)  # select's
    assert out["green"]["n_no_target"] > 0 and out["green"]["inject"]["k"] > 0


def test_inject_lengths_finds_the_role_and_judges_the_couplet_by_the_worlds_own_grammar():
    """A list world (untrained model): its line 1s parse, and its couplets are checked, by its own rules."""
    from model import GPT, GPTConfig
    world = CoupletWorld(LIST)
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=len(world.itos), block_size=world.max_len(), n_layer=1, n_head=1, d_model=16,
                          d_mlp=32)).eval()
    line1s = ["she saw a goat and a cake".split()] + [c.line1 for c in world.split("train")[:7]]
    targets = [(1, list(world.itos))] * len(line1s)  # every token: each line 2 that ends at all is judged
    dirs = {1: torch.randn(16)}
    got = shape.inject_lengths(model, world, line1s, targets, lambda h, r: dirs, "blocks.0.hook_resid_pre", "nl", 4.0)
    rows, words = list(range(len(line1s))), [t[1] for t in targets]
    assert got["inject"] == judged(model, world, line1s, rows, [dirs[1] * 4.0] * len(rows), "nl",
                                   "blocks.0.hook_resid_pre", words)
    assert got["inject"]["n"] == len(line1s)
    l2 = write_line2(model, world, line1s)
    l2[0] = "then she saw a snake".split()  # a valid list couplet (its cue: an animal; its rhyme: -ake)
    got = shape.suppress_length(model, world, line1s, l2, ["rattlesnake"] * 8, lambda h, r: {1: dirs[1], 3: dirs[1]},
                                "blocks.0.hook_resid_pre", "nl", 4.0)
    assert (got["n_other_length"], got["n_same_length"]) == (1, 0)
