"""The models the full study trains (`python train.py --all`), each changing one documented thing
from the main model, so that the report can ask *why* the plan lives where it does.

Each variant is (world overrides, model overrides, train overrides, what it changes and why).
The main model is `out/model.pt`; a variant NAME is `out/worlds/NAME/model.pt`.
"""
import os

VARIANTS = {
    "barrier": ({}, {"nl_barrier": True}, {},
                "architecture: line-2 tokens may attend only to the line break and to line 2 itself, so anything "
                "line 2 needs from line 1 must be stored at the line break (the study's planning site) before "
                "line 2 starts."),
    "window": ({}, {"attn_window": 6}, {},
               "architecture: each token attends only to itself and the 5 tokens before it, so the end of line 2 "
               "cannot see line 1 at all: whatever it needs must be carried forward, token to token, through the "
               "line break and line 2's own words. The reader's 'smeared' hypothesis, forced and tested directly."),
    "myopic": ({}, {"myopic": True}, {},
               "training: the loss at a position sends no gradient into earlier positions (Wu, Morris & Levine "
               "2024), so nothing is computed early for the sake of later tokens (no pre-caching); only "
               "breadcrumbs — features that help the next token anyway — can survive."),
}


def checkpoint_path(out, name):
    return os.path.join(out, "model.pt") if name == "main" else os.path.join(out, "worlds", name, "model.pt")
