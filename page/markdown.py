"""The run's numbers as Markdown (`results.md`), rendered from results.json alone, beside the HTML page.

The README quotes no number of its own: it points here (docs/results.md is this file, copied from the
run that the README describes), so every number a reader sees was written by a run."""
from interp.claims import THRESHOLDS, claim_results, verdict_word
from page.circuit_section import circuit_markdown
from page.html import fmt_seeds
from page.render import HEADLINE_LABELS
from page.shape_section import PLANNING_ROWS, n_range, seed_cell

SITES = (("intervention_site", "intervention site (chosen on select pairs)"),
         ("shape_layer", "line-break layer of the shape patch (chosen on select pairs)"),
         ("green_site", "green: hook and scale (chosen on select prompts)"),
         ("habit_site", "habit: hook and scale (chosen on select prompts)"))


def _table(head, rows):
    out = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    out += ["| " + " | ".join(str(c).replace("|", "/") for c in row) + " |" for row in rows]
    return "\n".join(out)


def markdown(results):
    models = results["models"]
    names = list(models)
    seeds = ", ".join(f"{n} {m['headline']['n_seeds']}" for n, m in models.items())
    parts = [
        "# Results of one run",
        "",
        "Written by `python analyze.py` from `out/report/results.json` (do not edit: run it again). Each cell is the "
        "mean over training seeds with [min, max]; *n* is the number of prompts or pairs per seed behind a rate. "
        f"Training seeds per model: {seeds}. Analysis time: {results.get('seconds', '–')} s.",
        "",
        "## Planning, criterion by criterion",
        "",
        _table(["criterion"] + names, [[label] + [f"{fmt_seeds(m, k)} ({n_range(m, k)})" for m in models.values()]
                                       for label, k in PLANNING_ROWS]),
        "",
        "## Claims and the rules they rest on",
        "",
        "Each claim the README or the page makes, the rules on the seeds' numbers it rests on, and whether they hold in "
        "this run (interp/claims.py; the README cites claims by id).",
        "",
        _table(["id", "model", "claim", "rules", "holds"],
               [[c["id"], c["model"], c["text"], "; ".join(f"{r['rule']} ({verdict_word(r['held'])})" for r in c["rules"]),
                 f"**{verdict_word(c['held'])}**"] for c in claim_results(models)]),
        "",
        "## Every headline number",
        "",
        _table(["measure", "key"] + [f"{n} (n)" for n in names],
               [[HEADLINE_LABELS.get(k, k), f"`{k}`"] + [f"{fmt_seeds(m, k)} ({n_range(m, k)})" for m in models.values()]
                for k in HEADLINE_LABELS]),
        "",
        "## Each seed, with its 95% interval",
        "",
        "A bar such as the LD bar of 0.8 for \"carries\" is crossed or not seed by seed; the interval says how firmly.",
        "",
        per_seed(models),
        "",
        "## Where each seed's edits were made",
        "",
        _table(["site"] + names, [[label] + ["; ".join(str(s) for s in m["headline"].get(k) or []) or "–"
                                             for m in models.values()] for k, label in SITES]),
        "",
        "## Predictions written before the study measured them, and which held",
        "",
        _table(["model", "predicted", "", "per seed"],
               [[n, p["rule"], f"**{verdict_word(p['held'])}**",
                 ", ".join({True: "yes", False: "no", None: "–"}[x] for x in p["per_seed"])]
                for n, m in models.items() for p in m.get("predictions") or []]),
        "",
        "The same predictions in words, as first written (for the measures of their time):",
        "",
    ]
    parts += [f"- **{n}**: {m['shape_prediction']}" for n, m in models.items() if m.get("shape_prediction")]
    parts += circuit_markdown(results)
    return "\n".join(parts) + "\n"


PER_SEED = ("valid", "nl_ld_rhyme", "nl_ld_cue", "total_valid_change_nl", "direct_valid_change_nl",
            "shape_donor_valid_rate", "shape_donor_valid_control_rate", "green_valid_rate", "habit_valid_rate",
            "length_features_rate", "composition_valid_holdout_rate")


def per_seed(models):
    """Every seed's value of the numbers a verdict rests on, each with its 95% interval."""
    rows = []
    for name, m in models.items():
        for s in m["seeds"]:
            rows.append([name, str(s["seed"])] + [_with_ci(s, k) for k in PER_SEED])
    return _table(["model", "seed"] + [f"`{k}`" for k in PER_SEED], rows)


def _with_ci(s, k):
    """One seed's number with its 95% interval; under a few items, k/n (page.shape_section.seed_cell)."""
    v, ci, n = s.get(k), s.get("ci", {}).get(k), s.get("n", {}).get(k)
    if v is None or (n is not None and n < THRESHOLDS["few"]) or (s.get("noop", {}).get(k) or 0) > THRESHOLDS["noop"]:
        return seed_cell(s, k)
    return f"{v:.2f}" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci and ci[0] is not None else "")
