# %% [markdown]
# # Does a tiny poet plan? A walkthrough in eight steps
#
# Run it top to bottom with `python walkthrough.py`, or open it as a notebook (VS Code and Jupyter read the
# `# %%` cells). Each step is a few lines of the project's own API, a printed result, a **check** that fails
# if the step computed the wrong thing, and a question for you. It uses `out/model.pt` (from
# `python train.py`) or, if there is none, trains a small main model first (about a minute and a half).
# `WALKTHROUGH_MODEL=path` picks another checkpoint; `WALKTHROUGH_QUICK=1` uses fewer prompts (the tests).

# %%
import os

from plumbing import numerics  # noqa: F401  (first: pins the CPU code paths before torch loads)
import torch

from couplet_rules import check_couplet, parse_line1, role_position
from data import world_from_dict
from lexicon import NOUNS
from model import load_checkpoint
from interp.edits import Edit, activations, ending, ending_logits, resid_hooks, write_line2
from interp.probes import ridge_probe
from interp.prompts import Clean, swap_pairs
from interp import shape

torch.manual_seed(0)


def fmt(rate):  # a rate over no prompts is None: nothing to count
    return "–" if rate is None else f"{rate:.2f}"


PATH = os.environ.get("WALKTHROUGH_MODEL", os.path.join("out", "model.pt"))
N = 40 if os.environ.get("WALKTHROUGH_QUICK") else 200
if not os.path.exists(PATH):
    from data import WorldConfig
    from model import GPTConfig
    from train import TrainConfig, train
    PATH = os.path.join("out", "walkthrough", "model.pt")
    if not os.path.exists(PATH):
        print("no checkpoint: training a small main model (600 steps)")
        train(WorldConfig(), GPTConfig(), TrainConfig(max_steps=600, out=os.path.dirname(PATH)), quiet=True)
model, ckpt = load_checkpoint(PATH)
world = world_from_dict(ckpt["world_config"])
test = [c.line1 for c in world.split("test")[:N]]
print(f"{PATH}: {model.cfg.n_layer} layers x {model.cfg.d_model} wide, {len(world.itos)} words")

# %% [markdown]
# ## 1. Write couplets
# The model writes line 2 greedily after `<bos> line 1 <nl>`. `check_couplet` is the world's one judge.

# %%
line2s = write_line2(model, world, test)
for l1, l2 in list(zip(test, line2s))[:4]:
    print(" ".join(l1), "/", " ".join(l2), "  broken:", check_couplet(l1, l2, world.config) or "nothing")
valid = sum(not check_couplet(a, b, world.config) for a, b in zip(test, line2s)) / len(test)
print(f"valid couplets: {valid:.2f} of {len(test)}")

# Check: the batched writer is plain greedy decoding, token by token.
ids = world.prompt_ids(test[0])
for word in line2s[0]:
    with torch.no_grad():
        nxt = model(torch.tensor([ids]))[0][0, -1].argmax().item()
    assert world.itos[nxt] == word, "write_line2 is not greedy decoding"
    ids.append(nxt)
# Question: which rule does a broken couplet break most often, and why might that one be hardest?

# %% [markdown]
# ## 2. Read the plan with a probe
# Is the rhyme family of the future ending *readable* at the line break? A ridge probe on the residual
# stream, fit on training line 1s, scored on test line 1s, beside the same probe on an untrained model.

# %%
from interp.study import random_init

train_l1 = [c.line1 for c in world.split("train")[:4 * N]]
family = sorted({n.family for n in NOUNS.values()})


def family_of(l1):
    return family.index(NOUNS[parse_line1(l1, world.config).rhyme].family)


def at_line_break(m, l1s, layer):
    hook = resid_hooks(m.cfg)[layer]
    acts = activations(m, world, l1s, [[] for _ in l1s], [hook])[hook]
    return torch.stack([a[-1] for a in acts])  # (N, d): the last prompt position is <nl>


y_fit, y_test = torch.tensor([family_of(x) for x in train_l1]), torch.tensor([family_of(x) for x in test])
control = random_init(model, 1)
for layer in range(model.cfg.n_layer + 1):
    acc = ridge_probe(at_line_break(model, train_l1, layer), y_fit, at_line_break(model, test, layer), y_test,
                      len(family))
    ctl = ridge_probe(at_line_break(control, train_l1, layer), y_fit, at_line_break(control, test, layer), y_test,
                      len(family))
    print(f"line break, entering layer {layer}: rhyme family readable {acc:.2f} (untrained model {ctl:.2f})")
# Check: the labels are the rhyme word's family (the last word of line 1 in this world).
assert all(NOUNS[l1[-1]].family == family[k] for l1, k in zip(test, y_test.tolist()))
# Question: "readable" is not "used". What experiment would tell the two apart? (Step 3.)

# %% [markdown]
# ## 3. Patch the line break, and compute the logit difference by hand
# Take pairs of line 1s that differ only in the rhyme word (A: "...find a cake", B: "...find a hat").
# Hold A's own line 2 teacher-forced, copy B's residual stream at some positions into A's run, and ask how
# far the ending's logit difference moves from A's value towards B's:
#
#     LD = logit[e_B] - logit[e_A],   effect = sum(LD_patched - LD_A) / sum(LD_B - LD_A)

# %%
clean = Clean(model, world)
pairs = [(a, b) for a, b in swap_pairs(world, test, "rhyme")
         if clean([a])[0] and clean([b])[0] and ending(clean([a])[0]) != ending(clean([b])[0])
         and ending(clean([a])[0]) in NOUNS and ending(clean([b])[0]) in NOUNS]
assert pairs, "no rhyme-swap pair with two different endings: train the model longer"
A, B = [a for a, _ in pairs], [b for _, b in pairs]
prefix = [clean([a])[0][:-1] for a in A]  # A's line 2 without its ending
ea = torch.tensor([world.stoi[ending(clean([a])[0])] for a in A], dtype=torch.long)
eb = torch.tensor([world.stoi[ending(clean([b])[0])] for b in B], dtype=torch.long)
hooks = resid_hooks(model.cfg)
cache_a, cache_b = (activations(model, world, x, prefix, hooks) for x in (A, B))


def ld(edits=None, line1s=A):
    logits = ending_logits(model, world, line1s, prefix, edits)
    return logits[torch.arange(len(ea)), eb] - logits[torch.arange(len(ea)), ea]


def column(cache, role, layers=range(len(hooks))):
    """Edits that copy `cache`'s residual at `role`, entering every listed layer, into A's runs."""
    return [[Edit(hooks[l], role_position(a, role, world.config), cache[hooks[l]][i][role_position(a, role, world.config)])
             for l in layers] for i, a in enumerate(A)]


ld_a, ld_b = ld(), ld(line1s=B)


def effect(edits):
    return ((ld(edits) - ld_a).sum() / (ld_b - ld_a).sum()).item()


print(f"{len(pairs)} pairs; line break's whole column: effect {effect(column(cache_b, 'nl')):.3f}")
# Check: the rhyme word's whole column from B makes A's run B's run (everything before it is the same),
# so its effect is exactly 1; A's own column is exactly 0.
assert abs(effect(column(cache_b, "rhyme")) - 1) < 1e-3 and abs(effect(column(cache_a, "nl"))) < 1e-6
# Question: the line break's effect is near 0 in the main model. Does that mean nothing is stored there?

# %% [markdown]
# ## 4. Where is the ending read from?
# The same patch at every position of line 1, only for layers >= 1 (the residual later layers read there,
# its token included), shows which position's computed state the ending uses.

# %%
roles = [r for r in ("cue", "rhyme", "nl") if all(role_position(a, r, world.config) is not None for a in A)]
for role in roles:
    print(f"{role:6} layers >= 1: {effect(column(cache_b, role, range(1, len(hooks)))):.3f}")
# Check: a position before the swapped word holds the same residual in A and B, so patching it is a no-op.
assert abs(effect(column(cache_b, "cue"))) < 1e-6
# Question: if the rhyme word's own position carries the ending, is that a plan, or a re-reading of line 1?

# %% [markdown]
# ## 5. The plan this world demands: the shape of line 2
# Line 2 has 8 syllables, so the ending decides the opener's length ("one sunny day ... snake",
# "and then ... rattlesnake"). The opener is predicted *at the line break*. Copy B's line break, entering one
# layer, into A and let the model write freely: does the opener take B's length?

# %%
rows = shape.shape_pairs(world, pairs + swap_pairs(world, test, "cue"), clean)
grid = shape.shape_patching(model, world, rows, ["nl", "seen"])
for l, (nl, verb) in enumerate(zip(grid["nl"], grid["seen"])):
    print(f"entering layer {l}: opener takes the donor's length {fmt(nl['opener']['rate'])} at the line break, "
          f"{fmt(verb['opener']['rate'])} at line 1's verb (n = {nl['opener']['n']})")
# Check: the line break's final residual alone decides line 2's first word: set it to another position's
# final residual and the first word is what the model predicts there.
last = len(hooks) - 1
own = activations(model, world, A, [[] for _ in A], [hooks[last]])[hooks[last]]
bos_edits = [[Edit(hooks[last], len(world.prompt_ids(a)) - 1, own[i][0])] for i, a in enumerate(A)]
with torch.no_grad():
    after_bos = [world.itos[int(model(torch.tensor([world.prompt_ids(a)]))[0][0, 0].argmax())] for a in A]
assert [w[:1] for w in write_line2(model, world, A, bos_edits)] == [[w] for w in after_bos]
# Question: the opener's first word "and" starts openers of 2, 3 and 4 syllables. Where else could the
# length be decided?

# %% [markdown]
# ## 6. "Green" and "rabbit -> habit" at the line break
# Add the direction of another length at the line break; a hit is a *valid couplet* ending in a cell-mate of
# that length. Beside it, a random direction of the same norm.

# %%
fit = [c.line1 for c in world.split("train")[:4 * N]]
fit_l2 = clean(fit)
hook = hooks[-2]  # entering the last layer
fit_acts = torch.stack([a[-1] for a in activations(model, world, fit, [[] for _ in fit], [hook])[hook]])
dirs = shape.length_directions(fit_acts, fit_l2)
targets = shape.green_targets(world, test, line2s, dirs)
for scale in (0.0, 1.0, 2.0):
    r = shape.inject_lengths(model, world, test, targets, lambda h, role: dirs, hook, "nl", scale)
    print(f"scale {scale}: green {fmt(r['inject']['rate'])} (n = {r['inject']['n']}), random {fmt(r['random']['rate'])}")
    if scale == 0:  # Check: a zero edit writes exactly the clean line 2s, so no hit unless the clean one is
        assert r["inject"]["k"] == r["random"]["k"]
# Question: with the opener teacher-forced (`forced=`), the same edit almost never works. What does that
# say about *where* the ending is decided?

# %% [markdown]
# ## 7. One attribution graph
# A cross-layer transcoder (CLT) replaces each MLP by sparse features; with attention and LayerNorm frozen,
# each edge of the graph is exact on this prompt. Trained here briefly (the report's is trained longer).

# %%
from interp.attribution import couplet_graph, graph_scores, prune
from interp.transcoder import CLTConfig, get_clt

clt, info = get_clt(model, world, None, CLTConfig(steps=60 if N < 100 else 300, n_couplets=500))
l1, l2 = next((a, b) for a, b in zip(test, line2s) if b and ending(b) in NOUNS)
graph = couplet_graph(model, clt, world, l1, l2)
node_mask, edge_mask, _ = prune(graph)
replacement, completeness = graph_scores(graph)
print(f"{' '.join(l1)} / {' '.join(l2)}: {graph.n_features} active features, {int(node_mask.sum())} nodes kept; "
      f"replacement score {replacement:.2f}, completeness {completeness:.2f}")
# Check: every target's incoming edges plus its constant input add up to its value exactly.
fs, es, ts, ls = graph.slices()
assert torch.allclose(graph.adjacency[ls].sum(1) + graph.bias[ls], graph.values[ls], atol=1e-3)
# Question: the replacement score says how much of the graph the transcoder explains. What explains the rest?

# %% [markdown]
# ## 8. Where next
# `python analyze.py` runs every step above (and more) on every model and seed, with controls, select and
# report prompts kept apart, and 95% intervals: `out/report/index.html`. `docs/planning.md` explains each
# measurement and the pitfalls it guards against.
