"""interp/interventions.py exactly: sites, targets, scale choice, outcomes (docs/mutation.md)."""
import torch

from data import CoupletWorld, WorldConfig
from lexicon import NOUNS
from interp import interventions as iv

LIST = WorldConfig(n_train=50, n_test=10, grammar="list")


# ---- sites and targets, by hand (docs/mutation.md) ------------------------------------------------------------
def test_a_site_names_its_residual_hook_and_reads_back_as_a_dict():
    site = iv.Site(2, "nl")
    assert site.hook() == "blocks.2.hook_resid_pre" and site.as_dict() == {"layer": 2, "role": "nl"}
    assert iv.Site(**site.as_dict()) == site


def test_at_site_makes_one_edit_per_prompt_at_its_roles_position_or_none():
    world = CoupletWorld(LIST)
    line1s = ["today she saw a goat and a cake".split(), "she saw a goat and a cake".split(),
              "today he saw a cat and a hat".split()]
    v, w = torch.ones(4), torch.full((4,), 2.0)
    out = iv.at_site(world, iv.Site(1, "pre1"), line1s, [v, v, None])  # no preamble; no vector
    assert out[1:] == [None, None] and len(out) == 3
    [e] = out[0]
    assert (e.hook, e.pos, e.op, e.head) == ("blocks.1.hook_resid_pre", 1, "add", None) and torch.equal(e.value, v)
    assert iv._pos(world, line1s[1], "rhyme") == 7 and iv._pos(world, line1s[1], "pre1") is None
    [[e1], [e2], [e3]] = iv.at_site(world, iv.Site(0, "rhyme"), line1s, [v, w, v], "set")
    assert [(e.pos, e.op) for e in (e1, e2, e3)] == [(8, "set"), (7, "set"), (8, "set")] and torch.equal(e2.value, w)


def test_injection_targets_are_words_of_the_asked_kind_not_in_line_1_drawn_seeded():
    world = CoupletWorld(WorldConfig(n_train=3000, n_test=200))
    couplets = world.split("test")[:40]
    line1s, endings = [c.line1 for c in couplets], [c.line2[-1] for c in couplets]
    words = set(NOUNS)
    for kind, same in (("other_rhyme", (False, True)), ("other_meaning", (True, False)), ("two_facts", (False, False))):
        got = iv.injection_targets(world, line1s, endings, words, kind)
        assert all(t is not None for t in got)
        for l1, e, t in zip(line1s, endings, got):
            assert t not in l1 and t != e
            assert (NOUNS[t].family == NOUNS[e].family, NOUNS[t].meaning == NOUNS[e].meaning) == same, (kind, e, t)
        assert iv.injection_targets(world, line1s, endings, words, kind, seed=0) == got  # seed 0 by default
        assert iv.injection_targets(world, line1s, endings, words, kind, seed=1) != got  # a seeded draw
    cake = "she saw a goat with a hat and went to find a cake".split()
    # not a noun first (and nothing stops there); a word in line 1 (goat), a same-family one (rattlesnake) and
    # another meaning (cake) never qualify: cat is the only other-rhyme animal here
    got = iv.injection_targets(world, [cake, cake, cake, cake], [None, "snake", "the", "snake"],
                               {"goat", "rattlesnake", "cake", "cat"}, "other_rhyme")
    assert got == [None, "cat", None, "cat"]
    assert iv.injection_targets(world, [cake], ["snake"], {"goat", "rattlesnake", "cake"}, "other_rhyme") == [None]
    assert iv.injection_targets(world, [cake], ["snake"], set(), "two_facts") == [None]


def test_best_scale_is_the_nonzero_scale_furthest_above_its_control_ties_to_the_larger():
    def curve(*rows, key="inject"):
        return {s: {key: {"rate": a}, "random": {"rate": b}} for s, a, b in rows}
    assert iv.best_scale(curve(("0.0", 0.9, 0.0), ("0.5", 0.6, 0.5), ("1.0", 0.4, 0.0), ("2.0", 0.3, 0.0))) == "1.0"
    assert iv.best_scale(curve(("0.5", 0.3, 0.0), ("1.0", 0.5, 0.2), ("2.0", 0.1, 0.0))) == "1.0"  # tie: larger
    assert iv.best_scale(curve(("0.0", 0.0, 0.0), ("0.5", 0.2, 0.1), ("1.0", 0.2, 0.3))) == "0.5"
    assert iv.best_scale(curve(("0.0", 0.0, 0.0), ("1.0", 0.1, 0.3), ("2.0", 0.2, 0.3))) == "2.0"  # never 0
    assert iv.best_scale(curve(("1.0", None, None), ("2.0", 0.2, 0.1))) == "2.0"  # no prompts: a rate of 0
    assert iv.best_scale(curve(("1.0", 0.1, None), ("2.0", 0.2, 0.2))) == "1.0"
    assert iv.best_scale(curve(("1.0", 0.5, 0.0), ("2.0", 0.6, 0.9)), control=None) == "2.0"  # no control
    assert iv.best_scale(curve(("1.0", 0.5, 0.0), ("2.0", 0.1, 0.0), key="steer"), key="steer") == "1.0"
    assert iv.best_scale({"1": {"a": {"rate": 0.1}, "b": {"rate": 0.0}},
                          "4": {"a": {"rate": 0.3}, "b": {"rate": 0.3}}}, "a", "b") == "1"


def test_is_edit_is_a_vector_that_is_not_numerically_zero():
    assert not iv.is_edit(None) and not iv.is_edit(torch.zeros(3)) and not iv.is_edit(torch.full((3,), 1e-8))
    assert iv.is_edit(torch.tensor([0.0, 1e-3, 0.0])) and iv.is_edit(-torch.ones(2))
    assert not iv.is_edit(torch.tensor([0.0, 1e-3]), tol=1e-2) and iv.is_edit(torch.tensor([0.0, 1e-3]), tol=1e-4)


def test_opener_is_line_2_before_its_first_article():
    assert iv.opener("then she saw a cat".split()) == ["then", "she", "saw"]
    assert iv.opener("at last he met an owl and a cat".split()) == ["at", "last", "he", "met"]
    assert iv.opener("then she saw".split()) == ["then", "she", "saw"] and iv.opener([]) == []

