"""Rates and intervals: every rate the project reports carries its n and a 95% interval."""
import math

import torch


def wilson(k, n, z=1.96):
    """95% Wilson score interval for k successes in n trials."""
    if n == 0:
        return [0.0, 1.0]
    p = k / n
    mid = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [max(0.0, mid - half), min(1.0, mid + half)]


def rate(hits):
    """{rate, k, n, ci} of a list of booleans; rate None when there was nothing to count."""
    k, n = sum(bool(h) for h in hits), len(hits)
    return {"rate": k / n if n else None, "k": k, "n": n, "ci": wilson(k, n)}


def resamples(n, seed=0, reps=1000):
    """(reps, n) indices of n items resampled with replacement, all drawn at once from a fixed seed (so every
    interval is reproducible, and dozens of them per model stay cheap)."""
    return torch.randint(0, n, (reps, n), generator=torch.Generator().manual_seed(seed))


def percentile_interval(stats):
    """The 95% interval of a sorted list of resampled statistics ([None, None] when no resample had one)."""
    if not stats:
        return [None, None]
    return [stats[int(0.025 * len(stats))], stats[int(0.975 * len(stats))]]


def ratio_of_sums(num, den, seed=0, reps=1000):
    """sum(num) / sum(den) with a 95% bootstrap interval over items (pairs resampled with replacement).
    None when sum(den) <= 0."""
    n = len(num)
    if n == 0 or sum(den) <= 0:
        return {"value": None, "n": n, "ci": [None, None]}
    idx = resamples(n, seed, reps)
    d = torch.tensor(den, dtype=torch.float64)[idx].sum(1)
    stats = (torch.tensor(num, dtype=torch.float64)[idx].sum(1) / d)[d > 0].sort().values.tolist()
    return {"value": sum(num) / sum(den), "n": n, "ci": percentile_interval(stats)}


def paired_difference(a, b, seed=0, reps=1000):
    """mean(a_i - b_i) of two lists of booleans over the same items (a paired difference of two rates),
    with a 95% bootstrap interval over items. None when there are no items."""
    n = len(a)
    if n == 0:
        return {"value": None, "n": 0, "ci": [None, None]}
    d = torch.tensor([int(bool(x)) - int(bool(y)) for x, y in zip(a, b)], dtype=torch.float64)
    return {"value": d.sum().item() / n, "n": n,
            "ci": percentile_interval(d[resamples(n, seed, reps)].mean(1).sort().values.tolist())}


def over_seeds(values):
    """Mean and [min, max] of one number over training seeds (Nones skipped)."""
    vals = [v for v in values if v is not None]
    if not vals:
        return None, None
    return sum(vals) / len(vals), [min(vals), max(vals)]
