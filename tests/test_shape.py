"""The shape plan (interp/shape.py): each test checks what a number's name promises."""
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

CLASSIC = WorldConfig(n_train=3000, n_test=200)
LIST = WorldConfig(n_train=50, n_test=10, grammar="list")


def test_opener_length_and_the_fixed_taxonomy():
    world = CoupletWorld(CLASSIC)
    l1 = "she saw a goat with a hat and went to find a cake".split()
    assert shape.opener_length("one sunny day she met a snake".split()) == 4
    assert shape.opener_length("and then she met a rattlesnake".split()) == 2
    assert shape.opener_length("met a snake".split()) is None
    kinds = [shape.written_class(world, l1, w.split(), "snake", "lake") for w in
             ("one sunny day she met a snake", "and then she met a rattlesnake", "one sunny day she saw a lake",
              "and then she met a snake")]
    assert kinds == ["same_word", "cell_mate_valid", "donor", "broken"]  # the last breaks the meter


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


def test_green_targets_are_valid_cell_mates_of_another_length():
    world = CoupletWorld(CLASSIC)
    couplets = world.split("test")[:80]
    line1s, line2s = [c.line1 for c in couplets], [c.line2 for c in couplets]
    dirs = {1: torch.ones(4), 2: torch.ones(4), 3: torch.ones(4)}
    targets = shape.green_targets(world, line1s, line2s, dirs)
    assert any(t is not None for t in targets)
    for l1, l2, t in zip(line1s, line2s, targets):
        if t is None:
            continue
        length, words = t
        assert length != NOUNS[ending(l2)].syllables
        for w in words:
            assert NOUNS[w].syllables == length
            assert NOUNS[w].family == NOUNS[ending(l2)].family and NOUNS[w].meaning == NOUNS[ending(l2)].meaning


# ---- on the poet fixture: a model that writes valid couplets, so every loop below counts something ----
import pytest  # noqa: E402


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


def test_the_shape_measure_counts_valid_couplets_at_the_donors_length_only():
    world = CoupletWorld(CLASSIC)
    a = "she saw a goat with a hat and went to find a cake".split()  # animal -ake: snake (1), rattlesnake (3)
    row = (a, None, "one sunny day she met a snake".split(), "and then she met a rattlesnake".split())
    written = ["and then she met a rattlesnake",      # valid, the donor's length: counted
               "and then she met a snake",            # the donor's opener, broken meter: not counted
               "one sunny day she met a snake",       # valid, A's own length: not counted
               "and then she met a lake"]             # broken rhyme and meaning
    got = shape.judge(world, [row] * 4, [w.split() for w in written])
    assert got["donor_valid"]["k"] == 1 and got["donor_valid"]["n"] == 4
    assert got["opener"]["k"] == 3  # the raw opener rate counts the broken couplets too
    other = shape.judge(world, [row] * 4, [w.split() for w in written], "other")
    assert other["other_valid"]["k"] == 1


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


# ---- the measures' pure parts, exactly (docs/mutation.md) ----------------------------------------------------
def test_the_valid_couplet_measures_read_the_right_line2s_length():
    world = CoupletWorld(CLASSIC)
    a = "she saw a goat with a hat and went to find a cake".split()  # animal -ake: snake (1), rattlesnake (3)
    snake, rattle = "one sunny day she met a snake".split(), "and then she met a rattlesnake".split()
    broken = "and then she met a snake".split()  # the meter
    row = (a, None, snake, rattle)  # A wrote snake; the donor (B) rattlesnake
    assert [shape.donor_valid(world, row, w) for w in (rattle, snake, broken)] == [True, False, False]
    assert [shape.other_valid(world, row, w) for w in (rattle, snake, broken)] == [True, False, False]
    control = (a, None, snake, snake)  # a donor of A's own length
    assert [shape.donor_valid(world, control, w) for w in (rattle, snake)] == [False, True]
    assert [shape.other_valid(world, control, w) for w in (rattle, snake)] == [True, False]
    assert [shape.length_of(w) for w in ("rattlesnake", "wombat", "snake", "the", None)] == [3, 2, 1, None, None]
    # the world's own rules judge: a list world's couplet is valid there (and its line 1 is no classic line 1)
    lw = CoupletWorld(WorldConfig(n_train=50, n_test=10, grammar="list"))
    la = "she saw a goat and a cake".split()
    lrow = (la, None, "then she saw a snake".split(), "then she saw a rattlesnake".split())
    assert shape.donor_valid(lw, lrow, lrow[3]) and shape.other_valid(lw, lrow, lrow[3])
    assert shape.written_class(lw, la, lrow[3], "snake", None) == "cell_mate_valid"


def test_written_class_takes_one_donor_word_or_a_set_of_them():
    world = CoupletWorld(CLASSIC)
    a = "she saw a goat with a hat and went to find a cake".split()
    snake, rattle = "one sunny day she met a snake".split(), "and then she met a rattlesnake".split()
    assert shape.written_class(world, a, rattle, "snake", ("rattlesnake",)) == "donor"  # green's cell-mates
    assert shape.written_class(world, a, rattle, "snake", ["lake", "rattlesnake"]) == "donor"
    assert shape.written_class(world, a, rattle, "snake", "rattle") == "cell_mate_valid"  # a word, not letters
    assert shape.written_class(world, a, rattle, "snake", None) == "cell_mate_valid"
    assert shape.written_class(world, a, snake, "snake", ()) == "same_word"
    assert shape.written_class(world, a, "and then she met a lake".split(), "snake", None) == "broken"


def test_eligibility_asks_whether_the_cell_has_a_word_of_that_length():
    world = CoupletWorld(CLASSIC)
    a = "she saw a goat with a hat and went to find a cake".split()      # cell lengths {1, 3}
    box = "she saw a goat beside a box".split()                          # fox, ox: {1}
    snake, rattle = "one sunny day she met a snake".split(), "and then she met a rattlesnake".split()
    wombat, fox = "that morning she met a wombat".split(), "one sunny day she met a fox".split()
    assert shape.cell_lengths(world, a) == {1, 3} and shape.cell_lengths(world, box) == {1}
    assert [shape.donor_eligible(world, r) for r in ((a, None, snake, rattle), (a, None, snake, wombat),
                                                     (box, None, fox, rattle))] == [True, False, False]
    assert [shape.other_eligible(world, r) for r in ((a, None, snake, rattle), (a, None, snake, wombat),
                                                     (box, None, fox, rattle), (a, None, rattle, snake))] == \
        [True, True, False, True]
    # judge counts each measure over its own eligible rows: a donor of length 2 has no valid couplet in A's cell
    rows, written = [(a, None, snake, wombat), (a, None, snake, rattle)], [rattle, rattle]
    assert shape.judge(world, rows, written) == {"opener": rate([False, True]),
                                                 "donor_valid": rate([True])}
    assert shape.judge(world, rows, written, "other") == {"opener": rate([False, True]),
                                                          "other_valid": rate([True, True])}


def test_choose_layer_takes_the_best_allowed_layer_with_pairs_ties_to_openers_then_the_lower_layer():
    def cell(layer, rate, opener, n=5, key="donor_valid"):
        return {"layer": layer, key: {"rate": rate, "n": n}, "opener": {"rate": opener}}
    grid = {"nl": [cell(0, 0.9, 0.9), cell(1, 0.5, 0.2), cell(2, 0.5, 0.4), cell(3, None, None, n=0), cell(4, 1.0, 1.0)]}
    assert shape.choose_layer(grid, [1, 2, 3]) == 2       # a tie on valid couplets: more openers at B's length
    assert shape.choose_layer(grid, [0, 1, 2, 3]) == 0
    assert shape.choose_layer(grid, [3]) is None           # no pairs there
    assert shape.choose_layer({"nl": [cell(2, 0.5, 0.4), cell(1, 0.5, 0.4)]}, [1, 2]) == 1  # then the lower layer
    assert shape.choose_layer({"nl": [cell(1, 0.5, None), cell(2, 0.5, 0.0)]}, [1, 2]) == 1  # no openers: 0
    assert shape.choose_layer({"nl": [cell(1, 0.5, None), cell(2, 0.5, 0.1)]}, [1, 2]) == 2
    assert shape.choose_layer({"seen": grid["nl"]}, [1, 2], role="seen") == 2
    assert shape.choose_layer({"seen": grid["nl"]}, [1, 2]) is None and shape.choose_layer({"nl": None}, [1]) is None
    other = {"nl": [cell(1, 0.1, 0.0, key="other_valid"), cell(2, 0.3, 0.0, key="other_valid")]}
    assert shape.choose_layer(other, [1, 2], key="other_valid") == 2


def test_the_searchable_layers_are_the_inner_residuals():
    from model import GPTConfig
    assert shape.searchable_layers(GPTConfig(n_layer=4)) == [1, 2, 3]
    assert shape.searchable_layers(GPTConfig(n_layer=1)) == []


# ---- length pairs, green targets and the small readers, by hand (docs/mutation.md) --------------------------
from couplet_rules import parse_line1  # noqa: E402
from interp.prompts import swap_options  # noqa: E402
from lexicon import VERBS, article  # noqa: E402

CAKE = "she saw a goat with a hat and went to find a cake".split()  # animal -ake: snake (1), rattlesnake (3)
BOX = "she saw a goat beside a box".split()                         # animal -ox: fox, ox (1 syllable only)
OPENER = {1: "one sunny day", 2: "that morning", 3: "and then"}     # the meter: opener + ending = 5 syllables


def couplet(world, line1, word, opener=None):
    """The valid classic line 2 of `line1` ending in `word` (its opener of the meter's length, or `opener`)."""
    n = NOUNS[word]
    opener = OPENER[n.syllables] if opener is None else opener
    return f"{opener} {parse_line1(line1, world.config).pronoun} {VERBS[n.meaning][0]} {article(word)} {word}".split()


class Written:
    """A hand-written clean model: `rule(line1)` is its line 2; it remembers every line 1 it was asked."""

    def __init__(self, rule):
        self.rule, self.asked = rule, []

    def __call__(self, line1s):
        self.asked += [list(l) for l in line1s]
        return [self.rule(list(l)) for l in line1s]


def partner_rule(world, own):
    """Line 2s by a fixed rule: `own` {line 1: line 2} as given; any other line 1 by the sum of its letters:
    broken (it ends in line 1's own rhyme noun), or valid ending in its cell's shortest or longest word."""
    def rule(l1):
        if tuple(l1) in own:
            return own[tuple(l1)]
        cell = sorted(shape.cell_of(world, l1), key=lambda w: (NOUNS[w].syllables, w))
        pick = sum(map(ord, " ".join(l1))) % 3
        return couplet(world, l1, [parse_line1(l1, world.config).rhyme, cell[0], cell[-1]][pick])
    return rule


def expected_pairs(world, a, x, tried, rule):
    """The docstring's pairs for one A from the partners it tried, in order: the first valid B at another of
    A's cell lengths (the donor), the first valid B whose opener has A's length (the control)."""
    ok = [(b, rule(b)) for b in tried if not check_couplet(b, rule(b), world.config)]
    other = shape.cell_lengths(world, a) - {shape.length_of(ending(x))}
    donor = next(((a, b, x, y) for b, y in ok if shape.length_of(ending(y)) in other), None)
    control = next(((a, b, x, y) for b, y in ok if shape.opener_length(y) == shape.opener_length(x)), None)
    return donor, control


def test_length_pairs_try_every_rhyme_and_cue_swap_in_a_seeded_order_and_take_the_first_that_fits():
    world = CoupletWorld(CLASSIC)
    x = couplet(world, CAKE, "snake")
    rule = partner_rule(world, {tuple(CAKE): x})
    options = [b for slot in ("rhyme", "cue") for b in swap_options(world, CAKE, slot)]
    clean = Written(rule)
    donors, controls = shape.length_pairs(world, [CAKE], clean)
    tried = [b for b in clean.asked if b != CAKE]
    assert sorted(tried) == sorted(options) and tried != options  # every partner once, shuffled
    donor, control = expected_pairs(world, CAKE, x, tried, rule)
    assert donor is not None and control is not None and donor != control
    assert (donors, controls) == ([donor], [control])
    assert shape.length_of(ending(donor[3])) == 3 and shape.opener_length(control[3]) == 4
    again = Written(rule)
    assert shape.length_pairs(world, [CAKE], again, seed=0) == (donors, controls) and again.asked == clean.asked
    other = Written(rule)
    shape.length_pairs(world, [CAKE], other, seed=1)
    assert other.asked != clean.asked  # another seed, another order
    few = Written(rule)
    got = shape.length_pairs(world, [CAKE], few, seed=1, tries=5)
    tried = [b for b in few.asked if b != CAKE]
    assert len(tried) == 5 and tried == [b for b in other.asked if b != CAKE][:5]  # the first 5 of that order
    assert got == tuple([p] if p else [] for p in expected_pairs(world, CAKE, x, tried, rule))


def test_length_pairs_skip_a_broken_or_one_length_a_and_keep_each_partners_own_line2():
    world = CoupletWorld(CLASSIC)
    hat = "he saw a cat beside a hat".split()                      # animal -at: cat, rat, bat (1), wombat (2)
    he_cake = ["he"] + CAKE[1:]
    own = {tuple(BOX): couplet(world, BOX, "fox"),                  # valid, but one length in the cell
           tuple(he_cake): "and then he met a snake".split(),       # broken: the meter
           tuple(CAKE): couplet(world, CAKE, "snake"), tuple(hat): couplet(world, hat, "wombat")}
    rule = partner_rule(world, own)
    clean = Written(rule)
    donors, controls = shape.length_pairs(world, [BOX, he_cake, CAKE, hat], clean)
    partners = {tuple(b) for a in (CAKE, hat) for slot in ("rhyme", "cue") for b in swap_options(world, a, slot)}
    assert {tuple(b) for b in clean.asked} - set(own) == partners  # only the last two A's partners are tried
    assert [r[0] for r in donors] == [CAKE, hat] and [r[0] for r in controls] == [CAKE, hat]
    for a, b, x, y in donors + controls:
        assert x == own[tuple(a)] and y == rule(b) and not check_couplet(b, y, world.config)
    assert [shape.length_of(ending(r[3])) for r in donors] == [3, 1]
    assert [shape.opener_length(r[3]) for r in controls] == [4, 3]
    assert shape.length_pairs(world, [BOX, he_cake], Written(rule)) == ([], [])
    broken = Written(lambda l1: own.get(tuple(l1), "and then he met a".split()))  # no partner writes a couplet
    assert shape.length_pairs(world, [CAKE, hat], broken) == ([], []) and len(broken.asked) > 2


def test_length_pairs_judge_couplets_by_the_worlds_own_rules():
    """Without a meter any of the grammar's openers goes with any ending: the pairs count such couplets."""
    world = CoupletWorld(WorldConfig(n_train=50, n_test=10, meter=False))
    short = lambda l1: couplet(world, l1, min(shape.cell_of(world, l1), key=shape.length_of), "and then")  # noqa: E731
    assert check_couplet(CAKE, short(CAKE), CLASSIC) == ["meter"] and not check_couplet(CAKE, short(CAKE), world.config)
    clean = Written(short)
    donors, controls = shape.length_pairs(world, [CAKE], clean)
    tried = [b for b in clean.asked if b != CAKE]
    donor, control = expected_pairs(world, CAKE, short(CAKE), tried, short)
    assert control is not None and (donors, controls) == ([donor] if donor else [], [control])


def test_green_targets_name_the_other_length_and_its_cell_mates_or_none():
    world = CoupletWorld(CLASSIC)
    hat = "he saw a cat beside a hat".split()
    dirs = {1: torch.ones(2), 3: torch.ones(2)}  # no direction for 2 syllables
    line1s = [CAKE, CAKE, BOX, hat, CAKE, CAKE, CAKE, hat]
    line2s = [couplet(world, CAKE, "rattlesnake", "one sunny day"),  # broken (the meter), ends in a noun
              [],                                                    # nothing written
              couplet(world, BOX, "fox"),                            # one length in the cell
              couplet(world, hat, "cat"),                            # the other length (wombat, 2) has no direction
              couplet(world, CAKE, "snake"), couplet(world, CAKE, "rattlesnake"),
              "one sunny day she met a the".split(),                  # no noun at the end
              couplet(world, hat, "wombat")]
    got = shape.green_targets(world, line1s, line2s, dirs)
    assert got == [None, None, None, None, (3, ["rattlesnake"]), (1, ["snake"]), None, (1, ["cat", "rat", "bat"])]
    assert shape.green_targets(world, line1s, line2s, {1: None, 2: None, 3: None})[3] == (2, ["wombat"])
    # a list world's line 1 and rules: its cell, its valid couplets
    lw = CoupletWorld(WorldConfig(n_train=50, n_test=10, grammar="list"))
    la = "she saw a goat and a cake".split()
    assert shape.cell_of(lw, la) == ["snake", "rattlesnake"]
    assert shape.green_targets(lw, [la], ["then she saw a snake".split()], dirs) == [(3, ["rattlesnake"])]


def test_cell_of_is_the_valid_endings_of_line_1s_meaning_and_rhyme():
    world = CoupletWorld(CLASSIC)
    assert shape.cell_of(world, CAKE) == ["snake", "rattlesnake"]
    assert shape.cell_of(world, "he saw a cat beside a hat".split()) == ["cat", "rat", "bat", "wombat"]
    assert shape.cell_of(world, "he saw a rat beside a cat".split()) == ["rat", "bat", "wombat"]  # not the rhyme word


def test_valid_change_is_a_new_ending_in_a_valid_couplet():
    world = CoupletWorld(CLASSIC)
    snake, rattle = couplet(world, CAKE, "snake"), couplet(world, CAKE, "rattlesnake")
    assert shape.valid_change(world, CAKE, rattle, "snake")
    assert not shape.valid_change(world, CAKE, snake, "snake")                              # the same ending
    assert not shape.valid_change(world, CAKE, "and then she met a snake".split(), "rattlesnake")  # broken
    assert not shape.valid_change(world, CAKE, [], "snake")
    free = CoupletWorld(WorldConfig(n_train=50, n_test=10, meter=False))  # its own rules: no meter there
    assert shape.valid_change(free, CAKE, "and then she met a snake".split(), "rattlesnake")


def test_best_takes_the_largest_rate_over_its_random_control_ties_to_the_earlier_entry():
    def c(name, rate, rnd, key="inject"):
        return {"hook": name, key: {"rate": rate}, "random": {"rate": rnd}}
    assert shape.best([c("a", 0.6, 0.5), c("b", 0.4, 0.0), c("c", 0.3, 0.0)], "inject")["hook"] == "b"
    assert shape.best([c("a", 0.2, 0.0), c("b", 0.5, 0.3), c("c", 0.1, 0.0)], "inject")["hook"] == "a"  # the tie: earlier
    assert shape.best([c("a", None, None), c("b", 0.2, 0.1)], "inject")["hook"] == "b"  # no prompts: a rate of 0
    assert shape.best([c("a", 0.0, None), c("b", 0.3, 0.2)], "inject")["hook"] == "b"
    assert shape.best([c("a", 0.1, 0.3), c("b", 0.1, None)], "inject")["hook"] == "b"
    assert shape.best([c("a", 0.1, 0.0, "suppress"), c("b", 0.3, 0.0, "suppress")], "suppress")["hook"] == "b"


def test_length_directions_are_the_mean_difference_of_each_written_length():
    world = CoupletWorld(CLASSIC)
    hat = "he saw a cat beside a hat".split()
    acts = torch.tensor([[1.0, 0.0], [3.0, 0.0], [2.0, 0.0],      # snake (1 syllable), three times
                         [0.0, 2.0], [0.0, 4.0], [0.0, 6.0],      # wombat (2), three times
                         [8.0, 2.0],                              # rattlesnake (3): one row, no direction
                         [5.0, 5.0], [7.0, 7.0], [9.0, 9.0]])     # nothing, no noun at the end, an empty line
    line2s = [couplet(world, CAKE, "snake")] * 3 + [couplet(world, hat, "wombat")] * 3 + \
        [couplet(world, CAKE, "rattlesnake"), None, "one sunny day she met a".split(), []]
    dirs = shape.length_directions(acts, line2s)
    mu = torch.tensor([2.0, 2.0])  # the mean of the 7 rows with a noun ending
    assert set(dirs) == {1, 2}
    assert torch.equal(dirs[1], torch.tensor([2.0, 0.0]) - mu) and torch.equal(dirs[2], torch.tensor([0.0, 4.0]) - mu)


def test_article_counts_and_the_meter_read_what_they_name():
    assert shape.article_of("then she saw an owl".split()) == "an" and shape.article_of(["a", "cat"]) == "a"
    assert shape.article_of(["cat"]) is None and shape.article_of([]) is None
    assert shape.counts(["donor", "broken", "donor"]) == {"same_word": 0, "cell_mate_valid": 0, "donor": 2,
                                                          "broken": 1}
    assert shape.counts([]) == dict.fromkeys(shape.CLASSES, 0)
    assert shape.has_meter(CoupletWorld(CLASSIC))
    assert not shape.has_meter(CoupletWorld(WorldConfig(n_train=50, n_test=10, meter=False)))
    assert not shape.has_meter(CoupletWorld(WorldConfig(n_train=50, n_test=10, grammar="list")))


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


def test_green_and_habit_choose_hook_and_scale_on_select_and_report_on_report(verse, lengths):
    model, world, clean, line1s = verse
    fit, fit_l2, acts, _ = lengths
    hooks = resid_hooks(model.cfg)
    sets = {"fit": fit, "select": line1s[:30], "report": line1s[30:]}
    l2 = {k: clean(v) for k, v in sets.items()}
    runners = {k: runner_ups(model, world, sets[k], l2[k]) for k in ("select", "report")}
    for seed in (0, 1):
        green_and_habit_on(model, world, sets, l2, runners, acts, fit_l2, hooks, seed)


def test_the_opener_forced_runs_write_after_each_report_prompts_clean_opener(verse, lengths, monkeypatch):
    """The direct effect's runs are given the clean opener (line 2 before its article and ending) of the prompt
    they edit, and write on from it. On this model forced and free runs often hit alike, so the rates alone
    cannot show that a run was forced: the line 2s written are checked."""
    model, world, clean, line1s = verse
    fit, _, acts, _ = lengths
    hooks = resid_hooks(model.cfg)
    sets = {"fit": fit, "select": line1s[:30], "report": line1s[30:]}
    l2 = {k: clean(v) for k, v in sets.items()}
    runners = {k: runner_ups(model, world, sets[k], l2[k]) for k in ("select", "report")}
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


def test_every_random_control_of_green_and_habit_is_drawn_from_the_seed_it_is_given(verse, lengths, monkeypatch):
    """Each random direction is random_like(v, seed + row): a call that dropped the seed would draw from 0 + row.
    (On this model two seeds' random controls often hit alike, so the rates alone cannot show it.)"""
    model, world, clean, line1s = verse
    fit, _, acts, _ = lengths
    sets = {"fit": fit, "select": line1s[:30], "report": line1s[30:]}
    l2 = {k: clean(v) for k, v in sets.items()}
    runners = {k: runner_ups(model, world, sets[k], l2[k]) for k in ("select", "report")}
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
