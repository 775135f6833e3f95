"""Claims read from numbers: the thresholds in one place, each model's predictions, and whether each held.

A claim names the headline keys it reads (interp/headline.py), a rule, and over which seeds the rule must
hold. The page's verdicts, the claims table of results.md and the README's short answer (which cites claims
by id) all rest on these, so a sentence cannot say more than its numbers: where a rule fails, the page and
results.md say "failed".

    Expect("shape_donor_valid_rate", ">=", 0.3)                       every measured seed at least 0.3
    Expect("total_valid_change_nl", ">", "direct_valid_change_nl")    compared with another key, seed by seed
    Expect("shape_donor_valid_rate", "n<", 10)                        fewer than 10 items counted, every seed
    Expect("nl_ld_rhyme", ">=", 0.8, seeds="any")                     at least one seed
"""
from dataclasses import dataclass
import operator

from interp.patching import CARRIES, WEAK

# the bars every verdict uses
THRESHOLDS = {
    "carries": CARRIES,  # a normalized LD effect at least this: the position carries the fact
    "weak": WEAK,        # below this: not used
    "few": 10,           # a rate over fewer items is shown as k/n, never as a rate
    "noop": 0.5,         # a control with more than this share of edits that change nothing is not shown as one
    "drop": 0.1,         # a probe reading this much less in another model reads less there
    "composed": 0.9,     # held-out pairs written validly at least this share as often as seen ones: composed
}
OPS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt}


@dataclass(frozen=True)
class Expect:
    key: str
    op: str
    value: object          # a number, or another headline key (compared seed by seed)
    seeds: str = "every"   # "every" measured seed, "any" seed, or the "mean" over seeds

    def text(self):
        what = f"n of {self.key}" if self.op == "n<" else self.key
        rule = f"< {self.value} items" if self.op == "n<" else f"{self.op} {self.value}"
        scope = {"every": "in every seed", "any": "in at least one seed", "mean": "on the mean over seeds"}[self.seeds]
        return f"{what} {rule} {scope}"

    def per_seed(self, h):
        """True / False for one seed's headline h, None when it did not measure the key."""
        if self.op == "n<":
            n = h.get("n", {}).get(self.key)
            return None if n is None else n < self.value
        a = h.get(self.key)
        b = h.get(self.value) if isinstance(self.value, str) else self.value
        return None if a is None or b is None else OPS[self.op](a, b)

    def check(self, seeds):
        """(held: True / False / None when no seed measured it, [per-seed results]) over per-seed headlines."""
        each = [self.per_seed(h) for h in seeds]
        got = [x for x in each if x is not None]
        if self.seeds == "mean" and self.op != "n<":
            vals = [h.get(self.key) for h in seeds if h.get(self.key) is not None]
            ref = [h.get(self.value) for h in seeds if h.get(self.value) is not None] if isinstance(self.value, str) \
                else [self.value]
            return (None if not vals or not ref else OPS[self.op](sum(vals) / len(vals), sum(ref) / len(ref))), each
        if not got:
            return None, each
        return (all(got) if self.seeds == "every" else any(got)), each


def checked(expects, seeds):
    """[{rule, held, per_seed}] for a model's expectations over its per-seed headlines."""
    out = []
    for e in expects:
        held, each = e.check(seeds)
        out.append({"rule": e.text(), "key": e.key, "held": held, "per_seed": each})
    return out


def verdict_word(held):
    return {True: "held", False: "failed", None: "not measured"}[held]
