"""The report's section on the shape plan (interp/shape.py) and the planning table of every model.

Planning, as the recent literature defines it, is a representation that (1) causes a future word and
(2) shapes the words written before it. The section shows both for the line break, judged by the
couplet the model writes, seed by seed; the table puts every model side by side with the rules each was
predicted to meet. Verdicts follow from the numbers in results.json and interp/claims.THRESHOLDS."""
from html import escape

from interp.claims import THRESHOLDS, verdict_word
from page.html import few, fmt_seeds, heatmap, num, rate, table

SEED_COLUMNS = (("shape_layer", "layer"), ("shape_donor_valid_rate", "valid at the donor's length"),
                ("shape_donor_valid_control_rate", "control: same-length donor"),
                ("shape_positive_control_rate", "positive control: B's opener forced"),
                ("shape_opener_rate", "raw: opener at the donor's length"),
                ("shape_next_token_rate", "final residual (next token)"),
                ("green_valid_rate", "green"), ("green_random_rate", "random"), ("green_forced_rate", "opener forced"),
                ("habit_valid_rate", "habit"), ("habit_random_rate", "random"), ("habit_forced_rate", "opener forced"),
                ("length_features_rate", "length features"), ("length_features_random_rate", "random"),
                ("length_features_first_word_kept_rate", "first word kept"))


def seed_cell(s, key):
    """One seed's number with its n: k/n under THRESHOLDS["few"], else the rate and its interval."""
    v = s.get(key)
    if v is None or isinstance(v, str):
        return escape(str(v)) if v else "–"
    n, k, ci = s.get("n", {}).get(key), s.get("k", {}).get(key), s.get("ci", {}).get(key)
    if n is not None and n < THRESHOLDS["few"]:
        return few(v, k, n)
    if (s.get("noop", {}).get(key) or 0) > THRESHOLDS["noop"]:
        return "no-op"
    return f"{num(v)} ({k}/{n})" if k is not None else num(v)


def per_seed_table(m, columns):
    return table(["seed"] + [label for _, label in columns],
                 [[str(s["seed"])] + [seed_cell(s, key) for key, _ in columns] for s in m["seeds"]])


def shape_verdict(m):
    """Stored at the line break when, seed by seed, the patch writes valid couplets at the donor's length at
    least THRESHOLDS["weak"] more often than the same patch from a same-length donor does."""
    seeds = [s for s in m["seeds"] if s.get("shape_donor_valid_rate") is not None
             and s.get("shape_donor_valid_control_rate") is not None]
    if not seeds:
        return None, "Not measured: no seed had pairs with a donor of another length."
    beats = [s["shape_donor_valid_rate"] - s["shape_donor_valid_control_rate"] >= THRESHOLDS["weak"] for s in seeds]
    h = m["headline"]
    mean = f"{fmt_seeds(m, 'shape_donor_valid_rate')} against {fmt_seeds(m, 'shape_donor_valid_control_rate')}"
    if all(beats):
        strong = h["shape_donor_valid_rate"] >= THRESHOLDS["carries"]
        return True, ((f"Yes, in every seed ({len(seeds)}): " if strong else f"Partly, in every seed ({len(seeds)}): ") +
                      f"copying another line 1's line break into one layer makes the model write a valid couplet whose "
                      f"ending (and so opener) has the donor's length in {mean} for the same patch from a donor of "
                      f"the same length (mean over seeds, [min, max]).")
    return False, (f"Not in every seed: the patch beats its same-length control by {THRESHOLDS['weak']} or more in "
                   f"{sum(beats)} of {len(seeds)} seeds ({mean}).")


def shape_plan(m):
    main = m
    sh = main.get("shape") or {}
    head = '<h2 id="shape">1b. The plan this world demands: the shape of line 2</h2>'
    if not sh or "skipped" in sh:
        why = sh.get("skipped") or main.get("skipped") or "the study did not reach it"
        return head + f"<p>Not measured: {escape(why)}.</p>"
    _, verdict = shape_verdict(m)
    layers, roles = sh["layers"], sh["roles"]
    label = {0: f"{layers[0]} (embedding)", len(layers) - 1: f"{layers[-1]} (final: next token)"}
    grid = [[None if (sh["map_noop"][r][l] or 0) > THRESHOLDS["noop"] else sh["map"][r][l] for r in roles]
            for l in range(len(layers))]
    fig = heatmap(grid, [label.get(l, layers[l]) for l in range(len(layers))], roles,
                  "Which position decides the line's shape? (seed 0)", "position in line 1 (patched alone)",
                  "residual entering layer", f"Share of pairs (n = {sh['n_pairs']}: each line 1 with a donor whose "
                  f"ending has another of its cell's lengths) whose freely written couplet is valid and ends in a word "
                  f"of the donor's length, after one cell is copied from the donor. Grey: the donor's residual there "
                  f"is A's own (a position before the swapped word, or the line break's embedding): a no-op. The last "
                  f"row is the next-token prediction itself; neither it nor the embedding can be chosen as the site.",
                  lo=0, hi=1)
    ev = [["pairs (report) / select pairs / control pairs",
           f"{sh['n_pairs']} / {sh['n_select_pairs']} / {sh['n_control_pairs']}"]]
    if sh.get("site"):
        site, c = sh["site"], sh["site"]["classes"]
        where = f"the line break, entering {layers[sh['layer']]} (chosen on select pairs)"
        ev += [[f"valid couplet at the donor's length ({where})", rate(site["donor_valid"])],
               ["control: the same patch from a donor of A's own length; valid at another length",
                rate({**sh["control"]["other_valid"], "noop_fraction": sh["control"]["noop_fraction"]})],
               ["positive control: B's opener written into A (teacher-forced); valid at the donor's length",
                rate(sh["positive_control"]["donor_valid"])],
               ["raw: the opener takes the donor's length, broken couplets included", rate(site["opener"])],
               ["the final residual patched (the next-token prediction): valid at the donor's length",
                rate(sh["next_token"]["donor_valid"])],
               ["the article before the ending takes the donor's", rate(site["article"])],
               ["... written line 2: same word / valid cell-mate / donor's word / broken",
                f"{c['same_word']} / {c['cell_mate_valid']} / {c['donor']} / {c['broken']}"]]
    for slot, e in (main.get("effects") or {}).items():
        ev.append([f"whole line-break column ({slot} swap): the ending changes to another valid couplet's, free "
                   f"(total) / teacher-forced (direct) / mediated (paired difference)",
                   f"{rate(e['total'])} / {rate(e['direct'])} / {num(e['mediated']['value'])} "
                   f"[{num(e['mediated']['ci'][0])}, {num(e['mediated']['ci'][1])}]"])
        ev.append([f"... any change of the ending, broken couplets included (free / forced)",
                   f"{rate(e['total_any'])} / {rate(e['direct_any'])}"])
    g, hb = sh["green"], sh["habit"]
    inter = [["green: add another length's direction (" + escape(g["hook"]) + f", x{g['scale']:g}): valid couplet "
              "ending in that cell-mate", rate(g["inject"])],
             ["... a random direction of the same norm", rate(g["random"])],
             ["... the same edit at line 1's verb", rate(g["control_position"])],
             ["... the opener teacher-forced (direct): ends in the cell-mate", rate(g["opener_forced"])],
             ["prompts whose cell has no word of another length (not counted)", str(g["n_no_target"])],
             ["habit: subtract the planned length's direction (" + escape(hb["hook"]) + f", x{hb['scale']:g}): valid "
              "couplet ending in the model's runner-up", rate(hb["suppress"])],
             ["... a random direction of the same norm", rate(hb["random"])],
             ["... the same edit at line 1's verb", rate(hb["control_position"])],
             ["... the opener teacher-forced (direct): ends in the runner-up", rate(hb["opener_forced"])],
             ["prompts whose runner-up has the planned length (a length edit cannot reach it; not counted)",
              str(hb["n_same_length"])]]
    lf = (main.get("clt") or {}).get("length_features")
    if lf:
        inter += [["transcoder features at the line break whose ablation alone switches the opener's length and "
                   "writes a valid cell-mate (eligible prompts, any layer)", rate(lf["nl"])],
                  ["... the same search with norm-matched random directions in place of the features", rate(lf["random"])],
                  ["... the same criterion at line 1's verb", rate(lf["seen"])],
                  ["... with line 2's first word kept (teacher-forced), where that word starts openers of several "
                   "lengths: a feature that still switches the length acts beyond the next word", rate(lf["first_word_kept"])]]
        inter += [[f"... a frequent one: L{t['layer']} #{t['feature']} ({t['prompts']} prompts)", escape(t["label"])]
                  for t in lf["top"]]
    examples = "".join(f"<li><code>{escape(x['line1'])} / {escape(x['written'])}</code></li>"
                       for x in g["inject"].get("examples", []))
    probe = main["probes"].get("length")
    probe_row = ""
    if probe:
        j = main["probes"]["roles"].index("nl")
        probe_row = table(["the ending's syllables, read by a probe at the line break (seed 0)"] + main["probes"]["layers"],
                          [["trained"] + [num(r[j]) for r in probe["trained"]["report"]],
                           ["random-init model"] + [num(r[j]) for r in probe["random_init"]["report"]],
                           ["always the commonest length (baseline)"] +
                           [num(probe["majority_baseline"])] * len(probe["trained"]["report"])])
    return (head + f'<p class="verdict">{verdict}</p>' + fig +
            "<p>Line 2 has 8 syllables, so the opener's length is set by the ending's: the line break, which "
            "predicts the opener, is where the world demands a decision about <em>which word of the cell</em> "
            "ends the line. Every seed (layers chosen on select pairs, rates on report pairs):</p>" +
            per_seed_table(m, SEED_COLUMNS) +
            "<h3>Seed 0 in detail</h3>" + table(["patching (single layer at one position)", "value"], ev) +
            "<h3>Green and habit at the line break, judged by the couplet written (seed 0)</h3>" +
            table(["edit", "rate"], inter) +
            (f"<p>Couplets the green edit wrote:</p><ul>{examples}</ul>" if examples else "") + probe_row +
            "<p class=note>A length direction is the mean difference of the line break's residual between prompts "
            "whose written ending has that many syllables and all prompts (fit prompts). " + forced_reading(g, hb) +
            "</p>")


def forced_reading(g, hb):
    """What the opener-forced rows say, read from them: does the edit act through the opener it makes
    the model write?"""
    free = [x["rate"] for x in (g["inject"], hb["suppress"]) if x["rate"] is not None]
    forced = [x["rate"] for x in (g["opener_forced"], hb["opener_forced"]) if x["rate"] is not None]
    if not free or not forced:
        return ""
    if max(forced) < THRESHOLDS["weak"] <= max(free):
        return (f"With the opener teacher-forced the same edits reach the ending at most {num(max(forced))} of the "
                f"time (under {THRESHOLDS['weak']}): the shape reaches it through the opener the model writes.")
    return f"With the opener teacher-forced the edits still reach the ending (up to {num(max(forced))})."


PLANNING_ROWS = (
    ("(1) causes the future word: the line break patched, the ending changes to another valid couplet's, "
     "line 2 free (total)", "total_valid_change_nl"),
    ("... with line 2's words teacher-forced (direct)", "direct_valid_change_nl"),
    ("... through the words written (mediated, paired)", "mediated_valid_change_nl"),
    ("(2) shapes earlier words: valid couplet at the donor's length (line break, one layer)", "shape_donor_valid_rate"),
    ("... control: the same patch from a donor of the same length", "shape_donor_valid_control_rate"),
    ("... positive control: B's opener teacher-forced", "shape_positive_control_rate"),
    ("... raw: the opener takes the donor's length, broken couplets included", "shape_opener_rate"),
    ("green at the line break: valid couplet ending in the injected length's cell-mate", "green_valid_rate"),
    ("... random direction", "green_random_rate"),
    ("habit at the line break: valid couplet ending in the runner-up", "habit_valid_rate"),
    ("... random direction", "habit_random_rate"),
    ("opener-length transcoder features at the line break", "length_features_rate"),
    ("... random directions of the same norm", "length_features_random_rate"),
    ("... with the first word kept", "length_features_first_word_kept_rate"),
)


def n_range(m, k):
    ns = [s.get("n", {}).get(k) for s in m.get("seeds", []) if s.get("n", {}).get(k) is not None]
    return "–" if not ns else str(ns[0]) if len(set(ns)) == 1 else f"{min(ns)}–{max(ns)}"


def predictions(models):
    """Each model's predictions as rules, written before the study measured them, and whether each held."""
    rows = []
    for name, m in models.items():
        for p in m.get("predictions") or []:
            each = ", ".join({True: "yes", False: "no", None: "–"}[x] for x in p["per_seed"])
            rows.append([escape(name), escape(p["rule"]), f"<b>{verdict_word(p['held'])}</b>", each])
    return table(["model", "predicted (before the study)", "", "per seed"], rows) if rows else ""


def planning_table(models):
    rows = [[label] + [f"{fmt_seeds(m, k)} (n {n_range(m, k)})" for m in models.values()] for label, k in PLANNING_ROWS]
    rows.append(["training seeds"] + [str(m["headline"]["n_seeds"]) for m in models.values()])
    prose = "".join(f"<li><b>{escape(n)}</b>: {escape(m['shape_prediction'])}</li>" for n, m in models.items()
                    if m.get("shape_prediction"))
    return ('<h3 id="planning">Planning, criterion by criterion, in every model</h3><p>Mean over seeds, [min, max]; '
            f"n per seed in brackets; a seed with fewer than {THRESHOLDS['few']} items shows every seed as k/n. "
            "A world without a meter has no shape to plan (–).</p>" + table(["criterion"] + list(models), rows) +
            "<h3 id=\"predictions\">Predictions, and which held</h3>" + predictions(models) +
            (f"<details><summary>The predictions in words, as first written (for the measures of their time)"
             f"</summary><ul>{prose}</ul></details>" if prose else ""))
