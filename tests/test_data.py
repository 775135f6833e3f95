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
