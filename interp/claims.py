"""Claims read from numbers: the thresholds in one place, each model's predictions, and whether each held.

A claim names the headline keys it reads (interp/headline.py), a rule, and over which seeds the rule must
hold. The page's verdicts, the claims table of results.md and the README's short answer (which cites claims
by id) all rest on these, so a sentence cannot say more than its numbers: where a rule fails, the page and
results.md say "failed".

    Expect("shape_donor_valid_rate", ">=", 0.3)                       every measured seed at least 0.3
    Expect("total_valid_change_nl", ">", "direct_valid_change_nl")    compared with another key, seed by seed
    Expect("shape_donor_valid_rate", "n<", 10)                        fewer than 10 items counted, every seed
    Expect("nl_ld_rhyme", ">=", 0.8, seeds="any")                     at least one seed
    Expect("green_valid_rate", "beats", "green_random_rate")           at least THRESHOLDS["weak"] above it
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
OPS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt,
       "beats": lambda a, b: a - b >= THRESHOLDS["weak"]}  # beats its control by the "weak" bar or more


@dataclass(frozen=True)
class Expect:
    key: str
    op: str
    value: object          # a number, or another headline key (compared seed by seed)
    seeds: str = "every"   # "every" measured seed, "any" seed, or the "mean" over seeds

    def __post_init__(self):
        # a rule that could not mean what its text says is refused, not evaluated as something else
        if self.op not in OPS and self.op != "n<":
            raise ValueError(f"unknown rule {self.op!r}: one of {sorted(OPS) + ['n<']}")
        if self.seeds not in ("every", "any", "mean"):
            raise ValueError(f"seeds must be every, any or mean, not {self.seeds!r}")
        if self.op == "n<" and self.seeds == "mean":
            raise ValueError("'n<' counts each seed's items: use seeds='every' or 'any'")

    def text(self):
        what = f"n of {self.key}" if self.op == "n<" else self.key
        rule = (f"< {self.value} items" if self.op == "n<" else
                f"exceeds {self.value} by {THRESHOLDS['weak']} or more" if self.op == "beats" else f"{self.op} {self.value}")
        scope = {"every": "in every seed", "any": "in at least one seed", "mean": "on the mean over seeds"}[self.seeds]
        return f"{what} {rule} {scope}"

    def per_seed(self, h):
        """True / False for one seed's headline h, None when it did not measure the key."""
        if self.op == "n<":  # a seed that measured the model but counted nothing for the key counted 0 items
            n = h.get("n", {}).get(self.key, 0 if h.get("valid") is not None else None)
            return None if n is None else n < self.value
        a = h.get(self.key)
        b = h.get(self.value) if isinstance(self.value, str) else self.value
        return None if a is None or b is None else OPS[self.op](a, b)

    def check(self, seeds):
        """(held: True / False / None when no seed measured it, [per-seed results]) over per-seed headlines."""
        each = [self.per_seed(h) for h in seeds]
        got = [x for x in each if x is not None]
        if self.seeds == "mean":
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


@dataclass(frozen=True)
class Claim:
    """A sentence the README and the page may say, and the rules on one model's seeds it rests on."""
    id: str
    model: str
    text: str
    rules: tuple


E = Expect
CLAIMS = (
    Claim("C1", "main", "The line break does not store the rhyme or the meaning: copying it from another line 1 "
          "barely moves the ending when line 2's words are held.", (E("nl_ld_rhyme", "<", WEAK), E("nl_ld_cue", "<", WEAK))),
    Claim("C2", "main", "A probe reads the future ending at the line break no better than the cell's favourite "
          "ending does: readable, but not a word-level plan.", (E("ending_probe_nl", "<=", "cell_favourite_rate"),)),
    Claim("C3", "main", "In some seeds, not every one, the line break stores the line's shape: patched at one layer "
          "from a line 1 whose ending has another length, it makes the model write a valid couplet at that length far "
          "more often than the same patch from a donor of the same length.",
          (E("shape_donor_valid_rate", "beats", "shape_donor_valid_control_rate", "any"),)),
    Claim("C4", "main", "Adding another length's direction at the line break ('green') writes a valid couplet ending "
          "in the cell-mate of that length far more often than a random direction does.",
          (E("green_valid_rate", "beats", "green_random_rate"),)),
    Claim("C5", "main", "Subtracting the planned length's direction ('rabbit -> habit') writes a valid couplet ending "
          "in the model's runner-up more often than a random direction does in every seed, far more in some.",
          (E("habit_valid_rate", ">", "habit_random_rate"), E("habit_valid_rate", "beats", "habit_random_rate", "any"))),
    Claim("C6", "main", "With the opener teacher-forced, green and habit almost never reach the ending: the shape "
          "reaches it through the words the model writes.",
          (E("green_forced_rate", "<", WEAK), E("habit_forced_rate", "<", WEAK))),
    Claim("C7", "main", "Transcoder features at the line break whose ablation switches the opener's length do so more "
          "often than random directions of the same norm, in every seed.",
          (E("length_features_rate", ">", "length_features_random_rate"),)),
    Claim("C8", "committed", "Where each opener length has its own first words, the shape plan is strong: the patch "
          "beats its control and green and habit work in most eligible prompts.",
          (E("shape_donor_valid_rate", "beats", "shape_donor_valid_control_rate"), E("green_valid_rate", ">=", 0.7),
           E("habit_valid_rate", ">=", 0.7))),
    Claim("C9", "barrier", "With line 2 cut off from line 1, the line break carries the rhyme and the meaning.",
          (E("nl_ld_rhyme", ">=", CARRIES), E("nl_ld_cue", ">=", CARRIES))),
    Claim("C10", "linebreak", "With noun-list line 1s and a local first layer, the line break carries the rhyme in "
          "at least one seed.", (E("nl_ld_rhyme", ">=", CARRIES, "any"),)),
    Claim("C11", "myopic", "Without gradients from later tokens the model hardly varies the opener's length: too few "
          "line 1s have a donor of another length to measure a shape plan.", (E("shape_donor_valid_rate", "n<", 10),)),
    Claim("C12", "main", "Held-out (cue word, rhyme family) pairs are written validly in most prompts in every seed, "
          "though not always as often as seen ones.", (E("composition_valid_holdout_rate", ">=", 0.8),)),
)


def claim_results(models):
    """[{id, model, text, rules, held}] for every claim whose model was studied."""
    out = []
    for c in CLAIMS:
        if c.model in models:
            rows = checked(c.rules, models[c.model]["seeds"])
            held = None if any(r["held"] is None for r in rows) else all(r["held"] for r in rows)
            out.append({"id": c.id, "model": c.model, "text": c.text, "rules": rows, "held": held})
    return out
