"""analyze.py end to end on tiny models: results.json laid out for tools, deterministic, every model and
seed studied alike, one-line errors."""
import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = ["--n-fit", "40", "--n-select", "12", "--n-report", "20", "--n-pairs", "10", "--n-quality", "10",
         "--n-sweep", "6", "--clt-steps", "30", "--clt-compare", "64"]


def run(*args):
    return subprocess.run([sys.executable, os.path.join(ROOT, "analyze.py"), *args], capture_output=True,
                          text=True, timeout=600, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"})


def without_timings(x):
    if isinstance(x, dict):
        return {k: without_timings(v) for k, v in x.items() if "seconds" not in k}
    return [without_timings(v) for v in x] if isinstance(x, list) else x


def test_every_model_and_seed_goes_through_one_study_and_results_are_deterministic(tiny_run, tmp_path):
    from conftest import TINY_WORLD, TINY_MODEL, tiny_train_config
    from train import train
    import worlds
    out = tmp_path / "out"
    out.mkdir()
    shutil.copy(tiny_run[0], out / "model.pt")
    w, m, t = worlds.MODELS["barrier"].overrides
    for seed in (0, 1):
        folder = os.path.dirname(worlds.checkpoint_path(str(out), "barrier", seed))
        train(replace(TINY_WORLD, seed=seed, **w), replace(TINY_MODEL, **m),
              tiny_train_config(folder, max_steps=30, seed=seed, **t), quiet=True)
    results = []
    for k in range(2):
        r = run("--out", str(out), "--report", str(tmp_path / f"r{k}"), *SMALL)
        assert r.returncode == 0, r.stderr[-2000:]
        results.append(json.load(open(tmp_path / f"r{k}" / "results.json")))
    res = results[0]
    assert list(res["models"]) == ["main", "barrier"]
    barrier = res["models"]["barrier"]
    assert barrier["headline"]["n_seeds"] == 2 and [s["seed"] for s in barrier["seeds"]] == [0, 1]
    for key in ("valid", "nl_ld_rhyme", "nl_ld_cue", "add_only_other_rhyme_rate", "add_only_two_facts_rate",
                "suppression_runner_up_rate", "sweep_rhyme_site_rate", "sweep_rhyme_best_other_rate",
                "ending_probe_nl", "cell_favourite_rate", "total_valid_change_nl", "shape_donor_valid_rate",
                "shape_donor_valid_control_rate", "green_valid_rate", "composition_valid_holdout_rate"):
        assert key in barrier["headline"] and key + "_range" in barrier["headline"], key
    # a site is never averaged: each seed's is listed, and every rate key names its kind
    assert len(barrier["headline"]["intervention_site"]) == 2
    assert all(s is None or isinstance(s, str) for s in barrier["headline"]["intervention_site"])
    for name in ("main", "barrier"):
        assert {"quality", "patching", "sites", "probes"} <= set(res["models"][name])
    assert res["study_config"]["clt_compare"] == "64"  # variants trained: the dictionary-size comparison runs
    assert without_timings(results[0]) == without_timings(results[1])


def test_missing_checkpoint_is_one_line_exit_1(tmp_path):
    r = run("--out", str(tmp_path))
    assert r.returncode == 1 and "python train.py" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_bad_flag_is_one_line_exit_2():
    for args in (["--n-report", "x"], ["--n-report", "0"], ["--bogus"], ["--threads", "0"]):
        r = run(*args)
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, (args, r.stderr)
        assert "Traceback" not in r.stderr


def test_prompt_checks_the_grammar_and_list_words(tiny_run, tmp_path):
    shutil.copy(tiny_run[0], tmp_path / "model.pt")
    r = run("--out", str(tmp_path), "--prompt", "she saw a goat and went to find a hat")
    assert r.returncode == 0, r.stderr[-1500:]
    assert "line 2:" in r.stdout and "ending candidates:" in r.stdout
    page = (tmp_path / "report" / "prompt.html").read_text()  # the same, as a page
    line2 = r.stdout.split("line 2:")[1].splitlines()[0].strip()
    assert "Your couplet" in page and line2 in page and "candidates for the ending" in page
    for bad, words in (("he saw a carrot and had to grab it", "not in the vocabulary"),
                       ("she saw an goat and went to find a hat", "wrong article"), ("cat cat cat", "")):
        r = run("--out", str(tmp_path), "--prompt", bad)
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and words in r.stderr, r.stderr
    r = run("--list-words")
    assert r.returncode == 0 and "animal" in r.stdout and "cat" in r.stdout


def test_unwritable_report_folder_is_one_line_exit_1(tiny_run, tmp_path):
    shutil.copy(tiny_run[0], tmp_path / "model.pt")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    r = run("--out", str(tmp_path), "--report", str(blocker / "sub"), *SMALL)
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr, r.stderr


def test_corrupt_or_foreign_checkpoint_is_one_line_exit_1(tmp_path):
    import torch
    for k, write in enumerate((lambda p: p.write_bytes(b"not a checkpoint"),
                               lambda p: torch.save({"weights": torch.zeros(3)}, p))):
        folder = tmp_path / str(k)
        folder.mkdir()
        write(folder / "model.pt")
        r = run("--out", str(folder))
        assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1 and "model.pt" in r.stderr, r.stderr
        assert "Traceback" not in r.stderr
        assert "delete" not in r.stderr.lower() or "if train.py wrote it" in r.stderr  # advice only for our own files


def test_ctrl_c_exits_130_with_one_line_and_writes_nothing_half(tiny_run, tmp_path):
    import signal
    import time
    shutil.copy(tiny_run[0], tmp_path / "model.pt")
    p = subprocess.Popen([sys.executable, os.path.join(ROOT, "analyze.py"), "--out", str(tmp_path), *SMALL],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                         env={**os.environ, "OMP_NUM_THREADS": "1"},
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # as in a terminal
    deadline = time.time() + 60
    while time.time() < deadline and "probes" not in (p.stdout.readline() or "probes"):
        pass
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 130 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert not (tmp_path / "report" / "results.json").exists()


def test_an_unfinished_main_checkpoint_is_refused_with_the_resume_command(tiny_run, tmp_path):
    import torch
    ck = torch.load(tiny_run[0], weights_only=True)
    ck["metrics"] = {}  # what an interrupted run leaves
    torch.save(ck, tmp_path / "model.pt")
    r = run("--out", str(tmp_path))
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "unfinished" in r.stderr and f"--out {tmp_path}" in r.stderr


def test_only_runs_one_experiment_alone_with_the_numbers_it_has_inside_the_study(tiny_run, tmp_path):
    shutil.copy(tiny_run[0], tmp_path / "model.pt")
    r = run("--out", str(tmp_path), *SMALL, "--jobs", "1")
    assert r.returncode == 0, r.stderr[-2000:]
    full = json.load(open(tmp_path / "report" / "results.json"))["models"]["main"]
    # (experiments that need the intervention site are skipped on a model this small; these two never need it)
    for name, sections in (("probes", ("probes", "readable_sites", "ending_probe")), ("patching", ("patching", "sites"))):
        r = run("--out", str(tmp_path), *SMALL, "--only", name)
        assert r.returncode == 0, r.stderr[-2000:]
        alone = json.load(open(tmp_path / "report" / "only" / f"{name}.json"))
        assert set(alone) >= set(sections) and "quality" not in alone and "sweep" not in alone
        for s in sections:
            assert alone[s] == full[s], s
            assert s in r.stdout  # printed as a table
    r = run("--out", str(tmp_path), "--only", "nonsense")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "--only must be one of" in r.stderr
