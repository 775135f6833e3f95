"""The one judge of the couplet world: reading a line 1 (`parse_line1`), naming every token's role in the
one vocabulary `data.ROLES` (`roles`, `line2_roles`, `role_position`), and checking a couplet against the
world's rules (`check_couplet`, the only definition of "correct").

    >>> check_couplet("she saw a goat with a hat and went to find a cake".split(), "one sunny day she met a snake".split())
    []
"""
from collections import Counter
from dataclasses import dataclass

from data import WorldConfig, opener_table
from lexicon import (NOUNS, PRONOUNS, SEEN, PREAMBLES, LINKS, LIST_OPENERS, MIDDLES, VERBS, EPITHETS, article,
                     epithet, syllables)


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


def has_epithet(line2):
    """Whether an epithet stands before line 2's last word (the `epithet` option: "... a funny snake")."""
    return len(line2) >= 3 and line2[-2] in EPITHETS


def commit_split(line2):
    """(prefix, word): line 2 cut before the first word that commits to its ending word — the ending,
    or its epithet when one stands before it (the `epithet` option). A teacher-forced measurement
    scores `word` after `prefix`: scoring a later word would let the model copy what it already wrote."""
    k = len(line2) - (2 if has_epithet(line2) else 1)
    return line2[:k], line2[k]


def line2_roles(line2, config=WorldConfig()):
    """A role for every word of a line 2 (as written: it may be wrong); words that do not parse
    are 'l2_other', but the last two are always 'end_art' and 'ending' (the last three 'end_art',
    'end_epithet' and 'ending' when an epithet stands before the ending)."""
    n = len(line2)
    roles = ["l2_other"] * n
    tail = ["end_art", "end_epithet", "ending"] if has_epithet(line2) else ["end_art", "ending"]
    roles[max(0, n - len(tail)):] = tail[max(0, len(tail) - n):]
    n_tail = len(tail)
    p = next((i for i, w in enumerate(line2[:-n_tail]) if w in PRONOUNS), None)
    if p is None:
        return roles
    for k in range(min(p, 4)):
        roles[k] = f"l2_open{k + 1}"
    roles[p] = "l2_pronoun"
    if p + 1 < n - n_tail:
        roles[p + 1] = "l2_verb"
    if config.grammar == "list":  # p+1 verb, then groups of (link) art noun; the last group is the ending's
        names = ["y1_art", "y1", "y2_link", "y2_art", "y2", "end_link"]
        for k, i in enumerate(range(p + 2, n - n_tail)):
            roles[i] = names[k] if k < len(names) else "l2_other"
        if n - n_tail - 1 > p + 1:
            roles[n - n_tail - 1] = "end_link"
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
        if config.epithet:  # the ending's own epithet, or it breaks the grammar (the article agrees with the epithet)
            if noun is None or len(line2) < 3 or line2[-2] != epithet(ending):
                return sorted(broken | {"grammar"})
            line2 = line2[:-3] + [article(ending) if line2[-3] == article(line2[-2]) else "?", ending]
        broken |= _check_list_line2(l1, line2, noun)
    else:
        if noun is None or len(line2) < 2 or line2[-2] != article(ending):
            broken.add("article")
        if config.meter and syllables(line2) != config.line2_syllables:
            broken.add("meter")
        openers = [tuple(o.split()) for o in sum(opener_table(config).values(), ())]
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
