"""Where does the model plan line 2's ending, is the plan used, and can we redirect it?

`python analyze.py` loads out/model.pt, runs the experiments of planning.py on held-out line 1s
and writes out/report/index.html, out/report/results.json and a console summary. Every number,
figure and example in the report is computed here, by this run. Each report section is one
function below (`section_*`): it runs its experiment and returns (results, html).
"""
from dataclasses import dataclass, fields
import argparse
import json
import os
import sys
import time

import torch

from data import NOUNS, valid_endings, world_from_dict
from model import GPT, load_checkpoint, CheckpointError
import planning as P
import interventions as I
import questions as Q
import report as R
import your_couplet as YC
import features as FS


@dataclass(frozen=True)
class AnalyzeConfig:
    checkpoint: str = "out/model.pt"
    out: str = "out/report"
    n_prompts: int = 300        # held-out line 1s per experiment
    n_fit: int = 1500           # training line 1s to fit probes and directions
    n_calibrate: int = 200      # training line 1s to pick intervention scales
    seed: int = 0


class Ctx:
    """What every section needs: the model, an untrained twin, the world and the prompt sets."""

    def __init__(self, model, world, cfg):
        self.model, self.world, self.cfg = model, world, cfg
        torch.manual_seed(cfg.seed + 1)
        self.control = GPT(model.cfg).eval()  # random-init control for the probes
        self.layers = P.layer_hooks(model.cfg)
        self.layer_names = [f"L{i}" for i in range(len(self.layers))]
        train_lines = [c.line1 for c in world.split("train")]
        self.held = [c.line1 for c in world.split("test")[:cfg.n_prompts]]
        self.fit = train_lines[:cfg.n_fit]
        self.calib = train_lines[cfg.n_fit:cfg.n_fit + cfg.n_calibrate]
        self.held_l2 = P.complete(model, world, self.held)
        self.fit_l2 = P.complete(model, world, self.fit)
        self.held_end = [P.ending(l) for l in self.held_l2]


def written_pairs(lines, l2s):
    """(line 1, line 2) pairs whose line 2 has the couplet's shape (opener ... article noun), so every
    line-2 role has a position; the label is whatever ending the model wrote."""
    return [(a, b) for a, b in zip(lines, l2s) if len(b) >= 5 and b[-1] in NOUNS]


# ---- sections ------------------------------------------------------------------------------------
def section_probes(ctx):
    res = P.probe_experiment(ctx.model, ctx.control, ctx.world, written_pairs(ctx.fit, ctx.fit_l2),
                             written_pairs(ctx.held, ctx.held_l2), ctx.layers)
    e = res["ending"]
    figs = []
    for target in ("ending", "family", "meaning"):
        r = res[target]
        figs.append(R.heatmap_svg(r["trained"], ctx.layer_names, r["roles"], f"probe: {target} (trained model)"))
    figs.append(R.heatmap_svg(e["random_init"], ctx.layer_names, e["roles"], "control: random-init model"))
    figs.append(R.heatmap_svg(e["shuffled_labels"], ctx.layer_names, e["roles"], "control: shuffled labels"))
    best = {role: max(row[j] for row in e["trained"] if row[j] is not None)
            for j, role in enumerate(e["roles"]) if any(row[j] is not None for row in e["trained"])}
    res["best_ending_accuracy_by_role"] = best
    html = f"""<section id="probes"><h2>1. Probes: is the future ending present?</h2>
<p>A linear probe (ridge regression onto one-hot labels, fit on {e['n_fit']} training line 1s, scored on
{e['n_held']} held-out ones) tries to read the line-2 ending the model will write from the residual stream at each
layer (rows; L0 = embeddings, L{len(ctx.layers) - 1} = final) and each position (columns: line 1's roles, the line
break <code>nl</code>, then line 2's tokens before the ending). Chance (always the most common ending) is
{R.pct(e['majority_baseline'])}. Two controls sit beside it: the same probes on an untrained model, and probes fit to
shuffled labels. A probe only shows the information is <em>there</em>; sections 2–6 test whether it is <em>used</em>.</p>
{''.join(figs)}
<p>Best ending accuracy at the line break: {R.pct(best.get('nl'))}; at line 1's rhyme word: {R.pct(best.get('rhyme'))};
at the article just before the ending: {R.pct(best.get('l2_article'))}.</p></section>"""
    return res, html


def section_patching(ctx, probes):
    out, figs = {}, []
    for slot in ("rhyme", "cue"):
        pairs = P.swap_pairs(ctx.world, ctx.held, slot, ctx.cfg.seed)
        out[slot] = P.patching_experiment(ctx.model, ctx.world, pairs, ctx.layers, P.role_order(ctx.held))
    nl = probes["ending"]["roles"].index("nl")
    site = P.fallback_to_readable_newline(P.choose_site(out["rhyme"], out["cue"]),
                                          [row[nl] for row in probes["ending"]["trained"]], out["rhyme"], out["cue"])
    out["planning_site"] = site
    for slot, what in (("rhyme", "pairs differing in line 1's rhyme word"), ("cue", "pairs differing in the meaning cue")):
        m = out[slot]
        mark = (site["layer"], m["roles"].index(site["position"])) if site["position"] in m["roles"] else None
        figs.append(R.heatmap_svg(m["rates"], ctx.layer_names, m["roles"],
                                  f"patching, {what} (n={m['n']})", mark=mark))
    both = [[None if r is None or c is None else min(r, c) for r, c in zip(rr, cr)]
            for rr, cr in zip(out["rhyme"]["rates"], out["cue"]["rates"])]
    out["plan_score"] = both
    figs.append(R.heatmap_svg(both, ctx.layer_names, out["rhyme"]["roles"], "plan score = min of the two",
                              mark=(site["layer"], out["rhyme"]["roles"].index(site["position"]))))
    nl = out["rhyme"]["roles"].index("nl")
    nl_best = max((both[l][nl] for l in range(len(ctx.layers)) if both[l][nl] is not None), default=0)
    out["newline_best_plan_score"] = nl_best
    html = f"""<section id="patching"><h2>2. Activation patching: where is the ending decided and used?</h2>
<p>Take two line 1s that differ in one word, A and B. Run B, copy its residual stream at one (layer, position)
into A's run, and let the model write line 2. A cell is the share of pairs where A's line 2 now ends with B's
ending. Left: pairs whose line-1 rhyme word differs (another rhyme family); middle: pairs whose meaning cue differs
(another meaning). Copying the rhyme word's own embedding trivially carries the word, so a cell is a
<em>plan</em> only if it moves the ending for both kinds of pairs: the ending is the intersection of rhyme and
meaning. <b>Rule:</b> the planning site is the cell with the highest min(rhyme rate, cue rate), ties to the earlier
layer (outlined in red).</p>{''.join(figs)}
<p class="key">Chosen planning site: <b>{site['position']}</b> at layer <b>L{site['layer']}</b>
(<code>{site['hook']}</code>): patching it moves the ending in {R.pct(site['rhyme_rate'])} of rhyme pairs and
{R.pct(site['cue_rate'])} of cue pairs. The best plan score at the line break itself is {R.pct(nl_best)}.
{"" if site["carries_plan"] else
 f"<b>No cell reaches half of both kinds of pairs: no single place carries the plan</b> (best cell: "
 f"{site['best_cell']['position']} @ L{site['best_cell']['layer']}, {R.pct(site['best_cell']['score'])}). Only the raw "
 "tokens move the ending (line 1's rhyme word and cue at L0), so line 2 re-reads line 1 instead of consulting a "
 "stored plan. Sections 3–7 therefore run where the study found the plan and where the ending is most readable: "
 "the line break, at its best ending-probe layer."}</p></section>"""
    return out, html


def section_interventions(ctx, site):
    """Directions, suppression, injection, sweep and backward planning, all at the chosen site."""
    res = I.run_interventions(ctx.model, ctx.world, site, ctx.fit, ctx.held, ctx.calib, ctx.cfg.seed)
    roles = list(res["sweep"]["rates_by_position"])
    return res, _interventions_html(res, site, roles, res["sweep"]["by_position_with_ci"])


def _interventions_html(res, site, roles, by_role):
    inj, sup, sw, bw = res["injection"], res["suppression"], res["sweep"], res["backward"]
    ex_inj = "".join(R.couplet(e["line1"], e["after"], f"injected '{e['injected']}'; unedited: {e['before']}")
                     for e in inj["examples"][:2])
    ex_sup = "".join(R.couplet(e["line1"], e["after"], f"unedited: {e['before']}") for e in sup["examples"][:2])
    bars = R.bars_svg([by_role[r]["rate"] for r in roles], roles,
                      f"injection rate by position (layer L{site['layer']})", highlight=site["position"])
    one = sup["single_ending_prompts"]
    bi, bs = bw["injection"], bw["suppression"]
    bex = "".join(R.couplet(e["line1"], e["after"], f"unedited: {e['before']}") for e in bi["examples"][:2])
    return f"""<section id="directions"><h2>3. Planned-word directions</h2>
<p>For each ending word w we take the mean residual at the site over training prompts whose line 2 ends in w, minus
the mean over all prompts ({res['directions']['n_words']} words with at least 5 prompts). Mean differences point from
"average" to "planning w" in the model's own units, which is what an intervention should add. Specificity: in the
injection run below, {R.pct(res['directions']['specific_share'])} of the directions make their own word the most
common ending.</p></section>
<section id="suppression"><h2>4. Suppression: the "rabbit → habit" experiment</h2>
<p>On held-out prompts whose world allows a runner-up ending, we remove the planned ending's direction at the site
(subtract {sup['scale']:g}× its projection; the scale was picked on separate calibration prompts). Share whose line
2 now ends with <em>another valid ending</em>: <b>{R.ci(sup)}</b>.</p>{ex_sup}
<p>On the {one['n']} prompts with a single valid ending, the model wrote instead:
{R.esc(', '.join(f"{k}: {v}" for k, v in one['outcomes'].items()))}.</p></section>
<section id="injection"><h2>5. Injection: the "green" experiment</h2>
<p>We pick a word from a <em>different</em> rhyme family and steer the site towards it: add
{inj['scale']:g}× (d<sub>injected</sub> − d<sub>planned</sub>), the step from "planning the clean ending" to
"planning the injected word" (scale picked on calibration prompts). Share of held-out prompts whose line 2 ends with
the injected word: <b>{R.ci(inj)}</b> (the study: 70% of 25 poems). Adding d<sub>injected</sub> alone, on top of the
prompt's own plan, gives {R.ci(inj['add_only'])} at its best scale ({inj['add_only']['scale']:g}×).</p>{ex_inj}</section>
<section id="sweep"><h2>6. Position sweep</h2>
<p>The same injection (same layer, same scale) applied at one position at a time. If the plan lives at the site,
only the site should work.</p>{bars}
<p>Site ÷ best other position = <b>{sw['site_to_best_other_ratio']:.1f}</b> (best other position:
{R.pct(sw['best_other_rate'])}; the ratio's denominator is floored at 1/n).</p></section>
<section id="backward"><h2>7. Backward planning: do the words before the ending follow the plan?</h2>
<p>When an intervention changes the ending, line 2's earlier words must change too: the article (a/an), the
opener's length (the meter: line 2 has a fixed syllable count) and the verb (it suits the ending's meaning).
Under injection: article right {R.ci(bi['article_adapts'])} (prompts whose new ending needs the other article);
meter right {R.ci(bi['meter_adapts'])}; verb right {R.ci(bi['verb_adapts'])}. Under suppression: article
{R.ci(bs['article_adapts'])}; meter {R.ci(bs['meter_adapts'])}.</p>{bex}</section>"""


def section_features(ctx, site):
    """Cross-layer transcoder, attribution graph and planned-word features at the site (features.py);
    the transcoder is cached beside the checkpoint and retrained only when the model changes."""
    clt_path = os.path.join(os.path.dirname(ctx.cfg.checkpoint) or ".", "clt.pt")
    res, html = FS.features_section(ctx.model, ctx.world, site, ctx.cfg.out, seed=ctx.cfg.seed,
                                    n_prompts=min(200, ctx.cfg.n_prompts), clt_path=clt_path)
    return {k: res[k] for k in ("transcoder", "graph", "features")}, html


def section_smeared(ctx, site, probes):
    """Is the plan carried along line 2, or re-read from line 1 at the end?"""
    out = {"probe_along_line2": {r: probes["best_ending_accuracy_by_role"].get(r)
                                 for r in ["nl"] + P.LINE2_ROLES},
           **Q.knockouts(ctx.model, ctx.world, ctx.held, ctx.held_end, site)}
    row = [out["probe_along_line2"][r] for r in ["nl"] + P.LINE2_ROLES]
    bars = R.bars_svg(row, ["nl"] + P.LINE2_ROLES, "ending probe accuracy along line 2")
    html = f"""<section id="smeared"><h2>8. Is the plan smeared over line 2?</h2>
<p>Left: the best probe accuracy for the ending at each line-2 position (before the ending is written). Then an
attention knockout: every line-2 position is forbidden to attend to one prompt position (its attention score set to
−∞ in every layer) while the model writes line 2; how often does the ending survive?</p>{bars}
{R.table([["planning site (" + site['position'] + ")", R.ci(out['knockout_site'])],
          ["line 1's rhyme word", R.ci(out['knockout_rhyme_word'])],
          ["the meaning cue", R.ci(out['knockout_cue'])],
          ["line 2's own earlier words", R.ci(out['knockout_earlier_line2'])]], ["line 2 cannot see", "ending survives"])}
</section>"""
    return out, html


def section_questions(ctx, results):
    """Worlds, smeared, myopic and compositional sections (when `train.py --all` made the variants)."""
    variants = Q.load_variants(ctx.cfg.checkpoint)
    if not variants:
        return None, ""
    main = {"patching": {s: {k: results["patching"][s][k] for k in ("rates", "roles", "n")} for s in ("rhyme", "cue")},
            "planning_site": results["planning_site"], "injection_rate": results["injection"]["site_rate"],
            "injection": results["injection"], "suppression": results["suppression"], "sweep": results["sweep"],
            "smeared": results["smeared"]}  # section 8 already measured the main model
    worlds = {"main": main}
    worlds["main"]["test"] = {k: results["train_metrics"]["test"][k] for k in ("rhyme", "meaning", "valid", "n")}
    for name, (model, world, ckpt) in variants.items():
        worlds[name] = Q.world_study(model, world, ctx.held[:200], ctx.fit, ctx.calib, ctx.cfg.seed)
        worlds[name]["test"] = {k: ckpt["metrics"]["test"][k] for k in ("rhyme", "meaning", "valid", "n")}
    results["worlds"] = worlds
    html = Q.worlds_html(worlds) + Q.smeared_html(worlds)
    if "myopic" in variants:
        m = Q.section_myopic(ctx.model, ctx.world, variants["myopic"], main)
        for name in ("normal", "myopic"):
            w = worlds["main" if name == "normal" else "myopic"]
            m[name].update(site=f"{Q.site_name(w['planning_site'])} "
                                f"({R.pct(w['planning_site']['score'])})", injection=w["injection"])
        m["normal"]["valid"] = results["train_metrics"]["test"]["valid"]
        results["myopic"] = m
        html += Q.myopic_html(m)
    by_model = {}
    for name in ["main"] + [n for n in ("barrier",) if n in variants]:
        model, world = (ctx.model, ctx.world) if name == "main" else variants[name][:2]
        by_model[name] = Q.section_compositional(model, world, worlds[name]["planning_site"], ctx.fit,
                                                 seed=ctx.cfg.seed)
    # headline: the main model's holdout; the sum test where steering works best (a real site)
    steerable = max(by_model, key=lambda n: worlds[n]["injection_rate"])
    results["compositional"] = {"heldout_accuracy": by_model["main"]["heldout_accuracy"],
                                "chance": by_model["main"]["chance"],
                                "sum_test_rate": by_model[steerable]["sum_test_rate"], "sum_test_model": steerable,
                                "by_model": by_model}
    html += Q.compositional_html(by_model)
    return None, html


# ---- main ------------------------------------------------------------------------------------------
def load(cfg):
    """(model, world, checkpoint) or CheckpointError with a one-line reason."""
    model, ckpt = load_checkpoint(cfg.checkpoint)
    try:
        world = world_from_dict(ckpt["world_config"])
    except (TypeError, KeyError):
        raise CheckpointError(f"{cfg.checkpoint}: world config not understood; retrain with `python train.py`") from None
    if ckpt["vocab"] != world.itos:
        raise CheckpointError(f"{cfg.checkpoint}: vocabulary differs from this code's world; retrain")
    return model, world, ckpt


def run(cfg, log=print):
    model, world, ckpt = load(cfg)
    os.makedirs(cfg.out, exist_ok=True)  # fail now, not after the experiments, if --out is unusable
    with open(os.path.join(cfg.out, ".write-test"), "w"):
        pass
    os.remove(os.path.join(cfg.out, ".write-test"))
    torch.manual_seed(cfg.seed)
    times, results, sections = {}, {"checkpoint": cfg.checkpoint, "train_metrics": ckpt["metrics"]}, []

    def stage(name, fn, *args):
        t = time.time()
        res, html = fn(*args)
        times[name] = round(time.time() - t, 2)
        log(f"  {name}: {times[name]} s")
        sections.append(html)
        return res
    t0 = time.time()
    ctx = Ctx(model, world, cfg)
    times["setup"] = round(time.time() - t0, 2)
    results["n_prompts"] = len(ctx.held)
    results["probes"] = stage("probes", section_probes, ctx)
    results["patching"] = stage("patching", section_patching, ctx, results["probes"])
    site = results["patching"]["planning_site"]
    results["planning_site"] = site
    results.update(stage("interventions", section_interventions, ctx, site))
    results.update(stage("features", section_features, ctx, site))
    results["smeared"] = stage("smeared", section_smeared, ctx, site, results["probes"])
    stage("questions", section_questions, ctx, results)
    results["seconds"] = times
    results["seconds_total"] = round(time.time() - t0, 1)
    os.makedirs(cfg.out, exist_ok=True)
    with open(os.path.join(cfg.out, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    with open(os.path.join(cfg.out, "index.html"), "w") as f:
        answers = Q.answers_html(results) if "worlds" in results else \
            '<p class="key">Only the main model is present: <code>python train.py --all</code> adds the variant ' \
            "models that the answers to the reader's questions need.</p>"
        f.write(R.page("Planning in a tiny poet", intro_html(results, ctx) + answers, sections))
    return results


def intro_html(results, ctx):
    m = results["train_metrics"]
    t = m.get("test", {})
    examples = "".join(R.couplet(" ".join(l), " ".join(l2)) for l, l2 in zip(ctx.held[:3], ctx.held_l2[:3]))
    return f"""<p>A {ctx.model.cfg.n_layer}-layer, {ctx.model.cfg.d_model}-wide transformer trained from scratch on
synthetic rhyming couplets writes line 2 for held-out line 1s: valid {R.pct(t.get('valid'))} of {t.get('n')} test
prompts. Does it decide the last word of line 2 before writing line 2, where is that decision stored, and does it use
it? This report answers with probes, patching and interventions on {results['n_prompts']} held-out line 1s.
Some couplets it wrote (line 1 is the prompt):</p>{examples}"""


def summary(results):
    s, inj, sup, sw = results["planning_site"], results["injection"], results["suppression"], results["sweep"]
    return (f"planning site: {s['position']} @ L{s['layer']} (plan score {s['score']:.2f})\n"
            f"injection: {R.ci(inj)}\nsuppression (switch to runner-up): {R.ci(sup)}\n"
            f"sweep site/best-other: {sw['site_to_best_other_ratio']:.1f}\n"
            f"total {results['seconds_total']} s")


class ArgumentParser(argparse.ArgumentParser):
    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def main(argv=None):
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    for f in fields(AnalyzeConfig):
        parser.add_argument("--" + f.name.replace("_", "-"), type=type(f.default), default=f.default,
                            help="(default: %(default)s)")
    parser.add_argument("--prompt", help="your own line 1 (words from --list-words): line 2, the plan, suppression")
    parser.add_argument("--list-words", action="store_true", help="print the vocabulary by rhyme family and meaning")
    args = parser.parse_args(argv)
    prompt, list_only = args.prompt, args.list_words
    del args.prompt, args.list_words
    cfg = AnalyzeConfig(**vars(args))
    for name in ("n_prompts", "n_fit", "n_calibrate"):
        if getattr(cfg, name) < 20:
            print(f"analyze.py: error: --{name.replace('_', '-')} must be at least 20", file=sys.stderr)
            return 2
    try:
        if list_only:
            print(YC.list_words(load(cfg)[1]))
            return 0
        if prompt is not None:
            model, world, _ = load(cfg)
            fit = [c.line1 for c in world.split("train")[:cfg.n_fit]]
            line1, line2, _ = YC.run_prompt(model, world, prompt, os.path.join(cfg.out, "results.json"), fit)
            if len(line2) >= 2 and line2[-1] in world.stoi:
                clt_path = os.path.join(os.path.dirname(cfg.checkpoint) or ".", "clt.pt")
                print("attribution graph:", YC.write_prompt_graph(model, world, line1, line2, clt_path, cfg.out))
            return 0
        results = run(cfg)
    except YC.PromptError as e:
        print(f"analyze.py: error: {e}", file=sys.stderr)
        return 2
    except P.AnalysisError as e:  # the experiments cannot run on this model
        print(f"analyze.py: error: {e}", file=sys.stderr)
        return 1
    except CheckpointError as e:
        print(f"analyze.py: error: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"analyze.py: error: cannot write the report ({e.strerror}: {e.filename}); choose another --out",
              file=sys.stderr)
        return 1
    print(summary(results))
    print(f"report: {os.path.join(cfg.out, 'index.html')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
