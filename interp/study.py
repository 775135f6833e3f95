"""One study for every model: `study(model, world, cfg)` runs every experiment and returns a dict.

The main model and every variant go through this one function, so every comparison is like for like.
Each experiment is a function of `Inputs` (the prompt sets, clean line 2s, residuals, the site...,
each computed once, when first needed), so any one runs alone: `python analyze.py --only NAME`.
The experiments, in the study's order (EXPERIMENTS):
  1. quality        greedy line 2s on test line 1s, judged by couplet_rules.check_couplet; the three
                    disjoint prompt sets (fit / select / report) and their clean line 2s, written once
  2. probes         family, meaning, ending-word and ending-length probes at every (layer, role),
                    beside a random-init model and shuffled labels; the ending-word probe at the line
                    break beside the cell's favourite ending
  3. patching       rhyme-swap and cue-swap pairs: normalized logit-difference effects, single-layer
                    and full-column, at prompt and line-2 positions; free-generation top-1 beside them;
                    family, meaning and joint sites chosen on *select* pairs (choose_causal_sites)
  4. injection      mean-difference word directions at the intervention site (fit prompts); add-only
                    dose-response with its random control (scale chosen on select), for words of
                    another rhyme, another meaning, and both; steer and class-mean replace beside it
  5. suppression    contrastive directions, counted only where the edit is not zero, free and
                    opener-forced
  6. sweep          add-only of one-fact words at every (layer, prompt role), directions fit and
                    scale chosen at each cell on select; the best other cell chosen on select too
  7. shape          total, direct and mediated effects of the line break on the ending; (worlds with
                    a meter) opener-length patching, green and habit at the line break, judged by the
                    couplet written (interp/shape.py)
  8. ablation       resample ablation of keys/values at nl, rhyme, cue and a control position
  9. composition    held-out (cue word, family) pairs: behaviour, probes, additivity
 10. transcoder     (optional) a cross-layer transcoder judged at the ending token, with an
                    untrained transcoder's graph scores as the floor; planned-word and -length features
  +  circuit        (after patching) the heads that move the rhyme and the cue into the ending and the
                    shape into the line break, each with its job, chosen on select pairs, faithfulness /
                    complement / random heads on report pairs; ablations beside it (interp/circuit.py)
The headline numbers of a result are interp/headline.py's.
"""
from collections import Counter
from dataclasses import dataclass, asdict
from functools import cached_property
import time

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
from interp.circuit import circuit
from interp.prompts import Clean, prompt_sets, swap_pairs, well_formed
from interp.quality import evaluate
from interp.stats import rate
from interp.planned_features import planned_word_features, length_features
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


class Inputs:
    """What the experiments share, each computed the first time an experiment asks for it and kept:
    the prompt sets and their clean line 2s, residuals by role, the probe maps, the intervention
    site (chosen by patching on select pairs), the directions there and the injection targets.
    An experiment reads its inputs here, never from another experiment's loop, so any one of them
    runs alone (`python analyze.py --only NAME`) and gives the numbers it gives inside the study."""

    def __init__(self, model, world, cfg=StudyConfig(), clt_path=None):
        self.model, self.world, self.cfg, self.clt_path = model.eval(), world, cfg, clt_path
        self.L = model.cfg.n_layer
        self.hooks = resid_hooks(model.cfg)

    @cached_property
    def sets(self):
        return prompt_sets(self.world, self.cfg.n_fit, self.cfg.n_select, self.cfg.n_report)

    @cached_property
    def named(self):
        return {"fit": self.sets.fit, "select": self.sets.select, "report": self.sets.report}

    @cached_property
    def clean(self):
        return Clean(self.model, self.world)

    @cached_property
    def l2(self):
        """Each set's clean (greedy) line 2s, written once."""
        return {k: self.clean(v) for k, v in self.named.items()}

    @cached_property
    def _acts(self):
        acts = {k: by_role(self.model, self.world, self.named[k], self.l2[k]) for k in self.named}
        present = [r for r in acts["report"][1] if all(r in acts[k][1] for k in self.named)]
        return {k: v[0] for k, v in acts.items()}, present

    @property
    def acts(self):
        """{set: {hook: {role: (n, d_model)}}}: the residual stream at every role of every prompt."""
        return self._acts[0]

    @property
    def prompt_roles(self):
        """The roles up to the line break that every set has."""
        return [r for r in self._acts[1] if ROLES.index(r) <= ROLES.index("nl")]

    @cached_property
    def maps(self):
        """Probe maps at every (layer, role), beside a random-init model's."""
        control = random_init(self.model, self.cfg.seed + 1)
        control_acts = {k: by_role(control, self.world, self.named[k], self.l2[k])[0] for k in self.named}
        y = {k: {t: labels(self.world, self.named[k], self.l2[k], t) for t in ("family", "meaning", "ending", "length")}
             for k in self.named}
        return probe_maps(self.acts, control_acts, y, self.hooks, self._acts[1])

    def swap_pairs(self, split, slot, seed):
        """One prompt set's swap pairs, built once per (split, slot, seed) for every experiment that asks."""
        built = self.__dict__.setdefault("_swap_pairs", {})
        if (split, slot, seed) not in built:
            built[split, slot, seed] = swap_pairs(self.world, self.named[split], slot, seed)[:self.cfg.n_pairs]
        return built[split, slot, seed]

    @cached_property
    def report_patching(self):
        return {slot: patching(self.model, self.world, self.swap_pairs("report", slot, self.cfg.seed), self.clean,
                               seed=self.cfg.seed) for slot in ("rhyme", "cue")}

    @cached_property
    def sites(self):
        """Family, meaning and joint intervention sites, chosen by single-layer patching on select pairs."""
        L = range(1, self.L)
        select = {slot: patching(self.model, self.world, self.swap_pairs("select", slot, self.cfg.seed + 1), self.clean,
                                 columns=self.prompt_roles, free=False, seed=self.cfg.seed, only_layers=L)
                  for slot in ("rhyme", "cue")}
        return choose_causal_sites(select, self.report_patching, list(L), self.prompt_roles)

    @property
    def site(self):
        joint = self.sites["intervention"]
        return iv.Site(joint["layer"], joint["role"])

    @cached_property
    def fit_endings(self):
        return [ending(x) if well_formed(x) else None for x in self.l2["fit"]]

    def dirs_at(self, layer, role):
        """Mean-difference word directions (and class means) at a cell, fit on fit prompts."""
        return word_directions(self.acts["fit"][self.hooks[layer]][role], self.fit_endings)

    @cached_property
    def site_directions(self):
        return self.dirs_at(self.site.layer, self.site.role)

    @cached_property
    def planned(self):
        """The clean ending of each select and report prompt (None where line 2 is malformed)."""
        return {k: [ending(x) if well_formed(x) else None for x in self.l2[k]] for k in ("select", "report")}

    @cached_property
    def targets(self):
        """{kind: {set: one injection target per prompt}} (interp/interventions.KINDS)."""
        dirs = self.site_directions[0]
        return {kind: {k: iv.injection_targets(self.world, self.named[k], self.planned[k], dirs, kind, self.cfg.seed)
                       for k in self.planned} for kind in iv.KINDS}

    @cached_property
    def length_pairs(self):
        """{set: (donor rows, control rows)}: the shape measure's pairs (shape.length_pairs) of select and report
        prompts, built once for every experiment that patches between lengths."""
        return {k: shape.length_pairs(self.world, self.named[k], self.clean, self.cfg.seed + (k == "select"))
                for k in ("select", "report")}

    @cached_property
    def runners(self):
        """Each select and report prompt's runner-up ending."""
        return {k: iv.runner_ups(self.model, self.world, self.named[k], self.l2[k]) for k in ("select", "report")}


# ---- the experiments: each reads Inputs and returns its sections of the result ------------------------
def run_quality(x):
    return {"quality": dict(evaluate(x.model, x.world, "test", x.cfg.n_quality)),
            "prompts": {k: len(v) for k, v in x.named.items()}}


def run_probes(x):
    return {"probes": x.maps, "readable_sites": choose_sites(x.maps, list(range(1, x.L)), x.prompt_roles),
            "ending_probe": ending_probe(x.world, x.maps, x.named, x.l2)}


def run_patching(x):
    return {"patching": x.report_patching, "sites": x.sites}


def run_injection(x):
    dirs, means = x.site_directions
    inj = {}
    for kind in iv.KINDS:
        tgt = x.targets[kind]
        curve_sel = iv.add_only(x.model, x.world, x.site, x.sets.select, tgt["select"], dirs, seed=x.cfg.seed)
        scale = iv.best_scale(curve_sel)
        curve = iv.add_only(x.model, x.world, x.site, x.sets.report, tgt["report"], dirs, seed=x.cfg.seed)
        inj[kind] = {"scale": float(scale), "curve_select": curve_sel, "add_only": curve,
                     **iv.secondary_rows(x.model, x.world, x.site, x.sets.report, tgt["report"], x.planned["report"],
                                         dirs, means)}
    return {"directions": {"n_words": len(dirs), "site": x.site.as_dict(), "cell_mate_cosine": cell_mate_cosine(dirs)},
            "injection": inj}


def run_suppression(x):
    cdirs = contrastive(x.site_directions[0])
    by_scale = {s: iv.suppress(x.model, x.world, x.site, x.sets.select, x.l2["select"], x.runners["select"], cdirs, s)
                for s in SUPPRESS_SCALES}
    s_best = max(SUPPRESS_SCALES, key=lambda s: (by_scale[s]["opener_forced"]["runner_up_rate"]["rate"] or 0, -s))
    return {"suppression": {"directions": "contrastive", "scale": s_best,
                            "select_runner_up_by_scale": {str(s): v["opener_forced"]["runner_up_rate"]
                                                          for s, v in by_scale.items()},
                            **iv.suppress(x.model, x.world, x.site, x.sets.report, x.l2["report"], x.runners["report"],
                                          cdirs, s_best)}}


def run_sweep(x):
    n, out = x.cfg.n_sweep, {}
    for kind, at in (("other_rhyme", x.sites["family"]), ("other_meaning", x.sites["meaning"])):
        tgt = x.targets[kind]
        out[kind] = iv.sweep(x.model, x.world, (x.sets.select[:n], tgt["select"][:n]),
                             (x.sets.report[:n], tgt["report"][:n]), lambda l, r: x.dirs_at(l, r)[0],
                             list(range(x.L)), x.prompt_roles, iv.Site(at["layer"], at["role"]), seed=x.cfg.seed)
    return {"sweep": out}


def run_shape(x):
    effects = {slot: shape.effects(x.model, x.world, x.swap_pairs("report", slot, x.cfg.seed), x.clean)
               for slot in ("rhyme", "cue")}
    return {"effects": effects,
            "shape": shape_section(x) if shape.has_meter(x.world) else
            {"skipped": "this world has no meter: line 2's opener does not depend on the ending"}}


def run_circuit(x):
    swap = {slot: (x.swap_pairs("select", slot, x.cfg.seed + 1), x.swap_pairs("report", slot, x.cfg.seed))
            for slot in ("rhyme", "cue")}
    n = x.cfg.n_pairs  # the ablations' report prompts: as many as the swap pairs
    return {"circuit": circuit(x.model, x.world, swap, x.length_pairs if shape.has_meter(x.world) else None,
                               x.named["report"][:n], x.l2["report"][:n], x.clean, x.cfg.seed)}


def run_ablation(x):
    return {"ablation": iv.resample(x.model, x.world, x.sets.report, x.l2["report"], ABLATION_ROLES, x.cfg.seed)}


def run_composition(x):
    return {"composition": composition(x.model, x.world, x.sets.fit, x.sets.report, x.site, x.cfg.n_report)}


def run_transcoder(x):
    return {"clt": clt_section(x.model, x.world, x.cfg, x.sets.report, x.l2["report"], x.runners["report"],
                               x.clt_path)}


# name -> (the experiment, whether it needs the intervention site); in the study's order
EXPERIMENTS = {"quality": (run_quality, False), "probes": (run_probes, False), "patching": (run_patching, False),
               "circuit": (run_circuit, False),
               "injection": (run_injection, True), "suppression": (run_suppression, True),
               "sweep": (run_sweep, True), "shape": (run_shape, True), "ablation": (run_ablation, True),
               "composition": (run_composition, True), "transcoder": (run_transcoder, True)}


def study(model, world, cfg=StudyConfig(), progress=lambda stage: None, clt_path=None, only=None):
    """Every experiment of EXPERIMENTS in order (or the one named by `only`) on one model; a dict of
    their sections. Without an intervention site (too few swap pairs) the experiments that need one
    are skipped, and the result says why."""
    if world.config.epithet:  # its probes, runner-ups and features would score the noun after the epithet it copies
        raise ValueError("the study scores the ending noun; an --epithet world is measured by the world search "
                         "(python worlds.py --search) alone")
    if only is not None and only not in EXPERIMENTS:
        raise ValueError(f"--only must be one of {', '.join(EXPERIMENTS)}, got {only!r}")
    x = Inputs(model, world, cfg, clt_path)
    out = {"config": asdict(cfg), "n_layer": x.L}
    for name, (run, needs_site) in EXPERIMENTS.items():
        if only not in (None, name) or (name == "transcoder" and not cfg.clt and only is None):
            continue
        if needs_site and not x.sites:
            out["skipped"] = "no site could be chosen (too few swap pairs with two different clean endings)"
            break
        progress(name)
        t = time.time()
        out.update(run(x))
        if time.time() - t > 60:
            progress(f"{name} took {time.time() - t:.0f} s")
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


def shape_section(x):
    """The shape plan (interp/shape.py), judged by valid couplets at the donor's length: the line break's
    layer chosen on select pairs among the layers that can store something (not its embedding, not its
    final residual), the rates on report pairs beside a control that could fail (the same patch from donors
    whose opener has A's length) and a positive control (B's opener teacher-forced); every prompt position
    and layer as a map; the length probe; green and habit at the line break."""
    (sel, _), (rep, same) = x.length_pairs["select"], x.length_pairs["report"]
    layers = shape.searchable_layers(x.model.cfg)
    layer = shape.choose_layer(shape.shape_patching(x.model, x.world, sel, ["nl"], layers), layers)
    grid = shape.shape_patching(x.model, x.world, rep, x.prompt_roles)
    out = {"n_select_pairs": len(sel), "n_pairs": len(rep), "n_control_pairs": len(same), "layer": layer,
           "layers": [f"L{l}" for l in range(len(x.hooks))], "searchable": layers, "roles": x.prompt_roles,
           "map": {r: [c["donor_valid"]["rate"] for c in grid[r]] for r in x.prompt_roles},
           "map_opener": {r: [c["opener"]["rate"] for c in grid[r]] for r in x.prompt_roles},
           "map_noop": {r: [c["noop_fraction"] for c in grid[r]] for r in x.prompt_roles},
           "next_token": grid["nl"][-1], "embedding": grid["nl"][0],
           "positive_control": shape.forced_opener(x.model, x.world, rep)}
    if layer is not None:
        out["site"] = grid["nl"][layer]
        out["control"] = shape.shape_patching(x.model, x.world, same, ["nl"], [layer], "other")["nl"][0]
    out.update(shape.green_and_habit(x.model, x.world, x.named, x.l2, x.runners, x.acts, x.hooks, x.cfg.seed))
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
            **({"length_features": length_feature_section(model, clt, world, line1s, line2s, cfg.seed)}
               if shape.has_meter(world) else {})}


def length_feature_section(model, clt, world, line1s, line2s, seed=0):
    """Opener-length features at the line break (interp/planned_features.py), with the automatic labels
    of the three that pass most often."""
    out = length_features(model, clt, world, line1s, line2s, seed=seed)
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
