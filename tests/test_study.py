"""The study's measurements on tiny models: each test checks what a number's name promises."""
import json

import pytest
import torch

from data import CoupletWorld, WorldConfig
from lexicon import NOUNS, EPITHETS, article
from model import GPT, GPTConfig, load_checkpoint
from interp.directions import contrastive, random_like, word_directions
from interp.edits import Edit, ending_logits, resid_hooks, write_line2, activations
from interp import interventions as iv
from interp.prompts import prompt_sets
from interp.stats import ratio_of_sums, wilson
from interp.headline import headline, HEADLINE, SITE_KEYS
from interp.study import StudyConfig, study

LIST = WorldConfig(n_train=3000, n_test=200, grammar="list")


def random_model(world, seed=0, **kw):
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=len(world.itos), block_size=world.max_len(), n_layer=2, n_head=2,
                         d_model=32, d_mlp=64, **kw)).eval()


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


def test_random_direction_is_norm_matched_and_seeded():
    d = torch.randn(64) * 3
    r = random_like(d, seed=5)
    assert torch.isclose(r.norm(), d.norm()) and torch.equal(r, random_like(d, seed=5))
    assert abs(torch.nn.functional.cosine_similarity(r, d, 0)) < 0.5


def test_contrastive_directions_of_a_cell_sum_to_zero():
    words = [w for w, n in NOUNS.items() if (n.meaning, n.family) == ("animal", "at")]
    assert len(words) >= 2
    other = next(w for w, n in NOUNS.items() if n.meaning != "animal")
    acts = torch.randn(60, 16)
    endings = [words[i % len(words)] if i % 3 else other for i in range(60)]
    dirs, means = word_directions(acts, endings)
    c = contrastive(dirs)
    cell = torch.stack([c[w] for w in words if w in c])
    assert torch.allclose(cell.sum(0), torch.zeros(16), atol=1e-5)
    assert torch.allclose(c[other], torch.zeros(16), atol=1e-6)  # alone in its cell: nothing tells it apart


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


# ---- interp/edits.py: an edit changes exactly its row and position (docs/mutation.md) ---------------------------
from interp.edits import changes_nothing, edit_hooks  # noqa: E402


def test_changes_nothing_is_a_set_to_the_value_already_there_or_adding_zero():
    clean = torch.tensor([1.0, -2.0, 0.5])
    assert changes_nothing(Edit("h", 0, clean.clone()), clean)
    assert changes_nothing(Edit("h", 0, clean.double()), clean)  # compared in the activation's dtype:
    assert changes_nothing(Edit("h", 0, clean.double() + 1e-12), clean)  # a float64 value that rounds to it
    assert not changes_nothing(Edit("h", 0, clean + 1e-3), clean)
    assert not changes_nothing(Edit("h", 0, torch.zeros(3)), clean)  # setting zero is not adding zero
    assert changes_nothing(Edit("h", 0, torch.zeros(3), "add"), None)
    assert not changes_nothing(Edit("h", 0, torch.tensor([0.0, 1e-6, 0.0]), "add"), None)


def test_edit_hooks_set_or_add_at_each_rows_position_and_nowhere_else():
    x = torch.arange(24, dtype=torch.float32).reshape(2, 4, 3)  # (B, T, C)
    v, w = torch.tensor([10.0, 20.0, 30.0], dtype=torch.float64), torch.ones(3, dtype=torch.float64)
    [(name, fn)] = edit_hooks([[Edit("blocks.0.hook_resid_pre", 2, v)], None])
    want = x.clone()
    want[0, 2] = v.float()
    assert name == "blocks.0.hook_resid_pre" and torch.equal(fn(x), want)
    assert torch.equal(x, torch.arange(24, dtype=torch.float32).reshape(2, 4, 3))  # a copy: x itself unchanged
    hooks = edit_hooks([[Edit("h", 1, w, "add"), Edit("h", 3, v)], [Edit("h", 0, w, "add"), Edit("g", 1, v)]])
    assert [n for n, _ in hooks] == ["h", "h", "g"]  # one hook per (name, op), rows batched
    out = {}
    for n, f in hooks:
        out[n] = f(out.get(n, x))
    want = x.clone()
    want[0, 1] += 1
    want[1, 0] += 1
    want[0, 3] = v.float()
    assert torch.equal(out["h"], want) and out["h"].dtype == torch.float32
    want = x.clone()
    want[1, 1] = v.float()
    assert torch.equal(out["g"], want)
    heads = torch.zeros(2, 2, 4, 3)  # (B, H, T, D): per-head hooks name the position on dim 2
    [(_, fn)] = edit_hooks([None, [Edit("blocks.0.attn.hook_k", 3, torch.ones(2, 3))]])
    want = heads.clone()
    want[1, :, 3] = 1.0
    assert torch.equal(fn(heads), want)
    assert edit_hooks([None, []]) == []
    with pytest.raises(ValueError, match="^unknown edit op 'mul'$"):
        edit_hooks([[Edit("h", 0, w, "mul")]])
    for name, shape, pos in (("h", (2, 4, 3), 4), ("blocks.0.attn.hook_q", (2, 2, 4, 3), 4)):
        [(_, fn)] = edit_hooks([[Edit(name, pos, torch.ones(shape[-1]) if len(shape) == 3 else torch.ones(2, 3))]])
        with pytest.raises(ValueError, match="^an edit names a position past the end of the sequence$"):
            fn(torch.zeros(shape))



def test_an_edit_of_one_head_changes_that_head_only_and_needs_a_per_head_hook():
    x = torch.zeros(2, 3, 4, 2)  # (B, H, T, D)
    [(name, fn)] = edit_hooks([None, [Edit("blocks.1.attn.hook_z", 2, torch.tensor([1.0, 2.0]), "add", head=1)]])
    want = x.clone()
    want[1, 1, 2] = torch.tensor([1.0, 2.0])
    assert name == "blocks.1.attn.hook_z" and torch.equal(fn(x), want)
    [(_, fn)] = edit_hooks([[Edit("blocks.0.attn.hook_v", 0, torch.ones(2), head=2),
                             Edit("blocks.0.attn.hook_v", 3, torch.full((2,), 5.0), head=0)]])
    want = x.clone()
    want[0, 2, 0] = 1.0
    want[0, 0, 3] = 5.0
    assert torch.equal(fn(x), want)
    import re
    msg = re.escape("an edit of one head needs a per-head hook (attn.hook_q, attn.hook_k, attn.hook_v, attn.hook_z, "
                    "attn.hook_rot_q, attn.hook_rot_k), got blocks.0.hook_resid_pre")
    with pytest.raises(ValueError, match=f"^{msg}$"):
        edit_hooks([[Edit("blocks.0.hook_resid_pre", 0, torch.ones(2), head=0)]])


def test_batches_group_equal_lengths_shortest_first_in_chunks_of_at_most_size():
    from interp.edits import _batches
    assert list(_batches([3, 1, 3, 3, 1, 2], 2)) == [[1, 4], [5], [0, 2], [3]]
    assert list(_batches([4, 4, 4], 512)) == [[0, 1, 2]] and list(_batches([], 3)) == []


def test_pad_batch_right_pads_with_pad():
    from data import PAD
    from interp.edits import pad_batch
    out = pad_batch([[5, 6, 7], [8], [9, 10]])
    assert out.dtype == torch.long and torch.equal(out, torch.tensor([[5, 6, 7], [8, PAD, PAD], [9, 10, PAD]]))

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


# ---- interp/directions.py and the ridge probe of interp/probes.py (docs/mutation.md) ---------------------------

def test_word_directions_are_class_means_minus_the_mean_of_the_counted_rows():
    acts = torch.tensor([[1.0, 0.0], [3.0, 0.0], [5.0, 0.0],     # cat (3 rows: the default minimum)
                         [0.0, 4.0], [0.0, 8.0], [0.0, 6.0],     # rat
                         [2.0, 2.0], [4.0, 4.0],                 # dog: 2 rows, no direction of its own
                         [9.0, 9.0], [float("nan"), 0.0]])       # no ending; a NaN row: neither counted
    endings = ["cat"] * 3 + ["rat"] * 3 + ["dog"] * 2 + [None, "cat"]
    dirs, means = word_directions(acts, endings)
    mu = torch.tensor([15 / 8, 24 / 8])  # the mean of the 8 counted rows, dog's included
    assert set(dirs) == set(means) == {"cat", "rat"}
    assert torch.equal(means["cat"], torch.tensor([3.0, 0.0])) and torch.equal(means["rat"], torch.tensor([0.0, 6.0]))
    assert torch.equal(dirs["cat"], means["cat"] - mu) and torch.equal(dirs["rat"], means["rat"] - mu)
    dirs, means = word_directions(acts, endings, min_count=2)
    assert torch.equal(means["dog"], torch.tensor([3.0, 3.0])) and torch.equal(dirs["dog"], torch.tensor([3.0, 3.0]) - mu)
    assert set(word_directions(acts, endings, min_count=4)[0]) == set()
    assert word_directions(acts, [None] * 10) == ({}, {})


def test_the_ridge_probe_matches_an_independent_ridge_fit():
    """interp/probes.py's probe against tests/planted_exercise_bugs.py's reference (float64, torch.linalg.solve),
    on rows away from a tie; with features of about 1e-6 the 1e-6 added to the std matters."""
    from planted_exercise_bugs import ridge_scores
    from interp.probes import ridge_probe, solve_spd
    g = torch.Generator().manual_seed(0)
    for scale in (1.0, 1e-6):
        centres = torch.randn(3, 5, generator=g)
        y_fit, y_test = torch.randint(0, 3, (12,), generator=g), torch.randint(0, 3, (300,), generator=g)
        x_fit = (centres[y_fit] + torch.randn(12, 5, generator=g)) * scale
        x_test = (centres[y_test] + torch.randn(300, 5, generator=g)) * scale
        for lam in (1.0, 0.1, 10.0):
            scores = ridge_scores(x_fit, y_fit, x_test, 3, lam)
            top = scores.topk(2, 1).values
            rows = top[:, 0] - top[:, 1] > 1e-3
            assert rows.sum() > 250
            args = () if lam == 1.0 else (lam,)  # lam = 1 by default
            assert ridge_probe(x_fit, y_fit, x_test[rows], scores.argmax(1)[rows], 3, *args) == 1.0, (scale, lam)
    a = torch.tensor([[4.0, 1.0, 0.0], [1.0, 3.0, 1.0], [0.0, 1.0, 2.0]], dtype=torch.float64)
    x = torch.tensor([[1.0, -2.0], [0.5, 0.0], [-1.0, 3.0]], dtype=torch.float64)
    assert torch.allclose(solve_spd(a, a @ x), x, atol=1e-12) and torch.equal(a[0], torch.tensor([4.0, 1.0, 0.0],
                                                                                               dtype=torch.float64))
