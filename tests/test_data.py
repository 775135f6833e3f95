import pytest

from data import CoupletWorld, WorldConfig, ROLES
from couplet_rules import check_couplet, commit_split, roles, parse_line1
from lexicon import NOUNS, FAMILIES, MEANINGS, EPITHETS, cell_words, epithet, valid_endings, syllables
from conftest import TINY_WORLD


def test_world_has_enough_families_words_and_meanings():
    assert len(FAMILIES) >= 12
    for f in FAMILIES:
        words = [n for n in NOUNS.values() if n.family == f]
        assert len(words) >= 4, f
        assert len({n.meaning for n in words}) >= 2, f
    multi = [(m, f) for m in MEANINGS for f in FAMILIES if len(cell_words(m, f)) >= 2]
    assert len(multi) >= 10   # rabbit/habit situations: a runner-up exists


def test_every_generated_couplet_is_valid():
    world = CoupletWorld(TINY_WORLD)
    for split in ("train", "test", "holdout"):
        for c in world.split(split):
            assert check_couplet(c.line1, c.line2) == [], c.text()


def test_broken_couplets_fail_for_the_right_reason():
    line1 = "she saw a goat and went to find a cake".split()   # animal, -ake
    assert check_couplet(line1, "one sunny day she met a snake".split()) == []
    assert check_couplet(line1, "one sunny day she met a goat".split()) == ["rhyme"]
    assert check_couplet(line1, "one sunny day she ate a steak".split()) == ["meaning"]
    assert check_couplet(line1, "one sunny day she ate a snake".split()) == ["grammar"]
    assert check_couplet(line1, "one sunny day she met an snake".split()) == ["article"]
    assert check_couplet(line1, "and then she met a snake".split()) == ["meter"]
    assert check_couplet(line1, "one sunny day he met a snake".split()) == ["grammar"]
    assert check_couplet(line1, "one sunny day she met a cake".split()) == ["grammar", "meaning", "rhyme"]
    assert check_couplet(line1, [])  # an empty line breaks everything, without raising
    assert "rhyme" in check_couplet(line1, "one sunny day she met a <nl>".split())


def test_meter_counts_syllables():
    assert syllables("and then at last she met a rattlesnake".split()) == 10
    assert syllables("and so she met a rattlesnake".split()) == 8


def test_splits_are_disjoint_and_held_out_pairs_call_for_trained_endings():
    world = CoupletWorld(TINY_WORLD)
    train = world.split("train")
    train_lines = {tuple(c.line1) for c in train}
    for split in ("test", "holdout"):
        assert not train_lines & {tuple(c.line1) for c in world.split(split)}
    held = set(world.holdout_pairs)
    assert held
    pair = lambda c: (parse_line1(c.line1, world.config).cue, c.family)
    assert not any(pair(c) in held for c in train)                 # never together in training
    assert all(pair(c) in held for c in world.split("holdout"))
    trained_endings = {c.line2[-1] for c in train}                   # the composition test can pass:
    held_endings = {c.line2[-1] for c in world.split("holdout")}     # its endings are trained endings
    assert len(held_endings & trained_endings) >= 0.9 * len(held_endings)


def test_splits_are_deterministic_from_seed():
    a, b = CoupletWorld(TINY_WORLD), CoupletWorld(TINY_WORLD)
    assert [c.text() for c in a.split("test")] == [c.text() for c in b.split("test")]
    c = CoupletWorld(WorldConfig(n_train=3000, n_test=40, seed=1))
    assert [x.text() for x in a.split("test")] != [x.text() for x in c.split("test")]


def test_tokenizer_round_trips():
    world = CoupletWorld(TINY_WORLD)
    for c in world.split("test")[:20]:
        ids = world.couplet_ids(c)
        words = world.decode(ids)
        assert words == ["<bos>"] + c.line1 + ["<nl>"] + c.line2 + ["<eos>"]
    assert len(set(world.itos)) == len(world.itos)


def test_runner_up_exists_and_excludes_the_rhyme_word():
    assert valid_endings("animal", "hat")[:2] == ["cat", "rat"]
    assert "cat" not in valid_endings("animal", "cat")


def test_meter_off_world_has_fixed_openers():
    world = CoupletWorld(WorldConfig(n_train=200, n_test=10, meter=False))
    assert all(check_couplet(c.line1, c.line2, world.config) == [] for c in world.split("train"))


LIST = WorldConfig(n_train=2000, n_test=40, grammar="list")


def test_list_world_couplets_are_valid_and_every_token_has_a_role():
    for cfg in (LIST, WorldConfig(n_train=2000, n_test=40, grammar="list", cue_first=True)):
        world = CoupletWorld(cfg)
        for c in world.split("train")[:500] + world.split("holdout"):
            assert check_couplet(c.line1, c.line2, cfg) == [], c.text()
            r = roles(c.line1, c.line2, cfg)
            assert len(r) == len(c.line1) + 2 + len(c.line2) and set(r) <= set(ROLES)
            p = parse_line1(c.line1, cfg)
            assert c.line1[r.index("cue") - 1] == p.cue and c.line1[r.index("rhyme") - 1] == p.rhyme
            assert c.line1[-1] == p.rhyme and (c.line1.index(p.cue) < c.line1.index(p.rhyme))
        assert max(len(world.couplet_ids(c)) for c in world.split("train")) <= world.max_len()


def test_list_line1_grammar_errors_say_what_is_wrong():
    import pytest
    for bad, words in (("she saw a goat", "nouns"), ("she saw an goat and a hat", "article"),
                       ("she saw a zorblax and a hat", "not a noun"), ("saw a goat and a hat", "pronoun")):
        with pytest.raises(ValueError) as e:
            parse_line1(bad.split(), LIST)
        assert words in str(e.value) and "\n" not in str(e.value)


def test_list_world_breaks_are_named():
    line1 = "she saw a goat and a hat".split()          # animal, -at: cat or rat
    assert check_couplet(line1, "then she saw a cat".split(), LIST) == []
    assert "rhyme" in check_couplet(line1, "then she saw a dog".split(), LIST)
    assert "meaning" in check_couplet(line1, "then she saw a mat".split(), LIST)
    assert "article" in check_couplet(line1, "then she saw an cat".split(), LIST)


def test_majority_meaning_is_the_meaning_most_nouns_share_and_its_swaps_change_it():
    from collections import Counter
    from interp.prompts import swap_pairs
    cfg = WorldConfig(n_train=300, n_test=60, grammar="list", meaning="majority", min_nouns=3, holdout_pairs=0)
    world = CoupletWorld(cfg)
    for c in world.split("train"):
        assert not check_couplet(c.line1, c.line2, cfg), c.text()
        counts = Counter(NOUNS[w].meaning for w in parse_line1(c.line1, cfg).nouns).most_common()
        assert counts[0][0] == c.meaning and counts[0][1] >= 2 and (len(counts) == 1 or counts[1][1] < counts[0][1])
    with pytest.raises(ValueError, match="share one meaning"):  # a tie has no meaning
        parse_line1("she saw a cat and a tea with a rat and a pea".split(), cfg)
    lines = [c.line1 for c in world.split("test")]
    for slot in ("cue", "rhyme"):
        pairs = swap_pairs(world, lines, slot)
        assert len(pairs) > len(lines) // 2
        for a, b in pairs:
            pa, pb = parse_line1(a, cfg), parse_line1(b, cfg)
            changed = NOUNS[pa.cue].meaning != NOUNS[pb.cue].meaning, NOUNS[pa.rhyme].family != NOUNS[pb.rhyme].family
            assert changed == ((True, False) if slot == "cue" else (False, True))
            assert len(a) == len(b) and roles(a, config=cfg) == roles(b, config=cfg)
    with pytest.raises(ValueError, match="--meaning majority"):
        WorldConfig(grammar="classic", meaning="majority").validate()


def test_epithet_world_names_which_word_before_the_word_and_the_judge_holds_it_to_that():
    """Every cell's words take different epithets, so the epithet is the first word that commits to the
    ending; the other worlds keep their vocabulary and token ids."""
    for m in MEANINGS:
        for f in FAMILIES:
            words = cell_words(m, f)
            assert len({epithet(w) for w in words}) == len(words)
    cfg = WorldConfig(n_train=2000, n_test=40, grammar="list", epithet=True)
    world = CoupletWorld(cfg)
    assert world.itos[:-len(EPITHETS)] == CoupletWorld(WorldConfig(grammar="list")).itos == CoupletWorld().itos
    for c in world.split("train")[:500]:
        assert check_couplet(c.line1, c.line2, cfg) == [], c.text()
        assert c.line2[-2] == epithet(c.line2[-1]) and c.line2[-3] == "a"
        r = roles(c.line1, c.line2, cfg)
        assert r[-3:] == ["end_art", "end_epithet", "ending"] and set(r) <= set(ROLES)
        assert commit_split(c.line2) == (c.line2[:-2], c.line2[-2])
    assert max(len(world.couplet_ids(c)) for c in world.split("train")) <= world.max_len()
    c = world.split("train")[0]
    other = next(e for e in EPITHETS if e != c.line2[-2])
    assert check_couplet(c.line1, c.line2[:-2] + [other, c.line2[-1]], cfg) == ["grammar"]  # another word's epithet
    assert check_couplet(c.line1, c.line2[:-2] + c.line2[-1:], cfg) == ["grammar"]  # no epithet
    assert check_couplet(c.line1, c.line2[:-3] + ["an"] + c.line2[-2:], cfg) == ["article"]  # agrees with the epithet
    assert commit_split(["then", "he", "saw", "a", "cat"]) == (["then", "he", "saw", "a"], "cat")
    with pytest.raises(ValueError, match="--epithet needs --grammar list"):
        WorldConfig(epithet=True).validate()


# ---- couplet_rules.py, exactly: every role, every parse and every broken rule (docs/mutation.md) -----------
from couplet_rules import Line1, has_epithet, line2_roles, role_position  # noqa: E402

CLASSIC_SHAPE = "PRONOUN SEEN a/an CUE [with a/an NOUN] MIDDLE a/an RHYME"


def test_a_classic_line1_parses_into_its_nouns_and_a_role_per_word():
    assert parse_line1("she saw a goat with a hat and went to find a cake".split()) == Line1(
        "she", ["goat", "hat", "cake"], "goat", "cake",
        ["pronoun", "seen", "cue_art", "cue", "d_link", "d_art", "distractor", "mid1", "mid2", "mid3", "mid4",
         "rhyme_art", "rhyme"])
    assert parse_line1("they spotted an ape beside a snake".split()) == Line1(
        "they", ["ape", "snake"], "ape", "snake", ["pronoun", "seen", "cue_art", "cue", "mid1", "rhyme_art", "rhyme"])


def test_a_classic_line1_that_does_not_parse_says_what_is_wrong():
    for bad, message in (
            ("she saw a cake", f"line 1 must read {CLASSIC_SHAPE}"),
            ("it saw a goat beside a cake", f"line 1 must read {CLASSIC_SHAPE}"),
            ("she ate a goat beside a cake", f"line 1 must read {CLASSIC_SHAPE}"),
            ("she saw a zorblax beside a cake", "line 1 needs a known noun where it has 'zorblax'"),
            ("she saw a goat beside a zorblax", "line 1 needs a known noun where it has 'zorblax'"),
            ("she saw an goat beside a cake", "'an goat' has the wrong article: 'a goat'"),
            ("she saw a goat beside an cake", "'an cake' has the wrong article: 'a cake'"),
            ("she saw a goat with an hat beside a cake", f"line 1 must read {CLASSIC_SHAPE}: 'with a/an NOUN' is malformed"),
            ("she saw a goat with a zorblax beside a cake", f"line 1 must read {CLASSIC_SHAPE}: 'with a/an NOUN' is malformed"),
            ("she saw a goat with a cake", f"line 1 must read {CLASSIC_SHAPE}: 'with a/an NOUN' is malformed"),
            ("she saw a goat and ran a cake", f"line 1 must read {CLASSIC_SHAPE}: 'and ran' is not a middle phrase"),
            ("she saw a goat a cake", f"line 1 must read {CLASSIC_SHAPE}: '' is not a middle phrase"),  # 6 words
            ("she saw a zorblax a cake", "line 1 needs a known noun where it has 'zorblax'"),
            ("she saw a goat with a hat a cake", f"line 1 must read {CLASSIC_SHAPE}: '' is not a middle phrase")):
        with pytest.raises(ValueError) as e:
            parse_line1(bad.split())
        assert str(e.value) == message, bad


def test_a_list_line1_names_the_cue_the_rhyme_and_the_others():
    cfg = WorldConfig(grammar="list")
    assert parse_line1("she saw a goat and a cake".split(), cfg) == Line1(
        "she", ["goat", "cake"], "goat", "cake", ["pronoun", "seen", "cue_art", "cue", "rhyme_link", "rhyme_art", "rhyme"])
    three = "one day he watched an ape near a tea beside a cake".split()
    assert parse_line1(three, cfg) == Line1(
        "he", ["ape", "tea", "cake"], "tea", "cake",
        ["pre1", "pre2", "pronoun", "seen", "x1_art", "x1", "cue_link", "cue_art", "cue", "rhyme_link", "rhyme_art",
         "rhyme"])
    first = parse_line1(three, WorldConfig(grammar="list", cue_first=True))
    assert (first.cue, first.roles[4:]) == ("ape", ["cue_art", "cue", "x1_link", "x1_art", "x1", "rhyme_link",
                                                    "rhyme_art", "rhyme"])
    four = parse_line1("so they found a bee with a dog near a pea and a cat".split(), cfg)
    assert (four.pronoun, four.nouns, four.cue, four.rhyme) == ("they", ["bee", "dog", "pea", "cat"], "pea", "cat")
    assert four.roles == ["pre1", "pronoun", "seen", "x1_art", "x1", "x2_link", "x2_art", "x2", "cue_link", "cue_art",
                          "cue", "rhyme_link", "rhyme_art", "rhyme"]
    majority = WorldConfig(grammar="list", meaning="majority", min_nouns=3)
    m = parse_line1("she saw a tea and a dog with a cat and a lake".split(), majority)
    assert (m.cue, m.roles[2:]) == ("dog", ["x1_art", "x1", "cue_link", "cue_art", "cue", "x2_link", "x2_art", "x2",
                                            "rhyme_link", "rhyme_art", "rhyme"])
    m = parse_line1("she saw a tea and a dog and a cat".split(), majority)  # the meaning's first noun is next to last
    assert (m.cue, m.roles[2:]) == ("dog", ["x1_art", "x1", "cue_link", "cue_art", "cue", "rhyme_link", "rhyme_art",
                                            "rhyme"])


def test_a_list_line1_that_does_not_parse_says_what_is_wrong():
    cfg = WorldConfig(grammar="list")
    no_pronoun = "line 1 must read [PREAMBLE] PRONOUN SEEN a/an NOUN {LINK a/an NOUN}: no pronoun (he/she/they) where expected"
    for bad, config, message in (
            ("she", cfg, no_pronoun),
            ("it saw a goat and a cake", cfg, no_pronoun),
            ("she saw", cfg, "expected found/saw/spotted/watched a/an NOUN at 'saw'"),  # a pronoun, then too little
            ("one day she saw a goat and a cake", WorldConfig(grammar="list", max_preamble=1), no_pronoun),
            ("so she saw a goat and a cake", WorldConfig(grammar="list", max_preamble=0), no_pronoun),
            ("she saw a goat and a cake", WorldConfig(grammar="list", min_nouns=3), "line 1 needs 3 to 4 nouns, has 2"),
            ("she saw a goat and a dog and a cat and a bee and a cake", cfg, "line 1 needs 2 to 4 nouns, has 5"),
            ("she saw a goat and a goat", cfg, "line 1 names a noun twice"),
            ("she ate a goat and a cake", cfg, "expected found/saw/spotted/watched a/an NOUN at 'ate a goat'"),
            ("she saw a goat or a cake", cfg, "expected and/beside/near/with a/an NOUN at 'or a cake'"),
            ("she saw a goat and a", cfg, "expected and/beside/near/with a/an NOUN at 'and a'"),
            ("she saw a goat and a cake a", cfg, "expected and/beside/near/with a/an NOUN at 'a'"),
            ("she saw a tea and a dog", WorldConfig(grammar="list", meaning="majority", min_nouns=2),
             "line 1's nouns must share one meaning more often than any other")):
        with pytest.raises(ValueError) as e:
            parse_line1(bad.split(), config)
        assert str(e.value) == message, bad


def test_every_word_of_line2_has_its_role_as_written():
    cfg = WorldConfig(grammar="list")
    cases = {  # (line 2, config): roles
        ("one sunny day she met a snake", None): ["l2_open1", "l2_open2", "l2_open3", "l2_pronoun", "l2_verb",
                                                   "end_art", "ending"],
        ("a b c d e she met a snake", None): ["l2_open1", "l2_open2", "l2_open3", "l2_open4", "l2_other",
                                               "l2_pronoun", "l2_verb", "end_art", "ending"],
        ("she met a snake", None): ["l2_pronoun", "l2_verb", "end_art", "ending"],
        ("then she a cat", None): ["l2_open1", "l2_pronoun", "end_art", "ending"],
        ("met a snake", None): ["l2_other", "end_art", "ending"],
        ("she a", None): ["end_art", "ending"],
        ("x", None): ["ending"],
        ("", None): [],
        ("then she saw a dog and a cat", None): ["l2_open1", "l2_pronoun", "l2_verb", "l2_other", "l2_other",
                                                 "l2_other", "end_art", "ending"],
        ("then she saw a dog and a cat", cfg): ["l2_open1", "l2_pronoun", "l2_verb", "y1_art", "y1", "end_link",
                                                "end_art", "ending"],
        ("then she saw a dog near a fox and a cat", cfg): ["l2_open1", "l2_pronoun", "l2_verb", "y1_art", "y1",
                                                           "y2_link", "y2_art", "y2", "end_link", "end_art", "ending"],
        ("then she saw a dog near a fox near a bat and a cat", cfg): [
            "l2_open1", "l2_pronoun", "l2_verb", "y1_art", "y1", "y2_link", "y2_art", "y2", "end_link", "l2_other",
            "l2_other", "end_link", "end_art", "ending"],
        ("she saw a cat", cfg): ["l2_pronoun", "l2_verb", "end_art", "ending"],
        ("then she saw and a cat", cfg): ["l2_open1", "l2_pronoun", "l2_verb", "end_link", "end_art", "ending"],
        ("then she saw a lucky cat", cfg): ["l2_open1", "l2_pronoun", "l2_verb", "end_art", "end_epithet", "ending"],
        ("then she saw a dog and a lucky cat", cfg): ["l2_open1", "l2_pronoun", "l2_verb", "y1_art", "y1",
                                                      "end_link", "end_art", "end_epithet", "ending"],
        ("lucky cat", cfg): ["end_art", "ending"],
        ("a lucky cat", cfg): ["end_art", "end_epithet", "ending"],
    }
    for (line2, config), want in cases.items():
        got = line2_roles(line2.split(), config) if config else line2_roles(line2.split())
        assert got == want, line2
    assert [has_epithet(x.split()) for x in ("a lucky cat", "lucky cat", "a big cat", "a cat lucky")] == \
        [True, False, False, False]


def test_roles_and_role_positions_count_bos_and_the_line_break():
    l1 = "she saw a goat beside a cake".split()
    assert roles(l1) == ["bos", "pronoun", "seen", "cue_art", "cue", "mid1", "rhyme_art", "rhyme", "nl"]
    assert roles(l1, "and then she met a snake".split()) == roles(l1) + ["l2_open1", "l2_open2", "l2_pronoun",
                                                                          "l2_verb", "end_art", "ending"]
    assert roles(l1, []) == roles(l1)
    assert [role_position(l1, r) for r in ("bos", "cue", "rhyme", "nl", "distractor", "ending")] == [0, 4, 7, 8, None,
                                                                                                   None]
    cfg = WorldConfig(grammar="list")
    l1 = "so she saw a goat and a cake".split()
    assert roles(l1, "she saw a dog and a snake".split(), cfg) == [
        "bos", "pre1", "pronoun", "seen", "cue_art", "cue", "rhyme_link", "rhyme_art", "rhyme", "nl", "l2_pronoun",
        "l2_verb", "y1_art", "y1", "end_link", "end_art", "ending"]
    assert role_position(l1, "rhyme", cfg) == 8 and role_position(l1, "pre2", cfg) is None


def test_a_classic_couplet_breaks_exactly_the_rules_it_breaks():
    l1 = "she saw a goat with a hat and went to find a cake".split()
    for line2, want in (("one sunny day she met a snake", []),
                        ("and then she met a rattlesnake", []),
                        ("one sunny day she ate a cake", ["meaning", "rhyme"]),
                        ("one sunny day she met a", ["article", "grammar", "meaning", "meter", "rhyme"]),
                        ("snake", ["article", "grammar", "meter"]),
                        ("a snake", ["grammar", "meter"]),
                        ("met a snake", ["grammar", "meter"]),
                        ("one sunny night she met a snake", ["grammar"]),
                        ("one sunny day she met a zorblax", ["article", "grammar", "meaning", "rhyme"]),
                        ("one sunny day she met an snake", ["article"])):
        assert check_couplet(l1, line2.split()) == want, line2
    free = WorldConfig(meter=False)  # no meter: any opener of the table, whatever its length
    assert check_couplet(l1, "and then she met a snake".split(), free) == []
    assert check_couplet(l1, "one sunny day she met a rattlesnake".split(), free) == []
    committed = WorldConfig(committed_openers=True)  # the committed table's openers, not the others
    assert check_couplet(l1, "later that day she met a snake".split(), committed) == []
    assert check_couplet(l1, "later that day she met a snake".split()) == ["grammar"]
    assert check_couplet(l1, "that very day she met a snake".split(), committed) == ["grammar"]
    assert check_couplet(l1, "and then at last she met a snake".split(), WorldConfig(line2_syllables=10)) == ["meter"]
    assert check_couplet(l1, "and then at last she met a rattlesnake".split(), WorldConfig(line2_syllables=10)) == []


def test_a_list_couplet_breaks_exactly_the_rules_it_breaks():
    cfg = WorldConfig(grammar="list")
    l1 = "she saw a goat and a cake".split()   # animal, -ake: snake or rattlesnake
    for line2, want in (("then she saw a snake", []),
                        ("she spotted a rattlesnake", []),
                        ("and then she saw a dog and a snake", []),
                        ("so she saw a dog near a bee with a snake", []),
                        ("she saw a dog near a bee with a cat and a snake", ["grammar"]),  # four groups
                        ("she saw a lake and a snake", ["grammar"]),                      # another -ake first
                        ("she saw a dog near a lake and a snake", ["grammar"]),
                        ("then he saw a snake", ["grammar"]),
                        ("now she saw a snake", ["grammar"]),
                        ("then saw a snake", ["grammar"]),
                        ("then saw a", ["article", "grammar", "meaning", "rhyme"]),
                        ("", ["article", "grammar", "meaning", "rhyme"]),
                        ("then she saw a dog and", ["grammar", "meaning", "rhyme"]),
                        ("then she saw an snake", ["article"]),
                        ("then she saw a goat and a snake", []),
                        ("then she saw a cake", ["fresh", "meaning", "rhyme"]),
                        ("then she saw a lake", ["meaning"])):
        assert check_couplet(l1, line2.split(), cfg) == want, line2
    l3 = "she saw a snake and a goat and a cake".split()
    assert check_couplet(l3, "then she saw a snake".split(), cfg) == ["fresh"]
    assert check_couplet(l3, "then she saw a snake".split(), WorldConfig(grammar="list", exclude_line1=False)) == []


def test_an_epithet_couplet_needs_the_endings_own_epithet_with_its_article():
    cfg = WorldConfig(grammar="list", epithet=True)
    l1 = "she saw a goat and a cake".split()
    own = epithet("snake")
    other = next(e for e in EPITHETS if e != own)
    art = "an" if own[0] in "aeiou" else "a"
    assert check_couplet(l1, f"then she saw {art} {own} snake".split(), cfg) == []
    assert check_couplet(l1, f"then she saw {art} {other} snake".split(), cfg) == ["grammar"]
    assert check_couplet(l1, f"then she saw {art} snake".split(), cfg) == ["grammar"]
    assert check_couplet(l1, f"{own} snake".split(), cfg) == ["grammar"]
    wrong = "a" if art == "an" else "an"
    assert check_couplet(l1, f"then she saw {wrong} {own} snake".split(), cfg) == ["article"]
    assert check_couplet(l1, f"then he saw {art} {own} snake".split(), cfg) == ["grammar"]
    assert check_couplet(l1, "then she saw a zorblax".split(), cfg) == ["grammar", "meaning", "rhyme"]
