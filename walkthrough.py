# %% [markdown]
# # Does a tiny poet plan? A walkthrough in nine steps
#
# Run it top to bottom with `python walkthrough.py` (figures are saved to `out/walkthrough/`), or open it as a
# notebook (Jupyter and VS Code read the `# %%` cells; figures then show inline). Each step states what you will
# learn, runs a few lines of the project's own API, draws a figure, makes a **check** that fails if the step
# computed the wrong thing (tests/test_walkthrough.py plants each bug and watches its check fail), and asks a
# question whose answer is one click away.
#
# It uses `out/model.pt` (from `python train.py`) or, if there is none, trains a small main model first (about
# a minute and a half). `WALKTHROUGH_MODEL=path` picks another checkpoint; `WALKTHROUGH_QUICK=1` uses fewer
# prompts. `EXERCISES=my_file.py` runs steps 2, 3, 6 and 7 on *your* solutions to `exercises/stubs.py`, on the
# trained model. On Colab (CPU): clone the repository, `%cd` into it and `%pip install einops tqdm` first.

# %%
import os
from collections import Counter

from plumbing import numerics  # noqa: F401  (first: pins the CPU code paths before torch loads)
import torch

from couplet_rules import check_couplet, parse_line1, role_position
from data import world_from_dict
from exercises import load
from lexicon import NOUNS, FAMILIES
from model import load_checkpoint
from interp import interventions as iv, shape
from interp.edits import Edit, activations, ending, ending_logits, resid_hooks, write_line2
from interp.patching import patching
from interp.directions import word_directions
from interp.prompts import Clean, prompt_sets, swap_pairs, well_formed
from interp.quality import evaluate
from interp.study import random_init
from page.html import bars, curves, heatmap

torch.manual_seed(0)
ex = load()  # your exercise functions with EXERCISES=my_file.py, else exercises/solutions.py
FIGURES = os.path.join("out", "walkthrough")


def show(svg, name):
    """A figure drawn by the report's own SVG code: inline in a notebook, a file when run as a script."""
    try:
        from IPython import get_ipython
        from IPython.display import HTML, display
        if get_ipython() is not None and getattr(get_ipython(), "kernel", None) is not None:
            return display(HTML(svg))
    except ImportError:
        pass
    os.makedirs(FIGURES, exist_ok=True)
    with open(os.path.join(FIGURES, f"{name}.svg" if svg.startswith("<figure><svg") else f"{name}.html"), "w") as f:
        f.write(svg)
    print(f"(figure: {os.path.join(FIGURES, name)})")


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
sets = prompt_sets(world, 4 * N, N, N)  # fit (training line 1s), select and report (held out), disjoint
test = sets.report
print(f"{PATH}: {model.cfg.n_layer} layers x {model.cfg.d_model} wide, {len(world.itos)} words")

# %% [markdown]
# ## 1. Write couplets
# **You will learn** how the model writes line 2 (greedily, one word at a time) and how the world's one judge,
# `check_couplet`, scores it. Every later step judges an edit by the couplet the model writes.

# %%
line2s = write_line2(model, world, test)
broken = [check_couplet(l1, l2, world.config) for l1, l2 in zip(test, line2s)]
for l1, l2, b in list(zip(test, line2s, broken))[:4]:
    print(" ".join(l1), "/", " ".join(l2), "  broken:", b or "nothing")
valid = sum(not b for b in broken) / len(test)
tally = Counter(rule for b in broken for rule in b)
print(f"valid couplets: {valid:.2f} of {len(test)}; rules broken: {dict(tally) or 'none'}")
show(bars([("valid", valid, None)] + [(f"breaks {r}", k / len(test), None) for r, k in tally.most_common()],
          "Step 1: what the model writes", "share of report line 1s", "Each broken couplet counts once per rule it "
          "breaks."), "step1_couplets")
# Check: the batched writer is plain greedy decoding, token by token.
ids = world.prompt_ids(test[0])
for word in line2s[0]:
    with torch.no_grad():
        nxt = model(torch.tensor([ids]))[0][0, -1].argmax().item()
    assert world.itos[nxt] == word, "write_line2 is not greedy decoding"
    ids.append(nxt)
# Question: which rule does a broken couplet break most often, and why might that one be hardest?

# %% [markdown]
# <details><summary>Answer</summary>
#
# Read the tally above. In the main model the rhyme is broken most, often by repeating line 1's rhyme word: the
# ending must be the intersection of two facts read from two places in line 1, and the word that rhymes *most*
# is the rhyme word itself, which the grammar forbids as an ending.
# </details>

# %% [markdown]
# ## 2. Read the plan with a probe, and compare it with what needs no plan
# **You will learn** that a linear probe shows what is *readable*, and that readable needs baselines: an untrained
# model, shuffled labels, chance, and for the ending word the cell's favourite ending. Your `ridge_probe_accuracy`
# (exercise 2) does the fitting.

# %%
def family_of(l1):
    return FAMILIES.index(NOUNS[parse_line1(l1, world.config).rhyme].family)


def at_line_break(m, l1s, layer):
    hook = resid_hooks(m.cfg)[layer]
    acts = activations(m, world, l1s, [[] for _ in l1s], [hook])[hook]
    return torch.stack([a[-1] for a in acts])  # (N, d): the last prompt position is <nl>


y_fit, y_test = torch.tensor([family_of(x) for x in sets.fit]), torch.tensor([family_of(x) for x in test])
shuffled = y_fit[torch.randperm(len(y_fit), generator=torch.Generator().manual_seed(0))]
control = random_init(model, 1)
layers = list(range(model.cfg.n_layer + 1))
acc, ctl, shuf = [], [], []
for layer in layers:
    xf, xt = at_line_break(model, sets.fit, layer), at_line_break(model, test, layer)
    acc.append(ex.ridge_probe_accuracy(xf, y_fit, xt, y_test, len(FAMILIES)))
    shuf.append(ex.ridge_probe_accuracy(xf, shuffled, xt, y_test, len(FAMILIES)))
    ctl.append(ex.ridge_probe_accuracy(at_line_break(control, sets.fit, layer), y_fit, at_line_break(control, test, layer),
                                       y_test, len(FAMILIES)))
chance = 1 / len(FAMILIES)
names = [f"L{l}" for l in layers[:-1]] + [f"L{layers[-1]} (final)"]
for k, name in enumerate(names):
    print(f"line break, entering {name}: rhyme family {acc[k]:.2f} (untrained model {ctl[k]:.2f}, shuffled labels "
          f"{shuf[k]:.2f}, chance {chance:.2f})")
show(curves(names, [("trained", "#2b6cb0", acc), ("untrained model", "#999", ctl), ("shuffled labels", "#c05621", shuf)],
            "Step 2: the rhyme family, read at the line break", "residual entering layer", "probe accuracy",
            f"Chance is {chance:.2f}. 'final' is the final residual: the next-token prediction."), "step2_probe")
# The ending *word* is what a plan would name; its baseline is the cell's favourite ending (greedy endings are
# nearly a function of the (meaning, rhyme) cell, so reading the cell alone scores that much).
from interp.probes import cell_favourite_rate, labels
fit_l2, words = Clean(model, world)(sets.fit), sorted(NOUNS)
yw = labels(world, sets.fit, fit_l2, "ending"), labels(world, test, line2s, "ending")
keep = [[i for i, v in enumerate(y) if v is not None] for y in yw]
xf, xt = at_line_break(model, sets.fit, layers[-1]), at_line_break(model, test, layers[-1])
ending_acc = ex.ridge_probe_accuracy(xf[keep[0]], torch.tensor([yw[0][i] for i in keep[0]]), xt[keep[1]],
                                     torch.tensor([yw[1][i] for i in keep[1]]), len(words))
favourite = cell_favourite_rate(world, sets.fit, fit_l2, test, line2s)["rate"]
print(f"ending word at the line break: probe {ending_acc:.2f}, the cell's favourite {favourite:.2f}, "
      f"chance {1 / len(words):.3f}")
# Check: a probe trained on real labels beats the same probe on shuffled labels, which stays near chance.
assert max(acc) > max(shuf) + 0.2 and max(shuf) < chance + 0.2, "the probe does not learn from its labels"
# Question: why does an *untrained* model's line break let a probe read the rhyme family well above chance?

# %% [markdown]
# <details><summary>Answer</summary>
#
# Attention in a random model still averages the earlier tokens' embeddings into the line break's residual, with
# weights that depend on position. Line 1's rhyme word sits at a position that sets its weight, and its embedding
# is a fixed random vector per word, so a linear probe can read which word (and so which family) was there.
# Readable is not computed: that is why the trained probe must beat the untrained one, and why patching (step 3)
# decides what is *used*. And the ending word read no better than the cell's favourite means the line break holds
# the cell, not a choice of word.
# </details>

# %% [markdown]
# ## 3. Patch the line break, and compute the logit difference by hand
# **You will learn** activation patching with a normalized logit difference. Take pairs of line 1s that differ only
# in the rhyme word (A: "...find a cake", B: "...find a hat"). Hold A's own line 2 teacher-forced, copy B's residual
# stream at some positions into A's run, and ask how far the ending's logit difference moves from A's value
# towards B's:
#
#     LD = logit[e_B] - logit[e_A],   effect = sum(LD_patched - LD_A) / sum(LD_B - LD_A)
#
# Your `normalized_ld_effect` (exercise 1) pools the pairs.

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
    rows = torch.arange(len(ea))
    return logits[rows, eb] - logits[rows, ea]


def column(cache, role, layers=range(len(hooks))):
    """Edits that copy `cache`'s residual at `role`, entering every listed layer, into A's runs."""
    return [[Edit(hooks[l], role_position(a, role, world.config), cache[hooks[l]][i][role_position(a, role, world.config)])
             for l in layers] for i, a in enumerate(A)]


ld_a, ld_b = ld(), ld(line1s=B)
# Check: B's own prompt prefers B's ending (the sign of the LD: with it flipped every effect below is nonsense).
assert (ld_b > ld_a).float().mean() > 0.9, "the logit difference has the wrong sign: B's run should prefer e_B"


def effect(edits):
    return ex.normalized_ld_effect(ld_a, ld_b, ld(edits))


nl_effect = effect(column(cache_b, "nl"))
rhyme_from1 = effect(column(cache_b, "rhyme", range(1, len(hooks))))  # a partial effect: pairs differ here
print(f"{len(pairs)} pairs; the line break's whole column: effect {nl_effect:.3f}; the rhyme word's, layers >= 1: "
      f"{rhyme_from1:.3f}")
project = patching(model, world, pairs, clean, columns=["rhyme"], single=False, free=False)["column_from1"]["rhyme"]["value"]
show(bars([(f"pair {i}", float((ld_b[i] - ld_a[i]) / max(ld_b.abs().max(), 1e-6)), None) for i in range(min(12, len(A)))],
          "Step 3: B's run prefers B's ending", "LD_B - LD_A (scaled to the largest)", "Each bar is one pair: how much "
          "more B's prompt prefers e_B than A's does. The effect divides the pooled patched change by their sum."),
     "step3_gaps")
# Checks: the rhyme word's column from B makes A's run B's run (effect 1) and A's own column changes nothing (0);
# your pooled effect is the project's patching number where the pairs' effects differ (a mean of per-pair ratios
# is not).
assert abs(effect(column(cache_b, "rhyme")) - 1) < 1e-3 and abs(effect(column(cache_a, "nl"))) < 1e-6
assert abs(rhyme_from1 - project) < 1e-4, f"the effect ({rhyme_from1:.4f}) is not the pooled one ({project:.4f})"
# Question: the line break's effect is near 0 in the main model. Does that mean nothing is stored there?

# %% [markdown]
# <details><summary>Answer</summary>
#
# No: it means the *ending's choice between e_A and e_B*, with line 2's words held fixed, does not read the line
# break. The line break can still store something that acts through the words line 2 writes before the ending —
# its shape (step 5). Teacher forcing hides any route through emitted words.
# </details>

# %% [markdown]
# ## 4. Where is the ending read from?
# **You will learn** to find the positions a computation reads, and to tell a measured zero from a no-op. The same
# patch at every position of line 1, for layers >= 1 (the state later layers read there, its token included).

# %%
roles = [r for r in ("seen", "cue", "rhyme", "nl") if all(role_position(a, r, world.config) is not None for a in A)]
from1 = {r: effect(column(cache_b, r, range(1, len(hooks)))) for r in roles}
whole = {r: effect(column(cache_b, r)) for r in roles}
for r in roles:
    print(f"{r:6} layers >= 1: {from1[r]:.3f}   every layer (its embedding too): {whole[r]:.3f}")
show(heatmap([[from1[r] for r in roles], [whole[r] for r in roles]], ["layers >= 1", "every layer"], roles,
             "Step 4: which position's state the ending reads (rhyme swaps)", "position in line 1", "patched",
             "A cell is the effect of copying B's residual at that position into A's run."), "step4_positions")
# Checks: before the swapped word A's and B's residuals are identical (a patch there is a no-op, 0 by construction,
# not a measurement); at the swapped word they differ.
i_r = role_position(A[0], "rhyme", world.config)
assert all(torch.equal(cache_a[h][0][p], cache_b[h][0][p]) for h in hooks for p in range(i_r))
assert not torch.equal(cache_a[hooks[0]][0][i_r], cache_b[hooks[0]][0][i_r]), "the patch misses the swapped word"
# Question: the rhyme word's state after layer 0 carries most but not all of the effect (below the 0.8 bar the
# report uses for "carries"). Where is the rest?

# %% [markdown]
# <details><summary>Answer</summary>
#
# In the token itself: patched from layer 0 on (its embedding too) the rhyme word's column carries everything
# (effect 1, the check in step 3), so the difference between the two rows is what later positions read directly
# from the rhyme word's *embedding* at layer 0 (and at positions after it, which this one-position patch leaves as
# A's). Re-reading line 1, not a stored plan.
# </details>

# %% [markdown]
# ## 5. The plan this world demands: the shape of line 2
# **You will learn** to judge a patch by the couplet written, to choose a layer on *select* pairs and report on
# other pairs, and to put a control beside it that could fail. Line 2 has 8 syllables, so the ending decides the
# opener's length ("one sunny day ... snake", "and then ... rattlesnake"), and the opener is predicted *at the line
# break*. Copy B's line break (one layer) into A, where B's ending has another of A's cell's lengths, and let the
# model write: is the couplet valid, at B's length?

# %%
(sel, _), (rep, same) = (shape.length_pairs(world, s, clean, seed=k) for k, s in ((1, sets.select), (0, sets.report)))
searchable = shape.searchable_layers(model.cfg)
layer = shape.choose_layer(shape.shape_patching(model, world, sel, ["nl"], searchable), searchable)
grid = shape.shape_patching(model, world, rep, ["nl"])["nl"]
site = grid[layer]["donor_valid"]
ctl_row = shape.shape_patching(model, world, same, ["nl"], [layer], "other")["nl"][0]
positive = shape.forced_opener(model, world, rep)["donor_valid"]
final = grid[-1]["donor_valid"]
print(f"layer chosen on {len(sel)} select pairs: entering L{layer}; on {len(rep)} report pairs: valid at the donor's "
      f"length {fmt(site['rate'])}; control (same-length donor) {fmt(ctl_row['other_valid']['rate'])}; positive "
      f"control (B's opener forced) {fmt(positive['rate'])}; the final residual (the next-token prediction, not a "
      f"store) {fmt(final['rate'])}")
show(bars([("the line break, L%d" % layer, site["rate"], site["ci"]),
           ("control: same-length donor", ctl_row["other_valid"]["rate"], ctl_row["other_valid"]["ci"]),
           ("positive control: opener forced", positive["rate"], positive["ci"]),
           ("final residual (next token)", final["rate"], final["ci"])],
          "Step 5: valid couplets at the donor's length", "share of report pairs (95% interval)",
          "Chosen on select pairs, measured on report pairs."), "step5_shape")
# Checks: the meter holds in every valid clean couplet (an opener's length is counted in syllables); the chosen
# layer is one that can store something (not the embedding, where the patch is a no-op, nor the final residual);
# the patch and its control both change the residual.
for l1, l2, b in zip(test, line2s, broken):
    if not b:
        assert shape.opener_length(l2) + 3 + shape.length_of(ending(l2)) == world.config.line2_syllables
assert 0 < layer < model.cfg.n_layer and grid[0]["noop_fraction"] == 1.0
assert grid[layer]["noop_fraction"] == 0.0 and ctl_row["noop_fraction"] == 0.0
# Question: why is the control a donor of the *same* length, and not line 1's verb (an earlier position)?

# %% [markdown]
# <details><summary>Answer</summary>
#
# Every position before the swapped word holds the same residual in A and B (step 4), so patching line 1's verb
# is a no-op: its "0" could not have come out otherwise. A donor of the same length is as foreign a residual at the
# same place, but carries no other length: a valid couplet at another length there is what disruption alone writes.
# </details>

# %% [markdown]
# ## 6. "Green" and "rabbit -> habit" at the line break, and your injection on the real model
# **You will learn** steering by adding a direction, beside a random direction of the same norm, at every scale,
# and with the opener teacher-forced (the direct effect). Green adds another length's direction; a hit is a *valid
# couplet* ending in a cell-mate of that length. Habit subtracts the planned length's direction; a hit is a valid
# couplet ending in the model's own runner-up.

# %%
hook = hooks[layer]
fit_acts = torch.stack([a[-1] for a in activations(model, world, sets.fit, [[] for _ in sets.fit], [hook])[hook]])
dirs = shape.length_directions(fit_acts, fit_l2)
# Check: a length direction is the mean residual of prompts whose ending has that many syllables, minus the mean.
lengths = [shape.length_of(ending(x)) if x and ending(x) in NOUNS else None for x in fit_l2]
known = [i for i, n in enumerate(lengths) if n is not None]
for n, d in dirs.items():
    assert torch.allclose(d, fit_acts[[i for i in known if lengths[i] == n]].mean(0) - fit_acts[known].mean(0), atol=1e-5)
targets = shape.green_targets(world, test, line2s, dirs)
runners = iv.runner_ups(model, world, test, line2s)
openers = [x[:len(x) - 4] if x else [] for x in line2s]
scales = (0.0, 1.0, 2.0, 4.0, 8.0)
rows = {k: [] for k in ("green", "random", "green, opener forced", "habit", "habit random")}
for s in scales:
    g = shape.inject_lengths(model, world, test, targets, lambda h, r: dirs, hook, "nl", s)
    gf = shape.inject_lengths(model, world, test, targets, lambda h, r: dirs, hook, "nl", s, forced=openers)
    hb = shape.suppress_length(model, world, test, line2s, runners, lambda h, r: dirs, hook, "nl", s)
    for k, v in zip(rows, (g["inject"], g["random"], gf["inject"], hb["suppress"], hb["random"])):
        rows[k].append(v["rate"])
    print(f"scale {s}: green {fmt(g['inject']['rate'])} (n = {g['inject']['n']}), random {fmt(g['random']['rate'])}, "
          f"opener forced {fmt(gf['inject']['rate'])}; habit {fmt(hb['suppress']['rate'])} (n = {hb['suppress']['n']}), "
          f"random {fmt(hb['random']['rate'])}")
    if s == 0:  # Check: a zero edit is a no-op, and the measure knows it
        assert g["inject"]["noop_fraction"] == 1.0 and g["inject"]["k"] == 0
show(curves(scales, [("green", "#2b6cb0", rows["green"]), ("random", "#999", rows["random"]),
                     ("green, opener forced", "#c05621", rows["green, opener forced"]),
                     ("habit", "#2f855a", rows["habit"]), ("habit random", "#bbb", rows["habit random"])],
            "Step 6: adding a length direction at the line break", "scale", "valid couplets that hit",
            "A random direction of the same norm is the control at every scale."), "step6_green")
# Your add_only_with_control (exercise 4), on the real model: inject a word of another rhyme (same meaning) at line
# 1's rhyme word entering layer 1, beside a random direction of the same norm; it must give the project's rates.
site_w = iv.Site(1, "rhyme")
fit_at = torch.stack([a[role_position(l1, "rhyme", world.config)] for a, l1 in zip(
    activations(model, world, sets.fit, [[] for _ in sets.fit], [site_w.hook()])[site_w.hook()], sets.fit)])
wdirs = word_directions(fit_at, [ending(x) if well_formed(x) else None for x in fit_l2])[0]
tgt = iv.injection_targets(world, test, [ending(x) if well_formed(x) else None for x in line2s], wdirs, "other_rhyme")
l1w, tw = [test[i] for i, t in enumerate(tgt) if t], [t for t in tgt if t]
mine = ex.add_only_with_control(lambda l1s, vs: write_line2(model, world, l1s, iv.at_site(world, site_w, l1s, vs)),
                                l1w, tw, [wdirs[t] * 4.0 for t in tw])
theirs = iv.add_only(model, world, site_w, l1w, tw, wdirs, scales=(4.0,))["4.0"]
print(f"inject a word of another rhyme at L1 rhyme (x4): yours {mine[0]:.2f} / random {mine[1]:.2f}; the project's "
      f"{theirs['inject']['rate']:.2f} / {theirs['random']['rate']:.2f} (n = {len(tw)})")
assert abs(mine[0] - theirs["inject"]["rate"]) < 1e-9 and abs(mine[1] - theirs["random"]["rate"]) < 1e-9
# Question: with the opener teacher-forced the same edit almost never works. What does that say about *where* the
# ending is decided?

# %% [markdown]
# <details><summary>Answer</summary>
#
# The edit acts on the opener the model writes, and the ending follows the opener: the plan is the line's shape,
# carried by the words written (the mediated effect), as "rabbit" shaped "His hunger was like a starving".
# </details>

# %% [markdown]
# ## 7. One attribution graph
# **You will learn** how a cross-layer transcoder (CLT) turns one forward pass into a graph of features whose edges
# are exact: with attention and LayerNorm frozen, the local replacement model is affine in the features, so each
# edge is a feature's share of its target. Your `feature_edge_to_logit` (exercise 5) computes one edge by hand.

# %%
from interp.attribution import couplet_graph, graph_scores, kept_graph, prune, record, replacement_forward
from interp.transcoder import CLTConfig, get_clt
from page.viewer import graph_viewer

clt, info = get_clt(model, world, None, CLTConfig(steps=60 if N < 100 else 300, n_couplets=500))
l1, l2 = next((a, b) for a, b, k in zip(test, line2s, broken) if not k)
graph = couplet_graph(model, clt, world, l1, l2)
node_mask, edge_mask, node_inf = prune(graph)
replacement, completeness = graph_scores(graph)
print(f"{' '.join(l1)} / {' '.join(l2)}: {graph.n_features} active features, {int(node_mask.sum())} nodes kept; "
      f"replacement score {replacement:.2f}, completeness {completeness:.2f}")
show(graph_viewer(kept_graph(graph, node_mask, edge_mask, node_inf, world.decode(graph.tokens.tolist()),
                             [world.itos[i] for i in graph.logit_ids.tolist()], {}), "walkthrough-graph",
                  "Step 7: the pruned attribution graph (hover a node, click to follow its edges)"), "step7_graph")
# Checks: every target's incoming edges plus its constant input add up to its value exactly; your edge is the graph's.
fs, es, ts, ls = graph.slices()
assert torch.allclose(graph.adjacency[ls].sum(1) + graph.bias[ls], graph.values[ls], atol=1e-3)
ctx = record(model, clt, graph.tokens)
k = graph.adjacency[ls.start, fs].abs().argmax().item()  # the strongest feature into the top logit
f_layer, f_pos, f_id = graph.features[k].tolist()
with torch.no_grad():
    mine = ex.feature_edge_to_logit(lambda a: replacement_forward(model, clt, ctx, ctx.embed, a, ctx.errors)[0],
                                    ctx.acts.clone(), f_layer, f_pos, f_id, int(graph.logit_ids[0]), graph.target_pos)
print(f"the strongest edge into '{world.itos[int(graph.logit_ids[0])]}': yours {mine:.4f}, the graph's "
      f"{graph.adjacency[ls.start, k].item():.4f}")
assert abs(mine - graph.adjacency[ls.start, k].item()) < 1e-3 * max(1.0, abs(mine))
# Question: the replacement score says how much of the graph the transcoder explains. What explains the rest?

# %% [markdown]
# <details><summary>Answer</summary>
#
# The error nodes: each MLP's true output minus the transcoder's reconstruction, kept so the replacement model is
# exact on this prompt. Influence that flows through them is computation the dictionary does not name.
# </details>

# %% [markdown]
# ## 8. Find one head of the circuit by hand
# **You will learn** path patching at head level. The position that predicts the ending reads line 1 through
# attention: copy *one head's* output (`hook_z`) there from B's run into A's, and measure the effect as in step 3.
# The head that moves it most is one box of the circuit; its attention pattern says what it reads.

# %%
zs = [f"blocks.{l}.attn.hook_z" for l in range(model.cfg.n_layer)]
za, zb = (activations(model, world, x, prefix, zs) for x in (A, B))
last = [len(world.prompt_ids(a)) + len(p) - 1 for a, p in zip(A, prefix)]  # the position that predicts the ending


def head_edits(layer, h):
    """Set head h of `layer` at the ending's position to B's output there; every other head stays A's."""
    out = []
    for i, p in enumerate(last):
        z = za[zs[layer]][i][p].clone()  # (H, D)
        z[h] = zb[zs[layer]][i][p][h]
        out.append([Edit(zs[layer], p, z)])
    return out


H = model.cfg.n_head
per_head = torch.tensor([[effect(head_edits(l, h)) for h in range(H)] for l in range(model.cfg.n_layer)])
best_l, best_h = divmod(int(per_head.argmax()), H)
patterns = activations(model, world, A, prefix, [f"blocks.{best_l}.attn.hook_pattern"])[f"blocks.{best_l}.attn.hook_pattern"]
from couplet_rules import roles as roles_of
reads = Counter()
for i, (a, p) in enumerate(zip(A, prefix)):
    names = roles_of(a, p + ["?"], world.config)[:-1]
    row = patterns[i][best_h][last[i]]  # (S,): where head best_h looks from the ending's position
    for j, w in enumerate(row.tolist()):
        reads[names[j]] += w / len(A)
top_role, mass = reads.most_common(1)[0]
print(f"per head (rows: layers): {per_head.numpy().round(2).tolist()}")
print(f"the strongest head is L{best_l}H{best_h} (effect {per_head[best_l, best_h]:.2f}); from the ending's position it "
      f"attends to {top_role} ({mass:.2f} of its attention)")
show(heatmap(per_head.tolist(), [f"L{l}" for l in range(model.cfg.n_layer)], [f"H{h}" for h in range(H)],
             "Step 8: one head", "head", "layer",
             f"Rhyme swaps, n = {len(A)} pairs: the effect of copying that head's output alone from B's run, at the "
             f"position that predicts the ending."),
     "step8_heads")
# Check: the head you name is the one that moves the ending most.
chosen = (best_l, best_h)
assert per_head[chosen].item() == per_head.max().item(), "that is not the strongest head"
# Question: if the rhyme word were stored at the line break (as in the `barrier` model), which position would
# this head attend to?

# %% [markdown]
# <details><summary>Answer</summary>
#
# The line break: a head that carries the rhyme to the ending reads wherever the rhyme is kept. In this model it
# reads line 1's rhyme word itself — the ending re-reads line 1 — and the report's circuit section shows, model by
# model, which heads do it and whether they attend to the line break where the world forces a plan there.
# </details>

# %% [markdown]
# ## 9. Where next
# **You will learn** where each step lives in the full study. `python analyze.py` runs every step above (and more)
# on every model and seed, with controls, select and report prompts kept apart, and 95% intervals:
# `out/report/index.html`. `docs/planning.md` explains each measurement and the pitfalls it guards against.

# %%
quality = evaluate(model, world, "test", N)
print(f"the study's quality number on the first {N} test line 1s: valid {quality['valid']:.2f}; step 1's on the "
      f"report line 1s: {valid:.2f}")
# Check: the study's evaluation and step 1 judge with the same rules: on the same line 1s they agree exactly.
same_l1 = [c.line1 for c in world.split("test")[:N]]
assert abs(quality["valid"] - sum(not check_couplet(a, b, world.config)
                                  for a, b in zip(same_l1, write_line2(model, world, same_l1))) / N) < 1e-12
# Question: which of the steps above would you trust least on one seed, and what would you run to be sure?

# %% [markdown]
# <details><summary>Answer</summary>
#
# The ones with small n (step 5's pairs, step 6's eligible prompts) and the ones chosen by a maximum (the layer of
# step 5, the head of step 8): choose on select prompts, report on others, and run the other seeds
# (`python train.py --all`, then `python analyze.py`), as the report does.
# </details>
