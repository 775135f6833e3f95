"""Directions in the residual stream at one (layer, position) cell, fit on the *fit* prompts.

  mean-difference   d_w = mean(x | the model ends line 2 with w) - mean(x)          (one per word)
  contrastive       c_w = d_w - mean of d_v over the words v of w's (meaning, family) cell
                    Words of one cell share most of their mean-difference direction (they are
                    planned in the same contexts); c_w keeps only what tells w from its cell-mates,
                    so the c_w of one cell sum to zero.
  class mean        m_w = mean(x | ending w): "replace the site by w's class mean" is a patch, not
                    an injection, and is reported as one.
  random            a Gaussian direction with the norm of a given one: the control of every edit.
"""
import torch

from lexicon import NOUNS


def word_directions(acts, endings, min_count=3):
    """{word: d_w} and {word: m_w} from (N, d) activations (NaN rows skipped) and each row's ending
    (None skipped); words seen fewer than min_count times get no direction."""
    ok = [i for i, e in enumerate(endings) if e is not None and not acts[i].isnan().any()]
    if not ok:
        return {}, {}
    x = acts[ok]
    mu = x.mean(0)
    groups = {}
    for row, i in enumerate(ok):
        groups.setdefault(endings[i], []).append(row)
    means = {w: x[rows].mean(0) for w, rows in sorted(groups.items()) if len(rows) >= min_count}
    return {w: m - mu for w, m in means.items()}, means


def contrastive(directions):
    """{word: c_w}: each direction minus the mean direction of its (meaning, family) cell."""
    cells = {}
    for w in directions:
        cells.setdefault((NOUNS[w].meaning, NOUNS[w].family), []).append(w)
    out = {}
    for words in cells.values():
        centre = torch.stack([directions[w] for w in words]).mean(0)
        for w in words:
            out[w] = directions[w] - centre
    return out


def random_like(direction, seed):
    """A Gaussian direction with exactly `direction`'s norm (a fixed seed per use)."""
    g = torch.Generator().manual_seed(seed)
    r = torch.randn(direction.shape, generator=g)
    return r * (direction.norm() / r.norm())
