"""The circuit, head by head (interp/circuit.py): each test checks what a number's name promises."""
import time

import pytest
import torch

from conftest import random_model
from data import CoupletWorld, WorldConfig, pronoun_of
from lexicon import article
from model import GPT, GPTConfig, load_checkpoint
from interp import circuit as C
from interp import heads as H
from interp.edits import Edit, edit_hooks
from interp.prompts import Clean, swap_pairs
from interp.shape import cell_of

CLASSIC = WorldConfig(n_train=3000, n_test=200)


def made_up_clean(world):
    """A "clean line 2" for any line 1 without a model: a well-formed line 2 ending in its cell's first word."""
    def clean(line1s):
        out = []
        for l1 in line1s:
            e = sorted(cell_of(world, l1))[0]
            out.append(["and", "then", pronoun_of(l1), "met", article(e), e])
        return out
    return clean


def one_live_head(world, layer, head, seed=0):
    """A random model in which only head (layer, head) writes to the residual stream (every other head's columns
    of the output projection are zero): the one head that can move anything."""
    model = random_model(world, seed)
    d = model.cfg.d_model // model.cfg.n_head
    with torch.no_grad():
        for l, block in enumerate(model.blocks):
            for h in range(model.cfg.n_head):
                if (l, h) != (layer, head):
                    block.attn.proj.weight[:, h * d:(h + 1) * d] = 0.0
    return model


def toy_pairs(world, n=40):
    return swap_pairs(world, [c.line1 for c in world.split("test")[:n]], "rhyme", 0)


# ---- 1. an edit of one head ---------------------------------------------------------------------------------
def test_an_edit_of_one_head_changes_that_head_alone_at_that_position():
    world = CoupletWorld(CLASSIC)
    model = random_model(world, n_head=4)
    ids = torch.tensor([world.prompt_ids(world.split("test")[0].line1)] * 2)  # row 1: no edit
    name = "blocks.1.attn.hook_z"
    _, clean = model.run_with_cache(ids, names=[name])
    for op, value in (("set", torch.full((8,), 7.0)), ("add", torch.ones(8))):
        hooks = edit_hooks([[Edit(name, 3, value, op, head=2)], None])
        _, cache = model.run_with_cache(ids, names=[name], hooks=hooks)
        changed = (cache[name] != clean[name]).any(-1)  # (B, H, T)
        assert changed[0, 2, 3] and changed.sum() == 1, op  # row 0, head 2, position 3: nothing else
        want = value if op == "set" else clean[name][0, 2, 3] + value
        assert torch.allclose(cache[name][0, 2, 3], want)
    with pytest.raises(ValueError, match="per-head hook"):
        edit_hooks([[Edit("blocks.1.hook_resid_pre", 3, torch.zeros(32), head=0)]])


@pytest.mark.parametrize("kind", [{}, {"nl_barrier": True}, {"pos": "rope", "attn_window": 4}])
def test_logits_per_set_are_ending_logits_with_the_same_edits(kind):
    """The tokens before the last run once and their keys and values are reused: the same logits as running every
    (set, prompt) whole, in every architecture (learned positions, the line-break barrier, rotary and a window)."""
    from interp.edits import ending_logits, ending_logits_per_set
    world = CoupletWorld(CLASSIC)
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=len(world.itos), block_size=world.max_len(), n_layer=2, n_head=2, d_model=32,
                          d_mlp=64, **kind)).eval()
    couplets = world.split("test")[:12]
    line1s, prefixes = [c.line1 for c in couplets], [c.line2[:-1] for c in couplets]
    pos = [len(world.prompt_ids(l)) + len(p) - 1 for l, p in zip(line1s, prefixes)]
    sets = [[[Edit(H.z_hook(l), p, torch.randn(16) * 3, head=h) for l, h in heads] for p in pos]
            for heads in ([], [(0, 1)], [(1, 0), (0, 0)])]
    got = ending_logits_per_set(model, world, line1s, prefixes, sets, batch=8)
    for k, edits in enumerate(sets):
        assert torch.allclose(got[k], ending_logits(model, world, line1s, prefixes, edits), atol=1e-4)
    assert not torch.allclose(got[0], got[1], atol=1e-3)  # the edits bite: the check can fail
    with pytest.raises(ValueError, match="last position"):
        ending_logits_per_set(model, world, line1s, prefixes, [[[Edit(H.z_hook(0), 1, torch.zeros(16), head=0)]] * 12])


# ---- 2-4. the re-read route -----------------------------------------------------------------------------------
def test_all_heads_move_the_ending_exactly_one_and_no_head_zero(poet):
    """At the position that predicts the ending only line 1 differs, so B's output of every head there makes its
    whole column B's: exactly 1; no head changes nothing: exactly 0."""
    model, ckpt = load_checkpoint(poet)
    world = CoupletWorld(WorldConfig(**ckpt["world_config"]))
    pairs = C.EndingPairs(model, world, toy_pairs(world, 80), Clean(model, world))
    assert pairs.n > 10
    (every, _), (none, _) = pairs.patched(model, world, [H.all_heads(model.cfg), []])
    assert pairs.effect(every, H.all_heads(model.cfg))["value"] == pytest.approx(1.0, abs=1e-4)
    assert pairs.effect(none, [])["value"] == pytest.approx(0.0, abs=1e-4)
    assert every == pytest.approx(pairs.den, abs=1e-3)  # pair by pair, not only pooled
    assert pairs.noop([]) == 1.0 and pairs.noop(H.all_heads(model.cfg)) < 1.0


def test_faithfulness_and_complement_on_a_model_with_one_live_head():
    """Only L1H0 writes to the residual stream: any set holding it moves each pair exactly as all heads do (its
    faithfulness is all heads'), and its complement moves nothing; a set without it moves nothing either."""
    world = CoupletWorld(CLASSIC)
    model = one_live_head(world, 1, 0)
    pairs = C.EndingPairs(model, world, toy_pairs(world), made_up_clean(world))
    assert pairs.n > 10
    heads = H.all_heads(model.cfg)
    comp = [h for h in heads if h != (1, 0)]
    (every, _), (live, _), (rest, _), (with_dead, _) = pairs.patched(model, world, [heads, [(1, 0)], comp,
                                                                                    [(0, 1), (1, 0)]])
    assert any(abs(x) > 1e-3 for x in every)  # the toy moves something: the check can fail
    assert live == pytest.approx(every, abs=1e-5) and with_dead == pytest.approx(every, abs=1e-5)
    assert rest == pytest.approx([0.0] * pairs.n, abs=1e-5)


def test_greedy_picks_the_planted_best_head():
    heads = [(l, h) for l in range(3) for h in range(4)]
    weight = {h: 0.01 for h in heads}
    weight[(2, 1)], weight[(0, 3)] = 0.7, 0.25  # planted: the best head, then the second
    additive = lambda sets: [sum(weight[h] for h in s) for s in sets]
    chosen, steps = C.greedy(additive, heads)
    assert chosen == [(2, 1), (0, 3)] and steps == pytest.approx([0.7, 0.95])
    # never reaching the target: stops at the size limit; ties go to the earlier head
    flat = lambda sets: [0.1 * len(s) for s in sets]
    chosen, _ = C.greedy(flat, heads, target=2.0, max_size=3)
    assert chosen == heads[:3]
    # tuples break ties by their second element
    tied = lambda sets: [(1.0, 1 if (1, 2) in s else 0) for s in sets]
    assert C.greedy(tied, heads, target=0.5)[0] == [(1, 2)]


def test_greedy_finds_the_one_live_head_in_a_model():
    """The model-level planted case: only L1H1 writes, so it is the one head whose copy makes each pair B's."""
    world = CoupletWorld(CLASSIC)
    model = one_live_head(world, 1, 1)
    pairs = C.EndingPairs(model, world, toy_pairs(world), made_up_clean(world))
    score = lambda sets: [-sum(abs(x - d) for x, d in zip(num, pairs.den)) for num, _ in
                          pairs.patched(model, world, sets)]
    chosen, steps = C.greedy(score, H.all_heads(model.cfg), target=-1e-4)
    assert chosen == [(1, 1)] and steps[0] > -1e-4


def test_random_sets_are_the_requested_size_seeded_and_never_the_circuit():
    heads = [(l, h) for l in range(4) for h in range(4)]
    circuit = [(1, 2), (0, 0), (1, 1)]
    sets = C.random_sets(heads, 3, circuit, n=20, seed=4)
    assert len(sets) == 20 and all(len(s) == 3 == len(set(s)) and set(s) <= set(heads) for s in sets)
    assert sorted(circuit) not in sets and C.random_sets(heads, 3, circuit, n=20, seed=4) == sets
    assert C.random_sets(heads, 3, circuit, n=20, seed=5) != sets
    few = [(0, 0), (0, 1), (1, 0)]  # 3 sets of two; one of them is the circuit
    assert all(s != [(0, 0), (0, 1)] for s in C.random_sets(few, 2, [(0, 1), (0, 0)], n=50))
    assert C.random_sets(few, 3, few, n=5) == [] and C.random_sets(few, 0, [], n=5) == []


def test_a_pooled_control_is_the_mean_of_its_sets_effects():
    den = [1.0, 2.0, 1.0]
    nums = [[1.0, 0.0, 0.0], [0.0, 2.0, 1.0]]  # effects 0.25 and 0.75
    out = C.pooled(nums, den)
    assert out["value"] == pytest.approx(0.5) and out["range"] == pytest.approx([0.25, 0.75])
    assert out["n"] == 3 and out["n_sets"] == 2 and C.pooled([], den)["value"] is None


def test_the_bootstrap_interval_holds_the_value_and_is_reproducible():
    from interp.stats import ratio_of_sums
    g = torch.Generator().manual_seed(0)
    den = (torch.rand(120, generator=g) + 0.2).tolist()
    num = [d * x for d, x in zip(den, (torch.rand(120, generator=g) * 1.2).tolist())]
    a, b = ratio_of_sums(num, den, seed=3), ratio_of_sums(num, den, seed=3)
    assert a == b and a["value"] == pytest.approx(sum(num) / sum(den)) and a["n"] == 120
    assert a["ci"][0] < a["value"] < a["ci"][1] and a["ci"] != ratio_of_sums(num, den, seed=4)["ci"]
    assert ratio_of_sums(num, [-1.0] * 120)["value"] is None and ratio_of_sums([], [])["ci"] == [None, None]


def test_a_head_job_is_read_from_its_attention():
    roles = ["cue", "rhyme", "nl"]
    assert H.job("L1H2", roles, [0.1, 0.8, 0.1], "ending") == ("L1H2: rhyme -> ending", "rhyme")
    assert H.job("L0H0", roles, [0.35, 0.05, 0.3], "nl") == ("L0H0: cue + nl -> nl", "cue")
    assert H.parse_heads(H.heads_string([(1, 2), (0, 0)])) == [(1, 2), (0, 0)] and H.parse_heads("") == []


# ---- 6-7. the shape route, ablation, the experiment --------------------------------------------------------------
@pytest.fixture(scope="module")
def poet_circuit(poet):
    """The circuit experiment on the poet fixture, through the study (small prompt sets), with its time."""
    from interp.study import StudyConfig, study
    model, ckpt = load_checkpoint(poet)
    world = CoupletWorld(WorldConfig(**ckpt["world_config"]))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        t = time.time()
        r = study(model, world, StudyConfig(n_fit=40, n_select=60, n_report=60, n_pairs=60, n_quality=20, clt=False),
                  only="circuit")
        return r, time.time() - t
    finally:
        torch.set_num_threads(threads)


def test_the_shape_route_counts_something_on_the_poet(poet_circuit):
    sh = poet_circuit[0]["circuit"]["shape"]
    assert "skipped" not in sh, sh.get("skipped")
    assert sh["n_pairs"] > 0 and sh["n_eligible"] > 0 and sh["length"]["all"]["n"] > 0
    assert sh["length"]["all"]["k"] > 0  # all heads at the line break move the length somewhere: a reference
    assert sh["length"]["none"]["k"] == 0  # no head copied: A's own couplet, at A's length
    for head in H.all_heads(GPTConfig(n_layer=2, n_head=2)):
        one = sh["single"][H.head_name(head)]
        assert one["length"]["n"] == sh["n_eligible"] and one["token"]["n"] == sh["n_first_differs"]
    assert sh["readers"]["n"] > 0 and set(sh["readers"]["mass"]) == set(sh["jobs"])
    assert sum(sh["attention"][H.head_name((0, 0))]) == pytest.approx(1.0, abs=1e-3)  # a pattern sums to 1


def test_the_circuit_experiment_is_fast_and_its_headline_counts(poet_circuit):
    from interp.headline import headline, CONTROLS
    r, seconds = poet_circuit
    assert seconds < 60 and r["circuit"]["seconds"] < 30
    c = r["circuit"]
    for slot in ("rhyme", "cue"):
        assert c[slot]["n_pairs"] > 0 and 1 <= len(c[slot]["heads"]) <= C.MAX_HEADS
        assert c[slot]["all"]["value"] == pytest.approx(1.0, abs=1e-3)
    ab = c["ablation"]
    assert ab["n"] > 0 and all(0 <= ab[k]["survival"]["rate"] <= 1 for k in C.ABLATIONS)
    h = headline({"quality": {"valid": 1.0, "n": 20}, "patching": {s: {"column": {}} for s in ("rhyme", "cue")}, **r})
    assert h["circuit_rhyme_heads"] == "+".join(c["rhyme"]["heads"])
    assert h["n"]["circuit_rhyme_faithfulness"] == c["rhyme"]["n_pairs"] and "circuit_rhyme_faithfulness" in h["ci"]
    assert "circuit_rhyme_random" in CONTROLS and "circuit_rhyme_random" in h["noop"]


def test_the_page_draws_every_circuit_head_with_its_numbers(poet_circuit):
    from interp.headline import headline
    from page.circuit_section import circuit_section, circuit_markdown
    import worlds
    r = poet_circuit[0]
    seed = {"seed": 0, **headline({"quality": {"valid": 1.0, "n": 20},
                                   "patching": {s: {"column": {}} for s in ("rhyme", "cue")}, **r})}
    results = {"models": {"main": {**r, "seeds": [seed], "circuit_prediction": worlds.MODELS["main"].circuit_prediction}}}
    html, md = circuit_section(results), "\n".join(circuit_markdown(results))
    c = r["circuit"]
    svg = html[html.index("<svg"):html.index("</svg>")]
    for route in ("rhyme", "cue", "shape"):
        for h in c[route].get("heads", []):
            assert f">{h}</text>" in svg and f"{h} attends to" in svg  # its box and the positions it reads
        assert f"{c[route]['faithfulness']['value']:.2f}" in html  # its number, read from the result
    assert "<title>" in svg and "main | 0 | " + c["rhyme"]["heads"][0] in md
    assert ("held" in md or "FAILED" in md) and "prediction" in md


def test_the_ablation_verdict_says_whether_the_choice_matters():
    def out(*specific):
        o = {k: {"specific": s, "survival": {"rate": 0.5}} for k, s in zip(C.ABLATIONS, specific)}
        return C.ablation_verdict(o)
    assert out(True, True, True)["depends"] is False and "the same" in out(True, True, True)["text"]
    assert out(False, True, True)["depends"] is True and out(False, True, True)["text"].startswith("depends")
    assert out(None, None, None)["depends"] is None


def test_prediction_checks_read_the_seed_numbers():
    pred = {"reads": {"rhyme": ("rhyme",), "cue": ("nl",)}, "max_heads": {"rhyme": 2, "cue": 2},
            "shape_moves": True, "shape_layers": "late", "ablation_depends": False}
    seed = {"circuit_rhyme_heads": "L0H1+L1H0", "circuit_rhyme_reads": "rhyme+nl", "circuit_rhyme_faithfulness": 0.95,
            "circuit_cue_heads": "L0H0+L0H1+L1H1", "circuit_cue_reads": "cue+cue+nl", "circuit_cue_faithfulness": 0.9,
            "circuit_shape_heads": "L1H1", "circuit_shape_all_rate": 0.4, "circuit_ablation": "the same under every"}
    got = C.prediction_checks(pred, seed, n_layer=2)
    assert got == {"rhyme reads": True, "rhyme heads": True, "cue reads": False, "cue heads": False,
                   "shape moves": True, "shape layers": True, "ablation": True}
    assert C.prediction_checks({}, seed, 2) == {k: None for k in got}
