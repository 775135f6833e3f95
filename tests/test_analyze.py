"""analyze.py end to end on a tiny model: it writes the report, and twice gives the same numbers."""
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(*args):
    return subprocess.run([sys.executable, os.path.join(ROOT, "analyze.py"), *args], capture_output=True,
                          text=True, timeout=600, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"})


def without_timings(x):
    """The results minus wall-clock measurements, which differ run to run by nature."""
    if isinstance(x, dict):
        return {k: without_timings(v) for k, v in x.items() if "seconds" not in k}
    return [without_timings(v) for v in x] if isinstance(x, list) else x


def test_analyze_writes_report_and_is_deterministic(tiny_run, tmp_path):
    outs = []
    for k in range(2):
        out = tmp_path / f"r{k}"
        r = run("--checkpoint", tiny_run[0], "--out", str(out), "--n-prompts", "40", "--n-fit", "300",
                "--n-calibrate", "40")
        assert r.returncode == 0, r.stderr[-2000:]
        res = json.load(open(out / "results.json"))
        for key in ("probes", "patching", "planning_site", "suppression", "injection", "sweep", "backward", "smeared"):
            assert key in res, key
        assert set(res["sweep"]["rates_by_position"]) >= {"bos", "cue", "rhyme", "nl"}
        html = open(out / "index.html").read()
        assert "<svg" in html and 'id="patching"' in html
        outs.append(without_timings(res))
    assert outs[0] == outs[1]


def test_missing_checkpoint_is_one_line_exit_1(tmp_path):
    r = run("--checkpoint", str(tmp_path / "nope.pt"))
    assert r.returncode == 1 and "python train.py" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_bad_flag_is_one_line_exit_2():
    for args in (["--n-prompts", "x"], ["--n-prompts", "3"], ["--bogus"]):
        r = run(*args)
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, (args, r.stderr)


def test_prompt_mode_and_list_words(tiny_run, tmp_path):
    r = run("--checkpoint", tiny_run[0], "--out", str(tmp_path), "--prompt", "she saw a goat and went to find a hat",
            "--n-fit", "200")
    assert r.returncode == 0, r.stderr[-1500:]
    assert "line 2:" in r.stdout and "planned ending read at" in r.stdout
    r = run("--checkpoint", tiny_run[0], "--list-words")
    assert r.returncode == 0 and "-at" in r.stdout and "animal: cat" in r.stdout


def test_prompt_with_unknown_words_is_refused_with_suggestions(tiny_run):
    r = run("--checkpoint", tiny_run[0], "--prompt", "he saw a carrot and had to grab it")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert "'carrot'" in r.stderr and "'it'" in r.stderr and "try:" in r.stderr
    r = run("--checkpoint", tiny_run[0], "--prompt", "cat cat cat")
    assert r.returncode == 2 and "line 1" in r.stderr


def test_unwritable_report_folder_is_one_line_exit_1(tiny_run, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    r = run("--checkpoint", tiny_run[0], "--out", str(blocker / "sub"), "--n-prompts", "20", "--n-fit", "100",
            "--n-calibrate", "20")
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1 and "--out" in r.stderr, r.stderr[-800:]


def test_corrupt_or_foreign_checkpoint_is_one_line_exit_1(tmp_path):
    import torch
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint at all")
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, other)
    for path in (bad, other):
        r = run("--checkpoint", str(path))
        assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1 and str(path) in r.stderr, r.stderr
        assert "Traceback" not in r.stderr


def test_full_study_sections_appear_when_the_variants_exist(tiny_run, tmp_path):
    """With out/worlds/* present, analyze.py adds worlds, myopic, compositional and the answers."""
    import shutil
    from dataclasses import replace
    from conftest import TINY_WORLD, TINY_MODEL, tiny_train_config
    from train import train
    from worlds import VARIANTS
    out = tmp_path / "out"
    out.mkdir()
    shutil.copy(tiny_run[0], out / "model.pt")
    for name, (w_over, m_over, t_over, _) in VARIANTS.items():
        train(replace(TINY_WORLD, **w_over), replace(TINY_MODEL, **m_over),
              tiny_train_config(out / "worlds" / name, max_steps=60, **t_over), quiet=True)
    r = run("--checkpoint", str(out / "model.pt"), "--out", str(out / "report"), "--n-prompts", "40",
            "--n-fit", "300", "--n-calibrate", "40")
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.load(open(out / "report" / "results.json"))
    assert set(res["worlds"]) == {"main"} | set(VARIANTS)
    for w in res["worlds"].values():
        assert {"planning_site", "patching", "injection_rate", "smeared"} <= set(w)
    assert {"normal", "myopic", "gap"} <= set(res["myopic"])
    assert {"heldout_accuracy", "chance", "sum_test_rate"} <= set(res["compositional"])
    html = open(out / "report" / "index.html").read()
    assert '<section id="answers"' in html and 'id="worlds"' in html and 'id="myopic"' in html
