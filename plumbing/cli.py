"""What every entry point (train.py, analyze.py, worlds.py, bench.py) decides the same way: flags
from config dataclasses, the thread count, and how a failure ends — one line on stderr and an exit
code (2: a bad flag or input, 1: a run that could not go on, 130: interrupted), never a traceback.
"""
import argparse
from contextlib import contextmanager
from dataclasses import fields
import os
import signal
import sys
from types import SimpleNamespace

import torch

# Threads: by default each process takes its share of the cores: all of them for a lone run, one each
# when `--all`, `--jobs` or the search run one process per core. Measured on a 2-core machine (README,
# "Speed"): a lone training run is 1.8x faster on 2 threads than on 1, but two processes each running 2
# threads on 2 cores ran many times slower than one thread each.
def cores():
    return os.cpu_count() or 1


def share_of_cores(requested, processes=1):
    """The thread count of one of `processes` processes: `requested` when given, else its share of the cores."""
    return requested or max(1, cores() // max(1, processes))


class ArgumentParser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2, no usage dump
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def add_dataclass_flags(parser, cls, group_name, skip=()):
    """A --flag for every field of a config dataclass (booleans get --x / --no-x)."""
    group = parser.add_argument_group(group_name)
    for f in fields(cls):
        if f.name in skip:
            continue
        flag = "--" + f.name.replace("_", "-")
        if f.type in (bool, "bool"):
            group.add_argument(flag, action=argparse.BooleanOptionalAction, default=f.default,
                               help=f"(default: {f.default})")
        else:
            typ = {"int": int, "float": float, "str": str}.get(f.type, f.type)
            group.add_argument(flag, type=typ, default=f.default, help="(default: %(default)s)")


def flags(**settings):
    """Settings as the command-line flags add_dataclass_flags reads (booleans as --x / --no-x)."""
    out = []
    for k, v in settings.items():
        flag = "--" + k.replace("_", "-")
        out += ([flag] if v else ["--no-" + flag[2:]]) if isinstance(v, bool) else [flag, str(v)]
    return out


def strip_flags(argv, names):
    """argv without the given flags (and their values; --all and --resume take none)."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        flag = a.split("=")[0]
        if flag in names:
            skip = "=" not in a and flag not in ("--all", "--resume")
            continue
        out.append(a)
    return out


@contextmanager
def stop_signals():
    """For the block's duration, Ctrl-C and SIGTERM set `.requested` instead of stopping the process,
    so that a loop can finish its step, save, and leave."""
    stop = SimpleNamespace(requested=False)
    handlers = {sig: signal.signal(sig, lambda *_: setattr(stop, "requested", True))
                for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)


def pick(cls, args, **override):
    """The config dataclass `cls` from the parsed flags (fields it has), validated when it can be."""
    cfg = cls(**{**{f.name: getattr(args, f.name) for f in fields(cls) if hasattr(args, f.name)}, **override})
    return cfg.validate() if hasattr(cfg, "validate") else cfg


def add_threads_flag(parser):
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads per process (default: the cores shared among the processes; README, Speed)")


def set_threads(n, processes=1):
    """The single place the thread count is set: n, or this process's share of the cores."""
    if n is not None and not 1 <= n <= 256:
        raise ValueError(f"--threads must be in [1, 256], got {n}")
    torch.set_num_threads(share_of_cores(n, processes))


def one_line(exc):
    """The first line of an exception's message."""
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def run_main(prog, body, known_errors=(), on_interrupt=None):
    """Run body() and turn every way it can end into an exit code with at most one line on stderr.
    ValueError / OverflowError are bad input (2); `known_errors` and OSError are runs that could not
    go on (1); Ctrl-C and SIGTERM are 130 after `on_interrupt()` says what was kept."""
    try:
        return body() or 0
    except KeyboardInterrupt:
        msg = on_interrupt() if on_interrupt else "interrupted"
        print(f"{prog}: {msg}", file=sys.stderr)
        return 130
    except (ValueError, OverflowError) as e:
        print(f"{prog}: error: {one_line(e)}", file=sys.stderr)
        return 2
    except MemoryError:
        print(f"{prog}: error: out of memory; use a smaller model or fewer prompts", file=sys.stderr)
        return 1
    except (OSError, *known_errors) as e:
        print(f"{prog}: error: {one_line(e)}", file=sys.stderr)
        return 1
