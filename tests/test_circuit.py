"""The circuit, head by head (interp/circuit.py): each test checks what a number's name promises."""
import pytest
import torch

from data import CoupletWorld, WorldConfig
from model import GPT, GPTConfig
from interp.edits import Edit, edit_hooks

CLASSIC = WorldConfig(n_train=3000, n_test=200)


def random_model(world, seed=0, n_layer=2, n_head=2):
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=len(world.itos), block_size=world.max_len(), n_layer=n_layer, n_head=n_head,
                         d_model=32, d_mlp=64)).eval()


# ---- 1. an edit of one head ---------------------------------------------------------------------------------
def test_an_edit_of_one_head_changes_that_head_alone_at_that_position():
    world = CoupletWorld(CLASSIC)
    model = random_model(world, n_head=4)
    ids = torch.tensor([world.prompt_ids(world.split("test")[0].line1)] * 2)  # row 1: no edit
    name = "blocks.1.attn.hook_z"
    _, clean = model.run_with_cache(ids, names=[name])
    for op, value in (("set", torch.full((8,), 7.0)), ("add", torch.ones(8))):
        hooks = edit_hooks([[Edit(name, 3, value, op, head=2)], None])
        _, cache = model.run_with_cache(ids, names=[name], hooks=hooks)
        changed = (cache[name] != clean[name]).any(-1)  # (B, H, T)
        assert changed[0, 2, 3] and changed.sum() == 1, op  # row 0, head 2, position 3: nothing else
        want = value if op == "set" else clean[name][0, 2, 3] + value
        assert torch.allclose(cache[name][0, 2, 3], want)
    with pytest.raises(ValueError, match="per-head hook"):
        edit_hooks([[Edit("blocks.1.hook_resid_pre", 3, torch.zeros(32), head=0)]])
