"""How fast is this project? `python bench.py` prints a table and writes out/bench.json.

  train_tokens_per_s   our training step as train.py runs it (batch, forward + loss, backward, clipping,
                       AdamW); tokens = the non-pad target tokens the loss counts
  peer_tokens_per_s    the same step for a model of identical shape built from torch.nn.TransformerEncoder
  speed_ratio_vs_peer  median over paired repeats (each repeat times both, alternating which goes first)
  mfu                  model FLOPs/s of our training over the best fp32 matmul rate at this thread count;
                       FLOPs of a step = 6 * P * tokens + 12 * n_layer * d_model * sum over tokens of (t + 1)
                       (P: parameters except the embeddings; a causal query at t reads t + 1 keys)
  by_threads           train_tokens_per_s at 1 and 2 threads: the measurement behind the default --threads
  seconds              with --timings: wall time of `python train.py` and `python analyze.py` (the quick path)
"""
from dataclasses import asdict, replace
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time

import torch
import torch.nn as nn

from data import CoupletWorld, WorldConfig, PAD
from model import GPT, GPTConfig
from plumbing import cli
from plumbing.files import write_json
import train as T


class PeerGPT(nn.Module):
    """Our GPT's shape from stock PyTorch layers: the same embedding, positions and unembedding around a
    torch.nn.TransformerEncoder of pre-LN GELU layers with a causal mask."""

    def __init__(self, cfg):
        super().__init__()
        self.wte = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.wpe = nn.Embedding(cfg.block_size, cfg.d_model)
        layer = nn.TransformerEncoderLayer(cfg.d_model, cfg.n_head, dim_feedforward=cfg.d_mlp, dropout=0.0,
                                           activation="gelu", batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, cfg.n_layer, enable_nested_tensor=False)
        self.ln_f = nn.LayerNorm(cfg.d_model)
        self.unembed = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)

    def forward(self, idx, targets):
        T_ = idx.shape[1]
        x = self.wte(idx) + self.wpe(torch.arange(T_))
        mask = nn.Transformer.generate_square_subsequent_mask(T_)
        logits = self.unembed(self.ln_f(self.encoder(x, mask=mask, is_causal=True)))
        return logits, nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-1)


def non_embedding_params(model):
    return sum(p.numel() for n, p in model.named_parameters() if not n.startswith(("wte.", "wpe.")))


def step_flops(n_params, batch):
    """(tokens, 6 * P * tokens, sum over counted tokens of t + 1) of one step on batch (B, T + 1)."""
    counts = batch[:, 1:] != PAD
    pos = torch.arange(1, counts.shape[1] + 1)
    return int(counts.sum()), 6 * n_params * int(counts.sum()), int((counts * pos).sum())


def matmul_gflops(n=1024, reps=3):
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = math.inf
    for _ in range(reps):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 / best / 1e9


def trainer(model, data, cfg):
    """A closure doing one train.py step per call; returns the batch it trained on."""
    opt = T.make_optimizer(model, cfg)
    state = {"step": 0}

    def step():
        s = state["step"]
        batch = data[T.batch_indices(s, len(data), cfg.batch_size, cfg.seed)]
        x, y = T.inputs_and_targets(batch)
        _, loss = model(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        state["step"] += 1
        return batch
    return step


def measure_training(world_cfg=WorldConfig(), model_cfg=GPTConfig(), cfg=T.TrainConfig(), repeats=5, steps=5):
    world = CoupletWorld(world_cfg)
    mc = replace(model_cfg, vocab_size=len(world.itos), block_size=world.max_len()).validate()
    data = world.tensor(world.split("train"), mc.block_size)
    torch.manual_seed(0)
    models = {"ours": GPT(mc).train(), "peer": PeerGPT(mc).train()}
    steps_of = {k: trainer(m, data, cfg) for k, m in models.items()}
    n_params = non_embedding_params(models["ours"])
    for k in models:
        steps_of[k]()  # warm up
    rates, flops_rates = {k: [] for k in models}, []
    for r in range(repeats):
        for k in (("ours", "peer") if r % 2 == 0 else ("peer", "ours")):
            tokens = flops = 0
            t = time.perf_counter()
            for _ in range(steps):
                n, f, keys = step_flops(n_params, steps_of[k]())
                tokens, flops = tokens + n, flops + f + 12 * mc.n_layer * mc.d_model * keys
            dt = time.perf_counter() - t
            rates[k].append(tokens / dt)
            if k == "ours":
                flops_rates.append(flops / dt)
    peak = matmul_gflops()
    return {"model_config": asdict(mc), "non_embedding_params": n_params,
            "peer_non_embedding_params": non_embedding_params(models["peer"]),
            "train_tokens_per_s": statistics.median(rates["ours"]),
            "peer_tokens_per_s": statistics.median(rates["peer"]),
            "speed_ratio_vs_peer": statistics.median(a / b for a, b in zip(rates["ours"], rates["peer"])),
            "matmul_peak_gflops": peak, "mfu": statistics.median(flops_rates) / (peak * 1e9)}


def timed(argv):
    t = time.time()
    subprocess.run([sys.executable, *argv], check=True, stdout=subprocess.DEVNULL)
    return round(time.time() - t, 1)


def main(argv=None):
    p = cli.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="out")
    p.add_argument("--quick", action="store_true", help="a smoke run: a tiny model, few repeats")
    p.add_argument("--timings", action="store_true", help="also time `python train.py && python analyze.py`")
    cli.add_threads_flag(p)
    args = p.parse_args(argv)

    def body():
        cli.set_threads(args.threads)
        world, model = WorldConfig(), GPTConfig()
        kw = {}
        if args.quick:
            world, model = WorldConfig(n_train=2000, n_test=20), GPTConfig(n_layer=2, n_head=2, d_model=32, d_mlp=64)
            kw = dict(repeats=2, steps=2)
        r = {"threads": torch.get_num_threads(), "device": "cpu", **measure_training(world, model, **kw),
             "by_threads": {}}
        for n in (1, 2):
            torch.set_num_threads(n)
            r["by_threads"][n] = measure_training(world, model, **kw)["train_tokens_per_s"]
        cli.set_threads(args.threads)
        if args.timings:
            with tempfile.TemporaryDirectory() as tmp:
                here = os.path.dirname(os.path.abspath(__file__))
                r["seconds"] = {"train": timed([os.path.join(here, "train.py"), "--out", tmp]),
                                "analyze": timed([os.path.join(here, "analyze.py"), "--out", tmp])}
        write_json(os.path.join(args.out, "bench.json"), r)
        for k in ("train_tokens_per_s", "peer_tokens_per_s", "speed_ratio_vs_peer", "matmul_peak_gflops", "mfu"):
            print(f"{k:22} {r[k]:.3g}")
        print("tokens/s by threads   " + ", ".join(f"{n}: {v:.0f}" for n, v in r["by_threads"].items()))
        if "seconds" in r:
            print(f"seconds               train {r['seconds']['train']}, analyze {r['seconds']['analyze']}")
    return cli.run_main("bench.py", body)


if __name__ == "__main__":
    sys.exit(main())
