"""Planted bugs and harmless variants of the five exercises (exercises/stubs.py).

tests/test_exercises.py asserts that each exercise's check FAILS on every planted bug here (a check never
seen failing is not a check) and PASSES on every harmless variant (a check must not ask for more than the
stub's docstring says). The checks also run the planted bugs to name a student's likely mistake.

Each exercise is written once with knobs that default to the right computation; a planted bug turns one
knob (a partial), or is a one-line function. PLANTED[exercise] = {bug id: (what it does wrong, function)};
the ids (a)-(h) are those of the review that planted them.
"""
from functools import partial

import torch

from interp.directions import random_like


# ---- 1. normalized_ld_effect -----------------------------------------------------------------------------
def ld_mean_of_ratios(ld_a, ld_b, ld_patched):
    return ((ld_patched - ld_a) / (ld_b - ld_a)).mean().item()


def ld_numerator_flipped(ld_a, ld_b, ld_patched):
    return ((ld_a - ld_patched).sum() / (ld_b - ld_a).sum()).item()


def ld_denominator_flipped(ld_a, ld_b, ld_patched):
    return ((ld_patched - ld_a).sum() / (ld_a - ld_b).sum()).item()


def ld_measured_from_b(ld_a, ld_b, ld_patched):
    return ((ld_b - ld_patched).sum() / (ld_b - ld_a).sum()).item()


def ld_no_none(ld_a, ld_b, ld_patched):
    return ((ld_patched - ld_a).sum() / (ld_b - ld_a).sum()).item()


def ld_via_means(ld_a, ld_b, ld_patched):  # harmless: a ratio of means is the ratio of sums
    gap = (ld_b.double() - ld_a.double()).mean()
    return None if gap <= 0 else float((ld_patched.double() - ld_a.double()).mean() / gap)


# ---- 2. ridge_probe_accuracy -----------------------------------------------------------------------------
def ridge_scores(x_fit, y_fit, x_test, n_classes, lam=1.0, standardise=True, lam_used=None, own_test_stats=False,
                 bias=True, unbiased=True, solver="solve"):
    """(N_test, n_classes) float64 scores of the ridge probe; the defaults are interp/probes.py's."""
    mu, sd = x_fit.mean(0), x_fit.std(0, unbiased=unbiased) + 1e-6
    mu_t, sd_t = (x_test.mean(0), x_test.std(0) + 1e-6) if own_test_stats else (mu, sd)
    a, b = ((x_fit - mu) / sd, (x_test - mu_t) / sd_t) if standardise else (x_fit, x_test)
    if bias:
        a, b = torch.cat([a, torch.ones(len(a), 1)], 1), torch.cat([b, torch.ones(len(b), 1)], 1)
    a, b = a.double(), b.double()
    y = torch.nn.functional.one_hot(y_fit, n_classes).double()
    lam = lam if lam_used is None else lam_used
    eye = torch.eye(a.shape[1], dtype=torch.float64)
    if solver == "lstsq":  # ridge as least squares on [A; sqrt(lam) I] w = [Y; 0]
        w = torch.linalg.lstsq(torch.cat([a, lam ** 0.5 * eye]), torch.cat([y, torch.zeros(len(eye), n_classes,
                                                                                            dtype=y.dtype)])).solution
    else:
        w = torch.linalg.solve(a.T @ a + lam * eye, a.T @ y)
    return b @ w


def ridge_accuracy(x_fit, y_fit, x_test, y_test, n_classes, lam=1.0, **knobs):
    return ridge_scores(x_fit, y_fit, x_test, n_classes, lam, **knobs).argmax(1).eq(y_test).double().mean().item()


# ---- 3. contrastive ------------------------------------------------------------------------------------------
def contrastive_global_mean(directions, cell_of):
    centre = torch.stack(list(directions.values())).mean(0)
    return {w: d - centre for w, d in directions.items()}


def contrastive_centres(directions, cell_of, leave_one_out=False):
    """{word: the centre subtracted from it}: its cell's mean, or (leave_one_out) its cell-mates' mean."""
    out = {}
    for w in directions:
        mates = [directions[v] for v in directions if cell_of(v) == cell_of(w) and not (leave_one_out and v == w)]
        out[w] = torch.stack(mates).mean(0) if mates else torch.zeros_like(directions[w])
    return out


def contrastive_leave_one_out(directions, cell_of):
    centres = contrastive_centres(directions, cell_of, leave_one_out=True)
    return {w: directions[w] - centres[w] for w in directions}


def contrastive_in_place(directions, cell_of):  # the right values, but the caller's tensors are overwritten
    centres = contrastive_centres(directions, cell_of)
    return {w: directions[w].sub_(centres[w]) for w in directions}


def contrastive_word_by_word(directions, cell_of):  # harmless: each word's cell mean computed on its own
    centres = contrastive_centres(directions, cell_of)
    return {w: directions[w] - centres[w] for w in directions}


# ---- 4. add_only_with_control ------------------------------------------------------------------------------
def ends_with_target(line2, target):
    return line2[-1:] == [target]


def norm_matched(vectors, seed):
    return [random_like(v, seed + i) for i, v in enumerate(vectors)]


def add_only(write, line1s, targets, vectors, seed=0, hit=ends_with_target, controls=norm_matched,
             one_at_a_time=False):
    def written(vecs):
        if one_at_a_time:
            return [write([l1], [v])[0] for l1, v in zip(line1s, vecs)]
        return write(line1s, vecs)

    def rate(lines):
        return sum(hit(w, t) for w, t in zip(lines, targets)) / len(targets)
    return rate(written(vectors)), rate(written(controls(vectors, seed)))


def unit_norm(vectors, seed):
    return [random_like(v, seed + i) / v.norm() for i, v in enumerate(vectors)]


def one_seed(vectors, seed):
    return [random_like(v, seed) for v in vectors]


def one_generator(vectors, seed):
    g = torch.Generator().manual_seed(seed)
    out = []
    for v in vectors:
        r = torch.randn(v.shape, generator=g)
        out.append(r * (v.norm() / r.norm()))
    return out


def unseeded(vectors, seed):
    out = []
    for v in vectors:
        r = torch.randn(v.shape)
        out.append(r * (v.norm() / r.norm()))
    return out


def by_hand(vectors, seed):  # harmless: the recipe of the docstring, without random_like
    out = []
    for i, v in enumerate(vectors):
        r = torch.randn(v.shape, generator=torch.Generator().manual_seed(seed + i))
        out.append(r * (v.norm() / r.norm()))
    return out


# ---- 5. feature_edge_to_logit --------------------------------------------------------------------------------
def edge(replacement_logits, acts, layer, pos, feature, token_id, target_pos, where=None, demean=True, sign=1.0,
         in_place=False):
    """where(layer, pos, feature, target_pos, n_layers) -> the index of acts that is switched off."""
    def value(a):
        row = replacement_logits(a)[target_pos]
        return row[token_id] - (row.mean() if demean else 0.0)
    on = value(acts)
    off = acts if in_place else acts.clone()
    off[(where or (lambda l, p, f, t, n: (l, p, f)))(layer, pos, feature, target_pos, acts.shape[0])] = 0.0
    return sign * (on - value(off)).item()


def edge_by_gradient(replacement_logits, acts, layer, pos, feature, token_id, target_pos):
    """Harmless: the logits are affine in acts, so the edge is the gradient times the activation."""
    a = acts.clone().requires_grad_()
    with torch.enable_grad():
        row = replacement_logits(a)[target_pos]
        (grad,) = torch.autograd.grad(row[token_id] - row.mean(), a)
    return (grad[layer, pos, feature] * acts[layer, pos, feature]).item()


PLANTED = {
    "normalized_ld_effect": {
        "d_mean_of_ratios": ("the mean of per-pair ratios", ld_mean_of_ratios),
        "e_numerator_sign": ("the patched LD change with its sign flipped (ld_a - ld_patched)", ld_numerator_flipped),
        "e_denominator_sign": ("the gap with its sign flipped (ld_a - ld_b)", ld_denominator_flipped),
        "measured_from_b": ("the distance left to B (ld_b - ld_patched), 1 minus the effect", ld_measured_from_b),
        "no_none": ("a number where the pooled gap is <= 0", ld_no_none),
    },
    "ridge_probe_accuracy": {
        "a_not_standardised": ("a probe without standardisation", partial(ridge_accuracy, standardise=False)),
        "b_lam_zero": ("a probe with lam = 0", partial(ridge_accuracy, lam_used=0.0)),
        "b_ignores_lam": ("a probe with lam = 1 whatever lam is passed", partial(ridge_accuracy, lam_used=1.0)),
        "test_own_stats": ("a probe standardising the test set with its own mean and std",
                           partial(ridge_accuracy, own_test_stats=True)),
        "no_bias_column": ("a probe without the bias column", partial(ridge_accuracy, bias=False)),
    },
    "contrastive": {
        "f_global_mean": ("directions centred on the mean over all words", contrastive_global_mean),
        "leave_one_out": ("directions centred on the mean of the word's cell-mates only", contrastive_leave_one_out),
        "in_place": ("the right directions, written over the caller's tensors", contrastive_in_place),
    },
    "add_only_with_control": {
        "c_hit_anywhere": ("a hit counted when the target is anywhere in line 2",
                           partial(add_only, hit=lambda w, t: t in w)),
        "c_hit_in_last_word": ("a hit counted when the last word contains the target",
                               partial(add_only, hit=lambda w, t: bool(w) and t in w[-1])),
        "g_unit_norm": ("controls of norm 1, not the vector's norm", partial(add_only, controls=unit_norm)),
        "g_one_seed": ("one seed for every prompt's control", partial(add_only, controls=one_seed)),
        "g_one_generator": ("one generator drawn from prompt after prompt", partial(add_only, controls=one_generator)),
        "g_unseeded": ("controls from torch's global generator", partial(add_only, controls=unseeded)),
    },
    "feature_edge_to_logit": {
        "h_wrong_position": ("the feature switched off at target_pos instead of pos",
                             partial(edge, where=lambda l, p, f, t, n: (l, t, f))),
        "h_wrong_layer": ("the feature switched off at the next layer",
                          partial(edge, where=lambda l, p, f, t, n: ((l + 1) % n, p, f))),
        "h_every_layer": ("the feature switched off at every layer", partial(edge, where=lambda l, p, f, t, n:
                                                                             (slice(None), p, f))),
        "h_every_position": ("the feature switched off at every position", partial(edge, where=lambda l, p, f, t, n:
                                                                                   (l, slice(None), f))),
        "not_demeaned": ("the raw logit, not de-meaned", partial(edge, demean=False)),
        "sign_flipped": ("off minus on", partial(edge, sign=-1.0)),
        "in_place": ("the right edge, with the caller's acts overwritten", partial(edge, in_place=True)),
    },
}

HARMLESS = {
    "normalized_ld_effect": {"via_means": ld_via_means},
    "ridge_probe_accuracy": {"biased_std": partial(ridge_accuracy, unbiased=False),
                             "lstsq": partial(ridge_accuracy, solver="lstsq")},
    "contrastive": {"word_by_word": contrastive_word_by_word},
    "add_only_with_control": {"one_prompt_at_a_time": partial(add_only, one_at_a_time=True),
                              "controls_by_hand": partial(add_only, controls=by_hand)},
    "feature_edge_to_logit": {"by_gradient": edge_by_gradient},
}
