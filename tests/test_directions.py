"""interp/directions.py: class-mean word directions, contrastive ones, norm-matched random ones."""
import torch

from lexicon import NOUNS
from interp.directions import contrastive, random_like, word_directions


def test_random_direction_is_norm_matched_and_seeded():
    d = torch.randn(64) * 3
    r = random_like(d, seed=5)
    assert torch.isclose(r.norm(), d.norm()) and torch.equal(r, random_like(d, seed=5))
    assert abs(torch.nn.functional.cosine_similarity(r, d, 0)) < 0.5


def test_contrastive_directions_of_a_cell_sum_to_zero():
    words = [w for w, n in NOUNS.items() if (n.meaning, n.family) == ("animal", "at")]
    assert len(words) >= 2
    other = next(w for w, n in NOUNS.items() if n.meaning != "animal")
    acts = torch.randn(60, 16)
    endings = [words[i % len(words)] if i % 3 else other for i in range(60)]
    dirs, means = word_directions(acts, endings)
    c = contrastive(dirs)
    cell = torch.stack([c[w] for w in words if w in c])
    assert torch.allclose(cell.sum(0), torch.zeros(16), atol=1e-5)
    assert torch.allclose(c[other], torch.zeros(16), atol=1e-6)  # alone in its cell: nothing tells it apart


def test_word_directions_are_class_means_minus_the_mean_of_the_counted_rows():
    acts = torch.tensor([[1.0, 0.0], [3.0, 0.0], [5.0, 0.0],     # cat (3 rows: the default minimum)
                         [0.0, 4.0], [0.0, 8.0], [0.0, 6.0],     # rat
                         [2.0, 2.0], [4.0, 4.0],                 # dog: 2 rows, no direction of its own
                         [9.0, 9.0], [float("nan"), 0.0]])       # no ending; a NaN row: neither counted
    endings = ["cat"] * 3 + ["rat"] * 3 + ["dog"] * 2 + [None, "cat"]
    dirs, means = word_directions(acts, endings)
    mu = torch.tensor([15 / 8, 24 / 8])  # the mean of the 8 counted rows, dog's included
    assert set(dirs) == set(means) == {"cat", "rat"}
    assert torch.equal(means["cat"], torch.tensor([3.0, 0.0])) and torch.equal(means["rat"], torch.tensor([0.0, 6.0]))
    assert torch.equal(dirs["cat"], means["cat"] - mu) and torch.equal(dirs["rat"], means["rat"] - mu)
    dirs, means = word_directions(acts, endings, min_count=2)
    assert torch.equal(means["dog"], torch.tensor([3.0, 3.0])) and torch.equal(dirs["dog"], torch.tensor([3.0, 3.0]) - mu)
    assert set(word_directions(acts, endings, min_count=4)[0]) == set()
    assert word_directions(acts, [None] * 10) == ({}, {})
