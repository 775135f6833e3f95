"""The models of the study, and the pre-registered search for a world in which planning emerges.

`python train.py --all` trains MODELS: the main model and variants that each change one documented
thing, so the report can ask *why* the plan lives where it does. Models and candidate worlds are
both a Variant: the settings that differ from the defaults of WorldConfig, GPTConfig and TrainConfig,
what it is for, and its prediction. The
main model's seed 0 is `out/model.pt`; every other (model, seed) is `out/worlds/NAME/seedK/model.pt`.

`python worlds.py --search` trains every CANDIDATE world with 3 seeds into out/search/, measures it,
and prints one row per candidate, failures included. Each candidate's prediction was written here
*before* it was run; the rows say what happened.
"""
from dataclasses import dataclass, field, fields, replace
import argparse
import json
import os
import sys

from plumbing import numerics  # noqa: F401  (first: pins the CPU code paths before torch loads)
from data import world_from_dict, WorldConfig
from model import load_checkpoint, GPTConfig
from interp.claims import Expect as E
from interp.patching import through_training, every_column, CARRIES
from interp.prompts import search_prompts
from interp.stats import rate
from plumbing import cli
from plumbing.files import write_json
from plumbing.processes import run_commands


@dataclass(frozen=True)
class Variant:
    """A model of the study or a candidate world of the search: the settings that differ from the
    defaults of WorldConfig, GPTConfig and TrainConfig (train.py), what it is for, and what it was
    predicted to show, written before it was measured."""
    world: dict = field(default_factory=dict)
    model: dict = field(default_factory=dict)
    train: dict = field(default_factory=dict)
    what: str = ""
    prediction: str = ""
    expect: tuple = ()   # the prediction as rules on headline keys (interp/claims.Expect), checked by the report
    circuit_prediction: dict = field(default_factory=dict)  # CIRCUIT_PREDICTIONS: the heads, written before measuring

    @property
    def overrides(self):
        return self.world, self.model, self.train

    def flags(self):
        """The same settings as train.py flags."""
        return cli.flags(**self.world, **self.model, **self.train)


def variant(what="", prediction="", expect=(), **settings):
    """A Variant from flat settings, each sorted to the config that has it (the rest are training's)."""
    of = lambda cls: {k: v for k, v in settings.items() if k in {f.name for f in fields(cls)}}
    world, model = of(WorldConfig), of(GPTConfig)
    return Variant(world, model, {k: v for k, v in settings.items() if k not in world and k not in model}, what,
                   prediction, tuple(expect))


# The world search and the `linebreak` model name the recipe they were trained with (AdamW, cosine, batches
# of 64), so that another default in train.py (bench.py's recipe search) leaves their rows and routes as they were.
ADAMW = {"optimizer": "adamw", "schedule": "cosine", "batch_size": 64}
LONG = {**ADAMW, "max_steps": 6000, "lr": 3e-3}


# The predictions as rules (interp/claims.Expect), written on 2026-12-06 before the run under pinned CPU settings
# measured them: the shape plan judged by valid couplets at the donor's length beside a control that could fail,
# the effects as valid changes, the length features beside random directions. Each model's prose `prediction`
# above them was written earlier, for the measures of that time; the page checks the rules, not the prose.
MAIN_EXPECT = (E("nl_ld_rhyme", "<", 0.2), E("nl_ld_cue", "<", 0.2),
               E("ending_probe_nl", "<=", "cell_favourite_rate"),
               E("shape_donor_valid_rate", ">=", 0.3), E("shape_donor_valid_rate", "<", 0.8, "mean"),
               E("shape_donor_valid_control_rate", "<=", 0.1), E("shape_positive_control_rate", ">=", 0.5),
               E("green_valid_rate", ">=", 0.5), E("green_random_rate", "<=", 0.1),
               E("habit_valid_rate", ">=", 0.3, "mean"), E("habit_random_rate", "<=", 0.1),
               E("green_forced_rate", "<=", 0.1), E("habit_forced_rate", "<=", 0.1),
               E("total_valid_change_nl", ">", "direct_valid_change_nl"), E("direct_valid_change_nl", "<=", 0.05),
               E("length_features_rate", ">=", 0.5), E("length_features_random_rate", "<=", 0.2),
               E("length_features_first_word_kept_rate", "<=", 0.2),
               E("composition_valid_holdout_rate", ">=", 0.9))

MODELS = {
    "main": variant("the main world and model", expect=MAIN_EXPECT, prediction=
                    "(seed 0 was measured while the measure was built: opener 0.57 at the line break entering layer 3, "
                  "control 0.00, green 0.76, habit 0.87.) Seeds 1 and 2: the line break decides part of the shape in "
                  "every seed (opener >= 0.3 at the chosen layer, control <= 0.05) but >= 0.8 in none, because the "
                  "opener's first word often does not commit to a length ('and'); green and habit >= 0.5 with "
                  "random <= 0.1; with the opener teacher-forced both <= 0.1; total effect of the line break on the "
                  "ending > direct, direct <= 0.05: the shape reaches the ending only through the words written."),
    "barrier": variant("architecture: line-2 tokens may attend only to the line break and to line 2 itself, so "
                     "anything line 2 needs from line 1 must be stored at the line break before line 2 starts.",
                     "the line break holds everything line 2 knows, so: opener >= 0.8 in every seed, direct effect of "
                     "the line break on the ending >= 0.8 (the ending reads it, not only the opener), mediated small "
                     "(<= 0.2); green and habit >= 0.5.", nl_barrier=True,
                     expect=(E("nl_ld_rhyme", ">=", 0.8), E("nl_ld_cue", ">=", 0.8), E("direct_valid_change_nl", ">=", 0.5),
                             E("shape_donor_valid_rate", ">=", 0.5, "mean"), E("shape_donor_valid_control_rate", "<=", 0.1))),
    "window": variant("architecture: every token attends only to itself and the 5 tokens before it, so the end of "
                    "line 2 cannot see line 1: whatever it needs must be carried forward token to token. The "
                    "reader's 'smeared' hypothesis, forced and tested directly.",
                    "the line break still sees line 1's last words and predicts the opener, so it decides the shape "
                    "(opener >= 0.5); the ending cannot see the line break (more than 5 tokens back), so the line "
                    "break's effect on the ending is mostly mediated by the words written (mediated >= direct).",
                      attn_window=6, window_layers="",
                      expect=(E("nl_ld_rhyme", "<", 0.2), E("mediated_valid_change_nl", ">=", "direct_valid_change_nl"),
                              E("shape_donor_valid_control_rate", "<=", 0.1))),
    "linebreak": variant("world and architecture: the world search's `list-LG-2layer-long`. Line 1 is a list of nouns "
                       "whose last one only the line break can identify; two layers, the first local (window 5) and "
                       "the second global, as in Gemma's interleave; no mask keeps line 2 from line 1. Its search rows "
                       "(the search table) route the rhyme through the line break and the meaning through line 1's "
                       "last article. Prediction, written before its study: add-only injection "
                       "of a same-meaning, other-rhyme word at the line break (layer 1) writes it more often than in "
                       "the four-layer world that held this name before (0.163), because the line break is the "
                       "rhyme's only route; a word of another meaning is not written (the meaning is elsewhere); "
                       "planned-word features at the line break stay rare (it holds a rhyme family, not a word).",
                       "no meter, so no shape to plan (not measured). The line break's effect on the ending: direct "
                       "close to total (mediated <= 0.1) in seeds that route the rhyme through it, since the list "
                       "opener does not depend on the ending.",
                         grammar="list", n_layer=2, attn_window=5, window_layers="LG", **LONG,
                         expect=(E("nl_ld_rhyme", ">=", 0.8, "any"), E("nl_ld_cue", "<", 0.8))),
    "committed": variant("world: the opener's first word alone names its length ('later that day' only before a "
                       "one-syllable ending, 'at last' only before a three-syllable one), so the token the line break "
                       "predicts already depends on the ending's length, as 'His hunger' depended on 'rabbit': the "
                       "world in which the line break must decide the shape.",
                       "the line break decides the shape in every seed: opener >= 0.8 at the chosen layer, control "
                       "<= 0.05; green and habit >= 0.7 with random <= 0.05; with the opener teacher-forced both "
                       "<= 0.1 (the ending follows the opener written); the line break holds the length, not the "
                       "word (its ending-word probe no better than the cell's favourite); valid >= 0.97.",
                         committed_openers=True,
                         expect=(E("shape_donor_valid_rate", ">=", 0.5), E("shape_donor_valid_control_rate", "<=", 0.1),
                                 E("shape_positive_control_rate", ">=", 0.8),
                                 E("green_valid_rate", ">=", 0.7), E("habit_valid_rate", ">=", 0.7),
                                 E("green_random_rate", "<=", 0.15), E("habit_random_rate", "<=", 0.15),
                                 E("green_forced_rate", "<=", 0.1), E("habit_forced_rate", "<=", 0.1),
                                 E("ending_probe_nl", "<=", "cell_favourite_rate"), E("valid", ">=", 0.97),
                                 E("length_features_rate", ">=", 0.5), E("length_features_random_rate", "<=", 0.2))),
    "myopic": variant("training: the loss at a position sends no gradient into earlier positions (Wu, Morris & "
                    "Levine 2024), so nothing is computed early for the sake of later tokens (no pre-caching); "
                    "only breadcrumbs, features that help the next token anyway, can survive.",
                    "the opener is the line break's own next token, so the shape plan is a breadcrumb, not "
                    "pre-caching: opener, green and habit rates within the main model's seed range.", myopic=True,
                    expect=(E("shape_donor_valid_rate", "n<", 10), E("nl_ld_rhyme", "<", 0.2))),
}


# What each model's circuit was predicted to be (interp/circuit.py), written before any circuit was measured on a
# trained model of its world. `text` says it in words; the rest is what the page checks against the numbers:
#   reads        {slot: roles}: the head the greedy picks first (the one that moves most) attends most to one of
#                these roles (couplet_rules.roles names) from the position that predicts the ending
#   max_heads    {slot: k}: the greedy set has at most k heads and keeps >= 0.8 of the effect on report pairs
#   shape_moves  all heads at the line break write valid couplets at the donor's length in >= 0.2 of the pairs
#   shape_layers "late" (layer >= n_layer / 2) or "early": where every head of the shape circuit sits
#   ablation_depends  whether zero, mean and resample ablation disagree on the circuit being necessary
LINE2 = ("l2_open1", "l2_open2", "l2_open3", "l2_open4", "l2_pronoun", "l2_verb")
REREAD = {"reads": {"rhyme": ("rhyme",), "cue": ("cue",)}, "max_heads": {"rhyme": 4, "cue": 2}}  # line 1 read directly
CIRCUIT_PREDICTIONS = {
    "main": {"text": "line 2 re-reads line 1, so a few early heads (layers 0-1) at the position that predicts the "
                     "ending read the rhyme word (at most 4 heads) and the cue word (at most 2) directly, and the "
                     "rest of the heads carry little (complement <= 0.2, random sets of the same size <= 0.25). The "
                     "shape route: heads at the line break in the last layers, which move the opener's length at "
                     "least as often as its first word; at the ending position a later head reads the written "
                     "opener (>= 0.2 of its attention). Zero, mean and resample ablation agree that the circuit is "
                     "needed more than random heads.",
             **REREAD, "shape_moves": True, "shape_layers": "late", "ablation_depends": False},
    "barrier": {"text": "line 2 cannot see line 1, so the heads at the ending that move both facts attend to the "
                        "line break instead of the rhyme word and the cue (the same one or two heads for both); the "
                        "shape route: heads at the line break in the last layers read line 1 there.",
                "reads": {"rhyme": ("nl",), "cue": ("nl",)}, "max_heads": {"rhyme": 2, "cue": 2},
                "shape_moves": True, "shape_layers": "late", "ablation_depends": False},
    "window": {"text": "the ending cannot see line 1 or the line break (more than 5 tokens back), so the heads that "
                       "move the facts at the ending read line 2's own words (pronoun, verb, opener), which relay "
                       "line 1 forward; more heads are needed than in the main model (up to 6) and no single one "
                       "carries most. The line break sees line 1's last words but not its cue, and its one-layer "
                       "patch never moved the opener's length (docs/results.md): all its heads together move the "
                       "length in fewer than 0.2 of the pairs, no shape circuit.",
               "reads": {"rhyme": LINE2, "cue": LINE2}, "max_heads": {"rhyme": 6, "cue": 6},
               "shape_moves": False, "shape_layers": None, "ablation_depends": False},
    "linebreak": {"text": "two layers, the second the only global one: the rhyme is moved by one or two layer-1 heads "
                          "at the ending that attend to the line break; the meaning by a layer-1 head that attends "
                          "to line 1's last article (which, in the local layer 0, saw the meaning noun). No meter, "
                          "so no shape route.",
                  "reads": {"rhyme": ("nl",), "cue": ("rhyme_art",)}, "max_heads": {"rhyme": 2, "cue": 3},
                  "shape_moves": None, "shape_layers": None, "ablation_depends": False},
    "committed": {"text": "as the main model for the ending (early heads read the rhyme word and the cue directly); "
                          "the shape route is stronger: heads at the line break in the last layers write the length, "
                          "and every head that moves the length also moves the opener's first word (the first word "
                          "names the length).",
                  **REREAD, "shape_moves": True, "shape_layers": "late", "ablation_depends": False},
    "myopic": {"text": "the ending's route is the main model's (early heads read the rhyme word and the cue "
                       "directly: a re-read needs no pre-caching); the line break holds no shape plan, so all its "
                       "heads together move the length in fewer than 0.2 of the pairs and there is no shape circuit.",
               **REREAD, "shape_moves": False, "shape_layers": None, "ablation_depends": False},
}
MODELS = {name: replace(v, circuit_prediction=CIRCUIT_PREDICTIONS[name]) for name, v in MODELS.items()}


def checkpoint_path(out, name, seed=0):
    if name == "main" and seed == 0:
        return os.path.join(out, "model.pt")
    return os.path.join(out, "worlds", name, f"seed{seed}", "model.pt")


# ---- the pre-registered search ---------------------------------------------------------------------
LIST = {"grammar": "list"}
LG = {"attn_window": 5, "window_layers": "LG"}
STEPS = {**ADAMW, "max_steps": 2000, "lr": 3e-3}
CF = {"grammar": "list", "cue_first": True}
MAJ = {"meaning": "majority", "min_nouns": 3, "holdout_pairs": 0}
CANDIDATES = {
    "classic": variant(grammar="classic", **STEPS, prediction=
                         "the classic world of the project's first version: line 2 reads the rhyme noun and the cue directly (layer 0 reads of "
                         "tokens findable by their neighbours); line break column LD < 0.2 for both swaps."),
    "list": variant(**LIST, **STEPS, prediction=
                      "noun lists, learned positions, global attention: the rhyme noun copies its predecessor at "
                      "layer 0, and the ending position finds it as the last noun before <nl> (line-2 nouns mark "
                      "themselves by seeing <nl>); line break column LD < 0.5, rhyme column (layers >= 1) > 0.5."),
    "list-cf": variant(**CF, **STEPS, prediction=
                         "cue first (found by its neighbour 'saw' in one hop, so read directly: cue LD at <nl> < 0.2); "
                         "the rhyme noun is only 'the last noun before <nl>': <nl> copies it with a previous-token "
                         "head, or the ending finds it by distance with learned positions; nl LD rhyme 0.3-0.6."),
    "list-cf-nope": variant(**CF, pos="none", **STEPS, prediction=
                              "cue first, no positions: the ending cannot find 'the noun before <nl>' by distance, so "
                              "the rhyme goes through <nl>: nl LD rhyme >= 0.6, cue < 0.3."),
    "list-cf-LG": variant(**CF, **LG, **STEPS, prediction=
                            "cue first, local layer 0: <nl> alone holds the rhyme after layer 0, the direct route "
                            "costs two more layers: nl LD rhyme >= 0.6; cue read directly (< 0.3)."),
    "list-cf-LG-long": variant(**CF, **LG, **LONG, prediction=
                                 "written after list-cf-LG (2000 steps: nl LD rhyme 1.00 but meaning 0.23): with 3x "
                                 "the steps the meaning is learned through the global layers; nl LD rhyme stays >= 0.8, "
                                 "the cue is read directly from the cue word (nl LD cue < 0.3), valid >= 0.8."),
    "list-LG-long": variant(**LIST, **LG, **LONG, prediction=
                              "written after list-cf-LG-long (nl LD rhyme 0.92, cue read directly): the meaning noun is "
                              "the one before the last, so in the local layer 0 both <nl> and line 1's last noun see "
                              "both facts; the ending must then find 'the last noun of line 1', the very step that "
                              "went through <nl> for the rhyme in list-cf-LG-long. Line break LD >= 0.8 for both swaps "
                              "in at least 2 of 3 seeds, rhyme column (>= 1) <= 0.2 there; valid >= 0.8."),
    "list-maj-LG-long": variant(**LIST, **MAJ, **LG, **LONG, prediction=
                                  "written after list-LG-long (the meaning went through line 1's last noun, never "
                                  "<nl>): the meaning is the one most of line 1's nouns share, so it is a count over "
                                  "exactly line 1's nouns. <nl>, findable by its own token, sees exactly those at layer "
                                  "1; the ending cannot count them at layer 1 without telling line 2's nouns from line "
                                  "1's. Prediction: nl LD cue >= 0.5 in at least 2 of 3 seeds (the first world to route "
                                  "the meaning through the line break); nl LD rhyme mixed over seeds as in "
                                  "list-LG-long; valid lower than list-LG-long's (counting is harder) but >= 0.6."),
    "list-LG-2layer-long": variant(**LIST, **LG, n_layer=2, **LONG, prediction=
                                     "written after the `linebreak` model's seed 0 dropped its line-break route when "
                                     "trained to 9,000 steps (its layers 2-3, local then global, let line-2 nouns mark "
                                     "themselves so the ending can find line 1's last noun directly): two layers, local "
                                     "then global. No layer after the only global one can use what it finds, so the "
                                     "ending must read one position that already holds both facts, and after the local "
                                     "layer only <nl> sees the last two nouns *and* that line 1 has ended. Prediction: nl "
                                     "LD >= 0.8 for both swaps in all 3 seeds, kept to the last snapshot (no later "
                                     "route to switch to); rhyme word (>= 1) <= 0.2; valid >= 0.7 (one MLP after the "
                                     "read must intersect the facts) but below list-LG-long's 0.82 is allowed."),
    "list-LG-2layer-9k": variant(**LIST, **LG, n_layer=2, **{**LONG, "max_steps": 9000}, prediction=
                                   "written after list-LG-2layer-long (rhyme through <nl> 0.98 in every seed; the "
                                   "meaning read from line 1's last article; seed 0 never learned the meaning): the same "
                                   "world trained 9,000 steps, the length at which the four-layer world dropped its "
                                   "route. Prediction: the rhyme stays at <nl> (LD >= 0.9 in every seed at every "
                                   "snapshot after it appears), because two layers leave no later route; the meaning "
                                   "is learned in all 3 seeds (>= 0.95) and read from the last article, not <nl> (< 0.3). "
                                   "Seeds 3-7, written after seeds 0-2 (seed 0 carried both facts at <nl>, seeds 1 and "
                                   "2 read line 1's rhyme word; each route settled by step 3500): how often does a "
                                   "seed plan? Prediction: the rhyme through <nl> (LD >= 0.8) in 2 to 4 of the 8 "
                                   "seeds, both facts through <nl> in 1 or 2 of 8; every other seed reads the rhyme "
                                   "word; each seed's route fixed by step 3500."),
    "list-maj3-LLG": variant(**LIST, meaning="majority", min_nouns=3, max_nouns=3, holdout_pairs=0, attn_window=5, window_layers="LLG", n_layer=3, **LONG, prediction=
                               "written after list-LG-2layer-long (the meaning, held by positions other than <nl>, was "
                               "read there): the meaning is the one most of line 1's three nouns share, and two local "
                               "layers precede the only global one. After them only <nl> and line 1's last noun "
                               "have all three nouns in reach (8 tokens back), and the ending's one global read must "
                               "find one of them. Prediction: the rhyme through <nl> (LD >= 0.8) in at least 2 of 3 "
                               "seeds, as in the two-layer world; the meaning through <nl> (LD >= 0.5) in at least 2 "
                               "of 3 seeds, the first world to route it there; the rest of the cue swap on the rhyme "
                               "word (layers >= 1); valid >= 0.6."),
    "list-rope-LG-2layer-long": variant(**LIST, pos="rope", **LG, n_layer=2, **LONG, prediction=
                                          "as `list-LG-2layer-long`, with rotary positions, which make the local "
                                          "layer's fixed offsets (the noun 1 and 4 back from <nl>) one rotation "
                                          "each: the same map (nl LD >= 0.8 for both swaps, all seeds), the route "
                                          "appearing earlier in training, and validity at least as high."),
    "list-ep-LG-long": variant(**LIST, epithet=True, **LG, **LONG, prediction=
                                 "the word level, written after list-LG-2layer-9k: `list-LG-long` (four layers, local "
                                 "and global in turn) with the ending's own epithet before it ('a funny snake'), so "
                                 "the first word that commits to the ending must name *which* word of the cell is "
                                 "still free (not in line 1), one token before the noun; patching scores that epithet. "
                                 "Four layers, because only a global layer before the last can let <nl> see which "
                                 "of line 1's nouns are taken. Prediction: the same map as list-LG-long (nl LD rhyme "
                                 "mixed over seeds, >= 0.8 in 1 or 2 of 3; nl LD cue < 0.3 in every seed): the epithet "
                                 "is chosen where the ending was, from the same reads; valid >= 0.7, below "
                                 "list-LG-long's 0.82 (one more word to get right)."),
    "list-ep-LG-2layer-long": variant(**LIST, epithet=True, **LG, n_layer=2, **LONG, prediction=
                                        "written after list-ep-LG-long (the rhyme moved from line 1 to line 2's "
                                        "pronoun, never the line break): the word level on the two-layer world, whose "
                                        "rhyme went through <nl> in all 3 seeds. After the local layer both <nl> and "
                                        "line 2's pronoun hold line 1's last noun (the pronoun is at most 4 tokens "
                                        "after it); only <nl> also holds the meaning noun. Prediction: the rhyme read "
                                        "from <nl> or the pronoun (the two together >= 0.8 in every seed), <nl> alone "
                                        ">= 0.8 in at most 1 of 3; line 1's rhyme word (layers >= 1) <= 0.2; the "
                                        "meaning from line 1's last article or <nl>, <nl> >= 0.8 in at most 1 of 3; "
                                        "valid >= 0.8 (the epithet raised it with four layers)."),
    "list-rope": variant(**LIST, pos="rope", **STEPS, prediction=
                           "as `list`: rotary positions alone do not remove the direct route; line break LD < 0.5."),
    "list-nope": variant(**LIST, pos="none", **STEPS, prediction=
                           "no positions: the line-break route appears early in training and is dropped later "
                           "(as in the first noun-list world, docs/planning.md); final line break LD < 0.3."),
    "list-LG": variant(**LIST, **LG, **STEPS, prediction=
                         "local layer 0 (window 5): only <nl> sees both of line 1's last two nouns in layer 0; "
                         "line-2 nouns cannot mark themselves as line 2 before layer 1, so the direct route costs "
                         "two more layers. Line break column LD >= 0.8 for both swaps, rhyme column (>= 1) <= 0.2."),
    "list-rope-LG": variant(**LIST, pos="rope", **LG, **STEPS, prediction=
                              "as `list-LG` (the interleave, not the positional scheme, decides): line break LD >= 0.8."),
    "list-rope-LG-2layer": variant(**LIST, pos="rope", **LG, n_layer=2, **STEPS, prediction=
                                     "two layers, local then global: the line break is the only exact route; "
                                     "line break LD >= 0.8, validity lower than with four layers."),
    "classic-rope-LG": variant(grammar="classic", pos="rope", **LG, **STEPS, prediction=
                                 "the interleave without the noun lists: the cue ('saw a CUE') and the rhyme noun "
                                 "(after a fixed phrase) are findable by their neighbours in the local layer, so "
                                 "line 2 reads them directly at layer 1; line break LD < 0.3."),
}
SNAPSHOT_EVERY = 500


def run_jobs(jobs, parallel):
    """Run [(label, argv)] as child processes, `parallel` at a time; one line per finished job."""
    for done in run_commands(jobs, parallel):
        status = "ok" if done.returncode == 0 else f"FAILED: {done.last_line()}"
        print(f"{done.label}: {status} ({done.seconds:.0f} s)", flush=True)


def measure(folder):
    """One trained candidate: test validity, the line break's and rhyme noun's column LD effects at every
    snapshot (patching through training), and every prompt position's at the final weights. Writes
    folder/search_row.json."""
    model, ckpt = load_checkpoint(os.path.join(folder, "model.pt"))
    world = world_from_dict(ckpt["world_config"])
    snaps = sorted(os.listdir(os.path.join(folder, "snapshots"))) if os.path.isdir(os.path.join(folder, "snapshots")) else []
    checkpoints = [(int(s[4:10]), load_checkpoint(os.path.join(folder, "snapshots", s))[0]) for s in snaps]
    checkpoints.append((ckpt["metrics"]["steps"], model))
    lines = search_prompts(world)
    curve = through_training(checkpoints, world, lines)
    test = ckpt["metrics"]["test"]
    write_json(os.path.join(folder, "search_row.json"),
               {"test": {k: test[k] for k in ("rhyme", "meaning", "valid", "n")}, "curve": curve,
                "final": curve[-1], "final_columns": every_column(model, world, lines)})


def search(out, names, seeds, parallel):
    here = os.path.dirname(os.path.abspath(__file__))
    train_jobs, measure_jobs = [], []
    for name in names:
        for seed in range(seeds):
            folder = os.path.join(out, name, f"seed{seed}")
            if not os.path.exists(os.path.join(folder, "train_metrics.json")):
                train_jobs.append((f"train {name} seed {seed}",
                                   [sys.executable, os.path.join(here, "train.py"), *CANDIDATES[name].flags(),
                                    "--seed", str(seed), "--out", folder, "--snapshot-every", str(SNAPSHOT_EVERY),
                                    "--eval-every", "100000", "--threads", str(cli.share_of_cores(None, parallel)),
                                    "--quiet"]))
            if not os.path.exists(os.path.join(folder, "search_row.json")):
                measure_jobs.append((f"measure {name} seed {seed}",
                                     [sys.executable, os.path.abspath(__file__), "--measure", folder,
                                      "--threads", str(cli.share_of_cores(None, parallel))]))
    run_jobs(train_jobs, parallel)
    run_jobs(measure_jobs, parallel)
    table = {}
    for name in CANDIDATES:  # every candidate and seed measured so far in this folder, not only this call's
        here = os.path.join(out, name)
        found = sorted(int(d[4:]) for d in (os.listdir(here) if os.path.isdir(here) else [])
                       if d.startswith("seed") and d[4:].isdigit())
        rows = [{"seed": k, **json.load(open(os.path.join(here, f"seed{k}", "search_row.json")))} for k in found
                if os.path.exists(os.path.join(here, f"seed{k}", "search_row.json"))]
        table[name] = {"prediction": CANDIDATES[name].prediction, "flags": CANDIDATES[name].flags(), "seeds": rows,
                       **({"plans": plans(rows)} if rows else {"not_run": True})}  # a registered world never run says so
    write_json(os.path.join(out, "search.json"), table)
    print_table(table)


PLANS_AT = CARRIES  # the line break's column moves the ending at least this far


def plans(rows):
    """How many seeds route a fact through the line break (final weights, LD >= PLANS_AT): the rhyme, the
    meaning, and both. A seed with no pair for a fact (None) does not count as routing it."""
    at = lambda r, slot: (r["final"][slot]["nl_column"] or 0) >= PLANS_AT
    return {"at": PLANS_AT, "rhyme": rate([at(r, "rhyme") for r in rows]), "meaning": rate([at(r, "cue") for r in rows]),
            "both": rate([at(r, "rhyme") and at(r, "cue") for r in rows])}


def print_table(table):
    def f(v):
        return "  -  " if v is None else f"{v:5.2f}"
    print(f"{'world':22} {'seeds':>5} {'valid':>13} {'nl LD rhyme':>13} {'nl LD cue':>13} {'rhyme>=1 LD':>13} "
          f"{'seeds planning (rhyme, meaning, both)':>38}")
    for name, t in table.items():
        rows = t["seeds"]
        if not rows:
            print(f"{name:22} {0:>5}  not run")
            continue

        def span(get):
            vals = [get(r) for r in rows if get(r) is not None]
            return "      -      " if not vals else f"{sum(vals) / len(vals):5.2f} [{min(vals):.2f}-{max(vals):.2f}]"
        print(f"{name:22} {len(rows):>5} {span(lambda r: r['test']['valid']):>13} "
              f"{span(lambda r: r['final']['rhyme']['nl_column']):>13} {span(lambda r: r['final']['cue']['nl_column']):>13} "
              f"{span(lambda r: r['final']['rhyme']['rhyme_column_from1']):>13} "
              f"{'   '.join(str(t['plans'][f]['k']) for f in ('rhyme', 'meaning', 'both')):>38}")


def main(argv=None):
    p = argparse.ArgumentParser(description="the pre-registered world search")
    p.add_argument("--search", action="store_true", help="train and measure every candidate world")
    p.add_argument("--only", nargs="*", help="candidates to run (default: all)")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--parallel", type=int, default=cli.cores())
    p.add_argument("--out", default=os.path.join("out", "search"))
    p.add_argument("--measure", help=argparse.SUPPRESS)
    cli.add_threads_flag(p)
    args = p.parse_args(argv)
    if args.measure:  # an internal call of search(), which says the thread count; one thread if not
        cli.set_threads(args.threads or 1)
        measure(args.measure)
    elif args.search:
        names = args.only or list(CANDIDATES)
        unknown = [n for n in names if n not in CANDIDATES]
        if unknown:
            p.error(f"unknown candidates: {', '.join(unknown)}")
        search(args.out, names, args.seeds, args.parallel)
    else:
        p.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())
