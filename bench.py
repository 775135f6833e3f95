"""How fast is this project? `python bench.py` prints a table and writes out/bench.json.

Measured, all at one thread count (--threads, default 1: the box is shared and oversubscribed
threads make torch many times slower):

  train_tokens_per_s   our training step, exactly as train.py runs it: batch rows from
                       `batch_indices` into the prebuilt `world.tensor(...)`, the learning-rate
                       schedule, forward + backward + gradient clipping + AdamW. Tokens = the
                       *non-pad target tokens* of each batch (the ones the loss counts).
  peer_tokens_per_s    the same step for a model of identical shape built from
                       torch.nn.TransformerEncoder (norm_first, GELU, causal mask, batch_first),
                       with our embedding, positions and unembedding, the same batches, optimizer
                       and clipping. Counted in the same non-pad target tokens.
  speed_ratio_vs_peer  median over paired repeats of ours / peer (each repeat times both models
                       back to back, alternating which goes first, so drift in the machine's load
                       cancels).
  matmul_peak_gflops   best fp32 square matmul rate at this thread count, sampled between repeats.
  mfu                  model FLOPs per second of our training / matmul_peak_gflops, where
                       model FLOPs of a step = 6 * P * tokens + 12 * n_layer * d_model * sum_t (t + 1)
                       P = every parameter except the token and position embeddings (the
                       unembedding counts), tokens = non-pad target tokens, and the sum runs over
                       those tokens' positions t (0-based): a causal query at t reads t + 1 keys,
                       so QK^T and AV cost 2 * d_model * (t + 1) FLOPs each per layer forward,
                       4 * d_model * (t + 1) together, times 3 for forward + backward.
  train_seconds_default wall time of `python train.py` (subprocess, into a temp --out) until it has
                       written its metrics; its own train_seconds / eval_seconds are kept too.
  analyze_seconds      the per-stage `seconds` of `python analyze.py` (subprocess, temp --out).
  graph_seconds        one attribution graph (attribution.py), plus a table of graph time against
                       prompt length and number of active features.
  peak_rss_mb          of the train and analyze subprocesses (os.wait4's rusage of that child).

Flags: --quick (a smoke run: few repeats, no subprocess that takes minutes), --skip-train and
--skip-analyze (reuse out/train_metrics.json / out/report/results.json), --skip-graph, --out.
"""
from dataclasses import dataclass, replace, asdict
import argparse
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

ROOT = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, ROOT)

from data import CoupletWorld, WorldConfig, PAD  # noqa: E402
from model import GPT, GPTConfig  # noqa: E402
import train as T  # noqa: E402


# ---- the two models ---------------------------------------------------------------------------------
class PeerGPT(nn.Module):
    """Our GPT's shape from stock PyTorch layers: the same embedding, positions and (bias-free)
    unembedding around a torch.nn.TransformerEncoder of pre-LN GELU layers with a causal mask."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.wpe = nn.Embedding(cfg.block_size, cfg.d_model)
        layer = nn.TransformerEncoderLayer(cfg.d_model, cfg.n_head, dim_feedforward=cfg.d_mlp, dropout=0.0,
                                           activation="gelu", batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, cfg.n_layer, enable_nested_tensor=False)
        self.ln_f = nn.LayerNorm(cfg.d_model)
        self.unembed = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, 0.0, 0.02)

    def forward(self, idx):
        B, Tn = idx.shape
        x = self.wte(idx) + self.wpe(torch.arange(Tn, device=idx.device))
        mask = nn.Transformer.generate_square_subsequent_mask(Tn, device=idx.device)
        return self.unembed(self.ln_f(self.encoder(x, mask=mask, is_causal=True)))

    def loss(self, batch):
        logits = self(batch[:, :-1])
        return F.cross_entropy(logits.flatten(0, 1), batch[:, 1:].flatten(), ignore_index=PAD)


def resolve_model_cfg(world, model_cfg=None):
    return replace(model_cfg or GPTConfig(), vocab_size=len(world.itos), block_size=world.max_len()).validate()


def non_embedding_params(model):
    return sum(p.numel() for n, p in model.named_parameters() if not n.startswith(("wte.", "wpe.")))


def step_flops(n_params, batch):
    """Model FLOPs of one training step on `batch` (B, T+1) (see the module docstring)."""
    counts = batch[:, 1:] != PAD
    tokens = int(counts.sum())
    pos = torch.arange(1, counts.shape[1] + 1)  # t + 1 keys for the query at position t
    attn_keys = int((counts * pos).sum())
    return tokens, 6 * n_params * tokens, attn_keys


class Trainer:
    """One model training on real batches, one step at a time, as train.fit's loop body does."""

    def __init__(self, kind, world, data, model_cfg, cfg, device):
        torch.manual_seed(cfg.seed)
        self.kind, self.data, self.cfg, self.device = kind, data, cfg, device
        self.model = (GPT(model_cfg) if kind == "ours" else PeerGPT(model_cfg)).to(device).train()
        self.opt = T.make_optimizer(self.model, cfg)
        self.packed = kind == "ours" and T.check_packed_loss(self.model, data, cfg.batch_size)
        self.n_params = non_embedding_params(self.model)
        self.step_i = 0

    def loss(self, batch):
        if self.kind == "peer":
            return self.model.loss(batch)
        if self.packed:
            return T.packed_loss(self.model, batch)
        return self.model.loss(batch[:, :-1], batch[:, 1:], ignore_index=PAD)

    def step(self):
        """One full step; returns the batch it trained on."""
        s = self.step_i % self.cfg.max_steps
        for g in self.opt.param_groups:
            g["lr"] = T.lr_at(s, self.cfg)
        batch = self.data[T.batch_indices(s, len(self.data), self.cfg.batch_size, self.cfg.seed)]
        loss = self.loss(batch)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0, foreach=True)
        self.opt.step()
        loss.item()  # what the loop's progress bar reads; also waits for an accelerator
        self.step_i += 1
        return batch


def sync(device):
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def matmul_gflops(n=1536, reps=3, device="cpu"):
    """Best rate of reps (n x n) @ (n x n) fp32 matmuls, GFLOP/s."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    a @ b
    sync(device)
    best = math.inf
    for _ in range(reps):
        t = time.perf_counter()
        a @ b
        sync(device)
        best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 / best / 1e9


def measure_training(world_cfg=WorldConfig(), model_cfg=None, cfg=T.TrainConfig(), repeats=9, steps=6, warmup=3,
                     device="cpu", peak_n=1536, progress=True):
    """Ours vs the TransformerEncoder peer, paired repeats; plus the matmul peak and MFU."""
    world = CoupletWorld(world_cfg)
    mc = resolve_model_cfg(world, model_cfg)
    data = world.tensor(world.split("train"), mc.block_size).to(device)
    runs = {k: Trainer(k, world, data, mc, cfg, device) for k in ("ours", "peer")}
    for tr in runs.values():
        for _ in range(warmup):
            tr.step()
    sync(device)
    rates = {k: [] for k in runs}
    flops_rates, peaks = [], []
    bar = tqdm(total=repeats, desc="train step: ours vs peer", disable=not progress, dynamic_ncols=True)
    for r in range(repeats):
        order = ("ours", "peer") if r % 2 == 0 else ("peer", "ours")
        for k in order:
            tr = runs[k]
            tokens = flops = 0
            t = time.perf_counter()
            for _ in range(steps):
                batch = tr.step()
                n, f, keys = step_flops(tr.n_params, batch)  # cheap integer bookkeeping
                tokens += n
                flops += f + 12 * mc.n_layer * mc.d_model * keys
            sync(device)
            dt = time.perf_counter() - t
            rates[k].append(tokens / dt)
            if k == "ours":
                flops_rates.append(flops / dt)
        peaks.append(matmul_gflops(peak_n, 2, device))
        bar.update(1)
        bar.set_postfix(ratio=f"{rates['ours'][-1] / rates['peer'][-1]:.2f}")
    bar.close()
    peaks.append(matmul_gflops(2 * peak_n if device != "cpu" else peak_n, 3, device))
    ratios = [a / b for a, b in zip(rates["ours"], rates["peer"])]
    peak = max(peaks)
    ours_flops = statistics.median(flops_rates)
    return {
        "tokens_counted": "non-pad target tokens",
        "batch_size": cfg.batch_size, "steps_per_repeat": steps, "repeats": repeats,
        "model_config": asdict(mc),
        "non_embedding_params": runs["ours"].n_params,
        "peer_non_embedding_params": runs["peer"].n_params,
        "fast_loss": runs["ours"].packed,
        "train_tokens_per_s": statistics.median(rates["ours"]),
        "peer_tokens_per_s": statistics.median(rates["peer"]),
        "speed_ratio_vs_peer": statistics.median(ratios),
        "speed_ratios": [round(x, 3) for x in ratios],
        "train_gflops": ours_flops / 1e9,
        "matmul_peak_gflops": peak,
        "matmul_median_gflops": statistics.median(peaks),
        "mfu": ours_flops / (peak * 1e9),
        "flops_formula": "6*P_non_embedding*tokens + 12*n_layer*d_model*sum_over_tokens(t+1)",
    }


# ---- subprocesses -------------------------------------------------------------------------------------
def run_child(args, log_path, env):
    """(wall seconds, exit code, peak RSS MB) of one child process, its output in log_path."""
    t = time.perf_counter()
    with open(log_path, "w") as log:
        p = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=env)
        _, status, usage = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
    rss = usage.ru_maxrss / 1024 if sys.platform != "darwin" else usage.ru_maxrss / 2 ** 20
    return time.perf_counter() - t, p.returncode, rss


def child_env(threads):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    return env


def measure_train_script(tmp, threads, extra=()):
    out = os.path.join(tmp, "train")
    wall, code, rss = run_child([sys.executable, "train.py", "--out", out, *extra], os.path.join(tmp, "train.log"),
                                child_env(threads))
    if code != 0:
        raise RuntimeError(f"train.py exited {code}; see {os.path.join(tmp, 'train.log')}")
    m = json.load(open(os.path.join(out, "train_metrics.json")))
    return {"train_seconds_default": wall, "train_metrics_train_seconds": m["train_seconds"],
            "train_metrics_eval_seconds": m.get("eval_seconds"), "train_peak_rss_mb": rss,
            "train_quality": quality(m), "train_args": list(extra), "train_source": "measured"}, \
        os.path.join(out, "model.pt")


def quality(m):
    return {s: {k: m[s][k] for k in ("rhyme", "meaning", "valid", "n")} for s in ("test", "holdout") if s in m}


def reuse_train_metrics(path):
    m = json.load(open(path))
    return {"train_seconds_default": m["train_seconds"] + (m.get("eval_seconds") or 0.0),
            "train_metrics_train_seconds": m["train_seconds"], "train_metrics_eval_seconds": m.get("eval_seconds"),
            "train_peak_rss_mb": None, "train_quality": quality(m),
            "train_source": f"reused {path} (train_seconds + eval_seconds; data build not included)"}


def measure_analyze_script(tmp, threads, checkpoint):
    out = os.path.join(tmp, "report")
    wall, code, rss = run_child([sys.executable, "analyze.py", "--checkpoint", checkpoint, "--out", out],
                                os.path.join(tmp, "analyze.log"), child_env(threads))
    if code != 0:  # analyze.py is being edited by others: record the failure, keep the other numbers
        tail = open(os.path.join(tmp, "analyze.log")).read().strip().splitlines()[-1:]
        return {"analyze_seconds": None, "analyze_wall_seconds": wall, "analyze_peak_rss_mb": rss,
                "analyze_source": f"analyze.py exited {code}: {' '.join(tail)[:300]}"}
    res = json.load(open(os.path.join(out, "results.json")))
    return {"analyze_seconds": res.get("seconds"), "analyze_seconds_total": res.get("seconds_total"),
            "analyze_wall_seconds": wall, "analyze_peak_rss_mb": rss, "analyze_source": "measured"}


def reuse_analyze(path):
    res = json.load(open(path))
    return {"analyze_seconds": res.get("seconds"), "analyze_seconds_total": res.get("seconds_total"),
            "analyze_wall_seconds": None, "analyze_peak_rss_mb": None, "analyze_source": f"reused {path}"}


# ---- attribution graphs ----------------------------------------------------------------------------------
def with_active(base, model, tokens, k):
    """A copy of CLT `base` whose encoder bias is shifted so that about k features are active on
    `tokens` (the k largest pre-activations stay above zero); k=None keeps `base` as it is."""
    from transcoder import CrossLayerTranscoder, in_name
    if k is None:
        return base
    L = model.cfg.n_layer
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens[None], names=[in_name(l) for l in range(L)])
        pre = torch.stack([base.pre_acts(cache[in_name(l)][0], l) for l in range(L)])
    clt = CrossLayerTranscoder(base.n_layer, base.d_model, base.n_features)
    clt.load_state_dict(base.state_dict())
    shift = pre.flatten().topk(min(k, pre.numel())).values[-1].item()
    with torch.no_grad():
        clt.b_enc -= shift - 1e-6
    return clt.eval()


def time_graph(A, model, clt, tokens):
    t = time.perf_counter()
    g = A.build_graph(model, clt, tokens)
    build = time.perf_counter() - t
    t = time.perf_counter()
    A.prune(g)
    return g, build, time.perf_counter() - t


def measure_graphs(checkpoint=None, lengths=(8, 14, 20), actives=(32, 128, 512), quick=False,
                   world_cfg=WorldConfig()):
    """Time attribution.build_graph (+ prune); null with a note when attribution.py is absent or its
    API differs. Uses the checkpoint's model and the CLT trained for it (clt.pt beside it) when they
    exist, else random-init ones. A random CLT fires half its features (thousands of nodes, gigabytes
    of batched gradients), so then the single graph is capped at 256 active features. The table sets
    the number of active features by shifting the encoder bias, isolating the graph's own cost."""
    try:
        import attribution as A
        from transcoder import CrossLayerTranscoder, load_clt
        missing = [n for n in ("build_graph", "prune", "couplet_tokens") if not hasattr(A, n)]
        if missing:
            raise AttributeError(f"attribution.py has no {', '.join(missing)}")
    except Exception as e:  # absent, or mid-edit by another engineer
        return {"graph_seconds": None, "graph_table": None, "graph_note": f"attribution unavailable: {e!r}"}
    world = CoupletWorld(world_cfg)
    if checkpoint and os.path.exists(checkpoint):
        from model import load_checkpoint
        model, _ = load_checkpoint(checkpoint)
        source = checkpoint
    else:
        torch.manual_seed(0)
        model, source = GPT(resolve_model_cfg(world)).eval(), "random-init model"
    cfg = model.cfg
    clt_path = os.path.join(os.path.dirname(checkpoint), "clt.pt") if checkpoint else None
    loaded = load_clt(clt_path) if clt_path and os.path.exists(clt_path) else None
    if loaded is not None and (loaded[0].n_layer, loaded[0].d_model) == (cfg.n_layer, cfg.d_model):
        base, clt_source, cap = loaded[0], clt_path, None
    else:
        torch.manual_seed(0)
        base, clt_source, cap = CrossLayerTranscoder(cfg.n_layer, cfg.d_model, 128).eval(), "random-init CLT", 256
    c = world.split("test")[0]
    tokens = A.couplet_tokens(world, c.line1, c.line2)
    ids = torch.tensor(world.couplet_ids(c))
    note = (f"model: {source}; CLT: {clt_source}" + (" capped at 256 active features" if cap else "") +
            "; table: a test couplet cut to n_tokens, encoder bias shifted to ~k active features")
    try:
        g, one, prune_s = time_graph(A, model, with_active(base, model, tokens, cap), tokens)
        one_info = {"n_tokens": int(g.tokens.shape[0]), "active_features": int(g.n_features),
                    "nodes": int(g.adjacency.shape[0])}
        table = []
        for n_tok in (lengths[:2] if quick else lengths):
            cut = ids[:min(n_tok, len(ids))]
            for k in (actives[:2] if quick else actives):
                gk, build, pr = time_graph(A, model, with_active(base, model, cut, k), cut)
                table.append({"n_tokens": int(cut.shape[0]), "active_features": int(gk.n_features),
                              "nodes": int(gk.adjacency.shape[0]), "build_seconds": round(build, 4),
                              "prune_seconds": round(pr, 4)})
    except Exception as e:  # the API moved under us: record what we could
        return {"graph_seconds": None, "graph_table": None,
                "graph_note": f"attribution API differs ({type(e).__name__}: {e}); {note}"}
    return {"graph_seconds": one, "graph_prune_seconds": prune_s, "graph_one": one_info,
            "graph_table": table, "graph_note": note}


# ---- the whole bench ---------------------------------------------------------------------------------------
def run(args):
    torch.set_num_threads(args.threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    result = {"device": device if device == "cpu" else torch.cuda.get_device_name(), "threads": args.threads,
              "torch": torch.__version__, "machine": platform.processor() or platform.machine(),
              "cpu_count": os.cpu_count(), "quick": args.quick,
              "load_average_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None}
    t0 = time.time()
    quick_world = WorldConfig(n_train=3000, n_test=40)
    if args.quick:
        result.update(measure_training(quick_world, repeats=3, steps=2, warmup=1, device=device, peak_n=512))
    else:
        result.update(measure_training(repeats=args.repeats, steps=args.steps, device=device))
    tmp = tempfile.mkdtemp(prefix="bench-")
    try:
        checkpoint = os.path.join(args.out, "model.pt")
        metrics_path = os.path.join(args.out, "train_metrics.json")
        if args.skip_train or args.quick:
            result.update(reuse_or_skip(metrics_path, reuse_train_metrics, "train",
                                        ("train_seconds_default", "train_peak_rss_mb")))
        else:
            print("timing `python train.py` (default settings) ...", file=sys.stderr)
            info, checkpoint = measure_train_script(tmp, args.threads)
            result.update(info)
        results_path = os.path.join(args.out, "report", "results.json")
        if args.skip_analyze or args.quick:
            result.update(reuse_or_skip(results_path, reuse_analyze, "analyze",
                                        ("analyze_seconds", "analyze_peak_rss_mb")))
        elif os.path.exists(checkpoint):
            print("timing `python analyze.py` ...", file=sys.stderr)
            result.update(measure_analyze_script(tmp, args.threads, checkpoint))
        else:
            result.update(analyze_seconds=None, analyze_source=f"no checkpoint {checkpoint}")
        if args.skip_graph:
            result.update(graph_seconds=None, graph_table=None, graph_note="--skip-graph")
        else:
            own = os.path.join(args.out, "model.pt")  # the project's model, with its trained CLT if any
            graph_ckpt = own if os.path.exists(own) else checkpoint if os.path.exists(checkpoint) else None
            result.update(measure_graphs(graph_ckpt, quick=args.quick,
                                         world_cfg=quick_world if args.quick else WorldConfig()))
        result["peak_rss_mb"] = {"train": result.get("train_peak_rss_mb"),
                                 "analyze": result.get("analyze_peak_rss_mb")}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    result["bench_seconds"] = time.time() - t0
    result["load_average_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    return result


def fmt(v, spec=".3g"):
    return "null" if v is None else format(v, spec) if isinstance(v, (int, float)) else str(v)


def table(r):
    rows = [("device / threads", f"{r['device']} / {r['threads']}"),
            ("train tokens/s (ours, non-pad targets)", fmt(r["train_tokens_per_s"], ".0f")),
            ("train tokens/s (nn.TransformerEncoder peer)", fmt(r["peer_tokens_per_s"], ".0f")),
            ("speed ratio ours/peer (median of pairs)", fmt(r["speed_ratio_vs_peer"], ".2f") + "  goal >= 1.25"),
            ("model GFLOP/s of our training", fmt(r["train_gflops"], ".1f")),
            ("fp32 matmul peak GFLOP/s", fmt(r["matmul_peak_gflops"], ".1f")),
            ("MFU", fmt(r["mfu"], ".2f") + "  goal >= 0.5"),
            ("python train.py (s)", fmt(r.get("train_seconds_default"), ".1f") + "  goal <= 120  [" +
             str(r.get("train_source")) + "]"),
            ("  of which train loop / final eval (s)", f"{fmt(r.get('train_metrics_train_seconds'))} / "
                                                       f"{fmt(r.get('train_metrics_eval_seconds'))}"),
            ("analyze.py stages (s)", json.dumps(r.get("analyze_seconds"))),
            ("one attribution graph (s)", fmt(r.get("graph_seconds"), ".3f")),
            ("peak RSS MB train / analyze", f"{fmt(r['peak_rss_mb']['train'], '.0f')} / "
                                            f"{fmt(r['peak_rss_mb']['analyze'], '.0f')}")]
    w = max(len(a) for a, _ in rows)
    lines = [f"{a:<{w}}  {b}" for a, b in rows]
    if r.get("graph_table"):
        lines.append("attribution graph scaling: tokens  active  nodes  build_s  prune_s")
        for g in r["graph_table"]:
            lines.append(f"{'':<27}{g['n_tokens']:>6}  {g['active_features']:>6}  {g['nodes']:>5}  "
                         f"{g['build_seconds']:>7.3f}  {g['prune_seconds']:>7.3f}")
    elif r.get("graph_note"):
        lines.append(f"attribution: {r['graph_note']}")
    return "\n".join(lines)


def reuse_or_skip(path, reuse, what, fields):
    """An earlier run's numbers from `path`, or nulls saying there was nothing to reuse."""
    if os.path.exists(path):
        return reuse(path)
    return {**{f: None for f in fields}, f"{what}_source": f"skipped; no {path} to reuse"}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="smoke run: tiny world, few repeats, reuse train/analyze")
    p.add_argument("--out", default="out", help="folder of model.pt / train_metrics.json; bench.json goes here")
    p.add_argument("--threads", type=int, default=1, help="torch threads for everything measured (default 1)")
    p.add_argument("--repeats", type=int, default=9, help="paired ours/peer repeats")
    p.add_argument("--steps", type=int, default=6, help="training steps per model per repeat")
    p.add_argument("--skip-train", action="store_true", help="reuse OUT/train_metrics.json's times")
    p.add_argument("--skip-analyze", action="store_true", help="reuse OUT/report/results.json's seconds")
    p.add_argument("--skip-graph", action="store_true")
    args = p.parse_args(argv)
    if args.threads < 1 or args.repeats < 1 or args.steps < 1:
        p.error("--threads, --repeats and --steps must be at least 1")
    result = run(args)
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "bench.json")
    with open(path + ".tmp", "w") as f:
        json.dump(result, f, indent=1)
    os.replace(path + ".tmp", path)
    print(table(result))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
