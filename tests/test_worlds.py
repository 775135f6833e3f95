"""The pre-registered search end to end on a tiny candidate, and its section of the page."""
import json

import worlds
from page.search_section import search as search_section


def test_search_trains_measures_through_training_and_keeps_every_seed(tmp_path, monkeypatch, capsys):
    tiny = dict(n_train=400, n_test=40, n_layer=2, d_model=32, d_mlp=64, n_head=2, max_steps=6, batch_size=8, eval_n=8)
    monkeypatch.setattr(worlds, "CANDIDATES", {"tiny": worlds.variant(prediction="a prediction, written first", **tiny),
                                               "never": worlds.variant(prediction="registered, never run", **tiny)})
    monkeypatch.setattr(worlds, "SNAPSHOT_EVERY", 3)
    worlds.search(str(tmp_path), ["tiny"], seeds=2, parallel=2)
    table = json.loads((tmp_path / "search.json").read_text())
    seeds = table["tiny"]["seeds"]
    assert table["tiny"]["prediction"] == "a prediction, written first" and len(seeds) == 2
    for row in seeds:
        assert [c["step"] for c in row["curve"]] == [3, 6]  # the snapshot, then the final weights
        assert set(row["final"]) >= {"rhyme", "cue"} and 0 <= row["test"]["valid"] <= 1
        # every position's patch at the final weights (what it holds: test_study's every_column test)
        assert set(row["final_columns"]) == {"rhyme", "cue"}
    worlds.search(str(tmp_path), ["tiny"], seeds=1, parallel=2)  # a later call with fewer seeds keeps them all
    assert len(json.loads((tmp_path / "search.json").read_text())["tiny"]["seeds"]) == 2
    printed = capsys.readouterr().out  # the printed table
    assert "tiny" in printed and "seeds planning" in printed
    html = search_section({"search": table})
    assert html.count("tiny seed") == 4 and "a prediction, written first" in html  # each seed in both figures
    assert table["tiny"]["plans"]["both"]["n"] == 2 and "How often a seed plans" in html
    assert f"at least {worlds.PLANS_AT:.1f} of the way" in html  # the bar the counts used, from search.json
    # a registered candidate that was never run keeps its row and says so
    assert table["never"]["not_run"] and table["never"]["seeds"] == []
    assert "never" in printed and "not run" in printed and "registered, never run" in html


def test_a_seed_plans_a_fact_when_the_line_break_moves_it_at_least_the_bar():
    row = lambda rhyme, cue: {"final": {"rhyme": {"nl_column": rhyme}, "cue": {"nl_column": cue}}}
    got = worlds.plans([row(0.9, 0.85), row(0.95, None), row(0.79, 1.0), row(None, 0.1)])
    assert [got[f]["k"] for f in ("rhyme", "meaning", "both")] == [2, 2, 1] and got["both"]["n"] == 4


def test_a_variant_sorts_its_settings_to_their_configs_and_gives_the_same_as_flags():
    import train
    v = worlds.variant("w", "p", grammar="list", n_layer=2, nl_barrier=True, cue_first=False, max_steps=60, lr=3e-3)
    assert v.world == {"grammar": "list", "cue_first": False} and v.model == {"n_layer": 2, "nl_barrier": True}
    assert v.train == {"max_steps": 60, "lr": 3e-3} and (v.what, v.prediction) == ("w", "p")
    args = train.parse(v.flags())
    assert (args.grammar, args.n_layer, args.nl_barrier, args.cue_first, args.max_steps, args.lr) == \
        ("list", 2, True, False, 60, 3e-3)
