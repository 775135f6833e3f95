"""Rates and intervals: every rate the project reports carries its n and a 95% interval."""
import math
import random


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


def ratio_of_sums(num, den, seed=0, reps=1000):
    """sum(num) / sum(den) with a 95% bootstrap interval over items (pairs resampled with
    replacement, a fixed seed so the interval is reproducible). None when sum(den) <= 0."""
    n = len(num)
    if n == 0 or sum(den) <= 0:
        return {"value": None, "n": n, "ci": [None, None]}
    rng = random.Random(seed)
    stats = []
    for _ in range(reps):
        idx = [rng.randrange(n) for _ in range(n)]
        d = sum(den[i] for i in idx)
        if d > 0:
            stats.append(sum(num[i] for i in idx) / d)
    stats.sort()
    lo, hi = stats[int(0.025 * len(stats))], stats[min(len(stats) - 1, int(0.975 * len(stats)))]
    return {"value": sum(num) / sum(den), "n": n, "ci": [lo, hi]}


def over_seeds(values):
    """Mean and [min, max] of one number over training seeds (Nones skipped)."""
    vals = [v for v in values if v is not None]
    if not vals:
        return None, None
    return sum(vals) / len(vals), [min(vals), max(vals)]
