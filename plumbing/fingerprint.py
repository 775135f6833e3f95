"""The fingerprint of this machine's arithmetic: does it compute the bits the committed results were made of?

A short training run of the main model's shape (the same matrix sizes as the real run, 30 steps) and a
few measurements on it, each reduced to a short hash of its exact bits:

    weights     the trained weights (AdamW, attention, LayerNorm, embeddings: every training kernel)
    line2       greedy line 2s of 40 test line 1s (generation with the key/value cache)
    logits      the ending logits with line 2 teacher-forced (the fast forward pass)
    cache       every hook point of one batch (the hooked LayerNorm and attention paths)
    probe       a ridge probe's accuracy on noisy copies (float64 linear algebra)
    transcoder  a cross-layer transcoder trained 40 steps on the model's MLPs
    graph       one attribution graph's adjacency matrix

`python -m plumbing.fingerprint` prints them; `--write` stores them in tests/fingerprint.json, which
tests/test_fingerprint.py checks at 1 and 2 threads. A machine that computes other bits fails that test,
naming the parts that differ, instead of drifting silently from docs/results.md.
"""
from plumbing import numerics  # first: pins the CPU code paths before torch loads
import hashlib
import json
import os
import sys
import tempfile

import torch

FILE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests", "fingerprint.json")


def digest(*tensors):
    h = hashlib.sha256()
    for t in tensors:
        h.update(t.detach().contiguous().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


def compute(threads=1):
    """{part: hash} of the short run and its measurements, computed on `threads` threads."""
    from data import CoupletWorld, WorldConfig
    from interp.attribution import couplet_graph
    from interp.edits import ending_logits, write_line2
    from interp.probes import ridge_probe
    from interp.transcoder import CLTConfig, train_clt
    from model import GPTConfig, load_checkpoint
    from train import TrainConfig, train

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with tempfile.TemporaryDirectory() as out:
            world_cfg = WorldConfig(n_train=3000, n_test=40)
            train(world_cfg, GPTConfig(), TrainConfig(max_steps=30, batch_size=64, eval_every=10 ** 6, eval_n=8,
                                                      ckpt_every=10 ** 6, out=out), quiet=True)
            model, _ = load_checkpoint(os.path.join(out, "model.pt"))
        world = CoupletWorld(world_cfg)
        line1s = [c.line1 for c in world.split("test")]
        couplets = world.split("train")[:64]
        out = {"weights": digest(*[v for _, v in sorted(model.state_dict().items())])}
        line2s = write_line2(model, world, line1s)
        out["line2"] = hashlib.sha256(json.dumps(line2s).encode()).hexdigest()[:16]
        forced = [c.line2[:-1] for c in couplets[:40]]
        out["logits"] = digest(ending_logits(model, world, [c.line1 for c in couplets[:40]], forced))
        _, cache = model.run_with_cache(world.tensor(couplets[:16], model.cfg.block_size))
        out["cache"] = digest(*[cache[k] for k in sorted(cache)])
        x = cache["blocks.2.hook_resid_pre"].flatten(0, 1)  # (16 T, d)
        y = torch.arange(len(x)) % 5
        g = torch.Generator().manual_seed(0)
        out["probe"] = digest(torch.tensor(ridge_probe(x, y, x + 0.01 * torch.randn(x.shape, generator=g), y, 5)))
        clt, _ = train_clt(model, world, CLTConfig(n_features=64, n_couplets=200, steps=40, batch_tokens=256))
        out["transcoder"] = digest(*[v for _, v in sorted(clt.state_dict().items())])
        c = couplets[0]
        out["graph"] = digest(couplet_graph(model, clt, world, c.line1, c.line2).adjacency)
        return {"numerics": numerics.state(), "hashes": out}
    finally:
        torch.set_num_threads(before)


def main(argv):
    result = compute(int(argv[argv.index("--threads") + 1]) if "--threads" in argv else 1)
    print(json.dumps(result, indent=1))
    if "--write" in argv:
        from plumbing.files import write_json
        write_json(FILE, result)
        print(f"written: {FILE}")


if __name__ == "__main__":
    main(sys.argv[1:])
