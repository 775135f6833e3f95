"""The circuit-tracer export: every graph the study and `analyze.py --prompt` make passes a validator written
here from circuit-tracer's data model (circuit_tracer/frontend/graph_models.py at the pinned commit) and from
what its frontend reads (attribution_graph/util-cg.js, init-cg.js, index.html), and the validator fails
planted bugs. No network, no circuit-tracer import."""
import copy
import json
import math
import os
from urllib.parse import parse_qs, urlparse

import pytest
import torch

import analyze
from data import world_from_dict
from interp.graph_export import (CIRCUIT_TRACER_COMMIT, INDEX, circuit_tracer_graph, report_graphs, viewer_url,
                                 write_graph_files)
from interp.study import featured_graph
from interp.transcoder import model_fingerprint, save_clt, train_clt
from model import load_checkpoint
from tests.test_attribution import TINY_CLT

# graph_models.py, field by field: the JSON types each field takes (a float field takes an int, as pydantic does)
NUM, NONE = (int, float), (type(None),)
METADATA = {"slug": (str,), "scan": (str,), "transcoder_list": (list,), "prompt_tokens": (list,), "prompt": (str,),
            "node_threshold": NUM + NONE}
QPARAMS = {"pinnedIds": (list,), "supernodes": (list,), "linkType": (str,), "clickedId": (str,), "sg_pos": (str,)}
NODE = {"node_id": (str,), "feature": (int,), "layer": (str,), "ctx_idx": (int,), "feature_type": (str,),
        "token_prob": NUM, "is_target_logit": (bool,), "run_idx": (int,), "reverse_ctx_idx": (int,), "jsNodeId": (str,),
        "clerp": (str,), "influence": NUM + NONE, "activation": NUM + NONE}
LINK = {"source": (str,), "target": (str,), "weight": NUM}
FEATURE_TYPES = {"cross layer transcoder", "mlp reconstruction error", "embedding", "logit"}


class Invalid(Exception):
    pass


def check(ok, msg):
    if not ok:
        raise Invalid(msg)


def check_fields(d, fields, what):
    """Every field present (circuit-tracer's writer dumps them all) with its type; no bool where a number goes."""
    check(isinstance(d, dict), f"{what} is not an object")
    check(set(fields) <= set(d), f"{what} lacks {sorted(set(fields) - set(d))}")
    for k, types in fields.items():
        v = d[k]
        check(bool in types if isinstance(v, bool) else isinstance(v, types), f"{what}.{k} = {v!r}: not {types}")


def validate(g):
    """Raise Invalid unless g is a graph circuit-tracer's frontend can open."""
    check(isinstance(g, dict) and set(g) == {"metadata", "qParams", "nodes", "links"}, "top level keys")
    check_fields(g["metadata"], METADATA, "metadata")
    check_fields(g["qParams"], QPARAMS, "qParams")
    tokens = g["metadata"]["prompt_tokens"]
    check(all(isinstance(t, str) for t in tokens + g["metadata"]["transcoder_list"]), "token lists hold strings")
    check(isinstance(g["nodes"], list) and isinstance(g["links"], list), "nodes and links are lists")
    for i, n in enumerate(g["nodes"]):
        check_fields(n, NODE, f"node {i}")
        check(n["feature_type"] in FEATURE_TYPES, f"node {n['node_id']}: feature_type {n['feature_type']!r}")
        check((n["layer"] == "E") == (n["feature_type"] == "embedding"), f"node {n['node_id']}: layer {n['layer']!r}")
        check(n["layer"] == "E" or n["layer"].isdigit(), f"node {n['node_id']}: layer {n['layer']!r}")
        check(0 <= n["ctx_idx"] < len(tokens), f"node {n['node_id']}: ctx_idx {n['ctx_idx']} outside the prompt")
        check(not n["is_target_logit"] or n["feature_type"] == "logit", f"node {n['node_id']}: a target, not a logit")
    ids = [n["node_id"] for n in g["nodes"]]
    check(len(set(ids)) == len(ids), "node ids are not unique")
    logits = [n for n in g["nodes"] if n["feature_type"] == "logit"]
    check(any(n["is_target_logit"] for n in logits), "no target logit")
    for n in logits:  # util-cg.js reads the word between quotes and the probability after '(p='
        check(n["clerp"].count('"') >= 2 and "(p=" in n["clerp"], f"logit {n['node_id']}: clerp {n['clerp']!r}")
        float(n["clerp"].split("(p=")[1].split(")")[0])
    inner = [int(n["layer"]) for n in g["nodes"] if n["feature_type"] in ("cross layer transcoder",
                                                                          "mlp reconstruction error")]
    check(all(int(n["layer"]) > max(inner, default=-1) for n in logits), "logits are not above every layer")
    known = set(ids)
    for i, e in enumerate(g["links"]):
        check_fields(e, LINK, f"link {i}")
        check(e["source"] in known and e["target"] in known, f"link {i} joins a missing node: {e}")
        check(math.isfinite(e["weight"]), f"link {i}: weight {e['weight']}")
    q = g["qParams"]
    check(set(q["pinnedIds"]) <= known, f"pinned ids missing: {sorted(set(q['pinnedIds']) - known)[:3]}")
    for s in q["supernodes"]:  # [label, member node ids...]
        check(isinstance(s, list) and len(s) >= 2 and all(isinstance(x, str) for x in s), f"supernode {s!r}")
        check(set(s[1:]) <= known, f"supernode {s[0]!r} names missing nodes {sorted(set(s[1:]) - known)[:3]}")
    check(q["clickedId"] in known | {""}, f"clicked id {q['clickedId']!r} missing")


def validate_folder(folder):
    """The local server's data folder: graph-metadata.json lists every graph, each {slug}.json valid."""
    with open(os.path.join(folder, INDEX)) as f:
        index = json.load(f)
    check(set(index) == {"graphs"} and isinstance(index["graphs"], list), "index keys")
    slugs = [m["slug"] for m in index["graphs"]]
    check(len(set(slugs)) == len(slugs), "index lists a slug twice")
    for m in index["graphs"]:
        check_fields(m, METADATA, "index entry")
        with open(os.path.join(folder, m["slug"] + ".json")) as f:
            g = json.load(f)
        validate(g)
        check(g["metadata"] == m, f"index entry of {m['slug']} differs from its graph")
    return slugs


@pytest.fixture(scope="module")
def setup(tiny_run):
    """Tiny model, briefly trained transcoder, a test couplet and its featured graph, as results.json holds it."""
    torch.set_num_threads(1)
    model, ckpt = load_checkpoint(tiny_run[0])
    world = world_from_dict(ckpt["world_config"])
    clt, _ = train_clt(model, world, TINY_CLT)
    c = world.split("test")[0]
    featured = json.loads(json.dumps(featured_graph(model, clt, world, c.line1, c.line2)))
    return model, clt, world, c, featured


def test_featured_graph_exports_to_valid_circuit_tracer_json(setup):
    model, clt, world, c, f = setup
    g = json.loads(json.dumps(circuit_tracer_graph(f, "tiny", TINY_CLT.n_features, "couplets-tiny")))
    validate(g)
    kept = f["graph"]
    assert len(g["nodes"]) == len(kept["nodes"]) and len(g["links"]) == len(kept["edges"]) > 0
    assert len(CIRCUIT_TRACER_COMMIT) == 40 and g["metadata"]["prompt_tokens"] == kept["words"]
    kinds = {n["feature_type"] for n in g["nodes"]}
    assert {"cross layer transcoder", "embedding", "logit"} <= kinds
    # the automatic labels are the clerps, and the target logit is the word the couplet ends with
    feats = [(n, k) for n, k in zip(g["nodes"], kept["nodes"]) if k["kind"] == "feature"]
    assert all(k["label"].endswith(n["clerp"]) and n["clerp"] for n, k in feats)
    target = [n for n in g["nodes"] if n["is_target_logit"]]
    assert len(target) == 1 and f'"{c.line2[-1]}"' in target[0]["clerp"]
    assert target[0]["feature"] == world.stoi[c.line2[-1]] and g["qParams"]["clickedId"] == target[0]["node_id"]
    # every kept node is pinned and in exactly one box: the subgraph opens as the summary graph
    members = [x for s in g["qParams"]["supernodes"] for x in s[1:]]
    assert sorted(members) == sorted(n["node_id"] for n in g["nodes"]) == sorted(g["qParams"]["pinnedIds"])
    assert [s[0].split(":")[0] for s in g["qParams"]["supernodes"]] == [b["name"] for b in f["boxes"]]
    # the pruning slider opens on every kept node: no feature or error scores above the threshold
    assert all(n["influence"] <= g["metadata"]["node_threshold"] for n in g["nodes"]
               if n["feature_type"] not in ("embedding", "logit"))
    # one index per (layer, feature id) across the dictionary
    by_index = {}
    for n, k in feats:
        assert by_index.setdefault(n["feature"], (k["layer"], k["feature"])) == (k["layer"], k["feature"])


def test_validator_catches_planted_bugs(setup):
    g = circuit_tracer_graph(setup[4], "tiny", TINY_CLT.n_features, "couplets-tiny")
    validate(g)
    feature = next(i for i, n in enumerate(g["nodes"]) if n["feature_type"] == "cross layer transcoder")
    logit = next(i for i, n in enumerate(g["nodes"]) if n["is_target_logit"])

    def link_to_nowhere(b):
        b["links"][0]["target"] = "nowhere"

    def wrong_type(b):
        b["nodes"][feature]["feature_type"] = "transcoder"

    def duplicate_id(b):
        b["nodes"][1]["node_id"] = b["nodes"][0]["node_id"]

    def ghost_in_supernode(b):
        b["qParams"]["supernodes"][0].append("ghost")

    def no_target(b):
        b["nodes"][logit]["is_target_logit"] = False

    def unparsable_logit(b):
        b["nodes"][logit]["clerp"] = "the ending"

    def layer_as_int(b):
        b["nodes"][feature]["layer"] = 0

    def no_prompt(b):
        del b["metadata"]["prompt"]

    for plant in (link_to_nowhere, wrong_type, duplicate_id, ghost_in_supernode, no_target, unparsable_logit,
                  layer_as_int, no_prompt):
        bad = copy.deepcopy(g)
        plant(bad)
        with pytest.raises(Invalid):
            validate(bad)


def test_error_ids_never_take_a_layer_0_feature_id():
    # circuit-tracer's error id for (layer 1, position 0) would be 0_1_0: the id of layer 0's feature 1 there
    nodes = [{"kind": "feature", "layer": 0, "pos": 0, "label": "L0 #1 word cat", "influence": 1.0, "cumulative": 0.5,
              "feature": 1, "activation": 2.0},
             {"kind": "error", "layer": 1, "pos": 0, "label": "error", "influence": 1.0, "cumulative": 0.9},
             {"kind": "token", "layer": -1, "pos": 0, "label": "token 'cat'", "influence": 1.0, "cumulative": 1.0,
              "token": 5},
             {"kind": "logit", "layer": 2, "pos": 0, "label": "logit", "influence": 0.0, "cumulative": 1.0, "token": 5,
              "word": "cat", "prob": 0.5}]
    kept = {"n_layers": 2, "words": ["cat"], "nodes": nodes,
            "edges": [{"source": 0, "target": 3, "weight": 1.0}, {"source": 1, "target": 3, "weight": -0.5},
                      {"source": 2, "target": 0, "weight": 2.0}]}
    g = circuit_tracer_graph({"graph": kept, "boxes": [{"name": "ending", "words": "cat", "nodes": [3]}],
                              "couplet": "cat"}, "s", 8, "scan")
    validate(g)
    assert [n["node_id"] for n in g["nodes"]] == ["0_1_0", "err_1_0", "E_5_0", "3_5_0"]
    assert g["nodes"][0]["clerp"] == "word cat" and g["nodes"][3]["clerp"] == 'Output "cat" (p=0.500)'
    with pytest.raises(ValueError, match="features per layer"):
        circuit_tracer_graph({"graph": kept, "boxes": [], "couplet": "cat"}, "s", 1, "scan")
    with pytest.raises(ValueError, match="slug"):
        circuit_tracer_graph({"graph": kept, "boxes": [], "couplet": "cat"}, "../s", 8, "scan")


def test_a_graph_from_before_the_export_is_a_one_line_error(setup):
    old = copy.deepcopy(setup[4])
    for n in old["graph"]["nodes"]:
        n.pop("cumulative")
    with pytest.raises(ValueError, match="rerun `python analyze.py`") as e:
        circuit_tracer_graph(old, "tiny", TINY_CLT.n_features, "couplets-tiny")
    assert "\n" not in str(e.value)


def test_files_and_index_for_the_local_server(setup, tmp_path):
    f = setup[4]
    a, b = (circuit_tracer_graph(f, slug, TINY_CLT.n_features, "couplets-tiny") for slug in ("main", "prompt"))
    assert write_graph_files(str(tmp_path), []) == [] and not os.listdir(tmp_path)
    assert write_graph_files(str(tmp_path), [a]) == [str(tmp_path / "main.json")]
    write_graph_files(str(tmp_path), [b])
    b["metadata"]["prompt"] = "another line"
    write_graph_files(str(tmp_path), [b])  # the same slug again: replaced, not listed twice
    assert validate_folder(str(tmp_path)) == ["main", "prompt"]
    assert json.load(open(tmp_path / "prompt.json"))["metadata"]["prompt"] == "another line"
    (tmp_path / INDEX).write_text("{")
    with pytest.raises(ValueError, match="not valid JSON"):
        write_graph_files(str(tmp_path), [a])
    url = urlparse(viewer_url(a))
    q = parse_qs(url.query)
    assert url.path == "/index.html" and q["slug"] == ["main"]
    assert json.loads(q["supernodes"][0]) == a["qParams"]["supernodes"]


def test_render_only_exports_every_models_graph(setup, tmp_path, monkeypatch):
    f = setup[4]
    results = {"models": {"main": {"clt": {"n_features": TINY_CLT.n_features, "featured": f}},
                          "barrier": {"clt": {"skipped": "no report prompt has a well-formed line 2"}},
                          "green": {"clt": None}}}
    assert [g["metadata"]["slug"] for g in report_graphs(results)] == ["main"]
    (tmp_path / "results.json").write_text(json.dumps(results))
    monkeypatch.setattr(analyze, "render", lambda r: "page")  # the page has its own tests
    monkeypatch.setattr(analyze, "markdown", lambda r: "tables")
    analyze.render_only(str(tmp_path))
    assert validate_folder(str(tmp_path / "graphs")) == ["main"]
    first = (tmp_path / "graphs" / "main.json").read_bytes()
    analyze.render_only(str(tmp_path))  # a pure function of results.json
    assert (tmp_path / "graphs" / "main.json").read_bytes() == first


def test_prompt_exports_its_graph(setup, tiny_run, tmp_path, monkeypatch, capsys):
    model, clt, world, c, _ = setup
    os.symlink(tiny_run[0], tmp_path / "model.pt")
    save_clt(str(tmp_path / "clt.pt"), clt, {"model_fingerprint": model_fingerprint(model)})
    # the tiny model's own line 2 may not end in a noun: write the test couplet's
    monkeypatch.setattr(analyze, "write_line2", lambda model, world, line1s: [c.line2])
    analyze.your_prompt(analyze.AnalyzeConfig(out=str(tmp_path)), " ".join(c.line1))
    out = capsys.readouterr().out
    assert "circuit-tracer graph:" in out and "http://localhost:8041/index.html?slug=prompt" in out
    assert validate_folder(str(tmp_path / "report" / "graphs")) == ["prompt"]
