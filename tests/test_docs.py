"""The README and docs/ hold no dangling reference: every file they name exists, every `python X.py --flag`
they or a docstring show has that flag, and every Python block runs (on a tiny model)."""
import glob
import os
import re
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = [os.path.join(ROOT, "README.md"), *sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))]
SOURCES = [p for p in glob.glob(os.path.join(ROOT, "**", "*.py"), recursive=True) if "/tests/" not in p]
# what a run writes (under out/ or the report folder), named by the docs but not in the repository
WRITTEN = {"results.json", "index.html", "results.md", "model.pt", "bench.json", "clt.pt", "train_metrics.json",
           "search.json", "search_row.json", "recipe_search.json", "prompt.html"}


def text(path):
    with open(path) as f:
        return f.read()


def named_files(s):
    """File names in backticks or links: `interp/study.py`, (docs/results.md)."""
    return set(re.findall(r"[`(]((?:[\w.-]+/)*[\w-]+\.(?:py|md|json|html|pt|txt|sh))[`)#]", s))


@pytest.mark.parametrize("doc", DOCS, ids=os.path.basename)
def test_every_file_a_doc_names_exists(doc):
    here = os.path.dirname(doc)
    for name in named_files(text(doc)):
        if os.path.basename(name) in WRITTEN or name.startswith("out/"):
            continue
        found = any(os.path.exists(os.path.join(base, name)) for base in (ROOT, here)) or \
            glob.glob(os.path.join(ROOT, "**", name), recursive=True)
        assert found, f"{os.path.basename(doc)} names {name}, which the project does not have"


def commands(s):
    """(script, [flags]) of every `python X.py --a --b ...` in a text."""
    out = []
    for m in re.finditer(r"python ([\w/]+\.py)([^`\n&|]*)", s):
        out.append((m.group(1), re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", m.group(2))))
    return out


@pytest.mark.parametrize("path", DOCS + SOURCES, ids=lambda p: os.path.relpath(p, ROOT))
def test_every_command_shown_exists_with_its_flags(path):
    for script, flags in commands(text(path)):
        target = os.path.join(ROOT, script)
        assert os.path.exists(target), f"{os.path.relpath(path, ROOT)} shows `python {script}`, which does not exist"
        if not flags:
            continue
        helptext = subprocess.run([sys.executable, target, "--help"], capture_output=True, text=True, cwd=ROOT,
                                  timeout=120).stdout + text(target)  # hidden flags are in the source only
        for flag in flags:
            assert flag in helptext, f"{os.path.relpath(path, ROOT)} shows `python {script} {flag}`: no such flag"


def python_blocks():
    for doc in DOCS:
        for i, block in enumerate(re.findall(r"```python\n(.*?)```", text(doc), re.S)):
            yield pytest.param(block, id=f"{os.path.basename(doc)}-{i}")


@pytest.mark.parametrize("block", list(python_blocks()))
def test_every_python_block_runs_on_a_tiny_model(block, tiny_run, tmp_path):
    if "transformer_lens" in block:
        pytest.importorskip("transformer_lens")
    (tmp_path / "out").mkdir()
    shutil.copy(tiny_run[0], tmp_path / "out" / "model.pt")
    r = subprocess.run([sys.executable, "-c", block], capture_output=True, text=True, cwd=tmp_path, timeout=300,
                       env={**os.environ, "PYTHONPATH": ROOT, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr[-2000:]


def test_the_checks_can_fail():
    assert named_files("see `nowhere/missing.py` and (docs/results.md)") == {"nowhere/missing.py", "docs/results.md"}
    assert commands("`python train.py --all --seeds 3` && python analyze.py") == \
        [("train.py", ["--all", "--seeds"]), ("analyze.py", [])]


def cited_claims(s):
    """Claim ids a text cites, as [C3] or [C3, C4]."""
    return {c for group in re.findall(r"\[((?:C\d+(?:, )?)+)\]", s) for c in group.split(", ")}


def claims_that_hold(results_md):
    """Claim ids whose row in results.md's claims table says the claim held."""
    return {m.group(1) for m in re.finditer(r"^\| (C\d+) \|.*\| \*\*held\*\* \|$", results_md, re.M)}


def test_every_claim_the_readme_cites_holds_in_docs_results():
    """The README's short answer cites claims by id; each must hold in the run docs/results.md reports
    (interp/claims.py), so no sentence says more than its numbers."""
    cited = cited_claims(text(os.path.join(ROOT, "README.md")))
    assert cited, "the README cites no claim"
    held = claims_that_hold(text(os.path.join(ROOT, "docs", "results.md")))
    assert cited <= held, f"the README cites claims that do not hold in docs/results.md: {sorted(cited - held)}"


def test_the_claim_checks_can_fail():
    assert cited_claims("a [C1] and [C2, C10] but not C3") == {"C1", "C2", "C10"}
    table = "| C1 | main | x | r | **held** |\n| C2 | main | y | r | **failed** |\n"
    assert claims_that_hold(table) == {"C1"}
