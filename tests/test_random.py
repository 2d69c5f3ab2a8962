"""ptfunc.random: explicit keys, reproducible draws, vmap/compile behaviour, dropout."""

from __future__ import annotations

import pytest
import torch
from torch.func import vmap

import ptfunc
from ptfunc import random
from ptfunc.archs import bert
from ptfunc.layers import dropout


def test_same_key_same_bits_and_different_keys_differ():
    k = random.key(0)
    assert torch.equal(random.uniform(k, (100,)), random.uniform(k, (100,)))
    assert not torch.equal(random.uniform(k, (100,)), random.uniform(random.key(1), (100,)))
    a, b = random.split(k)
    assert not torch.equal(random.uniform(a, (100,)), random.uniform(b, (100,)))
    assert not torch.equal(random.fold_in(k, 1), random.fold_in(k, 2))


def test_uniform_statistics_match_the_uniform_distribution():
    """Mean 1/2, variance 1/12, and a chi-square test over 20 bins (reference: U[0, 1))."""
    u = random.uniform(random.key(3), (200_000,))
    assert u.min() >= 0 and u.max() < 1
    assert abs(u.mean().item() - 0.5) < 0.005
    assert abs(u.var().item() - 1 / 12) < 0.002
    counts = torch.histc(u, bins=20, min=0, max=1)
    expected = u.numel() / 20
    chi2 = ((counts - expected) ** 2 / expected).sum().item()
    assert chi2 < 43.8  # 99.9% quantile of chi-square with 19 degrees of freedom


def test_normal_statistics():
    n = random.normal(random.key(4), (200_000,))
    assert abs(n.mean().item()) < 0.01 and abs(n.std().item() - 1) < 0.01


def test_bernoulli_rate():
    m = random.bernoulli(random.key(5), 0.3, (100_000,))
    assert m.dtype == torch.bool and abs(m.float().mean().item() - 0.3) < 0.01


def test_split_keys_are_independent_streams():
    keys = random.split(random.key(6), 8)
    draws = torch.stack([random.uniform(k, (5000,)) for k in keys])
    corr = torch.corrcoef(draws)
    off_diagonal = corr[~torch.eye(8, dtype=torch.bool)]
    assert off_diagonal.abs().max() < 0.06


def test_vmap_over_keys_equals_loop_and_batched_keys():
    keys = random.split(random.key(7), 4)
    batched = vmap(lambda k: random.uniform(k, (3, 5)))(keys)
    looped = torch.stack([random.uniform(k, (3, 5)) for k in keys])
    assert torch.equal(batched, looped)
    assert torch.equal(random.uniform(keys, (3, 5)), looped)
    assert torch.equal(vmap(random.split)(keys), torch.stack([random.split(k) for k in keys]))


def test_compiled_draw_is_bit_identical_to_eager():
    f = torch.compile(lambda k: random.uniform(k, (4, 33)), fullgraph=True)
    k = random.key(8)
    assert torch.equal(f(k), random.uniform(k, (4, 33)))


def test_keys_are_validated():
    with pytest.raises(TypeError, match="random key"):
        random.uniform(torch.zeros(2), (3,))
    with pytest.raises(TypeError, match="seed must be an int"):
        random.key(1.5)
    with pytest.raises(ValueError, match="num >= 1"):
        random.split(random.key(0), 0)


def test_dropout_is_a_function_of_the_key():
    x = torch.ones(1000)
    k = random.key(9)
    a = dropout.apply(x, 0.25, key=k, train=True)
    assert torch.equal(a, dropout.apply(x, 0.25, key=k, train=True))
    assert abs((a == 0).float().mean().item() - 0.25) < 0.05
    assert torch.allclose(a[a != 0], torch.full_like(a[a != 0], 1 / 0.75))
    assert torch.equal(dropout.apply(x, 0.25, key=None, train=False), x)
    with pytest.raises(ValueError, match="key"):
        dropout.apply(x, 0.25, key=None, train=True)


CONFIG = bert.BertConfig(
    vocab_size=40,
    hidden_size=16,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=20,
    max_position_embeddings=16,
)


def test_model_dropout_reproducible_and_vmap_over_keys_equals_loop():
    model = bert.BertForSequenceClassification(CONFIG)
    params = model.init(random.key(0))
    ids = torch.randint(0, 40, (2, 8), generator=torch.Generator().manual_seed(0))

    def logits(k):
        return model.apply(params, ids, train=True, key=k).logits

    k = random.key(10)
    assert torch.equal(logits(k), logits(k))
    assert not torch.equal(logits(k), logits(random.key(11)))
    assert not torch.equal(logits(k), model.apply(params, ids).logits)
    keys = random.split(k, 3)
    # Same masks; batched matmuls may round differently in the last bit, hence allclose.
    torch.testing.assert_close(
        vmap(logits)(keys), torch.stack([logits(kk) for kk in keys]), atol=1e-6, rtol=1e-5
    )


def test_vmap_dropout_over_keys_is_bit_identical_to_loop():
    x = torch.randn(4, 8, generator=torch.Generator().manual_seed(0))
    keys = random.split(random.key(12), 5)
    batched = vmap(lambda k: dropout.apply(x, 0.5, key=k, train=True))(keys)
    looped = torch.stack([dropout.apply(x, 0.5, key=k, train=True) for k in keys])
    assert torch.equal(batched, looped)
    assert not torch.equal(batched[0], batched[1])


def test_train_without_key_is_a_clear_error():
    model = bert.BertModel(CONFIG)
    params = model.init(random.key(0))
    with pytest.raises(ValueError, match="needs a random key"):
        model.apply(params, torch.zeros(1, 4, dtype=torch.long), train=True)
    head = bert.BertForMaskedLM(CONFIG)
    with pytest.raises(ValueError, match="needs a random key"):
        head.apply(head.init(random.key(0)), torch.zeros(1, 4, dtype=torch.long), train=True)


def test_init_is_deterministic_in_the_key():
    model = bert.BertModel(CONFIG)
    a, b = model.init(random.key(1)), model.init(random.key(1))
    c = model.init(random.key(2))
    flat_a, flat_b, flat_c = (ptfunc.tree.to_flat_dict(p) for p in (a, b, c))
    assert all(torch.equal(flat_a[n], flat_b[n]) for n in flat_a)
    assert not torch.equal(
        flat_a["embeddings.word_embeddings.weight"], flat_c["embeddings.word_embeddings.weight"]
    )


def test_scalar_shapes_are_drawn():
    # A 0-d draw is the first element of the same stream drawn flat (shape (1,)).
    key = random.key(5)
    assert random.normal(key, ()).shape == ()
    assert random.normal(key, ()) == random.normal(key, (1,))[0]
    assert random.bits(key, ()) == random.bits(key, (1,))[0]
