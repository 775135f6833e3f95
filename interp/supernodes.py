"""An attribution graph told as a story: at most eight boxes, grouped by a stated rule.

1. `feature_label`: every feature is labelled automatically by the words its decoders write most
   (its summed decoder read through the final LayerNorm's gain and the unembedding, as circuit-tracer's
   "top logits"), and classed by what those three words share: a rhyme family, a meaning, both (a cell),
   or nothing (a word).
2. `summary_graph`: every node kept by pruning joins the box of its token position's role (GROUPS);
   errors and token embeddings join their position's box; the target logits are the last box.
3. A box is labelled by its words and the labels of its two most influential features; an arrow
   between two boxes carries the summed |weight| of the kept edges between their nodes (edges inside
   a box are not drawn). Boxes with no kept node are left out.
Pure functions of the graph and its masks: nothing here draws.
"""

from lexicon import NOUNS

GROUPS = ("meaning word", "rhyme word", "rest of line 1", "line break", "line 2 so far", "ending position", "ending")


def group_of(role, is_last):
    if is_last:
        return "ending position"
    if role == "cue":
        return "meaning word"
    if role == "rhyme":
        return "rhyme word"
    if role == "nl":
        return "line break"
    return "line 2 so far" if role.startswith(("l2_", "y", "end")) else "rest of line 1"


def feature_label(model, clt, world, layer, fid, k=3):
    """'family -at: cat, hat, rat' — the class and the top words a feature writes."""
    d = sum(clt.decoder(layer, l_out)[fid] for l_out in range(layer, clt.n_layer))  # (d,)
    logits = model.unembed(d * model.ln_f.weight)  # the final LayerNorm's gain; its scale is per token
    words = [world.itos[i] for i in logits.topk(k).indices.tolist()]
    nouns = [NOUNS[w] for w in words if w in NOUNS]
    fams, means = {n.family for n in nouns}, {n.meaning for n in nouns}
    if len(nouns) == k and len(fams) == 1 and len(means) == 1:
        kind = f"cell {nouns[0].meaning} -{nouns[0].family}"
    elif len(nouns) == k and len(fams) == 1:
        kind = f"family -{nouns[0].family}"
    elif len(nouns) == k and len(means) == 1:
        kind = f"meaning {nouns[0].meaning}"
    else:
        kind = f"word {words[0]}"
    return f"{kind}: {', '.join(words)}"


def node_groups(graph, roles):
    """The box of every node (None for nodes that belong to no position)."""
    fs, es, ts, ls = graph.slices()
    T, last = graph.n_pos, graph.n_pos - 1
    out = [None] * graph.adjacency.shape[0]
    for i in range(fs.stop):
        pos = int(graph.features[i, 1])
        out[i] = group_of(roles[pos], pos == last)
    for j in range(es.stop - es.start):
        pos = j % T  # errors are layer-major
        out[es.start + j] = group_of(roles[pos], pos == last)
    for pos in range(T):
        out[ts.start + pos] = group_of(roles[pos], pos == last)
    for i in range(ls.start, ls.stop):
        out[i] = "ending"
    return out


RULE = ("Each kept node joins the box of its token's role (meaning word, rhyme word, rest of line 1, line break, "
        "line 2 so far, the position that writes the ending); the target words are the last box. A box shows its "
        "words and the automatic labels of its two most influential features; an arrow's width is the summed "
        "|weight| of the kept edges between two boxes.")


def summary_graph(graph, roles, node_mask, edge_mask, node_inf, labels, words, target_words):
    """{'boxes': [{name, words, features, labels, nodes}], 'arrows': [{source, target, weight}]} in GROUPS
    order; a box's `nodes` are its members as indices into kept_graph's nodes. labels: {feature node
    index: label}; words: the token of every position; target_words: the words of the target logits."""
    groups = node_groups(graph, roles)
    fs = graph.slices()[0]
    kept_index = node_mask.long().cumsum(0) - 1  # kept_graph lists the kept nodes in node order
    boxes = []
    for g in GROUPS:
        members = [i for i, x in enumerate(groups) if x == g and node_mask[i]]
        if not members:
            continue
        feats = sorted((i for i in members if i < fs.stop), key=lambda i: -float(node_inf[i]))
        pos = sorted({p for p in range(graph.n_pos) if groups[graph.slices()[2].start + p] == g})
        boxes.append({"name": g, "words": " ".join(words[p] for p in pos) if g != "ending" else ", ".join(target_words),
                      "features": len(feats), "labels": [labels[i] for i in feats[:2] if i in labels],
                      "nodes": [int(kept_index[i]) for i in members]})
    names = [b["name"] for b in boxes]
    weight = {}
    A = graph.adjacency * edge_mask
    rows, cols = A.nonzero(as_tuple=True)
    for t, s in zip(rows.tolist(), cols.tolist()):
        a, b = groups[s], groups[t]
        if a != b and a in names and b in names:
            weight[(a, b)] = weight.get((a, b), 0.0) + abs(float(A[t, s]))
    arrows = [{"source": a, "target": b, "weight": w} for (a, b), w in sorted(weight.items(),
                                                                              key=lambda x: (GROUPS.index(x[0][0]),
                                                                                             GROUPS.index(x[0][1])))]
    return {"rule": RULE, "boxes": boxes, "arrows": arrows}
