"""The walkthrough runs top to bottom on a model that writes couplets, as a script and as a notebook, and each of
its checks fails on the bug it guards against: every bug below is planted (in the core, in the walkthrough's own
code, or in the exercise functions it runs) and the run must stop at that step's check."""
import os
import runpy
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WALKTHROUGH = os.path.join(ROOT, "walkthrough.py")


@pytest.fixture
def quick(poet, monkeypatch, tmp_path):
    monkeypatch.setenv("WALKTHROUGH_MODEL", poet)
    monkeypatch.setenv("WALKTHROUGH_QUICK", "1")
    monkeypatch.chdir(tmp_path)  # figures go to tmp_path/out/walkthrough
    monkeypatch.delenv("EXERCISES", raising=False)
    return tmp_path


def test_walkthrough_runs_end_to_end_as_a_script(quick, one_thread):
    r = subprocess.run([sys.executable, WALKTHROUGH], capture_output=True, text=True, timeout=600,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr[-3000:]
    for step in ("rules broken", "rhyme family", "the line break's whole column", "layers >= 1", "valid at the donor's",
                 "green", "yours", "the strongest head", "the study's quality number"):
        assert step in r.stdout, step
    figures = os.listdir(quick / "out" / "walkthrough")
    assert len(figures) == 8 and all(f.startswith("step") for f in figures)


def test_walkthrough_executes_as_a_notebook(quick, one_thread):
    """Opened in Jupyter the percent cells are a notebook: converted by jupytext and run by nbclient, top to bottom."""
    jupytext, nbclient = pytest.importorskip("jupytext"), pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    nb = jupytext.read(WALKTHROUGH)
    nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": ROOT}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    assert sum("text/html" in o.get("data", {}) for o in outputs) == 8  # every figure shown inline


def exercises_file(tmp_path, name, body):
    """A student's file: the solutions with one function replaced by a bugged one."""
    path = tmp_path / f"{name}.py"
    path.write_text("from exercises.solutions import *  # noqa\nimport torch\n\n" + body)
    return str(path)


SHUFFLED_PROBE = '''
from exercises import solutions as _s
def ridge_probe_accuracy(x_fit, y_fit, x_test, y_test, n_classes, lam=1.0):
    y_fit = y_fit[torch.randperm(len(y_fit), generator=torch.Generator().manual_seed(1))]  # the bug
    return _s.ridge_probe_accuracy(x_fit, y_fit, x_test, y_test, n_classes, lam)
'''
MEAN_OF_RATIOS = '''
def normalized_ld_effect(ld_a, ld_b, ld_patched):
    return ((ld_patched - ld_a) / (ld_b - ld_a)).mean().item()  # the bug: a mean of per-pair ratios
'''


def words_before_pronoun(line2):
    from lexicon import PRONOUNS
    p = next((i for i, w in enumerate(line2) if w in PRONOUNS), None)
    return None if p is None else p  # the bug: words, not syllables


def random_length_directions(acts, line2s):
    from interp.directions import random_like
    return {k: random_like(v, 7 + k) for k, v in REAL["length_directions"](acts, line2s).items()}


REAL = {}

# name: (where the bug is planted, what it is, the check that must stop the run)
BUGS = {
    "probe fit on shuffled labels": ("exercise", SHUFFLED_PROBE, "the probe does not learn from its labels"),
    "effect as a mean of per-pair ratios": ("exercise", MEAN_OF_RATIOS, "is not the pooled one"),
    "logit difference with its sign flipped": ("source", ("logits[rows, eb] - logits[rows, ea]",
                                                          "logits[rows, ea] - logits[rows, eb]"), "the wrong sign"),
    "a patch one position before the swapped word": ("source", ("cache[hooks[l]][i][role_position(a, role, world.config)])",
                                                                "cache[hooks[l]][i][role_position(a, role, world.config) - 1])"),
                                                     "AssertionError"),
    "opener length counted in words": ("core", ("opener_length", words_before_pronoun), "AssertionError"),
    "the shape control taken at line 1's verb (a no-op)": ("source", (
        'shape.shape_patching(model, world, same, ["nl"], [layer], "other")["nl"][0]',
        'shape.shape_patching(model, world, same, ["seen"], [layer], "other")["seen"][0]'), "AssertionError"),
    "random vectors in place of the length directions": ("core", ("length_directions", random_length_directions),
                                                         "AssertionError"),
    "a wrong head": ("source", ("divmod(int(per_head.argmax()), H)", "divmod(int(per_head.argmin()), H)"),
                     "not the strongest head"),
}


@pytest.mark.parametrize("bug", list(BUGS))
def test_each_walkthrough_check_fails_on_its_planted_bug(bug, quick, one_thread, monkeypatch):
    where, what, message = BUGS[bug]
    source = open(WALKTHROUGH).read()
    if where == "exercise":
        monkeypatch.setenv("EXERCISES", exercises_file(quick, "student", what))
    elif where == "source":
        assert source.count(what[0]) >= 1, f"the walkthrough no longer has {what[0]!r}: update the planted bug"
        source = source.replace(what[0], what[1])
    else:
        from interp import shape
        REAL[what[0]] = getattr(shape, what[0])
        monkeypatch.setattr(shape, what[0], what[1])
    path = quick / "walkthrough_planted.py"
    path.write_text(source)
    monkeypatch.syspath_prepend(ROOT)
    with pytest.raises(AssertionError) as caught:
        runpy.run_path(str(path), run_name="__main__")
    assert message == "AssertionError" or message in str(caught.value), str(caught.value)
