"""The same bits on every x86-64 machine with AVX2: the CPU code paths pinned before torch loads.

A float sum depends on the order of its terms, and on a CPU that order is chosen at run time: torch's
own kernels pick their widest vector instructions (AVX-512 where the CPU has them, else AVX2), and MKL,
which does the matrix products, picks a code path by the CPU's maker and model. A training run follows
those last bits, and a small model's route (which position carries the rhyme) can follow the training
run, so two machines of the same kind gave different numbers for the same seed. Pinned here, for every
entry point (each imports this module before torch):

    ATEN_CPU_CAPABILITY=avx2   torch's kernels run their AVX2 versions, also where AVX-512 is there
    MKL_CBWR=AVX2,STRICT       MKL's reproducible mode: on Intel CPUs its AVX2 path in strict mode; AMD
                               CPUs take one path whatever this says. Measured on float32 matrix products
                               of the model's shapes: an emulated Intel AVX2 CPU computes the AMD path's
                               bits in strict mode only (docs/speed.md, "The same bits")

What MKL computes by the CPU's maker in any mode, the project does not ask it for: torch's sqrt, exp, log
and erf on tensors (MKL's vector math: the hooked LayerNorm and the transcoder use 1 / rsqrt, torch's own
kernel), LAPACK's solvers (the probes solve their normal equations by elimination) and float64 matrix
products (the probes multiply in float32).

The thread count is free: every operation the project runs splits its work between threads by output,
never a sum's terms, so 1 thread and 16 give the same bits (the one exception was LayerNorm's fused
weight gradient, so model.py applies LayerNorm's gain and bias as a separate multiply-add).

`PLANNING_NUMERICS=native` opts out (torch's and MKL's fastest paths for this CPU); a checkpoint
records the settings it was made under (`state()`), and analyze.py says when they differ from its own.
"""
import os
import platform
import sys

PINNED = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2,STRICT"}
OPT_OUT = "PLANNING_NUMERICS"


def pinned_requested():
    return os.environ.get(OPT_OUT, "pinned") != "native"


def apply():
    """Set the pinned code paths (unless opted out). Must run before torch computes anything; child
    processes inherit the environment."""
    if os.environ.get(OPT_OUT, "pinned") not in ("pinned", "native"):  # at import: no entry point has begun yet
        print(f"error: {OPT_OUT} must be 'pinned' (the default) or 'native', got {os.environ[OPT_OUT]!r}", file=sys.stderr)
        sys.exit(2)
    if pinned_requested():
        os.environ.update(PINNED)
    else:  # a process started by a pinned one inherits its settings: take them off
        for k, v in PINNED.items():
            if os.environ.get(k) == v:
                del os.environ[k]


def state():
    """The settings this process computes under, as a checkpoint and a report record them."""
    import torch
    return {"numerics": "pinned" if pinned_requested() else "native",
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "mkl_cbwr": os.environ.get("MKL_CBWR", ""), "torch": torch.__version__.split("+")[0],
            "machine": platform.machine()}


def differences(recorded, now=None):
    """[(setting, recorded, now)] where a checkpoint's recorded settings differ from this process's
    (a checkpoint from before settings were recorded differs in every one)."""
    now = now or state()
    recorded = recorded or {}
    return [(k, recorded.get(k), v) for k, v in now.items() if recorded.get(k) != v]


def describe(diffs):
    return ", ".join(f"{k} {a or 'unrecorded'} there, {b} here" for k, a, b in diffs)


apply()
