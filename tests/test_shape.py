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
