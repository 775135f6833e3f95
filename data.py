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
one look, and (docs/planning.md) it does: this world's model re-reads line 1 instead of planning.

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

With `epithet`, the ending takes the adjective that only it of its cell takes (`lexicon.epithet`):

    one day she saw a frog and a goat with a cake <nl>
    then she found a mug and a funny snake

snake's cell (animal, -ake) also holds rattlesnake, whose epithet is another: the epithet is the first
word of line 2 that commits to *which* word of the cell ends it (the word level: "rabbit" or "habit"),
so a teacher-forced measurement scores the epithet, not the noun after it (`couplet_rules.commit_split`).

Splits (deterministic from `WorldConfig.seed`):
  - train:    couplets whose (meaning noun, rhyme family) pair is not held out;
  - test:     new couplets of the same kind, whose line 1 never occurs in train;
  - holdout:  the *compositional holdout*: line 1s whose meaning noun never met that rhyme family
              in training. Every ending they need is a trained ending (other meaning nouns of the
              same meaning do meet the family), so a model that composes "meaning" and "rhyme" from
              separately learned pieces can pass it.

Token sequence for the model: `<bos> line1 <nl> line2 <eos>`, right-padded with `<pad>`.
`couplet_rules.roles(line1, line2)` names every token (the one role vocabulary, ROLES, used by every experiment);
`couplet_rules.check_couplet` is the only judge of a couplet.
"""
from dataclasses import dataclass, asdict, fields
import random

import torch

from lexicon import (NOUNS, FAMILIES, MEANINGS, PRONOUNS, SEEN, PREAMBLES, LINKS, LIST_OPENERS, MIDDLES, OPENERS,
                     COMMITTED_OPENERS,
                     VERBS, FUNCTION_SYLLABLES, EPITHETS, article, cell_words, epithet, valid_endings, syllables)

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
         "end_link", "end_art", "end_epithet", "ending",        # end_epithet: with the `epithet` option
         "eos", "l2_other")                                     # l2_other: a line 2 that does not parse


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
    epithet: bool = False         # the ending takes its own adjective, told apart within its cell ("a sleepy snake")
    # classic grammar
    distractor_prob: float = 0.5  # chance line 1 carries "with a DISTRACTOR"
    meter: bool = True            # line 2 has a fixed syllable count (the opener depends on the ending)
    line2_syllables: int = 8
    committed_openers: bool = False  # the opener's first word alone names its length (lexicon.COMMITTED_OPENERS)

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
        if self.epithet and self.grammar != "list":
            raise ValueError("--epithet needs --grammar list")
        if self.committed_openers and (self.grammar != "classic" or not self.meter):
            raise ValueError("--committed-openers needs --grammar classic and --meter")
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
    tokens, so it is identical for every seed and variant; the `epithet` option appends its
    adjectives after them (so every other world keeps its token ids).
    """

    def __init__(self, config=WorldConfig()):
        self.config = config.validate()
        words = set(NOUNS) | set(FUNCTION_SYLLABLES) | set(PRONOUNS) | set(SEEN) | set(LINKS)
        for phrase in MIDDLES + sum(OPENERS.values(), ()) + sum(COMMITTED_OPENERS.values(), ()) + PREAMBLES + \
                LIST_OPENERS:
            words |= set(phrase.split())
        for verbs in VERBS.values():
            words |= set(verbs)
        self.itos = list(SPECIALS) + sorted(words) + (list(EPITHETS) if config.epithet else [])
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
        line2 = rng.choice(("",) + LIST_OPENERS).split() + [pronoun, rng.choice(SEEN)]
        for k, w in enumerate(nouns):
            words = [epithet(w), w] if self.config.epithet and w == ending else [w]
            line2 += ([rng.choice(LINKS)] if k else []) + [article(words[0])] + words
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
        opener = rng.choice(opener_table(cfg)[opener_syllables]).split()
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
            line2 = 2 + 4 + 3 * cfg.max_line2_nouns + cfg.epithet
        else:
            line1 = 4 + 3 + max(len(m.split()) for m in MIDDLES) + 2
            line2 = max(len(o.split()) for o in sum(OPENERS.values(), ())) + 4
        return 1 + line1 + 1 + line2 + 1


def opener_table(config):
    """{syllables: openers} of the classic grammar's line 2 in this world."""
    return COMMITTED_OPENERS if config.committed_openers else OPENERS


def pronoun_of(line1):
    """Line 1's pronoun (the first pronoun in it)."""
    return next(w for w in line1 if w in PRONOUNS)


def world_from_dict(d):
    known = {f.name for f in fields(WorldConfig)}
    unknown = set(d) - known
    if unknown:
        raise ValueError(f"unknown world settings: {', '.join(sorted(unknown))}")
    return CoupletWorld(WorldConfig(**d))


def world_to_dict(world):
    return asdict(world.config)


if __name__ == "__main__":  # print a few examples of each grammar
    from couplet_rules import check_couplet
    for grammar in GRAMMARS:
        world = CoupletWorld(WorldConfig(grammar=grammar, n_train=2000))
        for c in world.split("train")[:6]:
            print(c.text(), check_couplet(c.line1, c.line2, world.config))
    print(len(world.itos), "tokens;", "held-out pairs:", world.holdout_pairs)
