"""The headline of one study result: the flat numbers the report's tables and the seed summaries quote.

Each key has one meaning in every model and seed: a rate is over the edits that exist, with its n and 95%
interval beside it, and where a site differs between seeds the site is a key of its own, never averaged.
"""
from interp import circuit
from interp import interventions as iv
from interp import shape


HEADLINE = ("valid", "nl_ld_rhyme", "nl_ld_cue",
            "total_valid_change_nl", "direct_valid_change_nl", "mediated_valid_change_nl", "total_any_change_nl",
            "shape_donor_valid_rate", "shape_donor_valid_control_rate", "shape_positive_control_rate",
            "shape_opener_rate", "shape_article_rate", "shape_next_token_rate",
            "green_valid_rate", "green_random_rate", "green_control_rate", "green_forced_rate",
            "habit_valid_rate", "habit_random_rate", "habit_forced_rate",
            "add_only_other_rhyme_rate", "add_only_other_rhyme_random_rate",
            "add_only_two_facts_rate", "add_only_two_facts_random_rate",
            "add_only_other_meaning_rate", "add_only_other_meaning_random_rate", "suppression_runner_up_rate",
            "sweep_rhyme_site_rate", "sweep_rhyme_best_other_rate", "sweep_meaning_site_rate",
            "sweep_meaning_best_other_rate",
            "ending_probe_nl", "ending_probe_nl_random_init", "cell_favourite_rate", "planned_word_features_rate",
            "length_features_rate", "length_features_random_rate", "length_features_control_rate",
            "length_features_first_word_kept_rate",
            "composition_valid_seen_rate", "composition_valid_holdout_rate")
# the controls among them: each carries the share of its edits that change nothing (`noop`); one made mostly
# of such edits could not have come out otherwise, and the page does not show it as a control
CONTROLS = ("shape_donor_valid_control_rate", "green_random_rate", "green_control_rate", "habit_random_rate",
            "add_only_other_rhyme_random_rate", "add_only_other_meaning_random_rate", "add_only_two_facts_random_rate",
            "length_features_random_rate", "length_features_control_rate")
SITE_KEYS = ("intervention_site", "shape_layer", "green_site", "habit_site")
# the circuit, head by head (interp/circuit.py): each route's faithfulness and complement, random head sets of its
# size (controls), all heads at the line break (shape); its heads, what each reads and the ablation verdict are per
# seed and never averaged (site keys)
CIRCUIT = tuple(f"circuit_{r}_{m}" for r in circuit.ROUTES for m in ("faithfulness", "complement", "random")) + \
    ("circuit_shape_all_rate",)
HEADLINE += CIRCUIT
CONTROLS += tuple(k for k in CIRCUIT if k.endswith("_random"))
SITE_KEYS += tuple(f"circuit_{r}_{x}" for r in circuit.ROUTES for x in ("heads", "reads")) + ("circuit_ablation",)


def headline(r):
    """The flat numbers of one model and seed (None where an experiment did not run), with each one's
    n and 95% interval (`n`, `ci`: a per-seed number near a bar reads as the coin toss it is) and the
    sites as their own keys."""
    h, n, k, ci, noop = {}, {}, {}, {}, {}

    def put(key, rec, field="rate"):
        if rec is not None:
            h[key], n[key], k[key], ci[key] = rec[field], rec.get("n"), rec.get("k"), rec.get("ci")
            if "noop_fraction" in rec:
                noop[key] = rec["noop_fraction"]

    put("nl_ld_rhyme", r["patching"]["rhyme"]["column"].get("nl"), "value")
    put("nl_ld_cue", r["patching"]["cue"]["column"].get("nl"), "value")
    h["valid"], n["valid"], ci["valid"] = r["quality"]["valid"], r["quality"]["n"], r["quality"].get("valid_ci")
    if "effects" in r:  # the line break's whole column, rhyme-swap pairs: free vs line 2 teacher-forced
        e = r["effects"]["rhyme"]
        put("total_valid_change_nl", e["total"])
        put("direct_valid_change_nl", e["direct"])
        put("mediated_valid_change_nl", e["mediated"], "value")
        put("total_any_change_nl", e["total_any"])
    sh = r.get("shape", {})
    if "positive_control" in sh:
        put("shape_positive_control_rate", sh["positive_control"]["donor_valid"])
        put("shape_next_token_rate", sh["next_token"]["donor_valid"])
    if sh.get("site"):
        put("shape_donor_valid_rate", sh["site"]["donor_valid"])
        put("shape_opener_rate", sh["site"]["opener"])
        put("shape_article_rate", sh["site"]["article"])
        put("shape_donor_valid_control_rate", {**sh["control"]["other_valid"],
                                               "noop_fraction": sh["control"]["noop_fraction"]})
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
    lf = r.get("clt", {}).get("length_features")
    if lf:
        put("length_features_rate", lf["nl"])
        put("length_features_random_rate", lf["random"])
        put("length_features_control_rate", lf[shape.CONTROL_ROLE])
        put("length_features_first_word_kept_rate", lf["first_word_kept"])
    c = r.get("composition") or {}
    put("composition_valid_seen_rate", c.get("valid_seen"))
    put("composition_valid_holdout_rate", c.get("valid_holdout"))
    circuit.headline_part(r.get("circuit"), put, h)
    return {**{key: h.get(key) for key in HEADLINE + SITE_KEYS}, "n": {key: v for key, v in n.items() if v is not None},
            "k": {key: v for key, v in k.items() if v is not None},
            "ci": {key: v for key, v in ci.items() if v is not None}, "noop": noop}
