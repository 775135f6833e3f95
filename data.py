"""The couplet world: a seeded generator of two-line rhyming couplets in word tokens.

One token per word; `<nl>` is the line break. A couplet of the main world ("classic" grammar):

    she saw a goat with a hat and went to find a cake <nl>
    one sunny day she met a snake

Line 1 = PRONOUN SEEN ART CUE [with ART DISTRACTOR] MIDDLE ART RHYME
  - the CUE (goat) sets the *meaning* of the ending (animal);
  - the last word (cake) sets its *rhyme family* (-ake): the ending is their intersection;
Line 2 = OPENER PRONOUN VERB ART ENDING
  - rhyme, meaning: as above; article: a/an agrees; grammar: PRONOUN repeats line 1's and the VERB
    fits the meaning (she *met* a snake, she *ate* a steak);
  - meter (`meter`): line 2 has `line2_syllables` syllables, so the OPENER's length depends on the
    ending's syllables ("one sunny day" + snake, "and then" + rattlesnake): line 2's first word
    already depends on the planned ending.
  The ending is drawn by popularity among the cell's words (cat 3, rat 2, bat 1, wombat 1): a
  runner-up exists, as "habit" does for "rabbit".
Here the cue sits at a fixed index and the rhyme word after a fixed phrase: line 2 can find both in
one look, and (SCIENCE.md, README) it does: this world's model re-reads line 1 instead of planning.

The "list" grammar is the world search's attempt to remove those one-look routes (worlds.py):

    one day she saw a frog and a goat with a cake <nl>
    then she found a mug and a snake

Line 1 = [PREAMBLE] PRONOUN SEEN a/an NOUN {LINK a/an NOUN}        (2 to 4 nouns)
  - the LAST noun (cake) sets the rhyme family; the noun before it (goat) sets the meaning (or, with
    `cue_first`, the first noun); other nouns are distractors. Every noun after the first is
    introduced the same way (LINK a/an NOUN), so no noun can tell from its neighbours that it is the
    last: only a token *after* line 1 — the line break — can see which noun closed the line.
Line 2 = [OPENER] PRONOUN SEEN a/an NOUN {LINK a/an NOUN}           (1 to 3 nouns, the last is the ending)
  - rhyme and meaning as above; fresh: the ending is not a noun of line 1 (so a plan must hold
    *which* word of the cell is still free); the other nouns of line 2 come from other families, so
    "the most recent noun" is not line 1's last word.

With `meaning="majority"` the meaning is not one noun's but the one most of line 1's nouns share:

    last night she found a bear near a hair and an ear near a tail <nl>
    and then she found a stoat with a spine and a fingernail

hair, ear and tail are body words and the bear the odd one out, so the ending is a body word in -ail
(two or more nouns of the meaning, every other meaning at most once; the rhyme noun counts too). Only
a position whose past is exactly line 1 can count its nouns; the line break is one.

Splits (deterministic from `WorldConfig.seed`):
  - train:    couplets whose (meaning noun, rhyme family) pair is not held out;
  - test:     new couplets of the same kind, whose line 1 never occurs in train;
  - holdout:  the *compositional holdout*: line 1s whose meaning noun never met that rhyme family
              in training. Every ending they need is a trained ending (other meaning nouns of the
              same meaning do meet the family), so a model that composes "meaning" and "rhyme" from
              separately learned pieces can pass it.

Token sequence for the model: `<bos> line1 <nl> line2 <eos>`, right-padded with `<pad>`.
`roles(line1, line2)` names every token (the one role vocabulary, ROLES, used by every experiment).
"""
from collections import Counter
from dataclasses import dataclass, asdict, fields
import random

import torch

from lexicon import (NOUNS, FAMILIES, MEANINGS, PRONOUNS, SEEN, PREAMBLES, LINKS, LIST_OPENERS, MIDDLES, OPENERS,
                     VERBS, FUNCTION_SYLLABLES, article, cell_words, valid_endings, syllables)

SPECIALS = ("<pad>", "<bos>", "<nl>", "<eos>")
PAD, BOS, NL, EOS = range(4)
GRAMMARS = ("list", "classic")
MEANING_RULES = ("noun", "majority")

# The one vocabulary of token roles, in reading order. `roles()` gives every token one of these.
ROLES = ("bos", "pre1", "pre2", "pronoun", "seen",
         "x1_link", "x1_art", "x1", "x2_link", "x2_art", "x2",  # list: the other nouns of line 1
         "cue_link", "cue_art", "cue",                          # the meaning noun
         "d_link", "d_art", "distractor",                       # classic: "with a DISTRACTOR"
         "mid1", "mid2", "mid3", "mid4",                        # classic: the MIDDLE phrase
         "rhyme_link", "rhyme_art", "rhyme", "nl",              # line 1's last noun, the line break
         "l2_open1", "l2_open2", "l2_open3", "l2_open4", "l2_pronoun", "l2_verb",
         "y1_art", "y1", "y2_link", "y2_art", "y2",             # list: line 2's other nouns
         "end_link", "end_art", "ending", "eos", "l2_other")    # l2_other: a line 2 that does not parse
LINE2_ROLES = ROLES[ROLES.index("l2_open1"):]




@dataclass(frozen=True)
class WorldConfig:
    """Every knob of the world; a variant of the world is a new value of this object."""
    seed: int = 0
    n_train: int = 60000
    n_test: int = 1000            # per evaluation split (test and holdout)
    holdout_pairs: int = 12       # (meaning noun, rhyme family) pairs never together in a training line 1
    grammar: str = "classic"      # "list" or "classic" (see the module docstring)
    # list grammar
    min_nouns: int = 2            # nouns in line 1: the last sets the rhyme, the one before the meaning
    max_nouns: int = 4
    max_line2_nouns: int = 2      # other nouns in line 2 before its ending (0 .. this many)
    max_preamble: int = 2         # words before line 1's pronoun (0 .. this many)
    exclude_line1: bool = True    # the ending is never a noun of line 1
    taken_prob: float = 0.25      # chance a distractor is the cell's favourite ending (the runner-up must do)
    cue_first: bool = False       # the meaning noun is line 1's first noun (else the one before the last)
    meaning: str = "noun"         # "noun": one noun sets the meaning; "majority": the meaning most of line 1's nouns share
    # classic grammar
    distractor_prob: float = 0.5  # chance line 1 carries "with a DISTRACTOR"
    meter: bool = True            # line 2 has a fixed syllable count (the opener depends on the ending)
    line2_syllables: int = 8

    def validate(self):
        """Raise ValueError naming the flag when these settings cannot make couplets."""
        if self.grammar not in GRAMMARS:
            raise ValueError(f"--grammar must be one of {', '.join(GRAMMARS)}, got {self.grammar!r}")
        if not 0 <= self.seed < 2 ** 32:
            raise ValueError(f"--seed must be in [0, 2**32), got {self.seed}")
        if self.n_train < 1 or self.n_test < 1:
            raise ValueError("--n-train and --n-test must be at least 1")
        if not 2 <= self.min_nouns <= self.max_nouns <= 4:
            raise ValueError(f"need 2 <= --min-nouns <= --max-nouns <= 4, got {self.min_nouns} and {self.max_nouns}")
        if not 0 <= self.max_line2_nouns <= 2 or not 0 <= self.max_preamble <= 2:
            raise ValueError("--max-line2-nouns and --max-preamble must be in [0, 2]")
        if self.meaning not in MEANING_RULES:
            raise ValueError(f"--meaning must be one of {', '.join(MEANING_RULES)}, got {self.meaning!r}")
        if self.meaning == "majority" and (self.grammar != "list" or self.min_nouns < 3):
            raise ValueError("--meaning majority needs --grammar list and --min-nouns of at least 3")
        if not 0 <= self.taken_prob <= 1:
            raise ValueError(f"--taken-prob must be in [0, 1], got {self.taken_prob}")
        if not 0 <= self.distractor_prob <= 1:
            raise ValueError(f"--distractor-prob must be in [0, 1], got {self.distractor_prob}")
        fits = [n for n in range(1, 30) if {n - 3 - w.syllables for w in NOUNS.values()} <= set(OPENERS)]
        if self.meter and self.line2_syllables not in fits:
            raise ValueError(f"--line2-syllables must be one of {fits} with --meter, got {self.line2_syllables}")
        most = len(holdout_candidates())
        if not 0 <= self.holdout_pairs <= most:
            raise ValueError(f"--holdout-pairs must be in [0, {most}], got {self.holdout_pairs}")
        return self


@dataclass
class Couplet:
    line1: list
    line2: list
    meaning: str
    family: str

    def text(self):
        return " ".join(self.line1) + " / " + " ".join(self.line2)


def holdout_candidates():
    """(meaning noun, family) pairs that may be held out: the cell they point to has an ending, and at
    least three other nouns of the same meaning keep meeting the family in training."""
    out = []
    for w, n in sorted(NOUNS.items()):
        for f in FAMILIES:
            if f != n.family and cell_words(n.meaning, f):
                others = [v for v, m in NOUNS.items() if m.meaning == n.meaning and v != w and m.family != f]
                if len(others) >= 3:
                    out.append((w, f))
    return out


class CoupletWorld:
    """Seeded couplet generator plus its vocabulary and splits.

    `world.split("train")` returns a list of Couplets; `world.encode(...)` turns words into ids.
    The vocabulary is every word either grammar can produce, sorted, after the four special
    tokens, so it is identical for every seed and variant.
    """

    def __init__(self, config=WorldConfig()):
        self.config = config.validate()
        words = set(NOUNS) | set(FUNCTION_SYLLABLES) | set(PRONOUNS) | set(SEEN) | set(LINKS)
        for phrase in MIDDLES + sum(OPENERS.values(), ()) + PREAMBLES + LIST_OPENERS:
            words |= set(phrase.split())
        for verbs in VERBS.values():
            words |= set(verbs)
        self.itos = list(SPECIALS) + sorted(words)
        self.stoi = {w: i for i, w in enumerate(self.itos)}
        self.cells = [(m, f) for m in MEANINGS for f in FAMILIES if cell_words(m, f)]
        # held-out pairs are spread over meaning nouns: at most one family per noun
        rng = random.Random(config.seed)
        pairs, used = holdout_candidates(), set()
        rng.shuffle(pairs)
        self.holdout_pairs = []
        for w, f in pairs:
            if len(self.holdout_pairs) < config.holdout_pairs and w not in used:
                self.holdout_pairs.append((w, f))
                used.add(w)
        self.holdout_pairs.sort()
        self._held = set(self.holdout_pairs)
        self._splits = {}

    # ---- vocabulary -------------------------------------------------------------------------
    def encode(self, words):
        unknown = [w for w in words if w not in self.stoi]
        if unknown:
            raise KeyError(f"not in the vocabulary: {' '.join(unknown)}")
        return [self.stoi[w] for w in words]

    def decode(self, ids):
        return [self.itos[i] for i in ids]

    def prompt_ids(self, line1):
        return [BOS] + self.encode(line1) + [NL]

    def couplet_ids(self, c):
        return [BOS] + self.encode(c.line1) + [NL] + self.encode(c.line2) + [EOS]

    # ---- sampling -----------------------------------------------------------------------------
    def sample(self, rng, held_out=False):
        """One couplet; held_out=True draws only line 1s whose (meaning noun, family) pair is held out."""
        while True:
            if held_out:
                cue, family = rng.choice(self.holdout_pairs)
                meaning = NOUNS[cue].meaning
            else:
                meaning, family = rng.choice(self.cells)
                cue = rng.choice([w for w, n in NOUNS.items() if n.meaning == meaning and n.family != family])
                if (cue, family) in self._held:
                    continue
            rhyme = rng.choice([w for w, n in NOUNS.items() if n.family == family])
            line1 = (self._list_line1 if self.config.grammar == "list" else self._classic_line1)(rng, cue, rhyme,
                                                                                                   meaning)
            exclude = line1 if self.config.grammar == "list" and self.config.exclude_line1 else ()
            endings = valid_endings(meaning, rhyme, exclude)
            if endings:
                break
        ending = rng.choices(endings, weights=[NOUNS[w].popularity for w in endings])[0]
        make = self._list_line2 if self.config.grammar == "list" else self._classic_line2
        return Couplet(line1, make(rng, pronoun_of(line1), ending, meaning), meaning, family)

    def _list_line1(self, rng, cue, rhyme, meaning):
        cfg = self.config
        if cfg.meaning == "majority":
            return self._majority_line1(rng, cue, rhyme, meaning)
        n_extra = rng.randint(cfg.min_nouns, cfg.max_nouns) - 2
        extra = rng.sample([w for w in NOUNS if w not in (cue, rhyme)], n_extra)
        favourites = valid_endings(meaning, rhyme, (cue,))
        if n_extra and len(favourites) >= 2 and rng.random() < cfg.taken_prob and favourites[0] not in extra:
            extra[rng.randrange(n_extra)] = favourites[0]  # line 1 takes the favourite: the runner-up must end
        nouns = [cue] + extra + [rhyme] if cfg.cue_first else extra + [cue, rhyme]
        return self._list_words(rng, nouns)

    def _majority_line1(self, rng, cue, rhyme, meaning):
        """Two nouns of `meaning` (or the favourite ending as the second, with taken_prob) and nouns of
        other meanings, each meaning once, in any order; the rhyme noun last: `meaning` is the one
        most of line 1's nouns share, and only the whole of line 1 tells it."""
        cfg = self.config
        n_other = rng.randint(cfg.min_nouns, cfg.max_nouns) - 3
        favourites = valid_endings(meaning, rhyme, (cue,))
        family = NOUNS[rhyme].family
        seconds = [w for w, n in NOUNS.items() if n.meaning == meaning and w not in (cue, rhyme) and n.family != family]
        second = favourites[0] if len(favourites) >= 2 and rng.random() < cfg.taken_prob else rng.choice(seconds)
        others, used = [], {meaning, NOUNS[rhyme].meaning}
        for w in rng.sample(sorted(NOUNS), len(NOUNS)):
            if len(others) < n_other and NOUNS[w].meaning not in used and w not in (cue, second, rhyme):
                others.append(w)
                used.add(NOUNS[w].meaning)
        nouns = [cue, second] + others
        rng.shuffle(nouns)
        return self._list_words(rng, nouns + [rhyme])

    def _list_words(self, rng, nouns):
        """[PREAMBLE] PRONOUN SEEN a/an NOUN {LINK a/an NOUN} for these nouns."""
        pre = rng.choice(("",) + tuple(p for p in PREAMBLES if len(p.split()) <= self.config.max_preamble))
        line1 = pre.split() + [rng.choice(PRONOUNS), rng.choice(SEEN), article(nouns[0]), nouns[0]]
        for w in nouns[1:]:
            line1 += [rng.choice(LINKS), article(w), w]
        return line1

    def _list_line2(self, rng, pronoun, ending, meaning):
        family = NOUNS[ending].family
        others = rng.sample([w for w, n in NOUNS.items() if n.family != family],
                            rng.randint(0, self.config.max_line2_nouns))
        nouns = others + [ending]
        line2 = rng.choice(("",) + LIST_OPENERS).split() + [pronoun, rng.choice(SEEN), article(nouns[0]), nouns[0]]
        for w in nouns[1:]:
            line2 += [rng.choice(LINKS), article(w), w]
        return line2

    def _classic_line1(self, rng, cue, rhyme, meaning):
        line1 = [rng.choice(PRONOUNS), rng.choice(SEEN), article(cue), cue]
        if rng.random() < self.config.distractor_prob:
            distractor = rng.choice([w for w in NOUNS if w not in (cue, rhyme)])
            line1 += ["with", article(distractor), distractor]
        return line1 + rng.choice(MIDDLES).split() + [article(rhyme), rhyme]

    def _classic_line2(self, rng, pronoun, ending, meaning):
        cfg = self.config
        opener_syllables = cfg.line2_syllables - 3 - NOUNS[ending].syllables if cfg.meter else 2
        opener = rng.choice(OPENERS[opener_syllables]).split()
        return opener + [pronoun, rng.choice(VERBS[meaning]), article(ending), ending]

    def split(self, name):
        """'train', 'test' or 'holdout': a deterministic list of Couplets."""
        if name not in self._splits:
            rng = random.Random(f"{self.config.seed}-{name}")
            if name == "train":
                out = [self.sample(rng) for _ in range(self.config.n_train)]
            elif name in ("test", "holdout"):
                if name == "holdout" and not self.holdout_pairs:
                    return []
                seen = {tuple(c.line1) for c in self.split("train")}
                out, lines = [], set()
                while len(out) < self.config.n_test:
                    c = self.sample(rng, held_out=name == "holdout")
                    if tuple(c.line1) not in seen and tuple(c.line1) not in lines:
                        lines.add(tuple(c.line1))
                        out.append(c)
            else:
                raise ValueError(f"unknown split {name!r}: use train, test or holdout")
            self._splits[name] = out
        return self._splits[name]

    def tensor(self, couplets, block_size):
        """(N, block_size) int64 token ids, right-padded with <pad>."""
        out = torch.full((len(couplets), block_size), PAD, dtype=torch.long)
        for i, c in enumerate(couplets):
            ids = self.couplet_ids(c)
            if len(ids) > block_size:
                raise ValueError(f"couplet of {len(ids)} tokens exceeds block_size {block_size}")
            out[i, :len(ids)] = torch.tensor(ids)
        return out

    def max_len(self):
        """Longest possible token sequence in this world."""
        cfg = self.config
        if cfg.grammar == "list":
            line1 = cfg.max_preamble + 4 + 3 * (cfg.max_nouns - 1)
            line2 = 2 + 4 + 3 * cfg.max_line2_nouns
        else:
            line1 = 4 + 3 + max(len(m.split()) for m in MIDDLES) + 2
            line2 = max(len(o.split()) for o in sum(OPENERS.values(), ())) + 4
        return 1 + line1 + 1 + line2 + 1


def pronoun_of(line1):
    """Line 1's pronoun (the first pronoun in it)."""
    return next(w for w in line1 if w in PRONOUNS)


# ---- parsing and judging ------------------------------------------------------------------------
@dataclass
class Line1:
    pronoun: str
    nouns: list   # in order
    cue: str      # the meaning noun
    rhyme: str    # the rhyme noun
    roles: list   # one role name per word


def _noun_groups(words, start, first_intro):
    """Parse `INTRO a/an NOUN {LINK a/an NOUN}` from words[start:]; returns [(intro, art, noun)] or
    ValueError naming what is wrong. `first_intro` is the set of words allowed before the first noun."""
    groups, i = [], start
    while i < len(words):
        intro = words[i]
        allowed = first_intro if not groups else LINKS
        if intro not in allowed or i + 2 >= len(words):
            raise ValueError(f"expected {'/'.join(sorted(allowed))} a/an NOUN at '{' '.join(words[i:i + 3])}'")
        art, noun = words[i + 1], words[i + 2]
        if noun not in NOUNS:
            raise ValueError(f"{noun!r} is not a noun of this world (see --list-words)")
        if art != article(noun):
            raise ValueError(f"'{art} {noun}' has the wrong article: '{article(noun)} {noun}'")
        groups.append((intro, art, noun))
        i += 3
    return groups


def parse_line1(line1, config=WorldConfig()):
    """Line1 (pronoun, nouns, meaning noun, rhyme noun, roles), or ValueError saying what is wrong."""
    words = list(line1)
    if config.grammar == "classic":
        return _parse_classic_line1(words)
    shape = "[PREAMBLE] PRONOUN SEEN a/an NOUN {LINK a/an NOUN}"
    i = 0
    for pre in sorted(PREAMBLES, key=lambda p: -len(p.split())):
        if words[:len(pre.split())] == pre.split() and len(pre.split()) <= config.max_preamble:
            i = len(pre.split())
            break
    if len(words) < i + 2 or words[i] not in PRONOUNS:
        raise ValueError(f"line 1 must read {shape}: no pronoun ({'/'.join(PRONOUNS)}) where expected")
    groups = _noun_groups(words, i + 1, SEEN)
    if not config.min_nouns <= len(groups) <= config.max_nouns:
        raise ValueError(f"line 1 needs {config.min_nouns} to {config.max_nouns} nouns, has {len(groups)}")
    nouns = [g[2] for g in groups]
    if len(set(nouns)) < len(nouns):
        raise ValueError("line 1 names a noun twice")
    roles = [f"pre{k + 1}" for k in range(i)] + ["pronoun", "seen"]
    if config.meaning == "majority":  # the cue: the first noun of the meaning most nouns share
        counts = Counter(NOUNS[w].meaning for w in nouns)
        (top, k_top), *rest = counts.most_common()
        if k_top < 2 or rest and rest[0][1] == k_top:
            raise ValueError("line 1's nouns must share one meaning more often than any other")
        cue_at = next(k for k, w in enumerate(nouns[:-1]) if NOUNS[w].meaning == top)
    else:
        cue_at = 0 if config.cue_first else len(nouns) - 2
    others = iter(f"x{k + 1}" for k in range(len(groups) - 2))
    names = ["cue" if k == cue_at else next(others) for k in range(len(nouns) - 1)] + ["rhyme"]
    for k, name in enumerate(names):
        roles += ([] if k == 0 else [f"{name}_link"]) + [f"{name}_art", name]
    return Line1(words[i], nouns, nouns[names.index("cue")], nouns[-1], roles)


def _parse_classic_line1(words):
    shape = "PRONOUN SEEN a/an CUE [with a/an NOUN] MIDDLE a/an RHYME"
    if len(words) < 6 or words[0] not in PRONOUNS or words[1] not in SEEN:
        raise ValueError(f"line 1 must read {shape}")
    cue, rhyme = words[3], words[-1]
    for word in (cue, rhyme):
        if word not in NOUNS:
            raise ValueError(f"line 1 needs a known noun where it has {word!r}")
    for art, noun in ((words[2], cue), (words[-2], rhyme)):
        if art != article(noun):
            raise ValueError(f"'{art} {noun}' has the wrong article: '{article(noun)} {noun}'")
    rest = words[4:-2]
    roles = ["pronoun", "seen", "cue_art", "cue"]
    nouns = [cue]
    if rest[:1] == ["with"]:
        if len(rest) < 3 or rest[2] not in NOUNS or rest[1] != article(rest[2]):
            raise ValueError(f"line 1 must read {shape}: 'with a/an NOUN' is malformed")
        nouns.append(rest[2])
        roles += ["d_link", "d_art", "distractor"]
        rest = rest[3:]
    if " ".join(rest) not in MIDDLES:
        raise ValueError(f"line 1 must read {shape}: {' '.join(rest)!r} is not a middle phrase")
    roles += [f"mid{k + 1}" for k in range(len(rest))] + ["rhyme_art", "rhyme"]
    return Line1(words[0], nouns + [rhyme], cue, rhyme, roles)


def line2_roles(line2, config=WorldConfig()):
    """A role for every word of a line 2 (as written: it may be wrong); words that do not parse
    are 'l2_other', but the last two are always 'end_art' and 'ending'."""
    n = len(line2)
    roles = ["l2_other"] * n
    if n >= 1:
        roles[-1] = "ending"
    if n >= 2:
        roles[-2] = "end_art"
    p = next((i for i, w in enumerate(line2[:-2]) if w in PRONOUNS), None)
    if p is None:
        return roles
    for k in range(min(p, 4)):
        roles[k] = f"l2_open{k + 1}"
    roles[p] = "l2_pronoun"
    if p + 1 < n - 2:
        roles[p + 1] = "l2_verb"
    if config.grammar == "list":  # p+1 verb, then groups of (link) art noun; the last group is the ending's
        names = ["y1_art", "y1", "y2_link", "y2_art", "y2", "end_link"]
        for k, i in enumerate(range(p + 2, n - 2)):
            roles[i] = names[k] if k < len(names) else "l2_other"
        if n - 3 > p + 1:
            roles[n - 3] = "end_link"
    return roles


def roles(line1, line2=None, config=WorldConfig()):
    """The role of every token of `<bos> line1 <nl>` (and of `line2`, when given, without <eos>)."""
    out = ["bos"] + parse_line1(line1, config).roles + ["nl"]
    return out + (line2_roles(line2, config) if line2 is not None else [])


def role_position(line1, role, config=WorldConfig()):
    """Index of `role` in `<bos> line1 <nl>`, or None when this prompt has no such token."""
    r = roles(line1, config=config)
    return r.index(role) if role in r else None




RULES = ("rhyme", "meaning", "fresh", "article", "meter", "grammar")


def check_couplet(line1, line2, config=WorldConfig()):
    """The rules a couplet breaks, as a sorted list of names from RULES; empty means valid.

    line1 and line2 are lists of words. Line 1 is a prompt and must parse (else ValueError);
    line 2 is whatever a model wrote, so nothing about it raises.
    """
    l1 = parse_line1(line1, config)
    broken = set()
    ending = line2[-1] if line2 else None
    noun = NOUNS.get(ending)
    if noun is None or noun.family != NOUNS[l1.rhyme].family or ending == l1.rhyme:
        broken.add("rhyme")
    if noun is None or noun.meaning != NOUNS[l1.cue].meaning:
        broken.add("meaning")
    if config.grammar == "list":
        if config.exclude_line1 and ending in l1.nouns:
            broken.add("fresh")
        broken |= _check_list_line2(l1, line2, noun)
    else:
        if noun is None or len(line2) < 2 or line2[-2] != article(ending):
            broken.add("article")
        if config.meter and syllables(line2) != config.line2_syllables:
            broken.add("meter")
        openers = [tuple(o.split()) for o in sum(OPENERS.values(), ())]
        if (len(line2) < 5 or tuple(line2[:-4]) not in openers or line2[-4] != l1.pronoun or noun is None
                or line2[-3] not in VERBS[noun.meaning]):
            broken.add("grammar")
    return sorted(broken)


def _check_list_line2(l1, line2, noun):
    broken = set()
    p = next((i for i, w in enumerate(line2) if w in PRONOUNS), None)
    if p is None or " ".join(line2[:p]) not in ("",) + LIST_OPENERS or line2[p] != l1.pronoun:
        return {"grammar", "article"} if noun is None else {"grammar"}
    try:
        groups = _noun_groups(line2, p + 1, SEEN)
    except ValueError as e:
        return {"article"} if "article" in str(e) else {"grammar"}
    others = [g[2] for g in groups[:-1]]
    if not 1 <= len(groups) <= 3 or noun is None or any(NOUNS[w].family == noun.family for w in others):
        broken.add("grammar")
    return broken


def world_from_dict(d):
    known = {f.name for f in fields(WorldConfig)}
    unknown = set(d) - known
    if unknown:
        raise ValueError(f"unknown world settings: {', '.join(sorted(unknown))}")
    return CoupletWorld(WorldConfig(**d))


def world_to_dict(world):
    return asdict(world.config)


if __name__ == "__main__":  # print a few examples of each grammar
    for grammar in GRAMMARS:
        world = CoupletWorld(WorldConfig(grammar=grammar, n_train=2000))
        for c in world.split("train")[:6]:
            print(c.text(), check_couplet(c.line1, c.line2, world.config))
    print(len(world.itos), "tokens;", "held-out pairs:", world.holdout_pairs)
