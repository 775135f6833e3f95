"""One study for every model: `study(model, world, cfg)` runs every experiment and returns a dict.

The main model and every variant go through this one function, so every comparison is like for like.
Steps:
  1. quality        greedy line 2s on test line 1s, judged by couplet_rules.check_couplet
  2. prompts        three disjoint sets (fit / select / report); clean line 2s written once
  3. probes         family, meaning and ending-word probes at every (layer, role), beside a
                    random-init model and shuffled labels
  4. sites          family, meaning and joint sites chosen on *select* pairs by single-layer patching
                    (interp/patching.choose_causal_sites); the probes' most readable cells beside them
  5. patching       rhyme-swap and cue-swap pairs: normalized logit-difference effects, single-layer
                    and full-column, at prompt and line-2 positions; free-generation top-1 beside them
  6. directions     mean-difference and contrastive word directions at the joint site (fit prompts)
  7. injection      add-only dose-response with its random control (scale chosen on select);
                    steer and class-mean replace as secondary rows; one-fact and two-fact words
  8. suppression    contrastive directions, every outcome counted, free and opener-forced
  9. sweep          add-only at every (layer, prompt role), with directions fit at that cell
 10. ablation       resample ablation of keys/values at nl, rhyme, cue and a control position
 11. composition    held-out (cue word, family) pairs: behaviour, probes, additivity
 12. clt            (optional) a cross-layer transcoder judged at the ending token, with an
                    untrained transcoder's graph scores as the floor
`headline(result)` flattens the numbers the README and the worlds table quote.
"""
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
from interp.probes import by_role, labels, probe_maps, choose_sites, ridge_probe
from interp.prompts import Clean, prompt_sets, swap_pairs, well_formed
from interp.quality import evaluate
from interp.stats import rate
from interp.planned_features import planned_word_features
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
    y = {k: {t: labels(world, named[k], l2[k], t) for t in ("family", "meaning", "ending")} for k in named}
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
    for kind in ("two_facts", "one_fact"):
        tgt = {k: iv.injection_targets(world, named[k], planned[k], dirs, kind, cfg.seed) for k in planned}
        curve_sel = iv.add_only(model, world, site, sets.select, tgt["select"], dirs, seed=cfg.seed)
        scale = iv.best_scale(curve_sel)
        curve = iv.add_only(model, world, site, sets.report, tgt["report"], dirs, seed=cfg.seed)
        inj[kind] = {"scale": float(scale), "curve_select": curve_sel, "add_only": curve,
                     **iv.secondary_rows(model, world, site, sets.report, tgt["report"], planned["report"], dirs, means)}
        if kind == headline_kind(joint):
            targets_report, inj_scale = tgt["report"], float(scale)
    out["injection"] = {**inj, "headline_kind": headline_kind(joint)}

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
    out["sweep"] = iv.sweep(model, world, sets.report[:n], targets_report[:n], lambda l, r: dirs_at(l, r)[0],
                            list(range(L)), prompt_roles, inj_scale, site)
    out["planned_word"] = planned_word(acts, y, hooks, site)

    progress("ablation")
    out["ablation"] = iv.resample(model, world, sets.report, l2["report"], ABLATION_ROLES, cfg.seed)
    progress("composition")
    out["composition"] = composition(model, world, sets.fit, sets.report, site, cfg.n_report)
    if cfg.clt:
        progress("transcoder")
        out["clt"] = clt_section(model, world, cfg, sets.report, l2["report"], runners["report"], clt_path)
    return out


def headline_kind(site):
    """The injected word differs from the planned one in what the site carries: both facts at a joint
    site (the study's "green"), the rhyme alone (same meaning, other family) at a family site."""
    return "two_facts" if site["chosen_as"] == "joint" else "one_fact"


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


def planned_word(acts, y, hooks, site):
    """The word read at the joint site (an ending-word probe fit on *fit*) is the word the model
    then writes at the end of line 2: the rate over report prompts."""
    h = hooks[site.layer]
    fit = [i for i, v in enumerate(y["fit"]["ending"]) if v is not None]
    rep = [i for i, v in enumerate(y["report"]["ending"]) if v is not None]
    acc = ridge_probe(acts["fit"][h][site.role][fit], torch.tensor([y["fit"]["ending"][i] for i in fit]),
                      acts["report"][h][site.role][rep], torch.tensor([y["report"]["ending"][i] for i in rep]),
                      len(NOUNS))
    k = round(acc * len(rep))
    return rate([True] * k + [False] * (len(rep) - k))


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
            "planned_word_features": planned_word_features(model, clt, world, l1s, l2s, [runners[i] for i in ok])}


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
HEADLINE = ("valid", "nl_ld_rhyme", "nl_ld_cue", "add_only_rate", "add_only_random_rate",
            "suppression_runner_up_rate", "sweep_site_rate", "sweep_best_other_rate", "sweep_best_other_ci",
            "planned_word_rate", "planned_word_features_rate")


def headline(r):
    """The flat numbers of one model and seed (None where an experiment did not run)."""
    def col(slot):
        e = r["patching"][slot]["column"].get("nl")
        return None if e is None else e["value"]
    h = {"valid": r["quality"]["valid"], "nl_ld_rhyme": col("rhyme"), "nl_ld_cue": col("cue")}
    if "injection" in r:
        inj = r["injection"][r["injection"]["headline_kind"]]
        row = inj["add_only"][str(inj["scale"])]
        sw = r["sweep"]
        h.update(add_only_rate=row["inject"]["rate"], add_only_random_rate=row["random"]["rate"],
                 suppression_runner_up_rate=r["suppression"]["opener_forced"]["runner_up_rate"]["rate"],
                 sweep_site_rate=sw["site_rate"]["rate"] if sw["site_rate"] else None,
                 sweep_best_other_rate=sw["best_other"]["rate"] if sw["best_other"] else None,
                 sweep_best_other_ci=sw["best_other"]["ci"] if sw["best_other"] else None,
                 planned_word_rate=r["planned_word"]["rate"])
    pwf = r.get("clt", {}).get("planned_word_features")
    if pwf:
        h["planned_word_features_rate"] = pwf["any_layer"]["rate"]
    return {k: h.get(k) for k in HEADLINE}
