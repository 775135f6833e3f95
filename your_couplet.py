"""`python analyze.py --prompt "..."`: one line 1 of your own, end to end.

Prints the line 2 the model writes, the ending read at the planning site (a logistic probe over
every noun, so the runner-ups and their probabilities show: the rabbit/habit picture), and what the
model writes when the top candidate's direction is removed there.
"""
import json
import os

import torch

from data import NOUNS, PRONOUNS, SEEN, MIDDLES, FAMILIES, MEANINGS, parse_line1
import planning as P


class PromptError(ValueError):
    """A prompt the model cannot take; the message is one line."""


def list_words(world):
    """The vocabulary, nouns by rhyme family and meaning, then the other words."""
    lines = []
    for f in FAMILIES:
        by_m = {m: [w for w, n in NOUNS.items() if n.family == f and n.meaning == m] for m in MEANINGS}
        lines.append(f"-{f:5} " + "; ".join(f"{m}: {', '.join(ws)}" for m, ws in by_m.items() if ws))
    others = sorted(w for w in world.itos if w not in NOUNS and not w.startswith("<"))
    lines.append("other words: " + " ".join(others))
    lines.append("line 1 shape: PRONOUN SEEN a/an NOUN [with a/an NOUN] MIDDLE a/an NOUN, e.g. "
                 "'she saw a goat and went to find a cake'")
    return "\n".join(lines)


def parse_prompt(text, world):
    """Words of a line 1, or PromptError naming unknown words and known words of the same kind."""
    words = text.lower().split()
    unknown = [(i, w) for i, w in enumerate(words) if w not in world.stoi or w.startswith("<")]
    if unknown:
        def kind(i):
            if i == 0:
                return PRONOUNS
            if i == 1:
                return SEEN
            if i == 3 or i == len(words) - 1:
                return sorted(NOUNS)[:: max(1, len(NOUNS) // 6)][:6]
            return sorted({w for m in MIDDLES for w in m.split()})[:6]
        bad = ", ".join(f"'{w}' (try: {' '.join(kind(i)[:6])})" for i, w in unknown)
        raise PromptError(f"not in the vocabulary: {bad}; see --list-words")
    try:
        parse_line1(words)
    except ValueError as e:
        raise PromptError(f"{e}; a line 1 looks like 'she saw a goat and went to find a cake'") from None
    if len(words) + 2 > world.max_len() - 5:
        raise PromptError(f"line 1 is too long ({len(words)} words) to leave room for line 2")
    return words


def planned_candidates(model, world, site, line1, fit, top=5):
    """Probabilities of each ending at the site, from a logistic probe fit on training prompts."""
    endings = [P.ending(l) for l in P.complete(model, world, fit)]
    keep = [i for i, e in enumerate(endings) if e in NOUNS]
    x = P.site_vectors(model, world, [fit[i] for i in keep], site)
    words = sorted(NOUNS)
    y = torch.tensor([words.index(endings[i]) for i in keep])
    mu, sd = x.mean(0), x.std(0) + 1e-6
    torch.manual_seed(0)
    probe = torch.nn.Linear(x.shape[1], len(words))
    opt = torch.optim.Adam(probe.parameters(), lr=0.05, weight_decay=1e-4)
    for _ in range(150):
        loss = torch.nn.functional.cross_entropy(probe((x - mu) / sd), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        p = probe((P.site_vectors(model, world, [line1], site) - mu) / sd).softmax(-1)[0]
    best = p.topk(top)
    return [(words[i], v.item()) for v, i in zip(best.values, best.indices)]


def write_prompt_graph(model, world, line1, line2, clt_path, out_dir):
    """This prompt's attribution graph: out_dir/prompt.html (viewer) and out_dir/prompt_graph.json."""
    from attribution import couplet_graph, graph_scores
    from labels import feature_table
    from report import page
    from transcoder import get_clt
    from viewer import viewer_html, write_graph_json
    clt, _ = get_clt(model, world, clt_path)
    table = feature_table(model, clt, world)
    graph = couplet_graph(model, clt, world, line1, line2)
    replacement, completeness = graph_scores(graph)
    os.makedirs(out_dir, exist_ok=True)
    write_graph_json(os.path.join(out_dir, "prompt_graph.json"), graph, world, table, slug="couplet-prompt")
    intro = (f"<p>The attribution graph of the ending of <i>{' '.join(line1)} / {' '.join(line2)}</i> "
             f"(replacement score {replacement:.2f}, completeness {completeness:.2f}).</p>")
    with open(os.path.join(out_dir, "prompt.html"), "w") as f:
        f.write(page("Your couplet", intro, [viewer_html(graph, world, table)]))
    return os.path.join(out_dir, "prompt.html")


def run_prompt(model, world, text, results_path, fit, log=print):
    """The console story of one prompt; returns (line1, line2, site)."""
    line1 = parse_prompt(text, world)
    line2 = P.complete(model, world, [line1])[0]
    log(f"line 1: {' '.join(line1)}\nline 2: {' '.join(line2)}")
    site, scale = None, 1.0
    if os.path.exists(results_path):
        res = json.load(open(results_path))
        site, scale = res.get("planning_site"), res.get("suppression", {}).get("scale", 1.0)
    if site is None:
        log("(no analysis results yet: finding the planning site by patching first)")
        held = [c.line1 for c in world.split("test")[:200]]
        maps = {s: P.patching_experiment(model, world, P.swap_pairs(world, held, s), P.layer_hooks(model.cfg),
                                         P.role_order(held))
                for s in ("rhyme", "cue")}
        pairs = [[(a, b) for a, b in zip(ls, P.complete(model, world, ls)) if len(b) >= 5 and b[-1] in NOUNS]
                 for ls in (fit, held)]
        site = P.fallback_to_readable_newline(P.choose_site(maps["rhyme"], maps["cue"]), P.newline_probe_by_layer(
            model, world, *pairs, P.layer_hooks(model.cfg)), maps["rhyme"], maps["cue"])
    flag = "" if site.get("carries_plan", True) else \
        " (no place carries the plan in this model; read where the ending is most readable)"
    cands = planned_candidates(model, world, site, line1, fit)
    log(f"planned ending read at {site['position']} @ L{site['layer']}{flag}:")
    for w, p in cands:
        log(f"  {w:14} {p:6.1%}")
    dirs, mu, _ = P.planned_word_directions(model, world, fit, site)
    top = cands[0][0]
    if top in dirs:
        out = P.suppress(model, world, [line1], site, [top], dirs, mu, scale)[0]
        log(f"suppressing '{top}' there ({scale:g}x its projection): {' '.join(out)}")
    return line1, line2, site
