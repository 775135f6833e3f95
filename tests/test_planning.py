"""The planning experiments on a tiny trained model: controls work, no-op edits change nothing,
the sweep covers every position, and a second run gives the same numbers."""
import torch

import planning as P
from data import world_from_dict
from model import load_checkpoint


def setup(tiny_run, n=40):
    model, ckpt = load_checkpoint(tiny_run[0])
    world = world_from_dict(ckpt["world_config"])
    fit = [c.line1 for c in world.split("train")[:400]]
    held = [c.line1 for c in world.split("test")[:n]]
    return model, world, fit, held


def test_probe_beats_its_shuffled_control(tiny_run):
    model, world, fit, held = setup(tiny_run)
    # a probe for the cue's meaning at the cue token: the information is in the embedding itself
    from data import NOUNS, MEANINGS
    layers = P.layer_hooks(model.cfg)[:1]
    fit_pairs = [(l, l2) for l, l2 in zip(fit, P.complete(model, world, fit))]
    acts = P.residuals_by_role(model, world, fit_pairs, layers)[layers[0]]["cue"]
    y = torch.tensor([MEANINGS.index(NOUNS[l[3]].meaning) for l in fit])
    real = P.ridge_probe(acts[:300], y[:300], acts[300:], y[300:], len(MEANINGS))
    shuffled = P.ridge_probe(acts[:300], y[:300][torch.randperm(300, generator=torch.Generator().manual_seed(0))],
                             acts[300:], y[300:], len(MEANINGS))
    assert real > 0.4 and shuffled < real - 0.2, (real, shuffled)  # chance is 1/6


def test_patching_a_run_with_itself_changes_nothing(tiny_run):
    model, world, _, held = setup(tiny_run)
    clean = P.complete(model, world, held)
    h = P.layer_hooks(model.cfg)[2]
    cache = P.prompt_cache(model, world, held, [h])[h]
    edits = [[(h, len(l) + 1, cache[i][len(l) + 1])] for i, l in enumerate(held)]
    assert P.complete(model, world, held, edits=edits) == clean


def test_patching_from_another_prompt_can_change_the_ending(tiny_run):
    model, world, _, held = setup(tiny_run)
    pairs = P.swap_pairs(world, held, "rhyme")
    res = P.patching_experiment(model, world, pairs, P.layer_hooks(model.cfg))
    assert res["n"] > 0
    # layer 0 at the rhyme word = B's own token: it must carry B's ending at least sometimes
    assert res["rates"][0][res["roles"].index("rhyme")] > 0 or res["n"] < 5
    assert all(v == 0 for v in res["rates"][0][:res["roles"].index("cue")])  # shared prefix: exact no-op


def test_injecting_with_scale_zero_changes_nothing_and_sweep_covers_every_position(tiny_run):
    model, world, fit, held = setup(tiny_run)
    site = {"hook": P.layer_hooks(model.cfg)[1], "position": "nl", "layer": 1}
    dirs, mu, _ = P.planned_word_directions(model, world, fit, site, min_count=2)
    clean = P.complete(model, world, held)
    planned = [P.ending(l) for l in clean]
    words = P.pick_injections(held, planned, dirs)
    assert P.inject(model, world, held, site, words, dirs, 0.0, planned=planned) == clean
    for role in P.role_order(held):
        sel = [l for l in held if role in P.prompt_roles(l)]
        assert sel, role
        out = P.inject(model, world, sel, site, words[:len(sel)], dirs, 0.0, role=role)
        assert len(out) == len(sel)


def test_knockout_of_nothing_changes_nothing_and_knockout_runs(tiny_run):
    model, world, _, held = setup(tiny_run)
    clean = P.complete(model, world, held)
    assert P.complete(model, world, held, knockout=[None] * len(held)) == clean
    assert len(P.complete(model, world, held, knockout=["line2"] * len(held))) == len(held)


def test_choose_site_takes_the_cell_that_moves_both_kinds_of_pairs():
    rhyme = {"layers": ["a", "b"], "roles": ["rhyme", "nl"], "rates": [[1.0, 0.1], [0.0, 0.8]]}
    cue = {"layers": ["a", "b"], "roles": ["rhyme", "nl"], "rates": [[0.0, 0.2], [0.0, 0.7]]}
    site = P.choose_site(rhyme, cue)
    assert (site["layer"], site["position"], site["score"]) == (1, "nl", 0.7)
