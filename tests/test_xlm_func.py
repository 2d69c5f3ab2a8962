"""torch.func and torch.compile over XLM.

References: Python loops for ``vmap`` (an ensemble of 3 over stacked params; per-example
gradients over a batch), a central finite difference in float64 for ``jvp``, eager for
``torch.compile(fullgraph=True, backend="aot_eager")`` (a training step with keyed
dropout, and a cached decoding step), all within 1e-6 abs / 1e-5 rel.
"""

from __future__ import annotations

import pytest
import torch
from torch.func import grad, jvp, vmap

import ptfunc
from ptfunc import tree
from ptfunc.archs import xlm

CONFIG = xlm.XLMConfig(
    vocab_size=40,
    emb_dim=16,
    n_layers=2,
    n_heads=2,
    n_langs=3,
    max_position_embeddings=16,
    start_n_top=3,
    end_n_top=2,
)
GEN = torch.Generator().manual_seed(0)
IDS = torch.randint(4, 40, (3, 6), generator=GEN)
LANGS = torch.randint(0, 3, (3, 6), generator=GEN)
LENGTHS = torch.tensor([6, 4, 5])
CLOSE = dict(atol=1e-6, rtol=1e-5)


def _labels(name):
    if name == "XLMWithLMHeadModel":
        return {"labels": torch.randint(0, 40, (3, 6), generator=torch.Generator().manual_seed(1))}
    if name == "XLMForQuestionAnswering":
        return {
            "start_positions": torch.tensor([0, 1, 2]),
            "end_positions": torch.tensor([2, 3, 3]),
        }
    return {"labels": torch.tensor([0, 1, 1])}


NAMES = ["XLMWithLMHeadModel", "XLMForSequenceClassification", "XLMForQuestionAnswering"]


@pytest.mark.parametrize("name", NAMES)
def test_grad_matches_autograd(name):
    model = getattr(xlm, name)(CONFIG)
    params = model.init(ptfunc.random.key(0))
    f = lambda p: model.apply(p, IDS, langs=LANGS, lengths=LENGTHS, **_labels(name)).loss  # noqa: E731
    g = grad(f)(params)
    leaves = [t.requires_grad_() for t in tree.leaves(params)]
    loss = f(params)
    ref = torch.autograd.grad(loss, leaves, allow_unused=True)
    for a, b in zip(tree.leaves(g), ref, strict=True):
        torch.testing.assert_close(a, torch.zeros_like(a) if b is None else b, **CLOSE)


def test_vmap_ensemble_over_params_equals_loop():
    model = xlm.XLMForSequenceClassification(CONFIG)
    members = [model.init(ptfunc.random.key(i)) for i in range(3)]
    run = lambda p: model.apply(p, IDS, langs=LANGS, lengths=LENGTHS).logits  # noqa: E731
    batched = vmap(run)(tree.stack(members))
    for i, p in enumerate(members):
        torch.testing.assert_close(batched[i], run(p), **CLOSE)


def test_per_example_grads_equal_loop():
    model = xlm.XLMWithLMHeadModel(CONFIG.replace(causal=True))
    params = model.init(ptfunc.random.key(1))
    labels = _labels("XLMWithLMHeadModel")["labels"]

    def loss(p, ids, langs, lab):
        return model.apply(p, ids[None], langs=langs[None], labels=lab[None]).loss

    per_example = tree.to_flat_dict(
        vmap(grad(loss), in_dims=(None, 0, 0, 0))(params, IDS, LANGS, labels)
    )
    for i in range(3):
        one = tree.to_flat_dict(grad(loss)(params, IDS[i], LANGS[i], labels[i]))
        for n, g in one.items():
            torch.testing.assert_close(per_example[n][i], g, **CLOSE, msg=n)


@pytest.mark.parametrize("overrides", [{}, {"sinusoidal_embeddings": True, "causal": True}])
def test_jvp_matches_finite_difference_in_float64(overrides):
    model = xlm.XLMForQuestionAnswering(CONFIG.replace(**overrides))
    p64 = tree.astype(model.init(ptfunc.random.key(2)), torch.float64)
    labels = _labels("XLMForQuestionAnswering")
    f = lambda p: model.apply(p, IDS, langs=LANGS, lengths=LENGTHS, **labels).loss  # noqa: E731
    gen = torch.Generator().manual_seed(3)
    tangent = tree.map(lambda p: torch.randn(p.shape, generator=gen, dtype=p.dtype), p64)
    _, directional = jvp(f, (p64,), (tangent,))
    eps = 1e-6
    fd = (
        f(tree.map(lambda p, t: p + eps * t, p64, tangent))
        - f(tree.map(lambda p, t: p - eps * t, p64, tangent))
    ) / (2 * eps)
    torch.testing.assert_close(directional, fd, atol=1e-6, rtol=1e-5)


def test_compiled_train_step_and_cached_decode_step_equal_eager():
    model = xlm.XLMWithLMHeadModel(
        CONFIG.replace(causal=True, n_layers=1, sinusoidal_embeddings=True)
    )
    params = model.init(ptfunc.random.key(4))
    labels = _labels("XLMWithLMHeadModel")["labels"]
    cache = model.apply(params, IDS[:, :4], langs=LANGS[:, :4], use_cache=True).cache

    def step(p, ids, langs, k):
        out = model.apply(p, ids, langs=langs, lengths=LENGTHS, labels=labels, train=True, key=k)
        return out.loss, out.logits

    def decode(p, ids, c):
        out = model.apply(p, ids, cache=c)
        return out.logits, out.cache

    torch._dynamo.reset()
    key = ptfunc.random.key(5)
    for fn, args in ((step, (params, IDS, LANGS, key)), (decode, (params, IDS[:, 4:5], cache))):
        compiled = torch.compile(fn, fullgraph=True, backend="aot_eager")
        for a, b in zip(tree.leaves(compiled(*args)), tree.leaves(fn(*args)), strict=True):
            torch.testing.assert_close(a, b, **CLOSE)


def test_dropout_is_a_function_of_the_key_and_generate_uses_the_cache():
    model = xlm.XLMWithLMHeadModel(CONFIG.replace(causal=True))
    params = model.init(ptfunc.random.key(6))
    a = model.apply(params, IDS, train=True, key=ptfunc.random.key(7)).logits
    b = model.apply(params, IDS, train=True, key=ptfunc.random.key(7)).logits
    c = model.apply(params, IDS, train=True, key=ptfunc.random.key(8)).logits
    assert torch.equal(a, b) and not torch.equal(a, c)
    cached = ptfunc.generate(model, params, IDS[:, :3], max_new_tokens=4)
    recomputed = ptfunc.generate(model, params, IDS[:, :3], max_new_tokens=4, use_cache=False)
    assert torch.equal(cached, recomputed) and cached.shape == (3, 7)
    # greedy by hand, recomputing everything
    ids = IDS[:, :3]
    for _ in range(4):
        nxt = model.apply(params, ids).logits[:, -1].argmax(-1, keepdim=True)
        ids = torch.cat([ids, nxt], dim=1)
    assert torch.equal(cached, ids)
