"""Head pruning of OpenAI GPT, GPT-2 and XLM as pure params transforms.

References:
- pytorch-transformers 1.0 (the seed): the same weights, pruned by its own
  ``prune_heads``, give the same logits (float32, atol 1e-5);
- the unpruned model with the pruned heads masked to 0 by ``head_mask`` (atol 1e-6);
  the same for ``bertology.mask_heads`` (value projections zeroed, shapes kept);
- save_pretrained/from_pretrained of a pruned model reloads the same model bit for bit.
"""

from __future__ import annotations

import warnings

import pytest
import torch

import ptfunc
from ptfunc import io, tree
from ptfunc.archs import bert, gpt2, openai_gpt, xlm
from ptfunc.research import bertology

pt = pytest.importorskip("pytorch_transformers")

V, L, H, D = 40, 3, 4, 16
IDS = torch.randint(4, V, (2, 7), generator=torch.Generator().manual_seed(0))
HEADS = {0: [1, 3], 2: [0]}
ARCHS = ("gpt2", "openai_gpt", "xlm")


def _seed_config(arch):
    if arch == "gpt2":
        return pt.GPT2Config(V, n_positions=32, n_ctx=32, n_embd=D, n_layer=L, n_head=H)
    if arch == "openai_gpt":
        return pt.OpenAIGPTConfig(V, n_positions=32, n_ctx=32, n_embd=D, n_layer=L, n_head=H)
    return pt.XLMConfig(V, emb_dim=D, n_layers=L, n_heads=H, max_position_embeddings=32)


def _config(arch, **kw):
    if arch == "gpt2":
        return gpt2.GPT2Config(V, n_positions=32, n_embd=D, n_layer=L, n_head=H, **kw)
    if arch == "openai_gpt":
        return openai_gpt.OpenAIGPTConfig(V, n_positions=32, n_embd=D, n_layer=L, n_head=H, **kw)
    return xlm.XLMConfig(V, emb_dim=D, n_layers=L, n_heads=H, max_position_embeddings=32, **kw)


LM_HEADS = {
    "gpt2": ("GPT2LMHeadModel", gpt2),
    "openai_gpt": ("OpenAIGPTLMHeadModel", openai_gpt),
    "xlm": ("XLMWithLMHeadModel", xlm),
}


def _pair(arch):
    """(1.0 LM-head model, ptfunc model, params) with the same weights, all perturbed so
    that biases and LayerNorms are not at their initial 0/1 values."""
    name, module = LM_HEADS[arch]
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = getattr(pt, name)(_seed_config(arch)).eval()
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in reference.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen))
    model = getattr(module, name)(_config(arch))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        params = io.from_torch_state_dict(model, reference.state_dict())
    return reference, model, params


def _seed_logits(reference, arch):
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = reference(IDS)[0]
    return out.view(*IDS.shape, -1)


def _attn_width(arch, params, layer):
    base = params["transformer"]
    if arch == "xlm":
        return base["attentions"][layer]["q_lin"]["weight"].shape[0]
    return base["h"][layer]["attn"]["c_proj"]["weight"].shape[0]


@pytest.mark.parametrize("arch", ARCHS)
def test_pruned_model_matches_seed_prune_heads(arch):
    reference, model, params = _pair(arch)
    new_model, pruned = model.prune_heads(params, HEADS)
    reference.prune_heads(HEADS)
    want = _seed_logits(reference, arch)
    got = new_model.apply(pruned, IDS).logits
    assert got.shape == want.shape
    assert (got - want).abs().max() <= 1e-5
    assert new_model.config.pruned_heads == {0: (1, 3), 2: (0,)}
    assert type(new_model) is type(model)
    # per-layer head counts: 2, 4 and 3 heads of width D / H
    assert [_attn_width(arch, pruned, i) for i in range(L)] == [8, 16, 12]
    # the input params and model are untouched
    assert [_attn_width(arch, params, i) for i in range(L)] == [16, 16, 16]
    assert model.config.pruned_heads == {}
    # the bertology entry point dispatches to the same transform
    m2, p2 = bertology.prune_heads(model, params, HEADS)
    assert m2 == new_model
    assert all(torch.equal(a, b) for a, b in zip(tree.leaves(p2), tree.leaves(pruned)))


def _masked(heads):
    m = torch.ones(L, H)
    for layer, hs in heads.items():
        m[layer, hs] = 0.0
    return m


@pytest.mark.parametrize("arch", ARCHS)
def test_pruned_equals_unpruned_with_head_mask(arch):
    _, model, params = _pair(arch)
    want = model.apply(params, IDS, head_mask=_masked(HEADS)).logits
    new_model, pruned = model.prune_heads(params, HEADS)
    assert (new_model.apply(pruned, IDS).logits - want).abs().max() <= 1e-6
    # mask_heads: same computation with the shapes kept
    masked = bertology.mask_heads(model, params, HEADS)
    assert [_attn_width(arch, masked, i) for i in range(L)] == [16] * L
    assert (model.apply(masked, IDS).logits - want).abs().max() <= 1e-6


def _any_pair(arch):
    if arch != "bert":
        return _pair(arch)[1:]
    model = bert.BertForSequenceClassification(
        bert.BertConfig(
            V,
            hidden_size=D,
            num_hidden_layers=L,
            num_attention_heads=H,
            intermediate_size=24,
            max_position_embeddings=32,
        )
    )
    return model, model.init(ptfunc.random.key(0))


@pytest.mark.parametrize("arch", (*ARCHS, "bert"))
def test_head_mask_of_a_pruned_model_counts_the_unpruned_heads(arch):
    """head_mask (layers, heads) keeps the unpruned shape: a pruned model with mask m ==
    the unpruned model with m and the pruned heads zeroed; importance (d loss / d mask)
    is the same for the kept heads and 0 for the pruned ones."""
    model, params = _any_pair(arch)
    new_model, pruned = model.prune_heads(params, HEADS)
    m = torch.ones(L, H)
    m[0, 0], m[1, 2], m[2, 0] = 0.0, 0.5, 0.0  # (2, 0) is pruned anyway
    both = m * _masked(HEADS)
    want = model.apply(params, IDS, head_mask=both).logits
    assert (new_model.apply(pruned, IDS, head_mask=m).logits - want).abs().max() <= 1e-6
    batch = {"input_ids": IDS, "labels": IDS if arch != "bert" else torch.tensor([0, 1])}
    grad, _ = bertology.head_mask_grad(new_model, pruned, batch)
    ref, _ = bertology.head_mask_grad(model, params, batch, head_mask=_masked(HEADS))
    kept = _masked(HEADS).bool()
    assert torch.equal(grad[~kept], torch.zeros(int((~kept).sum())))
    assert (grad[kept] - ref[kept]).abs().max() <= 1e-6
    with pytest.raises(ValueError, match="unpruned model's 4 heads"):
        new_model.apply(pruned, IDS, head_mask=torch.ones(L, 3))


@pytest.mark.parametrize("arch", ARCHS)
def test_a_layer_with_every_head_pruned(arch):
    """All heads of layer 1 pruned == all masked: the layer's attention adds only its
    output bias."""
    _, model, params = _pair(arch)
    heads = {1: list(range(H))}
    want = model.apply(params, IDS, head_mask=_masked(heads)).logits
    new_model, pruned = model.prune_heads(params, heads)
    assert _attn_width(arch, pruned, 1) == 0
    assert (new_model.apply(pruned, IDS).logits - want).abs().max() <= 1e-6


@pytest.mark.parametrize("arch", ARCHS)
def test_pruning_in_steps_equals_pruning_at_once(arch):
    """Indices always refer to the unpruned model; a head pruned twice is pruned once."""
    _, model, params = _pair(arch)
    m1, p1 = model.prune_heads(params, {0: [1], 2: [0]})
    m2, p2 = m1.prune_heads(p1, {0: [1, 3]})  # 1 again: already gone, a no-op for it
    m3, p3 = model.prune_heads(params, HEADS)
    assert m2.config.pruned_heads == m3.config.pruned_heads == {0: (1, 3), 2: (0,)}
    for a, b in zip(tree.leaves(p2), tree.leaves(p3), strict=True):
        assert torch.equal(a, b)
    m4, p4 = m3.prune_heads(p3, {0: [3]})
    assert m4 == m3 and all(torch.equal(a, b) for a, b in zip(tree.leaves(p4), tree.leaves(p3)))


@pytest.mark.parametrize("arch", ARCHS)
def test_pruned_model_saves_and_reloads(arch, tmp_path):
    _, model, params = _pair(arch)
    model, params = model.prune_heads(params, HEADS)
    io.save_pretrained(tmp_path, model, params)
    model2, params2 = io.from_pretrained(tmp_path, type(model))
    assert model2.config.pruned_heads == {0: (1, 3), 2: (0,)}
    assert torch.equal(model2.apply(params2, IDS).logits, model.apply(params, IDS).logits)
    # init of the pruned config builds the pruned shapes (what loading checks against)
    fresh = model2.init(ptfunc.random.key(0))
    assert [_attn_width(arch, fresh, i) for i in range(L)] == [8, 16, 12]


@pytest.mark.parametrize("arch", ["gpt2", "xlm"])
def test_pruned_cache_step_by_step_equals_full_run(arch):
    """Per-layer head counts flow through the KV cache (GPT-2 ``past``, XLM ``cache``)."""
    if arch == "gpt2":
        model = gpt2.GPT2LMHeadModel(_config(arch))
    else:
        model = xlm.XLMWithLMHeadModel(_config(arch, causal=True))
    model, params = model.prune_heads(model.init(ptfunc.random.key(0)), HEADS)
    full = model.apply(params, IDS).logits
    state, steps = None, []
    for t in range(IDS.shape[1]):
        ids = IDS[:, t : t + 1]
        if arch == "gpt2":
            out = model.apply(params, ids, past=state)
            state = out.presents
        else:
            out = model.apply(params, ids, **({"cache": state} if state else {"use_cache": True}))
            state = out.cache
        steps.append(out.logits)
    assert [s.shape[2] for s in state] == [2, 4, 3]
    assert (torch.cat(steps, dim=1) - full).abs().max() <= 1e-5


@pytest.mark.parametrize("arch", ARCHS)
def test_bad_requests_give_clear_errors(arch):
    _, model, params = _pair(arch)
    with pytest.raises(ValueError, match=r"layer index 3 out of range \[0, 3\)"):
        model.prune_heads(params, {3: [0]})
    with pytest.raises(ValueError, match=r"head indices \[4\] out of range \[0, 4\) in layer 1"):
        model.prune_heads(params, {1: [0, 4]})
    with pytest.raises(ValueError, match=r"head indices \[-1\] out of range"):
        model.prune_heads(params, {1: [-1]})
    with pytest.raises(TypeError, match="head index must be an int"):
        model.prune_heads(params, {1: [0.0]})
    with pytest.raises(TypeError, match="list of indices"):
        model.prune_heads(params, {1: 0})
    with pytest.raises(TypeError, match="mapping"):
        model.prune_heads(params, [(1, [0])])
    # pruned params with the unpruned model: refused, naming the way out
    _, pruned = model.prune_heads(params, HEADS)
    with pytest.raises(ValueError, match="prune with the model returned by the previous"):
        model.prune_heads(pruned, {0: [0]})
    # mask_heads counts the layer's current heads
    new_model, pruned = model.prune_heads(params, {0: [0, 1]})
    with pytest.raises(ValueError, match=r"head indices \[2\] out of range \[0, 2\) in layer 0"):
        bertology.mask_heads(new_model, pruned, {0: [2]})
