"""The summary graph: boxes by the stated rule, summed weights, labels only from the automatic labels."""
import torch

from interp.attribution import Graph
from interp.supernodes import summary_graph, feature_label, GROUPS


def small_graph():
    # nodes: f0 (layer 0, pos 0), f1 (layer 0, pos 2) | errors pos 0..2 | tokens pos 0..2 | one logit
    N = 2 + 3 + 3 + 1
    A = torch.zeros(N, N)
    f0, f1, err, tok, logit = 0, 1, 2, 5, 8
    A[f0, tok + 0] = 2.0      # the meaning word's token -> f0
    A[f1, f0] = 3.0           # f0 -> f1 (meaning word -> ending position)
    A[f1, tok + 1] = -1.0     # the line break's token -> f1
    A[logit, f1] = 4.0        # f1 -> the ending
    A[logit, err + 2] = 0.5   # the ending position's error -> the ending
    g = Graph(tokens=torch.tensor([10, 2, 11]), features=torch.tensor([[0, 0, 7], [0, 2, 9]]),
              activations=torch.ones(2), logit_ids=torch.tensor([20]), logit_probs=torch.ones(1), target_pos=2,
              adjacency=A, bias=torch.zeros(N), values=torch.zeros(N), n_layers=1)
    return g, A != 0


def test_boxes_group_nodes_by_role_and_arrows_sum_weights():
    g, edges = small_graph()
    keep = torch.ones(g.adjacency.shape[0], dtype=torch.bool)
    inf = torch.tensor([1.0, 2.0] + [0.0] * 7)
    labels = {0: "meaning animal: cat, dog, bee", 1: "family -at: cat, hat, rat"}
    sg = summary_graph(g, ["cue", "nl", "l2_open1"], keep, edges, inf, labels, ["goat", "<nl>", "a"], ["cat"])
    names = [b["name"] for b in sg["boxes"]]
    assert names == ["meaning word", "line break", "ending position", "ending"] and len(names) <= 8
    assert set(names) <= set(GROUPS)
    box = {b["name"]: b for b in sg["boxes"]}
    assert box["meaning word"]["labels"] == [labels[0]] and box["ending position"]["labels"] == [labels[1]]
    assert box["ending"]["words"] == "cat" and box["meaning word"]["words"] == "goat"
    arrows = {(a["source"], a["target"]): a["weight"] for a in sg["arrows"]}
    assert arrows == {("meaning word", "ending position"): 3.0, ("line break", "ending position"): 1.0,
                      ("ending position", "ending"): 4.5}
    every_label = [lab for b in sg["boxes"] for lab in b["labels"]]
    assert all(lab in labels.values() for lab in every_label)  # nothing typed in


def test_pruned_nodes_and_edges_leave_the_summary():
    g, edges = small_graph()
    keep = torch.ones(g.adjacency.shape[0], dtype=torch.bool)
    edges[8, 4] = False  # drop the error -> ending edge
    sg = summary_graph(g, ["cue", "nl", "l2_open1"], keep, edges, torch.zeros(9), {}, ["goat", "<nl>", "a"], ["cat"])
    assert {(a["source"], a["target"]): a["weight"] for a in sg["arrows"]}[("ending position", "ending")] == 4.0


def test_feature_label_reads_the_decoder_through_the_unembedding():
    from data import CoupletWorld, WorldConfig
    from lexicon import NOUNS
    from model import GPT, GPTConfig
    from interp.transcoder import CrossLayerTranscoder
    world = CoupletWorld(WorldConfig(n_train=100, n_test=10))
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=len(world.itos), block_size=24, n_layer=2, n_head=2, d_model=32, d_mlp=64))
    clt = CrossLayerTranscoder(2, 32, 8)
    cat_family = [w for w, n in NOUNS.items() if n.family == "at"][:3]
    with torch.no_grad():  # make feature 3 write exactly the unembedding rows of three -at words
        for lo in range(2):
            clt.W_dec[0][3, lo] = 0
        u = torch.randn(32)
        model.unembed.weight.mul_(0.01)
        for w in cat_family:
            model.unembed.weight[world.stoi[w]] = u
        clt.W_dec[0][3, 0] = u
        model.ln_f.weight.fill_(1.0)
    label = feature_label(model, clt, world, 0, 3)
    assert label.startswith("cell animal -at: ") and sorted(label.split(": ")[1].split(", ")) == sorted(cat_family)
