"""ptfunc.layers against their references: pytorch-transformers 1.0's activations,
``torch.nn`` modules with the same weights, and the fused vs explicit attention paths."""

from __future__ import annotations

import pytest
import torch
from torch.func import jvp, vmap

import ptfunc
from ptfunc.layers import activations, attention, embedding, layer_norm, linear

pt_bert = pytest.importorskip("pytorch_transformers.modeling_bert")
pt_openai = pytest.importorskip("pytorch_transformers.modeling_openai")

X = torch.linspace(-6, 6, 1001)


@pytest.mark.parametrize(
    "ours,reference",
    [
        (activations.gelu, pt_bert.gelu),  # erf form (BERT, XLM)
        (activations.gelu_new, pt_openai.gelu),  # tanh form (GPT, GPT-2, XLNet)
        (activations.swish, pt_bert.swish),
        (activations.relu, torch.relu),
    ],
)
def test_activations_match_seed(ours, reference):
    torch.testing.assert_close(ours(X), reference(X), atol=1e-6, rtol=1e-6)


def test_activation_lookup():
    assert activations.get("gelu") is activations.gelu
    assert activations.get(torch.tanh) is torch.tanh
    with pytest.raises(ValueError, match="unknown activation 'gelu2'"):
        activations.get("gelu2")


def test_linear_embedding_layer_norm_match_torch_nn():
    key = ptfunc.random.key(0)
    p = linear.init(key, 5, 3)
    ref = torch.nn.Linear(5, 3)
    ref.load_state_dict(p)
    x = torch.randn(2, 4, 5)
    torch.testing.assert_close(linear.apply(p, x), ref(x))
    assert p["weight"].std().item() == pytest.approx(0.02, rel=0.5) and not p["bias"].any()

    e = embedding.init(key, 10, 4)
    ids = torch.tensor([[1, 0, 9]])
    torch.testing.assert_close(embedding.apply(e, ids), e["weight"][ids])
    torch.testing.assert_close(
        embedding.attend(e, torch.ones(1, 4)), torch.ones(1, 4) @ e["weight"].T
    )

    ln = layer_norm.init(4)
    ref_ln = torch.nn.LayerNorm(4, eps=1e-12)
    x = torch.randn(3, 4)
    torch.testing.assert_close(layer_norm.apply(ln, x), ref_ln(x))


def test_conv1d_is_transposed_linear():
    p = linear.init_conv1d(ptfunc.random.key(1), 5, 3)
    assert p["weight"].shape == (5, 3)
    x = torch.randn(2, 5)
    torch.testing.assert_close(linear.apply_conv1d(p, x), x @ p["weight"] + p["bias"])


def _qkv(seed=0, b=2, h=3, s=5, d=4):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(b, h, s, d, generator=g) for _ in range(3)]


@pytest.mark.parametrize("causal", [False, True])
def test_fused_and_explicit_attention_agree(causal):
    q, k, v = _qkv()
    mask = torch.ones(2, 5)
    mask[0, 3:] = 0
    bias = attention.additive_mask(mask, torch.float32)
    fused, none = attention.dot_product_attention(q, k, v, bias=bias, is_causal=causal)
    explicit, probs = attention.dot_product_attention(
        q, k, v, bias=bias, is_causal=causal, need_weights=True
    )
    assert none is None
    torch.testing.assert_close(fused, explicit, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(probs.sum(-1), torch.ones(2, 3, 5))
    assert probs[0, :, :, 3:].abs().max() < 1e-4  # masked keys get ~no weight
    if causal:
        assert torch.triu(probs, diagonal=1).abs().max() == 0


def test_attention_head_mask_and_dropout():
    q, k, v = _qkv()
    head_mask = torch.tensor([1.0, 0.0, 1.0])[:, None, None]
    out, probs = attention.dot_product_attention(q, k, v, head_mask=head_mask)
    assert out[:, 1].abs().max() == 0 and probs[:, 1].abs().max() == 0
    key = ptfunc.random.key(3)
    a, _ = attention.dot_product_attention(q, k, v, dropout_rate=0.5, key=key, train=True)
    b, _ = attention.dot_product_attention(q, k, v, dropout_rate=0.5, key=key, train=True)
    assert torch.equal(a, b)


def test_attention_under_vmap_and_jvp_uses_a_differentiable_path():
    q, k, v = _qkv()
    batched = vmap(lambda q: attention.dot_product_attention(q, k, v)[0])(
        q[None].expand(2, -1, -1, -1, -1)
    )
    torch.testing.assert_close(
        batched[0], attention.dot_product_attention(q, k, v)[0], atol=1e-6, rtol=1e-5
    )
    _, tangent = jvp(
        lambda q: attention.dot_product_attention(q, k, v)[0], (q,), (torch.ones_like(q),)
    )
    eps = 1e-3
    fd = (
        attention.dot_product_attention(q + eps, k, v)[0]
        - attention.dot_product_attention(q - eps, k, v)[0]
    ) / (2 * eps)
    torch.testing.assert_close(tangent, fd, atol=1e-3, rtol=1e-3)
