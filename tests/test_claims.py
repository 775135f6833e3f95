"""Claims read from numbers (interp/claims.py): each rule says what it reads, holds exactly at its bar, and a claim
held only when every rule measured and held. Exact values, so a changed operator or scope fails (docs/mutation.md)."""
import pytest

from interp.claims import CLAIMS, THRESHOLDS, Expect, checked, claim_results, verdict_word
from interp.patching import CARRIES, WEAK


def test_a_rule_says_what_it_reads_and_over_which_seeds():
    assert Expect("shape_donor_valid_rate", "n<", 10).text() == "n of shape_donor_valid_rate < 10 items in every seed"
    assert Expect("a", "beats", "b").text() == f"a exceeds b by {WEAK} or more in every seed"
    assert Expect("a", ">=", 0.3, "any").text() == "a >= 0.3 in at least one seed"
    assert Expect("a", "<", "b", "mean").text() == "a < b on the mean over seeds"


def test_each_operator_holds_exactly_at_its_bar_in_one_seed():
    h = {"a": 0.5, "b": 0.5, "zero": 0.0, "n": {"a": 9, "b": 10}}
    assert [Expect("a", op, 0.5).per_seed(h) for op in (">=", "<=", ">", "<")] == [True, True, False, False]
    assert [Expect("a", op, "b").per_seed(h) for op in (">=", "<=", ">", "<")] == [True, True, False, False]
    assert [Expect("a", op, 0.4).per_seed(h) for op in (">=", "<=", ">", "<")] == [True, False, True, False]
    assert Expect("zero", ">=", 0).per_seed(h) is True and Expect("a", ">", "zero").per_seed(h) is True  # 0 is a number
    assert Expect("a", "beats", "zero").per_seed({"a": WEAK, "zero": 0.0}) is True  # by the weak bar or more
    assert Expect("a", "beats", "zero").per_seed({"a": WEAK - 0.01, "zero": 0.0}) is False
    assert Expect("a", "n<", 10).per_seed(h) is True and Expect("b", "n<", 10).per_seed(h) is False
    for e in (Expect("c", ">=", 0.1), Expect("a", ">=", "c"), Expect("c", "n<", 10)):  # not measured: None
        assert e.per_seed(h) is None
    assert Expect("a", "n<", 10).per_seed({"a": 0.5}) is None
    # a seed that measured the model (it has a validity) but counted nothing for the key counted 0 items
    for measured in ({"valid": 0.9}, {"valid": 0.0, "n": {"b": 3}}):
        assert Expect("a", "n<", 1).per_seed(measured) is True
    assert Expect("a", "n<", 1).per_seed({"n": {"b": 3}}) is None  # a seed of another model: not measured


def test_a_rule_over_seeds_every_any_and_mean():
    seeds = [{"a": 0.75, "b": 0.125}, {"a": 0.25, "b": 0.375}, {"b": 0.25}]  # sums exact in binary
    assert Expect("a", ">=", 0.5).check(seeds) == (False, [True, False, None])
    assert Expect("a", ">=", 0.25).check(seeds) == (True, [True, True, None])  # the seed without a is not counted
    assert Expect("a", ">=", 0.5, "any").check(seeds) == (True, [True, False, None])
    assert Expect("a", ">=", 0.8, "any").check(seeds) == (False, [False, False, None])
    assert Expect("a", ">=", 0.5, "mean").check(seeds) == (True, [True, False, None])  # mean of a: 0.5
    assert Expect("a", ">", 0.5, "mean").check(seeds)[0] is False
    assert Expect("b", "<=", 0.25, "mean").check(seeds)[0] is True  # mean of b over the seeds that have it: 0.25
    assert Expect("b", "<", 0.25, "mean").check(seeds)[0] is False
    assert Expect("a", ">=", "b", "mean").check(seeds)[0] is True  # 0.5 against b's mean 0.25
    assert Expect("a", "<=", "b", "mean").check(seeds)[0] is False
    assert Expect("a", ">=", "b", "mean").check([{"a": 0.25, "b": 0.25}, {"b": 0.5}])[0] is False  # 0.25 < 0.375
    assert Expect("c", ">=", 0.1, "mean").check(seeds) == (None, [None, None, None])
    assert Expect("a", ">=", "c", "mean").check(seeds)[0] is None
    assert Expect("c", ">=", 0.1).check(seeds) == (None, [None, None, None])
    assert Expect("c", ">=", 0.1, "any").check(seeds)[0] is None
    assert Expect("a", ">=", 0.1).check([]) == (None, [])
    n = [{"n": {"a": 3}}, {"n": {"a": 12}}, {}]
    assert Expect("a", "n<", 10).check(n) == (False, [True, False, None])
    assert Expect("a", "n<", 10, "any").check(n) == (True, [True, False, None])


def test_a_rule_that_could_not_mean_its_text_is_refused():
    for args, says in ((("a", "n<", 10, "mean"), "'n<' counts each seed's items: use seeds='every' or 'any'"),
                       (("a", "=>", 1), "unknown rule '=>': one of ['<', '<=', '>', '>=', 'beats', 'n<']"),
                       (("a", ">=", 1, "all"), "seeds must be every, any or mean, not 'all'")):
        with pytest.raises(ValueError) as err:
            Expect(*args)
        assert str(err.value) == says


def test_checked_lists_every_rule_with_its_text_and_seeds():
    seeds = [{"a": 0.6}, {"a": 0.2}]
    rules = (Expect("a", ">=", 0.5), Expect("a", ">=", 0.5, "any"), Expect("c", "<", 1))
    assert checked(rules, seeds) == [
        {"rule": "a >= 0.5 in every seed", "key": "a", "held": False, "per_seed": [True, False]},
        {"rule": "a >= 0.5 in at least one seed", "key": "a", "held": True, "per_seed": [True, False]},
        {"rule": "c < 1 in every seed", "key": "c", "held": None, "per_seed": [None, None]}]
    assert checked((), seeds) == []
    assert [verdict_word(x) for x in (True, False, None)] == ["held", "failed", "not measured"]


def test_a_claim_holds_only_when_every_rule_was_measured_and_held():
    assert THRESHOLDS["carries"] == CARRIES and THRESHOLDS["weak"] == WEAK
    main = [c for c in CLAIMS if c.model == "main"]
    c1, c6 = (next(c for c in CLAIMS if c.id == i) for i in ("C1", "C6"))
    low = {"nl_ld_rhyme": 0.1, "nl_ld_cue": 0.0, "green_forced_rate": 0.0, "habit_forced_rate": WEAK}
    out = claim_results({"main": {"seeds": [low, dict(low, green_forced_rate=0.1)]}, "other": {"seeds": []}})
    assert [r["id"] for r in out] == [c.id for c in main]  # only the studied model's claims, in order
    r1, r6 = out[main.index(c1)], out[main.index(c6)]
    assert r1 == {"id": "C1", "model": "main", "text": c1.text, "rules": checked(c1.rules, [low, low]), "held": True}
    assert r6["held"] is False  # habit_forced_rate at the bar is not below it
    assert all(r["held"] is None for r in out if r["id"] not in ("C1", "C6"))  # not measured
    half = claim_results({"main": {"seeds": [{"nl_ld_rhyme": 0.5}]}})[main.index(c1)]
    assert half["held"] is None and [r["held"] for r in half["rules"]] == [False, None]  # unmeasured wins over failed
    assert claim_results({}) == []
    assert {c.id for c in CLAIMS} == {f"C{k}" for k in range(1, 13)}
