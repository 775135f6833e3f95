"""interp/interventions.py exactly: sites, targets, scale choice, outcomes (docs/mutation.md)."""
import pytest
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



# ---- hit_rate on the poet, against its line 2s (docs/mutation.md) ------------------------------------------------
def test_hit_rate_is_the_share_of_line2s_ending_in_the_target_over_prompts_with_both(poet):
    from model import load_checkpoint
    from interp.edits import activations, noop_fraction, write_line2
    from interp.stats import rate
    model, ckpt = load_checkpoint(poet)
    world = CoupletWorld(WorldConfig(**ckpt["world_config"]))
    line1s = [c.line1 for c in world.split("test")[:30]]
    clean = write_line2(model, world, line1s)
    site = iv.Site(1, "nl")
    zero = iv.at_site(world, site, line1s, [torch.zeros(model.cfg.d_model)] * len(line1s))
    targets = [x[-1] for x in clean]
    targets[0], targets[1] = None, "cat"  # no target; a target the clean line 2 misses
    edits = list(zero)
    edits[2] = None  # no edit
    got = iv.hit_rate(model, world, line1s, edits, targets)
    rows = [1] + list(range(3, 30))  # a zero edit writes the clean line 2 and is a no-op
    assert got == {**rate([clean[i][-1] == targets[i] for i in rows]), "noop_fraction": 1.0}
    assert (got["n"], got["k"]) == (28, 27 + (clean[1][-1] == "cat"))
    forced = [x[:len(x) - 4] for x in clean[1:] + clean[:1]]  # the next prompt's opener, teacher-forced
    written = write_line2(model, world, line1s, zero, forced)
    got = iv.hit_rate(model, world, line1s, edits, targets, forced)
    assert got == {**rate([written[i][-1] == targets[i] for i in rows]), "noop_fraction": 1.0} and got["k"] < 27
    # a real edit: the residual of B (A with another rhyme word) at the rhyme word entering layer 1, set
    from interp.prompts import swap_pairs
    pairs = swap_pairs(world, line1s, "rhyme")
    assert [a for a, _ in pairs] == line1s
    other = [b for _, b in pairs]
    donor = write_line2(model, world, other)
    rhyme = iv.Site(1, "rhyme")
    acts = activations(model, world, other, [[] for _ in other], [rhyme.hook()])[rhyme.hook()]
    patch = iv.at_site(world, rhyme, line1s, [a[iv._pos(world, b, "rhyme")] for a, b in zip(acts, other)], "set")
    want = [y[-1] for y in donor]
    for forced in (None, [x[:len(x) - 4] for x in clean]):
        got = iv.hit_rate(model, world, line1s, patch, want, forced)
        written = write_line2(model, world, line1s, patch, forced)
        assert got == {**rate([w[-1] == t for w, t in zip(written, want)]),
                       "noop_fraction": noop_fraction(model, world, line1s, patch)}
        assert got["noop_fraction"] == 0.0
    assert iv.hit_rate(model, world, line1s, patch, want)["k"] > 0


# ---- add_only and suppress on the poet: what each run is given (docs/mutation.md) ------------------------------
@pytest.fixture(scope="module")
def poem(poet):
    from model import load_checkpoint
    from interp.edits import write_line2
    model, ckpt = load_checkpoint(poet)
    world = CoupletWorld(WorldConfig(**ckpt["world_config"]))
    line1s = [c.line1 for c in world.split("test")[:40]]
    return model, world, line1s, write_line2(model, world, line1s)


def record(monkeypatch, name):
    """Record every call of interventions.<name> (its arguments), then run it."""
    calls, real = [], getattr(iv, name)

    def spy(*args, **kw):
        calls.append((args, kw))
        return real(*args, **kw)
    monkeypatch.setattr(iv, name, spy)
    return calls


def test_hit_rate_counts_no_ops_over_the_prompts_it_counts(poem):
    model, world, line1s, clean = poem
    site = iv.Site(1, "nl")
    edits = iv.at_site(world, site, line1s, [torch.zeros(model.cfg.d_model)] * len(line1s))
    edits[0] = iv.at_site(world, site, line1s[:1], [torch.ones(model.cfg.d_model)])[0]  # a real edit, no target
    targets = [None] + [x[-1] for x in clean[1:]]
    assert iv.hit_rate(model, world, line1s, edits, targets)["noop_fraction"] == 1.0


def test_add_only_adds_the_scaled_direction_beside_a_random_one_of_the_same_norm(poem, monkeypatch):
    model, world, line1s, clean = poem
    site = iv.Site(1, "nl")
    gen = torch.Generator().manual_seed(0)
    dirs = {x[-1]: torch.randn(model.cfg.d_model, generator=gen) for x in clean}
    targets = [x[-1] for x in clean]
    targets[3] = None
    calls = record(monkeypatch, "hit_rate")
    out = iv.add_only(model, world, site, line1s, targets, dirs, scales=(0.5, 2.0), seed=5)
    assert list(out) == ["0.5", "2.0"] and len(calls) == 4
    for s, (inject, random_) in zip((0.5, 2.0), zip(calls[::2], calls[1::2])):
        for i, (a, b) in enumerate(zip(inject[0][3], random_[0][3])):
            if targets[i] is None:
                assert a is None and b is None
                continue
            [ea], [eb] = a, b
            assert (ea.hook, ea.pos, ea.op) == (eb.hook, eb.pos, eb.op) == (site.hook(), iv._pos(world, line1s[i], "nl"),
                                                                             "add")
            assert torch.equal(ea.value, dirs[targets[i]] * s)
            assert torch.allclose(eb.value.norm(), ea.value.norm()) and not torch.allclose(eb.value, ea.value)


def test_suppress_subtracts_the_planned_words_direction_free_and_from_the_clean_opener(poem, monkeypatch):
    from collections import Counter
    from interp.directions import contrastive
    model, world, line1s, clean = poem
    site = iv.Site(1, "nl")
    runners = iv.runner_ups(model, world, line1s, clean)
    gen = torch.Generator().manual_seed(1)
    cdirs = contrastive({w: torch.randn(model.cfg.d_model, generator=gen) for w in sorted(NOUNS)
                         if w != clean[0][-1]})  # the first prompt's ending has no direction
    calls = record(monkeypatch, "write_line2")
    out = iv.suppress(model, world, site, line1s, clean, runners, cdirs, 3.0)
    with_dir = [i for i, x in enumerate(clean) if x[-1] in cdirs and runners[i] is not None]
    rows = [i for i in with_dir if cdirs[clean[i][-1]].norm() > 1e-6]  # a word alone in its cell: c_w = 0
    assert out["n"] == len(rows) > 0 and out["n_zero_edit"] == len(with_dir) - len(rows)
    assert out["n_no_direction"] == sum(r is not None for r in runners) - len(with_dir) > 0
    (free_args, _), (forced_args, _) = calls
    for args, forced in ((free_args, None), (forced_args, [iv.opener(clean[i]) for i in rows])):
        assert args[2] == [line1s[i] for i in rows] and args[4] == forced
        for i, [e] in zip(rows, args[3]):  # minus scale times the planned ending's direction, at the site
            assert (e.hook, e.pos, e.op) == (site.hook(), iv._pos(world, line1s[i], "nl"), "add")
            assert torch.equal(e.value, -3.0 * cdirs[clean[i][-1]])
    free = iv.write_line2(model, world, *free_args[2:])
    forced = iv.write_line2(model, world, *forced_args[2:])
    assert all(w[:len(f)] == f for w, f in zip(forced, forced_args[4]))  # written on from the clean opener
    for mode, written in (("free", free), ("opener_forced", forced)):
        kinds = Counter(iv.outcome(w, clean[i][-1], runners[i]) for w, i in zip(written, rows))
        assert out[mode]["counts"] == {k: kinds[k] for k in iv.OUTCOMES}
        assert out[mode]["runner_up_rate"]["k"] == kinds["runner_up"]
