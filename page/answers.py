"""The report's four answers, each a verdict read from the numbers (interp/claims.THRESHOLDS), one figure and its
evidence: where the plan is stored, whether it is smeared over line 2, whether it is baked in by training, and
whether it is composed from meaning and rhyme. The shape plan (1b) is page/shape_section.py's."""
from html import escape

from interp.claims import THRESHOLDS
from page.html import bars, effect, fmt_seeds, heatmap, interval, num, rate, table
from page.shape_section import shape_verdict


def strength(v):
    if v is None:
        return "unmeasured"
    return "strong" if v >= THRESHOLDS["carries"] else "partial" if v >= THRESHOLDS["weak"] else "none"


def no_noop(m, slot, kind):
    """A patching map's row with the cells whose patches are mostly exact no-ops blanked (drawn grey)."""
    p = m["patching"][slot]
    return [None if not p[kind].get(r) or (p[kind][r].get("noop_fraction") or 0) > THRESHOLDS["noop"]
            else p[kind][r]["value"] for r in p["roles"]]


def column_effects(m, slot):
    p = m["patching"][slot]
    return p["roles"], [(p["column"].get(r) or {}).get("value") for r in p["roles"]], \
        [(p["column_from1"].get(r) or {}).get("value") for r in p["roles"]]


def seeds_below(m, keys, bar):
    """True when every seed measured each key and each is below the bar; the per-seed values beside."""
    vals = [[s.get(k) for s in m["seeds"]] for k in keys]
    return all(v is not None and v < bar for row in vals for v in row), vals


def q1_where(models):
    main = models["main"]
    roles, col, col1 = column_effects(main, "rhyme")
    _, ccol, _ = column_effects(main, "cue")
    h = main["headline"]
    s_r, s_c = strength(h["nl_ld_rhyme"]), strength(h["nl_ld_cue"])
    prompt = [r for r in roles if not r.startswith(("l2_", "y", "end"))]
    best = max(((v, r) for r, v in zip(roles, col1) if v is not None and r in prompt), default=(None, None))
    unused, _ = seeds_below(main, ("nl_ld_rhyme", "nl_ld_cue"), THRESHOLDS["weak"])
    if s_r == "strong" and s_c == "strong":
        verdict = "In this model the plan is stored at the line break: copying the line break alone from another " \
                  "line 1 moves the ending most of the way to that line 1's ending."
    elif unused:
        verdict = (f"In this model the rhyme and the meaning are <b>not</b> stored at the line break: copying it from "
                   f"another line 1, with line 2's words held, moves the ending's logit difference "
                   f"{fmt_seeds(main, 'nl_ld_rhyme')} of the way (rhyme) and {fmt_seeds(main, 'nl_ld_cue')} (meaning), "
                   f"under {THRESHOLDS['weak']} in every seed; line 2 re-reads line 1 (of line 1's positions, what is "
                   f"computed at <code>{escape(str(best[1]))}</code> after its own token carries the most: "
                   f"{num(best[0])}). Written freely, the ending changes to another valid couplet's in "
                   f"{fmt_seeds(main, 'total_valid_change_nl')} of pairs: through the words the line break makes the "
                   f"model write (1b).")
    else:
        verdict = (f"In this model the line break carries part of the plan (rhyme: {s_r}, meaning: {s_c}); the "
                   f"rest is read again from line 1 while line 2 is written.")
    fig = heatmap([no_noop(main, "rhyme", "column"), no_noop(main, "cue", "column"),
                   no_noop(main, "rhyme", "column_from1")], ["rhyme swap", "cue swap", "rhyme, L>=1"], roles,
                  "Patching one position, every layer", "position (token role) in line 1 and line 2",
                  "swap", "Darker = that position alone carries the ending. Look at the nl column. Grey: B's residual "
                  "there is A's own (a position before the swapped word): a no-op, 0 by construction.", lo=0, hi=1)
    ev = table(["measure", "value"], [
        ["line break, rhyme swap", effect(main["patching"]["rhyme"]["column"].get("nl"))],
        ["line break, cue swap", effect(main["patching"]["cue"]["column"].get("nl"))],
        ["line break, rhyme swap, free generation ends with B's word",
         rate(main["patching"]["rhyme"].get("top1", {}).get("nl"))],
        ["seeds (rhyme, cue)", f"{fmt_seeds(main, 'nl_ld_rhyme')}, {fmt_seeds(main, 'nl_ld_cue')}"]])
    by_model = bars([(f"{n}: {slot}", m["headline"].get(key), m["headline"].get(key + "_range"))
                     for n, m in models.items() for slot, key in (("rhyme", "nl_ld_rhyme"), ("cue", "nl_ld_cue"))],
                    "The line break's patching effect, every model", "LD effect (bar: mean over seeds; line: min "
                    "to max)", "Each model's line break, patched from a line 1 with another rhyme word (rhyme) or "
                    "cue word (cue). Only where a bar is long does the line break carry the plan.")
    others = "".join(
        f"<p>In the <b>{escape(n)}</b> model the line break's effect is {fmt_seeds(m, 'nl_ld_rhyme')} for "
        f"the rhyme and {fmt_seeds(m, 'nl_ld_cue')} for the meaning ({m['headline']['n_seeds']} seeds): "
        f"{escape(m['what'].split(':')[0])}.</p>" for n, m in models.items() if n != "main")
    return (f'<h2 id="q1">1. Where is the plan stored?</h2><p class="verdict">{verdict}</p>{fig}{by_model}{ev}{others}'
            f"<p class=note>Would change our mind: another seed with a line-break effect above "
            f"{THRESHOLDS['carries']}. Prompt positions: {escape(', '.join(prompt))}.</p>")


def q2_smeared(main):
    roles, col, _ = column_effects(main, "rhyme")
    # line 2's positions before the one that predicts the ending (there the ending is decided by definition)
    line2 = [(r, v) for r, v in zip(roles, col) if r.startswith(("l2_", "y", "end_link")) and v is not None]
    sw = main.get("sweep")
    top = max(line2, key=lambda x: x[1], default=(None, None))
    if top[1] is not None and top[1] >= THRESHOLDS["carries"]:
        verdict = (f"Partly: by <code>{escape(top[0])}</code> in line 2 the ending is decided there "
                   f"(patching that one position moves it {num(top[1])} of the way).")
    else:
        verdict = ("No: no single position of line 2 before the ending's own article carries the ending; the "
                   "position that writes the ending reads line 1 itself.")
    sel, rep = (main["probes"]["ending"]["trained"][k] for k in ("select", "report"))

    def on_report(k):  # the layer is chosen on select prompts, the accuracy read on report prompts
        layers = [l for l in range(len(sel)) if sel[l][k] is not None and rep[l][k] is not None]
        return rep[max(layers, key=lambda l: sel[l][k])][k] if layers else None
    along = [(r, on_report(k)) for k, r in enumerate(main["probes"]["roles"])
             if r == "nl" or r.startswith(("l2_", "y", "end_"))]
    fig = bars([(r, v, None) for r, v in along], "The future ending, read along line 2",
               "probe accuracy (layer chosen on select prompts)",
               "A probe for the ending word at each position from the line break on (report prompts). Readable "
               "everywhere means available, not used: compare the patching effects below.")
    ev = table(["line-2 position", "LD effect of patching it (rhyme swap)"],
               [[escape(r), num(v)] for r, v in line2])
    for kind, one in (sw or {}).items():
        b = one["best_other"] or {}
        ev += table(["sweep: inject a word of " + kind.replace("_", " ") + " at every cell", "rate"],
                    [[f"at the site (L{one['site']['layer']} {escape(one['site']['role'])})", rate(one["site_rate"])],
                     [f"best other cell on select (L{b.get('layer')} {escape(str(b.get('role')))})", rate(one["best_other"])]])
    e = main.get("effects", {}).get("rhyme")
    if e:
        ev += table(["the line break patched (rhyme swap)", "the ending changes to another valid couplet's"],
                    [["line 2 written freely (total)", rate(e["total"])],
                     ["line 2's words teacher-forced (direct)", rate(e["direct"])],
                     ["through the words written (mediated = total - direct, paired)",
                      f"{num(e['mediated']['value'])} (95% CI {interval(e['mediated']['ci'])})"]])
    return (f'<h2 id="q2">2. Is the plan smeared over the words of line 2?</h2><p class="verdict">{verdict}</p>{fig}{ev}'
            f"<p class=note>How sure: one seed's patching map (n = {main['patching']['rhyme']['n_pairs']} pairs). Would "
            f"change our mind: a line-2 position before the ending's article with an effect above "
            f"{THRESHOLDS['carries']}.</p>")


def q3_baked(results):
    """Pre-caching or breadcrumbs, read from the myopic model beside the main one: a plan that myopic
    training (no gradient from later tokens into earlier positions) removes was made *for* later tokens."""
    models = results["models"]
    main, my = models["main"], models.get("myopic")
    head = '<h2 id="q3">3. Is it baked in by training (pre-caching or breadcrumbs)?</h2>'
    if my is None:
        return head + "<p>Not measured in this run: train the myopic variant (<code>python train.py --all</code>).</p>"
    main_plans, _ = shape_verdict(main)
    few_pairs = all((s.get("n", {}).get("shape_donor_valid_rate") or 0) < THRESHOLDS["few"] for s in my["seeds"])
    my_plans, _ = shape_verdict(my)
    a, b = main["headline"].get("ending_probe_nl"), my["headline"].get("ending_probe_nl")
    probe = ("" if a is None or b is None else
             f" The ending word read at the line break: {num(a)} normally, {num(b)} myopic " +
             ("(it falls by more than " + f"{THRESHOLDS['drop']}: that early representation is also made for later "
              "tokens)." if b < a - THRESHOLDS["drop"] else "(no fall: that representation is a by-product of "
              "reading line 1)."))
    if main_plans and (few_pairs or my_plans is False):
        verdict = ("Pre-caching, for the shape: the main model's line break stores the line's shape in every seed (1b), "
                   "and the myopic model, which gets no gradient from later tokens into earlier positions, does not: " +
                   (f"it varies the opener's length so little that fewer than {THRESHOLDS['few']} report line 1s per "
                    f"seed have a donor of another length ({fmt_seeds(my, 'shape_donor_valid_rate')})."
                    if few_pairs else f"its patch does not beat its control ({fmt_seeds(my, 'shape_donor_valid_rate')} "
                    f"against {fmt_seeds(my, 'shape_donor_valid_control_rate')}).") + probe)
    elif main_plans:
        verdict = ("Breadcrumbs: the myopic model stores the shape at the line break as well (" +
                   f"{fmt_seeds(my, 'shape_donor_valid_rate')} against {fmt_seeds(my, 'shape_donor_valid_control_rate')})"
                   ": it is made for the next token anyway." + probe)
    else:
        verdict = "Not decided: the main model does not store the shape at the line break in every seed (1b)." + probe
    fig = bars([(f"{n}: {k}", m["headline"].get(key), m["headline"].get(key + "_range"))
                for n, m in models.items() if n in ("main", "myopic")
                for k, key in (("word read", "ending_probe_nl"), ("valid", "valid"))],
               "Normal vs myopic training", "rate (bar: mean over seeds; line: min to max)",
               "Myopic training stops gradients from later tokens. A shorter 'word read' bar for myopic means the "
               "early representation was made for later tokens.")
    ev = table(["model", "valid", "ending word read at the line break", "its cell's favourite (baseline)",
                "shape: valid at the donor's length (n per seed)", "control"],
               [[escape(n), fmt_seeds(m, "valid"), fmt_seeds(m, "ending_probe_nl"), fmt_seeds(m, "cell_favourite_rate"),
                 fmt_seeds(m, "shape_donor_valid_rate"), fmt_seeds(m, "shape_donor_valid_control_rate")]
                for n, m in models.items()])
    return (head + f'<p class="verdict">{verdict}</p>{fig}{ev}'
            f"<p class=note>Line 2 is written greedily, one token at a time, by the same weights: no candidates "
            f"are generated and compared. Would change our mind: a myopic model whose line break decides the opener's "
            f"length from line 1 as the main model's does.</p>")


def q4_composed(models):
    """Composed when, in every seed, held-out (cue word, family) pairs are written validly at least
    THRESHOLDS["composed"] as often as seen ones."""
    m = models["main"]
    c = m.get("composition", {})
    head = '<h2 id="q4">4. Is the plan composed from meaning and rhyme?</h2>'
    if not c.get("n"):
        return head + "<p>Not measured (no held-out pairs).</p>"
    seeds = [s for s in m["seeds"] if s.get("composition_valid_holdout_rate") is not None]
    ok = [s["composition_valid_holdout_rate"] >= THRESHOLDS["composed"] * s["composition_valid_seen_rate"] for s in seeds]
    pairs = len(c["holdout_pairs"])
    verdict = (("Yes, in every seed: " if ok and all(ok) else f"Not in every seed ({sum(ok)} of {len(ok)}): ") +
               f"line 1s pairing a cue word with a rhyme family never seen together in training ({pairs} held-out "
               f"pairs) get valid couplets {fmt_seeds(m, 'composition_valid_holdout_rate')} of the time, against "
               f"{fmt_seeds(m, 'composition_valid_seen_rate')} for seen pairs (bar: at least "
               f"{THRESHOLDS['composed']} of the seen rate).")
    rows = [["valid, seen pairs (seed 0)", rate(c["valid_seen"])], ["valid, held-out pairs (seed 0)", rate(c["valid_holdout"])]]
    for k in ("probe_meaning_seen", "probe_meaning_holdout", "probe_family_seen", "probe_family_holdout",
              "additive_explained_seen", "additive_explained_holdout"):
        if k in c:
            rows.append([k.replace("_", " ") + " (seed 0)", num(c[k])])
    fig = bars([(f"seed {s['seed']}: {kind}", s.get(f"composition_valid_{key}_rate"),
                 s.get("ci", {}).get(f"composition_valid_{key}_rate"))
                for s in m["seeds"] for kind, key in (("seen", "seen"), ("held out", "holdout"))],
               "Valid couplets: seen vs held-out pairs, every seed", "share valid (95% interval)",
               f"Held-out pairs never met in training ({pairs} of them); bars of equal length mean the ending is "
               f"composed from meaning and rhyme, not memorised per pair.")
    return (head + f'<p class="verdict">{verdict}</p>' + fig + table(["measure", "value"], rows) +
            f"<p class=note>Additive: the share of the site's variance explained by mean + meaning vector + family "
            f"vector, fit on seen prompts. The unit that generalizes is the pair: {pairs} held-out pairs, however many "
            f"prompts. Would change our mind: held-out validity well below seen validity on another seed.</p>")
