"""interp/edits.py: an edit is data, and it changes exactly its row, position and head (docs/mutation.md)."""
import pytest
import torch

from interp.edits import Edit, changes_nothing, edit_hooks


def test_changes_nothing_is_a_set_to_the_value_already_there_or_adding_zero():
    clean = torch.tensor([1.0, -2.0, 0.5])
    assert changes_nothing(Edit("h", 0, clean.clone()), clean)
    assert changes_nothing(Edit("h", 0, clean.double()), clean)  # compared in the activation's dtype:
    assert changes_nothing(Edit("h", 0, clean.double() + 1e-12), clean)  # a float64 value that rounds to it
    assert not changes_nothing(Edit("h", 0, clean + 1e-3), clean)
    assert not changes_nothing(Edit("h", 0, torch.zeros(3)), clean)  # setting zero is not adding zero
    assert changes_nothing(Edit("h", 0, torch.zeros(3), "add"), None)
    assert not changes_nothing(Edit("h", 0, torch.tensor([0.0, 1e-6, 0.0]), "add"), None)


def test_edit_hooks_set_or_add_at_each_rows_position_and_nowhere_else():
    x = torch.arange(24, dtype=torch.float32).reshape(2, 4, 3)  # (B, T, C)
    v, w = torch.tensor([10.0, 20.0, 30.0], dtype=torch.float64), torch.ones(3, dtype=torch.float64)
    [(name, fn)] = edit_hooks([[Edit("blocks.0.hook_resid_pre", 2, v)], None])
    want = x.clone()
    want[0, 2] = v.float()
    assert name == "blocks.0.hook_resid_pre" and torch.equal(fn(x), want)
    assert torch.equal(x, torch.arange(24, dtype=torch.float32).reshape(2, 4, 3))  # a copy: x itself unchanged
    hooks = edit_hooks([[Edit("h", 1, w, "add"), Edit("h", 3, v)], [Edit("h", 0, w, "add"), Edit("g", 1, v)]])
    assert [n for n, _ in hooks] == ["h", "h", "g"]  # one hook per (name, op), rows batched
    out = {}
    for n, f in hooks:
        out[n] = f(out.get(n, x))
    want = x.clone()
    want[0, 1] += 1
    want[1, 0] += 1
    want[0, 3] = v.float()
    assert torch.equal(out["h"], want) and out["h"].dtype == torch.float32
    want = x.clone()
    want[1, 1] = v.float()
    assert torch.equal(out["g"], want)
    heads = torch.zeros(2, 2, 4, 3)  # (B, H, T, D): per-head hooks name the position on dim 2
    [(_, fn)] = edit_hooks([None, [Edit("blocks.0.attn.hook_k", 3, torch.ones(2, 3))]])
    want = heads.clone()
    want[1, :, 3] = 1.0
    assert torch.equal(fn(heads), want)
    assert edit_hooks([None, []]) == []
    with pytest.raises(ValueError, match="^unknown edit op 'mul'$"):
        edit_hooks([[Edit("h", 0, w, "mul")]])
    for name, shape, pos in (("h", (2, 4, 3), 4), ("blocks.0.attn.hook_q", (2, 2, 4, 3), 4)):
        [(_, fn)] = edit_hooks([[Edit(name, pos, torch.ones(shape[-1]) if len(shape) == 3 else torch.ones(2, 3))]])
        with pytest.raises(ValueError, match="^an edit names a position past the end of the sequence$"):
            fn(torch.zeros(shape))


def test_an_edit_of_one_head_changes_that_head_only_and_needs_a_per_head_hook():
    x = torch.zeros(2, 3, 4, 2)  # (B, H, T, D)
    [(name, fn)] = edit_hooks([None, [Edit("blocks.1.attn.hook_z", 2, torch.tensor([1.0, 2.0]), "add", head=1)]])
    want = x.clone()
    want[1, 1, 2] = torch.tensor([1.0, 2.0])
    assert name == "blocks.1.attn.hook_z" and torch.equal(fn(x), want)
    [(_, fn)] = edit_hooks([[Edit("blocks.0.attn.hook_v", 0, torch.ones(2), head=2),
                             Edit("blocks.0.attn.hook_v", 3, torch.full((2,), 5.0), head=0)]])
    want = x.clone()
    want[0, 2, 0] = 1.0
    want[0, 0, 3] = 5.0
    assert torch.equal(fn(x), want)
    import re
    msg = re.escape("an edit of one head needs a per-head hook (attn.hook_q, attn.hook_k, attn.hook_v, attn.hook_z, "
                    "attn.hook_rot_q, attn.hook_rot_k), got blocks.0.hook_resid_pre")
    with pytest.raises(ValueError, match=f"^{msg}$"):
        edit_hooks([[Edit("blocks.0.hook_resid_pre", 0, torch.ones(2), head=0)]])


def test_batches_group_equal_lengths_shortest_first_in_chunks_of_at_most_size():
    from interp.edits import _batches
    assert list(_batches([3, 1, 3, 3, 1, 2], 2)) == [[1, 4], [5], [0, 2], [3]]
    assert list(_batches([4, 4, 4], 512)) == [[0, 1, 2]] and list(_batches([], 3)) == []


def test_pad_batch_right_pads_with_pad():
    from data import PAD
    from interp.edits import pad_batch
    out = pad_batch([[5, 6, 7], [8], [9, 10]])
    assert out.dtype == torch.long and torch.equal(out, torch.tensor([[5, 6, 7], [8, PAD, PAD], [9, 10, PAD]]))
