"""The checker of the exercises (exercises/stubs.py): one check per exercise, run on the file EXERCISES names
(default: exercises/solutions.py, loaded by `exercises.load`).

    EXERCISES=exercises/stubs.py python -m pytest -q tests/test_exercises.py

With EXERCISES set, only the five checks are collected: `5 passed`, or `k failed, 5-k passed`, and nothing
skipped. With it unset (CI), the checks are themselves tested: each must FAIL on every planted bug of
tests/planted_exercise_bugs.py and PASS on every harmless variant there, the stubs as shipped must fail all
five, and a bad path must be a one-line error.

Each check feeds inputs built so that each planted mistake changes the checked value, and compares the
result with the project's own function (interp/) or with a value known exactly.
"""
from contextlib import contextmanager
import copy
import os
import re
import subprocess
import sys

import pytest
import torch

import planted_exercise_bugs as planted
from exercises import load
from interp import directions
from interp.directions import random_like
from interp.probes import ridge_probe
from lexicon import NOUNS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STUDENT = bool(os.environ.get("EXERCISES"))  # checking a student's file: the five checks only


def load_or_exit():
    """The student's module; a bad EXERCISES path ends the run with its one-line message (exit code 4)."""
    try:
        return load()
    except FileNotFoundError as e:
        pytest.exit(str(e), returncode=4)


@pytest.fixture(scope="module")
def ex():
    return load_or_exit()


# ---- helpers ---------------------------------------------------------------------------------------------
def tensors_in(obj):
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from tensors_in(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from tensors_in(v)


@contextmanager
def unchanged(name, *inputs):
    """Fails if the call inside changed any tensor of its inputs in place."""
    before = [t.clone() for t in tensors_in(inputs)]
    yield
    assert all(torch.equal(b, a) for b, a in zip(before, tensors_in(inputs))), (
        f"{name} changed its input tensors in place: compute on new tensors (x - c, .clone()), not with -=, "
        f"sub_ or item assignment on the caller's")


def likely_mistake(exercise, run, same):
    """'; that is what <mistake> gives' for the planted mistakes of `exercise` whose result run(impl) is
    `same` as the student's, else ''."""
    names = []
    for what, impl in planted.PLANTED[exercise].values():
        try:
            if same(run(impl)):
                names.append(what)
        except Exception:  # a mistake that cannot run on these inputs is not the student's
            pass
    return f"; that is what {' or '.join(names)} gives" if names else ""


def a_float(x, name):
    assert isinstance(x, float), f"{name} should return a Python float (.item()), not {type(x).__name__}"


# ---- 1. normalized_ld_effect -------------------------------------------------------------------------------
# five pairs: one with a gap of 0.001 (its per-pair ratio is 500), one with a negative gap
LD_A, LD_B, LD_P = [0.0, 1.0, -2.0, 0.5, 1.0], [2.0, 1.001, 0.0, 2.5, 0.5], [1.0, 1.5, -1.5, 2.5, 1.0]


def check_normalized_ld_effect(f):
    a, b, p = (torch.tensor(v) for v in (LD_A, LD_B, LD_P))
    want = sum(y - x for x, y in zip(LD_A, LD_P)) / sum(y - x for x, y in zip(LD_A, LD_B))  # 4 / 5.501
    with unchanged("normalized_ld_effect", a, b, p):
        got = f(a, b, p)
    a_float(got, "normalized_ld_effect")
    assert got == pytest.approx(want, rel=1e-5), (
        f"pooled effect of the five pairs: want {want:.4f}, got {got:.4f}" + likely_mistake(
            "normalized_ld_effect", lambda g: g(a.clone(), b.clone(), p.clone()),
            lambda r: r is not None and r == pytest.approx(got, rel=1e-5)))
    assert f(a, b, a) == pytest.approx(0.0, abs=1e-6), "a patch that leaves A's LDs as they are has effect 0"
    assert f(a, b, b) == pytest.approx(1.0, rel=1e-5), "a patch that gives A B's LDs has effect 1"
    a64, b64, p64 = (torch.tensor(v, dtype=torch.float64) for v in (LD_A, LD_B, LD_P))
    assert f(a64, b64, p64) == pytest.approx(want, rel=1e-9), "with float64 inputs, the effect in float64"
    for gap in ([-1.0, 0.5], [1.0, -1.0]):  # pooled gaps -0.5 and 0.0
        x = torch.tensor([1.0, 2.0])
        got = f(x, x + torch.tensor(gap), x + 1.0)
        assert got is None, f"the pooled gap sum(ld_b - ld_a) is {sum(gap)}: return None, not {got}"


# ---- 2. ridge_probe_accuracy -------------------------------------------------------------------------------
def probe_data():
    """3 classes, d = 8 features of very different scales and offsets (feature 0 informative in units of
    1e-3), 14 fit rows (so lam matters: 9 weights per class), 200 test rows with a shifted feature 2 (so
    standardising them with their own statistics moves them)."""
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(3, 8, generator=torch.Generator().manual_seed(99)) * 0.8
    scale = torch.tensor([1e-3, 1e-2, 1, 1, 10, 100, 1, 0.1])
    offset = torch.tensor([0.0, 5, -3, 0, 50, 0, 2, 0])

    def rows(n, probs, shift):
        y = torch.multinomial(torch.tensor(probs), n, replacement=True, generator=g)
        return (centres[y] + torch.randn(n, 8, generator=g)) * scale + offset + shift, y
    x_fit, y_fit = rows(14, [0.5, 0.33, 0.17], 0.0)
    x_test, y_test = rows(200, [1 / 3] * 3, torch.tensor([0.0, 0, 0.5, 0, 0, 0, 0, 0]))
    return x_fit, y_fit, x_test, y_test


def check_ridge_probe_accuracy(f):
    x_fit, y_fit, x_test, y_test = probe_data()
    for lam in (1.0, 30.0):
        scores = planted.ridge_scores(x_fit, y_fit, x_test, 3, lam)
        top = scores.topk(2, 1).values
        rows = top[:, 0] - top[:, 1] > 0.05  # rows away from a tie, where a harmless difference changes nothing
        pred, xt, n = scores.argmax(1)[rows], x_test[rows], int(rows.sum())
        assert ridge_probe(x_fit, y_fit, xt, pred, 3, lam) == 1.0  # the reference is interp/probes.py's probe
        lam_args = () if lam == 1.0 else (lam,)  # lam = 1 by default
        with unchanged("ridge_probe_accuracy", x_fit, y_fit, xt, pred):
            got = f(x_fit, y_fit, xt, pred, 3, *lam_args)  # the accuracy against the project's predictions
        a_float(got, "ridge_probe_accuracy")
        assert got == pytest.approx(1.0), (
            f"at lam = {lam}, your probe's predictions differ from the project's on {round((1 - got) * n)} of {n} "
            f"test rows" + likely_mistake("ridge_probe_accuracy", lambda g: f(x_fit, y_fit, xt, planted.ridge_scores(
                x_fit, y_fit, xt, 3, lam, **g.keywords).argmax(1), 3, *lam_args), lambda r: r == pytest.approx(1.0)))
        want = ridge_probe(x_fit, y_fit, xt, y_test[rows], 3, lam)
        got = f(x_fit, y_fit, xt, y_test[rows], 3, *lam_args)
        assert got == pytest.approx(want), f"at lam = {lam}: the accuracy on the true labels is {want:.4f}, not {got}"


# ---- 3. contrastive ------------------------------------------------------------------------------------------
def word_cells():
    """{word: (meaning, family)} of 3 lexicon cells: 4 words of one, 2 of another, 1 of a third (alone)."""
    cells = {}
    for w in sorted(NOUNS):
        cells.setdefault((NOUNS[w].meaning, NOUNS[w].family), []).append(w)
    big = [ws for ws in cells.values() if len(ws) >= 4]
    two = [ws for ws in cells.values() if len(ws) >= 2 and ws not in big[:1]]
    lone = [ws for ws in cells.values() if ws not in big[:1] + two[:1]]
    return {w: (NOUNS[w].meaning, NOUNS[w].family) for w in big[0][:4] + two[0][:2] + lone[0][:1]}


def check_contrastive(f):
    cell = word_cells()
    offsets = {c: 5.0 * torch.randn(6, generator=torch.Generator().manual_seed(k))
               for k, c in enumerate(sorted(set(cell.values())))}  # each cell's words share a large component
    dirs = {w: offsets[cell[w]] + torch.randn(6, generator=torch.Generator().manual_seed(100 + i))
            for i, w in enumerate(cell)}
    want = directions.contrastive(dirs)  # the project's, with the lexicon's cells
    with unchanged("contrastive", dirs):
        got = f(dirs, lambda w: cell[w])
    assert isinstance(got, dict) and set(got) == set(dirs), "return a dict with the same words as `directions`"
    for w in dirs:
        assert got[w].shape == dirs[w].shape and got[w].dtype == dirs[w].dtype, f"{w}: shape (6,), float32"
        assert torch.allclose(got[w], want[w], atol=1e-5), (
            f"{w} (cell {cell[w]}, {sum(c == cell[w] for c in cell.values())} word(s) of `directions`): want "
            f"{[round(x, 3) for x in want[w].tolist()]}, got {[round(x, 3) for x in got[w].tolist()]}" + likely_mistake(
                "contrastive", lambda g: g({v: d.clone() for v, d in dirs.items()}, lambda v: cell[v]),
                lambda r: all(torch.allclose(r[v], got[v], atol=1e-5) for v in dirs)))
    # with cells other than the lexicon's (the first cell, and the rest merged into one): c_w is d_w minus
    # one shift per cell, and a cell's c_w sum to 0
    first = cell[next(iter(cell))]
    other = {w: "the first cell" if cell[w] == first else "the rest, merged" for w in cell}
    got = f({w: d.clone() for w, d in dirs.items()}, lambda w: other[w])
    for c in ("the first cell", "the rest, merged"):
        words = [w for w in dirs if other[w] == c]
        shifts = torch.stack([dirs[w] - got[w] for w in words])
        assert torch.allclose(shifts, shifts[0].expand_as(shifts), atol=1e-5), (
            f"with cell_of giving two cells, the words of {c} must be moved by one vector, their cell's mean: "
            f"use cell_of, not the lexicon")
        assert torch.allclose(torch.stack([got[w] for w in words]).sum(0), torch.zeros(6), atol=1e-5), (
            f"with cell_of giving two cells, the directions of {c} must sum to 0: subtract the cell's mean")


# ---- 4. add_only_with_control --------------------------------------------------------------------------------
LINE1S = [["he", "saw", "a", "dog"], ["she", "found", "a", "fox"], ["they", "fed", "an", "ox"],
          ["he", "chased", "a", "seal"]]
TARGETS = ["hat", "cat", "mat", "bat"]
INJECTED = [["and", "then", "he", "found", "a", "hat"],          # hit
            ["and", "the", "cat", "then", "found", "a", "dog"],  # the target mid-line, another ending: a miss
            ["and", "then", "he", "found", "a", "mats"],         # the last word contains the target: a miss
            ["then", "she", "saw", "a", "bat"]]                  # hit
CONTROLLED = [["and", "then", "a", "rat"],              # a miss
              ["then", "a", "cat"],                     # hit
              [],                                       # an empty line 2: a miss
              ["and", "then", "a", "wombat"]]           # contains "bat": a miss
MISS = ["and", "then", "a", "dog"]


class FakeWriter:
    """Stands in for the model: a scripted line 2 per prompt for its injected vector (INJECTED) and for its
    expected control (CONTROLLED); any other vector gets MISS. Records the controls it was handed."""

    def __init__(self, vectors, seed):
        self.vectors, self.seed, self.controls = vectors, seed, {}

    def __call__(self, line1s, vecs):
        assert len(line1s) == len(vecs), "write(line1s, vectors) takes one vector per line 1"
        out = []
        for l1, v in zip(line1s, vecs):
            i = LINE1S.index(list(l1))
            if torch.equal(v, self.vectors[i]):
                out.append(list(INJECTED[i]))
                continue
            self.controls[i] = v
            want = random_like(self.vectors[i], self.seed + i)
            same = v.shape == want.shape and v.dtype == want.dtype and torch.allclose(v, want, atol=1e-6)
            out.append(list(CONTROLLED[i] if same else MISS))
        return out


def check_add_only_with_control(f):
    vectors = [torch.randn(6, generator=torch.Generator().manual_seed(50 + i)) * (i + 2) for i in range(4)]
    for seed in (7, 0):
        seed_args = (seed,) if seed else ()  # seed 0 is the default
        write = FakeWriter(vectors, seed)
        with unchanged("add_only_with_control", vectors):
            got = f(write, LINE1S, TARGETS, vectors, *seed_args)
        for i, v in enumerate(vectors):
            assert i in write.controls, f"prompt {i} was never written with a control (write(line1s, controls))"
            r, want = write.controls[i], random_like(v, seed + i)
            assert r.shape == v.shape and r.dtype == v.dtype, f"prompt {i}'s control: shape {tuple(v.shape)}, {v.dtype}"
            assert r.norm().item() == pytest.approx(v.norm().item(), rel=1e-5), (
                f"prompt {i}'s control has norm {r.norm():.4f}, its vector {v.norm():.4f}: match the norm")
            assert torch.allclose(r, want, atol=1e-6), (
                f"prompt {i}'s control (seed={seed}) is not torch.randn(v.shape, generator="
                f"torch.Generator().manual_seed(seed + {i})) scaled to v's norm: a fresh generator per prompt")
        assert isinstance(got, tuple) and len(got) == 2, "return (rate with the vectors, rate with the controls)"
        a_float(got[0], "add_only_with_control's rates")
        a_float(got[1], "add_only_with_control's rates")
        assert got == pytest.approx((0.5, 0.25)), (
            f"the fake model's line 2s end with the target for 2 of 4 injected prompts and 1 of 4 controls: "
            f"want (0.5, 0.25), got {got}" + likely_mistake(
                "add_only_with_control", lambda g: g(FakeWriter(vectors, seed), LINE1S, TARGETS, vectors, *seed_args),
                lambda r: tuple(r) == pytest.approx(got)))


# ---- 5. feature_edge_to_logit --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def edge_case(tiny_run):
    """A tiny model's attribution graph (float64), the replacement model's logits as a function of acts,
    and the edges to check: for the top two target logits, at every (layer, position) with an active
    feature, the feature with the strongest edge into that logit, with the graph's weight."""
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
    edges = []
    for j in range(2):
        strongest = {}
        for k in range(g.n_features):
            layer, pos, feature = g.features[k].tolist()
            w = g.adjacency[ls.start + j, k].item()
            if abs(w) > abs(strongest.get((layer, pos), (0, 0, 0.0))[2]):
                strongest[(layer, pos)] = (feature, int(g.logit_ids[j]), w)
        edges += [(layer, pos, *rest) for (layer, pos), rest in sorted(strongest.items())]
    assert {p for _, p, *_ in edges} - {g.target_pos} and len({l for l, *_ in edges}) == model.cfg.n_layer
    return (lambda a: replacement_forward(model, clt, ctx, ctx.embed, a, ctx.errors)[0]), ctx.acts, g.target_pos, edges


def toy_edges():
    """A toy replacement model, affine and causal, whose edges are known exactly: logits[t] = c[t] + the sum
    over (l, p <= t, f) of a[l, p, f] W[l, p, f, t]. (L, T, F, V) = (2, 4, 3, 5), float64."""
    g = torch.Generator().manual_seed(3)
    L, T, F, V = 2, 4, 3, 5
    causal = (torch.arange(T)[:, None] <= torch.arange(T)[None, :]).double()  # [p, t]: can p reach t?
    w = torch.randn(L, T, F, T, V, generator=g, dtype=torch.float64) * causal[None, :, None, :, None]
    c = torch.randn(T, V, generator=g, dtype=torch.float64)
    acts = torch.rand(L, T, F, generator=g, dtype=torch.float64) + 0.5
    edges = [(l, p, f, tok, t, (acts[l, p, f] * (w[l, p, f, t, tok] - w[l, p, f, t].mean())).item())
             for l in range(L) for p in range(T) for f in range(F) for tok in (0, 3) for t in (T - 2, T - 1)]
    return (lambda a: torch.einsum("lpf,lpftv->tv", a, w) + c), acts, edges


def check_edges(f, logits, acts, edges, where):
    for layer, pos, feature, token_id, target_pos, want in edges:
        a = acts.clone()
        with torch.no_grad(), unchanged("feature_edge_to_logit", a):
            got = f(logits, a, layer, pos, feature, token_id, target_pos)
        a_float(got, "feature_edge_to_logit")
        assert got == pytest.approx(want, abs=1e-8), (
            f"{where}: edge from feature {feature} at layer {layer}, position {pos} to logit {token_id} at "
            f"position {target_pos}: want {want:.6g}, got {got:.6g}" + likely_mistake(
                "feature_edge_to_logit", lambda g: g(logits, acts.clone(), layer, pos, feature, token_id, target_pos),
                lambda r: r == pytest.approx(got, abs=1e-8)))


def check_feature_edge_on_a_toy(f):
    check_edges(f, *toy_edges(), "on a toy affine model")


def check_feature_edge_on_a_graph(f, case):
    logits, acts, target_pos, edges = case
    check_edges(f, logits, acts, [(l, p, k, tok, target_pos, w) for l, p, k, tok, w in edges],
                "on a tiny model's attribution graph")


# ---- the five checks, on the student's file --------------------------------------------------------------------
def test_normalized_ld_effect(ex):
    check_normalized_ld_effect(ex.normalized_ld_effect)


def test_ridge_probe_accuracy(ex):
    check_ridge_probe_accuracy(ex.ridge_probe_accuracy)


def test_contrastive(ex):
    check_contrastive(ex.contrastive)


def test_add_only_with_control(ex):
    check_add_only_with_control(ex.add_only_with_control)


def test_feature_edge_to_logit(ex, request):
    check_feature_edge_on_a_toy(ex.feature_edge_to_logit)  # exact and instant: the graph is built only after it
    check_feature_edge_on_a_graph(ex.feature_edge_to_logit, request.getfixturevalue("edge_case"))


# each exercise's check, in stages; a planted bug must fail every stage
CHECKS = {"normalized_ld_effect": (check_normalized_ld_effect,), "ridge_probe_accuracy": (check_ridge_probe_accuracy,),
          "contrastive": (check_contrastive,), "add_only_with_control": (check_add_only_with_control,),
          "feature_edge_to_logit": (check_feature_edge_on_a_toy, check_feature_edge_on_a_graph)}


def run_stage(stage, impl, request):
    if stage is check_feature_edge_on_a_graph:
        return stage(impl, request.getfixturevalue("edge_case"))
    return stage(impl)


# ---- the checks' own tests (CI: EXERCISES unset) ------------------------------------------------------------------
if not STUDENT:
    @pytest.mark.parametrize("exercise, bug", [(e, b) for e in planted.PLANTED for b in planted.PLANTED[e]],
                             ids=lambda v: v)
    def test_each_check_fails_on_its_planted_bug(exercise, bug, request):
        for stage in CHECKS[exercise]:
            with pytest.raises(AssertionError):
                run_stage(stage, planted.PLANTED[exercise][bug][1], request)

    @pytest.mark.parametrize("exercise, variant", [(e, v) for e in planted.HARMLESS for v in planted.HARMLESS[e]],
                             ids=lambda v: v)
    def test_each_check_accepts_a_harmless_variant(exercise, variant, request):
        for stage in CHECKS[exercise]:
            run_stage(stage, planted.HARMLESS[exercise][variant], request)

    def checker(exercises_path):
        """The student's one command, with EXERCISES=exercises_path: (return code, output)."""
        r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__],
                           capture_output=True, text=True, cwd=ROOT, timeout=600,
                           env={**os.environ, "EXERCISES": exercises_path, "OMP_NUM_THREADS": "1"})
        return r.returncode, r.stdout + r.stderr

    def test_the_checker_fails_every_unfilled_stub():
        """The one command a student runs, on the stubs as shipped: every check fails, nothing else is run."""
        rc, out = checker("exercises/stubs.py")
        assert rc == 1 and re.search(rf"^{len(CHECKS)} failed in ", out, re.M), out[-1500:]
        assert out.count("NotImplementedError\n") >= len(CHECKS), out[-1500:]

    def test_a_bad_path_is_a_one_line_error(monkeypatch):
        with pytest.raises(FileNotFoundError) as e:
            load("exercises/no_such_file.py")
        assert "\n" not in str(e.value) and "EXERCISES=exercises/no_such_file.py: no such Python file" in str(e.value)
        monkeypatch.setenv("EXERCISES", "exercises/no_such_file.py")
        with pytest.raises(pytest.exit.Exception) as e:  # what the checker's fixture does with it
            load_or_exit()
        assert e.value.returncode == 4 and "\n" not in e.value.msg and "no such Python file" in e.value.msg
        assert load("exercises/stubs.py").__file__ == os.path.join(ROOT, "exercises", "stubs.py")  # relative: fine
