"""The words of the couplet world and what the rules need to know about them.

Every noun has a rhyme family, a meaning, a syllable count and a popularity (which only weighs the
choice of ending among a cell's words). A *cell* is a (meaning, family) pair: its words are the
valid endings when line 1 asks for that meaning and that rhyme, most popular first:

    cell_words("animal", "at")  ->  ["cat", "rat", "bat", "wombat"]

The phrase tables (pronouns, verbs, openers, links...) are the other words the grammars use.
"""
from dataclasses import dataclass


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
# the list grammar
PREAMBLES = ("so", "today", "one day", "at dawn", "last night")
LINKS = ("and", "with", "near", "beside")
LIST_OPENERS = ("then", "so", "and then", "at last")
# the list grammar's `epithet` option: the ending's own adjective, told apart within its cell
EPITHETS = ("little", "lucky", "sleepy", "funny")
# the classic grammar
MIDDLES = ("beside", "and had to grab", "and went to find", "and ran to get",
           "and dreamed about", "and then forgot about", "and looked around for")
OPENERS = {2: ("and then", "at last", "and so"),
           3: ("then at last", "that morning", "and later"),
           4: ("and then at last", "one sunny day", "that very day")}
# the classic grammar's `committed_openers` option: the opener's first word alone names its length, so the
# token the line break predicts already depends on the ending's syllables (as "His hunger" did on "rabbit")
COMMITTED_OPENERS = {2: ("at last", "and so", "and then"),
                     3: ("then at last", "that morning"),
                     4: ("one sunny day", "later that day")}
VERBS = {"animal": ("met", "chased", "fed"), "food": ("ate", "served", "shared"),
         "nature": ("saw", "crossed", "drew"), "home": ("bought", "fixed", "sold"),
         "body": ("hurt", "washed", "scratched"), "clothes": ("wore", "lost", "mended")}
# non-noun words of the classic grammar's line 2 with their syllables (the meter counts them)
FUNCTION_SYLLABLES = {"a": 1, "an": 1, "he": 1, "she": 1, "they": 1, "with": 1, "and": 1, "then": 1,
                      "at": 1, "last": 1, "so": 1, "that": 1, "morning": 2, "later": 2, "one": 1,
                      "sunny": 2, "day": 1, "very": 2}


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


def valid_endings(meaning, rhyme_word, exclude=()):
    """Every valid ending for this meaning and rhyme word, most popular first; `exclude` are words
    the ending may not be (line 1's nouns, in the list grammar)."""
    return [w for w in cell_words(meaning, NOUNS[rhyme_word].family) if w != rhyme_word and w not in exclude]


def epithet(word):
    """The adjective only `word` of its cell takes ("a lucky cat", "a sleepy rat"): no two words of one
    cell share one, so the epithet commits to the word before the word is written. The cell's words
    take EPITHETS in popularity order, turned by the family's place so a favourite is not always 'little'."""
    n = NOUNS[word]
    return EPITHETS[(cell_words(n.meaning, n.family).index(word) + FAMILIES.index(n.family)) % len(EPITHETS)]


def syllables(words):
    return sum(NOUNS[w].syllables if w in NOUNS else FUNCTION_SYLLABLES.get(w, 1) for w in words)
