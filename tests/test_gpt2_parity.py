"""GPT-2 parity (first increment of issue 4): GPT2Model and GPT2LMHeadModel.

References: today's ``transformers`` (eager attention) and pytorch-transformers 1.0
(``past`` in its (2, b, heads, len, head_dim) layout, head_mask); the real
``tiny-gpt2`` hub checkpoint from ``../shared/fixtures``. float32 within 1e-5.
"""

from __future__ import annotations

import pytest
import torch
from torch.func import grad, vmap

import ptfunc
from ptfunc import io, tree
from ptfunc.archs import gpt2

transformers = pytest.importorskip("transformers")

ATOL = 1e-5
V = 60
SMALL = dict(vocab_size=V, n_positions=32, n_embd=16, n_layer=3, n_head=4)


def _hf(name="GPT2LMHeadModel"):
    config = transformers.GPT2Config(**SMALL, attn_implementation="eager")
    torch.manual_seed(0)
    return getattr(transformers, name)(config).eval()


def _ours(ctor, reference):
    model = ctor(gpt2.GPT2Config(**SMALL))
    return model, io.from_torch_state_dict(model, reference.state_dict())


def _close(a, b, what):
    err = (a - b).abs().max().item()
    assert a.shape == b.shape and err <= ATOL, (
        f"{what}: {tuple(a.shape)} vs {tuple(b.shape)}, {err}"
    )


IDS = torch.randint(0, V, (3, 9), generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("name", ["GPT2Model", "GPT2LMHeadModel"])
def test_matches_transformers(name):
    reference = _hf(name)
    model, params = _ours(getattr(gpt2, name), reference)
    labels = {"labels": IDS} if name == "GPT2LMHeadModel" else {}
    types = torch.zeros_like(IDS)
    types[:, 5:] = 1
    with torch.no_grad():
        ref = reference(
            IDS, token_type_ids=types, output_hidden_states=True, output_attentions=True, **labels
        )
    out = model.apply(
        params,
        IDS,
        token_type_ids=types,
        output_hidden_states=True,
        output_attentions=True,
        **labels,
    )
    first = ref.logits if name == "GPT2LMHeadModel" else ref.last_hidden_state
    _close(out[1 if labels else 0], first, "output")
    if labels:
        _close(out.loss, ref.loss, "loss")
    for a, b in zip(out.hidden_states, ref.hidden_states, strict=True):
        _close(a, b, "hidden_states")
    for a, b in zip(out.attentions, ref.attentions, strict=True):
        _close(a, b, "attentions")
    for i, present in enumerate(out.presents):
        _close(present[0], ref.past_key_values.layers[i].keys, "presents keys")
        _close(present[1], ref.past_key_values.layers[i].values, "presents values")


def test_past_continues_positions_and_equals_full_pass():
    model, params = _ours(gpt2.GPT2LMHeadModel, _hf())
    full = model.apply(params, IDS)
    first = model.apply(params, IDS[:, :5])
    rest = model.apply(params, IDS[:, 5:], past=first.presents)
    _close(rest.logits, full.logits[:, 5:], "cached logits")
    for a, b in zip(rest.presents, full.presents, strict=True):
        _close(a, b, "presents")


def test_left_padded_batch_matches_unpadded_rows():
    """attention_mask (new in ptfunc): a left-padded row gives the same logits as alone."""
    model, params = _ours(gpt2.GPT2LMHeadModel, _hf())
    row = IDS[:1, 3:]
    padded = torch.cat([torch.zeros(1, 3, dtype=torch.long), row], dim=1)
    mask = torch.tensor([[0, 0, 0] + [1] * row.shape[1]])
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    out = model.apply(params, padded, attention_mask=mask, position_ids=positions)
    _close(out.logits[:, 3:], model.apply(params, row).logits, "left-padded logits")


def test_gradients_match_transformers_autograd():
    reference = _hf()
    model, params = _ours(gpt2.GPT2LMHeadModel, reference)
    grads = tree.to_flat_dict(grad(lambda p: model.apply(p, IDS, labels=IDS).loss)(params))
    reference(IDS, labels=IDS).loss.backward()
    for name, p in reference.named_parameters():
        torch.testing.assert_close(grads[name], p.grad, atol=1e-5, rtol=1e-4)


def test_vmap_ensemble_and_compile():
    model = gpt2.GPT2LMHeadModel(gpt2.GPT2Config(**SMALL))
    members = [model.init(k) for k in ptfunc.random.split(ptfunc.random.key(0), 3)]
    batched = vmap(lambda p: model.apply(p, IDS).logits)(tree.stack(members))
    for i, p in enumerate(members):
        torch.testing.assert_close(batched[i], model.apply(p, IDS).logits, atol=1e-6, rtol=1e-5)
    compiled = torch.compile(
        lambda p, x: model.apply(p, x).logits, fullgraph=True, backend="aot_eager"
    )
    torch.testing.assert_close(
        compiled(members[0], IDS), model.apply(members[0], IDS).logits, atol=1e-6, rtol=1e-5
    )


pt = pytest.importorskip("pytorch_transformers")


def test_matches_seed_with_past_and_head_mask():
    config = pt.GPT2Config(
        V, n_positions=32, n_ctx=32, n_embd=16, n_layer=3, n_head=4, output_attentions=True
    )
    torch.manual_seed(0)
    reference = pt.GPT2LMHeadModel(config).eval()
    model, params = _ours(gpt2.GPT2LMHeadModel, reference)
    head_mask = torch.ones(3, 4)
    head_mask[1, 2] = 0
    with torch.no_grad():
        first = reference(IDS[:, :5])
        ref = reference(IDS[:, 5:], past=first[1], head_mask=head_mask)
    ours_first = model.apply(params, IDS[:, :5])
    out = model.apply(
        params, IDS[:, 5:], past=ours_first.presents, head_mask=head_mask, output_attentions=True
    )
    _close(out.logits, ref[0], "logits")
    for a, b in zip(out.presents, ref[1], strict=True):
        _close(a, b, "presents (seed layout)")
    for a, b in zip(out.attentions, ref[2], strict=True):
        _close(a, b, "attentions")


def test_tiny_gpt2_hub_checkpoint(shared_fixtures):
    directory = shared_fixtures / "tiny-gpt2"
    model, params = io.from_pretrained(directory, gpt2.GPT2LMHeadModel)
    reference = transformers.GPT2LMHeadModel.from_pretrained(directory).eval()
    ids = torch.tensor([[464, 2068, 7586, 21831, 18045, 625, 262, 16931, 3290, 13]])
    with torch.no_grad():
        ref = reference(ids).logits
    _close(model.apply(params, ids).logits, ref, "tiny-gpt2 logits")


def test_bad_input():
    model = gpt2.GPT2Model(gpt2.GPT2Config(**SMALL))
    params = model.init(ptfunc.random.key(0))
    with pytest.raises(ValueError, match="exceeds n_positions"):
        model.apply(params, torch.zeros(1, 33, dtype=torch.long))
    with pytest.raises(ValueError, match=r"attention_mask must have shape \(batch, past \+ seq\)"):
        model.apply(params, IDS, attention_mask=torch.ones(3, 4))
    with pytest.raises(ValueError, match=r"must lie in \[0, 60\)"):
        model.apply(params, torch.tensor([[60]]))


MC_IDS = torch.randint(0, V, (2, 3, 7), generator=torch.Generator().manual_seed(1))
MC_TOKENS = torch.tensor([[6, 5, 4], [3, 6, 6]])
MC_LABELS = torch.tensor([1, 2])


def test_double_heads_match_transformers():
    reference = _hf("GPT2DoubleHeadsModel")
    model, params = _ours(gpt2.GPT2DoubleHeadsModel, reference)
    with torch.no_grad():
        ref = reference(MC_IDS, mc_token_ids=MC_TOKENS, labels=MC_IDS, mc_labels=MC_LABELS)
    out = model.apply(params, MC_IDS, mc_token_ids=MC_TOKENS, labels=MC_IDS, mc_labels=MC_LABELS)
    _close(out.logits, ref.logits, "lm logits")
    _close(out.mc_logits, ref.mc_logits, "mc logits")
    _close(out.lm_loss, ref.loss, "lm loss")
    _close(out.mc_loss, ref.mc_loss, "mc loss")
    _close(out.loss, ref.loss, "loss is the LM loss, as transformers' and 1.0's")
    _close(out[0] + out[1], ref[0] + ref[1], "1.0's recipe: lm_coef * losses[0] + losses[1]")
    plain = model.apply(params, MC_IDS, mc_token_ids=MC_TOKENS)
    assert type(plain).__name__ == "DoubleHeadsOutput"


def test_double_heads_match_seed_and_warn_on_untied_checkpoint():
    config = pt.GPT2Config(V, n_positions=32, n_ctx=32, n_embd=16, n_layer=3, n_head=4)
    torch.manual_seed(0)
    reference = pt.GPT2DoubleHeadsModel(config).eval()
    model = gpt2.GPT2DoubleHeadsModel(gpt2.GPT2Config(**SMALL))
    with pytest.warns(UserWarning, match="lm_head.weight differs"):  # 1.0 forgot to tie (quirk)
        io.from_torch_state_dict(model, reference.state_dict())
    reference.tie_weights()
    params = io.from_torch_state_dict(model, reference.state_dict())
    with torch.no_grad():
        ref = reference(MC_IDS, mc_token_ids=MC_TOKENS, lm_labels=MC_IDS, mc_labels=MC_LABELS)
    out = model.apply(params, MC_IDS, mc_token_ids=MC_TOKENS, lm_labels=MC_IDS, mc_labels=MC_LABELS)
    _close(out.lm_loss, ref[0], "lm loss")
    _close(out.mc_loss, ref[1], "mc loss")
    _close(out.logits, ref[2], "lm logits")
    _close(out.mc_logits, ref[3], "mc logits")
