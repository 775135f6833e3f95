"""The couplet world: a seeded generator of two-line rhyming couplets in word tokens.

A couplet looks like this (one token per word, `<nl>` is the line break):

    she saw a goat with a hat and went to find a cake <nl>
    one sunny day she met a snake

The rules, all checked by `check_couplet`:

Line 1 = PRONOUN SEEN ART CUE [with ART DISTRACTOR] MIDDLE ART RHYME
  - CUE (the first noun) sets the *meaning* of the couplet: the meaning category of the cue
    (animal, food, nature, home, body, clothes).
  - RHYME (the last word) sets the *rhyme family* (-at, -ee, -og, ...).
  - DISTRACTOR and MIDDLE make line 1 vary in length; the distractor is another rhyme-family
    noun, so "the rhyme word" cannot be found by its identity alone, only by being last.

Line 2 = OPENER PRONOUN VERB ART ENDING
  - rhyme:   ENDING is in RHYME's family and is a different word.
  - meaning: ENDING's meaning category is CUE's category. The ending is therefore the
             *intersection* of meaning and rhyme. Some (meaning, family) cells hold several
             words with different popularity (cat 3, rat 2, bat 1, wombat 1): a runner-up exists.
  - article: ART is "an" before a vowel-initial ENDING, "a" otherwise.
  - meter:   line 2 has exactly `line2_syllables` syllables (default 8), so the OPENER's length
             (2, 3 or 4 syllables) depends on the ending's syllable count: a model that has not
             chosen its ending cannot write the opener right.
  - grammar: PRONOUN repeats line 1's pronoun, VERB suits the ending's meaning ("ate" a food,
             "met" an animal), OPENER is a known opener.

Splits (all deterministic from `WorldConfig.seed`):
  - train:    couplets from every (meaning, family) cell except the held-out ones;
  - test:     new couplets from the same cells whose line 1 never occurs in train;
  - holdout:  the *compositional holdout*: couplets from (meaning, family) cells that never end a
              training line 2 (drawn among cells of at most two words). Their words still appear
              in training as cues and rhyme words, so the model knows each word's meaning and
              rhyme separately, but never saw the pair combined as an ending.

Token sequence for the model: `<bos> line1 <nl> line2 <eos>`, right-padded with `<pad>`.
"""
from dataclasses import dataclass, asdict, field
import random

import torch

# family: word meaning syllables popularity; ...   (popularity only weighs the choice of ending)
LEXICON = """
at:   cat animal 1 3; rat animal 1 2; bat animal 1 1; wombat animal 2 1; hat clothes 1 2; mat home 1 2; doormat home 2 1
ee:   bee animal 1 3; flea animal 1 1; chimpanzee animal 3 2; tea food 1 3; pea food 1 1; tree nature 1 3; sea nature 1 2; key home 1 1; knee body 1 1
og:   dog animal 1 3; frog animal 1 2; hedgehog animal 2 1; fog nature 1 2; log nature 1 3; clog clothes 1 1
ake:  snake animal 1 3; rattlesnake animal 3 1; cake food 1 3; cupcake food 2 2; steak food 1 1; lake nature 1 3; snowflake nature 2 1; rake home 1 1
ail:  whale animal 1 3; snail animal 1 2; nightingale animal 3 1; kale food 1 1; hail nature 1 2; trail nature 1 1; pail home 1 2; nail home 1 1; tail body 1 2; fingernail body 3 1
ine:  porcupine animal 3 1; wine food 1 1; pine nature 1 2; vine nature 1 1; twine home 1 1; spine body 1 1
ice:  mice animal 1 1; rice food 1 2; spice food 1 1; ice nature 1 1; dice home 1 1
ape:  ape animal 1 1; grape food 1 1; landscape nature 2 1; tape home 1 1; cape clothes 1 1
oat:  goat animal 1 3; stoat animal 1 1; oat food 1 1; moat nature 1 1; coat clothes 1 2; overcoat clothes 3 1; throat body 1 1
ed:   bread food 1 3; gingerbread food 3 1; riverbed nature 3 1; flowerbed nature 3 1; bed home 1 2; shed home 1 1; head body 1 1; thread clothes 1 1
ug:   bug animal 1 2; slug animal 1 1; ladybug animal 3 1; mug home 1 2; rug home 1 1; jug home 1 1
ain:  crane animal 1 1; grain food 1 1; rain nature 1 2; hurricane nature 3 1; chain home 1 1; brain body 1 2; vein body 1 1
ox:   fox animal 1 2; ox animal 1 1; box home 1 2; mailbox home 2 1
ear:  deer animal 1 2; reindeer animal 2 1; beer food 1 1; pier nature 1 1; spear home 1 1; chandelier home 3 1; ear body 1 1
eal:  seal animal 1 2; eel animal 1 1; meal food 1 2; oatmeal food 2 1; veal food 1 1; wheel home 1 1; heel body 1 1
air:  bear animal 1 2; hare animal 1 1; pear food 1 1; air nature 1 1; chair home 1 2; armchair home 2 1; hair body 1 1
oot:  newt animal 1 1; fruit food 1 2; grapefruit food 2 1; root nature 1 1; flute home 1 1; boot clothes 1 2; suit clothes 1 1
"""

MEANINGS = ("animal", "food", "nature", "home", "body", "clothes")
PRONOUNS = ("he", "she", "they")
SEEN = ("saw", "found", "spotted", "watched")
MIDDLES = ("beside", "and had to grab", "and went to find", "and ran to get",
           "and dreamed about", "and then forgot about", "and looked around for")
OPENERS = {2: ("and then", "at last", "and so"),
           3: ("then at last", "that morning", "and later"),
           4: ("and then at last", "one sunny day", "that very day")}
VERBS = {"animal": ("met", "chased", "fed"), "food": ("ate", "served", "shared"),
         "nature": ("saw", "crossed", "drew"), "home": ("bought", "fixed", "sold"),
         "body": ("hurt", "washed", "scratched"), "clothes": ("wore", "lost", "mended")}
# every non-noun word that appears in a couplet, with its syllable count
FUNCTION_SYLLABLES = {"a": 1, "an": 1, "he": 1, "she": 1, "they": 1, "with": 1, "and": 1, "then": 1,
                      "at": 1, "last": 1, "so": 1, "that": 1, "morning": 2, "later": 2, "one": 1,
                      "sunny": 2, "day": 1, "very": 2}
SPECIALS = ("<pad>", "<bos>", "<nl>", "<eos>")
PAD, BOS, NL, EOS = range(4)


@dataclass(frozen=True)
class Noun:
    word: str
    family: str
    meaning: str
    syllables: int
    popularity: int


def parse_lexicon(text=LEXICON):
    nouns = {}
    for line in text.strip().splitlines():
        family, entries = line.split(":", 1)
        for entry in entries.split(";"):
            word, meaning, syl, pop = entry.split()
            assert meaning in MEANINGS and word not in nouns, entry
            nouns[word] = Noun(word, family.strip(), meaning, int(syl), int(pop))
    return nouns


NOUNS = parse_lexicon()
FAMILIES = tuple(sorted({n.family for n in NOUNS.values()}))


def article(word):
    return "an" if word[0] in "aeiou" else "a"


def cell_words(meaning, family):
    """Nouns of one (meaning, family) cell, most popular first (ties: alphabetical)."""
    cell = [n for n in NOUNS.values() if n.meaning == meaning and n.family == family]
    return [n.word for n in sorted(cell, key=lambda n: (-n.popularity, n.word))]


def valid_endings(meaning, rhyme_word):
    """Every valid line-2 ending for a line 1 with this meaning and last word, most popular first."""
    return [w for w in cell_words(meaning, NOUNS[rhyme_word].family) if w != rhyme_word]


@dataclass(frozen=True)
class WorldConfig:
    """Every knob of the world. Variants for later experiments are new values of this object."""
    seed: int = 0
    n_train: int = 60000
    n_test: int = 1000            # per evaluation split (test and holdout)
    holdout_cells: int = 8        # (meaning, family) cells that never end a training line 2
    distractor_prob: float = 0.5  # chance line 1 carries "with a DISTRACTOR"
    meter: bool = True            # line 2 has a fixed syllable count (opener depends on ending)
    line2_syllables: int = 8


@dataclass
class Couplet:
    line1: list
    line2: list
    meaning: str
    family: str

    def text(self):
        return " ".join(self.line1) + " / " + " ".join(self.line2)


class CoupletWorld:
    """Seeded couplet generator plus its vocabulary and splits.

    `world.split("train")` returns a list of Couplets; `world.encode(...)` turns words into ids.
    The vocabulary is every word the world can produce, sorted, after the four special tokens,
    so it is identical for every seed and variant.
    """

    def __init__(self, config=WorldConfig()):
        self.config = config
        words = set(NOUNS) | set(FUNCTION_SYLLABLES) | set(PRONOUNS) | set(SEEN)
        for phrase in MIDDLES + sum(OPENERS.values(), ()):
            words |= set(phrase.split())
        for verbs in VERBS.values():
            words |= set(verbs)
        self.itos = list(SPECIALS) + sorted(words)
        self.stoi = {w: i for i, w in enumerate(self.itos)}
        # cells that can end a line 2: some rhyme word of the family leaves a valid ending
        cells = [(m, f) for m in MEANINGS for f in FAMILIES if len(cell_words(m, f)) >= 1]
        rng = random.Random(config.seed)
        # hold out only small cells (<= 2 words): the rich ones carry the runner-up experiments
        small = [c for c in cells if len(cell_words(*c)) <= 2]
        held = set(rng.sample(small, config.holdout_cells))
        self.holdout_cells = sorted(held)
        self.train_cells = [c for c in cells if c not in held]
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
    def sample(self, rng, cells):
        """One couplet from a random (meaning, family) cell of `cells`."""
        cfg = self.config
        while True:
            meaning, family = rng.choice(cells)
            rhyme = rng.choice([w for w, n in NOUNS.items() if n.family == family])
            endings = valid_endings(meaning, rhyme)
            if endings:
                break
        cue = rng.choice([w for w, n in NOUNS.items() if n.meaning == meaning and w != rhyme])
        pronoun = rng.choice(PRONOUNS)
        line1 = [pronoun, rng.choice(SEEN), article(cue), cue]
        if rng.random() < cfg.distractor_prob:
            distractor = rng.choice([w for w in NOUNS if w not in (cue, rhyme)])
            line1 += ["with", article(distractor), distractor]
        line1 += rng.choice(MIDDLES).split() + [article(rhyme), rhyme]
        ending = rng.choices(endings, weights=[NOUNS[w].popularity for w in endings])[0]
        opener_syllables = cfg.line2_syllables - 3 - NOUNS[ending].syllables if cfg.meter else 2
        opener = rng.choice(OPENERS[opener_syllables]).split()
        line2 = opener + [pronoun, rng.choice(VERBS[meaning]), article(ending), ending]
        return Couplet(line1, line2, meaning, family)

    def split(self, name):
        """'train', 'test' or 'holdout': a deterministic list of Couplets."""
        if name not in self._splits:
            rng = random.Random(f"{self.config.seed}-{name}")
            if name == "train":
                out = [self.sample(rng, self.train_cells) for _ in range(self.config.n_train)]
            elif name in ("test", "holdout"):
                seen = {tuple(c.line1) for c in self.split("train")}
                cells = self.train_cells if name == "test" else self.holdout_cells
                out, lines = [], set()
                while len(out) < self.config.n_test:
                    c = self.sample(rng, cells)
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
        line1 = 4 + 3 + max(len(m.split()) for m in MIDDLES) + 2
        line2 = max(len(o.split()) for o in sum(OPENERS.values(), ())) + 4
        return 1 + line1 + 1 + line2 + 1


# ---- the validator --------------------------------------------------------------------------
def syllables(words):
    return sum(NOUNS[w].syllables if w in NOUNS else FUNCTION_SYLLABLES.get(w, 1) for w in words)


def parse_line1(line1):
    """(pronoun, cue, rhyme word) of a line 1, or ValueError saying what is wrong."""
    if len(line1) < 6 or line1[0] not in PRONOUNS or line1[1] not in SEEN:
        raise ValueError("line 1 must start with PRONOUN SEEN ART CUE")
    cue, rhyme = line1[3], line1[-1]
    for word in (cue, rhyme):
        if word not in NOUNS:
            raise ValueError(f"line 1 needs a known noun where it has {word!r}")
    return line1[0], cue, rhyme


def prompt_positions(line1):
    """Token index of each named role in the prompt `<bos> line1 <nl>` (index 0 is <bos>).
    'cue' is the meaning noun, 'rhyme' line 1's last word, 'nl' the line break (the prompt's last
    token, whose output is line 2's first word)."""
    n = len(line1)
    return {"bos": 0, "pronoun": 1, "cue": 4, "rhyme_article": n - 1, "rhyme": n, "nl": n + 1}


def check_couplet(line1, line2, config=WorldConfig()):
    """The rules a couplet breaks, as a sorted list of names from
    {'rhyme', 'meaning', 'article', 'meter', 'grammar'}; empty means valid.

    line1 and line2 are lists of words. Line 1 is a prompt and must parse (else ValueError);
    line 2 is whatever a model wrote, so nothing about it raises.
    """
    pronoun, cue, rhyme = parse_line1(line1)
    broken = set()
    ending = line2[-1] if line2 else None
    noun = NOUNS.get(ending)
    if noun is None or noun.family != NOUNS[rhyme].family or ending == rhyme:
        broken.add("rhyme")
    if noun is None or noun.meaning != NOUNS[cue].meaning:
        broken.add("meaning")
    if noun is None or len(line2) < 2 or line2[-2] != article(ending):
        broken.add("article")
    if config.meter and syllables(line2) != config.line2_syllables:
        broken.add("meter")
    openers = [tuple(o.split()) for o in sum(OPENERS.values(), ())]
    body = tuple(line2[:-4])
    if (len(line2) < 5 or body not in openers or line2[-4] != pronoun or noun is None
            or line2[-3] not in VERBS[noun.meaning]):
        broken.add("grammar")
    return sorted(broken)


def world_from_dict(d):
    return CoupletWorld(WorldConfig(**d))


def world_to_dict(world):
    return asdict(world.config)


if __name__ == "__main__":  # print a few examples
    world = CoupletWorld()
    for c in world.split("train")[:8]:
        print(c.text(), check_couplet(c.line1, c.line2))
    print(len(world.itos), "tokens;", len(world.train_cells), "train cells;",
          "holdout cells:", world.holdout_cells)
