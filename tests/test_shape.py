"""The shape plan's pure parts (interp/shape.py), exactly: each test checks what a number's name promises.
The measures that write line 2 with a model are tested in tests/test_shape_on_model.py."""
import torch

from data import CoupletWorld, WorldConfig
from couplet_rules import check_couplet, parse_line1
from lexicon import NOUNS, VERBS, article
from interp import shape
from interp.edits import ending
from interp.prompts import swap_options
from interp.stats import rate

CLASSIC = WorldConfig(n_train=3000, n_test=200)


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


