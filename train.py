"""Train the couplet GPT: `python train.py` writes out/model.pt and out/train_metrics.json.

Every field of WorldConfig, GPTConfig and TrainConfig is a flag (`python train.py --help`).
The run is deterministic: batches are a pure function of (seed, step), so `--resume` from a
checkpoint ends with exactly the weights an uninterrupted run would have.

`torchrun --nproc_per_node=N train.py ...` trains the same model with DistributedDataParallel: each
process takes 1/N of every --batch-size batch; process 0 alone evaluates and writes out/.
"""
from dataclasses import dataclass, asdict, fields, replace
import argparse
import functools
import json
import math
import os
import signal
import sys
import time

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from data import (CoupletWorld, WorldConfig, check_couplet, cell_words, BOS, NL, EOS, PAD, NOUNS, OPENERS,
                  MEANINGS, FAMILIES)
from worlds import VARIANTS
from model import GPT, GPTConfig, save_checkpoint, load_checkpoint, CheckpointError


@dataclass(frozen=True)
class TrainConfig:
    seed: int = 0
    max_steps: int = 1200
    batch_size: int = 64
    lr: float = 1.5e-3
    min_lr_frac: float = 0.1
    warmup_steps: int = 50
    weight_decay: float = 0.1
    eval_every: int = 300      # steps between quick evaluations (on eval_n // 4 prompts)
    eval_n: int = 500          # prompts per split in the final evaluation
    ckpt_every: int = 200      # steps between checkpoints
    out: str = "out"
    resume: bool = False

    def validate(self):
        if not 0 <= self.seed < 2 ** 32:
            raise ValueError(f"--seed must be in [0, 2**32), got {self.seed}")
        for name in ("max_steps", "batch_size", "eval_every", "eval_n", "ckpt_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if not 0 < self.lr < math.inf:
            raise ValueError(f"--lr must be a positive number, got {self.lr}")
        if not 0 <= self.min_lr_frac <= 1 or self.warmup_steps < 0 or self.weight_decay < 0:
            raise ValueError("--min-lr-frac must be in [0, 1]; --warmup-steps and --weight-decay >= 0")
        return self


class TrainError(Exception):
    """A run that cannot go on (unwritable --out, full disk); the message is one line with the fix."""


def check_world(world_cfg, batch_size):
    """ValueError naming the flag, for world settings that cannot make the couplets we train on."""
    if world_cfg.n_train < 1 or world_cfg.n_test < 1:
        raise ValueError("--n-train and --n-test must be at least 1")
    if batch_size > world_cfg.n_train:
        raise ValueError(f"--batch-size {batch_size} exceeds --n-train {world_cfg.n_train}")
    if not 0 <= world_cfg.distractor_prob <= 1:
        raise ValueError(f"--distractor-prob must be in [0, 1], got {world_cfg.distractor_prob}")
    small = sum(len(cell_words(m, f)) in (1, 2) for m in MEANINGS for f in FAMILIES)  # holdout candidates
    if not 1 <= world_cfg.holdout_cells <= small:
        raise ValueError(f"--holdout-cells must be in [1, {small}], got {world_cfg.holdout_cells}")
    # the opener makes up the syllables line 2 lacks, and openers only come in OPENERS' lengths
    fits = [n for n in range(1, 30) if {n - 3 - w.syllables for w in NOUNS.values()} <= set(OPENERS)]
    if world_cfg.meter and world_cfg.line2_syllables not in fits:
        raise ValueError(f"--line2-syllables must be one of {fits} with --meter, got {world_cfg.line2_syllables}")


def check_writable(folder):
    """Fail in the first second, not at the first checkpoint, when --out cannot hold files."""
    try:
        os.makedirs(folder, exist_ok=True)
        probe = os.path.join(folder, f".write-test{os.getpid()}")
        open(probe, "w").close()
        os.remove(probe)
    except OSError as e:
        raise TrainError(f"cannot write to --out {folder!r} ({e.strerror or e}); "
                         f"point --out at a folder you can write to") from None


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


@functools.lru_cache(maxsize=2)
def epoch_permutation(n, seed, epoch):
    """The seeded order of the n training rows in one epoch (cached: one randperm per epoch, not per step)."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100003 + epoch))


def batch_indices(step, n, batch_size, seed):
    """Rows of the training tensor for one step: a fresh permutation every epoch, seeded."""
    per_epoch = n // batch_size
    epoch, i = divmod(step, per_epoch)
    return epoch_permutation(n, seed, epoch)[i * batch_size:(i + 1) * batch_size].clone()


def make_optimizer(model, cfg):
    """AdamW with weight decay on matrices only. The fused kernel (one call for all parameters
    instead of a dozen small ops per parameter) where this torch has it for the parameters' device."""
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    try:
        return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.95), fused=True)
    except (RuntimeError, TypeError, ValueError):  # no fused AdamW for this device / torch
        return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.95))


def packed_loss(model, batch):
    """model.loss(batch[:, :-1], batch[:, 1:], ignore_index=PAD), computed only where it counts.

    A couplet is right-padded, so the positions whose target is <pad> are a suffix of each row: under
    the causal mask nothing before them reads them, and their loss is ignored. Every per-token layer
    (LayerNorms, qkv, projections, MLP, unembedding, loss) therefore runs on the packed (N, C) rows of
    the kept positions only (N is about 7/8 of B*T); attention alone scatters them back into the
    padded (B, T) layout (pad slots zero, never read by a kept query). The same function as GPT.forward
    (F.layer_norm is our LayerNorm: eps inside the sqrt, biased variance; GELU is exact-erf) up to
    float rounding, checked by `check_packed_loss` before training uses it. No hooks run here: use
    the model itself for anything that needs them."""
    c = model.cfg
    x, y = batch[:, :-1], batch[:, 1:]
    B, T = x.shape
    C, H = c.d_model, c.n_head
    D = C // H
    targets = y.reshape(-1)
    keep = (targets != PAD).nonzero().squeeze(1)  # (N,) flat positions whose target counts
    h = F.embedding(x.reshape(-1).index_select(0, keep), model.wte.weight) + \
        F.embedding(keep % T, model.wpe.weight)  # (N, C)
    causal = torch.full((T, T), float("-inf"), device=h.device).triu(1).expand(B * H, T, T)
    for blk in model.blocks:
        a = F.layer_norm(h, (C,), blk.ln1.weight, blk.ln1.bias, 1e-5)
        qkv = F.linear(a, blk.attn.qkv.weight, blk.attn.qkv.bias)  # (N, 3C)
        full = qkv.new_zeros(B * T, 3 * C).index_copy(0, keep, qkv)  # (B*T, 3C)
        q, k, v = full.view(B, T, 3, H, D).permute(2, 0, 3, 1, 4).reshape(3, B * H, T, D).unbind(0)
        # causal attention as two batched matmuls: at T ~ 23 they beat the CPU flash-attention kernel
        scores = torch.baddbmm(causal, q, k.transpose(1, 2), alpha=D ** -0.5)  # (B*H, T, T)
        z = torch.bmm(scores.softmax(-1), v).view(B, H, T, D)
        z = z.transpose(1, 2).reshape(B * T, C).index_select(0, keep)  # (N, C)
        h = h + F.linear(z, blk.attn.proj.weight, blk.attn.proj.bias)
        m = F.layer_norm(h, (C,), blk.ln2.weight, blk.ln2.bias, 1e-5)
        h = h + F.linear(F.gelu(F.linear(m, blk.mlp.fc.weight, blk.mlp.fc.bias)), blk.mlp.proj.weight,
                         blk.mlp.proj.bias)
    h = F.layer_norm(h, (C,), model.ln_f.weight, model.ln_f.bias, 1e-5)
    return F.cross_entropy(F.linear(h, model.unembed.weight, model.unembed.bias), targets.index_select(0, keep))


def check_packed_loss(model, data, batch_size, tol=1e-4):
    """True when packed_loss can stand in for model.loss: a plain architecture (no myopic or
    nl_barrier attention), rows of `data` right-padded (every position whose target is <pad> is
    followed only by such positions), and loss and gradients equal to the model's own on the first
    batch up to rounding. Guards the fast path against a model.py that has changed under it."""
    c = model.cfg
    counts = data[:, 1:] != PAD
    if c.myopic or c.nl_barrier or c.attn_window or (counts[:, 1:] & ~counts[:, :-1]).any():
        return False
    batch = data[:batch_size]
    params = [p for p in model.parameters() if p.requires_grad]
    try:
        ref_loss = model.loss(batch[:, :-1], batch[:, 1:], ignore_index=PAD)
        ref = torch.autograd.grad(ref_loss, params, allow_unused=True)
        loss = packed_loss(model, batch)
        got = torch.autograd.grad(loss, params, allow_unused=True)
    except (RuntimeError, AttributeError, TypeError):
        return False
    if not math.isclose(loss.item(), ref_loss.item(), rel_tol=tol, abs_tol=tol):
        return False
    for r, g in zip(ref, got):
        if (r is None) != (g is None):
            return False
        if r is not None and (r - g).abs().max().item() > tol * max(1e-3, r.abs().max().item()):
            return False
    return True


def shard_loss(net, batch, rank, world_size):
    """This process's part of the whole batch's mean loss. It sums the loss over its 1/world_size of
    the rows and divides by the token count of the *whole* batch (times world_size, since DDP
    averages gradients), so the gradient is exactly one process's on the whole batch even when
    padding leaves the shards with different token counts."""
    x, y = batch[:, :-1], batch[:, 1:]
    rows = slice(rank * len(batch) // world_size, (rank + 1) * len(batch) // world_size)
    logits = net(x[rows])
    loss = F.cross_entropy(logits.flatten(0, 1), y[rows].flatten(), ignore_index=PAD, reduction="sum")
    return loss * world_size / (y != PAD).sum()


def sync(loss, stopping, world_size):
    """One collective per step: the whole batch's mean loss (for the log) and whether any process
    was asked to stop, so that every process leaves the loop at the same step."""
    t = torch.tensor([loss.item(), float(stopping)], dtype=torch.float64, device=loss.device)
    dist.all_reduce(t)
    return t[0] / world_size, t[1].item() > 0


def train(world_cfg=WorldConfig(), model_cfg=None, cfg=TrainConfig(), on_step=None, quiet=False):
    """Train (or resume) and return the final metrics dict. `on_step(step)` may return True to
    request a stop (what Ctrl-C does): the loop saves a checkpoint and returns None.
    Under torchrun (WORLD_SIZE > 1) every process calls this; only rank 0 writes and returns metrics."""
    cfg.validate()
    rank, world_size = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    if cfg.batch_size % world_size:
        raise ValueError(f"--batch-size {cfg.batch_size} must be divisible by the number of processes "
                         f"({world_size}): each takes an equal share of the batch")
    check_world(world_cfg, cfg.batch_size)
    if rank == 0:
        check_writable(cfg.out)
    own_group = world_size > 1 and not dist.is_initialized()
    if own_group:  # torchrun set MASTER_ADDR/PORT, RANK and WORLD_SIZE
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    try:
        metrics = fit(world_cfg, model_cfg, cfg, on_step, quiet, rank, world_size)
        if own_group:  # the others wait while rank 0 evaluates: a process leaving early can abort gloo
            dist.barrier()
        return metrics
    finally:
        if own_group:
            dist.destroy_process_group()


def fit(world_cfg, model_cfg, cfg, on_step, quiet, rank, world_size):
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if world_size > 1 and device == "cuda":
        device = f"cuda:{os.environ.get('LOCAL_RANK', 0)}"
        torch.cuda.set_device(device)
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
        try:
            model.load_state_dict(old.state_dict())
            opt.load_state_dict(state["optimizer"])
            step, history, losses, elapsed = state["step"], state["history"], state["losses"], state["elapsed"]
        except (KeyError, TypeError, ValueError, RuntimeError) as e:
            raise CheckpointError(f"{ckpt_path}: holds no usable training state ({type(e).__name__}); "
                                  f"drop --resume to start over") from None
    data = world.tensor(world.split("train"), model_cfg.block_size).to(device)  # (N, T) built once
    net = model
    if world_size > 1:  # same model in every process; backward() averages their gradients
        net = DistributedDataParallel(model, device_ids=[device] if device != "cpu" else None)

    stop = {"requested": False}
    handlers = {sig: signal.signal(sig, lambda *_: stop.update(requested=True))
                for sig in ((signal.SIGINT, signal.SIGTERM) if world_size > 1 else (signal.SIGINT,))}
    # (torchrun passes Ctrl-C on to the workers as SIGINT, a scheduler's stop as SIGTERM)

    def checkpoint(metrics=None):
        if rank != 0:
            return
        state = {"step": step, "optimizer": opt.state_dict(), "history": history, "losses": losses,
                 "elapsed": elapsed,
                 "train_config": asdict(cfg)}
        try:
            save_checkpoint(ckpt_path, model, asdict(world_cfg), world.itos, metrics, state)
        except OSError as e:  # full disk, folder gone: the rename never happened
            raise TrainError(f"could not save {ckpt_path} at step {step} ({e.strerror or e}); the previous "
                             f"checkpoint is untouched: fix that, then continue with --resume") from None

    model.train()
    # the fast loss only for one process and a model it reproduces (checked on a fixed batch)
    packed = world_size == 1 and check_packed_loss(model, data, cfg.batch_size)
    bar = tqdm(total=cfg.max_steps, initial=step, disable=quiet or rank != 0, desc="train", dynamic_ncols=True)
    if step and not quiet and rank == 0:
        bar.write(f"resuming from step {step} of {ckpt_path}")
    t0 = time.time() - elapsed
    stopping = False
    try:
        while step < cfg.max_steps and not stopping:
            for g in opt.param_groups:
                g["lr"] = lr_at(step, cfg)
            batch = data[batch_indices(step, len(data), cfg.batch_size, cfg.seed)]  # (B, T)
            if world_size > 1:
                loss = shard_loss(net, batch, rank, world_size)
            elif packed:
                loss = packed_loss(model, batch)
            else:
                loss = model.loss(batch[:, :-1], batch[:, 1:], ignore_index=PAD)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0, foreach=True)
            opt.step()
            step += 1
            stopping = stop["requested"] or bool(on_step is not None and on_step(step))
            if world_size > 1:
                loss, stopping = sync(loss, stopping, world_size)
            elapsed = time.time() - t0
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}")
            if step % 10 == 0 or step == 1:
                losses.append([step, round(loss.item(), 4)])
            if step % cfg.eval_every == 0 and step < cfg.max_steps and rank == 0:
                quick = evaluate(model, world, "test", max(1, cfg.eval_n // 4))
                history.append({"step": step, "loss": loss.item(), "valid": quick["valid"]})
                bar.write(f"step {step}: loss {loss.item():.3f}, test valid {quick['valid']:.3f}")
            if step % cfg.ckpt_every == 0 and step < cfg.max_steps:
                checkpoint()
    finally:
        bar.close()
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    if step < cfg.max_steps:  # interrupted: save what we have, resume later
        checkpoint()
        return None
    if rank != 0:
        return None
    train_seconds = time.time() - t0
    t_eval = time.time()
    test, holdout = evaluate(model, world, "test", cfg.eval_n), evaluate(model, world, "holdout", cfg.eval_n)
    metrics = {"test": test, "holdout": holdout,
               "train_seconds": round(train_seconds, 1),
               "eval_seconds": round(time.time() - t_eval, 1),  # the final evaluation, after train_seconds
               "fast_loss": packed,
               "params": sum(p.numel() for p in model.parameters()),
               "first_loss": losses[0][1], "final_loss": losses[-1][1],
               "history": history, "device": device, "steps": step}
    if world_size > 1:
        metrics["processes"] = world_size
    checkpoint(metrics)
    path = os.path.join(cfg.out, "train_metrics.json")
    try:  # like the checkpoint: a temp file, then rename, so a full disk leaves no half file
        with open(path + ".tmp", "w") as f:
            json.dump(metrics, f, indent=2)
        os.replace(path + ".tmp", path)
    except OSError as e:
        if os.path.exists(path + ".tmp"):
            os.remove(path + ".tmp")
        raise TrainError(f"could not write {path} ({e.strerror or e}); the checkpoint {ckpt_path} holds "
                         f"the same metrics") from None
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
            group.add_argument(flag, action=argparse.BooleanOptionalAction, default=f.default,
                               help=f"(default: {f.default})")  # --meter / --no-meter
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
    parser.add_argument("--all", action="store_true",
                        help="also train every variant of worlds.py (the full study) into OUT/worlds/NAME")
    args = parser.parse_args(argv)
    world_cfg = WorldConfig(**{f.name: getattr(args, f.name) for f in fields(WorldConfig) if f.name != "seed"},
                            seed=args.seed)
    rank, world_size = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    again = "`python train.py --resume`" if world_size == 1 else "the same torchrun command plus --resume"
    try:
        cfg = pick(TrainConfig, args).validate()
        model_cfg = pick(GPTConfig, args).validate()
        metrics = train(world_cfg, model_cfg, cfg)
        report(metrics, rank)
        for name, (w_over, m_over, t_over, _) in (VARIANTS.items() if args.all and metrics else ()):
            out = os.path.join(cfg.out, "worlds", name)
            if rank == 0:
                print(f"--- variant '{name}' -> {out}")
            report(train(replace(world_cfg, **w_over), replace(model_cfg, **m_over),
                         replace(cfg, out=out, **t_over)), rank)
    except ValueError as e:  # a flag out of range: usage
        print(f"train.py: error: {e}", file=sys.stderr)
        return 2
    except (CheckpointError, TrainError) as e:
        print(f"train.py: error: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"train.py: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # Ctrl-C outside the training loop (building data, final evaluation)
        print(f"train.py: interrupted; checkpoints already in {args.out}/ are intact — continue with "
              f"{again}", file=sys.stderr)
        return 130
    if rank != 0:
        return 0
    if metrics is None:
        print(f"stopped; checkpoint saved to {cfg.out}/model.pt — continue with {again}")
        return 0
    return 0


def report(metrics, rank):
    """The console summary of one finished run."""
    if rank != 0 or metrics is None:
        return
    t, h = metrics["test"], metrics["holdout"]
    print(f"test: rhyme {t['rhyme']:.3f} meaning {t['meaning']:.3f} valid {t['valid']:.3f} (n={t['n']}); "
          f"holdout: rhyme {h['rhyme']:.3f} meaning {h['meaning']:.3f} valid {h['valid']:.3f} (n={h['n']}); "
          f"{metrics['train_seconds']} s")
    for line in t["examples"][:3]:
        print("  ", line)


if __name__ == "__main__":
    sys.exit(main())
