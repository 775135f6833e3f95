"""The full attribution graph, drawn: every kept node at its (layer, position), every kept edge.

`layout` is a pure function: rows are the token embeddings (bottom), the layers, and the target
logits (top); columns are token positions. Nodes sharing a (row, position) cell are set side by side,
at most PER_LINE to a line, and each column and row is sized by its fullest cell, so no two nodes
overlap however many land in one cell. Labels are not printed on the nodes (they would collide):
hovering a node shows its label, clicking it highlights its edges, and a slider hides weak edges.
The script is plain JavaScript inside the page; nothing is loaded from the network.
"""
from html import escape
import json

STEP, RADIUS, PER_LINE, PAD = 15, 6, 6, 12
LEFT, TOP, MIN_COL = 70, 34, 42


def layout(graph):
    """({node index: (x, y)}, width, height, column centres, row centres) for graph = kept_graph(...)."""
    n_layers, words = graph["n_layers"], graph["words"]
    rows = list(range(n_layers, -2, -1))  # logits at the top, token embeddings at the bottom
    cells = {}
    for i, n in enumerate(graph["nodes"]):
        cells.setdefault((n["layer"], n["pos"]), []).append(i)
    col_w = [max([MIN_COL] + [min(len(v), PER_LINE) * STEP + PAD for (l, p), v in cells.items() if p == pos])
             for pos in range(len(words))]
    row_h = [max([STEP + PAD] + [-(-len(v) // PER_LINE) * STEP + PAD for (l, p), v in cells.items() if l == layer])
             for layer in rows]
    col_x = [LEFT + sum(col_w[:k]) for k in range(len(words))]
    row_y = [TOP + sum(row_h[:k]) for k in range(len(rows))]
    at = {}
    for (layer, pos), members in cells.items():
        r = rows.index(layer)
        n_line = min(len(members), PER_LINE)
        x0 = col_x[pos] + (col_w[pos] - n_line * STEP) / 2 + STEP / 2
        lines = -(-len(members) // PER_LINE)
        y0 = row_y[r] + (row_h[r] - lines * STEP) / 2 + STEP / 2
        for k, i in enumerate(members):
            at[i] = (x0 + (k % PER_LINE) * STEP, y0 + (k // PER_LINE) * STEP)
    width, height = LEFT + sum(col_w) + 10, TOP + sum(row_h) + 80
    return at, width, height, [x + w / 2 for x, w in zip(col_x, col_w)], \
        [(layer, y + h / 2) for layer, y, h in zip(rows, row_y, row_h)]


COLOURS = {"feature": "#4a74c9", "error": "#a0a0a0", "token": "#2f855a", "logit": "#c05621"}
SCRIPT = """(function(){var s=document.getElementById(%(id)s),edges=s.querySelectorAll('line.e'),
info=document.getElementById(%(id)s+'-info'),pinned=-1;
function show(i){edges.forEach(function(e){var on=i<0||e.dataset.s==i||e.dataset.t==i;
e.style.opacity=on?'':'0.06';});}
s.querySelectorAll('.n').forEach(function(n){n.addEventListener('mouseenter',function(){
info.textContent=n.dataset.label;if(pinned<0)show(n.dataset.i);});
n.addEventListener('mouseleave',function(){if(pinned<0)show(-1);});
n.addEventListener('click',function(){pinned=pinned==n.dataset.i?-1:n.dataset.i;show(pinned);
info.textContent=pinned<0?'':n.dataset.label;});});
document.getElementById(%(id)s+'-cut').addEventListener('input',function(ev){var c=ev.target.value/100;
edges.forEach(function(e){e.style.display=e.dataset.w<c?'none':'';});});})();"""


def graph_viewer(graph, vid, title):
    """An SVG of the whole kept graph with its hover/click/slider script; vid: a unique element id."""
    at, w, h, col_c, row_c = layout(graph)
    top = max([abs(e["weight"]) for e in graph["edges"]] or [1.0])
    out = [f'<figure class="viewer"><svg id="{vid}" width="{w}" height="{h}" role="img" aria-label="{escape(title)}">',
           f'<text x="{LEFT}" y="16" class="t">{escape(title)}</text>']
    if "<nl>" in graph["words"]:  # the column a plan would live in
        k = graph["words"].index("<nl>")
        half = (col_c[k] - (col_c[k - 1] if k else LEFT)) / 2
        out.append(f'<rect x="{col_c[k] - half:.1f}" y="{TOP - 6}" width="{2 * half:.1f}" height="{h - 80 - TOP + 6}" '
                   f'fill="#fff6d5"/>')
    for layer, y in row_c:
        name = "embedding" if layer < 0 else "logits" if layer == graph["n_layers"] else f"layer {layer}"
        out.append(f'<text x="{LEFT - 8}" y="{y + 4}" text-anchor="end" class="c">{name}</text>')
        out.append(f'<line x1="{LEFT}" x2="{w - 10}" y1="{y}" y2="{y}" stroke="#eee"/>')
    for x, word in zip(col_c, graph["words"]):
        out.append(f'<text transform="translate({x},{h - 72}) rotate(40)" class="c">{escape(word)}</text>')
    for e in sorted(graph["edges"], key=lambda e: abs(e["weight"])):
        (x0, y0), (x1, y1) = at[e["source"]], at[e["target"]]
        rel = abs(e["weight"]) / top
        out.append(f'<line class="e" x1="{x0:.1f}" y1="{y0:.1f}" x2="{x1:.1f}" y2="{y1:.1f}" '
                   f'stroke="{"#2b6cb0" if e["weight"] > 0 else "#c53030"}" stroke-opacity="0.45" '
                   f'stroke-width="{0.5 + 4 * rel:.2f}" data-s="{e["source"]}" data-t="{e["target"]}" '
                   f'data-w="{rel:.4f}"/>')
    for i, n in enumerate(graph["nodes"]):
        x, y = at[i]
        label = escape(n["label"], quote=True)
        shape = (f'<rect x="{x - RADIUS}" y="{y - RADIUS}" width="{2 * RADIUS}" height="{2 * RADIUS}"'
                 if n["kind"] in ("error", "token") else f'<circle cx="{x}" cy="{y}" r="{RADIUS}"')
        out.append(f'{shape} class="n" fill="{COLOURS[n["kind"]]}" stroke="#fff" data-i="{i}" data-label="{label}">'
                   f'<title>{label}</title></{"rect" if n["kind"] in ("error", "token") else "circle"}>')
    out.append(f'<text x="{LEFT}" y="{h - 8}" class="a">position (token); rows: where the node writes</text></svg>')
    out.append(f'<div class="note">show edges above <input id="{vid}-cut" type="range" min="0" max="100" value="0"> '
               f'of the strongest · <span id="{vid}-info">hover a node for its label; click to pin it</span></div>')
    out.append(f"<figcaption>Every node and edge kept by pruning: features (blue circles) at their layer and "
               f"position, errors (grey) and tokens (green), the candidate endings (orange) at the top; the shaded "
               f"column is the line break. Blue edges "
               f"push the target up, red down; width = |weight|. Look at which columns the strongest edges into "
               f"the ending come from.</figcaption></figure>")
    out.append(f"<script>{SCRIPT % {'id': json.dumps(vid)}}</script>")
    return "".join(out)
