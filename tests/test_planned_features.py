"""Planned-word features: the criterion is about one word, and an ablation edit removes exactly one
feature's writes."""
import torch

from data import CoupletWorld, WorldConfig
from interp.edits import edit_hooks
from interp.planned_features import ablation_edits, rivals, stands_for
from interp.transcoder import CrossLayerTranscoder, out_name
from lexicon import NOUNS
from model import GPT, GPTConfig


def test_a_drop_counts_only_when_it_is_about_the_word_alone():
    world = CoupletWorld(WorldConfig(n_train=10, n_test=10))
    word = next(w for w in NOUNS if rivals(w))
    rival = rivals(word)[0]
    drops = torch.zeros(len(world.itos))
    drops[world.stoi[word]] = 2.0
    assert stands_for(drops, word, world.stoi)
    drops[world.stoi[rival]] = 1.8  # a family- or meaning-wide drop
    assert not stands_for(drops, word, world.stoi)
    drops[world.stoi[rival]], drops[world.stoi[word]] = 0.0, 0.5  # too small
    assert not stands_for(drops, word, world.stoi)
    unrelated = next(w for w in NOUNS if w != word and w not in rivals(word))
    drops[world.stoi[word]], drops[world.stoi[unrelated]] = 2.0, 5.0  # nouns sharing nothing are ignored
    assert stands_for(drops, word, world.stoi)


def test_ablation_removes_exactly_the_features_writes_at_its_position():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=50, block_size=12, n_layer=3, n_head=2, d_model=16, d_mlp=32)).eval()
    clt = CrossLayerTranscoder(3, 16, 8)
    idx = torch.randint(4, 50, (1, 10))
    names = [out_name(l) for l in range(3)]
    _, clean = model.run_with_cache(idx, names=names)
    edits = ablation_edits(clt, 1, 6, [0.7, 1.5], [2, 5])
    _, edited = model.run_with_cache(idx, names=names, hooks=edit_hooks([edits]))
    want = -(0.7 * clt.decoder(1, 1)[2] + 1.5 * clt.decoder(1, 1)[5])
    diff = edited[out_name(1)] - clean[out_name(1)]
    assert torch.allclose(diff[0, 6], want, atol=1e-6)
    assert diff[0, torch.arange(10) != 6].abs().max() == 0  # no other position
    assert torch.equal(edited[out_name(0)], clean[out_name(0)])  # no earlier layer
    assert len(edits) == 2 and {e.hook for e in edits} == {out_name(1), out_name(2)}


def test_the_cell_level_forgives_cell_mates_only():
    world = CoupletWorld(WorldConfig(n_train=10, n_test=10))
    word = next(w for w, n in NOUNS.items()
                if any(v != w and m.family == n.family and m.meaning == n.meaning for v, m in NOUNS.items()))
    n = NOUNS[word]
    mate = next(v for v, m in NOUNS.items() if v != word and m.family == n.family and m.meaning == n.meaning)
    drops = torch.zeros(len(world.itos))
    drops[world.stoi[word]] = drops[world.stoi[mate]] = 2.0  # "animal that rhymes with -at"
    assert not stands_for(drops, word, world.stoi) and stands_for(drops, word, world.stoi, "cell")
    rhyme_only = next(v for v, m in NOUNS.items() if m.family == n.family and m.meaning != n.meaning)
    drops[world.stoi[rhyme_only]] = 2.0  # "rhymes with -at": neither level
    assert not stands_for(drops, word, world.stoi, "cell")


def test_length_features_switch_the_opener_into_a_valid_couplet(tiny_run):
    """Every feature the criterion reports, ablated alone at the line break, really changes the opener's
    length and writes a valid couplet ending in another word; both positions count the same prompts."""
    from couplet_rules import check_couplet
    from data import CoupletWorld, WorldConfig
    from model import load_checkpoint
    from interp.edits import write_line2, activations
    from interp.planned_features import length_features, ablation_edits
    from interp.shape import opener_length
    from interp.transcoder import CLTConfig, get_clt, in_name
    model, ckpt = load_checkpoint(tiny_run[0])
    world = CoupletWorld(WorldConfig(**ckpt["world_config"]))
    clt, _ = get_clt(model, world, None, CLTConfig(steps=30, n_couplets=200))
    line1s = [c.line1 for c in world.split("test")[:40]]
    line2s = [c.line2 for c in world.split("test")[:40]]  # valid couplets, so the eligibility rule is exercised
    out = length_features(model, clt, world, line1s, line2s)
    assert out["nl"]["n"] == out["seen"]["n"] == out["n_eligible"] > 0
    assert all(not check_couplet(line1s[i], line2s[i], world.config) for i in out["eligible"])
    for i, hits in zip(out["eligible"], out["features"]):
        l1, l2 = line1s[i], line2s[i]
        for layer, f in hits[:1]:
            pos = len(world.prompt_ids(l1)) - 1
            x = activations(model, world, [l1], [[]], [in_name(layer)])[in_name(layer)][0][pos]
            a = clt.encode(x[None], layer)[0, f].item()
            w = write_line2(model, world, [l1], [ablation_edits(clt, layer, pos, [a], [f])])[0]
            assert opener_length(w) != opener_length(l2) and not check_couplet(l1, w, world.config)
