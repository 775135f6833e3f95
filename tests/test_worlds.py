"""The pre-registered search end to end on a tiny candidate, and its section of the page."""
import json

import worlds
from page.search_section import search as search_section


def test_search_trains_measures_through_training_and_keeps_every_seed(tmp_path, monkeypatch, capsys):
    tiny = ("--n-train", "400", "--n-test", "40", "--n-layer", "2", "--d-model", "32", "--d-mlp", "64",
            "--n-head", "2", "--max-steps", "6", "--batch-size", "8", "--eval-n", "8")
    monkeypatch.setattr(worlds, "CANDIDATES", {"tiny": worlds.Candidate(tiny, "a prediction, written first"),
                                               "never": worlds.Candidate(tiny, "registered, never run")})
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
