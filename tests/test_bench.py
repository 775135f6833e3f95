"""bench.py's measurements on tiny settings: every field is there and positive (speeds are never asserted)."""
import json
import os

import pytest
import torch

from conftest import TINY_WORLD, TINY_MODEL
import bench
from train import TrainConfig


pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


def test_measure_training_fields_are_positive():
    r = bench.measure_training(TINY_WORLD, TINY_MODEL, TrainConfig(batch_size=16), repeats=2, steps=1, warmup=1,
                               peak_n=128, progress=False)
    for key in ("train_tokens_per_s", "peer_tokens_per_s", "speed_ratio_vs_peer", "matmul_peak_gflops", "mfu",
                "train_gflops", "non_embedding_params"):
        assert r[key] > 0, key
    assert r["fast_loss"] is True  # the tiny model is plain: train.py's packed loss applies
    assert r["non_embedding_params"] == r["peer_non_embedding_params"]


def test_peer_has_our_shape():
    from data import CoupletWorld
    from model import GPT
    world = CoupletWorld(TINY_WORLD)
    cfg = bench.resolve_model_cfg(world, TINY_MODEL)
    ours, peer = GPT(cfg), bench.PeerGPT(cfg)
    # the same matrices; the peer's MultiheadAttention has no other extra parameters
    assert bench.non_embedding_params(ours) == bench.non_embedding_params(peer)
    idx = torch.randint(0, cfg.vocab_size, (2, cfg.block_size))
    assert peer(idx).shape == ours(idx).shape


def test_step_flops_counts_non_pad_targets():
    batch = torch.tensor([[1, 5, 6, 3, 0], [1, 5, 3, 0, 0]])  # targets: 5 6 3 <pad> | 5 3 <pad> <pad>
    tokens, flops, keys = bench.step_flops(10, batch)
    assert tokens == 5 and flops == 6 * 10 * 5 and keys == (1 + 2 + 3) + (1 + 2)


def test_quick_main_writes_bench_json(tmp_path):
    assert bench.main(["--quick", "--out", str(tmp_path)]) == 0
    r = json.load(open(os.path.join(tmp_path, "bench.json")))
    for key in ("train_tokens_per_s", "peer_tokens_per_s", "speed_ratio_vs_peer", "matmul_peak_gflops", "mfu",
                "threads"):
        assert r[key] > 0, key
    assert isinstance(r["device"], str) and r["device"]
    assert {"train", "analyze"} <= set(r["peak_rss_mb"])
    for key in ("train_seconds_default", "analyze_seconds", "graph_seconds", "graph_table", "graph_note"):
        assert key in r, key
    if r["graph_seconds"] is not None:  # attribution.py present with the API bench knows
        assert r["graph_seconds"] > 0 and r["graph_table"]
        assert all(g["build_seconds"] > 0 and g["active_features"] > 0 for g in r["graph_table"])
