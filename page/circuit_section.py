"""The report's section on the circuit, head by head (interp/circuit.py), and its Markdown for results.md.

The main model's circuit as a diagram (positions as columns, layers as rows, each head a box at the position it
writes at, fed by the positions it reads, labelled with what it moves; the numbers on hover), the circuit
heads' attention by role as heatmaps, the shape route's heads (token or length) and readers, the ablations, and
every model's circuit seed by seed beside its prediction. Every sentence is chosen from the numbers."""
from html import escape

from data import ROLES
from interp.circuit import ROUTES, prediction_checks
from interp.heads import parse_heads
from interp.patching import CARRIES, WEAK
from page.html import heatmap, interval, num, rate, table

COLOUR = {"rhyme": "#2b6cb0", "cue": "#c05621", "shape": "#2f855a", "reader": "#805ad5"}
MOVES = {"rhyme": "the rhyme", "cue": "the meaning", "shape": "the length", "reader": "the opener"}
ENDING = "end_art"  # the position that predicts the ending (the word before it)
# the circuit's headline keys (interp/headline.py) as the page's and results.md's tables name them
CIRCUIT_LABELS = {
    **{f"circuit_{r}_{m}": f"circuit ({what}): {how}" for r, what in (
        ("rhyme", "rhyme-swap pairs, heads at the ending, normalized LD"),
        ("cue", "cue-swap pairs, heads at the ending, normalized LD"),
        ("shape", "heads at the line break, valid couplets at the donor's length relative to all heads"))
       for m, how in (("faithfulness", "the greedy set alone (faithfulness)"),
                      ("complement", "every other head (complement)"),
                      ("random", "random sets of the same size (control)"))},
    "circuit_shape_all_rate": "all heads at the line break copied: a valid couplet at the donor's length"}


def _heads(r):
    return [] if not r or "heads" not in r else r["heads"]


def _mass(r, head):
    """{role: attention mass} of one head from the position it writes at."""
    return dict(zip(r["roles"], r["attention"][head]))


def _route_sentence(name, r):
    if not r or "skipped" in r:
        every = (r or {}).get("length", {}).get("all")
        return (f"<li><b>{MOVES[name].capitalize()}</b>: no circuit ({escape((r or {}).get('skipped', 'no pairs'))})" +
                (f"; all heads at the line break write a valid couplet at the donor's length in {rate(every)} of "
                 f"report pairs" if every else "") + ".</li>")
    f, c, x = r["faithfulness"], r["complement"], r["random"]
    jobs = "; ".join(escape(r["jobs"][h]) for h in r["heads"])
    size = len(r["heads"])
    strong = f["value"] is not None and f["value"] >= CARRIES and (c["value"] is None or c["value"] < WEAK)
    what = ("these heads are the route" if strong else
            "these heads carry part of it" if f["value"] is not None and f["value"] >= WEAK else
            "no small set of heads carries it")
    where = "the line break" if name == "shape" else "the position that predicts the ending"
    if name == "shape":
        unit = (f"of what all heads at the line break move (all heads: a valid couplet at the donor's length in "
                f"{rate(r['length']['all'])})")
    else:
        unit = (f"of the way to B's ending (B's ending becomes the top choice in {rate(r['top1'])}; with all heads "
                f"{num(r['top1_all']['rate'])})")
    return (f"<li><b>{MOVES[name].capitalize()}</b> reaches {where} through {size} head{'s' * (size != 1)} "
            f"({jobs}): copied alone from the other line 1 they move {num(f['value'])} {unit} "
            f"(n = {f['n']} pairs, 95% CI {interval(f['ci'])}); every other head together {num(c['value'])}; "
            f"random sets of {size} head{'s' * (size != 1)} {num(x['value'])} (range {interval(x.get('range'))} over "
            f"{x.get('n_sets', 0)} sets): {what}.</li>")


# ---- the diagram ----------------------------------------------------------------------------------------------
def boxes_of(c, min_mass=0.15):
    """[(route, head, target role, {source role: mass})]: each circuit head at the position it writes at, with
    the positions it reads (attention mass >= min_mass, at most three); the opener's readers as route "reader"."""
    out = []
    for route in ROUTES:
        r = c.get(route) or {}
        for h in _heads(r):
            m = _mass(r, h)
            reads = dict(sorted(((k, v) for k, v in m.items() if v >= min_mass), key=lambda kv: -kv[1])[:3])
            out.append((route, h, "nl" if route == "shape" else ENDING, reads))
    readers = ((c.get("shape") or {}).get("readers") or {})
    for h in readers.get("readers", [])[:3]:
        out.append(("reader", h, ENDING, {"l2_open1": readers["mass"][h]}))
    return out


def diagram(c, n_layer):
    """An SVG: positions as columns (reading order), layers as rows (layer 0 at the bottom), each circuit head a
    box at the position it writes at, a curve from each position it reads (width: its attention there), an
    arrow up to what it moves. The numbers are on the boxes and, in full, on hover."""
    items = boxes_of(c)
    if not items:
        return ""
    cols = sorted({t for _, _, t, _ in items} | {s for *_, reads in items for s in reads}, key=ROLES.index)
    per = {}  # (target, layer) -> the heads drawn there, in order
    for route, h, t, _ in items:
        key = (t, parse_heads(h)[0][0])
        if h not in per.setdefault(key, []):
            per[key].append(h)
    bw, bh, gap, left, wrap = 162, 50, 6, 64, 2  # at most `wrap` boxes side by side; more go to a second row
    sub = max(-(-len(v) // wrap) for v in per.values())
    rowh = 28 + sub * (bh + gap)
    legend = [r for r in ("rhyme", "cue", "shape", "reader") if any(x == r for x, *_ in items)]
    top = 34 + 18 * len(legend) + 16
    slots = {t: min(wrap, max([len(v) for (tt, _), v in per.items() if tt == t] or [0])) for t in cols}
    width = {t: max(78, slots[t] * (bw + gap) + gap) for t in cols}
    x0, x = {}, left
    for t in cols:
        x0[t], x = x, x + width[t] + 6
    W, ybase = x + 6, top + rowh * n_layer
    H = ybase + 44
    ly = lambda l, k: ybase - rowh * (l + 1) + 14 + (k // wrap) * (bh + gap)  # the top of box k at layer l
    out = [f'<figure class="viewer"><svg viewBox="0 0 {W} {H}" width="{W}" style="max-width:100%;height:auto" '
           f'role="img" aria-label="the circuit, head by head">',
           '<defs>' + "".join(f'<marker id="arr-{k}" viewBox="0 0 8 8" refX="7" refY="4" markerWidth="6" '
                              f'markerHeight="6" orient="auto"><path d="M0,0 L8,4 L0,8 z" fill="{v}"/></marker>'
                              for k, v in COLOUR.items()) + '</defs>',
           '<text x="10" y="16" class="t">The circuit, head by head (main model, seed 0): which heads read what, '
           'and where they write it</text>']
    for k, route in enumerate(legend):
        out.append(f'<rect x="10" y="{28 + 18 * k}" width="12" height="12" fill="{COLOUR[route]}"/>'
                   f'<text x="28" y="{38 + 18 * k}">{escape(_legend(route, c))}</text>')
    for l in range(n_layer):
        y = ybase - rowh * (l + 1)
        out.append(f'<line x1="{left - 4}" x2="{W - 6}" y1="{y}" y2="{y}" stroke="#e4e4e4"/>'
                   f'<text x="{left - 8}" y="{y + rowh / 2 + 4}" text-anchor="end" class="c">layer {l}</text>')
    for t in cols:
        cx = x0[t] + width[t] / 2
        out.append(f'<text x="{cx}" y="{ybase + 16}" text-anchor="middle" class="t">{escape(t)}</text>')
        if t == ENDING:
            out.append(f'<text x="{cx}" y="{ybase + 30}" text-anchor="middle" class="c">(predicts the ending)</text>')
    pos = {}
    for (t, l), hs in per.items():
        start = x0[t] + (width[t] - min(wrap, len(hs)) * (bw + gap) + gap) / 2
        for k, h in enumerate(hs):
            pos[(t, h)] = (start + (k % wrap) * (bw + gap), ly(l, k))
    for route, h, t, reads in items:  # the reads first, under the boxes
        bx, by = pos[(t, h)]
        for src, m in reads.items():
            sx = x0[src] + width[src] / 2
            ex = bx + bw / 2 + (0 if src == t else (-bw / 4 if ROLES.index(src) < ROLES.index(t) else bw / 4))
            out.append(f'<path d="M{sx},{ybase + 3} C{sx},{ybase - 30} {ex},{by + bh + 30} {ex},{by + bh}" '
                       f'fill="none" stroke="{COLOUR[route]}" stroke-opacity="0.5" stroke-width="{1 + 7 * m:.1f}">'
                       f'<title>{escape(h)} attends to {"line 2&#39;s opener" if route == "reader" else escape(src)}: '
                       f'{m:.2f} of its attention</title></path>')
    drawn = set()
    for route, h, t, reads in items:
        bx, by = pos[(t, h)]
        if (t, h) in drawn:  # a head in two routes: one box, a second arrow
            out.append(_up(bx + bw - 12, by, top, route))
            continue
        drawn.add((t, h))
        lines, tip = _box_text(route, h, c)
        out.append(f'<g><title>{escape(tip)}</title><rect x="{bx}" y="{by}" width="{bw}" height="{bh}" rx="6" '
                   f'fill="#fff" stroke="{COLOUR[route]}" stroke-width="2"/>')
        for k, line in enumerate(lines):
            style = ' class="t"' if k == 0 else ' style="font-size:10.5px"'
            out.append(f'<text x="{bx + 6}" y="{by + 14 + 15 * k}"{style}>{escape(line)}</text>')
        out.append("</g>" + _up(bx + bw / 2, by, top, route))
    out.append("</svg><figcaption>Each box is one attention head, drawn at the position it writes at and in its "
               "layer; the curves come from the positions it attends to (width: its share of attention on report "
               "pairs). The dashed arrow is what copying the head from another line 1 moves. Hover over a box or a "
               "curve for its numbers.</figcaption></figure>")
    return "".join(out)


def _legend(route, c):
    if route == "reader":
        r = c["shape"]["readers"]
        return (f"reads the written opener from the position that predicts the ending (the mediated path): at least "
                f"0.2 of its attention, n = {r['n']} couplets")
    r = c[route]
    unit = "relative to all heads at the line break" if route == "shape" else "normalized LD"
    return (f"moves {MOVES[route]}: {len(r['heads'])} head{'s' * (len(r['heads']) != 1)}, faithfulness "
            f"{num(r['faithfulness']['value'])}, complement {num(r['complement']['value'])}, random sets "
            f"{num(r['random']['value'])} ({unit}, n = {r['n_pairs']} pairs)")


def _up(x, y, top, route):
    return (f'<line x1="{x}" x2="{x}" y1="{y}" y2="{top + 8}" stroke="{COLOUR[route]}" stroke-width="1.5" '
            f'stroke-dasharray="3,3" marker-end="url(#arr-{route})"/>')


def _box_text(route, h, c):
    """The lines written on a head's box and its hover text."""
    r = c.get("shape" if route == "reader" else route)
    if route == "reader":
        mass = c["shape"]["readers"]["mass"][h]
        return [h, "reads the opener", f"{mass:.2f} of its attention"], \
            (f"{h} at the position that predicts the ending puts {mass:.2f} of its attention on line 2's opener "
             f"(n = {c['shape']['readers']['n']} couplets): a reader of the mediated path")
    job = "reads " + r["jobs"][h].split(": ", 1)[1].rsplit(" -> ", 1)[0]  # where it writes is its column
    if route == "shape":
        one = r["single"][h]
        return [h, job, f"length {num(one['length']['rate'])}, word {num(one['token']['rate'])}"], \
            (f"{r['jobs'][h]}. Copied alone at the line break from the other line 1: a valid couplet at the donor's "
             f"length {rate(one['length'])}; line 2's first word becomes the donor's {rate(one['token'])}")
    single = r["single"][h]
    return [h, job, f"alone: {num(single)}"], \
        (f"{r['jobs'][h]}. Moves {MOVES[route]}: copied alone from the other line 1 it moves the ending {num(single)} "
         f"of the way (the circuit: {num(r['faithfulness']['value'])}, n = {r['n_pairs']} pairs)")


# ---- the section ------------------------------------------------------------------------------------------------
def attention_maps(c):
    """Two heatmaps: the attention of the heads at the position that predicts the ending (rhyme and cue routes)
    and of those at the line break (shape route), by the role attended to; a row per (head, route)."""
    figs = []
    for routes, where in ((("rhyme", "cue"), "the position that predicts the ending"), (("shape",), "the line break")):
        rows = [(f"{h} ({route})", c[route], h) for route in routes for h in _heads(c.get(route))]
        if not rows:
            continue
        roles = [x for x in ROLES if any(x in r["roles"] and r["attention"][h][r["roles"].index(x)] >= 0.02
                                         for _, r, h in rows)]
        grid = [[r["attention"][h][r["roles"].index(x)] if x in r["roles"] else 0.0 for x in roles] for _, r, h in rows]
        n = "; ".join(f"{route}: n = {c[route]['n_pairs']}" for route in routes if _heads(c.get(route)))
        figs.append(heatmap(grid, [label for label, _, _ in rows], roles, f"Where the circuit's heads look, from {where}",
                            "attended position (role)", "", f"Each head's attention from {where}, summed by the role of "
                            f"the token attended to and averaged over report pairs' A runs ({n}); positions no circuit "
                            f"head gives 0.02 are left out.", lo=0, hi=1))
    return "".join(figs)


def shape_heads(sh):
    if not sh or "single" not in sh:
        return ""
    rows = [[escape(sh["jobs"][h]), rate(one["length"]), rate(one["token"])] for h, one in sh["single"].items()]
    rows += [["<b>the circuit</b> (" + escape("+".join(sh["heads"])) + ")", rate(sh["length"]["circuit"]),
              rate(sh["token"]["circuit"])],
             ["every other head", rate(sh["length"]["complement"]), rate(sh["token"]["complement"])],
             ["all heads at the line break (its whole column)", rate(sh["length"]["all"]), rate(sh["token"]["all"])]]
    readers = sh.get("readers") or {}
    top = ", ".join(f"{escape(h)} {readers['mass'][h]:.2f}" for h in readers.get("readers", [])) or "none at 0.2 or more"
    return ("<h3>At the line break: heads that move the opener's word, heads that move the length</h3>" +
            table(["head copied alone at the line break (job)", "valid couplet at the donor's length (the length)",
                   "line 2's first word becomes the donor's (the token; pairs whose first words differ)"], rows) +
            f"<p>The mediated path's readers: heads at the position that predicts the ending with at least 0.2 of "
            f"their attention on line 2's opener (n = {readers.get('n', 0)} clean couplets): {top}.</p>")


def ablations(ab):
    if not ab or "skipped" in ab:
        return ""
    kinds = ("zero", "mean", "resample")
    drop = lambda e: f"{num(e['value'])} (95% CI {interval(e['ci'])})"
    rows = [[k, rate(ab[k]["survival"]), f"{num(ab[k]['random_survival']['rate'])} (range "
             f"{interval(ab[k]['random_survival']['range'])})", drop(ab[k]["drop"]),
             f"{drop(ab[k]['random_drop'])}, range {interval(ab[k]['random_drop']['range'])}",
             "yes" if ab[k]["specific"] else "no"] for k in kinds]
    return (f"<h3>Ablation beside patching</h3><p>The circuit's heads ({escape(ab['heads'])}) at the position that "
            f"predicts the ending of {ab['n']} report prompts, replaced by zeros, by their mean over report prompts, "
            f"or by another prompt's, beside {ab['n_random']} random sets of {ab['size']} heads. "
            f"<b>{escape(ab['verdict']['text'].capitalize())}.</b></p>" +
            table(["ablation", "clean ending survives (circuit)", "survives (random sets: mean)",
                   "logit-difference drop, over the clean one (circuit)", "drop (random sets)",
                   "circuit above random"], rows))


def _check_text(checks):
    shown = [(k, v) for k, v in checks.items() if v is not None]
    if not shown:
        return "–"
    return ", ".join(f"{escape(k)} {'held' if v else '<b>failed</b>'}" for k, v in shown)


def _route_cell(seed, route):
    heads = seed.get(f"circuit_{route}_heads")
    if not heads:
        return "–"
    vals = [seed.get(f"circuit_{route}_{m}") for m in ("faithfulness", "complement", "random")]
    n = (seed.get("n") or {}).get(f"circuit_{route}_faithfulness")
    ci = (seed.get("ci") or {}).get(f"circuit_{route}_faithfulness")
    return (f"{escape(heads)} ({escape(seed.get(f'circuit_{route}_reads') or '')})<br>"
            f"{num(vals[0])} {interval(ci)} / {num(vals[1])} / {num(vals[2])} (n = {n})")


def models_table(models):
    rows, preds = [], []
    for name, m in models.items():
        pred = m.get("circuit_prediction") or {}
        for seed in m.get("seeds", []):
            rows.append([escape(name), str(seed.get("seed"))] + [_route_cell(seed, r) for r in ROUTES] +
                        [_check_text(prediction_checks(pred, seed, m.get("n_layer", 0)))])
        if pred.get("text"):
            preds.append(f"<li><b>{escape(name)}</b>: {escape(pred['text'])}</li>")
    return ("<h3>Every model's circuit, seed by seed</h3><p>Each route: its heads (what each reads most), then "
            "faithfulness [95% CI] / complement / random sets of its size, on report pairs (n). Rhyme and cue: the "
            "normalized logit difference at the ending; shape: valid couplets at the donor's length relative to all "
            "heads at the line break. The last column checks each seed against the prediction written before it was "
            "measured.</p>" +
            table(["model", "seed", "rhyme", "cue", "shape", "prediction"], rows) +
            (f"<p>The predictions (<code>worlds.CIRCUIT_PREDICTIONS</code>):</p><ul>{''.join(preds)}</ul>"
             if preds else ""))


def circuit_section(results):
    models = results["models"]
    main = models.get("main") or next(iter(models.values()))
    c = main.get("circuit")
    head = '<h2 id="circuit">How each fact moves: the circuit, head by head</h2>'
    if not c:
        return head + "<p>Not measured in this run.</p>"
    intro = ("<p>Patching says <em>where</em> a fact is used; here it is traced to attention heads. A head's output at "
             "one position is copied from the run on the other line 1 (B) into this one (A). The set of heads is "
             "chosen greedily on select pairs (add the head that moves most, until 0.9 or six heads); every number "
             "is on report pairs: <b>faithfulness</b> (the set alone), <b>complement</b> (every other head), and "
             "random sets of the same size as the control. All heads together move exactly 1 at the position that "
             "predicts the ending (its own token is the same in A and B).</p>")
    verdict = "<ul>" + "".join(_route_sentence(r, c.get(r)) for r in ROUTES) + "</ul>"
    return (head + intro + verdict + diagram(c, main.get("n_layer", 0)) + attention_maps(c) +
            shape_heads(c.get("shape")) + ablations(c.get("ablation")) + models_table(models) +
            f"<p class=note>The head-level analysis took {num(c.get('seconds'), 1)} s of this study.</p>")


# ---- results.md ---------------------------------------------------------------------------------------------------
def circuit_markdown(results):
    """The circuit's lines of results.md: every model's circuit per seed, with n and the prediction's checks."""
    from page.markdown import _table  # one Markdown table format
    rows = []
    for name, m in results["models"].items():
        pred = m.get("circuit_prediction") or {}
        for seed in m.get("seeds", []):
            cells = [_route_cell(seed, r).replace("<br>", "; ") for r in ROUTES]
            checks = prediction_checks(pred, seed, m.get("n_layer", 0))
            rows.append([name, str(seed.get("seed"))] + cells +
                        [", ".join(f"{k} {'held' if v else 'FAILED'}" for k, v in checks.items() if v is not None)
                         or "–"])
    if not rows:
        return []
    return ["", "## The circuit, head by head", "",
            "Each route: its heads (what each reads most), then faithfulness [95% CI] / complement / random sets of its "
            "size on report pairs (n); the last column checks the prediction of `worlds.CIRCUIT_PREDICTIONS`.", "",
            _table(["model", "seed", "rhyme", "cue", "shape", "prediction"], rows)]
