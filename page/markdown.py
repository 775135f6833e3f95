"""The run's numbers as Markdown (`results.md`), rendered from results.json alone, beside the HTML page.

The README quotes no number of its own: it points here (docs/results.md is this file, copied from the
run that the README describes), so every number a reader sees was written by a run."""
from page.circuit_section import circuit_markdown
from page.html import fmt_seeds
from page.render import HEADLINE_LABELS
from page.shape_section import PLANNING_ROWS

SITES = (("intervention_site", "intervention site (chosen on select pairs)"),
         ("shape_layer", "line-break layer of the shape patch (chosen on select pairs)"),
         ("green_site", "green: hook and scale (chosen on select prompts)"),
         ("habit_site", "habit: hook and scale (chosen on select prompts)"))


def _table(head, rows):
    out = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    out += ["| " + " | ".join(str(c).replace("|", "/") for c in row) + " |" for row in rows]
    return "\n".join(out)


def _n(m, k):
    ns = [x for x in m["headline"].get("n", {}).get(k, []) if x is not None]
    return "–" if not ns else (str(ns[0]) if len(set(ns)) == 1 else f"{min(ns)}–{max(ns)}")


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
        _table(["criterion"] + names, [[label] + [fmt_seeds(m, k) for m in models.values()] for label, k in PLANNING_ROWS]),
        "",
        "## Every headline number",
        "",
        _table(["measure", "key"] + [f"{n} (n)" for n in names],
               [[HEADLINE_LABELS.get(k, k), f"`{k}`"] + [f"{fmt_seeds(m, k)} ({_n(m, k)})" for m in models.values()]
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
        "## Predictions written before the study measured them",
        "",
    ]
    parts += [f"- **{n}**: {m['shape_prediction']}" for n, m in models.items() if m.get("shape_prediction")]
    parts += circuit_markdown(results)
    return "\n".join(parts) + "\n"


PER_SEED = ("valid", "nl_ld_rhyme", "nl_ld_cue", "total_effect_nl", "direct_effect_nl", "shape_opener_rate",
            "shape_control_rate", "green_valid_rate", "habit_valid_rate")


def per_seed(models):
    """Every seed's value of the numbers a verdict rests on, each with its 95% interval."""
    rows = []
    for name, m in models.items():
        for s in m["seeds"]:
            rows.append([name, str(s["seed"])] + [_with_ci(s.get(k), s.get("ci", {}).get(k)) for k in PER_SEED])
    return _table(["model", "seed"] + [f"`{k}`" for k in PER_SEED], rows)


def _with_ci(v, ci):
    if v is None:
        return "–"
    return f"{v:.2f}" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci and ci[0] is not None else "")
