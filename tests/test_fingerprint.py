"""The same bits on every machine: the committed fingerprint (plumbing/fingerprint.py) is what this machine
computes, at any thread count, and every checkpoint records the CPU settings it was made under."""
import json
import os
import subprocess
import sys

import pytest
import torch

from plumbing import fingerprint, numerics

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_this_machine_computes_the_committed_bits_at_any_thread_count():
    """A machine whose arithmetic differs (another CPU code path, another torch) fails here, naming the parts,
    instead of drifting silently from docs/results.md. If the computation was changed on purpose, write the
    new fingerprint: python -m plumbing.fingerprint --write."""
    if not numerics.pinned_requested():
        pytest.skip("PLANNING_NUMERICS=native: this run computes with the machine's own code paths, by request")
    with open(fingerprint.FILE) as f:
        want = json.load(f)
    one, two = fingerprint.compute(threads=1), fingerprint.compute(threads=2)
    assert one["hashes"] == two["hashes"], "1 and 2 threads computed different bits"
    differ = [k for k, v in want["hashes"].items() if one["hashes"].get(k) != v]
    assert not differ, (f"this machine computes other bits in {', '.join(differ)}: committed under "
                        f"{want['numerics']}, here {one['numerics']}")


def test_the_numerics_setting_is_applied_before_torch_and_recorded():
    run = lambda env: subprocess.run([sys.executable, "-c", "from plumbing import numerics; import json; "
                                      "print(json.dumps(numerics.state()))"], capture_output=True, text=True,
                                     cwd=ROOT, env={**os.environ, **env})
    pinned, native = (json.loads(run({numerics.OPT_OUT: m}).stdout) for m in ("pinned", "native"))
    assert pinned["numerics"] == "pinned" and pinned["mkl_cbwr"] == numerics.PINNED["MKL_CBWR"]
    if torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512"):
        assert pinned["cpu_capability"] == "AVX2"
    assert native["numerics"] == "native" and native["mkl_cbwr"] == ""  # what a pinned parent set is taken off
    bad = run({numerics.OPT_OUT: "fast"})
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "PLANNING_NUMERICS" in bad.stderr


def test_a_checkpoint_records_its_settings_and_resume_refuses_others(tiny_run, tmp_path):
    import shutil
    from conftest import TINY_WORLD, TINY_MODEL, tiny_train_config
    from train import train, TrainError
    ckpt = torch.load(tiny_run[0], weights_only=True)
    assert ckpt["numerics"] == numerics.state()
    assert numerics.differences(ckpt["numerics"]) == []
    other = {**ckpt["numerics"], "cpu_capability": "AVX512"}
    assert numerics.differences(other) == [("cpu_capability", "AVX512", numerics.state()["cpu_capability"])]
    shutil.copy(tiny_run[0], tmp_path / "model.pt")
    torch.save({**ckpt, "numerics": other, "metrics": {}}, tmp_path / "model.pt")
    with pytest.raises(TrainError, match="other CPU settings"):
        train(TINY_WORLD, TINY_MODEL, tiny_train_config(tmp_path, max_steps=60, resume=True), quiet=True)
