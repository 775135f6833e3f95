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
  to_quality           with --to-quality: the main model trained with the AdamW recipe (baseline) and a candidate
                       (RECIPES), one thread each, side by side: training seconds, steps and tokens until test
                       validity (n = 500 prompts, measured every 100 steps) first reaches 0.98, per seed, with
                       the curves; ratio = the candidate's seconds over the baseline's, the mean over seeds.
                       Seconds count training only (from the first step; the evaluations are subtracted).
  recipe_search        with --search: every recipe of RECIPES on one seed, written to out/recipe_search.json
  numerics             with --numerics: the cost of the pinned CPU code paths (plumbing/numerics.py): wall
                       seconds of `python train.py --max-steps 300` and of `python analyze.py --only patching` on
                       its model, under PLANNING_NUMERICS=pinned and =native, alternating which runs first, one
                       process at a time; ratio = pinned over native, the median over repeats
"""
from dataclasses import asdict, replace
import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time

from plumbing import numerics  # first: pins the CPU code paths before torch loads
import torch
import torch.nn as nn

from interp.quality import evaluate

from data import CoupletWorld, WorldConfig, PAD
from model import GPT, GPTConfig
from plumbing import cli
from plumbing.files import write_json, write_text
from plumbing.processes import results_of, ChildFailed
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


# the recipe the search started from: what a row does not set is this, not train.py's default
ADAMW = {"optimizer": "adamw", "schedule": "cosine", "max_steps": 1200, "batch_size": 64}
# Recipes tried for time to quality, each with what it was expected to do, written before it was run.
# Every row stays, whatever it did. The row train.py trains with by default is CANDIDATE.
RECIPES = {
    "baseline": (ADAMW, "AdamW 1.5e-3, cosine over 1,200 steps of 64: first reaches 0.98 late, around step "
                        "1,000-1,200; a seed may not reach it at all (seed 1 ended at 0.974)"),
    "adamw_wsd_600": ({**ADAMW, "lr": 3e-3, "schedule": "wsd", "max_steps": 600},
                      "AdamW 3e-3, warmup-stable-decay over 600 steps: misses 0.98 (a 600-step cosine at this "
                      "rate ended at 0.878)"),
    "muon_cosine_1200": ({**ADAMW, "optimizer": "muon"},
                         "Muon 0.02 on the blocks' matrices + AdamW 1.5e-3, cosine over 1,200 steps: reaches 0.98 "
                         "by about step 600, with each step 20-30% dearer (Newton-Schulz): ratio about 0.6"),
    "muon_wsd_600": ({**ADAMW, "optimizer": "muon", "schedule": "wsd", "max_steps": 600},
                     "Muon + AdamW, warmup-stable-decay over 600 steps: reaches 0.98 during the decay, step "
                     "500-600: ratio about 0.55"),
    "muon_wsd_400": ({**ADAMW, "optimizer": "muon", "schedule": "wsd", "max_steps": 400},
                     "as muon_wsd_600 over 400 steps: ends near 0.95, misses 0.98"),
    "muon_wsd_600_hot": ({**ADAMW, "optimizer": "muon", "schedule": "wsd", "max_steps": 600, "muon_lr": 0.04, "lr": 3e-3},
                         "muon_wsd_600 with both rates doubled: no better (this model is small; the rates are "
                         "near their limit)"),
    "muon_wsd_300_b128": ({"optimizer": "muon", "schedule": "wsd", "max_steps": 300, "batch_size": 128},
                          "muon_wsd_600's tokens in half the steps at twice the batch: no faster, as a sequence "
                          "costs the same at batch 64 and 128"),
    # written after the seven rows above (seed 0): muon_wsd_600 reached 0.98 at step 600 (ratio ~0.70), and
    # muon_wsd_300_b128 at step 300 (~0.57, against its prediction: Newton-Schulz is paid per step, not per
    # sequence); 400 x 64 sequences missed (0.932), 300 x 128 reached it with room (0.990)
    "muon_wsd_250_b128": ({"optimizer": "muon", "schedule": "wsd", "max_steps": 250, "batch_size": 128},
                          "32,000 sequences at batch 128: reaches 0.98 at its last step; ratio about 0.5"),
    "muon_wsd_200_b128": ({"optimizer": "muon", "schedule": "wsd", "max_steps": 200, "batch_size": 128},
                          "25,600 sequences, as many as muon_wsd_400 which missed: misses (about 0.95)"),
    "muon_wsd_150_b256": ({"optimizer": "muon", "schedule": "wsd", "max_steps": 150, "batch_size": 256},
                          "muon_wsd_300_b128's sequences in half the steps: reaches 0.98, about 0.9x its time"),
    # written after rows 8-10: 250 x 128 ended at 0.962, 200 x 128 at 0.916, 150 x 256 at 0.902; a sequence costs
    # the same with either optimizer and batch (about 2.5 ms on one thread), so only fewer sequences save time,
    # and 0.5x needs at most 32,000 sequences: variants of muon_wsd_250_b128
    "muon_wsd_250_b128_warm20": ({"optimizer": "muon", "schedule": "wsd", "max_steps": 250, "batch_size": 128,
                                  "warmup_steps": 20}, "30 more steps at the peak rate: reaches 0.98 (0.97-0.99)"),
    "muon_wsd_250_b128_decay50": ({"optimizer": "muon", "schedule": "wsd", "max_steps": 250, "batch_size": 128,
                                   "decay_frac": 0.5}, "a longer decay: about muon_wsd_250_b128's 0.96"),
    "muon_wsd_250_b128_muon03": ({"optimizer": "muon", "schedule": "wsd", "max_steps": 250, "batch_size": 128,
                                  "muon_lr": 0.03}, "Muon's rate x1.5: reaches 0.98"),
    "muon_wsd_250_b128_adam3": ({"optimizer": "muon", "schedule": "wsd", "max_steps": 250, "batch_size": 128,
                                 "lr": 3e-3}, "AdamW's rate x2 (embeddings, unembedding, gains): misses, as "
                                              "muon_wsd_600_hot did"),
}
QUALITY, EVERY, QUALITY_N = 0.98, 100, 500
CANDIDATE = "muon_wsd_300_b128"


def time_to_quality(recipe, seed, world_cfg=WorldConfig(), model_cfg=GPTConfig(), threshold=QUALITY, every=EVERY,
                    n=QUALITY_N):
    """Train the main model with a recipe of RECIPES (by name) until test validity reaches `threshold`
    (measured every `every` steps on n prompts) or the recipe's steps end; return the curve and when it got there."""
    overrides = RECIPES[recipe][0]
    world_cfg = replace(world_cfg, seed=seed)  # each training seed has its own world, as in train.py --all
    world = CoupletWorld(world_cfg)
    curve, spent = [], {"eval": 0.0}

    def on_step(run):
        if run.step % every and run.step != run.cfg.max_steps:
            return False
        t = time.perf_counter()
        valid = evaluate(run.model, world, "test", n)["valid"]
        run.model.train()
        spent["eval"] += time.perf_counter() - t
        curve.append({"step": run.step, "seconds": round(run.elapsed - spent["eval"] + (time.perf_counter() - t), 2),
                      "valid": valid})
        return valid >= threshold

    with tempfile.TemporaryDirectory() as tmp:
        cfg = replace(T.TrainConfig(), seed=seed, out=tmp, eval_every=10 ** 9, ckpt_every=10 ** 9, **overrides)
        T.train(world_cfg, model_cfg, cfg, on_step=on_step, quiet=True)
    data = world.tensor(world.split("train"), world.max_len())
    reached = next((c for c in curve if c["valid"] >= threshold), None)
    steps = reached["step"] if reached else curve[-1]["step"]
    tokens = sum(int((data[T.batch_indices(s, len(data), cfg.batch_size, seed)][:, 1:] != PAD).sum())
                 for s in range(steps))
    return {"recipe": recipe, "seed": seed, "n": n, "reached": reached is not None, "steps": steps, "tokens": tokens,
            "seconds": (reached or curve[-1])["seconds"], "curve": curve}


def run_time_to_quality(jobs, processes, quick=False):
    """time_to_quality for each (recipe, seed), `processes` children at a time (`python bench.py
    --quality-run ...`, one thread each); their results, in order."""
    return results_of([(f"{r} seed {s}", [sys.executable, os.path.abspath(__file__), "--quality-run", r, str(s),
                                          "--threads", "1", *(["--quick"] if quick else [])]) for r, s in jobs],
                      processes, on_done=lambda d: print(f"{d.label}: done ({d.seconds:.0f} s)", flush=True))


QUICK = dict(world_cfg=WorldConfig(n_train=2000, n_test=20), model_cfg=GPTConfig(n_layer=2, n_head=2, d_model=32, d_mlp=64),
             n=20)


def to_quality_summary(runs, baseline, candidate):
    """bench.json's to_quality: mean seconds per recipe over seeds and their ratio (candidate / baseline).
    A run that never reached the bar counts its whole training time, a lower bound, and says so."""
    by = {r: [x for x in runs if x["recipe"] == r] for r in (baseline, candidate)}
    mean = {r: statistics.mean(x["seconds"] for x in by[r]) for r in by}
    ratios = [c["seconds"] / b["seconds"] for b, c in zip(by[baseline], by[candidate])]
    return {"baseline_s": round(mean[baseline], 1), "candidate_s": round(mean[candidate], 1),
            "ratio": round(mean[candidate] / mean[baseline], 3), "ratio_by_seed": [round(r, 3) for r in ratios],
            "seeds": [x["seed"] for x in by[candidate]], "recipe": {candidate: RECIPES[candidate][0]},
            "baseline_recipe": {baseline: RECIPES[baseline][0]}, "threshold": QUALITY, "n": runs[0]["n"],
            "every": EVERY, "all_reached": all(x["reached"] for x in runs), "runs": runs}


def timed(argv, env=None):
    t = time.time()
    subprocess.run([sys.executable, *argv], check=True, stdout=subprocess.DEVNULL, env=env)
    return round(time.time() - t, 1)


def numerics_cost(repeats=3, steps=300, threads=None):
    """{pinned, native: [seconds per repeat], ratio}: the quick path's two halves (a shortened training run,
    then one experiment of the study on it) under each setting of PLANNING_NUMERICS, one after the other,
    alternating which goes first so a slower minute of the machine falls on both."""
    here = os.path.dirname(os.path.abspath(__file__))
    out = {"pinned": [], "native": [], "steps": steps, "repeats": repeats}
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(repeats):
            for mode in (("pinned", "native") if k % 2 == 0 else ("native", "pinned")):
                env = {**os.environ, numerics.OPT_OUT: mode}
                folder = os.path.join(tmp, f"{mode}{k}")
                common = ["--out", folder] + (["--threads", str(threads)] if threads else [])
                out[mode].append(timed([os.path.join(here, "train.py"), "--max-steps", str(steps), "--eval-n", "50",
                                        "--quiet", *common], env) +
                                 timed([os.path.join(here, "analyze.py"), "--only", "patching", "--n-pairs", "60",
                                        *common], env))
    ratios = sorted(p / n for p, n in zip(out["pinned"], out["native"]))
    out["ratio"] = round(ratios[len(ratios) // 2], 3)
    return out


def main(argv=None):
    p = cli.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="out")
    p.add_argument("--quick", action="store_true", help="a smoke run: a tiny model, few repeats")
    p.add_argument("--timings", action="store_true", help="also time `python train.py && python analyze.py`")
    p.add_argument("--to-quality", action="store_true",
                   help="time to test validity 0.98: baseline against --candidate, --seeds seeds each, side by side")
    p.add_argument("--candidate", default=CANDIDATE, help=f"a recipe of RECIPES (default {CANDIDATE})")
    p.add_argument("--search", action="store_true", help="every recipe of RECIPES on seed 0 (out/recipe_search.json)")
    p.add_argument("--seeds", type=int, default=3, help="training seeds with --to-quality (default 3)")
    p.add_argument("--jobs", type=int, default=cli.cores(), help="runs side by side with --to-quality / --search "
                   "(default: one per core, one thread each)")
    p.add_argument("--numerics", action="store_true",
                   help="the cost of the pinned CPU code paths against the native ones (bench.json 'numerics')")
    p.add_argument("--quality-run", nargs=2, metavar=("RECIPE", "SEED"), help=argparse.SUPPRESS)  # a child's run
    p.add_argument("--result", help=argparse.SUPPRESS)
    cli.add_threads_flag(p)
    args = p.parse_args(argv)

    def body():
        if args.candidate not in RECIPES or not 1 <= args.seeds <= 10:
            raise ValueError(f"--candidate must be one of {', '.join(RECIPES)} and --seeds in [1, 10]")
        if args.quality_run:
            cli.set_threads(args.threads)
            recipe, seed = args.quality_run
            write_json(args.result, time_to_quality(recipe, int(seed), **(QUICK if args.quick else {})))
            return 0
        if args.to_quality or args.search:
            return quality_main(args)
        if args.numerics:
            cost = numerics_cost(2 if args.quick else 3, 30 if args.quick else 300, args.threads)
            path = os.path.join(args.out, "bench.json")
            write_json(path, {**(json.load(open(path)) if os.path.exists(path) else {}), "numerics": cost})
            print(f"pinned {cost['pinned']} s, native {cost['native']} s: ratio {cost['ratio']} (median of "
                  f"{cost['repeats']})")
            return 0
        cli.set_threads(args.threads)
        world, model = WorldConfig(), GPTConfig()
        kw = {}
        if args.quick:
            world, model = QUICK["world_cfg"], QUICK["model_cfg"]
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
    return cli.run_main("bench.py", body, known_errors=(ChildFailed,))


def curve_text(curve):
    return ", ".join(f"{c['step']}: {c['valid']:.3f}" for c in curve)


def search_markdown(rows):
    """The recipe search as a Markdown table: every row, its prediction and what it did (seed 0)."""
    out = ["| recipe | settings | prediction, written before the run | reached 0.98 "
           "| steps x batch | training s | test valid every 100 steps (n = 500) |", "|" + " --- |" * 7]
    for r in rows:
        o = RECIPES[r["recipe"]][0] if r["recipe"] in RECIPES else r["overrides"]
        out.append(f"| `{r['recipe']}` | {', '.join(f'{k}={v}' for k, v in o.items())} | {r['prediction']} | "
                   f"{'yes' if r['reached'] else 'no'} | {r['steps']} x {o.get('batch_size', '?')} | "
                   f"{r['seconds']:.0f} | {curve_text(r['curve'])} |")
    return "\n".join(out) + "\n"


def to_quality_markdown(s):
    """--to-quality's runs as a Markdown table, with the ratio."""
    out = [f"Time to test validity {s['threshold']} (n = {s['n']}, every {s['every']} steps), one thread each, two "
           f"runs side by side: baseline {s['baseline_s']} s, candidate {s['candidate_s']} s, ratio **{s['ratio']}** "
           f"(by seed {', '.join(str(x) for x in s['ratio_by_seed'])}).", "",
           "| recipe | seed | reached | steps | sequences | tokens | training s | test valid every 100 steps |",
           "|" + " --- |" * 8]
    for r in s["runs"]:
        batch = (RECIPES[r["recipe"]][0].get("batch_size") or T.TrainConfig().batch_size)
        out.append(f"| `{r['recipe']}` | {r['seed']} | {'yes' if r['reached'] else 'no (whole run counted)'} | "
                   f"{r['steps']} | {r['steps'] * batch:,} | {r['tokens']:,} | {r['seconds']:.0f} | "
                   f"{curve_text(r['curve'])} |")
    return "\n".join(out) + "\n"


def quality_main(args):
    """--search and --to-quality: the runs, one process per core, one thread each."""
    processes = max(1, args.jobs)
    if args.search:  # rows already measured in this folder are kept, not run again
        path = os.path.join(args.out, "recipe_search.json")
        kept = {r["recipe"]: r for r in (json.load(open(path))["rows"] if os.path.exists(path) else [])}
        load = round(os.getloadavg()[0], 2)
        new = run_time_to_quality([(r, 0) for r in RECIPES if r not in kept], processes, args.quick)
        for run in new:
            kept[run["recipe"]] = {**run, "overrides": RECIPES[run["recipe"]][0],
                                   "prediction": RECIPES[run["recipe"]][1], "load_at_start": load}
        runs = [kept[r] for r in RECIPES if r in kept]
        write_json(path, {"rows": runs, "threshold": QUALITY, "n": QUALITY_N, "every": EVERY})
        write_text(os.path.join(args.out, "recipe_search.md"), search_markdown(runs))
        print(search_markdown(runs))
        return 0
    jobs = [(r, s) for s in range(args.seeds) for r in ("baseline", args.candidate)]  # each seed's pair side by side
    summary = to_quality_summary(run_time_to_quality(jobs, processes, args.quick), "baseline", args.candidate)
    path = os.path.join(args.out, "bench.json")
    r = json.load(open(path)) if os.path.exists(path) else {}
    write_json(path, {**r, "to_quality": summary})
    write_text(os.path.join(args.out, "to_quality.md"), to_quality_markdown(summary))
    print(f"time to test valid {QUALITY} (n={summary['n']}): baseline {summary['baseline_s']} s, {args.candidate} "
          f"{summary['candidate_s']} s, ratio {summary['ratio']} (by seed {summary['ratio_by_seed']})"
          + ("" if summary["all_reached"] else "; some runs never reached it (their whole training time counted)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
