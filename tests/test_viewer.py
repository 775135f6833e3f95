"""The full graph viewer: every kept node and edge, and no two nodes drawn on top of each other."""
import itertools
import re

import torch

from interp.attribution import kept_graph
from page.viewer import RADIUS, graph_viewer, layout
from tests.test_supernodes import small_graph


def export(keep_error=True):
    g, edges = small_graph()
    keep = torch.ones(g.adjacency.shape[0], dtype=torch.bool)
    keep[3] = False  # error at position 1: no edges, pruned
    if not keep_error:
        keep[4] = False
        edges[8, 4] = False
    return kept_graph(g, keep, edges & keep[:, None] & keep[None, :], torch.arange(9.0),
                      ["goat", "<nl>", "a"], ["cat"], {0: "meaning animal: cat, dog, bee"})


def test_kept_graph_has_the_kept_nodes_and_signed_edges():
    k = export()
    assert len(k["nodes"]) == 8  # 9 nodes minus the pruned error
    kinds = [n["kind"] for n in k["nodes"]]
    assert kinds == ["feature", "feature", "error", "error", "token", "token", "token", "logit"]
    assert k["nodes"][0]["label"] == "L0 #7 meaning animal: cat, dog, bee"  # the automatic label, not typed
    assert (k["nodes"][-1]["layer"], k["nodes"][-1]["pos"]) == (1, 2) and "'cat'" in k["nodes"][-1]["label"]
    by_pair = {(k["nodes"][e["source"]]["label"][:6], k["nodes"][e["target"]]["label"][:6]): e["weight"]
               for e in k["edges"]}
    assert by_pair[("token ", "L0 #9")] == -1.0 and len(k["edges"]) == 5


def test_layout_never_overlaps_nodes_even_when_a_cell_is_crowded():
    k = export()
    # twenty features in one (layer, position) cell and three in its neighbour
    k["nodes"] += [{"kind": "feature", "layer": 0, "pos": 1, "label": f"f{i}", "influence": 0.0} for i in range(20)]
    k["nodes"] += [{"kind": "feature", "layer": 0, "pos": 2, "label": f"g{i}", "influence": 0.0} for i in range(3)]
    at, w, h, _, _ = layout(k)
    assert len(at) == len(k["nodes"])
    for (x0, y0), (x1, y1) in itertools.combinations(at.values(), 2):
        assert (x0 - x1) ** 2 + (y0 - y1) ** 2 >= (2 * RADIUS) ** 2
    assert all(0 < x < w and 0 < y < h for x, y in at.values())
    # rows: the logit above the layer, the layer above the embeddings
    ys = {n["layer"]: at[i][1] for i, n in enumerate(k["nodes"])}
    assert ys[1] < ys[0] < ys[-1]


def test_viewer_draws_every_node_and_edge_with_its_label():
    k = export(keep_error=False)
    svg = graph_viewer(k, "v1", "title")
    assert len(re.findall(r'class="n"', svg)) == len(k["nodes"])
    assert len(re.findall(r'<line class="e"', svg)) == len(k["edges"])
    assert "meaning animal: cat, dog, bee" in svg and "http" not in svg
