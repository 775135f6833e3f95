"""Planned-word features: transcoder features at a site that stand for one future ending word.

The study found that about half of its poems had features at the line break standing for the word to
come ("rabbit"), not for a rhyme family or a meaning. The causal criterion, for one prompt:

1. Candidates: at the site (a role, e.g. the line break) and a CLT layer, the `top_k` active features
   by activation x decoder norm.
2. Ablate each candidate alone: subtract its activation x decoder from every MLP output it writes
   (its layer and later) at the site, as additive Edits; the real model runs on, with the CLT's
   error untouched. Line 2's words before the ending are teacher-forced.
3. The candidate *stands for the ending e* when e's de-meaned logit drops by at least `MIN_DROP` and
   by at least `MARGIN` more than the logit of every rival: every other noun sharing e's rhyme family
   or meaning. A "rhymes with -at" feature lowers cat and rat alike and does not count.
4. The rate: the share of prompts with at least one such feature, per layer and at any layer. Beside
   it, the same at the position that writes the ending, and the looser *cell* level (rivals are only
   the nouns sharing one of the ending's two facts): a feature for "animal that rhymes with -at"
   passes it, one for "rhymes with -at" does not.
5. Clamping: all of a prompt's planned-word features set to 0 at once, line 2 written again with the
   clean opener teacher-forced: does it end with the model's own runner-up (rabbit -> habit)?
"""
import torch

from couplet_rules import check_couplet, role_position
from data import opener_table
from interp.directions import random_like
from interp.edits import Edit, activations, ending, ending_logits, noop_fraction, write_line2
from interp.interventions import OUTCOMES, opener, outcome
from interp.shape import CONTROL_ROLE, cell_of, length_of, opener_length
from interp.stats import rate
from interp.transcoder import in_name, out_name
from lexicon import NOUNS

MIN_DROP, MARGIN, TOP_K = 1.0, 0.5, 8


def ablation_edits(clt, layer, pos, acts, fids):
    """Edits that remove features `fids` (activations `acts`) of `layer` at position pos."""
    return [Edit(out_name(l), pos, -sum(a * clt.decoder(layer, l)[f] for f, a in zip(fids, acts)), "add")
            for l in range(layer, clt.n_layer)]


def rivals(word, level="word"):
    """The nouns a feature for `word` must lower less: at level "word" every other noun sharing its
    rhyme family or its meaning; at level "cell" those sharing one of the two but not both."""
    n = NOUNS[word]
    share = lambda m: (m.family == n.family) + (m.meaning == n.meaning)
    return [w for w, m in NOUNS.items() if w != word and (share(m) >= 1 if level == "word" else share(m) == 1)]


def stands_for(drops, word, stoi, level="word"):
    """drops: (V,) fall of every de-meaned logit; True when the fall is about `word` alone (or its cell)."""
    e = drops[stoi[word]]
    return bool(e >= MIN_DROP and e - max(drops[stoi[w]] for w in rivals(word, level)) >= MARGIN)


def candidates(model, clt, world, line1s, prefixes, pos, layer):
    """Step 1 and the edits of step 2: the `top_k` active features of `layer` at token pos[i] of each
    prompt (+ prefix), as (acts (n, F), [(prompt, feature)], [ablation Edits of that one feature])."""
    if not line1s:  # no eligible prompt: nothing to ablate
        return torch.zeros(0, clt.n_features), [], []
    resid = activations(model, world, line1s, prefixes, [in_name(layer)])[in_name(layer)]
    acts = clt.encode(torch.stack([r[p] for r, p in zip(resid, pos)]), layer)  # (n, F)
    score = acts * clt.decoder_norms()[layer]
    rows, edits = [], []  # one ablation run per (prompt, candidate)
    for i in range(len(line1s)):
        for f in score[i].topk(min(TOP_K, int((acts[i] > 0).sum()))).indices.tolist():
            rows.append((i, f))
            edits.append(ablation_edits(clt, layer, pos[i], [acts[i, f].item()], [f]))
    return acts, rows, edits


@torch.no_grad()
def find(model, clt, world, line1s, line2s, pos, layer, level="word", clean=None):
    """Per prompt: [(feature id, activation)] of the features at token pos[i] and `layer` that stand for
    its ending (level "word") or for its ending's cell (level "cell")."""
    prefixes = [l2[:-1] for l2 in line2s]
    acts, rows, edits = candidates(model, clt, world, line1s, prefixes, pos, layer)
    clean = ending_logits(model, world, line1s, prefixes) if clean is None else clean  # (n, V), the same for every call
    edited = ending_logits(model, world, [line1s[i] for i, _ in rows], [prefixes[i] for i, _ in rows], edits)
    demean = lambda x: x - x.mean(-1, keepdim=True)
    out = [[] for _ in line1s]
    for (i, f), row in zip(rows, demean(edited)):
        if stands_for(demean(clean[i]) - row, ending(line2s[i]), world.stoi, level):
            out[i].append((f, acts[i, f].item()))
    return out


@torch.no_grad()
def planned_word_features(model, clt, world, line1s, line2s, runners, role="nl"):
    """The rate of prompts whose ending has planned-word features at `role` (per layer and at any), and
    what clamping them to 0 does to the ending, with the clean opener teacher-forced."""
    keep = [i for i, (l1, l2) in enumerate(zip(line1s, line2s))
            if ending(l2) in NOUNS and role_position(l1, role, world.config) is not None]
    l1s, l2s, run = [line1s[i] for i in keep], [line2s[i] for i in keep], [runners[i] for i in keep]
    pos = [role_position(l1, role, world.config) for l1 in l1s]
    clean = ending_logits(model, world, l1s, [l2[:-1] for l2 in l2s])
    found = {layer: find(model, clt, world, l1s, l2s, pos, layer, clean=clean) for layer in range(clt.n_layer)}
    any_layer = [any(found[layer][i] for layer in found) for i in range(len(l1s))]
    writer = [len(world.prompt_ids(l1)) + len(l2) - 2 for l1, l2 in zip(l1s, l2s)]  # predicts the ending

    def anywhere(p, level):  # any layer, per prompt
        return rate([any(v) for v in zip(*(find(model, clt, world, l1s, l2s, p, layer, level, clean) for layer in found))])
    out = {"role": role, "n": len(l1s), "by_layer": {str(l): rate([bool(x) for x in v]) for l, v in found.items()},
           "any_layer": rate(any_layer),
           # controls the criterion can pass: where the ending is written, and the looser "cell" level
           "writer_any_layer": anywhere(writer, "word"), "cell_any_layer": anywhere(pos, "cell"),
           "writer_cell_any_layer": anywhere(writer, "cell"),
           "criterion": {"min_drop": MIN_DROP, "margin": MARGIN, "top_k": TOP_K}}
    rows = [i for i in range(len(l1s)) if any_layer[i] and run[i] is not None]
    edits = [[e for layer in found for e in (ablation_edits(clt, layer, pos[i], [a for _, a in found[layer][i]],
                                                             [f for f, _ in found[layer][i]])
                                             if found[layer][i] else [])] for i in rows]
    written = write_line2(model, world, [l1s[i] for i in rows], edits, [opener(l2s[i]) for i in rows])
    kinds = [outcome(w, ending(l2s[i]), run[i]) for w, i in zip(written, rows)]
    out["clamp_to_zero"] = {"n": len(rows), "counts": {k: kinds.count(k) for k in OUTCOMES},
                            "runner_up_rate": rate([k == "runner_up" for k in kinds])}
    return out


def first_words_of_several_lengths(world):
    """The openers' first words that start openers of more than one length in this world ("and": "and
    then", "and later", "and then at last"): where the first word alone does not fix the length."""
    firsts = {}
    for n, openers in opener_table(world.config).items():
        for o in openers:
            firsts.setdefault(o.split()[0], set()).add(n)
    return {w for w, ns in firsts.items() if len(ns) > 1}


@torch.no_grad()
def length_features(model, clt, world, line1s, line2s, role="nl", seed=0):
    """Opener-length features (worlds with a meter): transcoder features at `role` whose ablation alone,
    line 2 written freely, changes the opener's length *and* yields a valid couplet ending in another
    word of the cell (the one that fits the new length). Eligible prompts: a valid clean couplet whose
    cell has a word of another length. Beside the rate (any layer, any of the TOP_K candidates):
      random          the same search with each ablation's vectors replaced by norm-matched random
                      directions: what an edit of that size does by itself
      control role    the same criterion at line 1's verb
      first word kept the same ablations with line 2's clean first word teacher-forced, on the prompts
                      whose first word starts openers of several lengths: a feature that still switches
                      the length there acts beyond the next word (a plan, not only a next-token feature)."""
    ok = [i for i, (l1, l2) in enumerate(zip(line1s, line2s)) if l2 and ending(l2) in NOUNS
          and not check_couplet(l1, l2, world.config)
          and any(length_of(w) != length_of(ending(l2)) for w in cell_of(world, l1))]
    l1s, l2s = [line1s[i] for i in ok], [line2s[i] for i in ok]
    several = first_words_of_several_lengths(world)
    out = {"n_eligible": len(ok), "eligible": ok, "criterion": {"top_k": TOP_K}}

    def switched(i, w):
        return (opener_length(w) != opener_length(l2s[i]) and ending(w) != ending(l2s[i])
                and not check_couplet(l1s[i], w, world.config))

    def search(where, vectors=lambda e, k: e, keep=None, forced=False):
        """Per eligible prompt (or only those in `keep`), the (layer, feature)s whose edit switches the length."""
        pos = [role_position(l1, where, world.config) for l1 in l1s]
        hits, noop = [set() for _ in l1s], []
        for layer in range(clt.n_layer):
            _, rows, edits = candidates(model, clt, world, l1s, [[] for _ in l1s], pos, layer)
            pick = [k for k, (i, _) in enumerate(rows) if keep is None or i in keep]
            rows, edits = [rows[k] for k in pick], [vectors(edits[k], k) for k in pick]
            written = write_line2(model, world, [l1s[i] for i, _ in rows], edits,
                                  [l2s[i][:1] for i, _ in rows] if forced else None)
            for (i, f), w in zip(rows, written):
                if switched(i, w):
                    hits[i].add((layer, f))
            noop.append((len(rows), noop_fraction(model, world, [l1s[i] for i, _ in rows], edits) or 0.0))
        prompts = range(len(l1s)) if keep is None else sorted(keep)
        n_edits = sum(k for k, _ in noop)
        return hits, {**rate([bool(hits[i]) for i in prompts]),
                      "noop_fraction": sum(k * f for k, f in noop) / n_edits if n_edits else None}

    hits, out[role] = search(role)
    out["features"] = [sorted(h) for h in hits]  # (layer, feature id) per eligible prompt
    out[CONTROL_ROLE] = search(CONTROL_ROLE)[1]
    out["random"] = search(role, lambda es, k: [Edit(e.hook, e.pos, random_like(e.value, seed + 1000 * k + j), e.op)
                                              for j, e in enumerate(es)])[1]
    out["first_word_kept"] = search(role, keep={i for i, l2 in enumerate(l2s) if l2[0] in several}, forced=True)[1]
    return out
