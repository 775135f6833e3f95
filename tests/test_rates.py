"""Every rate over edits that can work: zero edits left out, sweep cells judged on select and reported on
report prompts, one meaning per headline key."""
import torch

from data import CoupletWorld, WorldConfig
from lexicon import NOUNS
from interp import interventions as iv
from interp.directions import contrastive
from interp.prompts import prompt_sets, search_prompts
from interp.study import StudyConfig
from analyze import aggregate
from interp.headline import HEADLINE, SITE_KEYS


def test_suppression_counts_no_zero_edit(tiny_run, monkeypatch):
    """A word alone in its cell has a contrastive direction of exactly 0: its prompts are counted apart,
    never as 'same'; every counted prompt's edit has a norm."""
    from model import load_checkpoint
    model, ckpt = load_checkpoint(tiny_run[0])
    world = CoupletWorld(WorldConfig(**ckpt["world_config"]))
    line1s = [c.line1 for c in world.split("test")[:30]]
    line2s = [c.line2 for c in world.split("test")[:30]]
    endings = sorted({l2[-1] for l2 in line2s})
    d = model.cfg.d_model
    dirs = {w: torch.randn(d) for w in endings}
    cdirs = contrastive(dirs)
    zero = [w for w in endings if cdirs[w].norm() == 0]
    assert zero  # some cell holds one word: the edit the old code counted
    seen = []
    real = iv.at_site

    def spy(world, site, l1s, vectors, op="add"):
        seen.extend(vectors)
        return real(world, site, l1s, vectors, op)
    monkeypatch.setattr(iv, "at_site", spy)
    runners = [l2[-1] for l2 in line2s]
    out = iv.suppress(model, world, iv.Site(1, "nl"), line1s, line2s, runners, cdirs, 2.0)
    assert all(v.norm() > 0 for v in seen)
    assert out["n"] + out["n_zero_edit"] == sum(l2[-1] in cdirs for l2 in line2s)
    assert out["n_zero_edit"] == sum(l2[-1] in zero for l2 in line2s) > 0


def test_sweep_chooses_scale_and_best_cell_on_select_and_reports_report_rates(monkeypatch):
    """A toy: the rate of each (cell, scale, prompt set) is a table. The best other cell and each cell's
    scale must come from select; the reported rate from report (never the max over report cells)."""
    sel, rep = (["s"], ["t"]), (["r"], ["t"])
    table = {  # (layer, role, set) -> {scale: rate}
        (0, "a", "s"): {1.0: 0.9, 4.0: 0.1}, (0, "a", "r"): {1.0: 0.2, 4.0: 0.95},
        (1, "a", "s"): {1.0: 0.1, 4.0: 0.5}, (1, "a", "r"): {1.0: 0.0, 4.0: 0.6},
        (0, "b", "s"): {1.0: 0.0, 4.0: 0.0}, (0, "b", "r"): {1.0: 0.99, 4.0: 0.99},
        (1, "b", "s"): {1.0: 0.3, 4.0: 0.2}, (1, "b", "r"): {1.0: 0.3, 4.0: 0.3}}

    def at_site(world, site, line1s, vectors, op="add"):
        return [(site.layer, site.role, line1s[0], float(v.norm()) if v is not None else None) for v in vectors]

    def hit_rate(model, world, line1s, edits, targets, forced=None):
        layer, role, which, norm = edits[0]
        if norm is not None and abs(norm - round(norm)) > 1e-6:  # the random control: never hits
            return {"rate": 0.0, "k": 0, "n": 1, "ci": [0, 1]}
        r = table[(layer, role, which)][norm]
        return {"rate": r, "k": 0, "n": 1, "ci": [0, 1]}
    monkeypatch.setattr(iv, "at_site", at_site)
    monkeypatch.setattr(iv, "hit_rate", hit_rate)
    monkeypatch.setattr(iv, "random_like", lambda v, seed: v * 1.5 + 0.1234)
    out = iv.sweep(None, None, sel, rep, lambda l, r: {"t": torch.tensor([1.0])}, [0, 1], ["a", "b"],
                   iv.Site(1, "b"), scales=(1.0, 4.0))
    assert out["scale"] == [[1.0, 4.0], [4.0, 1.0]]
    assert out["rate"] == [[0.2, 0.99], [0.6, 0.3]]
    assert (out["best_other"]["layer"], out["best_other"]["role"]) == (0, "a")  # 0.9 on select
    assert out["best_other"]["rate"] == 0.2 and out["site_rate"]["rate"] == 0.3


def test_injection_kinds_change_what_their_names_say():
    world = CoupletWorld(WorldConfig(n_train=3000, n_test=100))
    line1s = [c.line1 for c in world.split("test")[:60]]
    endings = [c.line2[-1] for c in world.split("test")[:60]]
    for kind in iv.KINDS:
        for e, t in zip(endings, iv.injection_targets(world, line1s, endings, list(NOUNS), kind)):
            if t is None:
                continue
            rhyme, meaning = NOUNS[t].family != NOUNS[e].family, NOUNS[t].meaning != NOUNS[e].meaning
            assert (rhyme, meaning) == {"other_rhyme": (True, False), "other_meaning": (False, True),
                                        "two_facts": (True, True)}[kind]


def test_aggregate_averages_each_key_over_seeds_and_lists_sites():
    seeds = []
    for k in range(3):
        h = {key: float(k) for key in HEADLINE}
        h.update({key: f"site {k}" for key in SITE_KEYS}, n={key: 10 + k for key in HEADLINE},
                 ci={key: [0.0, 1.0] for key in HEADLINE})
        seeds.append(h)
    out = aggregate(seeds)
    assert out["valid"] == 1.0 and out["valid_range"] == [0.0, 2.0]
    assert out["intervention_site"] == ["site 0", "site 1", "site 2"]
    assert out["n"]["valid"] == [10, 11, 12]
    assert not any(k.endswith("_ci") for k in out)  # averaged interval endpoints are not an interval


def test_search_prompts_are_not_the_studys():
    world = CoupletWorld(WorldConfig())
    cfg = StudyConfig()
    sets = prompt_sets(world, 10, cfg.n_select, cfg.n_report)
    study = {tuple(x) for x in sets.select + sets.report}
    assert not study & {tuple(x) for x in search_prompts(world)}
