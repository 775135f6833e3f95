"""Exercises: five core measurements of the study, as functions you write yourself.

Fill in each function (copy this file first if you like), then check your work in one command:

    EXERCISES=exercises/stubs.py python -m pytest -q tests/test_exercises.py

Each test compares your function with the project's own, or with a result that is known exactly. The
solutions are in exercises/solutions.py (the tests run them by default): try first, then compare.
"""
import torch


def normalized_ld_effect(ld_a, ld_b, ld_patched):
    """Activation patching's normalized logit difference, pooled over pairs.

    ld_a, ld_b, ld_patched: (N,) tensors of LD = logit[e_B] - logit[e_A] in run A, in run B, and in run A
    with some of B's activations copied in. Return sum(ld_patched - ld_a) / sum(ld_b - ld_a) as a float:
    0 = the patch left A alone, 1 = it moved A as far as B. (Why pool before dividing? Think of a pair
    whose ld_b - ld_a is 0.001.)"""
    raise NotImplementedError


def ridge_probe_accuracy(x_fit, y_fit, x_test, y_test, n_classes, lam=1.0):
    """A linear probe: standardize the features with the *fit* set's mean and std (+1e-6), add a bias
    column, solve ridge regression onto one-hot labels in closed form (W = (A^T A + lam I)^-1 A^T Y, in
    float64), classify test rows by argmax, and return the test accuracy as a float."""
    raise NotImplementedError


def contrastive(directions, cell_of):
    """directions: {word: (d,) tensor}; cell_of(word) -> the word's (meaning, family) cell.
    Return {word: direction minus the mean direction of the words of its cell (among `directions`)}.
    What is a word's contrastive direction when it is alone in its cell, and why must a suppression
    rate leave such prompts out?"""
    raise NotImplementedError


def add_only_with_control(write, line1s, targets, vectors, seed=0):
    """The study's "inject green": add each prompt's vector at its site, and beside it a random direction of
    the same norm. write(line1s, vectors) -> the line 2s written with those vectors added (a list of word
    lists); targets[i]: the word prompt i should end with. Return (hit rate with the vectors, hit rate with
    norm-matched Gaussian directions made with torch.Generator().manual_seed(seed + i) for prompt i)."""
    raise NotImplementedError


def feature_edge_to_logit(replacement_logits, acts, layer, pos, feature, token_id, target_pos):
    """One edge of an attribution graph: from a transcoder feature to a target logit.

    replacement_logits(acts) -> (T, V): the logits of the local replacement model (interp/attribution.py,
    step b) when the transcoder's feature activations are acts (L, T, F); attention patterns and LayerNorm
    scales are frozen, so these logits are an affine function of acts. The edge's weight is the feature's
    share of the target's de-meaned logit (logit[token_id] - mean logit, at target_pos): how much of it
    goes away when this one feature (layer, pos, feature) is switched off and everything else is kept.
    Return it as a float. Why does "affine" make the shares of all sources (plus a constant) add up to
    the target's value exactly, and why would that fail if the ReLUs of later features were not frozen?"""
    raise NotImplementedError
