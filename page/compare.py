"""Two runs' headlines side by side (`python analyze.py --compare OLD/results.json`): what a change of
recipe moved, model by model, as Markdown rendered from the two results.json files alone."""
from page.html import fmt_seeds
from page.render import HEADLINE_LABELS


def moved(old, new, k):
    """'no' when each run's mean lies inside the other's seed range (or both are missing); 'yes' otherwise."""
    a, b = old["headline"], new["headline"]
    if a.get(k) is None or b.get(k) is None:
        return "–" if a.get(k) is None and b.get(k) is None else "measured in one run only"
    ra, rb = a.get(k + "_range") or [a[k], a[k]], b.get(k + "_range") or [b[k], b[k]]
    inside = ra[0] - 1e-9 <= b[k] <= ra[1] + 1e-9 and rb[0] - 1e-9 <= a[k] <= rb[1] + 1e-9
    return "no" if inside else "yes"


def comparison(old, new, old_label="before", new_label="after"):
    """One table per model present in both runs: every headline number, mean [min, max] over seeds."""
    out = [f"# {old_label} and {new_label}", "",
           f"Written by `python analyze.py --compare` from the two runs' results.json.", "",
           "Each cell: the mean over training seeds, [min, max]. *Moved* says whether either run's mean lies "
           "outside the other's seed range (a difference smaller than the spread between seeds is not a change).", ""]
    for name in [n for n in new["models"] if n in old["models"]]:
        a, b = old["models"][name], new["models"][name]
        out += [f"## {name}", "", f"| measure | {old_label} | {new_label} | moved |", "| --- | --- | --- | --- |"]
        out += [f"| {label} | {fmt_seeds(a, k)} | {fmt_seeds(b, k)} | {moved(a, b, k)} |"
                for k, label in HEADLINE_LABELS.items()]
        out.append("")
    return "\n".join(out)
