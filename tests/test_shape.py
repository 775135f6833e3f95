"""The shape plan (interp/shape.py): each test checks what a number's name promises."""
import torch

from data import CoupletWorld, WorldConfig
from couplet_rules import check_couplet
from lexicon import NOUNS
from model import load_checkpoint
from interp import shape
from interp.edits import Edit, ending, resid_hooks, write_line2
from interp.prompts import Clean, swap_pairs
from interp.shape import _cache, _col_edits
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
