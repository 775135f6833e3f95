"""DistributedDataParallel for train.py under `torchrun --nproc_per_node=N train.py ...`: N processes, each
taking 1/N of every batch, whose averaged gradients are the whole batch's. With one process every
function here is the identity, so train.py's loop reads the same either way."""
from contextlib import contextmanager
import os

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel


def rank_and_size():
    """(this process's rank, the number of processes): (0, 1) outside torchrun."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


@contextmanager
def process_group():
    """Join torchrun's process group for the run (torchrun set MASTER_ADDR/PORT, RANK and WORLD_SIZE),
    and leave it together at the end: the others wait while rank 0 evaluates, as a process leaving
    early can abort gloo."""
    own = rank_and_size()[1] > 1 and not dist.is_initialized()
    if own:
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    try:
        yield
        if own:
            dist.barrier()
    finally:
        if own:
            dist.destroy_process_group()


def device(world_size):
    """This process's device: its own GPU under torchrun, else the GPU or the CPU."""
    if not torch.cuda.is_available():
        return "cpu"
    if world_size == 1:
        return "cuda"
    d = f"cuda:{os.environ.get('LOCAL_RANK', 0)}"
    torch.cuda.set_device(d)
    return d


def wrap(model, device, world_size):
    """The model as the loop calls it: DDP-wrapped under torchrun (it all-reduces the gradients)."""
    if world_size == 1:
        return model
    return DistributedDataParallel(model, device_ids=[device] if device != "cpu" else None)


def shard_loss(net, x, y, rank, world_size):
    """This process's part of the whole batch's mean loss: its rows' summed loss over the whole
    batch's token count (times world_size, as DDP averages gradients), so the gradient is exactly
    one process's on the whole batch even when padding leaves shards with unequal token counts.
    x, y: the whole batch's inputs and targets (B, T), -1 where no target."""
    rows = slice(rank * len(x) // world_size, (rank + 1) * len(x) // world_size)
    _, loss = net(x[rows], y[rows])
    return loss * (y[rows] != -1).sum() * world_size / (y != -1).sum()


def sync(loss, stopping, world_size):
    """One collective per step: the whole batch's loss (for the log) and whether any process was
    asked to stop, so that every process leaves the loop at the same step."""
    if world_size == 1:
        return loss, stopping
    t = torch.tensor([loss.item(), float(stopping)], dtype=torch.float64, device=loss.device)
    dist.all_reduce(t)
    return t[0] / world_size, t[1].item() > 0
