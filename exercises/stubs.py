"""Exercises: five core measurements of the study, as functions you write yourself.

How to work
-----------
Work in a copy (the project's own tests expect this file unfilled): `cp exercises/stubs.py mine.py`, fill in
each function there, then check all five in one command from the repository root:

    EXERCISES=mine.py python -m pytest -q tests/test_exercises.py

(`EXERCISES=exercises/stubs.py` checks this file; add `-k ridge` to check one exercise, `--tb=short` for
shorter reports.) What to expect:

  * on the stubs as shipped: `5 failed`, each with `NotImplementedError` from the stub it ran;
  * while you work: `k failed, 5-k passed`; every failure says what differs (the value, the rows, the
    prompt) and, where one is likely, which mistake gives that value;
  * when all five are right: `5 passed`. Nothing is skipped: with EXERCISES set, only these five checks are
    collected. The checker's own tests (that each check fails on planted bugs, tests/planted_exercise_bugs.py)
    run in CI, where EXERCISES is unset.

Each check compares your function with the project's own, or with a value known exactly, on inputs built so
that each common mistake changes the answer. Stuck? Each exercise has two hints (a nudge, then a stronger
one); exercises/solutions.py has every solution and the answer to every question asked here.

Labels (ARENA's convention): difficulty 🔴 (1-5), importance 🔵 (1-5: how much of the study rests on it),
and the time to spend before you read the hints. Suggested order: 1, 3, 4, 2, 5. Then run your functions on
the real model: `from exercises import load; mine = load()` imports the file EXERCISES names, as the checker
does (`load("mine.py")` names it directly).
"""
import torch  # noqa: F401 (for your solutions)


# ==== Exercise 1 ===========================================================================================
def normalized_ld_effect(ld_a, ld_b, ld_patched):
    """Activation patching's normalized logit difference, pooled over pairs.

    Learning objective: turn three runs' logit differences into the one number every patching result of
    the project reports, and see why it is pooled over pairs before dividing.
    Difficulty 🔴⚪⚪⚪⚪   Importance 🔵🔵🔵🔵⚪   Spend up to 10 minutes.

    Setting: pairs of line 1s A and B that differ in one word, whose clean endings differ (e_A != e_B).
    For pair i, LD_i(run) = logit[e_B] - logit[e_A] at the position that predicts the ending, in three runs:
    A, B, and A with some of B's activations copied in ("patched").

    Inputs: ld_a, ld_b, ld_patched: 1-D float tensors of shape (N,), N >= 1 pairs, any dtype float32 or
    float64, any real values (a single pair may have ld_b < ld_a). Do not modify them.
    Return: the pooled effect   sum_i (ld_patched_i - ld_a_i) / sum_i (ld_b_i - ld_a_i)   as a Python
    float (not a tensor): 0 = the patch left A alone, 1 = it moved A as far as B's own prompt does.
    Return None when the pooled gap sum_i (ld_b_i - ld_a_i) is <= 0.

    Questions (answers in exercises/solutions.py):
      Q1. Why pool before dividing, rather than average the per-pair ratios? Think of a pair whose
          ld_b - ld_a is 0.001.
      Q2. What changes if LD is defined the other way round, logit[e_A] - logit[e_B], in all three runs?
          And if only the patched run's LD had its sign flipped?
      Q3. Why return None, not a number, when the pooled gap is <= 0?

    Hints (read one at a time):
      1. Two sums and one division; `.item()` turns a 0-d tensor into a float.
      2. num = (ld_patched - ld_a).sum(); den = (ld_b - ld_a).sum(); check den before dividing.

    The project's version (read it after you try): interp/patching.py `patching` with
    interp/stats.py `ratio_of_sums`."""
    raise NotImplementedError


# ==== Exercise 2 ===========================================================================================
def ridge_probe_accuracy(x_fit, y_fit, x_test, y_test, n_classes, lam=1.0):
    """A linear probe: ridge regression onto one-hot labels, in closed form.

    Learning objective: write the probe behind every "is the ending readable here?" map, and see what
    standardisation and the ridge penalty each do to its predictions.
    Difficulty 🔴🔴⚪⚪⚪   Importance 🔵🔵🔵⚪⚪   Spend up to 15-20 minutes.

    Inputs: x_fit (N_fit, d) and x_test (N_test, d) float32 activations; y_fit (N_fit,) and y_test (N_test,)
    int64 class indices in [0, n_classes); n_classes an int; lam a float >= 0. Do not modify the inputs.
    Steps, exactly:
      1. standardise with the *fit* set's statistics, for both sets: mu = x_fit.mean(0) and
         sd = x_fit.std(0) + 1e-6, both (d,). The std is torch's default, the unbiased one (divides by
         N_fit - 1), as interp/probes.py uses; the biased one (N_fit) would do as well, see Q3. z = (x - mu) / sd.
      2. add a bias column of ones: A = [z_fit, 1] (N_fit, d + 1), B = [z_test, 1] (N_test, d + 1), and from
         here on compute in float64.
      3. Y = one-hot of y_fit, (N_fit, n_classes) float64.
         W = (A^T A + lam I)^-1 A^T Y, (d + 1, n_classes), with I the (d + 1) x (d + 1) identity (so the
         bias weight is penalised too). Solve the linear system; do not form the inverse.
      4. predict argmax over classes of B W (N_test, n_classes); return the share of test rows whose
         prediction equals y_test, as a Python float in [0, 1].
    The checker compares your predictions with the project's row by row (it asks for the accuracy against
    the project's own predictions), at lam = 1 and at another lam, on data where a wrong step changes them.

    Questions:
      Q1. Why standardise? Consider a feature measured in units 1000 times smaller than the others.
      Q2. Why does standardising change nothing when lam = 0?
      Q3. Does it matter that sd is the unbiased standard deviation rather than the biased one?
      Q4. Why lam > 0 at all, when activations have d = 128 dimensions (the default model) and a probe is
          fit on a few hundred rows? And what is the +1e-6 for?

    Hints:
      1. torch.linalg.solve(M, R) solves M W = R; torch.nn.functional.one_hot makes Y; cast with .double().
      2. mu, sd from x_fit only; a = torch.cat([(x_fit - mu) / sd, torch.ones(len(x_fit), 1)], 1).double(),
         the same for x_test with the same mu and sd; then
         w = torch.linalg.solve(a.T @ a + lam * torch.eye(a.shape[1], dtype=torch.float64), a.T @ y).

    The project's version: interp/probes.py `ridge_probe`."""
    raise NotImplementedError


# ==== Exercise 3 ===========================================================================================
def contrastive(directions, cell_of):
    """Contrastive directions: what tells a word from the other words of its (meaning, family) cell.

    Learning objective: see why a word's mean-difference direction is mostly its cell's, and write the
    direction the suppression experiment subtracts.
    Difficulty 🔴⚪⚪⚪⚪   Importance 🔵🔵🔵⚪⚪   Spend up to 10 minutes.

    Inputs: directions, a dict {word (str): (d,) float tensor} (the mean-difference directions d_w);
    cell_of, a function word -> its cell (any hashable value; in the study the pair (meaning, family)).
    Return: a new dict with the same keys, {word: c_w}, each c_w of the same shape (d,) and dtype as d_w:
        c_w = d_w - mean of d_v over the words v *of `directions`* with cell_of(v) == cell_of(w)
    (w itself included; words of the cell that have no direction do not count). The centre is the word's
    cell's mean, not the mean over all words. Do not modify `directions` or its tensors: the study injects
    the same d_w afterwards.

    Questions:
      Q1. What do the c_w of one cell sum to?
      Q2. What is a word's contrastive direction when it is alone in its cell, and why must a suppression
          rate leave such prompts out?
      Q3. Why subtract the cell's mean rather than the mean over all words?

    Hints:
      1. Group the words by cell first (a dict cell -> [words]); then one mean per cell.
      2. torch.stack([directions[v] for v in words]).mean(0) is the cell's centre; build new tensors
         (directions[w] - centre), never `-=`.

    The project's version: interp/directions.py `contrastive` (it reads the cell from the lexicon)."""
    raise NotImplementedError


# ==== Exercise 4 ===========================================================================================
def add_only_with_control(write, line1s, targets, vectors, seed=0):
    """The study's "inject green": add each prompt's vector at its site, and beside it a random direction of
    the same norm; count how often line 2 then *ends* with the target.

    Learning objective: measure an injection the way the study does, against the control that tells "the
    direction of w" from "any push this large", and count a hit by the ending alone.
    Difficulty 🔴🔴⚪⚪⚪   Importance 🔵🔵🔵🔵🔵   Spend up to 15 minutes.

    Inputs (N >= 1 prompts, every one with a target and a vector; leave out the others before calling):
      write(line1s, vectors) -> the line 2s the model writes with vectors[i] added at prompt i's site: a
          list of N lists of words (str), in the order of its arguments (the checker's `write` also accepts
          one prompt at a time);
      line1s: N line 1s (lists of words), passed on to write unchanged;
      targets: N words (str): the word prompt i should end with;
      vectors: N float32 tensors of shape (d,), each with its own norm; pass them unchanged.
    A *hit*: line 2's last word (the ending) equals the target exactly, as whole strings. An empty line 2
    is a miss. Not "the target appears anywhere in line 2": the study asks whether the injection changes
    the ending the rhyme plan chooses, and a target said mid-line before another ending is not that. Not
    "the last word contains the target" either ("wombat" is not "bat").
    Control for prompt i: r = torch.randn(v.shape, generator=torch.Generator().manual_seed(seed + i)),
    then r * (v.norm() / r.norm()): a Gaussian direction with exactly v's norm (d,) float32, one fixed
    seed per prompt (interp/directions.py `random_like`).
    Return (rate with the vectors, rate with the controls): two Python floats in [0, 1], hits / N.

    Questions:
      Q1. Write a line 2 that anywhere-counting gets wrong. What would the injection rate measure if such
          lines counted as hits?
      Q2. Why must the random direction have the same norm as the injected one?
      Q3. Why a fresh seed per prompt (seed + i), rather than one random direction for all prompts, or one
          generator drawn from in turn?

    Hints:
      1. Call write twice (vectors, then controls); a line 2 `w` is a hit when `w[-1:] == [target]`.
      2. from interp.directions import random_like; controls = [random_like(v, seed + i) for i, v in
         enumerate(vectors)]; rate = sum(hits) / len(targets).

    The project's version: interp/interventions.py `add_only` and `hit_rate`."""
    raise NotImplementedError


# ==== Exercise 5 ===========================================================================================
def feature_edge_to_logit(replacement_logits, acts, layer, pos, feature, token_id, target_pos):
    """One edge of an attribution graph: from a transcoder feature to a target logit.

    Learning objective: compute an attribution-graph edge by switching one feature off in the local
    replacement model, and see why the edges of a target add up to its value exactly.
    Difficulty 🔴🔴🔴⚪⚪   Importance 🔵🔵🔵⚪⚪   Spend up to 15-20 minutes.

    Inputs: replacement_logits(a) -> (T, V) logits (the dtype of a) of the local replacement model
    (interp/attribution.py, step b) when the transcoder's feature activations are a, of shape (L, T, F);
    attention patterns and LayerNorm scales are frozen, so these logits are an affine function of a.
    acts: (L, T, F) float tensor, the recorded activations (>= 0, after the ReLU); do not modify it.
    layer in [0, L), pos in [0, T), feature in [0, F): the source feature; token_id in [0, V): the target
    logit's token; target_pos in [0, T): the position whose logits are the target.
    The target's value: demeaned(a) = row[token_id] - row.mean(), row = replacement_logits(a)[target_pos]
    (the mean over all V logits). The edge's weight is how much of it goes away when this one feature
    (acts[layer, pos, feature], and no other entry) is set to 0, everything else kept:
        demeaned(acts) - demeaned(acts with acts[layer, pos, feature] = 0),   a Python float.
    The checker compares your edges first with a toy affine model's, known exactly (some from a position
    after target_pos), then with interp/attribution.py's graph of a tiny model: for the strongest feature at
    every (layer, position), into two target logits.

    Questions:
      Q1. Why does "affine" make the shares of all sources (plus a constant) add up to the target's value
          exactly, and why would that fail if the ReLUs of later features were not frozen?
      Q2. Why the de-meaned logit rather than the logit itself?
      Q3. What is the edge from a feature at a position after target_pos?

    Hints:
      1. Two calls of replacement_logits: with acts, and with a copy of acts where one entry is 0.
      2. off = acts.clone(); off[layer, pos, feature] = 0.0; define demeaned(a) as above and return
         (demeaned(acts) - demeaned(off)).item().

    The project's version: interp/attribution.py `build_graph` (by gradients, all edges at once)."""
    raise NotImplementedError
