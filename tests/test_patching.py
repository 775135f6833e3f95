"""interp/patching.py: the LD effect of a patch, exact where the answer is known by construction, and the causal
sites chosen from select pairs (docs/mutation.md)."""
import pytest
import torch

from conftest import random_model
from data import CoupletWorld, WorldConfig
from lexicon import NOUNS, EPITHETS, article
from interp.edits import Edit, ending_logits, resid_hooks, activations
from interp.stats import ratio_of_sums
from interp.study import study

LIST = WorldConfig(n_train=3000, n_test=200, grammar="list")


def test_full_column_patch_effect_is_zero_with_itself_and_one_with_B():
    """Patching every position's residual entering layer 0 (and so every later one) from a run turns the
    run into that run: the normalized LD effect is 1 with B's residuals and 0 with A's own."""
    world = CoupletWorld(LIST)
    model = random_model(world, seed=1)
    a = [c.line1 for c in world.split("test")[:40]]
    b = [l[:-1] + [next(w for w in sorted(NOUNS) if w not in l and article(w) == article(l[-1]))] for l in a]
    prefix = [["then", "he", "saw", "a"] for _ in a]
    ea, eb = torch.tensor([world.stoi["cat"]] * len(a)), torch.tensor([world.stoi["dog"]] * len(a))
    hook = resid_hooks(model.cfg)[0]
    cache = {k: activations(model, world, x, prefix, [hook])[hook] for k, x in (("a", a), ("b", b))}
    ld = lambda logits: (logits[torch.arange(len(a)), eb] - logits[torch.arange(len(a)), ea]).tolist()
    ld_a, ld_b = ld(ending_logits(model, world, a, prefix)), ld(ending_logits(model, world, b, prefix))
    sign = [1.0 if y > x else -1.0 for x, y in zip(ld_a, ld_b)]  # which ending B prefers is arbitrary here
    ld_a, ld_b = [s * x for s, x in zip(sign, ld_a)], [s * x for s, x in zip(sign, ld_b)]
    for src, expect in (("b", 1.0), ("a", 0.0)):
        edits = [[Edit(hook, p, cache[src][i][p]) for p in range(len(cache[src][i]))] for i in range(len(a))]
        patched = [s * x for s, x in zip(sign, ld(ending_logits(model, world, a, prefix, edits)))]
        e = ratio_of_sums([x - y for x, y in zip(patched, ld_a)], [y - x for x, y in zip(ld_a, ld_b)])
        assert e["value"] == pytest.approx(expect, abs=1e-4)


def test_with_epithets_patching_scores_the_epithet_not_the_noun_that_copies_it():
    """A line 2 that names its ending's epithet before the noun is scored at the epithet: the prefix stops
    before it and the two endings compared are epithets (a noun after its epithet is a copy)."""
    from interp.patching import pair_runs
    from interp.prompts import swap_pairs
    world = CoupletWorld(WorldConfig(n_train=3000, n_test=200, grammar="list", epithet=True))
    model = random_model(world, seed=1)
    line2 = {tuple(c.line1): c.line2 for c in world.split("test")}
    clean = lambda l1s: [line2.get(tuple(l), ["then", "he", "saw", "a", "funny", "cat"]) for l in l1s]
    run = pair_runs(model, world, swap_pairs(world, list(map(list, line2))[:60], "rhyme"), clean)
    assert len(run.a) > 10
    for a, prefix, ea, eb in zip(run.a, run.prefix, run.ea, run.eb):
        assert prefix == clean([a])[0][:-2] and prefix[-1] == "a"
        assert world.itos[ea] in EPITHETS and world.itos[eb] in EPITHETS and ea != eb
    with pytest.raises(ValueError, match="world search"):
        study(model, world)


def test_every_column_patches_each_position_but_the_one_writing_the_ending(monkeypatch):
    """With line 2s that can be scored (the world's own, here), every prompt and line-2 position gets an
    effect, the line break included, and the position that writes the ending is left out."""
    from interp import patching
    world = CoupletWorld(LIST)
    line2 = {tuple(c.line1): c.line2 for c in world.split("test")}
    monkeypatch.setattr(patching, "Clean", lambda model, world: lambda l1s: [
        line2.get(tuple(l), ["then", "he", "saw", "a", "cat"]) for l in l1s])
    out = patching.every_column(random_model(world, seed=1), world, list(map(list, line2))[:40], n_pairs=40)
    for slot in ("rhyme", "cue"):
        assert out[slot]["n_pairs"] > 10
        assert "end_art" not in out[slot] and {"nl", "rhyme", "l2_pronoun"} <= set(out[slot])
        assert all(v is None or -50 < v < 50 for k, v in out[slot].items() if k != "n_pairs")


def test_patching_only_the_layers_a_site_needs_gives_the_same_effects_there():
    """Choosing a site needs single-layer patches at layers >= 1 only; computing just those changes none of them."""
    from interp.patching import patching
    from interp.prompts import swap_pairs
    world = CoupletWorld(LIST)
    model = random_model(world, seed=3)  # two layers: single patches at L0, L1 and L2 (the final residual)
    pairs = swap_pairs(world, [c.line1 for c in world.split("test")[:60]], "rhyme", 0)[:20]
    a_side = {tuple(a) for a, _ in pairs}
    clean = lambda line1s: [["then", "he", "saw", "a", "cat" if tuple(x) in a_side else "dog"] for x in line1s]
    full = patching(model, world, pairs, clean, free=False)
    part = patching(model, world, pairs, clean, free=False, only_layers=[1])
    assert full["n_pairs"] == len(pairs) > 0 and part["roles"] == full["roles"]
    assert part["single"][1] == full["single"][1] and any(v is not None for v in part["single"][1])
    assert all(v is None for l in (0, 2) for v in part["single"][l])


def test_causal_sites_read_only_select_pairs_and_fall_back_to_the_rhyme_plan():
    from interp.patching import choose_causal_sites
    roles = ["cue", "rhyme", "nl"]

    def maps(rhyme, cue):
        return {"rhyme": {"roles": roles, "single": rhyme}, "cue": {"roles": roles, "single": cue}}
    zeros = [[0.0] * 3 for _ in range(3)]
    rhyme = [[0.0] * 3, [0.0, 0.1, 0.9], [0.0, 0.0, 0.2]]   # the line break at layer 1 carries the rhyme
    cue = [[0.0] * 3, [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]]     # the meaning is read from the cue itself
    a = choose_causal_sites(maps(rhyme, cue), maps(zeros, zeros), [1, 2], roles)
    b = choose_causal_sites(maps(rhyme, cue), maps(rhyme, rhyme), [1, 2], roles)
    assert [(v["layer"], v["role"]) for v in a.values()] == [(v["layer"], v["role"]) for v in b.values()]
    assert (a["family"]["layer"], a["family"]["role"]) == (1, "nl")
    assert (a["meaning"]["layer"], a["meaning"]["role"]) == (1, "cue")
    assert a["intervention"]["chosen_as"] == "family" and a["intervention"]["role"] == "nl"
    both = [[0.0] * 3, [0.0, 0.0, 0.8], [0.0] * 3]
    assert choose_causal_sites(maps(both, both), maps(zeros, zeros), [1, 2], roles)["intervention"]["chosen_as"] == "joint"


def test_patching_is_exact_where_the_answer_is_known_by_construction():
    """Positions before the swapped word hold the same residuals in A and B (no-ops: 0, counted as such); the
    last position's final residual is the ending's logits (a column patch there gives B's LD: effect 1); the
    final residual of an earlier position is read by nothing. Every number checked is known without the model."""
    from data import ROLES
    from couplet_rules import roles as roles_of
    from interp.patching import ld, pair_runs, patching
    from interp.prompts import swap_pairs
    world = CoupletWorld(LIST)
    model = random_model(world, seed=3)  # two layers: L0, L1 and L2 (the final residual)
    pairs = swap_pairs(world, [c.line1 for c in world.split("test")[:60]], "rhyme", 0)[:20]
    a_side = {tuple(a) for a, _ in pairs}
    clean = lambda line1s: [["then", "he", "saw", "a", "cat" if tuple(x) in a_side else "dog"] for x in line1s]  # noqa: E731
    run = pair_runs(model, world, pairs, clean)
    out = patching(model, world, pairs + [pairs[0][:1] * 2], clean)  # (A, A): the same ending, dropped
    every = [roles_of(a, ["then", "he", "saw", "a", "?"], world.config)[:-1] for a, _ in pairs]
    present = sorted({r for rs in every for r in rs}, key=ROLES.index)
    assert (out["n_pairs"], out["n_dropped"], out["roles"]) == (len(pairs), 1, present)
    assert out["layers"] == ["L0", "L1", "L2"] and [len(row) for row in out["single"]] == [len(present)] * 3
    assert out["mean_ld_gap"] == pytest.approx(sum(b - a for a, b in zip(run.ld_a, run.ld_b)) / len(pairs))
    col = lambda kind, role: out[kind][role]  # noqa: E731
    single = lambda l, role: (out["single"][l][present.index(role)], out["single_noop"][l][present.index(role)])  # noqa: E731
    for role in present:  # every pair that has the role is counted, once
        assert col("column", role)["n"] == sum(role in rs for rs in every), role
    assert col("column", "end_art")["value"] == pytest.approx(1.0, abs=1e-5)  # the ending's own position
    assert col("column_from1", "end_art")["value"] == pytest.approx(1.0, abs=1e-5)
    assert single(2, "end_art")[0] == pytest.approx(1.0, abs=1e-5) and single(0, "end_art") == (0.0, 1.0)
    assert (col("column", "pronoun")["value"], col("column", "pronoun")["noop_fraction"]) == (0.0, 1.0)
    assert single(2, "rhyme") == (0.0, 1.0) and single(0, "rhyme")[1] == 0.0  # nothing reads it; a new token
    # the swapped word is the only difference: its embedding from B makes the run B's (effect 1, every pair)
    assert col("column", "rhyme")["value"] == pytest.approx(1.0, abs=1e-5) == single(0, "rhyme")[0]
    assert col("column", "rhyme")["noop_fraction"] == 0.0
    varied = col("column_from1", "rhyme")  # without the embedding: L1 alone (L2 there is read by nothing)
    assert varied["value"] == pytest.approx(single(1, "rhyme")[0], abs=1e-5) and varied["ci"][0] < varied["ci"][1]
    prompt = [r for r in present if not r.startswith(("l2_", "end_"))]
    assert set(out["top1"]) == set(prompt) and all(out["top1"][r]["n"] == col("column", r)["n"] for r in prompt)
    again = patching(model, world, pairs, clean, free=False, seed=0)
    assert "top1" not in again and again["column_from1"] == out["column_from1"]  # free and seed 0 by default
    assert patching(model, world, pairs, clean, single=False, free=False, seed=1)["column_from1"]["rhyme"]["ci"] != \
        varied["ci"]
    some = patching(model, world, pairs, clean, columns=["nl", "rhyme", "pronoun"], single=False, free=False)
    assert some["roles"] == ["pronoun", "rhyme", "nl"] and "single" not in some and "layers" not in some
    part = patching(model, world, pairs, clean, free=False, only_layers=[1])
    assert all(v is None for kind in ("column", "column_from1") for v in part[kind].values())
    only_noops = patching(model, world, pairs, clean, columns=["pronoun"], free=False)  # nothing to run
    assert only_noops["column"]["pronoun"]["value"] == 0.0 and only_noops["single_noop"] == [[1.0], [1.0], [1.0]]
    one = patching(model, world, pairs[:1], clean, single=False, free=False)
    assert one["mean_ld_gap"] == pytest.approx(run.ld_b[0] - run.ld_a[0])
    assert ld(torch.tensor([[1.0, 5.0, -2.0], [0.5, 0.0, 3.0]]), torch.tensor([0, 2]), torch.tensor([1, 0])) == \
        [4.0, -2.5]  # logit of B's word minus logit of A's, per row


# ---- interp/patching.py: choosing the causal sites, the cells' effects beside them (docs/mutation.md) ----------
def test_causal_sites_are_the_largest_select_effects_with_both_swaps_effects_and_ties_to_the_later_then_lower_cell():
    """family: the largest rhyme-swap effect; meaning: the largest cue-swap effect; joint: the largest min of the
    two (a cell without an effect of one swap has none to give). Each site carries the select and report effects
    of both swaps at its cell (None where that swap has none); layer 0 and cells outside `roles` are never sites."""
    from interp.patching import choose_causal_sites
    roles = ["pronoun", "cue", "rhyme", "nl"]
    short = ["pronoun", "cue", "nl"]  # the cue swap's patching here has no "rhyme" position
    select = {"rhyme": {"roles": roles + ["l2_pronoun"], "single": [[5.0] * 5,
                                                                     [0.25, None, 0.5, 0.5, 5.0],
                                                                     [0.0, 0.125, 0.75, None, 5.0]]},
              "cue": {"roles": short, "single": [[5.0] * 3,
                                                 [0.25, 0.5, 0.25],
                                                 [None, 0.5, 0.125]]}}
    report = {"rhyme": {"roles": roles, "single": [[10.0 * l + j for j in range(4)] for l in range(3)]},
              "cue": {"roles": short, "single": [[-10.0 * l - j for j in range(3)] for l in range(3)]}}
    out = choose_causal_sites(select, report, [1, 2], roles, weak=0.25)
    assert out["family"] == {"layer": 2, "role": "rhyme", "select": 0.75, "select_rhyme": 0.75, "select_cue": None,
                             "report_rhyme": 22.0, "report_cue": None}
    # 0.5 at the cue in layers 1 and 2: the lower layer
    assert out["meaning"] == {"layer": 1, "role": "cue", "select": 0.5, "select_rhyme": None, "select_cue": 0.5,
                              "report_rhyme": 11.0, "report_cue": -11.0}
    # min 0.25 at the pronoun and the line break of layer 1: the later position
    assert out["joint"] == {"layer": 1, "role": "nl", "select": 0.25, "select_rhyme": 0.5, "select_cue": 0.25,
                            "report_rhyme": 13.0, "report_cue": -12.0}
    assert out["intervention"] == {**out["joint"], "chosen_as": "joint"}  # it carries both: min >= weak, exactly
    higher = choose_causal_sites(select, report, [1, 2], roles, weak=0.375)["intervention"]
    assert higher == {**out["family"], "chosen_as": "family"}
    assert choose_causal_sites(select, report, [1, 2], ["end_art"]) == {}  # no cell to choose from
