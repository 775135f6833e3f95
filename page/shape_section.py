"""The report's section on the shape plan (interp/shape.py) and the planning table of every model.

Planning, as the recent literature defines it, is a representation that (1) causes a future word and
(2) shapes the words written before it. The section shows both for the line break, judged by the
couplet the model writes; the table puts every model side by side. Verdicts follow from the numbers
in results.json and the one bar of interp/patching.py."""
from html import escape

from interp.patching import CARRIES, WEAK
from interp.shape import CONTROL_ROLE as CONTROL
from page.html import fmt_seeds, heatmap, num, rate, table


def shape_plan(main):
    sh = main.get("shape") or {}
    head = '<h2 id="shape">1b. The plan this world demands: the shape of line 2</h2>'
    if "skipped" in sh or not sh.get("site"):
        return head + f"<p>Not measured: {escape(sh.get('skipped', 'no shape pair on select prompts'))}.</p>"
    site, ctl, g, hb = sh["site"], sh.get("control") or {}, sh["green"], sh["habit"]
    v = site["opener"]["rate"] or 0
    where = f"the line break, entering {sh['layers'][sh['layer']]}"
    if v >= CARRIES:
        verdict = (f"Yes: the line break stores the shape of line 2. Copying another line 1's {where} makes the "
                   f"opener take that line's length in {num(v)} of pairs (line 1's verb: "
                   f"{num((ctl.get('opener') or {}).get('rate'))}).")
    elif v >= WEAK:
        verdict = (f"Partly: copying another line 1's {where} makes the opener take that line's length in "
                   f"{num(v)} of pairs (line 1's verb: {num((ctl.get('opener') or {}).get('rate'))}); the map "
                   f"below shows which other positions carry the rest.")
    else:
        verdict = f"No: copying another line 1's {where} moves the opener's length in only {num(v)} of pairs."
    layers, roles = sh["layers"], sh["roles"]
    fig = heatmap([[sh["map"][r][l] for r in roles] for l in range(len(layers))], layers, roles,
                  "Which position decides the opener's length?", "position in line 1 (patched alone)",
                  "residual entering layer", f"Share of pairs (n = {sh['n_pairs']}, clean openers of different "
                  f"lengths) whose freely written opener takes the donor's length after one cell is copied from "
                  f"the donor. The last row is the final residual.", lo=0, hi=1)
    c = site["classes"]
    ev = [["opener takes the donor's length (" + where + ")", rate(site["opener"])],
          ["the same at line 1's verb (control)", rate(ctl.get("opener"))],
          ["the article before the ending takes the donor's", rate(site["article"])],
          ["the ending word changes", rate(site["ending_changed"])],
          ["... written line 2: same word / valid cell-mate / donor's word / broken",
           f"{c['same_word']} / {c['cell_mate_valid']} / {c['donor']} / {c['broken']}"]]
    for slot, e in (main.get("effects") or {}).items():
        ev.append([f"whole line-break column ({slot} swap): ending changes, free (total) / teacher-forced (direct) "
                   f"/ mediated", f"{rate(e['total'])} / {rate(e['direct'])} / {num(e['mediated'])}"])
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
    plf = (main.get("clt") or {}).get("planned_length_features")
    if plf:
        inter += [["transcoder features at the line break whose ablation alone switches the opener's length and "
                   "writes a valid cell-mate (eligible prompts, any layer)", rate(plf["nl"])],
                  ["... the same criterion at line 1's verb", rate(plf[CONTROL])]]
        inter += [[f"... a frequent one: L{t['layer']} #{t['feature']} ({t['prompts']} prompts)", escape(t["label"])]
                  for t in plf["top"]]
    examples = "".join(f"<li><code>{escape(x['line1'])} / {escape(x['written'])}</code></li>"
                       for x in g["inject"].get("examples", []))
    probe = main["probes"].get("length")
    probe_row = ""
    if probe:
        j = main["probes"]["roles"].index("nl")
        probe_row = table(["the ending's syllables, read by a probe at the line break"] + main["probes"]["layers"],
                          [["trained"] + [num(r[j]) for r in probe["trained"]["report"]],
                           ["random-init model"] + [num(r[j]) for r in probe["random_init"]["report"]],
                           ["always the commonest length (baseline)"] +
                           [num(probe["majority_baseline"])] * len(probe["trained"]["report"])])
    return (head + f'<p class="verdict">{verdict}</p>' + fig +
            "<p>Line 2 has 8 syllables, so the opener's length is set by the ending's: the line break, which "
            "predicts the opener, is where the world demands a decision about <em>which word of the cell</em> "
            "ends the line. The layer was chosen on select pairs; every rate is on report pairs.</p>" +
            table(["patching (single layer at one position)", "value"], ev) +
            "<h3>Green and habit at the line break, judged by the couplet written</h3>" +
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
    if max(forced) < WEAK <= max(free):
        return ("With the opener teacher-forced the same edits almost never reach the ending: the shape reaches "
                "it through the opener the model writes.")
    return f"With the opener teacher-forced the edits still reach the ending (up to {num(max(forced))})."


PLANNING_ROWS = (
    ("(1) causes the future word: the ending changes when the line break is patched, line 2 free (total)",
     "total_effect_nl"),
    ("... with line 2's words teacher-forced (direct)", "direct_effect_nl"),
    ("... through the words written (mediated)", "mediated_effect_nl"),
    ("(2) shapes earlier words: the opener takes the donor's length (line break, one layer)", "shape_opener_rate"),
    ("... control position (line 1's verb)", "shape_control_rate"),
    ("... the article takes the donor's", "shape_article_rate"),
    ("green at the line break: valid couplet ending in the injected length's cell-mate", "green_valid_rate"),
    ("... random direction", "green_random_rate"),
    ("habit at the line break: valid couplet ending in the runner-up", "habit_valid_rate"),
    ("... random direction", "habit_random_rate"),
    ("planned-length transcoder features at the line break (seed 0)", "planned_length_features_rate"),
    ("... the same criterion at line 1's verb", "planned_length_features_control_rate"),
)


def planning_table(models):
    rows = [[label] + [fmt_seeds(m, k) for m in models.values()] for label, k in PLANNING_ROWS]
    rows.append(["training seeds"] + [str(m["headline"]["n_seeds"]) for m in models.values()])
    preds = "".join(f"<li><b>{escape(n)}</b>: {escape(m['shape_prediction'])}</li>" for n, m in models.items()
                    if m.get("shape_prediction"))
    return ('<h3 id="planning">Planning, criterion by criterion, in every model</h3><p>Mean over seeds, [min, max]. '
            "A world without a meter has no shape to plan (–).</p>" + table(["criterion"] + list(models), rows) +
            (f"<p>Each row was predicted before the study measured it (<code>worlds.MODELS</code>):</p><ul>{preds}</ul>"
             if preds else ""))
