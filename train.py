"""Train the couplet GPT: `python train.py` writes out/model.pt and out/train_metrics.json.

Every field of WorldConfig, GPTConfig and TrainConfig is a flag (`python train.py --help`).
`python train.py --all` trains every model of the study (worlds.py: the main model and its
variants) with `--seeds` training seeds each, in parallel processes, one per core.

The run is deterministic: batches are a pure function of (seed, step), so `--resume` from a
checkpoint ends with exactly the weights an uninterrupted run would have. Ctrl-C or SIGTERM saves
a checkpoint and exits 130. `torchrun --nproc_per_node=N train.py ...` trains the same model with
DistributedDataParallel: each process takes 1/N of every batch; process 0 alone writes out/. (With AdamW
the weights equal one process's; Muon orthogonalizes in bfloat16, so there they agree to about 1e-3.)

The recipe: AdamW, cosine decay, 1,200 steps of 64 couplets. `--optimizer muon --schedule wsd --max-steps 300
--batch-size 128` reaches the same test validity in about 0.6 of the time (bench.py --to-quality) but trains
a model whose planning numbers differ (docs/speed.md), so it is an option, not the default.
"""
from contextlib import closing
from dataclasses import dataclass, asdict, replace
import functools
import math
import os
import sys
import time

from plumbing import numerics  # first: pins the CPU code paths before torch loads
import torch

from data import CoupletWorld, WorldConfig, PAD
from model import GPT, GPTConfig, checkpoint_payload, load_checkpoint, CheckpointError
from interp.quality import evaluate
from plumbing import cli, ddp
from plumbing.files import save_torch, write_json, check_writable, remove_stale_temps, WriteError
from plumbing.processes import run_commands
from plumbing.progress import Progress
import worlds


@dataclass(frozen=True)
class TrainConfig:
    seed: int = 0
    max_steps: int = 1200
    batch_size: int = 64
    lr: float = 1.5e-3
    min_lr_frac: float = 0.1
    warmup_steps: int = 50
    weight_decay: float = 0.1
    optimizer: str = "adamw"   # "adamw", or "muon": Muon for the blocks' weight matrices, AdamW for the rest
    muon_lr: float = 0.02      # Muon's peak learning rate (its update is orthogonalized, so it has its own scale)
    schedule: str = "cosine"   # after warmup: "cosine" decay, or "wsd" (warmup-stable-decay: flat, then linear)
    decay_frac: float = 0.3    # with "wsd": the last fraction of the steps that decays to min_lr_frac
    eval_every: int = 500      # steps between quick evaluations (on eval_n // 4 prompts)
    eval_n: int = 500          # prompts per split in the final evaluation
    ckpt_every: int = 200      # steps between checkpoints
    snapshot_every: int = 0    # > 0: keep the weights every this many steps in OUT/snapshots/ (patching over training)
    out: str = "out"
    resume: bool = False

    def validate(self):
        if not 0 <= self.seed < 2 ** 32:
            raise ValueError(f"--seed must be in [0, 2**32), got {self.seed}")
        for name in ("max_steps", "batch_size", "eval_every", "eval_n", "ckpt_every"):
            if not 1 <= getattr(self, name) <= 10 ** 9:
                raise ValueError(f"--{name.replace('_', '-')} must be in [1, 1e9], got {getattr(self, name)}")
        if not 0 < self.lr < 1:
            raise ValueError(f"--lr must be a number in (0, 1), got {self.lr}")
        if not 0 <= self.min_lr_frac <= 1 or self.warmup_steps < 0 or self.weight_decay < 0 or self.snapshot_every < 0:
            raise ValueError("--min-lr-frac must be in [0, 1]; --warmup-steps, --weight-decay and --snapshot-every >= 0")
        if self.optimizer not in OPTIMIZERS or self.schedule not in SCHEDULES:
            raise ValueError(f"--optimizer must be one of {', '.join(OPTIMIZERS)} and --schedule one of "
                             f"{', '.join(SCHEDULES)}, got {self.optimizer!r} and {self.schedule!r}")
        if not 0 < self.muon_lr < 10 or not 0 < self.decay_frac <= 1:
            raise ValueError(f"--muon-lr must be in (0, 10) and --decay-frac in (0, 1], got {self.muon_lr} and "
                             f"{self.decay_frac}")
        return self


OPTIMIZERS, SCHEDULES = ("adamw", "muon"), ("cosine", "wsd")


# settings a resumed run must share with the checkpoint it continues (the rest only shape the logs)
RESUME_MUST_MATCH = ("seed", "max_steps", "batch_size", "lr", "min_lr_frac", "warmup_steps", "weight_decay",
                     "optimizer", "muon_lr", "schedule", "decay_frac")
# what a checkpoint that does not record the recipe's later fields was trained with
RECIPE_BEFORE_FIELDS = {"optimizer": "adamw", "muon_lr": 0.02, "schedule": "cosine", "decay_frac": 0.3}


def settings_differ(ckpt, world_cfg, model_cfg, cfg, every_key=False):
    """[(setting, the checkpoint's value, this run's)] for every setting a run continuing the checkpoint
    must share with it: the world's, the model's (but the vocabulary and sequence length, which the world
    decides) and RESUME_MUST_MATCH. A setting the checkpoint does not record was added later, with a
    default that keeps what it was trained with (RECIPE_BEFORE_FIELDS for the recipe's fields); a
    checkpoint recording no training settings at all is not compared on them unless every_key."""
    recorded = ckpt.get("train_state", {}).get("train_config") or {}
    saved = {**asdict(WorldConfig()), **ckpt.get("world_config", {}), **ckpt.get("model_config", {}),
             **({**RECIPE_BEFORE_FIELDS, **recorded} if recorded or every_key else {})}
    now = {**asdict(world_cfg), **{k: v for k, v in asdict(model_cfg).items() if k not in ("vocab_size", "block_size")},
           **{k: getattr(cfg, k) for k in RESUME_MUST_MATCH}}
    return [(k, saved.get(k), v) for k, v in now.items() if saved.get(k, v if not every_key else None) != v]


class TrainError(Exception):
    """A run that cannot go on (diverged, cannot resume); the message is one line with the fix."""


# ---- the pieces of one step ------------------------------------------------------------------------
def lr_at(step, cfg, peak):
    """The learning rate at a step for a group whose peak rate is `peak`: linear warmup, then either cosine
    decay to min_lr_frac * peak, or (wsd) flat until the last decay_frac of the steps and a linear decay."""
    if step < cfg.warmup_steps:
        return peak * (step + 1) / cfg.warmup_steps
    if cfg.schedule == "wsd":
        decay_from = cfg.max_steps * (1 - cfg.decay_frac)
        t = max(0.0, (step - decay_from) / max(1.0, cfg.max_steps - decay_from))
        return peak * (1 - (1 - cfg.min_lr_frac) * min(t, 1.0))
    t = (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps)
    return peak * (cfg.min_lr_frac + (1 - cfg.min_lr_frac) * 0.5 * (1 + math.cos(math.pi * min(t, 1.0))))


@functools.lru_cache(maxsize=2)
def epoch_permutation(n, seed, epoch):
    """The seeded order of the n training rows in one epoch (one randperm per epoch, not per step)."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100003 + epoch))


def batch_indices(step, n, batch_size, seed):
    """Rows of the training tensor for one step: a fresh permutation every epoch, seeded."""
    epoch, i = divmod(step, n // batch_size)
    return epoch_permutation(n, seed, epoch)[i * batch_size:(i + 1) * batch_size].clone()


def inputs_and_targets(batch):
    """(B, T+1) couplets -> inputs (B, T) and next-token targets (B, T), -1 where the target is <pad>."""
    x, y = batch[:, :-1], batch[:, 1:]
    return x, y.masked_fill(y == PAD, -1)


def make_optimizer(model, cfg):
    """AdamW with weight decay on matrices only (the fused kernel where this torch has it); with
    cfg.optimizer == "muon", the blocks' weight matrices (attention and MLP) go to Muon instead, which
    orthogonalizes each matrix's momentum (Newton-Schulz), and AdamW keeps the embeddings, the unembedding,
    the gains and the biases. Every group remembers its peak learning rate as "peak_lr"."""
    hidden = [p for n, p in model.named_parameters() if cfg.optimizer == "muon" and n.startswith("blocks.")
              and p.dim() == 2]
    rest = [p for p in model.parameters() if not any(p is h for h in hidden)]
    groups = [{"params": [p for p in rest if p.dim() >= 2], "weight_decay": cfg.weight_decay},
              {"params": [p for p in rest if p.dim() < 2], "weight_decay": 0.0}]
    for g in groups:
        g["peak_lr"] = cfg.lr
    try:
        adamw = torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.95), fused=True)
    except (RuntimeError, TypeError, ValueError):  # no fused AdamW for this device / torch
        adamw = torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.95))
    if not hidden:
        return adamw
    muon = torch.optim.Muon([{"params": hidden, "peak_lr": cfg.muon_lr}], lr=cfg.muon_lr,
                            weight_decay=cfg.weight_decay)
    return Optimizers(muon, adamw)


class Optimizers:
    """Several optimizers, each over its own parameters, stepped as one (Muon + AdamW)."""

    def __init__(self, *optimizers):
        self.optimizers = optimizers

    @property
    def param_groups(self):
        return [g for o in self.optimizers for g in o.param_groups]

    def zero_grad(self, set_to_none=True):
        for o in self.optimizers:
            o.zero_grad(set_to_none=set_to_none)

    def step(self):
        for o in self.optimizers:
            o.step()

    def state_dict(self):
        return {"optimizers": [o.state_dict() for o in self.optimizers]}

    def load_state_dict(self, state):
        if len(state["optimizers"]) != len(self.optimizers):
            raise ValueError("the saved optimizer state has another number of optimizers")
        for o, s in zip(self.optimizers, state["optimizers"]):
            o.load_state_dict(s)


# ---- one run ----------------------------------------------------------------------------------------
def train(world_cfg=WorldConfig(), model_cfg=None, cfg=TrainConfig(), on_step=None, quiet=False):
    """Train (or resume) and return the final metrics dict, or None when stopped early (Ctrl-C,
    SIGTERM, or `on_step(run)` returning True after a step, given this Run; one process only): a checkpoint is saved first.
    Under torchrun (WORLD_SIZE > 1) every process calls this; only rank 0 writes and returns metrics."""
    cfg.validate()
    world_cfg.validate()
    rank, world_size = ddp.rank_and_size()
    if cfg.batch_size % world_size:
        raise ValueError(f"--batch-size {cfg.batch_size} must be divisible by the number of processes "
                         f"({world_size}): each takes an equal share of the batch")
    if cfg.batch_size > world_cfg.n_train:
        raise ValueError(f"--batch-size {cfg.batch_size} exceeds --n-train {world_cfg.n_train}")
    if rank == 0:
        check_writable(cfg.out)
        remove_stale_temps(cfg.out)
    with ddp.process_group():
        return Run(world_cfg, model_cfg or GPTConfig(), cfg, rank, world_size).fit(on_step, quiet)


class Run:
    """One training run: setup in __init__, the loop in fit, the end in finish."""

    def __init__(self, world_cfg, model_cfg, cfg, rank, world_size):
        self.cfg, self.world_cfg, self.rank, self.world_size = cfg, world_cfg, rank, world_size
        self.device = ddp.device(world_size)
        self.world = CoupletWorld(world_cfg)
        self.model_cfg = replace(model_cfg, vocab_size=len(self.world.itos), block_size=self.world.max_len()).validate()
        self.path = os.path.join(cfg.out, "model.pt")
        torch.manual_seed(cfg.seed)
        self.model = GPT(self.model_cfg).to(self.device)
        self.opt = make_optimizer(self.model, cfg)
        self.step, self.history, self.losses, self.elapsed = 0, [], [], 0.0
        if cfg.resume:
            self.resume()
        self.data = self.world.tensor(self.world.split("train"), self.model_cfg.block_size).to(self.device)
        self.net = ddp.wrap(self.model, self.device, world_size)

    def resume(self):
        """Continue from OUT/model.pt; refuse (naming the flags) when it was trained otherwise."""
        if not os.path.exists(self.path):
            raise TrainError(f"--resume: no checkpoint at {self.path} to continue; drop --resume to start fresh")
        old, ckpt = load_checkpoint(self.path, vocab=self.world.itos)
        state = ckpt["train_state"]
        differ = settings_differ(ckpt, self.world_cfg, self.model_cfg, self.cfg)
        if differ:
            names = ", ".join(f"--{k.replace('_', '-')} ({there} there, {now} now)" for k, there, now in differ)
            raise TrainError(f"{self.path} was trained with other settings: {names}; resume with the same flags "
                             f"or drop --resume")
        try:
            self.model.load_state_dict(old.state_dict())
            peaks = [g["peak_lr"] for g in self.opt.param_groups]
            self.opt.load_state_dict(state["optimizer"])
            for g, peak in zip(self.opt.param_groups, peaks):  # a checkpoint older than "peak_lr" lacks it
                g["peak_lr"] = peak
            self.step, self.history, self.losses, self.elapsed = (state[k] for k in ("step", "history", "losses",
                                                                                      "elapsed"))
        except (KeyError, TypeError, ValueError, RuntimeError) as e:
            raise CheckpointError(f"{self.path}: holds no usable training state ({type(e).__name__}); "
                                  f"drop --resume to start over") from None
        moved = numerics.differences(ckpt.get("numerics"))
        if moved:  # the rest of the run would compute other bits than its start did
            raise TrainError(f"{self.path} was trained under other CPU settings ({numerics.describe(moved)}); "
                             f"resume under those (plumbing/numerics.py) or drop --resume")

    def checkpoint(self, metrics=None):
        if self.rank != 0:
            return
        if not all(torch.isfinite(p).all() for p in self.model.parameters()):
            raise TrainError(f"the weights became non-finite by step {self.step}; {self.path} keeps the last good "
                             f"checkpoint; lower --lr and start again without --resume")
        state = {"step": self.step, "optimizer": self.opt.state_dict(), "history": self.history,
                 "losses": self.losses, "elapsed": self.elapsed, "train_config": asdict(self.cfg)}
        try:
            save_torch(self.path, checkpoint_payload(self.model, asdict(self.world_cfg), self.world.itos, metrics, state,
                                                     numerics.state()))
        except WriteError as e:
            raise WriteError(f"{e} at step {self.step}; the previous checkpoint is untouched: free some space, then "
                             f"continue with {resume_command(self.cfg.out)}") from None
        if self.cfg.snapshot_every and self.step % self.cfg.snapshot_every == 0 and metrics is None:
            save_torch(os.path.join(self.cfg.out, "snapshots", f"step{self.step:06d}.pt"),
                       checkpoint_payload(self.model, asdict(self.world_cfg), self.world.itos, {"step": self.step},
                                          numerics=numerics.state()))

    def fit(self, on_step, quiet):
        """The training loop: one step per batch until max_steps, or until asked to stop (Ctrl-C, SIGTERM,
        on_step), which saves a checkpoint to resume from and returns None."""
        cfg, model = self.cfg, self.model
        bar = Progress(cfg.max_steps, "train", initial=self.step, quiet=quiet or self.rank != 0)
        if self.step:
            bar.write(f"resuming from step {self.step} of {self.path}")
        t0, stopping = time.time() - self.elapsed, False
        model.train()
        with cli.stop_signals() as stop, closing(bar):
            while self.step < cfg.max_steps and not stopping:
                for g in self.opt.param_groups:
                    g["lr"] = lr_at(self.step, cfg, g["peak_lr"])
                x, y = inputs_and_targets(self.data[batch_indices(self.step, len(self.data), cfg.batch_size,
                                                                  cfg.seed)])  # (B, T) each
                loss = ddp.shard_loss(self.net, x, y, self.rank, self.world_size)
                self.opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0, foreach=True)
                loss, stopping = ddp.sync(loss, stop.requested, self.world_size)  # every process stops together
                if not math.isfinite(loss.item()):  # keep the last good checkpoint, do not overwrite it
                    raise TrainError(f"the loss became {loss.item()} at step {self.step + 1}; {self.path} keeps the "
                                     f"last good checkpoint; lower --lr and start again without --resume")
                self.opt.step()
                self.step += 1
                self.elapsed = time.time() - t0
                bar.update(1, loss=f"{loss.item():.3f}")
                self.after_step(loss.item(), bar)
                stopping = stopping or bool(on_step is not None and on_step(self))
        if self.step < cfg.max_steps:  # stopped: save what we have, resume later
            self.checkpoint()
            return None
        return self.finish(time.time() - t0)

    def after_step(self, loss, bar):
        """The log, the quick evaluation and the checkpoint, each on its own schedule."""
        cfg = self.cfg
        if self.step % 10 == 0 or self.step == 1:
            self.losses.append([self.step, round(loss, 4)])
        if self.step % cfg.eval_every == 0 and self.step < cfg.max_steps and self.rank == 0:
            quick = evaluate(self.model, self.world, "test", max(1, cfg.eval_n // 4))
            self.history.append({"step": self.step, "loss": loss, "valid": quick["valid"]})
            bar.write(f"step {self.step}: loss {loss:.3f}, test valid {quick['valid']:.3f}")
        if (self.step % cfg.ckpt_every == 0 or (cfg.snapshot_every and self.step % cfg.snapshot_every == 0)) \
                and self.step < cfg.max_steps:
            self.checkpoint()

    def finish(self, train_seconds):
        if self.rank != 0:
            return None
        t_eval = time.time()
        test, holdout = (evaluate(self.model, self.world, s, self.cfg.eval_n) for s in ("test", "holdout"))
        metrics = {"test": test, "holdout": holdout, "train_seconds": round(train_seconds, 1),
                   "eval_seconds": round(time.time() - t_eval, 1), "steps": self.step,
                   "params": sum(p.numel() for p in self.model.parameters()),
                   "first_loss": self.losses[0][1], "final_loss": self.losses[-1][1], "history": self.history,
                   "device": self.device, "threads": torch.get_num_threads(), "processes": self.world_size,
                   "numerics": numerics.state()}
        self.checkpoint(metrics)
        write_json(os.path.join(self.cfg.out, "train_metrics.json"), metrics)
        return metrics


# ---- the command line ---------------------------------------------------------------------------------
def resume_command(out):
    torchrun = int(os.environ.get("WORLD_SIZE", 1)) > 1
    return "the same torchrun command plus --resume" if torchrun else f"`python train.py --out {out} --resume`"


def summary_line(metrics):
    t, h = metrics["test"], metrics["holdout"]
    held = f"; holdout valid {h['valid']:.3f} (n={h['n']})" if h.get("n") else ""
    return (f"test: rhyme {t['rhyme']:.3f} meaning {t['meaning']:.3f} valid {t['valid']:.3f} (n={t['n']}){held}; "
            f"{metrics['train_seconds']} s")


def parse(argv):
    parser = cli.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_dataclass_flags(parser, TrainConfig, "training")
    cli.add_dataclass_flags(parser, GPTConfig, "model", skip=("vocab_size", "block_size"))
    cli.add_dataclass_flags(parser, WorldConfig, "world", skip=("seed",))
    parser.add_argument("--all", action="store_true", help="train every model of the study (worlds.py) with --seeds seeds")
    parser.add_argument("--seeds", type=int, default=3, help="training seeds per model with --all (default 3)")
    parser.add_argument("--jobs", type=int, default=cli.cores(), help="parallel processes with --all")
    parser.add_argument("--variant", default="main", help="train this model of worlds.py (default: main)")
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    cli.add_threads_flag(parser)
    return parser.parse_args(argv)


def configs(args, variant):
    """(world, model, train) configs of a named model of the study, from the flags."""
    if variant not in worlds.MODELS:
        raise ValueError(f"--variant must be one of {', '.join(worlds.MODELS)}, got {variant!r}")
    w, m, t = worlds.MODELS[variant].overrides
    world_cfg = cli.pick(WorldConfig, args, seed=args.seed, **w)
    return world_cfg, cli.pick(GPTConfig, args, **m), cli.pick(TrainConfig, args, **t)


def main(argv=None):
    args = parse(argv)

    def body():
        cli.set_threads(args.threads, int(os.environ.get("WORLD_SIZE", 1)))  # torchrun: the processes share the cores
        if args.all:
            return train_all(args, argv if argv is not None else sys.argv[1:])
        world_cfg, model_cfg, cfg = configs(args, args.variant)
        metrics = train(world_cfg, model_cfg, cfg, quiet=args.quiet)
        if int(os.environ.get("RANK", 0)) != 0:
            return 0
        if metrics is None:
            raise KeyboardInterrupt
        print(summary_line(metrics))
        for line in metrics["test"]["examples"][:3]:
            print("  ", line)
        return 0

    def interrupted():
        path = os.path.join(args.out, "model.pt")
        if os.path.exists(path):
            try:
                step = load_checkpoint(path)[1]["train_state"].get("step")
                return f"stopped; {path} holds step {step} — continue with {resume_command(args.out)}"
            except CheckpointError:
                pass
        return "stopped before the first checkpoint; nothing was saved"
    return cli.run_main("train.py", body, (CheckpointError, TrainError, WriteError), interrupted)


def train_all(args, argv):
    """Every model of the study with --seeds seeds, as child processes of `train.py --variant`,
    --jobs at a time, each on its share of the cores. A model already trained with the same settings is kept."""
    if not 1 <= args.seeds <= 20 or args.jobs < 1:
        raise ValueError("--seeds must be in [1, 20] and --jobs at least 1")
    passed = cli.strip_flags(argv, ("--all", "--seeds", "--jobs", "--out", "--seed", "--variant", "--threads", "--resume"))
    todo, threads = [], str(cli.share_of_cores(args.threads, args.jobs))
    for name in worlds.MODELS:
        for seed in range(args.seeds):
            out = os.path.dirname(worlds.checkpoint_path(args.out, name, seed))
            state = trained(out, args, name, seed)
            if state != "done":
                resume = ["--resume"] if state == "partial" else []  # other settings: train afresh
                todo.append((name, seed, [sys.executable, os.path.abspath(__file__), *passed, "--variant", name,
                                          "--seed", str(seed), "--out", out, "--threads", threads, "--quiet", *resume]))
    todo.sort(key=lambda job: -configs(args, job[0])[2].max_steps)  # the longest first: the cores stay busy
    print(f"training {len(todo)} of {len(worlds.MODELS) * args.seeds} models ({args.jobs} at a time)", flush=True)
    t0 = time.time()
    with closing(run_commands([(f"{name} seed {seed}", cmd) for name, seed, cmd in todo], args.jobs)) as finished:
        for done in finished:
            if done.returncode == 130:
                raise KeyboardInterrupt
            if done.returncode != 0:  # leaving the loop stops the others, each saving its checkpoint
                raise TrainError(f"{done.label}: {done.last_line().removeprefix('train.py: error: ')}")
            summary = next((x for x in done.output.splitlines() if x.startswith("test: ")), done.last_line())
            print(f"{done.label}: {summary} ({done.seconds:.0f} s)", flush=True)
    print(f"all models trained in {time.time() - t0:.0f} s", flush=True)
    return 0


def trained(out, args, name, seed):
    """'done' when `out` holds a finished checkpoint trained with exactly these settings, 'partial' when
    an unfinished one with these settings (resume it), None otherwise (train afresh)."""
    path = os.path.join(out, "model.pt")
    if not os.path.exists(path):
        return None
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        return None
    world_cfg, model_cfg, cfg = configs(args, name)
    if settings_differ(ckpt, replace(world_cfg, seed=seed), model_cfg, replace(cfg, seed=seed), every_key=True) \
            or numerics.differences(ckpt.get("numerics")):
        return None
    return "done" if ckpt.get("metrics") and os.path.exists(os.path.join(out, "train_metrics.json")) else "partial"


if __name__ == "__main__":
    sys.exit(main())
