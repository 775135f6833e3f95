"""The walkthrough runs top to bottom on a small model, and every one of its checks passes."""
import os
import subprocess
import sys
from dataclasses import replace

from conftest import TINY_WORLD, TINY_MODEL, tiny_train_config
from train import train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_walkthrough_runs_end_to_end(tmp_path, one_thread):
    # trained long enough that some rhyme swaps change the ending (the patching steps need such pairs)
    train(replace(TINY_WORLD, n_test=200), TINY_MODEL,
          tiny_train_config(tmp_path / "m", max_steps=600, batch_size=32, lr=1e-2), quiet=True)
    env = {**os.environ, "WALKTHROUGH_MODEL": str(tmp_path / "m" / "model.pt"), "WALKTHROUGH_QUICK": "1",
           "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, os.path.join(ROOT, "walkthrough.py")], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    for step in ("valid couplets", "rhyme family readable", "line break's whole column", "opener takes",
                 "green", "replacement score"):
        assert step in r.stdout, step
