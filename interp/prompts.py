"""The prompts every experiment runs on, and the clean line 2s the model writes for them.

Three disjoint, named sets (asserted disjoint):
  fit     training line 1s: probes and directions are fit here;
  select  held-out line 1s: sites and scales are chosen here;
  report  other held-out line 1s: every reported rate is measured here.
The clean line 2 of each prompt is written once (`Clean`) and handed to every experiment.
"""
from dataclasses import dataclass
import random

from couplet_rules import commit_split, parse_line1, roles
from lexicon import NOUNS, article, valid_endings
from interp.edits import write_line2


@dataclass
class PromptSets:
    fit: list
    select: list
    report: list

    def check_disjoint(self):
        sets = {k: {tuple(l) for l in getattr(self, k)} for k in ("fit", "select", "report")}
        for a, b in (("fit", "select"), ("fit", "report"), ("select", "report")):
            if sets[a] & sets[b]:
                raise AssertionError(f"prompt sets {a} and {b} share {len(sets[a] & sets[b])} line 1s")
        return self


def prompt_sets(world, n_fit, n_select, n_report):
    """fit from the training split; select and report from the test split (never trained on)."""
    test = [c.line1 for c in world.split("test")]
    if n_select + n_report > len(test):
        raise ValueError(f"--n-select + --n-report ({n_select + n_report}) exceed the {len(test)} test line 1s")
    fit = [c.line1 for c in world.split("train")[:n_fit]]
    return PromptSets(fit, test[n_report:n_report + n_select], test[:n_report]).check_disjoint()


SEARCH_PROMPTS = 300


def search_prompts(world, n=SEARCH_PROMPTS):
    """The world search's own line 1s: the last n of the test split, never the study's select or report
    prompts (the first ones), so a seed the search picks is not then reported on the prompts that
    picked it."""
    test = [c.line1 for c in world.split("test")]
    return test[-n:]


class Clean:
    """Line 2s the unedited model writes, computed once per prompt and reused by every experiment."""

    def __init__(self, model, world):
        self.model, self.world, self.line2 = model, world, {}

    def __call__(self, line1s):
        todo = [l for l in dict.fromkeys(tuple(l) for l in line1s) if l not in self.line2]
        if todo:
            for l, l2 in zip(todo, write_line2(self.model, self.world, [list(t) for t in todo])):
                self.line2[l] = l2
        return [self.line2[tuple(l)] for l in line1s]


def well_formed(line2):
    """A line 2 with at least a/an and a noun at its end (an epithet may stand between them): the word
    that commits to the ending can be scored teacher-forced."""
    if not line2 or line2[-1] not in NOUNS:
        return False
    prefix = commit_split(line2)[0]
    return len(prefix) >= 2 and prefix[-1] in ("a", "an")


# ---- swap pairs -----------------------------------------------------------------------------------
def swap_pairs(world, line1s, slot, seed=0):
    """For each line 1 (A), a partner B differing in one word: slot 'rhyme' swaps the rhyme noun for a
    noun of another family, slot 'cue' the meaning noun for one of another meaning. The partner has
    the same article (so every token keeps its position), is not already in line 1, and its line 1
    has a valid ending. Returns [(a, b)]."""
    rng = random.Random(f"{seed}-{slot}")
    if slot == "cue" and world.config.meaning == "majority":
        return _majority_swaps(world, line1s, rng)
    pairs = []
    for a in line1s:
        options = swap_options(world, a, slot)
        if options:
            pairs.append((list(a), rng.choice(options)))
    return pairs


def swap_options(world, a, slot):
    """Every partner B of line 1 `a` that swap_pairs may choose for this slot (one word swapped)."""
    held = set(world.holdout_pairs)
    l1 = parse_line1(a, world.config)
    i = len(a) - 1 if slot == "rhyme" else roles(a, config=world.config).index("cue") - 1
    cue, rhyme = NOUNS[l1.cue], NOUNS[l1.rhyme]
    options = []
    for w, n in NOUNS.items():
        if w in a or article(w) != article(a[i]):
            continue
        new_cue, new_rhyme = (cue, n) if slot == "rhyme" else (n, rhyme)
        if slot == "rhyme" and n.family == rhyme.family or slot == "cue" and n.meaning == cue.meaning:
            continue
        if new_cue.family == new_rhyme.family or (new_cue.word, new_rhyme.family) in held:
            continue
        b = list(a)
        b[i] = w
        if world.config.meaning == "majority" and not _same_meaning(world, b, cue.meaning):
            continue  # the new noun would tie the vote
        exclude = b if world.config.grammar == "list" and world.config.exclude_line1 else ()
        if valid_endings(new_cue.meaning, new_rhyme.word, exclude):
            options.append(b)
    return options


def _majority_swaps(world, line1s, rng):
    """Cue swaps where the meaning is the one most of line 1's nouns share: every noun of that meaning
    before the rhyme noun is swapped for a noun of one meaning absent from line 1 (same article, other
    family than the rhyme), so the partner's majority is the new meaning and every role stays put."""
    pairs = []
    for a in line1s:
        l1 = parse_line1(a, world.config)
        old, family = NOUNS[l1.cue].meaning, NOUNS[l1.rhyme].family
        at = [i for i, w in enumerate(a[:-1]) if w in NOUNS and NOUNS[w].meaning == old]
        options = []
        present = {NOUNS[w].meaning for w in l1.nouns}  # a new meaning absent from line 1 keeps every role in place
        for meaning in sorted({n.meaning for n in NOUNS.values()} - present):
            b, used = list(a), set(a)
            for i in at:
                fits = [w for w, n in NOUNS.items() if n.meaning == meaning and n.family != family and w not in used
                        and article(w) == article(a[i])]
                if not fits:
                    break
                b[i] = rng.choice(fits)
                used.add(b[i])
            else:
                exclude = b if world.config.exclude_line1 else ()
                if _same_meaning(world, b, meaning) and valid_endings(meaning, l1.rhyme, exclude):
                    options.append(b)
        if options:
            pairs.append((list(a), rng.choice(options)))
    return pairs


def _same_meaning(world, line1, meaning):
    """Does this line 1 parse, with `meaning` as its meaning?"""
    try:
        return NOUNS[parse_line1(line1, world.config).cue].meaning == meaning
    except ValueError:
        return False
