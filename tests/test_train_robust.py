"""train.py under stress: bad flags, unwritable --out, a full disk, bad checkpoints, resuming with
other settings, a diverging loss, SIGKILL, Ctrl-C and SIGTERM, `--all` child processes, and two
processes under torchrun. Every failure is one line on stderr and exit 2 (usage), 1 (runtime) or
130 (interrupted), never a traceback."""
import errno
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import torch

import plumbing.files
from plumbing import cli
import train as train_module
import worlds
from conftest import TINY_WORLD, TINY_MODEL, tiny_train_config
from model import checkpoint_payload, load_checkpoint
from plumbing.files import save_torch
from train import TrainError, main, train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--n-train", "3000", "--n-test", "40", "--n-layer", "2", "--n-head", "2", "--d-model", "32",
        "--d-mlp", "64", "--batch-size", "16", "--eval-every", "1000", "--eval-n", "20"]


pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


def run_main(capsys, *argv):
    """main() in this process: (exit code, stderr). argparse errors arrive as SystemExit."""
    try:
        code = main([*TINY, *argv])
    except SystemExit as e:
        code = e.code
    return code, capsys.readouterr().err


def assert_one_error_line(err, *words):
    assert "Traceback" not in err, err
    errors = [l for l in err.splitlines() if "error:" in l]  # (the progress bar may precede it)
    assert len(errors) == 1 and err.strip().splitlines()[-1] == errors[0], err
    for w in words:
        assert w in errors[0], (w, errors[0])
    return errors[0]


@pytest.mark.parametrize("argv, words", [
    (["--lr", "nan"], ["--lr"]), (["--lr", "inf"], ["--lr"]), (["--n-train", "0"], ["--n-train"]),
    (["--batch-size", "5000"], ["--batch-size", "--n-train"]), (["--holdout-pairs", "-1"], ["--holdout-pairs"]),
    (["--holdout-pairs", "99999"], ["--holdout-pairs"]), (["--line2-syllables", "3"], ["--line2-syllables"]),
    (["--distractor-prob", "2"], ["--distractor-prob"]), (["--seed", "-1"], ["--seed"]),
    (["--d-model", "30", "--n-head", "4"], ["--d-model", "--n-head"]), (["--ckpt-every", "0"], ["--ckpt-every"]),
    (["--d-model", "3.5"], ["--d-model"]), (["--bogus"], ["--bogus"]), (["--max-steps"], ["--max-steps"]),
    (["--grammar", "sonnet"], ["--grammar"]), (["--pos", "alibi"], ["--pos"]),
    (["--variant", "nope"], ["--variant", "main"]), (["--all", "--seeds", "0"], ["--seeds"]),
    (["--threads", "0"], ["--threads"]),
])
def test_out_of_range_flags_exit_2_with_one_line(argv, words, capsys, tmp_path):
    code, err = run_main(capsys, *argv, "--out", str(tmp_path / "out"))
    assert code == 2
    assert_one_error_line(err, *words)
    assert not (tmp_path / "out" / "model.pt").exists()


def test_meter_can_be_switched_off():
    from plumbing.cli import ArgumentParser, add_dataclass_flags
    from data import WorldConfig
    parser = ArgumentParser()
    add_dataclass_flags(parser, WorldConfig, "world")
    assert parser.parse_args([]).meter is True and parser.parse_args(["--no-meter"]).meter is False


def test_batch_must_split_evenly_over_processes(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")  # as torchrun would set them; the check comes before any connection
    monkeypatch.setenv("RANK", "0")
    code, err = run_main(capsys, "--batch-size", "15", "--out", str(tmp_path))
    assert code == 2
    assert_one_error_line(err, "--batch-size 15", "divisible", "(2)")


def test_unwritable_out_fails_at_once_with_exit_1(capsys, tmp_path):
    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder")
    for out in (a_file, a_file / "below"):  # (a read-only folder would not stop root)
        t0 = time.time()
        code, err = run_main(capsys, "--max-steps", "1000", "--out", str(out))
        assert code == 1 and time.time() - t0 < 10  # before training, not at the first checkpoint
        assert_one_error_line(err, "cannot write to --out", str(out))
    assert a_file.read_text() == "not a folder"


def test_full_disk_during_save_keeps_the_previous_checkpoint(capsys, tmp_path, monkeypatch):
    real_save, saved = torch.save, []

    def save(obj, f, *a, **kw):
        if saved:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_save(obj, f, *a, **kw)
        saved.append(f)
    monkeypatch.setattr(plumbing.files.torch, "save", save)
    before = signal.getsignal(signal.SIGINT)  # default, or ignored when the suite runs as a background job
    out = tmp_path / "out"
    code, err = run_main(capsys, "--max-steps", "30", "--ckpt-every", "10", "--out", str(out))
    assert code == 1
    line = assert_one_error_line(err, "No space left on device", "untouched", "--resume")
    assert "step 20" in line
    assert os.listdir(out) == ["model.pt"]  # no temp file left behind
    monkeypatch.undo()
    assert load_checkpoint(str(out / "model.pt"))[1]["train_state"]["step"] == 10
    assert signal.getsignal(signal.SIGINT) is before  # the Ctrl-C handler given back


@pytest.fixture(scope="module")
def checkpoint_10(tmp_path_factory):
    out = tmp_path_factory.mktemp("ckpt10")
    train(TINY_WORLD, TINY_MODEL, tiny_train_config(out, max_steps=20, ckpt_every=10), on_step=lambda r: r.step == 10,
          quiet=True)
    return out / "model.pt"


def test_resume_from_a_bad_checkpoint_exits_1_with_one_line(capsys, tmp_path, checkpoint_10):
    good = checkpoint_10.read_bytes()
    cases = {"truncated": (good[:len(good) // 2], [], "not a readable checkpoint"),
             "garbage": (b"hello", [], "not a readable checkpoint"),
             "other model": (good, ["--d-model", "48"], "--d-model (32 there, 48 now)")}
    for name, (data, flags, words) in cases.items():
        out = tmp_path / name.replace(" ", "_")
        out.mkdir()
        (out / "model.pt").write_bytes(data)
        code, err = run_main(capsys, "--max-steps", "20", "--resume", *flags, "--out", str(out))
        assert code == 1, name
        assert_one_error_line(err, words, str(out / "model.pt"))
        assert (out / "model.pt").read_bytes() == data  # nothing overwritten
    # a checkpoint saved without training state (e.g. by another tool): cannot resume
    out = tmp_path / "weights_only"
    m = load_checkpoint(str(checkpoint_10))[0]
    ck = torch.load(checkpoint_10, weights_only=True)
    save_torch(str(out / "model.pt"), checkpoint_payload(m, ck["world_config"], ck["vocab"]))
    code, err = run_main(capsys, "--max-steps", "20", "--resume", "--out", str(out))
    assert code == 1
    assert_one_error_line(err, "no usable training state", "drop --resume")


def start_cli(out, *args):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, os.path.join(ROOT, "train.py"), *TINY, "--out", str(out), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env)


def wait_for(path, proc, timeout=60):
    t0 = time.time()
    while not os.path.exists(path):
        assert proc.poll() is None, proc.communicate()
        assert time.time() - t0 < timeout, "no checkpoint appeared"
        time.sleep(0.02)


def test_sigkill_mid_run_resumes_from_the_last_checkpoint(tmp_path):
    flags = ["--max-steps", "300", "--ckpt-every", "5"]
    proc = start_cli(tmp_path, *flags)
    wait_for(tmp_path / "model.pt", proc)
    time.sleep(0.2)  # let it run on past the first checkpoint
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    saved = load_checkpoint(str(tmp_path / "model.pt"))[1]["train_state"]["step"]
    assert 5 <= saved < 300 and saved % 5 == 0
    r = subprocess.run([sys.executable, os.path.join(ROOT, "train.py"), *TINY, "--out", str(tmp_path), *flags,
                        "--resume"], capture_output=True, text=True, timeout=120, cwd=ROOT,
                       env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert r.returncode == 0, r.stderr
    assert f"resuming from step {saved} " in r.stdout  # lost at most one checkpoint interval
    final = load_checkpoint(str(tmp_path / "model.pt"))[1]
    assert final["train_state"]["step"] == 300 and final["metrics"]["steps"] == 300


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_and_sigterm_save_exit_130_and_say_how_to_resume(sig, tmp_path):
    proc = start_cli(tmp_path, "--max-steps", "100000", "--ckpt-every", "5")
    wait_for(tmp_path / "model.pt", proc)
    first = load_checkpoint(str(tmp_path / "model.pt"))[1]["train_state"]["step"]
    time.sleep(0.3)  # mid-interval: the step it stops at need not be a checkpoint step
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err, err
    step = load_checkpoint(str(tmp_path / "model.pt"))[1]["train_state"]["step"]
    assert step >= first
    last = err.strip().splitlines()[-1]  # the one line that says what was kept
    assert f"holds step {step} " in last and "--resume" in last and str(tmp_path) in last, err
    assert not (tmp_path / "train_metrics.json").exists()


def test_resume_with_other_training_settings_is_refused_naming_them(capsys, tmp_path, checkpoint_10):
    out = tmp_path / "out"
    out.mkdir()
    (out / "model.pt").write_bytes(checkpoint_10.read_bytes())
    code, err = run_main(capsys, "--max-steps", "40", "--lr", "0.002", "--resume", "--out", str(out))
    assert code == 1
    line = assert_one_error_line(err, "other settings", "--max-steps (20 there, 40 now)",
                                 "--lr (0.0015 there, 0.002 now)", str(out / "model.pt"), "drop --resume")
    assert "--batch-size" not in line and "--seed" not in line and "--eval-n" not in line
    assert (out / "model.pt").read_bytes() == checkpoint_10.read_bytes()  # nothing overwritten
    # settings that only shape the logs and the evaluation may change
    code, err = run_main(capsys, "--max-steps", "20", "--eval-n", "8", "--ckpt-every", "7", "--resume",
                         "--out", str(out))
    assert code == 0, err
    ckpt = load_checkpoint(str(out / "model.pt"))[1]
    assert ckpt["train_state"]["step"] == 20 and ckpt["metrics"]["test"]["n"] == 8


def test_non_finite_loss_raises_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    real, calls = train_module.ddp.shard_loss, []

    def diverging(*args):  # the loss of the 8th step is nan
        calls.append(1)
        loss = real(*args)
        return loss * float("nan") if len(calls) >= 8 else loss
    monkeypatch.setattr(train_module.ddp, "shard_loss", diverging)
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(TrainError, match="the loss became nan at step 8") as e:
        train(TINY_WORLD, TINY_MODEL, tiny_train_config(tmp_path, max_steps=30, ckpt_every=5), quiet=True)
    assert "\n" not in str(e.value) and "lower --lr" in str(e.value) and str(tmp_path / "model.pt") in str(e.value)
    model, ckpt = load_checkpoint(str(tmp_path / "model.pt"))
    assert ckpt["train_state"]["step"] == 5  # the last good checkpoint, not overwritten
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert signal.getsignal(signal.SIGINT) is before


def test_all_trains_every_model_and_seed_in_child_processes_and_keeps_finished_ones(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(worlds, "MODELS", {k: worlds.MODELS[k] for k in ("main", "barrier")})  # the parent's list
    argv = ["--all", "--seeds", "2", "--jobs", "2", "--max-steps", "4", "--ckpt-every", "2", "--eval-n", "4",
            "--out", str(tmp_path)]
    code = main([*TINY, *argv])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "training 4 of 4 models" in out and "all models trained" in out
    weights = {}
    for name in ("main", "barrier"):
        for seed in (0, 1):
            path = worlds.checkpoint_path(str(tmp_path), name, seed)
            model, ckpt = load_checkpoint(path)
            assert f"{name} seed {seed}: test: rhyme" in out
            assert model.cfg.nl_barrier == (name == "barrier") and model.cfg.d_model == 32  # variant + passed flags
            assert ckpt["world_config"]["seed"] == seed and ckpt["train_state"]["train_config"]["seed"] == seed
            m = ckpt["metrics"]
            assert m["steps"] == 4 and m["threads"] == cli.share_of_cores(None, 2) and m["test"]["n"] == 4
            assert os.path.exists(os.path.join(os.path.dirname(path), "train_metrics.json"))
            weights[name, seed] = model.state_dict()["wte.weight"]
    assert not torch.equal(weights["main", 0], weights["main", 1])
    assert worlds.checkpoint_path(str(tmp_path), "main", 0) == str(tmp_path / "model.pt")
    code = main([*TINY, *argv])  # everything is trained with these settings: nothing to do
    out, err = capsys.readouterr()
    assert code == 0 and "training 0 of 4 models" in out, err


def test_all_retrains_a_model_whose_settings_changed(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(worlds, "MODELS", {"main": worlds.MODELS["main"]})
    argv = [*TINY, "--all", "--seeds", "1", "--jobs", "1", "--eval-n", "4", "--out", str(tmp_path)]
    assert main([*argv, "--max-steps", "3"]) == 0
    code = main([*argv, "--max-steps", "4"])
    out, err = capsys.readouterr()
    assert "training 1 of 1 models" in out
    assert code == 0, err
    assert load_checkpoint(str(tmp_path / "model.pt"))[1]["metrics"]["steps"] == 4


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_torchrun_two_processes_train_what_one_process_trains(tmp_path):
    """Each process takes half of every batch; the weights match one process on the whole batch. (With AdamW:
    Muon's Newton-Schulz step runs in bfloat16, where the all-reduce's other summation order shows.)"""
    steps = ["--max-steps", "20", "--ckpt-every", "10", "--optimizer", "adamw"]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
           f"--master_port={free_port()}", os.path.join(ROOT, "train.py"), *TINY, *steps,
           "--out", str(tmp_path / "two")]
    env = dict(os.environ, GLOO_SOCKET_IFNAME="lo") if sys.platform == "linux" else dict(os.environ)
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=ROOT, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.count("test: rhyme") == 1  # only rank 0 reports
    assert sorted(os.listdir(tmp_path / "two")) == ["model.pt", "train_metrics.json"]
    train(TINY_WORLD, TINY_MODEL, tiny_train_config(tmp_path / "one", max_steps=20, ckpt_every=10, optimizer="adamw"),
          quiet=True)
    one, two = load_checkpoint(str(tmp_path / "one" / "model.pt")), load_checkpoint(str(tmp_path / "two" / "model.pt"))
    a, b = one[0].state_dict(), two[0].state_dict()
    diff = max((a[k] - b[k]).abs().max().item() for k in a)
    assert diff < 1e-5, diff
    assert two[1]["metrics"]["processes"] == 2
    assert [l for _, l in one[1]["train_state"]["losses"]] == pytest.approx(
        [l for _, l in two[1]["train_state"]["losses"]], abs=2e-4)  # the logged loss is the whole batch's
