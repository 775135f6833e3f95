"""How the study assembles its measures: which prompts each one is given. Sites, layers and scales are chosen on
*select* prompts and every rate is reported on *report* prompts (disjoint sets); a control is given its own
rows. Each measure is exact in its own tests; these check the study hands it the right rows, which no measure's
output can show (a layer chosen on report pairs looks like any other layer). A spy records every call."""
import pytest

from data import CoupletWorld, WorldConfig
from model import load_checkpoint
from interp import interventions as iv
from interp import shape
from interp import study as S


@pytest.fixture(scope="module")
def inputs(poet):
    model, ckpt = load_checkpoint(poet)
    world = CoupletWorld(WorldConfig(**ckpt["world_config"]))
    return S.Inputs(model, world, S.StudyConfig(n_fit=200, n_select=60, n_report=60, n_pairs=40, seed=0))


def spy(monkeypatch, module, name, calls):
    """Record each call's arguments, then run the real function."""
    real = getattr(module, name)

    def wrapper(*args, **kw):
        calls.append((args, kw))
        return real(*args, **kw)
    monkeypatch.setattr(module, name, wrapper)


def which(x, line1s):
    """The one prompt set (fit, select or report) all these line 1s come from."""
    names = {k for k, v in x.named.items() for a in line1s if list(a) in [list(p) for p in v]}
    assert len(names) == 1, names
    return names.pop()


def test_the_shape_layer_is_searched_on_select_pairs_and_reported_with_its_controls_on_report(inputs, monkeypatch):
    x = inputs
    (sel, _), (rep, same) = x.length_pairs["select"], x.length_pairs["report"]
    assert sel and rep and same
    patched, forced = [], []
    spy(monkeypatch, shape, "shape_patching", patched)
    spy(monkeypatch, shape, "forced_opener", forced)
    out = S.shape_section(x)
    L = x.model.cfg.n_layer
    assert out["searchable"] == list(range(1, L))  # not the embedding (0), not the final residual (L)
    assert out["layer"] in out["searchable"]
    search, grid, *control = patched
    (_, _, rows, roles, layers), kw = search
    assert rows == sel and roles == ["nl"] and layers == list(range(1, L)) and kw == {}  # chosen on select
    (_, _, rows, roles), kw = grid
    assert rows == rep and roles == x.prompt_roles and kw == {}  # the map and the site: report pairs
    [((_, _, rows, roles, layers, measure), kw)] = control
    assert rows == same and (roles, layers, measure) == (["nl"], [out["layer"]], "other")  # its own rows and measure
    [((_, _, rows), _)] = forced
    assert rows == rep  # the positive control on the pairs it controls


def test_injection_and_suppression_scales_are_chosen_on_select_and_reported_on_report(inputs, monkeypatch):
    x = inputs
    added, suppressed = [], []
    spy(monkeypatch, iv, "add_only", added)
    spy(monkeypatch, iv, "suppress", suppressed)
    inj = S.run_injection(x)["injection"]
    assert [which(x, args[3]) for args, _ in added] == ["select", "report"] * len(iv.KINDS)
    for kind, ((sel_args, _), (rep_args, _)) in zip(iv.KINDS, zip(added[::2], added[1::2])):
        assert sel_args[4] == x.targets[kind]["select"] and rep_args[4] == x.targets[kind]["report"]
        assert inj[kind]["scale"] == float(iv.best_scale(inj[kind]["curve_select"]))
    sup = S.run_suppression(x)["suppression"]
    assert [which(x, args[3]) for args, _ in suppressed] == ["select"] * len(S.SUPPRESS_SCALES) + ["report"]
    assert suppressed[-1][0][4] == x.l2["report"] and suppressed[-1][0][5] == x.runners["report"]
    assert suppressed[-1][0][7] == sup["scale"]


def test_total_direct_and_mediated_effects_are_measured_on_report_pairs(inputs, monkeypatch):
    x = inputs
    calls = []
    spy(monkeypatch, shape, "effects", calls)
    monkeypatch.setattr(S, "shape_section", lambda x: {})  # measured above
    S.run_shape(x)
    assert [which(x, [a for a, _ in args[2]]) for args, _ in calls] == ["report", "report"]
    assert [args[2] for args, _ in calls] == [x.swap_pairs("report", slot, x.cfg.seed) for slot in ("rhyme", "cue")]


def test_the_intervention_sites_are_chosen_on_select_pairs_between_embedding_and_last_layer(inputs, monkeypatch):
    x = S.Inputs(inputs.model, inputs.world, inputs.cfg)  # a fresh one: sites are computed once and kept
    patched, chosen = [], []
    spy(monkeypatch, S, "patching", patched)
    spy(monkeypatch, S, "choose_causal_sites", chosen)
    x.sites
    L = x.model.cfg.n_layer
    by_split = {which(x, [a for a, _ in args[2]]): (args, kw) for args, kw in patched}
    assert sorted(by_split) == ["report", "select"] and len(patched) == 4  # rhyme and cue, each on both
    sel_args, sel_kw = by_split["select"]
    assert list(sel_kw["only_layers"]) == list(range(1, L)) and sel_kw["free"] is False
    [((select, report, layers, roles), _)] = chosen
    assert layers == list(range(1, L)) and report is x.report_patching
    for slot in ("rhyme", "cue"):
        assert select[slot]["n_pairs"] + select[slot]["n_dropped"] == len(x.swap_pairs("select", slot, x.cfg.seed + 1))


def test_the_sweep_chooses_each_cells_scale_on_select_and_reports_on_report(inputs, monkeypatch):
    x, calls = inputs, []
    monkeypatch.setattr(iv, "sweep", lambda *args, **kw: calls.append(args) or {})
    S.run_sweep(x)
    n = x.cfg.n_sweep
    assert len(calls) == 2
    for kind, args in zip(("other_rhyme", "other_meaning"), calls):
        assert args[2] == (x.sets.select[:n], x.targets[kind]["select"][:n])
        assert args[3] == (x.sets.report[:n], x.targets[kind]["report"][:n])


def test_the_suppression_scale_is_the_one_that_writes_the_runner_up_most_on_select(inputs):
    sup = S.run_suppression(inputs)["suppression"]
    rates = {float(s): v["rate"] or 0 for s, v in sup["select_runner_up_by_scale"].items()}
    assert sup["scale"] == max(rates, key=lambda s: (rates[s], -s))  # ties: the smaller scale


def test_the_circuit_is_chosen_on_select_pairs_and_measured_on_report(inputs, monkeypatch):
    x, calls = inputs, []
    monkeypatch.setattr(S, "circuit", lambda *args: calls.append(args) or {})
    S.run_circuit(x)
    [(_, _, swap, length_pairs, ablate_l1, ablate_l2, *_)] = calls
    for slot in ("rhyme", "cue"):
        select, report = swap[slot]
        assert which(x, [a for a, _ in select]) == "select" and which(x, [a for a, _ in report]) == "report"
    assert length_pairs is x.length_pairs and which(x, ablate_l1) == "report"
    assert ablate_l2 == x.l2["report"][:len(ablate_l1)]


def test_the_ending_probe_and_its_baseline_are_scored_on_report_prompts(inputs, monkeypatch):
    x, calls = inputs, []
    spy(monkeypatch, S, "cell_favourite_rate", calls)
    out = S.ending_probe(x.world, x.maps, x.named, x.l2)
    j = x.maps["roles"].index("nl")
    assert out["probe"] == [row[j] for row in x.maps["ending"]["trained"]["report"]]
    assert out["random_init"] == [row[j] for row in x.maps["ending"]["random_init"]["report"]]
    [((_, fit, fit_l2, scored, scored_l2), _)] = calls
    assert (which(x, fit), which(x, scored)) == ("fit", "report")
    assert (fit_l2, scored_l2) == (x.l2["fit"], x.l2["report"])
