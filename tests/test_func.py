"""ptfunc.func.grad / grad_and_value against torch.func's on the same models and inputs.

The top-level fast path must give torch.func's gradients (float32, tiny configs), keep
its contract (argnums, has_aux, zeros for unused leaves, detached value and aux), hand over
to torch.func under vmap, inside another grad and under torch.compile, and use less peak
memory than torch.func.grad, whose backward keeps the whole graph (create_graph=True).
"""

from __future__ import annotations

import pytest
import torch

import ptfunc
from ptfunc import func, tree
from ptfunc.archs import bert, gpt2
from ptfunc.research.remat import peak_tensor_bytes

BERT = bert.BertForSequenceClassification(
    bert.BertConfig(
        vocab_size=40,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=16,
        num_labels=3,
    )  # fmt: skip
)
GPT2 = gpt2.GPT2LMHeadModel(gpt2.GPT2Config(vocab_size=40, n_embd=16, n_layer=2, n_head=2))
IDS = torch.randint(1, 40, (4, 9), generator=torch.Generator().manual_seed(0))
LABELS = torch.tensor([0, 2, 1, 2])


def _bert_loss(p, ids, labels):
    return BERT.apply(p, ids, labels=labels).loss


def _gpt2_loss(p, ids):
    return GPT2.apply(p, ids, labels=ids).loss


def _assert_trees_close(a, b, **tol):
    assert tree.structure(a) == tree.structure(b)
    for x, y in zip(tree.leaves(a), tree.leaves(b), strict=True):
        assert not x.requires_grad
        torch.testing.assert_close(x, y, **(tol or dict(rtol=1e-5, atol=1e-6)))


@pytest.mark.parametrize("model, loss, args", [
    (BERT, _bert_loss, (IDS, LABELS)),
    (GPT2, _gpt2_loss, (IDS,)),
])  # fmt: skip
def test_top_level_grad_and_value_equal_torch_func(model, loss, args):
    params = model.init(ptfunc.random.key(0))
    grads, value = func.grad_and_value(loss)(params, *args)
    want_grads, want_value = torch.func.grad_and_value(loss)(params, *args)
    _assert_trees_close(grads, want_grads)
    torch.testing.assert_close(value, want_value, rtol=0, atol=0)
    assert not value.requires_grad
    _assert_trees_close(func.grad(loss)(params, *args), want_grads)


def test_argnums_tuple_has_aux_and_unused_leaves():
    def f(a, b, scale):
        return (a["x"] * b["y"]).sum() * scale, {"aux": a["x"] * 2}

    a = {"x": torch.tensor([1.0, 2.0]), "unused": torch.ones(3)}
    b = {"y": torch.tensor([3.0, 4.0])}
    (ga, gb), (value, aux) = func.grad_and_value(f, argnums=(0, 1), has_aux=True)(a, b, 2.0)
    (wa, wb), (wv, waux) = torch.func.grad_and_value(f, argnums=(0, 1), has_aux=True)(a, b, 2.0)
    _assert_trees_close((ga, gb), (wa, wb))
    assert torch.equal(ga["unused"], torch.zeros(3))  # torch.func gives zeros too
    assert torch.equal(value, wv) and torch.equal(aux["aux"], waux["aux"])
    assert not aux["aux"].requires_grad
    grads, aux_only = func.grad(f, argnums=1, has_aux=True)(a, b, 2.0)
    assert torch.equal(grads["y"], 2 * a["x"]) and torch.equal(aux_only["aux"], 2 * a["x"])


def test_a_function_that_ignores_its_argument_gets_zero_grads():
    g = func.grad(lambda p: torch.tensor(1.5))({"w": torch.ones(2)})
    assert torch.equal(g["w"], torch.zeros(2))


def test_under_vmap_it_is_torch_func_per_example_grads():
    params = BERT.init(ptfunc.random.key(1))

    def one(p, ids, label):
        return _bert_loss(p, ids[None], label[None])

    got = torch.vmap(func.grad(one), in_dims=(None, 0, 0))(params, IDS, LABELS)
    want = torch.vmap(torch.func.grad(one), in_dims=(None, 0, 0))(params, IDS, LABELS)
    _assert_trees_close(got, want)
    # and each row is the top-level gradient of that example alone
    row = func.grad(one)(params, IDS[2], LABELS[2])
    _assert_trees_close(tree.map(lambda t: t[2], got), row)


def test_second_order_through_nested_grad_matches_torch_func():
    # Hessian-vector product: the outer grad's fast path, the inner one hands over
    w = torch.tensor([0.5, -1.0, 2.0])
    v = torch.tensor([1.0, 0.0, -1.0])

    def f(p):
        return (p["w"].sin() * p["w"] ** 2).sum()

    def directional(grad_fn):
        return lambda p: (grad_fn(f)(p)["w"] * v).sum()

    got = func.grad(directional(func.grad))({"w": w})["w"]
    want = torch.func.grad(directional(torch.func.grad))({"w": w})["w"]
    torch.testing.assert_close(got, want)
    exact = ((2 - w**2) * w.sin() + 4 * w * w.cos()) * v  # d2/dw2 (w^2 sin w), diagonal
    torch.testing.assert_close(got, exact)


def test_arguments_that_require_grad_keep_torch_func_semantics():
    # the gradient stays differentiable with respect to an outer autograd graph
    w = torch.tensor([1.0, 3.0], requires_grad=True)
    g = func.grad(lambda p: (p**3).sum())(w)
    assert g.requires_grad
    (outer,) = torch.autograd.grad(g.sum(), w)
    torch.testing.assert_close(outer, 6 * w.detach())
    # a keyword argument that requires grad counts too
    s = torch.tensor(2.0, requires_grad=True)
    g = func.grad(lambda p, *, scale: (scale * p**2).sum())(torch.tensor([1.0, 3.0]), scale=s)
    assert g.requires_grad
    (outer,) = torch.autograd.grad(g.sum(), s)
    torch.testing.assert_close(outer, torch.tensor(8.0))  # d/ds sum(2 s p) = 2 (1 + 3)


def test_compiled_step_uses_torch_func_and_matches_eager():
    params = GPT2.init(ptfunc.random.key(2))
    step = func.grad_and_value(_gpt2_loss)
    torch._dynamo.reset()
    compiled = torch.compile(step, fullgraph=True, backend="aot_eager")
    _assert_trees_close(compiled(params, IDS), step(params, IDS))


def test_less_peak_memory_than_torch_func():
    params = GPT2.init(ptfunc.random.key(3))
    ids = torch.randint(1, 40, (8, 32), generator=torch.Generator().manual_seed(1))
    ours = peak_tensor_bytes(func.grad(_gpt2_loss), params, ids)
    theirs = peak_tensor_bytes(torch.func.grad(_gpt2_loss), params, ids)
    assert ours < 0.8 * theirs, (ours, theirs)


def test_bad_outputs_and_arguments_are_refused():
    with pytest.raises(ValueError, match="must return a scalar tensor, got \\(2,\\)"):
        func.grad(lambda p: p["w"] * 2)({"w": torch.ones(2)})
    with pytest.raises(ValueError, match="scalar tensor, aux"):
        func.grad(lambda p: p["w"].sum(), has_aux=True)({"w": torch.ones(2)})
    with pytest.raises(TypeError, match="floating-point tensors, got one of dtype torch.int64"):
        func.grad(lambda p: p["w"].sum())({"w": torch.ones(2, dtype=torch.long)})
    with pytest.raises(ValueError, match="argnums=3 is out of range for 1"):
        func.grad(lambda p: p.sum(), argnums=3)(torch.ones(2))
