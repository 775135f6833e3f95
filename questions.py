"""The reader's four questions, answered by experiments on the main model and on the variants of
worlds.py: where the plan is stored (and why there), whether it is smeared over line 2, whether
training pre-plans it (myopic training), and whether it composes meaning and rhyme.
Each `section_*` runs its experiment and returns (results, html), like analyze.py's sections.
"""
import math
import os

import torch
import torch.nn.functional as F

from data import NOUNS, cell_words, valid_endings, check_couplet, world_from_dict, PAD
from model import load_checkpoint
from worlds import VARIANTS, checkpoint_path
import planning as P
from interventions import run_interventions
import report as R


def load_variants(main_checkpoint):
    """{name: (model, world, ckpt)} for every variant checkpoint present beside the main one."""
    out_dir = os.path.dirname(main_checkpoint) or "."
    found = {}
    for name in VARIANTS:
        path = checkpoint_path(out_dir, name)
        if os.path.exists(path):
            model, ckpt = load_checkpoint(path)
            found[name] = (model, world_from_dict(ckpt["world_config"]), ckpt)
    return found


# ---- per-world core: site, injection, smeared ------------------------------------------------------
def world_study(model, world, held, fit, calib, seed=0):
    """Patching maps, chosen site, steering rate at the site, and the smeared-plan tests."""
    layers = P.layer_hooks(model.cfg)
    maps = {slot: P.patching_experiment(model, world, P.swap_pairs(world, held, slot, seed), layers, P.role_order(held))
            for slot in ("rhyme", "cue")}
    pairs = [[(a, b) for a, b in zip(lines, P.complete(model, world, lines)) if len(b) >= 5 and b[-1] in NOUNS]
             for lines in (fit, held)]
    site = P.fallback_to_readable_newline(P.choose_site(maps["rhyme"], maps["cue"]),
                                          P.newline_probe_by_layer(model, world, *pairs, layers), *maps.values())
    inter = run_interventions(model, world, site, fit, held, calib, seed)
    planned = [P.ending(l) for l in P.complete(model, world, held)]
    keep = [i for i, e in enumerate(planned) if e in NOUNS]
    return {"patching": {s: {"rates": m["rates"], "roles": m["roles"], "n": m["n"]} for s, m in maps.items()},
            "planning_site": site, "injection_rate": inter["injection"]["rate"], "injection": inter["injection"],
            "suppression": inter["suppression"], "sweep": inter["sweep"],
            "smeared": smeared(model, world, [held[i] for i in keep], [planned[i] for i in keep], site, fit)}


def knockouts(model, world, lines, planned, site):
    """How often the ending survives when every line-2 token is cut off from the site / line 1's
    rhyme word / the cue / all earlier line-2 tokens (attention score -inf in every layer)."""
    out = {}
    for name, role in (("site", site["position"]), ("rhyme_word", "rhyme"), ("cue", "cue")):
        ko = [P.prompt_roles(l).index(role) for l in lines]
        written = P.complete(model, world, lines, knockout=ko)
        out[f"knockout_{name}"] = P.rate([P.ending(w) == e for w, e in zip(written, planned)])
    written = P.complete(model, world, lines, knockout=["line2"] * len(lines))
    out["knockout_earlier_line2"] = P.rate([P.ending(w) == e for w, e in zip(written, planned)])
    return out


def smeared(model, world, lines, planned, site, fit):
    """The knockouts, plus the ending probe along line 2."""
    return {**knockouts(model, world, lines, planned, site), "probe_along_line2": line2_probe(model, world, fit, lines)}


def line2_probe(model, world, fit, held):
    """Best-layer ending-probe accuracy at <nl> and each line-2 position (trained model only)."""
    layers = P.layer_hooks(model.cfg)
    pairs = []
    for lines in (fit, held):
        l2 = P.complete(model, world, lines)
        pairs.append([(a, b) for a, b in zip(lines, l2) if not check_couplet(a, b, world.config)])
    if len(pairs[0]) < 50 or len(pairs[1]) < 20:
        return {}
    acts = [P.residuals_by_role(model, world, p, layers) for p in pairs]
    words = sorted(NOUNS)
    y = [torch.tensor([words.index(P.ending(c[1])) for c in p]) for p in pairs]
    return {role: max(P.ridge_probe(acts[0][h][role], y[0], acts[1][h][role], y[1], len(words)) for h in layers)
            for role in ["nl"] + P.LINE2_ROLES}


# ---- Q3: myopic training ---------------------------------------------------------------------------
@torch.no_grad()
def line2_losses(model, world, couplets):
    """Per-couplet mean loss on line 2's ending and on the line-2 words before it (teacher-forced
    on the data's own line 2)."""
    x = world.tensor(couplets, model.cfg.block_size)
    logits = model(x[:, :-1])
    nll = F.cross_entropy(logits.transpose(1, 2), x[:, 1:], reduction="none", ignore_index=PAD)  # (N, T-1)
    end, before = [], []
    for i, c in enumerate(couplets):
        nl = len(c.line1) + 1
        e = nl + len(c.line2)  # index of the ending token; predicted at e - 1
        end.append(nll[i, e - 1].item())
        before.append(nll[i, nl:e - 1].mean().item())
    return torch.tensor(end), torch.tensor(before)


def paired_gap(a, b):
    """Mean of b - a with a 95% normal interval (paired over the same couplets)."""
    d = b - a
    half = 1.96 * d.std().item() / math.sqrt(len(d))
    return {"gap": d.mean().item(), "ci": [d.mean().item() - half, d.mean().item() + half], "n": len(d)}


def section_myopic(main_model, world, variant, main_study, n=500):
    model, _, ckpt = variant
    couplets = world.split("test")[:n]
    e0, b0 = line2_losses(main_model, world, couplets)
    e1, b1 = line2_losses(model, world, couplets)
    res = {"normal": {"ending_loss": e0.mean().item(), "before_loss": b0.mean().item()},
           "myopic": {"ending_loss": e1.mean().item(), "before_loss": b1.mean().item(),
                      "valid": ckpt["metrics"]["test"]["valid"]},
           "gap": {"ending": paired_gap(e0, e1), "before_ending": paired_gap(b0, b1)}}
    return res


# ---- Q4: composition -------------------------------------------------------------------------------
def section_compositional(model, world, site, fit, n=300, seed=0):
    """Holdout accuracy against chance, and the sum test at the site: add a meaning step and a rhyme
    step, each learned from separate prompts, and see if the word at their intersection is written."""
    hold = world.split("holdout")[:n]
    lines = [c.line1 for c in hold]
    written = P.complete(model, world, lines)
    ok = [P.ending(w) in valid_endings(NOUNS[l[3]].meaning, l[-1]) for l, w in zip(lines, written)]
    rhymes = [P.ending(w) in NOUNS and NOUNS[P.ending(w)].family == NOUNS[l[-1]].family for l, w in zip(lines, written)]
    # chance: a random other word of the right rhyme family fits the meaning
    chance = sum(len(valid_endings(NOUNS[l[3]].meaning, l[-1])) /
                 max(1, sum(n.family == NOUNS[l[-1]].family for n in NOUNS.values()) - 1) for l in lines) / len(lines)
    res = {"heldout_accuracy": P.rate(ok), "heldout_rhyme": P.rate(rhymes), "chance": chance,
           "heldout_cells": [list(c) for c in world.holdout_cells]}
    res["sum_test"] = sum_test(model, world, site, fit, [c.line1 for c in world.split("test")[:n]], seed)
    res["sum_test_rate"] = res["sum_test"]["unseen_cells"]["rate"]
    return res


def sum_test(model, world, site, fit, lines, seed=0):
    fit_end = [P.ending(l) for l in P.complete(model, world, fit)]
    x = P.site_vectors(model, world, fit, site)
    mu = x.mean(0)

    def mean_dir(key):
        groups = {}
        for i, e in enumerate(fit_end):
            if e in NOUNS:
                groups.setdefault(key(NOUNS[e]), []).append(i)
        return {k: x[v].mean(0) - mu for k, v in groups.items() if len(v) >= 5}
    d_meaning, d_family = mean_dir(lambda n: n.meaning), mean_dir(lambda n: n.family)
    planned = [P.ending(l) for l in P.complete(model, world, lines)]
    xs = P.site_vectors(model, world, lines, site)
    g = torch.Generator().manual_seed(seed)
    results = {}
    for kind, cells in (("seen_cells", world.train_cells), ("unseen_cells", world.holdout_cells)):
        edits, targets = [], []
        for i, (l, e) in enumerate(zip(lines, planned)):
            if e not in NOUNS:
                continue
            m0, f0 = NOUNS[e].meaning, NOUNS[e].family
            options = [(m, f) for m, f in cells if m != m0 and f != f0 and m in d_meaning and f in d_family
                       and f0 in d_family and m0 in d_meaning]
            if not options:
                continue
            m1, f1 = options[torch.randint(len(options), (1,), generator=g).item()]
            step = d_meaning[m1] - d_meaning[m0] + d_family[f1] - d_family[f0]
            edits.append((i, [(site["hook"], P.prompt_roles(l).index(site["position"]), xs[i] + step)]))
            targets.append(set(cell_words(m1, f1)))
        out = P.complete(model, world, [lines[i] for i, _ in edits], edits=[e for _, e in edits])
        results[kind] = P.rate([P.ending(o) in t for o, t in zip(out, targets)])
    return results


# ---- html ------------------------------------------------------------------------------------------
def worlds_html(worlds):
    figs, rows = [], []
    for name, w in worlds.items():
        r, c = w["patching"]["rhyme"], w["patching"]["cue"]
        both = [[None if a is None or b is None else min(a, b) for a, b in zip(ra, ca)]
                for ra, ca in zip(r["rates"], c["rates"])]
        s = w["planning_site"]
        figs.append(R.heatmap_svg(both, [f"L{i}" for i in range(len(both))], r["roles"],
                                  f"{name}: plan score (min of rhyme/cue patching)",
                                  mark=(s["layer"], r["roles"].index(s["position"]))))
        t = w.get("test", {})
        rows.append([name, f"{R.pct(t.get('rhyme'))} / {R.pct(t.get('meaning'))} / {R.pct(t.get('valid'))}",
                     site_name(s), R.pct(s["score"]), R.ci(w["injection"]),
                     R.ci(w["suppression"]), f"{w['sweep']['site_to_best_other_ratio']:.1f}"])
    desc = "".join(f"<li><b>{R.esc(n)}</b>: {R.esc(v[3])}</li>" for n, v in VARIANTS.items() if n in worlds)
    return f"""<section id="worlds"><h2>9. Where is the plan stored, and why there? Worlds side by side</h2>
<p>Each model below differs from the main one in one documented thing:</p><ul>{desc}</ul>
<p>For each we redo the patching maps (rhyme pairs and cue pairs) and show the plan score, the smaller of the two
rates, with the chosen site outlined; then we steer the site towards a word of another rhyme family.</p>{''.join(figs)}
{R.table(rows, ["model", "test rhyme / meaning / valid", "chosen site", "plan score", "steering at the site",
                 "suppression → runner-up",
                 "sweep: site ÷ best other"])}</section>"""


def site_name(s):
    """'nl @ L1', or 'none' when no cell moves both kinds of pairs in at least half the pairs."""
    if s["carries_plan"]:
        return f"{s['position']} @ L{s['layer']}"
    return f"none (interventions at {s['position']} @ L{s['layer']})"


def smeared_html(worlds):
    rows = []
    for name, w in worlds.items():
        s = w["smeared"]
        probe = s.get("probe_along_line2", {})
        rows.append([name, R.ci(s["knockout_site"]), R.ci(s["knockout_rhyme_word"]), R.ci(s["knockout_cue"]),
                     R.ci(s["knockout_earlier_line2"]),
                     " / ".join(R.pct(probe.get(r)) for r in ["nl"] + P.LINE2_ROLES)])
    return f"""<section id="smeared-worlds"><h2>10. Smeared or re-read? (question 2)</h2>
<p>While the model writes line 2, every line-2 token is forbidden to attend to one place (score −∞ in every layer).
If the ending survives without the planning site but dies without line 1's rhyme word, line 2 <em>re-reads</em>
line 1; if it dies without the earlier line-2 words, the plan is <em>carried</em> ("smeared") along line 2. The
last column is the ending-probe accuracy at the line break and at line 2's first word, pronoun, verb and
article.</p>{R.table(rows, ["model", "cut off site", "cut off rhyme word", "cut off cue",
                              "cut off earlier line-2 words", "probe nl / first / pronoun / verb / article"])}</section>"""


def myopic_html(m):
    g = m["gap"]

    def gap(x):
        return f"{x['gap']:+.3f} nats [{x['ci'][0]:+.3f}, {x['ci'][1]:+.3f}], n={x['n']}"
    return f"""<section id="myopic"><h2>11. Is the plan baked in by training? Myopic training (question 3)</h2>
<p>The myopic model is trained so that the loss at a token sends no gradient into the computation at earlier
tokens: keys and values of past positions come from a detached copy (forward values are identical). Anything it
computes early must pay for itself at that token ("breadcrumbs"); it cannot be shaped by later losses
("pre-caching"). The <b>myopia gap</b> is the myopic model's loss minus the normal model's, on the same held-out
couplets.</p>{R.table([
        ["loss on the ending", f"{m['normal']['ending_loss']:.3f}", f"{m['myopic']['ending_loss']:.3f}", gap(g['ending'])],
        ["loss on line-2 words before it", f"{m['normal']['before_loss']:.3f}", f"{m['myopic']['before_loss']:.3f}",
         gap(g['before_ending'])],
        ["valid couplets (test)", R.pct(m['normal'].get('valid')), R.pct(m['myopic']['valid']), ""],
        ["planning site / plan score", m['normal']['site'], m['myopic']['site'], ""],
        ["steering at the site", R.ci(m['normal']['injection']), R.ci(m['myopic']['injection']), ""],
    ], ["", "normal", "myopic", "gap (myopic − normal)"])}</section>"""


def compositional_html(comp):
    rows = []
    for name, c in comp.items():
        rows.append([name, R.ci(c["heldout_accuracy"]), R.pct(c["chance"]), R.ci(c["heldout_rhyme"]),
                     R.ci(c["sum_test"]["seen_cells"]), R.ci(c["sum_test"]["unseen_cells"])])
    cells = ", ".join(f"{m}×-{f}" for m, f in next(iter(comp.values()))["heldout_cells"])
    return f"""<section id="compositional"><h2>12. Is the ending composed from meaning and rhyme? (question 4)</h2>
<p>Held-out cells ({R.esc(cells)}) never end a training line 2, though their words appear in training as cues and
rhyme words. <b>Held-out accuracy</b>: the line 2 ends with a word of the right meaning and rhyme. <b>Chance</b>: a
random other word of the right rhyme family fits the meaning. <b>Sum test</b>: at the planning site we add a meaning
step and a rhyme step (d<sub>new meaning</sub> − d<sub>old meaning</sub> + d<sub>new family</sub> −
d<sub>old family</sub>), each a mean difference over prompts grouped by meaning or by family only, and count how often
the word at the new intersection is written — for intersections seen in training, and for unseen ones.</p>
{R.table(rows, ["model", "held-out accuracy", "chance", "held-out rhymes", "sum test: seen cells", "sum test: unseen cells"])}
</section>"""


def answers_html(res):
    """The four answers, each built from numbers in results.json (never typed in)."""
    main = res["worlds"]["main"] if "worlds" in res else None
    site, pat = res["planning_site"], res["patching"]
    probes = res["probes"]["best_ending_accuracy_by_role"]
    link = lambda anchor, text: f'<a href="#{anchor}">{text}</a>'
    # Q1
    q1 = (f"In the main model the future ending is <em>readable</em> at the line break (probe {R.pct(probes.get('nl'))}) "
          f"but not <em>used</em> there: the best plan score of any patch at the line break is "
          f"{R.pct(pat['newline_best_plan_score'])}, and the only patches that move the ending are line 1's own rhyme "
          f"word and cue at the embeddings ({link('patching', 'patching map')}). Line 2 re-reads line 1. ")
    if site["carries_plan"]:
        q1 = (f"The main model stores the plan at <b>{site['position']} (layer L{site['layer']})</b>: patching it moves the "
              f"ending for {R.pct(site['rhyme_rate'])} of rhyme pairs and {R.pct(site['cue_rate'])} of cue pairs "
              f"({link('patching', 'patching map')}). ")
    for name, w in res.get("worlds", {}).items():
        if name != "main":
            s = w["planning_site"]
            q1 += (f"In the <b>{name}</b> model the chosen site is {site_name(s)} (plan score "
                   f"{R.pct(s['score'])}; steering there writes the steered word in {R.pct(w['injection_rate'])}). ")
    q1 += f"So the plan sits where the architecture and data make re-reading impossible or costly ({link('worlds', 'worlds')})."
    # Q2
    w = res.get("worlds", {})
    parts = []
    for name, x in w.items():
        s = x["smeared"]
        probe = s.get("probe_along_line2", {})
        parts.append(f"<b>{name}</b>: without line 1's rhyme word the ending survives {R.pct(s['knockout_rhyme_word']['rate'])}, "
                     f"without the site {R.pct(s['knockout_site']['rate'])}, without its own earlier words "
                     f"{R.pct(s['knockout_earlier_line2']['rate'])}; the ending is readable at the verb "
                     f"{R.pct(probe.get('l2_verb'))} and the article {R.pct(probe.get('l2_article'))}")
    q2 = "; ".join(parts) + ". "
    if "main" in w and w["main"]["smeared"]["knockout_rhyme_word"]["rate"] < 0.5:
        q2 += ("In the main model line 2 keeps <em>re-reading</em> line 1's rhyme word: hide it and the ending is lost. ")
    if "barrier" in w and w["barrier"]["smeared"]["knockout_site"]["rate"] < 0.5:
        q2 += ("In the barrier model the plan travels only through the line break. ")
    if "window" in w and "test" in w["window"]:
        t, s = w["window"]["test"], w["window"]["smeared"]
        q2 += (f"In the window world the end of line 2 cannot see line 1 at all, so anything it uses was carried "
               f"forward token by token: the rhyme survives that relay ({R.pct(t['rhyme'])} of test couplets rhyme) "
               f"but the meaning cue, farther back, mostly does not ({R.pct(t['meaning'])} fit the meaning); hiding "
               f"line 2's earlier words leaves the ending in {R.pct(s['knockout_earlier_line2']['rate'])}. A plan "
               "<em>can</em> be smeared, when the architecture forces it, and it fades with distance. ")
    q2 += ("Hiding line 2's own earlier words also breaks the line's grammar, so that knockout cannot by itself tell a "
           "smeared plan from syntax; what the words like the opener and the article do carry is the <em>shape</em> "
           f"of the ending (a/an, syllables), see backward planning ({link('smeared-worlds', 'table')}, "
           f"{link('backward', 'backward planning')}).")
    # Q3
    if "myopic" in res:
        m = res["myopic"]
        nl_normal = w.get("main", {}).get("smeared", {}).get("probe_along_line2", {}).get("nl")
        nl_myopic = w.get("myopic", {}).get("smeared", {}).get("probe_along_line2", {}).get("nl")
        q3 = (f"The myopic model (no gradient from later tokens into earlier ones) pays a myopia gap of "
              f"{m['gap']['ending']['gap']:+.3f} nats on the ending [{m['gap']['ending']['ci'][0]:+.3f}, "
              f"{m['gap']['ending']['ci'][1]:+.3f}] and {m['gap']['before_ending']['gap']:+.3f} on the words before it "
              f"({link('myopic', 'myopic training')}). The ending is readable at the line break in "
              f"{R.pct(nl_normal)} of prompts in the normal model but {R.pct(nl_myopic)} in the myopic one. ")
        if nl_normal is not None and nl_myopic is not None and nl_myopic < nl_normal - 0.2:
            q3 += ("So most of the early representation of the ending is <em>pre-cached</em>: it exists because gradients "
                   "from later tokens shaped it; only what the line break's own next word needs survives without them "
                   "(a breadcrumb). Training, not search at inference time, puts it there: the reader's \"baked in\". ")
        else:
            q3 += "The early representation survives myopic training, so it is a breadcrumb that pays for itself. "
    else:
        q3 = "Not run: train the myopic model with <code>python train.py --all</code>."
    # Q4
    q4 = ""
    for name, c in res.get("compositional", {}).get("by_model", {}).items():
        q4 += (f"<b>{name}</b>: on meaning×rhyme pairs never seen as endings, the right word is written in "
               f"{R.ci(c['heldout_accuracy'])} (chance {R.pct(c['chance'])}); adding a meaning step and a rhyme step at the "
               f"site writes the intersection in {R.pct(c['sum_test']['seen_cells']['rate'])} for seen pairs and "
               f"{R.pct(c['sum_test']['unseen_cells']['rate'])} for unseen ones. ")
    comp = list(res.get("compositional", {}).get("by_model", {}).values())
    if comp and all(c["heldout_accuracy"]["ci"][1] < c["chance"] for c in comp):
        q4 += ("Below chance: the models learned each (meaning, rhyme) ending as a unit and never write a word in a "
               "combination they did not see, even though they know its meaning and its rhyme separately. In this "
               "world the candidate is <em>not</em> composed from separately learned pieces. ")
    q4 += f"({link('compositional', 'details')})"
    items = [("Where is the planning state stored?", q1), ("Is the plan smeared over later tokens?", q2),
             ("Is it pre-planned, baked in by training?", q3),
             ("Is the ending an intersection of meaning and rhyme, composed from separate pieces?", q4)]
    body = "".join(f"<h3>{i + 1}. {q}</h3><p>{a}</p>" for i, (q, a) in enumerate(items))
    return f'<section id="answers" class="key"><h2>Answers to the reader\'s four questions</h2>{body}</section>'
