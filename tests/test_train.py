import json
import os
import subprocess
import sys

import torch

from conftest import TINY_WORLD, TINY_MODEL, tiny_train_config
from model import load_checkpoint
from interp.stats import wilson
from train import train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def weights(path):
    return load_checkpoint(path)[0].state_dict()


def test_two_runs_with_one_seed_are_identical(tmp_path):
    train(TINY_WORLD, TINY_MODEL, tiny_train_config(tmp_path / "a", max_steps=15), quiet=True)
    train(TINY_WORLD, TINY_MODEL, tiny_train_config(tmp_path / "b", max_steps=15), quiet=True)
    a, b = weights(tmp_path / "a" / "model.pt"), weights(tmp_path / "b" / "model.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)
    train(TINY_WORLD, TINY_MODEL, tiny_train_config(tmp_path / "c", max_steps=15, seed=1), quiet=True)
    c = weights(tmp_path / "c" / "model.pt")
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_resume_after_interrupt_equals_uninterrupted(tmp_path):
    full = tiny_train_config(tmp_path / "full", max_steps=30, ckpt_every=10)
    train(TINY_WORLD, TINY_MODEL, full, quiet=True)
    part = tiny_train_config(tmp_path / "part", max_steps=30, ckpt_every=10)
    assert train(TINY_WORLD, TINY_MODEL, part, on_step=lambda r: r.step == 17, quiet=True) is None
    assert load_checkpoint(str(tmp_path / "part" / "model.pt"))[1]["train_state"]["step"] == 17
    resumed = tiny_train_config(tmp_path / "part", max_steps=30, ckpt_every=10, resume=True)
    train(TINY_WORLD, TINY_MODEL, resumed, quiet=True)
    a, b = weights(tmp_path / "full" / "model.pt"), weights(tmp_path / "part" / "model.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_tiny_training_lowers_the_loss_and_writes_metrics(tiny_run):
    path, metrics = tiny_run
    m = json.load(open(os.path.join(os.path.dirname(path), "train_metrics.json")))
    for split in ("test", "holdout"):
        assert set(m[split]) >= {"rhyme", "meaning", "valid", "n"}
    assert m["params"] > 0 and m["train_seconds"] > 0
    assert metrics["first_loss"] > 4.5  # about ln(vocab) = 5.2 at the start
    assert metrics["final_loss"] < metrics["first_loss"] - 1.0


def test_wilson_interval():
    lo, hi = wilson(90, 100)
    assert 0.82 < lo < 0.9 < hi < 0.95
    assert wilson(0, 10)[0] == 0.0


def run_cli(*args, timeout=120):
    return subprocess.run([sys.executable, os.path.join(ROOT, "train.py"), *args],
                          capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def test_bad_flags_give_one_line_and_exit_2(tmp_path):
    for args in (["--n-layer", "0"], ["--lr", "-1"], ["--batch-size", "0"], ["--n-head", "5"],
                 ["--max-steps", "many"], ["--no-such-flag"]):
        r = run_cli(*args, "--out", str(tmp_path))
        assert r.returncode == 2, (args, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr, r.stderr
