"""Checks a student's exercises (EXERCISES=path/to/file.py; default: exercises/solutions.py) against the
project's own functions or results known exactly."""
import importlib.util
import os

import pytest
import torch

from lexicon import NOUNS
from interp import directions
from interp.directions import random_like
from interp.probes import ridge_probe

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def ex():
    path = os.environ.get("EXERCISES", os.path.join(ROOT, "exercises", "solutions.py"))
    spec = importlib.util.spec_from_file_location("student", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_normalized_ld_effect(ex):
    a, b = torch.tensor([0.0, 1.0, -2.0]), torch.tensor([2.0, 1.5, 0.0])
    assert ex.normalized_ld_effect(a, b, a) == pytest.approx(0.0)
    assert ex.normalized_ld_effect(a, b, b) == pytest.approx(1.0)
    # pooled, not a mean of per-pair ratios: the middle pair's tiny gap must not dominate
    assert ex.normalized_ld_effect(a, b, torch.tensor([1.0, 1.5, -1.0])) == pytest.approx(2.5 / 4.5)


def test_ridge_probe_accuracy_matches_the_projects(ex):
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(200, 16, generator=g), torch.randint(0, 4, (200,), generator=g)
    x[torch.arange(200), y] += 3.0  # one informative feature per class
    got = ex.ridge_probe_accuracy(x[:150], y[:150], x[150:], y[150:], 4)
    assert got == pytest.approx(ridge_probe(x[:150], y[:150], x[150:], y[150:], 4)) and got > 0.5


def test_contrastive_matches_the_projects(ex):
    words = sorted(NOUNS)[:30]
    dirs = {w: torch.randn(8, generator=torch.Generator().manual_seed(i)) for i, w in enumerate(words)}
    want = directions.contrastive(dirs)
    got = ex.contrastive(dirs, lambda w: (NOUNS[w].meaning, NOUNS[w].family))
    assert set(got) == set(want) and all(torch.allclose(got[w], want[w], atol=1e-6) for w in words)


def test_add_only_with_control_uses_norm_matched_random_directions(ex):
    vectors = [torch.full((4,), float(i + 1)) for i in range(3)]
    seen = []

    def write(line1s, vecs):  # a fake writer: ends with "hit" exactly when handed the real vectors
        seen.append([v.clone() for v in vecs])
        return [["x", "hit" if torch.equal(v, vectors[i]) else "miss"] for i, v in enumerate(vecs)]
    inject, control = ex.add_only_with_control(write, ["a", "b", "c"], ["hit"] * 3, vectors, seed=7)
    assert (inject, control) == (1.0, 0.0)
    rnd = next(s for s in seen if not torch.equal(s[0], vectors[0]))
    for i, (r, v) in enumerate(zip(rnd, vectors)):
        assert torch.allclose(r, random_like(v, 7 + i))


def test_feature_edge_to_logit_matches_the_graphs_edge(ex, tiny_run):
    import copy
    from data import world_from_dict
    from interp.attribution import build_graph, couplet_tokens, record, replacement_forward
    from interp.transcoder import CLTConfig, train_clt
    from model import load_checkpoint
    model, ckpt = load_checkpoint(tiny_run[0])
    world = world_from_dict(ckpt["world_config"])
    clt, _ = train_clt(model, world, CLTConfig(n_features=32, n_couplets=300, steps=60, batch_tokens=256))
    model, clt = copy.deepcopy(model).double(), copy.deepcopy(clt).double()
    c = world.split("test")[0]
    tokens = couplet_tokens(world, c.line1, c.line2)
    g = build_graph(model, clt, tokens)
    ctx = record(model, clt, tokens)
    fs, _, _, ls = g.slices()
    k = g.adjacency[ls.start, fs].abs().argmax().item()  # the strongest feature into the top logit
    layer, pos, feature = g.features[k].tolist()
    with torch.no_grad():
        got = ex.feature_edge_to_logit(lambda a: replacement_forward(model, clt, ctx, ctx.embed, a, ctx.errors)[0],
                                       ctx.acts.clone(), layer, pos, feature, int(g.logit_ids[0]), g.target_pos)
    want = g.adjacency[ls.start, k].item()
    assert abs(want) > 1e-6 and got == pytest.approx(want, abs=1e-8)


def test_the_checker_fails_every_unfilled_stub():
    """The one command a student runs, on the stubs as shipped: every exercise's check fails."""
    import subprocess
    import sys
    if os.environ.get("EXERCISES"):
        pytest.skip("checking a student's file")
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__, "-k", "not checker"],
                       capture_output=True, text=True, cwd=ROOT, timeout=600,
                       env={**os.environ, "EXERCISES": os.path.join(ROOT, "exercises", "stubs.py"),
                            "OMP_NUM_THREADS": "1"})
    n = sum(name.startswith("test_") and name != "test_the_checker_fails_every_unfilled_stub" for name in globals())
    assert r.returncode != 0 and f"{n} failed" in r.stdout, r.stdout[-1500:]
