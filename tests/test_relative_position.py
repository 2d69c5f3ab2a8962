"""ptfunc.layers.relative_position against the seed's own shift and sinusoid code.

Oracles: pytorch-transformers 1.0.0 (``RelPartialLearnableMultiHeadAttn._rel_shift``,
``PositionalEmbedding``, ``XLNetRelativeAttention.rel_shift``) and transformers 5
(``XLNetRelativeAttention.rel_shift_bnij``), called on the same random inputs.
The shifted scores must be equal wherever the model reads them (inside the
causal window for Transformer-XL; everywhere for bidirectional XLNet).
"""

from __future__ import annotations

import warnings

import pytest
import torch

from ptfunc.layers import relative_position as rp

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from pytorch_transformers import modeling_transfo_xl as pt_txl
    from pytorch_transformers import modeling_xlnet as pt_xlnet
    from transformers.models.xlnet import modeling_xlnet as hf_xlnet


@pytest.mark.parametrize("q_len, mem_len", [(1, 0), (5, 0), (4, 3), (3, 7)])
def test_rel_shift_matches_transfo_xl_inside_the_causal_window(q_len, mem_len):
    k_len = q_len + mem_len
    x = torch.randn(q_len, k_len, 2, 3)  # the seed's (q, k, batch, heads) layout
    ref = pt_txl.RelPartialLearnableMultiHeadAttn._rel_shift(None, x)
    ours = rp.rel_shift(x.permute(2, 3, 0, 1), k_len, q_len - 1).permute(2, 3, 0, 1)
    visible = torch.ones(q_len, k_len, dtype=torch.bool).tril(mem_len)
    assert torch.equal(ours[visible], ref[visible])


@pytest.mark.parametrize("q_len, k_len, bidirectional", [(4, 4, True), (3, 6, True), (4, 6, False)])
def test_rel_shift_matches_xlnet(q_len, k_len, bidirectional):
    n = k_len + q_len if bidirectional else k_len + 1
    x = torch.randn(2, 3, q_len, n)  # (b, heads, q, distances)
    ref_new = hf_xlnet.XLNetRelativeAttention.rel_shift_bnij(x, klen=k_len)
    ref_old = pt_xlnet.XLNetRelativeAttention.rel_shift(x.permute(2, 3, 0, 1), klen=k_len)
    ours = rp.rel_shift(x, k_len, q_len)
    if bidirectional:
        assert torch.equal(ours, ref_new)
        assert torch.equal(ours.permute(2, 3, 0, 1), ref_old)
    else:
        visible = torch.ones(q_len, k_len, dtype=torch.bool).tril(k_len - q_len)
        assert torch.equal(ours[..., visible], ref_new[..., visible])


def test_rel_shift_batches_under_vmap():
    x = torch.randn(3, 2, 4, 9)
    batched = torch.func.vmap(lambda t: rp.rel_shift(t, 5, 4))(x)
    assert torch.equal(batched, torch.stack([rp.rel_shift(t, 5, 4) for t in x]))


def test_rel_shift_rejects_an_offset_that_does_not_fit():
    with pytest.raises(ValueError, match="offset"):
        rp.rel_shift(torch.zeros(2, 3), 3, 5)


def test_sinusoid_table_matches_transfo_xl_positional_embedding():
    positions = torch.arange(9.0, -4.0, -1.0)
    ref = pt_txl.PositionalEmbedding(16)(positions)[:, 0]
    torch.testing.assert_close(rp.sinusoid_table(positions, 16), ref, rtol=0, atol=1e-6)


def test_sinusoid_table_rejects_odd_width():
    with pytest.raises(ValueError, match="even"):
        rp.sinusoid_table(torch.arange(3.0), 5)
