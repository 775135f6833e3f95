"""Solutions to exercises/stubs.py, each followed by the answers to the questions its stub asks.

The checker (tests/test_exercises.py) runs these unless EXERCISES names another file, and compares them with
the project's own functions: each solution is the project's computation written out in full, so you can read
it here instead of following imports.
"""
import torch

from interp.directions import random_like


# ==== Exercise 1 ===========================================================================================
def normalized_ld_effect(ld_a, ld_b, ld_patched):
    gap = (ld_b - ld_a).sum()  # pooled over pairs: each pair weighs as much as B moves it
    if gap <= 0:
        return None
    return ((ld_patched - ld_a).sum() / gap).item()

# ANSWERS 1
# Q1. A mean of per-pair ratios gives every pair the same weight whatever its gap. A pair whose B barely
#     differs from A (ld_b - ld_a = 0.001) turns a patched LD change of 0.5 into a ratio of 500 and drowns
#     every other pair (and a pair with a small negative gap flips its sign). Pooling weighs each pair by its
#     gap: the effect is "the share of the whole LD change that B causes which the patch causes", and pairs
#     where B really changes the preference count most. On the checker's five pairs: pooled 0.727, mean
#     of ratios 100.3.
# Q2. Flipped in all three runs: numerator and denominator both change sign and the effect is the same: it
#     does not depend on which ending is called B, only on one definition being used throughout. Flipped in
#     one run only, the number means nothing: with -ld_patched a patch that does nothing no longer gives 0
#     (it gives -2 sum(ld_a) / gap). Flipping one *difference* (ld_a - ld_patched, or ld_a - ld_b) gives
#     minus the effect: a patch that moves A toward B would read as moving it away.
# Q3. The gap sets what "toward B" means. If B does not, over all pairs, move the LD toward e_B, dividing
#     by a negative gap flips the sign of every effect and by a gap near 0 blows it up: there is nothing to
#     normalise by. The project returns None there (interp/stats.py `ratio_of_sums`), so no number that
#     looks like an effect is reported.


# ==== Exercise 2 ===========================================================================================
def ridge_probe_accuracy(x_fit, y_fit, x_test, y_test, n_classes, lam=1.0):
    mu, sd = x_fit.mean(0), x_fit.std(0) + 1e-6  # the fit set's statistics, for both sets; unbiased std
    a = torch.cat([(x_fit - mu) / sd, torch.ones(len(x_fit), 1)], 1).double()    # (N_fit, d + 1)
    b = torch.cat([(x_test - mu) / sd, torch.ones(len(x_test), 1)], 1).double()  # (N_test, d + 1)
    y = torch.nn.functional.one_hot(y_fit, n_classes).double()                   # (N_fit, n_classes)
    w = torch.linalg.solve(a.T @ a + lam * torch.eye(a.shape[1], dtype=torch.float64), a.T @ y)
    return (b @ w).argmax(1).eq(y_test).double().mean().item()

# ANSWERS 2
# Q1. The penalty lam * |w|^2 charges every weight alike, but the weight a feature needs scales with one
#     over its units: a feature in units 1000 times smaller needs a weight 1000 times larger, which the
#     penalty forbids, so the probe ignores it for its units, not for what it carries. Standardised, every
#     weight is "per standard deviation" and the penalty treats features alike (residual-stream dimensions
#     do differ in scale). The checker's data has such a feature: without standardisation the predictions
#     change on about a fifth of its test rows.
# Q2. z = (x - mu) / sd is an invertible affine change of each feature; with a bias column the set of
#     linear predictors is the same before and after. With lam = 0, least squares picks the best predictor
#     of that set, whatever its coordinates: the same predictions. Only the penalty depends on the
#     coordinates, so only with lam > 0 does standardising matter.
# Q3. Barely. The biased std is sqrt((N-1)/N) times the unbiased one, so every standardised feature is
#     sqrt(N/(N-1)) times larger, which for the feature weights is ridge with lam * (N-1)/N (not exactly:
#     the bias column is not rescaled). With 800 fit prompts that is 0.1% of lam. No prediction of the
#     checker's rows (chosen away from ties) changes, and the checker accepts either; the project uses
#     torch's default, the unbiased one. What does matter is standardising the test set with the *fit*
#     set's mu and sd: its own statistics would move it (the checker's test set is shifted, to catch that).
# Q4. With d + 1 = 129 weights per class and a few hundred rows (40 at least for a rare role), least
#     squares can fit the fit set's labels with weights that memorise it, and A^T A is singular whenever a
#     dimension is constant on the fit set or N_fit < d + 1. lam * I makes the system solvable and shrinks
#     what the data does not support, so test accuracy measures what is linearly readable rather than what
#     can be memorised. The +1e-6 keeps a feature constant on the fit set (sd = 0) from a division by zero:
#     it is 0 after centring, and stays 0.


# ==== Exercise 3 ===========================================================================================
def contrastive(directions, cell_of):
    cells = {}
    for w in directions:
        cells.setdefault(cell_of(w), []).append(w)
    out = {}
    for words in cells.values():
        centre = torch.stack([directions[w] for w in words]).mean(0)  # the cell's mean, w itself included
        for w in words:
            out[w] = directions[w] - centre  # a new tensor: the caller's directions stay as they were
    return out

# ANSWERS 3
# Q1. Zero (up to rounding): sum over the cell of (d_w - centre) = sum of d_w - n * centre = 0.
# Q2. Exactly zero: its cell's mean is d_w itself. Subtracting 0 changes nothing, so the model writes its
#     clean ending, which a suppression rate would count as "same", a failure of suppression, although no
#     edit was made. Such prompts would pull the rate toward 0 for a reason unrelated to the plan. The
#     project counts them apart (`n_zero_edit` in interp/interventions.py `suppress`) and leaves them out.
# Q3. The words of one cell are planned in the same contexts (same meaning cue, same rhyme), so their
#     mean-difference directions share a large cell component ("an animal rhyming with -at comes"). The
#     global mean removes only what all endings share and leaves that component in: subtracting such a c_w
#     would push the model out of the cell (an invalid ending, or another cell), not from one word toward
#     its cell-mates. The cell's mean removes the shared part and keeps what tells w from the words it
#     competes with, which is what a switch to the runner-up needs. With the global mean a word alone in
#     its cell would also get a non-zero direction.


# ==== Exercise 4 ===========================================================================================
def add_only_with_control(write, line1s, targets, vectors, seed=0):
    def rate(written):
        return sum(w[-1:] == [t] for w, t in zip(written, targets)) / len(targets)  # [] [-1:] is []: a miss
    controls = [random_like(v, seed + i) for i, v in enumerate(vectors)]  # norm-matched, one seed per prompt
    return rate(write(line1s, vectors)), rate(write(line1s, controls))

# ANSWERS 4
# Q1. With target "cat": "and the cat then found a dog". The study's claim is about the ending the rhyme
#     plan chooses. An injected direction can make the model say the word at once, where no noun belongs,
#     and still end line 2 with its planned rhyme: that is the direction acting as "say w now", not a
#     changed plan, and a line that mentions w and ends with another word did not end with w. Counted as
#     hits, such lines would make the rate measure "w was said somewhere", which an echo of the injection
#     inflates, not "the plan now ends the line with w". The checker's fake model writes that line: anywhere-
#     counting gives 0.75 instead of 0.5.
# Q2. A large push in any direction can break the line or change its ending just by moving the residual off
#     its usual range. The same push in a random direction measures what the size alone does; injection
#     minus control is what the direction of w adds. A control of another norm (a unit vector, say) is
#     another dose and controls nothing.
# Q3. One random direction for all prompts is a sample of one: if it happens to point along some word's
#     direction, the whole control is off. Fresh draws average over directions. A seed per prompt makes
#     prompt i's control the same whatever else is in the batch, at every scale (the project scales the same
#     controls along its dose-response curve), and the walkthrough's numbers equal the study's. One generator
#     drawn from in turn would give prompt i a direction that depends on the prompts before it, so leaving
#     one prompt out would change every later control.


# ==== Exercise 5 ===========================================================================================
def feature_edge_to_logit(replacement_logits, acts, layer, pos, feature, token_id, target_pos):
    def demeaned(a):
        row = replacement_logits(a)[target_pos]  # (V,)
        return row[token_id] - row.mean()
    off = acts.clone()  # a copy: the caller's acts stay as they were
    off[layer, pos, feature] = 0.0
    return (demeaned(acts) - demeaned(off)).item()

# ANSWERS 5
# Q1. If f(a) = c + sum_k w_k a_k, then f(a) - f(a with a_k = 0) = w_k a_k exactly, whatever the other
#     sources are. Summed over every source (features, error nodes, token embeddings) the shares give
#     f(a) - f(0), so shares + the constant f(0) = f(a): the graph's rows plus `bias` equal the targets'
#     values exactly. Frozen attention patterns and LayerNorm scales make the replacement model affine, and
#     feature activations are held at their recorded values (they are sources). If a later feature's ReLU
#     were recomputed, switching off feature k could push that feature's pre-activation across 0, so the
#     difference would hold k's indirect effect through it, counted again by that feature's own edge, and
#     with a nonlinearity in between the parts no longer add. The graph shows indirect effects instead as
#     feature -> feature edges into pre-activations.
# Q2. Softmax ignores a constant added to every logit. Part of what a feature does to one logit it does to
#     all of them, which changes no probability; the de-meaned logit (circuit-tracer's de-meaned
#     unembedding) removes that shared part, so an edge measures what moves the target against the others.
# Q3. Zero: attention is causal, so nothing at a later position reaches target_pos (its frozen attention
#     weights on later positions are 0).
