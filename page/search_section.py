"""The world search's section of the report: the line break's LD effect through training (one figure per
fact, one line per seed) and one table row per (world, seed) with its pre-registered prediction."""
from html import escape

from page.html import curves, num, rate, table


def strongest_other(row, slot):
    """The position other than the line break (and the one writing the ending) whose patch (layers >= 1)
    moves the ending most."""
    cols = {k: v for k, v in row.get("final_columns", {}).get(slot, {}).items()
            if k not in ("n_pairs", "nl") and v is not None}
    if not cols:
        return "–"
    best = max(cols, key=cols.get)
    return f"{escape(best)} {num(cols[best])}" if cols[best] >= 0.05 else "none"


def search(results):
    s = results.get("search")
    if not s:
        return ""
    rows = []
    for name, t in s.items():
        if not t["seeds"]:
            rows.append([escape(name), "–", "not run"] + ["–"] * 5 + [escape(t["prediction"])])
        for k, r in enumerate(t["seeds"]):
            rows.append([escape(name), str(r.get("seed", k)), num(r["test"]["valid"]), num(r["final"]["rhyme"]["nl_column"]),
                         num(r["final"]["cue"]["nl_column"]), num(r["final"]["rhyme"]["rhyme_column_from1"]),
                         f'{r["final"]["rhyme"]["n_pairs"]} / {r["final"]["cue"]["n_pairs"]}',
                         " / ".join(strongest_other(r, slot) for slot in ("rhyme", "cue")),
                         escape(t["prediction"]) if k == 0 else "″"])
    steps = sorted({row["step"] for t in s.values() for r in t["seeds"] for row in r["curve"]})
    colours = ["#2b6cb0", "#c05621", "#2f855a", "#6b46c1", "#b83280", "#718096", "#975a16", "#285e61"]
    fig = ""
    for slot, fact in (("rhyme", "the rhyme"), ("cue", "the meaning")):
        series = []
        for k, (name, t) in enumerate(s.items()):
            for j, r in enumerate(t["seeds"]):  # one line per seed, one colour per world
                by_step = {row["step"]: row[slot]["nl_column"] for row in r["curve"]}
                series.append((f"{name} seed {r.get('seed', j)}", colours[k % len(colours)], [by_step.get(x) for x in steps]))
        counts = [row[slot]["n_pairs"] for t in s.values() for r in t["seeds"] for row in r["curve"]
                  if row[slot]["nl_column"] is not None]
        fig += curves(steps, series, f"Does the line break carry {fact}, through training?", "training step",
                      f"LD effect, line break ({slot} swap)", "Patching the line break's whole column at each saved "
                      f"checkpoint, every seed; each point rests on the swap pairs whose two clean endings differ "
                      f"({min(counts, default=0)} to {max(counts, default=0)} here: early checkpoints have few, "
                      "and their effects, sometimes outside [0, 1], are drawn at the edge). A route that appears and "
                      "then falls shows as a rise and a drop.")
    planned = {name: t["plans"] for name, t in s.items() if "plans" in t}
    bar = num(next(iter(planned.values())).get("at"), 1) if planned else "–"
    plans = table(["world", "seeds", "rhyme at the line break", "meaning at the line break", "both"],
                  [[escape(name), str(p["rhyme"]["n"]), *(rate(p[f]) for f in ("rhyme", "meaning", "both"))]
                   for name, p in planned.items()])
    return ("<h2>The world search (predictions written before the runs)</h2>" + fig +
            f"<p>How often a seed plans: the seeds whose line break, patched alone, moves the ending at least {bar} of "
            "the way (normalized LD, final weights), for each fact and for both at once. A few seeds per world, so "
            "the intervals are wide: this says which worlds <em>can</em> plan and roughly how often.</p>" + plans +
            table(["world", "seed", "valid", "nl LD rhyme", "nl LD cue", "rhyme word, layers >= 1",
                   "pairs (rhyme / cue)", "strongest other position before the ending's, layers >= 1 (rhyme / cue; none: all below 0.05)",
                   "prediction"],
                  rows))
