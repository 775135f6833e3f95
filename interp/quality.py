"""How well a model writes couplets: greedy line 2s judged by couplet_rules.check_couplet."""
from couplet_rules import check_couplet, RULES
from interp.edits import write_line2
from interp.stats import wilson


def evaluate(model, world, split, n):
    """Rates of the rules kept, and of fully valid couplets, over the first n line 1s of a split."""
    couplets = world.split(split)[:n]
    if not couplets:
        return {"n": 0}
    line2s = write_line2(model, world, [c.line1 for c in couplets])
    broken = [check_couplet(c.line1, l2, world.config) for c, l2 in zip(couplets, line2s)]
    n = len(couplets)
    rates = {rule: sum(rule not in b for b in broken) / n for rule in RULES}
    k = sum(not b for b in broken)
    rates.update(valid=k / n, valid_ci=wilson(k, n), n=n,
                 examples=[c.text().split(" / ")[0] + " / " + " ".join(l2)
                           for c, l2 in zip(couplets[:5], line2s[:5])])
    return rates
