"""The study's measurements on tiny models: each test checks what a number's name promises."""
import json

import pytest
import torch

from data import CoupletWorld, WorldConfig
from model import load_checkpoint
from interp.edits import write_line2
from interp import interventions as iv
from interp.prompts import prompt_sets
from interp.stats import wilson
from interp.headline import headline, HEADLINE, SITE_KEYS
from interp.study import StudyConfig, study
from conftest import random_model

LIST = WorldConfig(n_train=3000, n_test=200, grammar="list")


def test_add_only_at_scale_zero_changes_nothing():
    world = CoupletWorld(LIST)
    model = random_model(world)
    line1s = [c.line1 for c in world.split("test")[:30]]
    site = iv.Site(1, "nl")
    d = [torch.randn(32) for _ in line1s]
    zero = iv.at_site(world, site, line1s, [v * 0.0 for v in d])
    assert write_line2(model, world, line1s, zero) == write_line2(model, world, line1s)
    moved = iv.at_site(world, site, line1s, [v * 50.0 for v in d])
    assert write_line2(model, world, line1s, moved) != write_line2(model, world, line1s)  # the edit can bite


def test_prompt_sets_are_disjoint_and_a_shared_prompt_is_refused():
    world = CoupletWorld(LIST)
    sets = prompt_sets(world, 50, 40, 60)
    assert not {tuple(x) for x in sets.select} & {tuple(x) for x in sets.report}
    sets.select.append(sets.report[0])
    with pytest.raises(AssertionError):
        sets.check_disjoint()


def test_sites_are_chosen_without_the_report_prompts():
    """choose_sites reads only the select grids: changing every report number changes no site."""
    from interp.probes import choose_sites
    grid = lambda v: [[v, 0.2], [0.9, v]]
    maps = {"roles": ["rhyme", "nl"], "layers": ["L0", "L1"]}
    for t in ("family", "meaning", "ending"):
        maps[t] = {"trained": {"select": grid(0.5), "report": grid(0.1)},
                   "random_init": {"select": [[0.0, 0.0], [0.0, 0.0]], "report": grid(0.0)}, "majority_baseline": 0.1}
    a = choose_sites(maps, [0, 1], ["rhyme", "nl"])
    for t in ("family", "meaning", "ending"):
        maps[t]["trained"]["report"] = grid(0.99)
    b = choose_sites(maps, [0, 1], ["rhyme", "nl"])
    assert [(s["layer"], s["role"]) for s in a.values()] == [(s["layer"], s["role"]) for s in b.values()]
    assert (a["joint"]["layer"], a["joint"]["role"]) == (1, "rhyme")


def test_suppression_outcomes_are_classed():
    assert iv.outcome(["a", "cat"], "cat", "rat") == "same"
    assert iv.outcome(["a", "rat"], "cat", "rat") == "runner_up"
    assert iv.outcome(["a", "hat"], "cat", "rat") == "same_rhyme_other_meaning"
    assert iv.outcome(["a", "dog"], "cat", "rat") == "same_meaning_other_rhyme"
    assert iv.outcome([], "cat", "rat") == "other"
    assert iv.outcome("the rat saw a dog".split(), "cat", "rat") == "same_meaning_other_rhyme"  # the ending counts
    assert iv.opener("then she saw a cat".split()) == ["then", "she", "saw"]


def test_wilson_interval():
    lo, hi = wilson(0, 20)
    assert lo == 0 and 0.1 < hi < 0.2
    assert wilson(0, 0) == [0.0, 1.0]


@pytest.fixture(scope="module")
def tiny_results(tiny_run, tmp_path_factory):
    path, _ = tiny_run
    model, ckpt = load_checkpoint(path)
    from data import world_from_dict
    world = world_from_dict(ckpt["world_config"])
    cfg = StudyConfig(n_fit=40, n_select=12, n_report=20, n_pairs=10, n_quality=10, n_sweep=6, clt_steps=30,
                      clt_compare="64")
    return study(model, world, cfg)


def test_study_runs_on_any_model_and_the_headline_has_every_key(tiny_results):
    h = headline(tiny_results)
    assert list(h) == list(HEADLINE) + list(SITE_KEYS) + ["n", "k", "ci", "noop"]
    assert 0 <= h["valid"] <= 1
    assert {"quality", "prompts", "probes", "sites", "patching"} <= set(tiny_results)


def test_render_is_byte_identical_from_results_json_and_shows_its_numbers(tiny_run, tmp_path):
    """analyze.py end to end on a tiny model: results.json, then --render-only gives the same page; a
    number changed in results.json appears on the re-rendered page."""
    import shutil
    import analyze
    path, _ = tiny_run
    shutil.copy(path, tmp_path / "model.pt")
    small = ["--n-fit", "40", "--n-select", "12", "--n-report", "20", "--n-pairs", "10", "--n-quality", "10",
             "--n-sweep", "6", "--clt-steps", "30", "--clt-compare", "64", "--out", str(tmp_path)]
    assert analyze.main(small) == 0
    report = tmp_path / "report"
    page, md = (report / "index.html").read_bytes(), (report / "results.md").read_bytes()
    assert analyze.main(["--out", str(tmp_path), "--render-only"]) == 0
    assert (report / "index.html").read_bytes() == page and (report / "results.md").read_bytes() == md
    results = json.loads((report / "results.json").read_text())
    assert list(results["models"]) == ["main"] and results["models"]["main"]["headline"]["n_seeds"] == 1
    assert results["study_config"]["clt_compare"] == ""  # the main model alone: the comparison is the full study's
    main = results["models"]["main"]
    main["headline"]["valid"] = 0.8765
    main["headline"]["nl_ld_cue"] = 0.7777            # q1's seeds row
    main["patching"]["rhyme"]["column"]["nl"] = {"value": 0.9137, "n": 10, "ci": [0.9, 0.93]}  # q1's evidence
    shown = ["0.91 (n = 10 pairs", "0.78"]
    if main.get("composition", {}).get("n"):
        main["composition"]["valid_holdout"]["rate"] = 0.4242  # q4's verdict
        shown.append("0.42 of the time")
    (report / "results.json").write_text(json.dumps(results))
    assert analyze.main(["--out", str(tmp_path), "--render-only"]) == 0
    new = (report / "index.html").read_text()
    assert new.count("0.88") > page.decode().count("0.88")  # (a figure's stroke width may read 0.88 too)
    assert (report / "results.md").read_text().count("0.88") > md.decode().count("0.88")

    def answers(html):
        return html[html.index('id="q1"'):html.index('id="probes"')]
    for text in shown:
        assert text in answers(new) and text not in answers(page.decode()), text


def test_every_role_an_experiment_can_choose_is_in_the_one_vocabulary():
    from data import ROLES
    from couplet_rules import roles as roles_of, line2_roles
    from interp.study import ABLATION_ROLES
    world = CoupletWorld(LIST)
    seen = set()
    for c in world.split("test")[:200]:
        seen |= set(roles_of(c.line1, c.line2, world.config)) | set(line2_roles(["x"] * 9, world.config))
    assert seen <= set(ROLES) and set(ABLATION_ROLES) <= set(ROLES)


