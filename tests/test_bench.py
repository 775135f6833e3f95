"""bench.py's measurements on tiny settings: every field is there and positive (speeds are never asserted)."""
import json
import os

import torch

from conftest import TINY_WORLD, TINY_MODEL
import bench
from data import CoupletWorld
from model import GPT


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
