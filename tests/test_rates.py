"""Every rate over edits that can work: zero edits left out, sweep cells judged on select and reported on
report prompts, one meaning per headline key; and interp/stats.py exactly (docs/mutation.md)."""
import itertools

import pytest
import torch

from data import CoupletWorld, WorldConfig
from lexicon import NOUNS
from interp import interventions as iv
from interp.directions import contrastive
from interp.prompts import prompt_sets, search_prompts
from interp.study import StudyConfig
from analyze import aggregate
from interp.headline import HEADLINE, SITE_KEYS
from interp import stats
from interp.stats import (over_seeds, paired_difference, percentile_interval, rate, ratio_of_sums, resamples,
                          wilson)


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


# ---- interp/stats.py: exact values, so a changed formula, key or default fails (docs/mutation.md) ----------
def test_wilson_matches_newcombes_table_and_stays_inside_0_1():
    """Newcombe (1998), Stat. Med. 17:857, Table I, method 3 (the score interval without continuity correction)."""
    for (k, n), want in {(81, 263): (0.2553, 0.3662), (15, 148): (0.0624, 0.1605), (0, 20): (0.0, 0.1611),
                         (1, 29): (0.0061, 0.1718)}.items():
        assert wilson(k, n) == pytest.approx(want, abs=5e-5), (k, n)
    assert wilson(1, 29, z=1.0) != pytest.approx(wilson(1, 29), abs=1e-3)  # z is the one it is given
    assert wilson(5, 5)[1] == 1.0 and wilson(0, 5)[0] == 0.0  # clipped: unclipped, 1.0000000000000002 and -2.8e-17
    assert wilson(0, 0) == [0.0, 1.0]
    for n in range(1, 31):
        for k in range(n + 1):  # around k / n, inside [0, 1] (rounding aside: (0, 11) has lower end 2.8e-17)
            lo, hi = wilson(k, n)
            assert 0.0 <= lo < hi <= 1.0 and lo - 1e-12 <= k / n <= hi + 1e-12


def test_rate_counts_truthy_items_and_has_no_rate_without_items():
    assert rate([True, False, 1, 0, "yes"]) == {"rate": 0.6, "k": 3, "n": 5, "ci": wilson(3, 5)}
    assert rate([]) == {"rate": None, "k": 0, "n": 0, "ci": [0.0, 1.0]}


def test_resamples_draw_indices_with_replacement_reproducibly():
    idx = resamples(7)
    assert idx.shape == (1000, 7) and idx.dtype == torch.int64  # the default: 1000 resamples
    assert int(idx.min()) == 0 and int(idx.max()) == 6  # every item can be drawn, none outside
    assert any(len(set(row.tolist())) < 7 for row in idx)  # with replacement
    assert torch.equal(idx, resamples(7, seed=0, reps=1000))  # the default seed is 0
    assert torch.equal(resamples(7, 3, 10), resamples(7, 3, 10))  # a fixed seed: reproducible
    assert not torch.equal(resamples(7, 1), idx) and resamples(7, reps=10).shape == (10, 7)


def test_percentile_interval_takes_the_2_5_and_97_5_percent_points():
    assert percentile_interval(list(range(1000))) == [25, 975]
    assert percentile_interval(list(range(40))) == [1, 39]
    assert percentile_interval(list(range(10))) == [0, 9]  # few resamples: the largest is the top
    assert percentile_interval([4.0]) == [4.0, 4.0]
    assert percentile_interval([]) == [None, None]  # no resample had a statistic: no interval, not an IndexError


def _interval(n, stat, seed, reps):
    """The documented statistic over the same resamples, in plain Python (exact for integer inputs)."""
    got = (stat(row) for row in resamples(n, seed, reps).tolist())
    return percentile_interval(sorted(x for x in got if x is not None))


def test_ratio_of_sums_is_the_ratio_with_a_bootstrap_over_pairs():
    num, den = [3, 0, 1, 4, 2, 0], [1, 2, 0, 4, 1, 3]

    def pairs(idx):  # the same items' num and den, resampled together; a resample of no weight has no ratio
        d = sum(den[i] for i in idx)
        return sum(num[i] for i in idx) / d if d > 0 else None
    for seed, reps in itertools.product((0, 1), (10, 1000)):
        got = ratio_of_sums(num, den, seed=seed, reps=reps)
        assert got == {"value": 10 / 11, "n": 6, "ci": _interval(6, pairs, seed, reps)}
    assert ratio_of_sums(num, den) == ratio_of_sums(num, den, seed=0, reps=1000)
    assert ratio_of_sums([2.0, 4.0, 1.0], [1.0, 2.0, 0.5])["ci"] == [2.0, 2.0]  # one ratio: a point
    assert ratio_of_sums([5], [2]) == {"value": 2.5, "n": 1, "ci": [2.5, 2.5]}
    num, den = [0.3, 0.1, 0.7], [0.1, 0.2, 0.3]  # not exact in binary: the resampled sums are float64, not float32
    want = _interval(3, lambda idx: sum(num[i] for i in idx) / sum(den[i] for i in idx), 0, 1000)
    assert ratio_of_sums(num, den)["ci"] == pytest.approx(want, rel=1e-12, abs=0)
    assert ratio_of_sums([1, 2], [1, 0])["ci"] == [1.0, 3.0]  # resamples of den 0 only are skipped, not divided
    assert ratio_of_sums([1, 2], [3, -1], reps=40)["ci"][0] == pytest.approx(1 / 3)  # (1, 1) weighs -2: skipped
    for num, den in (([], []), ([1, 2], [0, 0]), ([1, 2], [1, -1]), ([1, 2], [1, -2])):
        assert ratio_of_sums(num, den) == {"value": None, "n": len(num), "ci": [None, None]}


def test_ratio_of_sums_without_a_resample_of_positive_weight_has_no_interval(monkeypatch):
    monkeypatch.setattr(stats, "resamples", lambda n, seed, reps: torch.tensor([[1, 1], [1, 1]]))
    assert ratio_of_sums([1, 2], [3, -1]) == {"value": 1.5, "n": 2, "ci": [None, None]}


def test_paired_difference_is_the_mean_difference_with_a_bootstrap_over_items():
    a, b = [True, True, False, False, True, 1], [False, True, False, True, False, 0]
    d = [1, 0, 0, -1, 1, 1]
    for seed, reps in itertools.product((0, 1), (10, 1000)):
        got = paired_difference(a, b, seed=seed, reps=reps)
        assert got == {"value": 2 / 6, "n": 6, "ci": _interval(6, lambda idx: sum(d[i] for i in idx) / 6, seed, reps)}
    assert paired_difference(a, b) == paired_difference(a, b, seed=0, reps=1000)
    assert paired_difference([2, 0], [0, 3])["value"] == 0.0  # truthiness, not size: 1 - 0 and 0 - 1
    assert paired_difference([True] * 4, [False] * 4) == {"value": 1.0, "n": 4, "ci": [1.0, 1.0]}
    assert paired_difference([], []) == {"value": None, "n": 0, "ci": [None, None]}


def test_the_bootstrap_intervals_default_to_seed_0_and_1000_resamples(monkeypatch):
    """The intervals results.json reports rest on these defaults (callers pass at most a seed)."""
    calls, real = [], stats.resamples

    def spy(n, seed, reps):
        calls.append((n, seed, reps))
        return real(n, seed, reps)
    monkeypatch.setattr(stats, "resamples", spy)
    ratio_of_sums([1, 2], [1, 1])
    ratio_of_sums([1, 2], [1, 1], seed=4)
    paired_difference([True], [False])
    paired_difference([True], [False], reps=7)
    assert calls == [(2, 0, 1000), (2, 4, 1000), (1, 0, 1000), (1, 0, 7)]


def test_over_seeds_is_the_mean_and_range_of_the_measured_seeds():
    assert over_seeds([0.5, None, 0.25, 1.0]) == (0.5833333333333334, [0.25, 1.0])
    assert over_seeds([None, None]) == (None, None) and over_seeds([]) == (None, None)


# ---- interp/headline.py: each headline key reads the record its name says ---------------------------------
def test_each_headline_key_reads_the_record_its_name_says():
    """Every source record is made distinct (its own rate, n and no-op share), so a key that read a neighbour
    (the donors' rate as the control's, the random run as the injection, the free run as the forced one) fails."""
    from interp.headline import headline
    from interp.shape import CONTROL_ROLE
    made = {}

    def rec(name, field="rate"):
        i = len(made) + 1
        made[name] = {field: i / 1000, "n": 100 + i, "k": i, "ci": [0.0, 1.0], "noop_fraction": i / 10000}
        return made[name]
    kinds = ("other_rhyme", "other_meaning", "two_facts")
    r = {"quality": {"valid": 0.5, "n": 7, "valid_ci": [0.1, 0.9]},
         "patching": {s: {"column": {"nl": rec(f"ld_{s}", "value")}} for s in ("rhyme", "cue")},
         "effects": {"rhyme": {"total": rec("total"), "direct": rec("direct"), "mediated": rec("mediated", "value"),
                               "total_any": rec("total_any")}},
         "shape": {"positive_control": {"donor_valid": rec("positive")}, "next_token": {"donor_valid": rec("next")},
                   "site": {"donor_valid": rec("site_donor"), "opener": rec("site_opener"),
                            "article": rec("site_article"), "other_valid": rec("site_other")},
                   "control": {"other_valid": rec("control_other"), "donor_valid": rec("control_donor"),
                               "noop_fraction": 0.25},
                   "layers": ["L0", "L1", "L2"], "layer": 1,
                   "green": {"inject": rec("g_inject"), "random": rec("g_random"),
                             "control_position": rec("g_control"), "opener_forced": rec("g_forced"),
                             "hook": "blocks.1.hook_resid_pre", "scale": 2.0},
                   "habit": {"suppress": rec("h_suppress"), "random": rec("h_random"),
                             "opener_forced": rec("h_forced"), "hook": "blocks.1.hook_resid_pre", "scale": 4.0}},
         "injection": {k: {"scale": 2.0, "add_only": {"1.0": {"inject": rec(f"{k}_1"), "random": rec(f"{k}_1r")},
                                                      "2.0": {"inject": rec(f"{k}_2"), "random": rec(f"{k}_2r")}}}
                       for k in kinds},
         "suppression": {"opener_forced": {"runner_up_rate": rec("sup_forced")},
                         "free": {"runner_up_rate": rec("sup_free")}},
         "sweep": {f"other_{f}": {"site_rate": rec(f"sw_{f}_site"), "best_other": rec(f"sw_{f}_other")}
                   for f in ("rhyme", "meaning")},
         "sites": {"intervention": {"layer": 1, "role": "nl", "chosen_as": "joint"}},
         "ending_probe": {"probe": [0.1, 0.2, 0.3], "random_init": [0.05, 0.06, 0.07], "cell_favourite": rec("fav")},
         "clt": {"planned_word_features": {"any_layer": rec("pwf")},
                 "length_features": {"nl": rec("lf"), "random": rec("lf_random"), CONTROL_ROLE: rec("lf_control"),
                                     "first_word_kept": rec("lf_kept")}},
         "composition": {"valid_seen": rec("seen"), "valid_holdout": rec("holdout")}}
    want = {"nl_ld_rhyme": "ld_rhyme", "nl_ld_cue": "ld_cue", "total_valid_change_nl": "total",
            "direct_valid_change_nl": "direct", "mediated_valid_change_nl": "mediated",
            "total_any_change_nl": "total_any", "shape_positive_control_rate": "positive",
            "shape_next_token_rate": "next", "shape_donor_valid_rate": "site_donor", "shape_opener_rate": "site_opener",
            "shape_article_rate": "site_article", "shape_donor_valid_control_rate": "control_other",
            "green_valid_rate": "g_inject", "green_random_rate": "g_random", "green_control_rate": "g_control",
            "green_forced_rate": "g_forced", "habit_valid_rate": "h_suppress", "habit_random_rate": "h_random",
            "habit_forced_rate": "h_forced", "suppression_runner_up_rate": "sup_forced",
            "cell_favourite_rate": "fav", "planned_word_features_rate": "pwf", "length_features_rate": "lf",
            "length_features_random_rate": "lf_random", "length_features_control_rate": "lf_control",
            "length_features_first_word_kept_rate": "lf_kept", "composition_valid_seen_rate": "seen",
            "composition_valid_holdout_rate": "holdout",
            **{f"add_only_{k}_rate": f"{k}_2" for k in kinds}, **{f"add_only_{k}_random_rate": f"{k}_2r" for k in kinds},
            **{f"sweep_{f}_site_rate": f"sw_{f}_site" for f in ("rhyme", "meaning")},
            **{f"sweep_{f}_best_other_rate": f"sw_{f}_other" for f in ("rhyme", "meaning")}}
    h = headline(r)
    for key, name in want.items():
        field = "value" if "value" in made[name] else "rate"
        assert (h[key], h["n"][key]) == (made[name][field], made[name]["n"]), key
    assert h["noop"]["shape_donor_valid_control_rate"] == 0.25  # the control's own edits, not its measure's record
    assert h["noop"]["green_random_rate"] == made["g_random"]["noop_fraction"]
    assert (h["valid"], h["n"]["valid"], h["ci"]["valid"]) == (0.5, 7, [0.1, 0.9])
    assert (h["ending_probe_nl"], h["ending_probe_nl_random_init"]) == (0.3, 0.07)  # the last layer's
    assert (h["shape_layer"], h["intervention_site"]) == ("L1", "L1 nl (joint)")
    assert (h["green_site"], h["habit_site"]) == ("blocks.1.hook_resid_pre nl x2", "blocks.1.hook_resid_pre nl x4")
