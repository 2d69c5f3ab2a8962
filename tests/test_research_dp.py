"""DP-SGD (ptfunc.research.dp) against a hand-written reference with explicit loops.

The reference follows the documented recipe example by example: global L2 norm of the
example's gradient over every leaf, scale by min(1, C / norm), sum, add
``sigma * C * ptfunc.random.normal(fold_in(fold_in(key, step), leaf_index), shape)``
(leaves in ``ptfunc.tree.leaves`` order), divide by the batch size; then SGD.
Tolerance 1e-6 absolute (float32).
"""

from __future__ import annotations

import math

import pytest
import torch

import ptfunc
from ptfunc import optim, research, tree
from ptfunc.archs import bert
from ptfunc.random import fold_in, normal

C, SIGMA, LR = 0.5, 1.3, 0.1
KEY = ptfunc.random.key(11)


def _reference_aggregate(per_example, step):
    leaves, spec = tree.flatten(per_example)
    b = leaves[0].shape[0]
    sums = [torch.zeros(x.shape[1:], dtype=x.dtype) for x in leaves]
    for i in range(b):
        norm = math.sqrt(sum(float(x[i].double().pow(2).sum()) for x in leaves))
        factor = min(1.0, C / norm) if norm > 0 else 1.0
        for j, x in enumerate(leaves):
            sums[j] = sums[j] + x[i] * factor
    out = []
    for j, s in enumerate(sums):
        noise = normal(fold_in(fold_in(KEY, step), j), (s.numel(),)).reshape(s.shape)
        out.append((s + SIGMA * C * noise) / b)
    return tree.unflatten(spec, out)


def _per_example(seed, b=5):
    g = torch.Generator().manual_seed(seed)
    return {
        "w": torch.randn(b, 3, 2, generator=g),
        "layer": [{"b": torch.randn(b, 2, generator=g) * 0.1}],
        "s": torch.randn(b, generator=g),  # a 0-d parameter
    }


def _close(a, b):
    for x, y in zip(tree.leaves(a), tree.leaves(b), strict=True):
        torch.testing.assert_close(x, y, atol=1e-6, rtol=1e-6)


def test_aggregate_matches_reference_over_steps():
    agg = research.dp_aggregate(C, SIGMA, KEY)
    state = agg.init(None)
    for t in range(3):
        pe = _per_example(t)
        pe["w"][0] *= 0.0  # a zero gradient passes unclipped (factor 1)
        got, state = agg.update(pe, state)
        _close(got, _reference_aggregate(pe, t))
        assert int(state.count) == t + 1
    # deterministic given the key and the count; fresh noise at another step
    again, _ = agg.update(_per_example(0), agg.init(None))
    _close(again, _reference_aggregate(_per_example(0), 0))
    other, _ = agg.update(_per_example(0), state)
    assert not torch.allclose(other["w"], again["w"])


def test_without_noise_it_is_the_mean_of_clipped_gradients():
    pe = {"w": torch.tensor([[3.0, 4.0], [0.0, 0.1], [0.0, 0.0]])}
    got, _ = research.dp_aggregate(1.0, 0.0, KEY).update(pe, research.DPState(torch.tensor(0)))
    torch.testing.assert_close(got["w"], torch.tensor([0.6, 0.9]) / 3)


def test_chained_with_sgd_trains_a_bert_like_the_reference():
    config = bert.BertConfig(
        vocab_size=30,
        hidden_size=8,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=16,
        max_position_embeddings=8,
        num_labels=2,
    )
    model = bert.BertForSequenceClassification(config)
    params = model.init(ptfunc.random.key(0))
    ids = torch.randint(1, 30, (4, 5), generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([0, 1, 1, 0])

    def loss_fn(p, batch):
        return model.apply(p, batch[0], labels=batch[1]).loss

    opt = optim.chain(research.dp_aggregate(C, SIGMA, KEY), optim.sgd(LR))
    assert type(research.dp_sgd(LR, l2_clip=C, noise_multiplier=SIGMA, key=KEY)) is type(opt)
    state = opt.init(params)
    ref = params
    for t in range(2):
        pe = research.per_example_grads(loss_fn, params, (ids, labels))
        params, state = optim.step(opt, pe, state, params)
        noisy = _reference_aggregate(research.per_example_grads(loss_fn, ref, (ids, labels)), t)
        ref = tree.map(lambda p, g: p - LR * g, ref, noisy)
        _close(params, ref)


def test_errors():
    with pytest.raises(ValueError, match="l2_clip"):
        research.dp_aggregate(0.0, 1.0, KEY)
    with pytest.raises(ValueError, match="noise_multiplier"):
        research.dp_aggregate(1.0, -1.0, KEY)
    agg = research.dp_aggregate(1.0, 1.0, KEY)
    with pytest.raises(ValueError, match="per-example"):
        agg.update({"a": torch.ones(3, 2), "b": torch.ones(4)}, agg.init(None))
    with pytest.raises(TypeError, match="DPState"):
        agg.update({"a": torch.ones(3, 2)}, ())
