"""The report page, rendered from results.json alone: `render(results) -> html`.

One function per section. Verdict sentences are chosen by stated thresholds on the numbers in the
file (THRESHOLDS), so a different run reads differently; nothing on the page is typed in.
"""
from html import escape

from interp.claims import THRESHOLDS, claim_results, verdict_word
from page.answers import q1_where, q2_smeared, q3_baked, q4_composed
from page.circuit_section import CIRCUIT_LABELS, circuit_section
from page.html import curves, fmt_seeds, heatmap, num, page, rate, table
from page.search_section import search
from page.shape_section import shape_plan, planning_table
from page.viewer import graph_viewer

HEADLINE_LABELS = {
    "valid": "valid couplets (test line 1s)",
    "nl_ld_rhyme": "line break, full-column patch: LD effect of a rhyme swap (line 2 teacher-forced)",
    "nl_ld_cue": "line break, full-column patch: LD effect of a cue swap (line 2 teacher-forced)",
    "total_valid_change_nl": "line break patched (rhyme swap): the ending changes to another valid couplet's, line 2 "
                             "written freely (total)",
    "direct_valid_change_nl": "the same with line 2's words teacher-forced (direct)",
    "mediated_valid_change_nl": "total minus direct, paired: through the words written (mediated)",
    "total_any_change_nl": "line break patched: the ending changes at all, broken couplets included (free)",
    "shape_donor_valid_rate": "line break patched at one layer: a valid couplet at the donor's length",
    "shape_donor_valid_control_rate": "control: the same patch from a donor of A's length; valid at another length",
    "shape_positive_control_rate": "positive control: B's opener teacher-forced; valid at the donor's length",
    "shape_opener_rate": "raw: the opener takes the donor's length, broken couplets included",
    "shape_article_rate": "line break patched: the article takes the donor's (pairs whose articles differ)",
    "shape_next_token_rate": "the line break's final residual patched (its next-token prediction): valid at the "
                             "donor's length",
    "green_valid_rate": "inject another length at the line break: a valid couplet ending in that cell-mate",
    "green_random_rate": "same, a norm-matched random direction",
    "green_control_rate": "same edit at line 1's verb",
    "green_forced_rate": "same edit, opener teacher-forced: ends in the cell-mate (direct)",
    "habit_valid_rate": "suppress the planned length at the line break: a valid couplet ending in the runner-up",
    "habit_random_rate": "same, a norm-matched random direction",
    "habit_forced_rate": "same edit, opener teacher-forced: ends in the runner-up (direct)",
    "add_only_other_rhyme_rate": "add-only at the intervention site: a word of another rhyme, same meaning",
    "add_only_other_rhyme_random_rate": "same, a norm-matched random direction",
    "add_only_other_meaning_rate": "add-only at the intervention site: a word of another meaning, same rhyme",
    "add_only_other_meaning_random_rate": "same, a norm-matched random direction",
    "add_only_two_facts_rate": "add-only at the intervention site: a word of another meaning and rhyme",
    "add_only_two_facts_random_rate": "same, a norm-matched random direction",
    "suppression_runner_up_rate": "suppression of the planned word (non-zero contrastive edits, opener kept): runner-up",
    "sweep_rhyme_site_rate": "sweep, other-rhyme word: at the family site",
    "sweep_rhyme_best_other_rate": "sweep, other-rhyme word: best other cell (chosen on select)",
    "sweep_meaning_site_rate": "sweep, other-meaning word: at the meaning site",
    "sweep_meaning_best_other_rate": "sweep, other-meaning word: best other cell (chosen on select)",
    "ending_probe_nl": "ending-word probe at the line break (final residual)",
    "ending_probe_nl_random_init": "same probe, random-init model",
    "cell_favourite_rate": "baseline: the cell's favourite ending (no word-level plan needed)",
    "planned_word_features_rate": "prompts with transcoder features at the line break standing for the written word",
    "length_features_rate": "eligible prompts with a transcoder feature at the line break whose ablation switches "
                            "the opener's length and writes a valid cell-mate (opener-length features)",
    "length_features_random_rate": "the same search with norm-matched random directions",
    "length_features_control_rate": "the same criterion at line 1's verb",
    "length_features_first_word_kept_rate": "the same with line 2's first word kept, where it starts openers of "
                                            "several lengths (beyond the next word)",
    "composition_valid_seen_rate": "valid couplets, seen (cue word, family) pairs",
    "composition_valid_holdout_rate": "valid couplets, held-out (cue word, family) pairs",
}
HEADLINE_LABELS.update(CIRCUIT_LABELS)


# ---- sections ---------------------------------------------------------------------------------------------
def header(results):
    names = ", ".join(results["models"])
    return (f"<h1>Does a tiny poet plan its rhyme?</h1><p>A small transformer trained from scratch on rhyming "
            f"couplets, taken apart. Models studied: {escape(names)}. Every number on this page is read from "
            f"<code>results.json</code>, written by the run that made the page.</p>")


def claims_table(models):
    """Every claim the README or this page makes, the rules it rests on, and whether they hold here."""
    rows = [[c["id"], escape(c["model"]), escape(c["text"]),
             "<br>".join(f"{escape(r['rule'])}: {verdict_word(r['held'])}" for r in c["rules"]),
             f"<b>{verdict_word(c['held'])}</b>"] for c in claim_results(models)]
    return ('<h2 id="claims">What the numbers support</h2><p>Each claim of this page and the README, with the rules '
            "on the seeds' numbers it rests on (thresholds in <code>interp/claims.py</code>).</p>" +
            table(["id", "model", "claim", "rules", "holds"], rows))


def reading_guide():
    rows = [("probe", "a linear classifier reads a fact (the rhyme family, the meaning, the future ending) from "
             "activations: it shows what is <em>readable</em> there, not what is used.", "#probes"),
            ("patch", "copy activations from a run on another line 1 into this run: if the ending follows, the "
             "patched place <em>carries</em> what decides it (1 = fully, 0 = not at all).", "#q1"),
            ("injection", "add a word's direction on top of the activations at one place: if the model then writes "
             "that word, the place is <em>used</em> as a plan (a random direction of the same size is the control).",
             "#interventions"),
            ("attribution graph", "a replacement model (a cross-layer transcoder) turns one forward pass into a graph "
             "of features; the share of it the transcoder explains is its replacement score.", "#clt")]
    return "<h2>How to read this page</h2>" + table(["tool", "what it tells you", ""],
                                                    [(f"<b>{a}</b>", b, f'<a href="{c}">section</a>') for a, b, c in rows])


def headline_table(results):
    keys = list(HEADLINE_LABELS)
    models = results["models"]
    rows = [[HEADLINE_LABELS[k]] + [fmt_seeds(m, k) for m in models.values()] for k in keys]
    rows.append(["training seeds"] + [str(m["headline"]["n_seeds"]) for m in models.values()])
    return ("<h2>Headline numbers</h2><p class=note>Mean over training seeds, [min, max] in brackets when there "
            "is more than one seed. LD effect: 0 = the patch leaves the ending alone, 1 = it moves it as far as the "
            "other line 1 does.</p>" + table(["measure"] + list(models), rows))


def interventions(main):
    if "injection" not in main:
        return ""
    out = ['<h2 id="interventions">Interventions at the site</h2>']
    site = main["sites"]["intervention"]
    out.append(f"<p>The site is <code>{escape(site['role'])}</code> at layer {site['layer']}: the {site['chosen_as']} "
               f"site, chosen on <em>select</em> pairs by patching one layer at one position (rhyme-swap effect "
               f"{num(site['select_rhyme'])}, cue-swap effect {num(site['select_cue'])}; on report pairs "
               f"{num(site['report_rhyme'])} and {num(site['report_cue'])}). Every rate below is on <em>report</em> "
               f"prompts.</p>")
    for kind, inj in main["injection"].items():
        scales = list(inj["add_only"])
        out.append(curves(scales, [("inject d_word", "#2b6cb0", [inj["add_only"][s]["inject"]["rate"] for s in scales]),
                                   ("random, same norm", "#999", [inj["add_only"][s]["random"]["rate"] for s in scales])],
                          f"Add-only injection ({kind.replace('_', ' ')})", "scale s (x += s * d_word)",
                          "line 2 ends with the word", "The gap between the lines is what the direction does."))
        out.append(table(["edit", "rate"], [[f"add-only, scale {inj['scale']} (chosen on select)",
                                             rate(inj["add_only"][str(inj["scale"])]["inject"])],
                                            ["random direction, same scale", rate(inj["add_only"][str(inj["scale"])]["random"])],
                                            ["steer (d_word - d_planned): secondary", rate(inj["steer"])],
                                            ["replace by class mean: a patch, not an injection",
                                             rate(inj["class_mean_replace"])]]))
    s = main["suppression"]
    rows = [[mode] + [str(s[mode]["counts"][k]) for k in s[mode]["counts"]] + [rate(s[mode]["runner_up_rate"])]
            for mode in ("free", "opener_forced")]
    out.append(f"<h3>Suppression</h3><p>Subtract {s['scale']} x the planned word's contrastive direction (its "
               f"mean-difference direction minus its cell's mean; cell mates share cosine "
               f"{num(main['directions']['cell_mate_cosine']['same_cell'])}). Counted: the n = {s['n']} report "
               f"prompts whose edit exists; {s['n_zero_edit']} more have a contrastive direction of exactly zero "
               f"(the planned word is the only word of its cell the model writes, so nothing tells it from a "
               f"cell-mate) and {s['n_no_direction']} have none.</p>")
    out.append(table(["mode", *s["free"]["counts"], "runner-up rate"], rows))
    out.append(f"<p class=note>Free generation changed line 2's opener in {rate(s['free']['opener_changed'])}.</p>")
    ab = main.get("ablation", {})
    out.append("<h3>Resample ablation</h3>" + table(
        ["position (keys and values from another line 1)", "ending kept", "other valid ending", "invalid"],
        [[escape(r)] + [rate(v[k]) for k in ("kept", "other_valid", "invalid")] for r, v in ab.items()]))
    return "".join(out)


def probes(main):
    p = main["probes"]
    figs = []
    for t in ("family", "meaning", "ending"):
        figs.append(heatmap(p[t]["trained"]["report"], p["layers"], p["roles"], f"Probe: {t}",
                            "position", "layer", f"Accuracy on report prompts (majority baseline "
                            f"{num(p[t]['majority_baseline'])})."))
        figs.append(heatmap(p[t]["random_init"]["report"], p["layers"], p["roles"], f"Control: {t}, random init",
                            "position", "layer", "The same probe on an untrained model of the same shape."))
    readable = [[k, escape(v["role"]), str(v["layer"]), num(v["select"]), num(v["report"]), num(v["random_init_report"])]
                for k, v in main["readable_sites"].items() if v]
    causal = [[k, escape(v["role"]), str(v["layer"]), num(v["select_rhyme"]), num(v["select_cue"]), num(v["report_rhyme"]),
               num(v["report_cue"])] for k, v in main["sites"].items() if k != "intervention"]
    return ('<h2 id="probes">Probes and sites</h2>' + "".join(figs) +
            "<p>Where each fact is most <em>readable</em> (probe accuracy above the random-init model's, on select "
            "prompts):</p>" + table(["fact", "position", "layer", "select", "report", "random init (report)"], readable) +
            "<p>Where each fact is <em>used</em> (patching one layer at one position; the sites of the interventions):</p>" +
            table(["site", "position", "layer", "rhyme swap (select)", "cue swap (select)", "rhyme swap (report)",
                   "cue swap (report)"], causal))


def single_layer(main):
    out = ["<h2>Patching one layer at a time</h2>"]
    for slot in ("rhyme", "cue"):
        p = main["patching"][slot]
        if "single" in p:
            grid = [[None if (z or 0) > THRESHOLDS["noop"] else v for v, z in zip(row, zrow)]
                    for row, zrow in zip(p["single"], p.get("single_noop") or [[None] * len(r) for r in p["single"]])]
            out.append(heatmap(grid, p["layers"], p["roles"], f"{slot} swap: one layer, one position",
                               "position", "residual entering layer", f"n = {p['n_pairs']} pairs. Grey: a no-op (B's "
                               f"residual there is A's own).", lo=0, hi=1))
    return "".join(out)


def clt(main):
    c = main.get("clt")
    if not c or "skipped" in c:
        reason = (c or {}).get("skipped") or main.get("skipped")
        why = escape(reason) if reason else "switched off (<code>--clt</code>)"
        return f'<h2 id="clt">Cross-layer transcoder</h2><p>Not run: {why}.</p>'
    e, g = c["ending_token"], c["graph_scores"]
    f = c.get("featured") or {}
    graphs = (summary_graph_svg(f) if f else "") + (graph_viewer(f["graph"], "graph-featured", "The whole graph: "
                                                                 + f["couplet"]) if "graph" in f else "")
    return ('<h2 id="clt">Cross-layer transcoder (seed 0)</h2><p class=note>The transcoder of every seed of the main '
            "and committed models feeds the length-feature rows of 1b; its graphs and fidelity are shown for seed 0.</p>"
            + graphs +
            table(["measure", "value"], [
        ["loss recovered, all tokens", num(c["all_tokens"]["loss_recovered"], 3)],
        ["ending-token loss, model / with CLT", f"{num(e['loss_clean'], 3)} / {num(e['loss_clt'], 3)} (n = {e['n']})"],
        ["ending-token top-1 agreement", num(e["top1_agreement"], 3)],
        *([[f"{n} features: ending-token loss / top-1 agreement (L0 {num(o['l0'], 1)})",
            f"{num(o['ending_token']['loss_clt'], 3)} / {num(o['ending_token']['top1_agreement'])}"]
           for n, o in c.get("other_sizes", {}).items()] or
          [["other dictionary sizes", "not compared in this run (the full study, <code>train.py --all</code>, does)"]]),
        ["replacement score: trained CLT / a random dictionary of the same L0",
         f"{num(g['trained']['replacement'])} / {num(g['untrained']['replacement'])} ({g['trained']['n_graphs']} graphs)"],
        *planned_feature_rows(c.get("planned_word_features"))]))


def planned_feature_rows(p):
    """The transcoder's planned-word features at the line break: how often, where, and what clamping them does."""
    if not p:
        return []
    return [["prompts with planned-word features at the line break (any layer; ablating one lowers the written "
             "word alone)", rate(p["any_layer"])],
            ["the same, by layer", "; ".join(f"L{l}: {num(r['rate'])}" for l, r in p["by_layer"].items())],
            ["control: the same criterion where the ending is written", rate(p.get("writer_any_layer"))],
            ["looser: features standing for the ending's cell (meaning and rhyme), at the line break / where the "
             "ending is written", f"{rate(p.get('cell_any_layer'))} / {rate(p.get('writer_cell_any_layer'))}"],
            ["clamping them to 0 (opener kept): the model's runner-up is written", rate(p["clamp_to_zero"]["runner_up_rate"])]]


def recheck(results):
    """Measurements that once meant something else (docs/planning.md, "Pitfalls"), each beside what this run measures instead."""
    main = results["models"]["main"]
    if "injection" not in main:
        return ""
    s, inj, sw = main["suppression"], main["injection"]["other_rhyme"], main["sweep"]["other_rhyme"]
    cos, site, c = main["directions"]["cell_mate_cosine"], main["sites"]["intervention"], main.get("composition", {})
    ab, clt_ = main.get("ablation", {}), main.get("clt")
    clt_ = None if not clt_ or "skipped" in clt_ else clt_
    at = inj["add_only"][str(inj["scale"])]
    rows = [
        ["suppression switches came through line 2's opener",
         f"free: runner-up {rate(s['free']['runner_up_rate'])}, opener changed {rate(s['free']['opener_changed'])}; "
         f"with the clean opener teacher-forced: {rate(s['opener_forced']['runner_up_rate'])}"],
        ["mean-difference directions of one cell are nearly the same",
         f"cosine of cell mates {num(cos['same_cell'])} (n = {cos['n_same']} pairs), unrelated words "
         f"{num(cos['unrelated'])}: suppression uses contrastive directions"],
        ["'injection' was a class-mean patch",
         f"add-only {rate(at['inject'])} vs class-mean replace {rate(inj['class_mean_replace'])}; random {rate(at['random'])}"],
        ["sweep ratios were a 1/n floor, and its targets were two-fact words a one-fact cell cannot write",
         f"no ratio, one-fact targets, each cell's scale chosen on select: site {rate(sw['site_rate'])}, best other "
         f"cell {rate(sw['best_other'])}"],
        ["suppression counted zero edits",
         f"only edits that exist: n = {s['n']}, {s['n_zero_edit']} zero edits left out"],
        ["the ending-word probe was a cell decoder",
         f"at the line break {num(main['headline'].get('ending_probe_nl'))} against the cell's favourite "
         f"{num(main['headline'].get('cell_favourite_rate'))}"],
        ["the compositional holdout could not pass",
         f"held-out (cue word, family) pairs whose endings are trained: valid {rate(c.get('valid_holdout'))} vs seen "
         f"{rate(c.get('valid_seen'))}"],
        ["sites were chosen on the reported prompts",
         f"site chosen by patching on select pairs (rhyme effect {num(site['select_rhyme'])}), reported on disjoint "
         f"report pairs ({num(site['report_rhyme'])})"],
        ["two probe pipelines were compared", "one study function for every model: same prompt sets, same probes"],
        ["knockouts were not specific",
         "resample ablation with a control position: " + "; ".join(f"{r} kept {num(v['kept']['rate'])}" for r, v in ab.items())],
        ["CLT fidelity measured over all tokens",
         "ending token: " + (f"loss {num(clt_['ending_token']['loss_clean'], 3)} -> {num(clt_['ending_token']['loss_clt'], 3)}, "
                             f"top-1 agreement {num(clt_['ending_token']['top1_agreement'])}" if clt_ else "not run")],
        ["one training seed", f"{main['headline']['n_seeds']} seed(s) of the main model in this run"]]
    return "<h2>Numbers that meant something else, measured again</h2>" + table(["what was wrong", "what this run measures"], rows)


def summary_graph_svg(sg):
    """The boxes left to right, arrows under them as arcs whose width is the summed weight."""
    boxes, arrows = sg["boxes"], sg["arrows"]
    bw, gap, top, bh = 142, 8, 40, 120
    x = {b["name"]: 10 + k * (bw + gap) for k, b in enumerate(boxes)}
    w = 20 + len(boxes) * (bw + gap)
    h = top + bh + 150
    top_w = max([a["weight"] for a in arrows] or [1.0])
    out = [f'<figure><svg width="{w}" height="{h}" role="img" aria-label="summary graph">',
           f'<text x="10" y="16" class="t">{escape(sg["couplet"])}</text>']
    for a in arrows:
        x0, x1 = x[a["source"]] + bw / 2, x[a["target"]] + bw / 2
        depth = 20 + 12 * abs(list(x).index(a["target"]) - list(x).index(a["source"]))
        out.append(f'<path d="M{x0},{top + bh} C{x0},{top + bh + depth * 2} {x1},{top + bh + depth * 2} {x1},{top + bh}" '
                   f'fill="none" stroke="#4a74c9" stroke-opacity="0.6" stroke-width="{1 + 9 * a["weight"] / top_w:.1f}"/>')
    for b in boxes:
        bx = x[b["name"]]
        out.append(f'<rect x="{bx}" y="{top}" width="{bw}" height="{bh}" rx="6" fill="#f3f7ff" stroke="#4a74c9"/>')
        lines = [b["name"], b["words"], f"{b['features']} features"] + b["labels"]
        for k, line in enumerate(lines):
            bold = ' class="t"' if k == 0 else ""  # the box's name
            short = line if len(line) <= 21 else line[:20] + "…"  # the whole line on hover
            out.append(f'<text x="{bx + 6}" y="{top + 16 + 16 * k}"{bold}><title>{escape(line)}</title>'
                       f'{escape(short)}</text>')
    out.append(f"</svg><figcaption>Read left to right: what each part of the couplet contributes to the ending "
               f"through the transcoder's features. {escape(sg['rule'])}</figcaption></figure>")
    return "".join(out)


def render(results):
    main = results["models"]["main"]
    # the four answers first (verdict, one figure, evidence), then the tables and the detail behind them
    body = [header(results), q1_where(results["models"]), shape_plan(results["models"]["main"]), q2_smeared(main),
            q3_baked(results), q4_composed(results["models"]), circuit_section(results), claims_table(results["models"]),
            planning_table(results["models"]), reading_guide(),
            headline_table(results), interventions(main), probes(main), single_layer(main), clt(main),
            recheck(results), search(results)]
    return page("Does a tiny poet plan its rhyme?", "".join(body))


def prompt_page(p):
    """The page of `analyze.py --prompt`: verdict, the ending's candidates, and the graphs."""
    verdict = (f"The model ends your couplet with <b>{escape(p['line2'][-1] if p['line2'] else '(nothing)')}</b>: "
               + ("a valid couplet." if not p["broken"] else f"it breaks {escape(', '.join(p['broken']))}."))
    body = [f"<h1>Your couplet</h1><p class=verdict>{verdict}</p>",
            f"<p><code>{escape(' '.join(p['line1']))}</code><br><code>{escape(' '.join(p['line2']))}</code></p>",
            f"<p>{escape(p['reading'])}</p>"]
    if p["candidates"]:
        body.append("<h2>The plan: candidates for the ending</h2><p class=note>The model's probabilities for the "
                    "last word, with the rest of its line 2 given.</p>" +
                    table(["word", "probability"], [[escape(w), num(q)] for w, q in p["candidates"]]))
    g = p.get("graph")
    if g:
        body.append(f"<h2>How it chose: the attribution graph</h2><p>{g['kept_features']} features kept by pruning; "
                    f"the transcoder explains {num(g['replacement'])} of the influence on the ending (replacement "
                    f"score).</p>" + summary_graph_svg(g) + graph_viewer(g["graph"], "graph-prompt", "The whole graph"))
    else:
        body.append(f"<p class=note>{escape(p['no_graph'])}</p>")
    return page("Your couplet", "".join(body))
