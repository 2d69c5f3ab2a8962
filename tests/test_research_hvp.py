"""ptfunc.research.hvp against ``torch.autograd.functional`` on the flattened parameter vector.

References: ``torch.autograd.functional.hvp`` (reverse-over-reverse, float64) for a tiny
BERT classifier; the explicit Hessian (``torch.autograd.functional.hessian``) for
Hutchinson's estimate with the same Rademacher vectors. Tolerance 1e-8 (float64).
"""

from __future__ import annotations

import pytest
import torch

import ptfunc
from ptfunc import research, tree
from ptfunc.archs import bert


def _flat_fn(loss_fn, params):
    """loss as a function of one flat vector, and the flattening helpers."""
    leaves, spec = tree.flatten(params)
    shapes = [x.shape for x in leaves]
    sizes = [x.numel() for x in leaves]

    def unflat(v):
        return tree.unflatten(spec, [c.reshape(s) for c, s in zip(v.split(sizes), shapes)])

    def flat(t):
        return torch.cat([x.reshape(-1) for x in tree.leaves(t)])

    return (lambda v: loss_fn(unflat(v))), flat, unflat


def test_hvp_equals_autograd_on_a_tiny_bert():
    config = bert.BertConfig(
        vocab_size=20,
        hidden_size=8,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=12,
        max_position_embeddings=8,
        num_labels=2,
    )
    model = bert.BertForSequenceClassification(config)
    params = tree.astype(model.init(ptfunc.random.key(0)), torch.float64)
    ids = torch.randint(1, 20, (3, 5), generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([0, 1, 1])

    def loss_fn(p, ids, labels):
        # a head mask of ones keeps the loss and selects the explicit attention path, which
        # the reference needs: CPU's fused attention kernel has no double backward
        head_mask = torch.ones(1, 2, dtype=torch.float64)
        return model.apply(p, ids, labels=labels, head_mask=head_mask).loss

    g = torch.Generator().manual_seed(1)
    v = tree.map(lambda x: torch.randn(x.shape, generator=g, dtype=x.dtype), params)
    got = research.hvp(loss_fn, params, v, ids, labels)

    f, flat, _ = _flat_fn(lambda p: loss_fn(p, ids, labels), params)
    _, want = torch.autograd.functional.hvp(f, flat(params), flat(v))
    torch.testing.assert_close(flat(got), want, atol=1e-8, rtol=1e-7)


def test_hutchinson_uses_the_documented_vectors():
    g = torch.Generator().manual_seed(2)
    params = {
        "w": torch.randn(3, 2, generator=g, dtype=torch.float64),
        "b": [torch.randn(2, generator=g, dtype=torch.float64)],
    }
    x = torch.randn(4, 3, generator=g, dtype=torch.float64)

    def loss_fn(p, x):
        return torch.tanh(x @ p["w"] + p["b"][0]).pow(2).sum()

    key = ptfunc.random.key(5)
    got = research.hessian_trace_estimate(loss_fn, params, x, key=key, num_samples=6)

    f, flat, _ = _flat_fn(lambda p: loss_fn(p, x), params)
    hessian = torch.autograd.functional.hessian(f, flat(params))
    quad = []
    for s in range(6):
        v = flat(research.rademacher_like(ptfunc.random.fold_in(key, s), params))
        assert set(v.tolist()) <= {-1.0, 1.0}
        quad.append(v @ hessian @ v)
    torch.testing.assert_close(got, torch.stack(quad).mean(), atol=1e-8, rtol=1e-8)
    # unbiased: 100 samples lie within 4 standard deviations of the exact trace
    # (Rademacher variance of v'Hv: 2 * sum of squared off-diagonal entries)
    many = research.hessian_trace_estimate(loss_fn, params, x, key=key, num_samples=100)
    off = hessian - torch.diag(hessian.diagonal())
    std = float((2 * off.pow(2).sum() / 100).sqrt())
    assert abs(float(many) - float(hessian.trace())) < 4 * std

    with pytest.raises(ValueError, match="num_samples"):
        research.hessian_trace_estimate(loss_fn, params, x, key=key, num_samples=0)
