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
