"""OpenAI GPT parity (issue 4 increment): the three models against today's ``transformers``
and pytorch-transformers 1.0 (head_mask, 1.0 label names), same weights, within 1e-5."""

from __future__ import annotations

import pytest
import torch
from torch.func import grad, vmap

import ptfunc
from ptfunc import io, tree
from ptfunc.archs import openai_gpt as og

transformers = pytest.importorskip("transformers")

ATOL = 1e-5
V = 60
SMALL = dict(vocab_size=V, n_positions=32, n_embd=16, n_layer=3, n_head=4)
IDS = torch.randint(0, V, (3, 9), generator=torch.Generator().manual_seed(0))
MC_IDS = torch.randint(0, V, (2, 3, 7), generator=torch.Generator().manual_seed(1))
MC_TOKENS = torch.tensor([[6, 5, 4], [3, 6, 6]])
MC_LABELS = torch.tensor([1, 2])


def _hf(name):
    torch.manual_seed(0)
    return getattr(transformers, name)(transformers.OpenAIGPTConfig(**SMALL)).eval()


def _ours(name, reference):
    model = getattr(og, name)(og.OpenAIGPTConfig(**SMALL))
    return model, io.from_torch_state_dict(model, reference.state_dict())


def _close(a, b, what):
    err = (a - b).abs().max().item()
    assert a.shape == b.shape and err <= ATOL, (
        f"{what}: {tuple(a.shape)} vs {tuple(b.shape)}, {err}"
    )


@pytest.mark.parametrize("name", ["OpenAIGPTModel", "OpenAIGPTLMHeadModel"])
def test_matches_transformers(name):
    reference = _hf(name)
    model, params = _ours(name, reference)
    mask = torch.ones_like(IDS)
    mask[0, 6:] = 0  # right padding: every kept query row is comparable
    types = torch.zeros_like(IDS)
    types[:, 4:] = 1
    labels = {"labels": IDS} if "LMHead" in name else {}
    with torch.no_grad():
        ref = reference(
            IDS,
            attention_mask=mask,
            token_type_ids=types,
            output_hidden_states=True,
            output_attentions=True,
            **labels,
        )
    out = model.apply(
        params,
        IDS,
        attention_mask=mask,
        token_type_ids=types,
        output_hidden_states=True,
        output_attentions=True,
        **labels,
    )
    if labels:
        _close(out.loss, ref.loss, "loss")
    _close(out[1 if labels else 0], ref[1 if labels else 0], "output")
    for a, b in zip(out.hidden_states, ref.hidden_states, strict=True):
        _close(a, b, "hidden_states")
    for a, b in zip(out.attentions, ref.attentions, strict=True):
        _close(a, b, "attentions")


def test_double_heads_match_transformers():
    reference = _hf("OpenAIGPTDoubleHeadsModel")
    model, params = _ours("OpenAIGPTDoubleHeadsModel", reference)
    with torch.no_grad():
        ref = reference(MC_IDS, mc_token_ids=MC_TOKENS, labels=MC_IDS, mc_labels=MC_LABELS)
    out = model.apply(params, MC_IDS, mc_token_ids=MC_TOKENS, labels=MC_IDS, mc_labels=MC_LABELS)
    _close(out.logits, ref.logits, "lm logits")
    _close(out.mc_logits, ref.mc_logits, "mc logits")
    _close(out.lm_loss, ref.loss, "lm loss")
    _close(out.mc_loss, ref.mc_loss, "mc loss")


def test_grad_vmap_compile():
    reference = _hf("OpenAIGPTLMHeadModel")
    model, params = _ours("OpenAIGPTLMHeadModel", reference)
    grads = tree.to_flat_dict(grad(lambda p: model.apply(p, IDS, labels=IDS).loss)(params))
    reference(IDS, labels=IDS).loss.backward()
    for name, p in reference.named_parameters():
        torch.testing.assert_close(grads[name], p.grad, atol=1e-5, rtol=1e-4)
    members = [model.init(k) for k in ptfunc.random.split(ptfunc.random.key(0), 3)]
    batched = vmap(lambda p: model.apply(p, IDS).logits)(tree.stack(members))
    for i, p in enumerate(members):
        torch.testing.assert_close(batched[i], model.apply(p, IDS).logits, atol=1e-6, rtol=1e-5)
    key = ptfunc.random.key(3)
    run = lambda p, x, k: model.apply(p, x, train=True, key=k).logits  # noqa: E731
    compiled = torch.compile(run, fullgraph=True, backend="aot_eager")
    torch.testing.assert_close(
        compiled(params, IDS, key), run(params, IDS, key), atol=1e-6, rtol=1e-5
    )


pt = pytest.importorskip("pytorch_transformers")


def test_matches_seed_with_head_mask_and_lm_labels():
    config = pt.OpenAIGPTConfig(
        V, n_positions=32, n_ctx=32, n_embd=16, n_layer=3, n_head=4, output_attentions=True
    )
    torch.manual_seed(0)
    reference = pt.OpenAIGPTDoubleHeadsModel(config).eval()
    model, params = _ours("OpenAIGPTDoubleHeadsModel", reference)
    head_mask = torch.ones(3, 4)
    head_mask[0, 1] = 0
    with torch.no_grad():
        ref = reference(
            MC_IDS,
            mc_token_ids=MC_TOKENS,
            lm_labels=MC_IDS,
            mc_labels=MC_LABELS,
            head_mask=head_mask,
        )
    out = model.apply(
        params,
        MC_IDS,
        mc_token_ids=MC_TOKENS,
        lm_labels=MC_IDS,
        mc_labels=MC_LABELS,
        head_mask=head_mask,
        output_attentions=True,
    )
    _close(out.lm_loss, ref[0], "lm loss")
    _close(out.mc_loss, ref[1], "mc loss")
    _close(out.logits, ref[2], "lm logits")
    _close(out.mc_logits, ref[3], "mc logits")
    for a, b in zip(out.attentions, ref[4], strict=True):
        _close(a, b, "attentions")


ppb = pytest.importorskip("pytorch_pretrained_bert")


def test_set_num_special_tokens_like_0_6_2():
    """0.6.2's set_num_special_tokens: vocab rows kept, special rows appended, LM head tied."""
    import warnings

    config = ppb.OpenAIGPTConfig(
        V, n_special=0, n_positions=32, n_ctx=32, n_embd=16, n_layer=3, n_head=4
    )
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = ppb.OpenAIGPTLMHeadModel(config).eval()
    model, params = _ours("OpenAIGPTLMHeadModel", reference)
    reference.set_num_special_tokens(3)
    model3, params3 = model.set_num_special_tokens(params, 3, key=ptfunc.random.key(0))
    weight = params3["transformer"]["tokens_embed"]["weight"]
    assert model3.config.n_special == 3 and weight.shape == (V + 3, 16)
    assert torch.equal(weight[:V], reference.transformer.tokens_embed.weight[:V])
    assert params["transformer"]["tokens_embed"]["weight"].shape == (V, 16)  # input untouched
    loaded = io.from_torch_state_dict(model3, reference.state_dict())
    ids = torch.tensor([[1, V, V + 2, 5]])  # special ids are valid now
    with torch.no_grad():
        _close(model3.apply(loaded, ids).logits, reference(ids), "logits with special tokens")
    with pytest.raises(ValueError, match=r"must lie in \[0, 60\)"):
        model.apply(params, ids)


def test_resize_token_embeddings_gpt2_keeps_tie():
    from ptfunc.archs import gpt2

    model = gpt2.GPT2LMHeadModel(
        gpt2.GPT2Config(vocab_size=V, n_positions=32, n_embd=16, n_layer=1, n_head=4)
    )
    params = model.init(ptfunc.random.key(0))
    bigger, new = model.resize_token_embeddings(params, V + 5, key=ptfunc.random.key(1))
    assert bigger.config.vocab_size == V + 5
    assert bigger.apply(new, torch.tensor([[V + 4]])).logits.shape == (1, 1, V + 5)
    assert torch.equal(
        new["transformer"]["wte"]["weight"][:V], params["transformer"]["wte"]["weight"]
    )
