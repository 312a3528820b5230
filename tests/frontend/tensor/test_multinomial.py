"""multinomial: frequencies against the weights, no repeats without replacement, zero weights
never drawn, int64 shapes, reproducible under manual_seed eagerly and compiled (new draws per
call), PyTorch's errors."""
import numpy as np
import pytest

import fusegrad


def test_with_replacement_frequencies_follow_the_weights():
    fusegrad.manual_seed(1)
    w = np.array([0.5, 0.0, 3.0, 1.5, 1.0])
    s = fusegrad.multinomial(fusegrad.tensor(w), 30000, replacement=True)
    assert s.dtype == fusegrad.int64 and tuple(s.shape) == (30000,)
    freq = np.bincount(s.numpy(), minlength=5) / 30000
    assert freq[1] == 0
    np.testing.assert_allclose(freq, w / w.sum(), atol=0.012)


def test_without_replacement_rows():
    fusegrad.manual_seed(2)
    w = fusegrad.tensor([[1.0, 2.0, 0.0, 4.0, 0.5], [0.0, 0.0, 1.0, 1.0, 1.0]])
    for _ in range(20):
        s = w.multinomial(3).numpy()
        assert s.shape == (2, 3)
        for row, weights in zip(s, w.numpy()):
            assert len(set(row.tolist())) == 3 and all(weights[i] > 0 for i in row)
    firsts = np.bincount([w.multinomial(1)[0, 0].item() for _ in range(400)], minlength=5) / 400
    np.testing.assert_allclose(firsts, np.array([1.0, 2.0, 0.0, 4.0, 0.5]) / 7.5, atol=0.08)
    assert w.multinomial(5, replacement=True).shape == (2, 5)


def test_reproducible_under_manual_seed_and_compiled():
    w = fusegrad.tensor([[0.2, 0.3, 0.5], [1.0, 1.0, 1.0]])
    fusegrad.manual_seed(7)
    a = w.multinomial(6, replacement=True).numpy()
    fusegrad.manual_seed(7)
    b = fusegrad.multinomial(w, 6, True).numpy()
    np.testing.assert_array_equal(a, b)

    @fusegrad.compile
    def draw(w):
        return w.multinomial(50, replacement=True), w.multinomial(2)

    fusegrad.manual_seed(3)
    first = [t.numpy().copy() for t in draw(w)]
    second = [t.numpy().copy() for t in draw(w)]
    assert not np.array_equal(first[0], second[0])             # the compiled step advances the stream
    fusegrad.manual_seed(3)
    again = [t.numpy() for t in draw(w)]
    for x, y in zip(first, again):
        np.testing.assert_array_equal(x, y)
    g = fusegrad.random.Generator(11)
    h = fusegrad.random.Generator(11)
    np.testing.assert_array_equal(w.multinomial(4, True, generator=g).numpy(),
                                  w.multinomial(4, True, generator=h).numpy())


def test_errors():
    w = fusegrad.tensor([1.0, 0.0, 2.0])
    with pytest.raises(RuntimeError, match=r"n_sample > prob_dist.size\(-1\) samples without replacement.*test_mult"):
        w.multinomial(4)
    assert sorted(w.multinomial(3).tolist()[:2]) == [0, 2]       # zero weights come last (as PyTorch)
    with pytest.raises(RuntimeError, match="probability tensor contains either `inf`, `nan` or element < 0"):
        fusegrad.tensor([1.0, -1.0]).multinomial(1)
    with pytest.raises(RuntimeError, match=r"sum of probabilities <= 0"):
        fusegrad.zeros(2, 3).multinomial(1, replacement=True)
    with pytest.raises(RuntimeError, match="prob_dist must be 1 or 2 dim"):
        fusegrad.ones(2, 2, 2).multinomial(1)
    with pytest.raises(RuntimeError, match="cannot sample n_sample <= 0 samples"):
        w.multinomial(0)


def test_errors_like_pytorch():
    torch = pytest.importorskip("torch")
    cases = [([1.0, 0.0, 2.0], 4, False), ([1.0, -1.0], 1, True), ([[0.0, 0.0]], 1, True)]
    for weights, k, repl in cases:
        with pytest.raises(RuntimeError) as t:
            torch.tensor(weights).multinomial(k, repl)
        with pytest.raises(RuntimeError) as f:
            fusegrad.tensor(weights).multinomial(k, repl)
        assert str(t.value) in str(f.value)
