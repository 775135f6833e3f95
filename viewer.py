"""An attribution graph as (1) circuit-tracer-style JSON and (2) a self-contained HTML fragment:
inline SVG drawn here in Python (readable without JavaScript) plus a little plain JavaScript for
hover, click-to-pin and a node-threshold slider. No CDN, no external fonts.

Layout: x = token position, y = layer (input tokens at the bottom, target logits on top); several
nodes in one (layer, position) cell sit side by side. Edge width ~ |weight|, blue = excitatory,
red = inhibitory. The slider hides nodes whose cumulative influence rank is beyond the threshold.
"""
import html
import json
import itertools

import torch

from attribution import normalize_rows, prune, graph_scores
from labels import node_info

_ids = itertools.count()


def viewer_nodes(graph, world, table, node_threshold=0.95, edge_threshold=0.98, max_edges=400):
    """The nodes and edges worth drawing, with everything the viewer shows for each."""
    node_mask, edge_mask, inf = prune(graph, node_threshold, edge_threshold)
    order = inf.argsort(descending=True)
    cum = torch.zeros_like(inf)
    cum[order] = inf[order].cumsum(0) / inf.sum().clamp(min=1e-30)  # cumulative influence rank
    keep = node_mask.nonzero().flatten().tolist()
    nodes = []
    for i in keep:
        info = node_info(table, graph, world, i)
        always = info["kind"] in ("token", "logit")
        act = graph.activations[i].item() if info["kind"] == "feature" else None
        nodes.append(dict(info, index=i, influence=inf[i].item(), cumulative=0.0 if always else cum[i].item(),
                          activation=act))
    t, s = edge_mask.nonzero().unbind(1)
    w = graph.adjacency[t, s]
    top = w.abs().argsort(descending=True)[:max_edges]
    edges = [{"source": s[j].item(), "target": t[j].item(), "weight": w[j].item()} for j in top.tolist()]
    return nodes, edges


# ---- circuit-tracer JSON ---------------------------------------------------------------------------------
def node_id(n, n_layers):
    if n["kind"] == "feature":
        return f"{n['layer']}_{n['feature']}_{n['pos']}"
    if n["kind"] == "error":
        return f"{n['layer']}_-1_{n['pos']}"
    if n["kind"] == "token":
        return f"E_{n['feature']}_{n['pos']}"
    return f"{n_layers + 1}_{n['feature']}_{n['pos']}"


def graph_json(graph, world, table, slug="couplet", node_threshold=0.8):
    """circuit-tracer's viewer schema: metadata, qParams, nodes (node_id, feature, layer, ctx_idx,
    feature_type, influence, activation, clerp, ...) and links (source, target, weight)."""
    nodes, edges = viewer_nodes(graph, world, table, node_threshold)
    L = graph.n_layers
    words = world.decode(graph.tokens.tolist())
    kinds = {"feature": "cross layer transcoder", "error": "mlp reconstruction error", "token": "embedding",
             "logit": "logit"}
    ids = {n["index"]: node_id(n, L) for n in nodes}
    out_nodes = []
    for n in nodes:
        logit = n["kind"] == "logit"
        j = n["index"] - graph.slices()[3].start
        out_nodes.append({
            "node_id": ids[n["index"]], "jsNodeId": ids[n["index"]], "feature": n["feature"],
            "layer": "E" if n["kind"] == "token" else str(L + 1 if logit else n["layer"]),
            "ctx_idx": n["pos"], "position": n["pos"], "reverse_ctx_idx": graph.n_pos - 1 - n["pos"],
            "feature_type": kinds[n["kind"]], "influence": n["influence"], "activation": n["activation"],
            "token_prob": graph.logit_probs[j].item() if logit else 0.0, "is_target_logit": logit and j == 0,
            "clerp": n["label"], "label": n["label"], "run_idx": 0})
    links = [{"source": ids[e["source"]], "target": ids[e["target"]], "weight": e["weight"]} for e in edges]
    replacement, completeness = graph_scores(graph)
    meta = {"slug": slug, "scan": "couplet-clt", "transcoder_list": [], "prompt_tokens": words,
            "prompt": " ".join(words), "node_threshold": node_threshold, "schema_version": 1,
            "replacement_score": replacement, "completeness_score": completeness}
    q = {"pinnedIds": [], "supernodes": [], "linkType": "both", "clickedId": "", "sg_pos": ""}
    return {"metadata": meta, "qParams": q, "nodes": out_nodes, "links": links}


def write_graph_json(path, graph, world, table, **kw):
    with open(path, "w") as f:
        json.dump(graph_json(graph, world, table, **kw), f, indent=1)


# ---- plain-words reading --------------------------------------------------------------------------------
def strongest_path(graph, edge_mask):
    """Node indices of the path token -> ... -> first logit maximising the product of each step's
    share of its target's input (|A| row-normalised), over kept edges."""
    An = normalize_rows(graph.adjacency * edge_mask)
    fs, es, ts, ls = graph.slices()
    N = An.shape[0]
    best = torch.zeros(N, dtype=An.dtype)
    best[ts] = 1.0
    back = torch.full((N,), -1, dtype=torch.long)
    layer = torch.full((N,), -1)
    layer[fs] = graph.features[:, 0]
    layer[es] = torch.arange(graph.n_layers).repeat_interleave(graph.n_pos)
    layer[ls] = graph.n_layers
    for l in range(graph.n_layers + 1):  # sources always sit in lower layers: one sweep suffices
        for n in (layer == l).nonzero().flatten().tolist():
            cand = best * An[n]
            back[n] = cand.argmax()
            best[n] = cand.max()
    path, n = [], ls.start
    while n >= 0 and len(path) < N:
        path.append(n)
        n = back[n].item() if graph.node_kind(n) != "token" else -1
    return path[::-1], best[ls.start].item()


def reading(graph, world, table, node_threshold=0.8, edge_threshold=0.98):
    """One paragraph, derived from the graph, saying what drives the target logit."""
    node_mask, edge_mask, inf = prune(graph, node_threshold, edge_threshold)
    fs, es, ts, ls = graph.slices()
    name = lambda i: node_info(table, graph, world, i)  # noqa: E731
    words = world.decode(graph.tokens.tolist())
    target = world.itos[graph.logit_ids[0].item()]
    row = graph.adjacency[ls.start] * edge_mask[ls.start]
    direct = row.abs().argsort(descending=True)[:2].tolist()
    share = normalize_rows(graph.adjacency)[ls.start]
    path, strength = strongest_path(graph, edge_mask)
    toks = inf[ts].argsort(descending=True)[:2].tolist()
    replacement, completeness = graph_scores(graph)

    def at(i):
        n = name(i)
        where = f"at '{words[n['pos']]}' (position {n['pos']})"
        return f"{n['label']}" if n["kind"] in ("token", "logit") else f"L{n['layer']} {n['kind']} “{n['label']}” {where}"
    parts = [f"After “{' '.join(words[1:])}” the model predicts '{target}' "
             f"(p = {graph.logit_probs[0].item():.2f}).",
             f"Pruning keeps {int(node_mask[fs].sum())} of {graph.n_features} active features and "
             f"{int(edge_mask.sum())} edges.",
             "Its largest direct inputs are " + " and ".join(
                 f"{at(i)} ({share[i].item():.0%} of its input)" for i in direct) + ".",
             "The strongest single path from the input is " + " → ".join(at(i) for i in path) + ".",
             "The input tokens with the most influence are " + " and ".join(
                 f"'{words[i]}' (position {i})" for i in toks) + ".",
             f"Error nodes (what the transcoder fails to explain) take {1 - replacement:.0%} of the "
             f"influence that reaches the logit (replacement score {replacement:.2f}, completeness "
             f"{completeness:.2f})."]
    return " ".join(parts)


# ---- HTML ------------------------------------------------------------------------------------------------
CSS = """
.cgv{font-family:system-ui,sans-serif;font-size:13px;position:relative;max-width:1200px}
.cgv svg{width:100%;height:auto;background:#fcfcfc;border:1px solid #ddd}
.cgv .edge{opacity:.45}.cgv .node{cursor:pointer;stroke:#333;stroke-width:.6}
.cgv .feature{fill:#f4c542}.cgv .error{fill:#999}.cgv .token{fill:#7fb0d6}.cgv .logit{fill:#8bc98b}
.cgv .dim{opacity:.08}.cgv .hot{opacity:1}.cgv .pinned{stroke:#000;stroke-width:2.5}
.cgv .hidden{display:none}.cgv text{font-size:10px;fill:#333}
.cgv .tip{position:absolute;pointer-events:none;background:#fff;border:1px solid #888;padding:6px;
 max-width:380px;box-shadow:2px 2px 6px #0002;display:none;font-size:12px}
.cgv .tip b{display:block}.cgv .tip ul{margin:2px 0 2px 14px;padding:0}
"""

JS = """
(function(){
  var root = document.getElementById('%(uid)s');
  var data = JSON.parse(root.querySelector('script[type="application/json"]').textContent);
  var tip = root.querySelector('.tip'), slider = root.querySelector('input[type=range]');
  var out = root.querySelector('.thr'), pinned = null;
  var nodes = root.querySelectorAll('.node'), edges = root.querySelectorAll('.edge');
  function esc(s){ return String(s).replace(/[&<>]/g, function(c){ return {'&':'&amp;','<':'&lt;','>':'&gt;'}[c]; }); }
  function show(i, ev){
    var n = data.nodes[i], h = '<b>' + esc(n.label) + '</b>' + esc(n.kind) + ' · layer ' + n.layer + ' · position ' + n.pos;
    if (n.activation !== null) h += ' · activation ' + n.activation.toFixed(2);
    h += ' · influence ' + n.influence.toFixed(3);
    if (n.contexts.length) h += '<br>top contexts:<ul>' + n.contexts.map(function(c){ return '<li>' + esc(c) + '</li>'; }).join('') + '</ul>';
    if (n.outputs.length) h += 'top outputs: ' + esc(n.outputs.join(', '));
    tip.innerHTML = h; tip.style.display = 'block';
    var r = root.getBoundingClientRect();
    tip.style.left = (ev.clientX - r.left + 12) + 'px'; tip.style.top = (ev.clientY - r.top + 12) + 'px';
  }
  function focus(i){
    edges.forEach(function(e){
      var on = i === null || e.dataset.s == i || e.dataset.t == i;
      e.classList.toggle('dim', !on); e.classList.toggle('hot', i !== null && on);
    });
  }
  nodes.forEach(function(el){
    var i = +el.dataset.i;
    el.addEventListener('mouseenter', function(ev){ show(i, ev); if (pinned === null) focus(i); });
    el.addEventListener('mouseleave', function(){ tip.style.display = 'none'; if (pinned === null) focus(null); });
    el.addEventListener('click', function(){
      nodes.forEach(function(m){ m.classList.remove('pinned'); });
      pinned = pinned === i ? null : i;
      if (pinned !== null) el.classList.add('pinned');
      focus(pinned);
    });
  });
  function filter(){
    var t = +slider.value, vis = {};
    out.textContent = t.toFixed(2);
    nodes.forEach(function(el){
      var on = +el.dataset.c <= t; vis[el.dataset.i] = on; el.classList.toggle('hidden', !on);
    });
    edges.forEach(function(e){ e.classList.toggle('hidden', !(vis[e.dataset.s] && vis[e.dataset.t])); });
  }
  slider.addEventListener('input', filter); filter();
})();
"""


def layout(nodes, n_pos, n_layers, col=64, row=70, pad=40):  # keep row/pad in step with the row names
    """(x, y) for every node: column = position, row = layer (tokens bottom, logits top)."""
    cells = {}
    for k, n in enumerate(nodes):
        r = {"token": 0, "logit": n_layers + 1}.get(n["kind"], n["layer"] + 1)
        cells.setdefault((r, n["pos"]), []).append(k)
    xy = {}
    for (r, p), ks in cells.items():
        step = min(12, (col - 8) / max(1, len(ks)))
        for j, k in enumerate(ks):
            xy[k] = (pad + p * col + col / 2 + (j - (len(ks) - 1) / 2) * step, pad + (n_layers + 1 - r) * row)
    return xy, pad * 2 + n_pos * col, pad * 2 + (n_layers + 1) * row + 30


def viewer_html(graph, world, table, node_threshold=0.8, title="Attribution graph"):
    """An HTML fragment: the plain-words reading, the slider and the interactive SVG graph."""
    nodes, edges = viewer_nodes(graph, world, table)
    words = world.decode(graph.tokens.tolist())
    uid = f"cgv{next(_ids)}"
    xy, W, H = layout(nodes, graph.n_pos, graph.n_layers)
    where = {n["index"]: k for k, n in enumerate(nodes)}
    wmax = max([abs(e["weight"]) for e in edges] + [1e-9])
    svg = [f'<svg viewBox="0 0 {W:.0f} {H:.0f}" role="img" aria-label="{html.escape(title)}">']
    for l in range(graph.n_layers + 2):  # row names, at layout()'s heights
        y = 40 + (graph.n_layers + 1 - l) * 70
        name = "tokens" if l == 0 else "logits" if l == graph.n_layers + 1 else f"L{l - 1}"
        svg.append(f'<text x="2" y="{y + 3:.0f}">{name}</text>')
    for e in edges:
        (x1, y1), (x2, y2) = xy[where[e["source"]]], xy[where[e["target"]]]
        colour = "#2166ac" if e["weight"] > 0 else "#b2182b"
        width = 0.4 + 4 * abs(e["weight"]) / wmax
        svg.append(f'<line class="edge" data-s="{where[e["source"]]}" data-t="{where[e["target"]]}" '
                   f'x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="{colour}" '
                   f'stroke-width="{width:.2f}"/>')
    for k, n in enumerate(nodes):
        x, y = xy[k]
        attrs = f'class="node {n["kind"]}" data-i="{k}" data-c="{n["cumulative"]:.4f}"'
        if n["kind"] == "error":
            svg.append(f'<rect {attrs} x="{x - 4:.1f}" y="{y - 4:.1f}" width="8" height="8"/>')
        else:
            svg.append(f'<circle {attrs} cx="{x:.1f}" cy="{y:.1f}" r="{6 if n["kind"] != "feature" else 5}"/>')
        if n["kind"] == "token":
            svg.append(f'<text x="{x:.1f}" y="{y + 20:.1f}" text-anchor="middle">{html.escape(words[n["pos"]])}</text>')
        if n["kind"] == "logit":  # alternate heights so neighbouring logit labels do not overlap
            up = 10 + 11 * (n["index"] % 2)
            svg.append(f'<text x="{x:.1f}" y="{y - up:.1f}" text-anchor="middle">{html.escape(n["label"].split()[1])}</text>')
    svg.append("</svg>")
    data = {"nodes": [{k: n[k] for k in ("label", "kind", "layer", "pos", "activation", "influence",
                                          "contexts", "outputs")} for n in nodes]}
    blob = json.dumps(data).replace("</", "<\\/")
    return (f'<div class="cgv" id="{uid}"><style>{CSS}</style>'
            f'<p class="reading">{html.escape(reading(graph, world, table, node_threshold))}</p>'
            f'<label>node threshold <input type="range" min="0.05" max="1" step="0.01" value="{node_threshold}">'
            f' <span class="thr">{node_threshold:.2f}</span></label>'
            + "".join(svg) + '<div class="tip"></div>'
            f'<script type="application/json">{blob}</script>'
            f'<script>{JS % {"uid": uid}}</script></div>')
