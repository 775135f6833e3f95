"""Train the couplet GPT: `python train.py` writes out/model.pt and out/train_metrics.json.

Every field of WorldConfig, GPTConfig and TrainConfig is a flag (`python train.py --help`).
The run is deterministic: batches are a pure function of (seed, step), so `--resume` from a
checkpoint ends with exactly the weights an uninterrupted run would have.
"""
from dataclasses import dataclass, asdict, fields, replace
import argparse
import json
import math
import os
import signal
import sys
import time

import torch
from tqdm import tqdm

from data import CoupletWorld, WorldConfig, check_couplet, BOS, NL, EOS, PAD
from model import GPT, GPTConfig, save_checkpoint, load_checkpoint, CheckpointError


@dataclass(frozen=True)
class TrainConfig:
    seed: int = 0
    max_steps: int = 1200
    batch_size: int = 64
    lr: float = 3e-3
    min_lr_frac: float = 0.1
    warmup_steps: int = 50
    weight_decay: float = 0.1
    eval_every: int = 300      # steps between quick evaluations (on eval_n // 4 prompts)
    eval_n: int = 500          # prompts per split in the final evaluation
    ckpt_every: int = 200      # steps between checkpoints
    out: str = "out"
    resume: bool = False

    def validate(self):
        for name in ("max_steps", "batch_size", "eval_every", "eval_n", "ckpt_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"--lr must be positive, got {self.lr}")
        if not 0 <= self.min_lr_frac <= 1 or self.warmup_steps < 0 or self.weight_decay < 0:
            raise ValueError("--min-lr-frac must be in [0, 1]; --warmup-steps and --weight-decay >= 0")
        return self


# ---- writing and scoring line 2 -----------------------------------------------------------------
def write_line2(model, world, line1s, hooks=(), temperature=0.0, generator=None):
    """The line 2 (a list of words) the model writes after each line 1. Prompts are batched by
    length so every row of a batch is aligned: position hooks mean the same token in each row."""
    device = next(model.parameters()).device
    by_len = {}
    for i, line1 in enumerate(line1s):
        by_len.setdefault(len(line1), []).append(i)
    out = [None] * len(line1s)
    for idxs in by_len.values():
        prompts = torch.tensor([world.prompt_ids(line1s[i]) for i in idxs], device=device)
        full = model.generate(prompts, model.cfg.block_size, stop_token=EOS, hooks=hooks,
                              temperature=temperature, generator=generator)
        for row, i in zip(full[:, prompts.shape[1]:].tolist(), idxs):
            out[i] = world.decode(row[:row.index(EOS)] if EOS in row else row)
    return out


def wilson(k, n, z=1.96):
    """95% Wilson score interval for k successes in n trials."""
    if n == 0:
        return [0.0, 1.0]
    p = k / n
    mid = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [max(0.0, mid - half), min(1.0, mid + half)]


@torch.no_grad()
def evaluate(model, world, split, n):
    """Greedy line 2 for the first n line 1s of a split, scored by check_couplet."""
    was_training = model.training
    model.eval()
    couplets = world.split(split)[:n]
    line2s = write_line2(model, world, [c.line1 for c in couplets])
    broken = [check_couplet(c.line1, l2, world.config) for c, l2 in zip(couplets, line2s)]
    model.train(was_training)
    n = len(couplets)
    rates = {rule: sum(rule not in b for b in broken) / n for rule in ("rhyme", "meaning")}
    rates["valid"] = sum(not b for b in broken) / n
    rates["valid_ci"] = wilson(sum(not b for b in broken), n)
    rates["n"] = n
    rates["examples"] = [" ".join(c.line1) + " / " + " ".join(l2) for c, l2 in zip(couplets[:5], line2s[:5])]
    return rates


# ---- training ------------------------------------------------------------------------------------
def lr_at(step, cfg):
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    t = (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps)
    return cfg.lr * (cfg.min_lr_frac + (1 - cfg.min_lr_frac) * 0.5 * (1 + math.cos(math.pi * min(t, 1.0))))


def batch_indices(step, n, batch_size, seed):
    """Rows of the training tensor for one step: a fresh permutation every epoch, seeded."""
    per_epoch = n // batch_size
    epoch, i = divmod(step, per_epoch)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100003 + epoch))
    return perm[i * batch_size:(i + 1) * batch_size]


def make_optimizer(model, cfg):
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.95))


def train(world_cfg=WorldConfig(), model_cfg=None, cfg=TrainConfig(), on_step=None, quiet=False):
    """Train (or resume) and return the final metrics dict. `on_step(step)` may return True to
    request a stop (what Ctrl-C does): the loop saves a checkpoint and returns."""
    cfg.validate()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    world = CoupletWorld(world_cfg)
    model_cfg = model_cfg or GPTConfig()
    model_cfg = replace(model_cfg, vocab_size=len(world.itos), block_size=world.max_len()).validate()
    ckpt_path = os.path.join(cfg.out, "model.pt")
    torch.manual_seed(cfg.seed)
    model = GPT(model_cfg).to(device)
    opt = make_optimizer(model, cfg)
    step, history, losses, elapsed = 0, [], [], 0.0
    if cfg.resume and os.path.exists(ckpt_path):
        old, ckpt = load_checkpoint(ckpt_path, vocab=world.itos)
        state = ckpt["train_state"]
        if ckpt["model_config"] != asdict(model_cfg) or ckpt["world_config"] != asdict(world_cfg):
            raise CheckpointError(f"{ckpt_path}: was trained with other world/model settings; "
                                  f"resume with the same flags or drop --resume")
        model.load_state_dict(old.state_dict())
        opt.load_state_dict(state["optimizer"])
        step, history, losses, elapsed = state["step"], state["history"], state["losses"], state["elapsed"]
    data = world.tensor(world.split("train"), model_cfg.block_size).to(device)  # (N, T) built once

    stop = {"requested": False}
    previous_handler = signal.signal(signal.SIGINT, lambda *_: stop.update(requested=True))

    def checkpoint(metrics=None):
        state = {"step": step, "optimizer": opt.state_dict(), "history": history, "losses": losses,
                 "elapsed": elapsed,
                 "train_config": asdict(cfg)}
        save_checkpoint(ckpt_path, model, asdict(world_cfg), world.itos, metrics, state)

    model.train()
    bar = tqdm(total=cfg.max_steps, initial=step, disable=quiet, desc="train", dynamic_ncols=True)
    t0 = time.time() - elapsed
    try:
        while step < cfg.max_steps and not stop["requested"]:
            for g in opt.param_groups:
                g["lr"] = lr_at(step, cfg)
            batch = data[batch_indices(step, len(data), cfg.batch_size, cfg.seed)]  # (B, T)
            loss = model.loss(batch[:, :-1], batch[:, 1:], ignore_index=PAD)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            step += 1
            elapsed = time.time() - t0
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}")
            if step % 10 == 0 or step == 1:
                losses.append([step, round(loss.item(), 4)])
            if step % cfg.eval_every == 0 and step < cfg.max_steps:
                quick = evaluate(model, world, "test", max(1, cfg.eval_n // 4))
                history.append({"step": step, "loss": loss.item(), "valid": quick["valid"]})
                bar.write(f"step {step}: loss {loss.item():.3f}, test valid {quick['valid']:.3f}")
            if on_step is not None and on_step(step):
                stop["requested"] = True
            if step % cfg.ckpt_every == 0 and step < cfg.max_steps:
                checkpoint()
    finally:
        bar.close()
        signal.signal(signal.SIGINT, previous_handler)
    if step < cfg.max_steps:  # interrupted: save what we have, resume later
        checkpoint()
        return None
    train_seconds = time.time() - t0
    metrics = {"test": evaluate(model, world, "test", cfg.eval_n),
               "holdout": evaluate(model, world, "holdout", cfg.eval_n),
               "train_seconds": round(train_seconds, 1),
               "params": sum(p.numel() for p in model.parameters()),
               "first_loss": losses[0][1], "final_loss": losses[-1][1],
               "history": history, "device": device, "steps": step}
    checkpoint(metrics)
    with open(os.path.join(cfg.out, "train_metrics.json"), "w") as f:
        json.dump(metrics, f, indent=2)
    return metrics


# ---- command line ---------------------------------------------------------------------------------
class ArgumentParser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2, no usage dump
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def add_dataclass_flags(parser, cls, group_name, skip=()):
    group = parser.add_argument_group(group_name)
    for f in fields(cls):
        if f.name in skip:
            continue
        flag = "--" + f.name.replace("_", "-")
        if f.type in (bool, "bool"):
            group.add_argument(flag, action="store_true", default=f.default, help=f"(default: {f.default})")
        else:
            typ = {"int": int, "float": float, "str": str}.get(f.type, f.type)
            group.add_argument(flag, type=typ, default=f.default, help=f"(default: %(default)s)")


def pick(cls, args):
    return cls(**{f.name: getattr(args, f.name) for f in fields(cls) if hasattr(args, f.name)})


def main(argv=None):
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    add_dataclass_flags(parser, TrainConfig, "training")
    add_dataclass_flags(parser, GPTConfig, "model", skip=("vocab_size", "block_size"))
    add_dataclass_flags(parser, WorldConfig, "world", skip=("seed",))
    args = parser.parse_args(argv)
    world_cfg = WorldConfig(**{f.name: getattr(args, f.name) for f in fields(WorldConfig) if f.name != "seed"},
                            seed=args.seed)
    try:
        cfg = pick(TrainConfig, args).validate()
        model_cfg = pick(GPTConfig, args).validate()
        if world_cfg.n_train < 1 or world_cfg.n_test < 1:
            raise ValueError("--n-train and --n-test must be at least 1")
        metrics = train(world_cfg, model_cfg, cfg)
    except ValueError as e:
        print(f"train.py: error: {e}", file=sys.stderr)
        return 2
    except CheckpointError as e:
        print(f"train.py: error: {e}", file=sys.stderr)
        return 1
    if metrics is None:
        print(f"stopped; checkpoint saved to {cfg.out}/model.pt — continue with `python train.py --resume`")
        return 0
    t, h = metrics["test"], metrics["holdout"]
    print(f"test: rhyme {t['rhyme']:.3f} meaning {t['meaning']:.3f} valid {t['valid']:.3f} (n={t['n']}); "
          f"holdout: rhyme {h['rhyme']:.3f} meaning {h['meaning']:.3f} valid {h['valid']:.3f} (n={h['n']}); "
          f"{metrics['train_seconds']} s")
    for line in t["examples"][:3]:
        print("  ", line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
