"""interp/probes.py exactly: labels, probe maps beside their controls, site choice, the ridge fit (docs/mutation.md)."""
import torch

from data import CoupletWorld, WorldConfig
from lexicon import FAMILIES, MEANINGS, NOUNS
from interp.probes import cell_favourite_rate, choose_sites, labels, probe_maps
from interp.stats import rate

CLASSIC = WorldConfig(n_train=300, n_test=40)
LIST = WorldConfig(n_train=300, n_test=40, grammar="list")
NAN = float("nan")


def test_labels_are_class_indices_of_the_rhyme_family_the_cue_meaning_and_the_written_ending():
    world = CoupletWorld(CLASSIC)
    line1s = [s.split() for s in ("he saw a cat beside a log", "she saw a cake beside a hat",
                                  "they saw a tree and had to grab a mat")]
    # family and meaning are functions of line 1: the rhyme noun's family, the cue noun's meaning
    assert labels(world, line1s, [[]] * 3, "family") == [FAMILIES.index("og"), FAMILIES.index("at"),
                                                         FAMILIES.index("at")] == [13, 5, 5]
    assert labels(world, line1s, [[]] * 3, "meaning") == [MEANINGS.index(m) for m in ("animal", "food", "nature")] \
        == [0, 1, 2]
    # ending and length are read from the model's own line 2: None where it wrote no "a/an NOUN" ending
    line2s = [["then", "he", "saw", "a", "chimpanzee"], ["at", "last", "an", "ox"], ["then", "he", "saw", "a"],
              [], ["a", "dog"], ["he", "saw", "the", "dog"], ["he", "a", "wombat"]]
    words = sorted(NOUNS)
    assert labels(world, [], line2s, "ending") == [words.index("chimpanzee"), words.index("ox"), None, None, None,
                                                   None, words.index("wombat")]
    assert labels(world, [], line2s, "length") == [3, 1, None, None, None, None, 2]
    # line 1 is read by the world's own grammar: in the list grammar the cue is the noun before the rhyme
    listed = CoupletWorld(LIST)
    line1s = [s.split() for s in ("he saw a bee and a cake near a log", "so she saw a goat with a pea beside a clog")]
    assert labels(listed, line1s, [[]] * 2, "family") == [FAMILIES.index("og")] * 2
    assert labels(listed, line1s, [[]] * 2, "meaning") == [MEANINGS.index("food")] * 2


# ---- probe_maps on hand-built activations: a feature that names the class, or none ------------------------------
HOOKS, PRESENT = ["h0", "h1"], ["rhyme", "nl"]
# fit: 40 usable rows (the default min_rows, exactly), class 0 the majority; two rows with no label and two
# rows where the prompt lacks the role (NaN) are skipped. select: 20 usable rows (min_rows // 2, exactly) at
# "rhyme", one fewer at "nl"; report: 24 rows and one with no label.
FIT = [0] * 16 + [1] * 12 + [2] * 12 + [None, None] + [1, 2]
SELECT = [0] * 12 + [1] * 4 + [2] * 4
REPORT = [0] * 6 + [1] * 6 + [2] * 12 + [None]
LACKS = {"fit": {"rhyme": [], "nl": []}, "select": {"rhyme": [], "nl": [3]}, "report": {"rhyme": [], "nl": []}}
for s, ys in (("fit", FIT), ("select", SELECT), ("report", REPORT)):
    LACKS[s] = {r: rows + ([len(ys) - 2, len(ys) - 1] if s == "fit" else []) for r, rows in LACKS[s].items()}


def _acts(informative):
    """{set: {hook: {role: (N, 3)}}}: the one-hot of the row's label where (hook, role) is informative, else
    zeros (nothing to read); a row with no label gets a misleading one-hot, a row lacking the role NaN."""
    out = {}
    for s, ys in (("fit", FIT), ("select", SELECT), ("report", REPORT)):
        out[s] = {}
        for h in HOOKS:
            out[s][h] = {}
            for r in PRESENT:
                x = torch.zeros(len(ys), 3)
                if (h, r) in informative:
                    x = torch.nn.functional.one_hot(torch.tensor([2 if y is None else y for y in ys]), 3).float()
                x[LACKS[s][r]] = NAN
                out[s][h][r] = x
    return out


def _maps(**kw):
    acts = _acts({("h0", "rhyme"), ("h1", "nl")})
    control = _acts({("h0", "nl")})
    y = {s: {t: list(ys) for t in ("family", "meaning", "ending", "length")}
         for s, ys in (("fit", FIT), ("select", SELECT), ("report", REPORT))}
    y["report"]["length"] = [None] * len(REPORT)  # no report prompt has an ending: nothing to score there
    return probe_maps(acts, control, y, HOOKS, PRESENT, **kw)


def test_probe_maps_score_each_layer_and_role_on_every_set_but_fit_beside_both_controls():
    """Where the features name the class the probe is exact (1.0); where they are zeros it can only say the fit
    prompts' majority class (0): the share of class 0 among the scored prompts (12 of 20 on select, 6 of 24 on
    report). The random-init control reads its own activations; a cell with too few rows is None."""
    out = _maps()
    assert out["roles"] == PRESENT and out["layers"] == ["L0", "L1"]
    for t in ("family", "meaning", "ending", "length"):
        m = out[t]
        assert set(m) == {"trained", "random_init", "shuffled_labels", "majority_baseline"}
        assert set(m["trained"]) == {"select", "report"}  # scored on every set but the one the probe is fit on
        assert m["trained"]["select"] == [[1.0, None], [0.6, None]]  # [layer][role]; "nl" has 19 select rows
        assert m["random_init"]["select"] == [[0.6, None], [0.6, None]]
        if t == "length":
            assert m["trained"]["report"] == m["random_init"]["report"] == [[None, None], [None, None]]
            assert m["majority_baseline"] is None
        else:
            assert m["trained"]["report"] == [[1.0, 0.25], [0.25, 1.0]]
            assert m["random_init"]["report"] == [[0.25, 1.0], [0.25, 0.25]]
            assert m["majority_baseline"] == 0.5  # class 2: 12 of the 24 report prompts with a label
        # shuffled labels keep the class counts: where nothing is readable the probe scores the same
        sh = m["shuffled_labels"]
        assert sh["select"][1] == [0.6, None] and sh["select"][0][1] is None
        if t != "length":
            assert (sh["report"][0][1], sh["report"][1][0]) == (0.25, 0.25)
            assert sh["report"][0][0] < 1.0 and sh["report"][1][1] < 1.0  # the label read from the feature is lost


def test_probe_maps_need_min_rows_fit_prompts_and_half_as_many_scored_ones():
    assert all(v is None for t in ("family", "meaning", "ending", "length") for k in ("trained", "random_init")
               for s in ("select", "report") for row in _maps(min_rows=41)[t][k][s] for v in row)
    small = _maps(min_rows=4)  # the 19 select rows at "nl" are enough now (11 of them in class 0)
    assert small["family"]["trained"]["select"] == [[1.0, 11 / 19], [0.6, 1.0]]


def test_probe_maps_shuffle_from_the_seed_0_by_default():
    default, again = _maps(), _maps(seed=0)
    assert default == again
    other = _maps(seed=1)
    assert other["family"]["trained"] == default["family"]["trained"]
    assert any(other[t]["shuffled_labels"] != default[t]["shuffled_labels"] for t in ("family", "meaning", "ending"))


# ---- choose_sites ---------------------------------------------------------------------------------------------
def _site_maps(gain, sel=None):
    """maps over layers 0-2 and roles (pronoun, rhyme, nl): trained select = random-init select + gain."""
    sel = sel or (lambda l, j: 0.5)
    m = {"roles": ["pronoun", "rhyme", "nl"], "layers": ["L0", "L1", "L2"]}
    for k, t in enumerate(("family", "meaning", "ending")):
        g = gain[t]
        m[t] = {"trained": {"select": [[None if g[l][j] is None else sel(l, j) + g[l][j] for j in range(3)]
                                       for l in range(3)],
                            "report": [[10 * l + j + 0.5 for j in range(3)] for l in range(3)]},
                "random_init": {"select": [[sel(l, j) for j in range(3)] for l in range(3)],
                                "report": [[-(10 * l + j) for j in range(3)] for l in range(3)]},
                "majority_baseline": 0.125 * (k + 1)}
    return m


def test_choose_sites_takes_the_largest_gain_over_random_init_among_the_given_layers_and_roles():
    """Raw accuracy is highest at the rhyme word in layer 1 (random weights decode it too); layer 0 and the
    pronoun are not among the cells offered; ties go to the later position, then the lower layer."""
    family = [[0.5, 0.5, 0.5], [0.5, 0.125, 0.0], [0.0, 0.0, 0.25]]
    meaning = [[0.5, 0.5, 0.5], [0.5, 0.25, 0.25], [0.0, 0.25, 0.25]]
    ending = [[0.5, None, None], [0.5, None, -0.25], [0.0, None, None]]  # only a loss to choose from
    maps = _site_maps({"family": family, "meaning": meaning, "ending": ending},
                      sel=lambda l, j: 0.75 if (l, j) == (1, 1) else 0.25)
    out = choose_sites(maps, [1, 2], ["rhyme", "nl", "l2_pronoun"])
    assert list(out) == ["family", "meaning", "joint"]
    assert out["family"] == {"layer": 2, "role": "nl", "target": "family", "select": 0.5,
                             "select_gain_over_random_init": 0.25, "report": 22.5, "random_init_report": -22,
                             "majority_baseline": 0.125}
    assert out["meaning"] == {"layer": 1, "role": "nl", "target": "meaning", "select": 0.5,
                              "select_gain_over_random_init": 0.25, "report": 12.5, "random_init_report": -12,
                              "majority_baseline": 0.25}
    assert out["joint"] == {"layer": 1, "role": "nl", "target": "ending", "select": 0.0,
                            "select_gain_over_random_init": -0.25, "report": 12.5, "random_init_report": -12,
                            "majority_baseline": 0.375}
    # the same ties, at the earlier position: the lower layer wins
    out = choose_sites(maps, [2, 1], ["rhyme"])
    assert (out["meaning"]["layer"], out["meaning"]["role"]) == (1, "rhyme") and out["joint"] is None
    assert choose_sites(maps, [1, 2], ["l2_pronoun"]) == {"family": None, "meaning": None, "joint": None}


# ---- cell_favourite_rate --------------------------------------------------------------------------------------
def test_cell_favourite_rate_predicts_the_ending_written_most_often_in_the_prompts_cell_on_fit_prompts():
    """A cell is (the cue's meaning, the rhyme's family): "cat ... log" and "goat ... clog" share (animal, og)
    though the cue's family and the rhyme's meaning differ. Line 2s with no noun ending are not counted."""
    world = CoupletWorld(CLASSIC)
    fit_l1s = [s.split() for s in ("he saw a rat beside a log", "she saw a stoat beside a fog",
                                   "he saw a cat beside a log", "he saw a cat beside a log",
                                   "he saw a cat beside a log", "she saw a bread beside a lake")]
    ending = lambda w: ["then", "he", "saw", "a", w]  # noqa: E731
    # (animal, og): frog first, then dog twice (and two frogs with no "a/an NOUN" ending); (food, ake): cake
    fit_l2s = [ending("frog"), ending("dog"), ending("dog"), ["then", "he", "frog"], ["frog"], ending("cake")]
    line1s = [s.split() for s in ("she saw a goat beside a clog", "he saw a bee beside a hedgehog",
                                  "she saw a rat beside a fog", "he saw a tea beside a snowflake",
                                  "he saw a tree beside a log", "he saw a cat beside a log")]
    line2s = [ending("dog"), ending("frog"), ending("dog"), ending("cake"), ending("log"), ["then", "he"]]
    out = cell_favourite_rate(world, fit_l1s, fit_l2s, line1s, line2s)
    # dog: hit, miss, hit; cake in (food, ake): hit; (nature, og) has no fit prompt: miss; no ending: not counted
    assert out == rate([True, False, True, True, False]) and (out["k"], out["n"]) == (3, 5)
    assert cell_favourite_rate(world, fit_l1s, fit_l2s, line1s[5:], line2s[5:])["rate"] is None
    # line 1 is read by the world's own grammar: (food, og) in the list grammar, whose cue precedes the rhyme
    listed = CoupletWorld(LIST)
    fit_l1s = [s.split() for s in ("he saw a bee and a cake near a log", "she saw a rice and a frog")]
    out = cell_favourite_rate(listed, fit_l1s, [ending("fog")] * 2, fit_l1s[:1], [ending("fog")])
    assert (out["k"], out["n"]) == (1, 1)


def test_the_ridge_probe_matches_an_independent_ridge_fit():
    """interp/probes.py's probe against tests/planted_exercise_bugs.py's reference (float64, torch.linalg.solve),
    on rows away from a tie; with features of about 1e-6 the 1e-6 added to the std matters."""
    from planted_exercise_bugs import ridge_scores
    from interp.probes import ridge_probe, solve_spd
    g = torch.Generator().manual_seed(0)
    for scale in (1.0, 1e-6):
        centres = torch.randn(3, 5, generator=g)
        y_fit, y_test = torch.randint(0, 3, (12,), generator=g), torch.randint(0, 3, (300,), generator=g)
        x_fit = (centres[y_fit] + torch.randn(12, 5, generator=g)) * scale
        x_test = (centres[y_test] + torch.randn(300, 5, generator=g)) * scale
        for lam in (1.0, 0.1, 10.0):
            scores = ridge_scores(x_fit, y_fit, x_test, 3, lam)
            top = scores.topk(2, 1).values
            rows = top[:, 0] - top[:, 1] > 1e-3
            assert rows.sum() > 250
            args = () if lam == 1.0 else (lam,)  # lam = 1 by default
            assert ridge_probe(x_fit, y_fit, x_test[rows], scores.argmax(1)[rows], 3, *args) == 1.0, (scale, lam)
    a = torch.tensor([[4.0, 1.0, 0.0], [1.0, 3.0, 1.0], [0.0, 1.0, 2.0]], dtype=torch.float64)
    x = torch.tensor([[1.0, -2.0], [0.5, 0.0], [-1.0, 3.0]], dtype=torch.float64)
    assert torch.allclose(solve_spd(a, a @ x), x, atol=1e-12) and torch.equal(a[0], torch.tensor([4.0, 1.0, 0.0],
                                                                                               dtype=torch.float64))
