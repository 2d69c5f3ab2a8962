"""``apply(..., remat=True)``: activation checkpointing in every architecture.

References: the same model without remat (same params, inputs and dropout keys).
Gradients must agree to 1e-6 (in practice they are bitwise equal: the recomputation
runs the same ops on the same inputs, and dropout masks come from explicit keys).
Memory is measured, not timed: bytes saved for backward (autograd's saved-tensor
hooks) and the peak of live tensor storages over the whole step (a dispatch mode).
"""

from __future__ import annotations

import pytest
import torch

import ptfunc
from ptfunc import tree
from ptfunc.archs import bert, gpt2, openai_gpt, transfo_xl, xlm, xlnet
from ptfunc.layers.remat import checkpoint
from ptfunc.research.remat import peak_tensor_bytes, saved_tensor_bytes

TOL = 1e-6
B, S = 2, 8
IDS = torch.randint(1, 30, (B, S), generator=torch.Generator().manual_seed(0))


def _bert():
    c = bert.BertConfig(
        vocab_size=30,
        hidden_size=16,
        num_hidden_layers=3,
        num_attention_heads=2,
        intermediate_size=24,
        max_position_embeddings=32,
    )
    m = bert.BertForSequenceClassification(c)
    labels = torch.tensor([0, 1])
    return m, lambda p, r, k: m.apply(p, IDS, labels=labels, train=True, key=k, remat=r).loss


def _openai_gpt():
    c = openai_gpt.OpenAIGPTConfig(vocab_size=30, n_positions=16, n_embd=16, n_layer=3, n_head=2)
    m = openai_gpt.OpenAIGPTLMHeadModel(c)
    return m, lambda p, r, k: m.apply(p, IDS, labels=IDS, train=True, key=k, remat=r).loss


def _gpt2():
    c = gpt2.GPT2Config(vocab_size=30, n_positions=16, n_embd=16, n_layer=3, n_head=2)
    m = gpt2.GPT2LMHeadModel(c)
    return m, lambda p, r, k: m.apply(p, IDS, labels=IDS, train=True, key=k, remat=r).loss


def _transfo_xl():
    c = transfo_xl.TransfoXLConfig(
        vocab_size=30, cutoffs=[10, 20], d_model=16, d_embed=16, n_head=2, d_head=8,
        d_inner=32, div_val=2, n_layer=3, mem_len=4, clamp_len=6, dropatt=0.1,
    )  # fmt: skip
    m = transfo_xl.TransfoXLLMHeadModel(c)
    targets = torch.roll(IDS, -1, dims=1)  # 1.0's labels: the next token, not shifted inside

    def loss(p, r, k):  # mems=None: 1.0's zero memories
        return m.apply(p, IDS, labels=targets, train=True, key=k, remat=r).loss

    return m, loss


def _xlnet():
    c = xlnet.XLNetConfig(vocab_size=30, d_model=16, n_layer=3, n_head=2, d_inner=24, mem_len=4)
    m = xlnet.XLNetLMHeadModel(c)
    perm = torch.zeros(B, S, S)
    perm[:, :, -1] = 1.0
    target = torch.zeros(B, 1, S)
    target[:, 0, -1] = 1.0

    def loss(p, r, k):
        out = m.apply(
            p, IDS, perm_mask=perm, target_mapping=target, labels=IDS[:, -1:], train=True,
            key=k, remat=r,
        )  # fmt: skip
        return out.loss

    return m, loss


def _xlm():
    c = xlm.XLMConfig(
        vocab_size=30, emb_dim=16, n_layers=3, n_heads=2, n_langs=2, max_position_embeddings=16
    )
    m = xlm.XLMWithLMHeadModel(c)
    return m, lambda p, r, k: m.apply(p, IDS, labels=IDS, train=True, key=k, remat=r).loss


ARCHS = {
    "bert": _bert,
    "openai_gpt": _openai_gpt,
    "gpt2": _gpt2,
    "transfo_xl": _transfo_xl,
    "xlnet": _xlnet,
    "xlm": _xlm,
}


def _max_diff(a, b) -> float:
    return max((x - y).abs().max().item() for x, y in zip(tree.leaves(a), tree.leaves(b)))


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_func_grad_equal_with_and_without_remat(arch):
    """torch.func.grad, dropout on, same key: loss and gradients of every leaf agree."""
    model, loss = ARCHS[arch]()
    params = model.init(ptfunc.random.key(0))
    key = ptfunc.random.key(1)
    g_ref, l_ref = torch.func.grad_and_value(loss)(params, False, key)
    g_rem, l_rem = torch.func.grad_and_value(loss)(params, True, key)
    assert torch.equal(l_ref, l_rem)
    assert tree.structure(g_ref) == tree.structure(g_rem)
    assert _max_diff(g_ref, g_rem) <= TOL
    # the dropout key matters: another key gives another loss (dropout really is on)
    assert not torch.equal(loss(params, True, ptfunc.random.key(2)), l_rem)


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_backward_equal_with_and_without_remat(arch):
    """Plain autograd (loss.backward()) through torch.utils.checkpoint."""
    model, loss = ARCHS[arch]()
    params = model.init(ptfunc.random.key(0))
    key = ptfunc.random.key(1)
    grads = []
    for remat in (False, True):
        p = tree.map(lambda t: t.detach().clone().requires_grad_(t.is_floating_point()), params)
        loss(p, remat, key).backward()
        grads.append([t.grad for t in tree.leaves(p) if t.requires_grad])
    assert [g is None for g in grads[0]] == [g is None for g in grads[1]]
    pairs = [(a, b) for a, b in zip(*grads) if a is not None]
    assert len(pairs) > len(grads[0]) // 2
    assert max((a - b).abs().max().item() for a, b in pairs) <= TOL


def test_outputs_equal_and_no_grad_is_plain_call():
    model = bert.BertModel(_bert()[0].config)
    params = model.init(ptfunc.random.key(0))
    kw = dict(train=True, key=ptfunc.random.key(3), output_attentions=True)
    with torch.no_grad():
        a = model.apply(params, IDS, **kw)
        b = model.apply(params, IDS, remat=True, **kw)
    assert _max_diff(a, b) == 0.0
    c = model.apply(params, IDS, remat=True, **kw)  # grad mode on, no params requiring grad
    assert _max_diff(a, c) == 0.0


def test_head_mask_gradient_with_remat():
    """The bertology signal (d loss / d head_mask) flows through checkpointed layers."""
    model, _ = _bert()
    params = model.init(ptfunc.random.key(0))
    labels = torch.tensor([0, 1])

    def loss(head_mask, remat):
        return model.apply(params, IDS, labels=labels, head_mask=head_mask, remat=remat).loss

    ones = torch.ones(3, 2)
    ref = torch.func.grad(loss)(ones, False)
    assert torch.allclose(torch.func.grad(loss)(ones, True), ref, atol=TOL, rtol=0)
    hm = ones.clone().requires_grad_()
    loss(hm, True).backward()
    assert torch.allclose(hm.grad, ref, atol=TOL, rtol=0)


def test_per_example_grads_and_hvp_with_remat():
    """vmap(grad) (per-example gradients) and grad(grad) (Hessian-vector products)."""
    model = bert.BertModel(_bert()[0].config)
    params = model.init(ptfunc.random.key(0))

    key = ptfunc.random.key(4)

    def loss(p, ids, remat):
        # train=True (dropout) takes the explicit attention path: the fused CPU kernel has
        # no double backward, with or without remat
        out = model.apply(p, ids[None], remat=remat, train=True, key=key)
        return out.last_hidden_state.square().mean()

    per_ex = [
        torch.func.vmap(torch.func.grad(loss), in_dims=(None, 0, None))(params, IDS, r)
        for r in (False, True)
    ]
    assert _max_diff(*per_ex) <= TOL
    v = tree.map(torch.ones_like, params)

    def hvp(remat):
        def gdotv(p):
            g = torch.func.grad(loss)(p, IDS[0], remat)
            return sum((a * b).sum() for a, b in zip(tree.leaves(g), tree.leaves(v)))

        return torch.func.grad(gdotv)(params)

    ref, got = hvp(False), hvp(True)
    scale = max(t.abs().max().item() for t in tree.leaves(ref))
    assert _max_diff(ref, got) <= 1e-5 * max(scale, 1.0)  # second order: rounding, not bitwise


def test_checkpoint_refuses_nothing_and_passes_pytrees():
    """The helper takes pytrees with None leaves and returns the function's structure."""
    w = torch.randn(3, 3, requires_grad=True)

    def fn(p, x, none):
        assert none is None
        return {"y": torch.tanh(x @ p["w"]), "nothing": None}

    out = checkpoint(fn, {"w": w}, torch.ones(2, 3), None)
    assert out["nothing"] is None
    out["y"].sum().backward()
    ref = torch.autograd.grad(torch.tanh(torch.ones(2, 3) @ w).sum(), w)[0]
    assert torch.allclose(w.grad, ref, atol=TOL, rtol=0)


def _bert_memory_model():
    c = bert.BertConfig(
        vocab_size=30,
        hidden_size=32,
        num_hidden_layers=6,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    m = bert.BertForSequenceClassification(c)
    ids = torch.randint(1, 30, (2, 128), generator=torch.Generator().manual_seed(0))
    return m, m.init(ptfunc.random.key(0)), ids


def test_remat_lowers_memory_saved_for_backward():
    """Bytes packed for backward by autograd: lower with remat (plain autograd)."""
    model, params, ids = _bert_memory_model()
    p = tree.map(lambda t: t.detach().clone().requires_grad_(), params)
    key = ptfunc.random.key(1)

    def forward(remat):
        return model.apply(p, ids, labels=torch.tensor([0, 1]), train=True, key=key, remat=remat)

    plain = saved_tensor_bytes(forward, False)
    remat = saved_tensor_bytes(forward, True)
    print(f"saved for backward: {plain} B without remat, {remat} B with ({remat / plain:.3f})")
    assert remat < plain / 4


@pytest.mark.parametrize("how", ["func.grad", "backward"])
def test_remat_lowers_peak_memory(how):
    """Peak of live tensor bytes over the whole step (forward, backward, recomputation)."""
    model, params, ids = _bert_memory_model()
    key = ptfunc.random.key(1)
    labels = torch.tensor([0, 1])

    def loss(p, remat):
        return model.apply(p, ids, labels=labels, train=True, key=key, remat=remat).loss

    def step(remat):
        if how == "func.grad":
            return torch.func.grad(loss)(params, remat)
        p = tree.map(lambda t: t.detach().clone().requires_grad_(), params)
        loss(p, remat).backward()
        return [t.grad for t in tree.leaves(p)]

    plain = peak_tensor_bytes(step, False)
    remat = peak_tensor_bytes(step, True)
    print(f"peak ({how}): {plain} B without remat, {remat} B with ({remat / plain:.3f})")
    assert remat < plain / 2


def test_peak_tensor_bytes_counts_allocations_not_views_of_existing_storages():
    w = torch.ones(64, 32)  # 8 KiB that exists before the call

    def views_only():
        w.detach().view(-1)[:10].add_(0.0)  # views, and an in-place op on one
        w.t().unsqueeze(0)

    def one_new():
        return w * 2  # a fresh 64 x 32 float32 storage

    assert peak_tensor_bytes(views_only) == 0
    assert peak_tensor_bytes(one_new) == 64 * 32 * 4
