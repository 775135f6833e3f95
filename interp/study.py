"""One study for every model: `study(model, world, cfg)` runs every experiment and returns a dict.

The main model and every variant go through this one function, so every comparison is like for like.
Steps:
  1. quality        greedy line 2s on test line 1s, judged by couplet_rules.check_couplet
  2. prompts        three disjoint sets (fit / select / report); clean line 2s written once
  3. probes         family, meaning, ending-word and ending-length probes at every (layer, role),
                    beside a random-init model and shuffled labels
  4. sites          family, meaning and joint sites chosen on *select* pairs by single-layer patching
                    (interp/patching.choose_causal_sites); the probes' most readable cells beside them
  5. patching       rhyme-swap and cue-swap pairs: normalized logit-difference effects, single-layer
                    and full-column, at prompt and line-2 positions; free-generation top-1 beside them
  6. directions     mean-difference and contrastive word directions at the intervention site (fit prompts)
  7. injection      add-only dose-response with its random control (scale chosen on select), for
                    words of another rhyme, another meaning, and both; steer and class-mean replace as
                    secondary rows
  8. suppression    contrastive directions, counted only where the edit is not zero, free and
                    opener-forced
  9. sweep          add-only of one-fact words at every (layer, prompt role), directions fit and
                    scale chosen at each cell on select; the best other cell chosen on select too
 10. ending probe   the ending-word probe at the line break beside the cell's favourite ending
 11. shape          (worlds with a meter) the line's shape: total, direct and mediated effects of the
                    line break on the ending; opener-length patching; green and habit at the line
                    break, judged by the couplet written (interp/shape.py)
 12. ablation       resample ablation of keys/values at nl, rhyme, cue and a control position
 13. composition    held-out (cue word, family) pairs: behaviour, probes, additivity
 14. clt            (optional) a cross-layer transcoder judged at the ending token, with an
                    untrained transcoder's graph scores as the floor
`headline(result)` flattens the numbers the README and the worlds table quote.
"""
from collections import Counter
from dataclasses import dataclass, asdict

import torch

from data import ROLES
from couplet_rules import roles as roles_of
from lexicon import NOUNS
from model import GPT
from interp import interventions as iv
from interp.attribution import couplet_graph, graph_scores, kept_graph, prune
from interp.composition import composition
from interp.directions import word_directions, contrastive
from interp.edits import ending, resid_hooks
from interp.patching import patching, choose_causal_sites
from interp.probes import by_role, labels, probe_maps, choose_sites, cell_favourite_rate
from interp import shape
from interp.prompts import Clean, prompt_sets, swap_pairs, well_formed
from interp.quality import evaluate
from interp.stats import rate
from interp.planned_features import planned_word_features, planned_length_features
from interp.supernodes import feature_label, summary_graph
from interp.transcoder import CLTConfig, get_clt, ending_fidelity, random_dictionary

SUPPRESS_SCALES = (1.0, 2.0, 4.0, 8.0)
ABLATION_ROLES = ("nl", "rhyme", "cue", "seen")  # "seen" (line 1's verb): the control position


@dataclass(frozen=True)
class StudyConfig:
    n_fit: int = 800         # training line 1s: probes and directions
    n_select: int = 150      # held-out line 1s: sites and scales
    n_report: int = 300      # other held-out line 1s: every reported rate
    n_pairs: int = 150       # swap pairs per slot (patching)
    n_quality: int = 500     # test line 1s for the quality rates
    n_sweep: int = 100       # report prompts per sweep cell
    clt: bool = True         # train and judge a cross-layer transcoder (seed 0 of each model only)
    clt_features: int = 128
    clt_compare: str = "256,512"  # other dictionary sizes judged at the ending token (main model, seed 0)
    clt_steps: int = 800
    seed: int = 0

    def validate(self):
        for k, v in asdict(self).items():
            if k.startswith("n_") and not 1 <= v <= 100_000:
                raise ValueError(f"--{k.replace('_', '-')} must be in [1, 100000], got {v}")
        if any(not x.strip().isdigit() for x in self.clt_compare.split(",") if x.strip()):
            raise ValueError(f"--clt-compare is a comma-separated list of dictionary sizes, got {self.clt_compare!r}")
        if not 0 <= self.seed < 2 ** 32:
            raise ValueError(f"--seed must be in [0, 2**32), got {self.seed}")
        if self.clt_features < 1 or self.clt_steps < 1:
            raise ValueError("--clt-features and --clt-steps must be at least 1")
        return self


def random_init(model, seed):
    """A model of the same shape with fresh weights: the control of every probe and site."""
    torch.manual_seed(seed)
    return GPT(model.cfg).eval()


def study(model, world, cfg=StudyConfig(), progress=lambda stage: None, clt_path=None):
    if world.config.epithet:  # its probes, runner-ups and features would score the noun after the epithet it copies
        raise ValueError("the study scores the ending noun; an --epithet world is measured by the world search "
                         "(python worlds.py --search) alone")
    model.eval()
    L = model.cfg.n_layer
    out = {"config": asdict(cfg), "n_layer": L}
    progress("quality")
    out["quality"] = {k: v for k, v in evaluate(model, world, "test", cfg.n_quality).items()}

    sets = prompt_sets(world, cfg.n_fit, cfg.n_select, cfg.n_report)
    clean = Clean(model, world)
    named = {"fit": sets.fit, "select": sets.select, "report": sets.report}
    l2 = {k: clean(v) for k, v in named.items()}
    out["prompts"] = {k: len(v) for k, v in named.items()}

    progress("probes")
    control = random_init(model, cfg.seed + 1)
    acts = {k: by_role(model, world, named[k], l2[k]) for k in named}
    present = [r for r in acts["report"][1] if all(r in acts[k][1] for k in named)]
    acts = {k: v[0] for k, v in acts.items()}
    control_acts = {k: by_role(control, world, named[k], l2[k])[0] for k in named}
    y = {k: {t: labels(world, named[k], l2[k], t) for t in ("family", "meaning", "ending", "length")} for k in named}
    hooks = resid_hooks(model.cfg)
    maps = probe_maps(acts, control_acts, y, hooks, present)
    out["probes"] = maps
    prompt_roles = [r for r in present if ROLES.index(r) <= ROLES.index("nl")]
    out["readable_sites"] = choose_sites(maps, list(range(1, L)), prompt_roles)

    progress("patching")
    out["patching"] = {slot: patching(model, world, swap_pairs(world, sets.report, slot, cfg.seed)[:cfg.n_pairs],
                                      clean, seed=cfg.seed) for slot in ("rhyme", "cue")}
    select_patching = {slot: patching(model, world, swap_pairs(world, sets.select, slot, cfg.seed + 1)[:cfg.n_pairs],
                                      clean, columns=prompt_roles, free=False, seed=cfg.seed, only_layers=range(1, L))
                       for slot in ("rhyme", "cue")}
    sites = choose_causal_sites(select_patching, out["patching"], list(range(1, L)), prompt_roles)
    out["sites"] = sites
    if not sites:
        out["skipped"] = "no site could be chosen (too few swap pairs with two different clean endings)"
        return out
    joint = sites["intervention"]
    site = iv.Site(joint["layer"], joint["role"])
    fit_end = [ending(x) if well_formed(x) else None for x in l2["fit"]]

    def dirs_at(layer, role):
        return word_directions(acts["fit"][hooks[layer]][role], fit_end)

    progress("interventions")
    dirs, means = dirs_at(site.layer, site.role)
    cdirs = contrastive(dirs)
    out["directions"] = {"n_words": len(dirs), "site": site.as_dict(),
                         "cell_mate_cosine": cell_mate_cosine(dirs)}
    planned = {k: [ending(x) if well_formed(x) else None for x in l2[k]] for k in ("select", "report")}
    inj = {}
    tgt = {kind: {k: iv.injection_targets(world, named[k], planned[k], dirs, kind, cfg.seed) for k in planned}
           for kind in iv.KINDS}
    for kind in iv.KINDS:
        curve_sel = iv.add_only(model, world, site, sets.select, tgt[kind]["select"], dirs, seed=cfg.seed)
        scale = iv.best_scale(curve_sel)
        curve = iv.add_only(model, world, site, sets.report, tgt[kind]["report"], dirs, seed=cfg.seed)
        inj[kind] = {"scale": float(scale), "curve_select": curve_sel, "add_only": curve,
                     **iv.secondary_rows(model, world, site, sets.report, tgt[kind]["report"], planned["report"], dirs,
                                         means)}
    out["injection"] = inj

    runners = {k: iv.runner_ups(model, world, named[k], l2[k]) for k in ("select", "report")}
    by_scale = {s: iv.suppress(model, world, site, sets.select, l2["select"], runners["select"], cdirs, s)
                for s in SUPPRESS_SCALES}
    s_best = max(SUPPRESS_SCALES, key=lambda s: (by_scale[s]["opener_forced"]["runner_up_rate"]["rate"] or 0, -s))
    out["suppression"] = {"directions": "contrastive", "scale": s_best,
                          "select_runner_up_by_scale": {str(s): v["opener_forced"]["runner_up_rate"]
                                                        for s, v in by_scale.items()},
                          **iv.suppress(model, world, site, sets.report, l2["report"], runners["report"], cdirs, s_best)}

    progress("sweep")
    n = cfg.n_sweep
    out["sweep"] = {}
    for kind, at_site in (("other_rhyme", sites["family"]), ("other_meaning", sites["meaning"])):
        out["sweep"][kind] = iv.sweep(model, world, (sets.select[:n], tgt[kind]["select"][:n]),
                                      (sets.report[:n], tgt[kind]["report"][:n]), lambda l, r: dirs_at(l, r)[0],
                                      list(range(L)), prompt_roles, iv.Site(at_site["layer"], at_site["role"]),
                                      seed=cfg.seed)
    out["ending_probe"] = ending_probe(world, maps, named, l2)

    progress("shape")
    out["effects"] = {slot: shape.effects(model, world, swap_pairs(world, sets.report, slot, cfg.seed)[:cfg.n_pairs],
                                          clean) for slot in ("rhyme", "cue")}
    out["shape"] = shape_section(model, world, sets, clean, l2, runners, acts, hooks, prompt_roles, cfg) \
        if shape.has_meter(world) else {"skipped": "this world has no meter: line 2's opener does not depend on "
                                                   "the ending"}

    progress("ablation")
    out["ablation"] = iv.resample(model, world, sets.report, l2["report"], ABLATION_ROLES, cfg.seed)
    progress("composition")
    out["composition"] = composition(model, world, sets.fit, sets.report, site, cfg.n_report)
    if cfg.clt:
        progress("transcoder")
        out["clt"] = clt_section(model, world, cfg, sets.report, l2["report"], runners["report"], clt_path)
    return out


def cell_mate_cosine(dirs):
    """Mean cosine of mean-difference directions of words sharing a (meaning, family) cell, and of
    words sharing neither: why suppression needs contrastive directions."""
    words = sorted(dirs)
    same, other = [], []
    for i, a in enumerate(words):
        for b in words[i + 1:]:
            c = torch.nn.functional.cosine_similarity(dirs[a], dirs[b], 0).item()
            na, nb = NOUNS[a], NOUNS[b]
            if (na.meaning, na.family) == (nb.meaning, nb.family):
                same.append(c)
            elif na.meaning != nb.meaning and na.family != nb.family:
                other.append(c)
    mean = lambda xs: sum(xs) / len(xs) if xs else None
    return {"same_cell": mean(same), "n_same": len(same), "unrelated": mean(other), "n_unrelated": len(other)}


def ending_probe(world, maps, named, l2):
    """The ending-word probe at the line break, every layer (one place common to every model), beside
    its random-init control and the baseline it must beat: the cell's favourite ending (greedy endings
    are nearly a function of the cell, so reading the cell alone scores that much)."""
    j = maps["roles"].index("nl")
    m = maps["ending"]
    return {"layers": maps["layers"], "probe": [row[j] for row in m["trained"]["report"]],
            "random_init": [row[j] for row in m["random_init"]["report"]],
            "cell_favourite": cell_favourite_rate(world, named["fit"], l2["fit"], named["report"], l2["report"])}


def shape_section(model, world, sets, clean, l2, runners, acts, hooks, prompt_roles, cfg):
    """The shape plan (interp/shape.py): opener-length patching on select (the line break's layer) and
    report pairs (every prompt position), the length probe, and green / habit at the line break."""
    def rows(line1s, seed):
        return shape.shape_pairs(world, [p for slot in ("rhyme", "cue")
                                         for p in swap_pairs(world, line1s, slot, seed)[:cfg.n_pairs]], clean)
    sel, rep = rows(sets.select, cfg.seed + 1), rows(sets.report, cfg.seed)
    layer = shape.choose_layer(shape.shape_patching(model, world, sel, ["nl"]))
    grid = shape.shape_patching(model, world, rep, prompt_roles)
    named = {"fit": sets.fit, "select": sets.select, "report": sets.report}
    out = {"n_select_pairs": len(sel), "n_pairs": len(rep), "layer": layer, "layers": [f"L{l}" for l in range(len(hooks))],
           "roles": prompt_roles, "map": {r: [c["opener"]["rate"] for c in grid[r]] for r in prompt_roles},
           "control_role": shape.CONTROL_ROLE}
    if layer is not None:
        out["site"] = grid["nl"][layer]
        out["control"] = grid[shape.CONTROL_ROLE][layer] if shape.CONTROL_ROLE in grid else None
    out.update(shape.green_and_habit(model, world, named, l2, runners, acts, hooks, cfg.seed))
    return out


def clt_section(model, world, cfg, line1s, line2s, runners, path):
    """A CLT judged where the plan is used, graph scores with an untrained CLT as the floor, and
    planned-word features at the line break."""
    ok = [i for i, x in enumerate(line2s) if well_formed(x)][:100]
    l1s, l2s = [line1s[i] for i in ok], [line2s[i] for i in ok]
    if not ok:
        return {"skipped": "no report prompt has a well-formed line 2"}
    clt, info = get_clt(model, world, path, CLTConfig(n_features=cfg.clt_features, steps=cfg.clt_steps,
                                                       seed=cfg.seed))
    untrained = random_dictionary(model, world, cfg.clt_features, info["l0"], cfg.seed)
    scores = {}
    for name, c in (("trained", clt), ("untrained", untrained)):
        rows = [graph_scores(couplet_graph(model, c, world, a, b)) for a, b in zip(l1s[:8], l2s[:8])]
        scores[name] = {"replacement": sum(r[0] for r in rows) / len(rows),
                        "completeness": sum(r[1] for r in rows) / len(rows), "n_graphs": len(rows)}
    sizes = {}
    for n in [int(x) for x in cfg.clt_compare.split(",") if x.strip()]:
        other, other_info = get_clt(model, world, path.replace(".pt", f"_{n}.pt") if path else None,
                                    CLTConfig(n_features=n, steps=cfg.clt_steps, seed=cfg.seed))
        sizes[str(n)] = {"l0": other_info["l0"], "dead_fraction": other_info["dead_fraction"],
                         "ending_token": ending_fidelity(model, world, other, l1s, l2s)}
    return {"n_features": cfg.clt_features, "featured": featured_graph(model, clt, world, l1s[0], l2s[0]),
            "other_sizes": sizes,
            "all_tokens": {k: info[k] for k in
            ("fvu", "l0", "dead_fraction", "loss_clean", "loss_clt", "loss_recovered")},
            "ending_token": ending_fidelity(model, world, clt, l1s, l2s), "graph_scores": scores,
            "planned_word_features": planned_word_features(model, clt, world, l1s, l2s, [runners[i] for i in ok]),
            **({"planned_length_features": length_features(model, clt, world, line1s, line2s)}
               if shape.has_meter(world) else {})}


def length_features(model, clt, world, line1s, line2s):
    """Planned-length features at the line break (interp/planned_features.py), with the automatic labels
    of the three that pass most often."""
    out = planned_length_features(model, clt, world, line1s, line2s)
    counts = Counter(f for h in out.pop("features") for f in h)
    with torch.no_grad():
        out["top"] = [{"layer": l, "feature": f, "prompts": k, "label": feature_label(model, clt, world, l, f)}
                      for (l, f), k in counts.most_common(3)]
    return out


def featured_graph(model, clt, world, line1, line2):
    """One couplet's pruned attribution graph: as at most eight labelled boxes (interp/supernodes.py)
    and in full (every kept node and edge, for the viewer)."""
    graph = couplet_graph(model, clt, world, line1, line2)
    node_mask, edge_mask, node_inf = prune(graph)
    kept = [i for i in range(graph.n_features) if node_mask[i]]
    with torch.no_grad():
        labels = {i: feature_label(model, clt, world, int(graph.features[i, 0]), int(graph.features[i, 2]))
                  for i in kept}
    words = world.decode(graph.tokens.tolist())
    roles = roles_of(line1, line2[:-1], world.config)
    targets = [world.itos[i] for i in graph.logit_ids.tolist()]
    summary = summary_graph(graph, roles, node_mask, edge_mask, node_inf, labels, words, targets)
    return {"couplet": " ".join(line1) + " / " + " ".join(line2), "kept_features": len(kept),
            "replacement": graph_scores(graph)[0], **summary,
            "graph": kept_graph(graph, node_mask, edge_mask, node_inf, words, targets, labels)}


# ---- the headline ------------------------------------------------------------------------------------
# Each key has one meaning in every model and seed: a rate is over the edits that exist, its n beside it
# (`<key>_n`), and where a site differs between seeds the site is a key of its own, never averaged.
HEADLINE = ("valid", "nl_ld_rhyme", "nl_ld_cue",
            "total_effect_nl", "direct_effect_nl", "mediated_effect_nl",
            "shape_opener_rate", "shape_control_rate", "shape_article_rate",
            "green_valid_rate", "green_random_rate", "green_control_rate", "green_forced_rate",
            "habit_valid_rate", "habit_random_rate", "habit_forced_rate",
            "add_only_other_rhyme_rate", "add_only_other_rhyme_random_rate",
            "add_only_two_facts_rate", "add_only_two_facts_random_rate",
            "add_only_other_meaning_rate", "add_only_other_meaning_random_rate", "suppression_runner_up_rate",
            "sweep_rhyme_site_rate", "sweep_rhyme_best_other_rate", "sweep_meaning_site_rate",
            "sweep_meaning_best_other_rate",
            "ending_probe_nl", "ending_probe_nl_random_init", "cell_favourite_rate", "planned_word_features_rate",
            "planned_length_features_rate", "planned_length_features_control_rate")
SITE_KEYS = ("intervention_site", "shape_layer", "green_site", "habit_site")


def headline(r):
    """The flat numbers of one model and seed (None where an experiment did not run), with each one's
    n and 95% interval (`n`, `ci`: a per-seed number near a bar reads as the coin toss it is) and the
    sites as their own keys."""
    h, n, ci = {}, {}, {}

    def put(key, rec, field="rate"):
        if rec is not None:
            h[key], n[key], ci[key] = rec[field], rec.get("n"), rec.get("ci")

    put("nl_ld_rhyme", r["patching"]["rhyme"]["column"].get("nl"), "value")
    put("nl_ld_cue", r["patching"]["cue"]["column"].get("nl"), "value")
    h["valid"], n["valid"], ci["valid"] = r["quality"]["valid"], r["quality"]["n"], r["quality"].get("valid_ci")
    if "effects" in r:  # the line break's whole column, rhyme-swap pairs: free vs line 2 teacher-forced
        e = r["effects"]["rhyme"]
        put("total_effect_nl", e["total"])
        put("direct_effect_nl", e["direct"])
        h["mediated_effect_nl"], n["mediated_effect_nl"] = e["mediated"], e["total"]["n"]
    sh = r.get("shape", {})
    if sh.get("site"):
        put("shape_opener_rate", sh["site"]["opener"])
        put("shape_article_rate", sh["site"]["article"])
        put("shape_control_rate", (sh.get("control") or {}).get("opener"))
        h["shape_layer"] = sh["layers"][sh["layer"]]
    if "green" in sh:
        g, hb = sh["green"], sh["habit"]
        put("green_valid_rate", g["inject"])
        put("green_random_rate", g["random"])
        put("green_control_rate", g["control_position"])
        put("green_forced_rate", g["opener_forced"])
        put("habit_valid_rate", hb["suppress"])
        put("habit_random_rate", hb["random"])
        put("habit_forced_rate", hb["opener_forced"])
        h["green_site"], h["habit_site"] = f"{g['hook']} nl x{g['scale']:g}", f"{hb['hook']} nl x{hb['scale']:g}"
    if "injection" in r:
        for kind in iv.KINDS:
            inj = r["injection"][kind]
            row = inj["add_only"][str(inj["scale"])]
            put(f"add_only_{kind}_rate", row["inject"])
            put(f"add_only_{kind}_random_rate", row["random"])
        put("suppression_runner_up_rate", r["suppression"]["opener_forced"]["runner_up_rate"])
        for fact in ("rhyme", "meaning"):
            sw = r["sweep"][f"other_{fact}"]
            put(f"sweep_{fact}_site_rate", sw["site_rate"])
            put(f"sweep_{fact}_best_other_rate", sw["best_other"])
        site = r["sites"]["intervention"]
        h["intervention_site"] = f"L{site['layer']} {site['role']} ({site['chosen_as']})"
    if "ending_probe" in r:
        ep = r["ending_probe"]
        h["ending_probe_nl"], h["ending_probe_nl_random_init"] = ep["probe"][-1], ep["random_init"][-1]
        put("cell_favourite_rate", ep["cell_favourite"])
    pwf = r.get("clt", {}).get("planned_word_features")
    if pwf:
        put("planned_word_features_rate", pwf["any_layer"])
    plf = r.get("clt", {}).get("planned_length_features")
    if plf:
        put("planned_length_features_rate", plf["nl"])
        put("planned_length_features_control_rate", plf[shape.CONTROL_ROLE])
    return {**{k: h.get(k) for k in HEADLINE + SITE_KEYS}, "n": {k: v for k, v in n.items() if v is not None},
            "ci": {k: v for k, v in ci.items() if v is not None}}
