from data import (CoupletWorld, WorldConfig, check_couplet, NOUNS, FAMILIES, MEANINGS, cell_words,
                  valid_endings, syllables)
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


def test_splits_are_disjoint_and_holdout_never_ends_a_training_line():
    world = CoupletWorld(TINY_WORLD)
    train_lines = {tuple(c.line1) for c in world.split("train")}
    for split in ("test", "holdout"):
        assert not train_lines & {tuple(c.line1) for c in world.split(split)}
    held = set(world.holdout_cells)
    assert held and all((NOUNS[c.line2[-1]].meaning, NOUNS[c.line2[-1]].family) not in held
                        for c in world.split("train"))
    assert all((c.meaning, c.family) in held for c in world.split("holdout"))
    # the held-out words are still seen in training, as cues or rhyme words
    seen = {w for c in world.split("train") for w in c.line1}
    held_words = {w for cell in held for w in cell_words(*cell)}
    assert len(held_words & seen) >= len(held_words) // 2


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
