"""An attribution graph as circuit-tracer's graph JSON, so its frontend (the one Neuronpedia hosts) opens it.

The format is that of safety-research/circuit-tracer at commit d797c824c0ffe3a0274071e32d92962a36656212:
its data model (circuit_tracer/frontend/graph_models.py), its writer (circuit_tracer/utils/create_graph_files.py),
its local server (circuit_tracer/frontend/local_server.py) and the frontend script that reads the file
(frontend/assets/attribution_graph/util-cg.js). `circuit_tracer_graph` maps the featured graph of
interp/study.py (kept_graph's plain data and the summary boxes) to that format in six steps:

1. Nodes: every kept node, in kept_graph's order (features, errors, tokens, logits). feature_type is
   "cross layer transcoder", "mlp reconstruction error", "embedding" or "logit"; `layer` is a string:
   the layer, "E" for token embeddings, n_layers + 1 for the logits; ctx_idx is the position. `feature`
   is a feature's index in the whole dictionary (layer * 10^k + id, circuit-tracer's offset for one
   dictionary), a token's position, a logit's vocabulary id.
2. Ids: circuit-tracer's ("{layer}_{id}_{pos}", "E_{token}_{pos}", "{n_layers + 1}_{token}_{pos}"),
   except for errors: its "0_{layer}_{pos}" is also the id of a layer-0 feature whose id equals that
   layer, and the frontend keys nodes by id, so an error is "err_{layer}_{pos}".
3. Labels: a feature's automatic label (interp/supernodes.py) is its `clerp`; a logit's is
   'Output "word" (p=0.123)', which the frontend parses for the word and the probability. The first
   logit (the word the model wrote) is the target logit.
4. Influence: circuit-tracer's node score (kept_graph's `cumulative`). metadata.node_threshold is the
   largest score of a kept feature or error, so the frontend's pruning slider opens on every kept node
   and hides the least influential as it moves left.
5. Links: every kept edge, source -> target, its signed weight.
6. qParams: the summary boxes are the supernodes ([label, member ids...]). The frontend's subgraph
   draws pinned nodes only, so every kept node is pinned (logits first, then by influence, at most
   MAX_PINNED, the frontend's cap): the subgraph opens as the project's summary graph. The target logit
   is clicked.

`write_graph_files` writes one {slug}.json per graph and the graph-metadata.json index that the local
server lists, replacing entries of the same slug as circuit-tracer's own writer does; `viewer_url` is a
graph's address on that server. Pure data in, files out: nothing here imports the page.
"""
import json
import math
import os
import re
from urllib.parse import urlencode

from plumbing.files import write_json

CIRCUIT_TRACER_COMMIT = "d797c824c0ffe3a0274071e32d92962a36656212"
FEATURE_TYPES = {"feature": "cross layer transcoder", "error": "mlp reconstruction error", "token": "embedding",
                 "logit": "logit"}
MAX_PINNED = 200  # the frontend's subgraph draws the first 200 pinned nodes
INDEX = "graph-metadata.json"
NODE_FIELDS = ("node_id", "feature", "layer", "ctx_idx", "feature_type", "token_prob", "is_target_logit", "run_idx",
               "reverse_ctx_idx", "jsNodeId", "clerp", "influence", "activation")  # graph_models.Node's order


def need(d, key, what):
    """d[key], or a one-line error for a graph written before the export existed."""
    if key not in d:
        raise ValueError(f"{what} has no {key!r}: the graph predates the circuit-tracer export; "
                         f"rerun `python analyze.py`")
    return d[key]


def node_of(n, i, n_layers, offset):
    """One kept_graph node as a circuit-tracer node (steps 1-4), every field of its data model present."""
    kind, layer, pos = n["kind"], n["layer"], n["pos"]
    what = f"graph node {i} ({kind})"
    out = {"token_prob": 0.0, "is_target_logit": False, "run_idx": 0, "reverse_ctx_idx": 0, "clerp": n["label"],
           "influence": need(n, "cumulative", what), "activation": None}
    if kind == "feature":
        fid = need(n, "feature", what)
        out.update(node_id=f"{layer}_{fid}_{pos}", feature=fid + offset * layer, layer=str(layer),
                   jsNodeId=f"{layer}_{fid}-0", clerp=n["label"].removeprefix(f"L{layer} #{fid}").strip(),
                   activation=need(n, "activation", what))
    elif kind == "error":
        out.update(node_id=f"err_{layer}_{pos}", feature=-1, layer=str(layer), jsNodeId=f"{layer}_{pos}-0")
    elif kind == "token":
        token = need(n, "token", what)
        out.update(node_id=f"E_{token}_{pos}", feature=pos, layer="E", jsNodeId=f"E_{token}-{pos}")
    else:
        token, prob, top = need(n, "token", what), need(n, "prob", what), str(n_layers + 1)
        out.update(node_id=f"{top}_{token}_{pos}", feature=token, layer=top, jsNodeId=f"L_{token}-{pos}",
                   token_prob=prob, clerp=f'Output "{need(n, "word", what)}" (p={prob:.3f})')
    out.update(ctx_idx=pos, feature_type=FEATURE_TYPES[kind])
    return {k: out[k] for k in NODE_FIELDS}


def circuit_tracer_graph(featured, slug, d_transcoder, scan):
    """circuit-tracer's graph JSON ({metadata, qParams, nodes, links}) of one featured graph
    (interp/study.featured_graph: its kept `graph`, `boxes` and `couplet`). d_transcoder: features per
    layer of the transcoder; scan: the transcoder's name (the frontend's key for edited labels)."""
    kept, boxes = featured["graph"], featured["boxes"]
    if not re.fullmatch(r"[\w.-]+", slug):
        raise ValueError(f"graph slug must be letters, digits, '_', '.' or '-' (it names a file), got {slug!r}")
    offset = 10 ** math.ceil(math.log10(d_transcoder))
    nodes = [node_of(n, i, kept["n_layers"], offset) for i, n in enumerate(kept["nodes"])]
    top_id = max((n["feature"] for n in kept["nodes"] if n["kind"] == "feature"), default=-1)
    if top_id >= d_transcoder:  # the offset would give two features one index
        raise ValueError(f"graph has feature id {top_id} but the transcoder has {d_transcoder} features per layer")
    ids = [n["node_id"] for n in nodes]
    links = [{"source": ids[e["source"]], "target": ids[e["target"]], "weight": e["weight"]} for e in kept["edges"]]
    logits = [n for n in nodes if n["feature_type"] == "logit"]
    if logits:
        logits[0]["is_target_logit"] = True  # kept_graph lists the written word first
    ranked = logits + sorted((n for n in nodes if n["feature_type"] != "logit"), key=lambda n: n["influence"])
    scored = [n["influence"] for n in nodes if n["feature_type"] not in ("embedding", "logit")]  # what pruning ranks
    metadata = {"slug": slug, "scan": scan, "transcoder_list": [], "prompt_tokens": list(kept["words"]),
                "prompt": featured["couplet"], "node_threshold": max(scored, default=None)}
    members = [[ids[k] for k in need(b, "nodes", f"box {b['name']!r}")] for b in boxes]
    q = {"pinnedIds": [n["node_id"] for n in ranked[:MAX_PINNED]],
         "supernodes": [[f"{b['name']}: {b['words']}", *m] for b, m in zip(boxes, members)],
         "linkType": "both", "clickedId": logits[0]["node_id"] if logits else "", "sg_pos": ""}
    return {"metadata": metadata, "qParams": q, "nodes": nodes, "links": links}


def report_graphs(results):
    """The circuit-tracer graph of every model's featured graph in results.json (slug: the model's name)."""
    out = []
    for name, m in results["models"].items():
        clt = m.get("clt") or {}
        if clt.get("featured"):  # no transcoder ran for this model: no graph
            out.append(circuit_tracer_graph(clt["featured"], name, clt["n_features"], f"couplets-{name}"))
    return out


def write_graph_files(folder, graphs):
    """FOLDER/{slug}.json for each graph and FOLDER/graph-metadata.json listing them (other slugs already
    listed stay): the data folder of circuit-tracer's local server. Returns the graph files' paths."""
    if not graphs:
        return []
    index_path = os.path.join(folder, INDEX)
    index = {"graphs": []}
    if os.path.exists(index_path):
        try:
            with open(index_path) as f:
                index = json.load(f)
        except ValueError:
            raise ValueError(f"{index_path} is not valid JSON; delete it and export again") from None
    paths = []
    for g in graphs:
        paths.append(os.path.join(folder, g["metadata"]["slug"] + ".json"))
        write_json(paths[-1], g)
    slugs = {g["metadata"]["slug"] for g in graphs}
    index["graphs"] = [m for m in index["graphs"] if m["slug"] not in slugs] + [g["metadata"] for g in graphs]
    write_json(index_path, index)
    return paths


def viewer_url(graph, port=8041):
    """The local frontend's address of one graph with its supernodes in the URL: at the pinned commit the
    local frontend (attribution_graph/init-cg.js) takes supernodes from the URL's `supernodes` parameter
    and from nowhere else, so without it the boxes of qParams are not drawn."""
    boxes = json.dumps(graph["qParams"]["supernodes"], separators=(",", ":"))
    return f"http://localhost:{port}/index.html?" + urlencode({"slug": graph["metadata"]["slug"], "supernodes": boxes})
