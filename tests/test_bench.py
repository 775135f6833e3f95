"""bench.py's measurements on tiny settings: every field is there and positive (speeds are never asserted)."""
import json
import os

import torch

from conftest import TINY_WORLD, TINY_MODEL
import bench
from data import CoupletWorld
from model import GPT, load_checkpoint


def test_peer_has_our_shape():
    world = CoupletWorld(TINY_WORLD)
    cfg = TINY_MODEL.__class__(**{**TINY_MODEL.__dict__, "vocab_size": len(world.itos), "block_size": world.max_len()})
    ours, peer = GPT(cfg), bench.PeerGPT(cfg)
    assert bench.non_embedding_params(ours) == bench.non_embedding_params(peer)
    idx = torch.randint(0, cfg.vocab_size, (2, cfg.block_size))
    assert peer(idx, idx)[0].shape == ours(idx)[0].shape


def test_step_flops_counts_non_pad_targets():
    batch = torch.tensor([[1, 5, 6, 3, 0], [1, 5, 3, 0, 0]])  # targets: 5 6 3 <pad> | 5 3 <pad> <pad>
    tokens, flops, keys = bench.step_flops(10, batch)
    assert tokens == 5 and flops == 6 * 10 * 5 and keys == (1 + 2 + 3) + (1 + 2)


def test_quick_main_writes_bench_json(tmp_path):
    assert bench.main(["--quick", "--out", str(tmp_path)]) == 0
    r = json.load(open(os.path.join(tmp_path, "bench.json")))
    for key in ("train_tokens_per_s", "peer_tokens_per_s", "speed_ratio_vs_peer", "matmul_peak_gflops", "mfu"):
        assert r[key] > 0, key
    assert set(r["by_threads"]) == {"1", "2"} and r["non_embedding_params"] == r["peer_non_embedding_params"]


def test_time_to_quality_measures_each_seed_on_its_own_world(tmp_path, monkeypatch, one_thread):
    """The curve's last point is the trained model's validity on the test split of *its* seed's world, and a
    run stops at the first evaluation that reaches the bar."""
    from dataclasses import replace
    from conftest import TINY_WORLD, TINY_MODEL
    from interp.quality import evaluate
    from train import TrainConfig, train
    monkeypatch.setattr(bench, "RECIPES", {"tiny": ({"max_steps": 20, "batch_size": 16, "warmup_steps": 5}, "p")})
    got = bench.time_to_quality("tiny", 1, TINY_WORLD, TINY_MODEL, threshold=1.01, every=10, n=20)
    assert [c["step"] for c in got["curve"]] == [10, 20] and not got["reached"] and got["steps"] == 20
    train(replace(TINY_WORLD, seed=1), TINY_MODEL, TrainConfig(seed=1, max_steps=20, batch_size=16, warmup_steps=5,
                                                              eval_n=20, out=str(tmp_path)), quiet=True)
    model, ckpt = load_checkpoint(str(tmp_path / "model.pt"))
    world = CoupletWorld(replace(TINY_WORLD, seed=1))
    assert got["curve"][-1]["valid"] == evaluate(model, world, "test", 20)["valid"]
    early = bench.time_to_quality("tiny", 1, TINY_WORLD, TINY_MODEL, threshold=0.0, every=10, n=20)
    assert early["reached"] and early["steps"] == 10 and len(early["curve"]) == 1


def test_to_quality_summary_is_the_mean_ratio_and_says_when_a_run_missed():
    runs = [{"recipe": r, "seed": s, "seconds": sec, "reached": ok, "n": 500}
            for r, s, sec, ok in (("baseline", 0, 100.0, True), ("c", 0, 40.0, True),
                                  ("baseline", 1, 200.0, False), ("c", 1, 80.0, True))]
    old = bench.RECIPES
    bench.RECIPES = {**old, "c": ({}, "p")}
    try:
        s = bench.to_quality_summary(runs, "baseline", "c")
    finally:
        bench.RECIPES = old
    assert s["ratio"] == round(60 / 150, 3) and s["ratio_by_seed"] == [0.4, 0.4] and not s["all_reached"]
