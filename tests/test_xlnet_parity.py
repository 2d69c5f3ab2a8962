"""XLNet parity: XLNetModel, XLNetLMHeadModel, XLNetForSequenceClassification and
XLNetForQuestionAnswering against today's ``transformers`` (5.23, eager, the same
weights loaded through ``ptfunc.io.from_torch_state_dict``), float32 within 1e-5
max-abs.

Today's ``transformers`` reads ``ff_activation="gelu"`` as the exact GELU while
pytorch-transformers 1.0 (and ptfunc) use the tanh form, so these configs say
``"gelu_new"`` (the tanh form in both). It has no ``head_mask`` any more: head
masks are checked against pytorch-transformers 1.0.0 in ``test_xlnet_seed.py``.
"""

from __future__ import annotations

import pytest
import torch

import ptfunc
from ptfunc import io, tree
from ptfunc.archs import xlnet

transformers = pytest.importorskip("transformers")

ATOL = 1e-5
V = 50
TINY = dict(vocab_size=V, d_model=16, n_layer=2, n_head=4, d_inner=24, ff_activation="gelu_new")
GEN = torch.Generator().manual_seed(0)
IDS = torch.randint(0, V, (4, 7), generator=GEN)
TYPES = torch.tensor([[0] * 4 + [1] * 3] * 2 + [[0] * 2 + [1] * 4 + [2]] * 2)
MASK = torch.ones(4, 7)
MASK[1, :2] = 0  # left padding
MASK[3, 5:] = 0  # right padding


def _pair(name: str, **overrides):
    """(reference, model, params) with the same weights; the reference's params are
    perturbed first so biases and LayerNorms are not at their initial values."""
    cfg = {**TINY, "mem_len": None, **overrides}
    torch.manual_seed(0)
    reference = getattr(transformers, name)(transformers.XLNetConfig(**cfg)).eval()
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in reference.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen))
    model = getattr(xlnet, name)(xlnet.XLNetConfig(**cfg))
    return reference, model, io.from_torch_state_dict(model, reference.state_dict())


def _close(a, b, what):
    if isinstance(b, (tuple, list)):
        assert isinstance(a, (tuple, list)) and len(a) == len(b), f"{what}: {len(a)} vs {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            _close(x, y, f"{what}[{i}]")
        return
    assert a.shape == b.shape, f"{what}: {tuple(a.shape)} vs {tuple(b.shape)}"
    err = (a.double() - b.double()).abs().max().item()
    assert err <= ATOL, f"{what}: max abs error {err}"


def _lm_targets(b=4, s=7, n=2):
    """A perm_mask hiding the last n tokens from everyone and a target_mapping on them."""
    perm = torch.zeros(b, s, s)
    perm[:, :, -n:] = 1.0
    target = torch.zeros(b, n, s)
    for m in range(n):
        target[:, m, s - n + m] = 1.0
    return perm, target


@pytest.mark.parametrize(
    "name",
    [
        "XLNetModel",
        "XLNetLMHeadModel",
        "XLNetForSequenceClassification",
        "XLNetForQuestionAnswering",
    ],
)
def test_every_model_matches_transformers(name):
    reference, model, params = _pair(name, mem_len=5)
    options = dict(
        token_type_ids=TYPES, attention_mask=MASK, output_hidden_states=True, output_attentions=True
    )
    with torch.no_grad():
        ref = reference(IDS, **options)
    out = model.apply(params, IDS, **options)
    first = {"XLNetModel": "last_hidden_state", "XLNetForQuestionAnswering": None}.get(
        name, "logits"
    )
    if first:
        _close(getattr(out, first), getattr(ref, first), first)
    else:
        for field in ("start_top_log_probs", "end_top_log_probs", "cls_logits"):
            _close(getattr(out, field), getattr(ref, field), field)
        assert torch.equal(out.start_top_index, ref.start_top_index)
        assert torch.equal(out.end_top_index, ref.end_top_index)
    _close(out.mems, ref.mems, "mems")
    _close(out.hidden_states, ref.hidden_states, "hidden_states")
    _close(out.attentions, ref.attentions, "attentions")


VARIANTS = {
    "bi": {},
    "uni": {"attn_type": "uni"},
    "uni_same_length": {"attn_type": "uni", "same_length": True},
    "bi_data_clamp": {"bi_data": True, "clamp_len": 3},
    "uni_bi_data": {"attn_type": "uni", "bi_data": True, "same_length": True, "clamp_len": 2},
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_mems_over_three_segments(variant):
    """mem_len 5 and reuse_len 3 over three segments, with token types, padding and a
    permutation-LM query stream in the last segment."""
    config = VARIANTS[variant]
    reference, model, params = _pair("XLNetLMHeadModel", mem_len=5, reuse_len=3, **config)
    uni = config.get("attn_type") == "uni"
    ref_mems = ours = None
    for step, ids in enumerate(IDS.split([3, 2, 2], dim=1)):
        s = ids.shape[1]
        options = dict(token_type_ids=TYPES[:, :s])
        ref_options = {}
        if not uni:  # the references cannot add a data mask to the causal one (batch > 1)
            options["attention_mask"] = MASK[:, -s:]
        if step == 2:
            perm, options["target_mapping"] = _lm_targets(s=s, n=1)
            options["perm_mask"] = torch.zeros_like(perm) if uni else perm
            options["output_attentions"] = True
            if uni:  # causal: the target is hidden from the others; ptfunc asks for perm_mask
                ref_options["perm_mask"] = None
        with torch.no_grad():
            ref = reference(ids, mems=ref_mems, **{**options, **ref_options})
        out = model.apply(params, ids, mems=ours, **options)
        _close(out.logits, ref.logits, f"segment {step} logits")
        _close(out.mems, ref.mems, f"segment {step} mems")
        if step == 2:
            _close(out.attentions, ref.attentions, "two-stream attentions after mems")
        ref_mems, ours = ref.mems, out.mems


def test_memory_without_mem_len_keeps_every_state_as_transformers():
    reference, model, params = _pair("XLNetModel", mem_len=None)
    first = model.apply(params, IDS[:, :4])
    with torch.no_grad():
        ref_first = reference(IDS[:, :4])
        ref = reference(IDS[:, 4:], mems=ref_first.mems)
    out = model.apply(params, IDS[:, 4:], mems=first.mems)
    _close(out.mems, ref.mems, "full memories")
    assert out.mems[0].shape == (7, 4, 16)
    assert model.apply(params, IDS, use_mems=False).mems == ()


def test_permutation_lm_two_streams_loss_and_grads():
    """perm_mask + target_mapping: query-stream logits, loss, both streams' hidden states
    and attentions (today's layout), and the gradients of the loss."""
    reference, model, params = _pair("XLNetLMHeadModel")
    perm, target = _lm_targets(n=3)
    perm[0, 4, 5] = 1.0  # a factorisation order among the targets
    labels = IDS[:, -3:].clone()
    labels[1, 0] = -100
    options = dict(perm_mask=perm, target_mapping=target, token_type_ids=TYPES, input_mask=1 - MASK)
    ref = reference(
        IDS, labels=labels, output_hidden_states=True, output_attentions=True, **options
    )
    out = model.apply(
        params, IDS, labels=labels, output_hidden_states=True, output_attentions=True, **options
    )
    _close(out.logits, ref.logits, "query-stream logits")
    _close(out.loss, ref.loss, "loss")
    assert len(out.hidden_states) == 2 * (2 + 1)
    _close(out.hidden_states, ref.hidden_states, "(h, g) hidden states")
    _close(out.attentions, ref.attentions, "(h, g) attentions")

    ref.loss.backward()
    grads = tree.to_flat_dict(
        torch.func.grad(lambda p: model.apply(p, IDS, labels=labels, **options).loss)(params)
    )
    for name, p in reference.named_parameters():  # the tied lm_loss.weight is listed once
        torch.testing.assert_close(grads[name], p.grad, atol=1e-5, rtol=1e-4, msg=name)


def test_fully_masked_query_rows_are_uniform_as_in_the_seed():
    """A query-stream position that may see no key gets uniform attention (-1e30 masks)."""
    reference, model, params = _pair("XLNetLMHeadModel")
    perm, target = _lm_targets(n=2)
    perm[:, 5, :] = 1.0  # position 5 may see nothing, not even a memory
    options = dict(perm_mask=perm, target_mapping=target, output_attentions=True)
    with torch.no_grad():
        ref = reference(IDS, **options)
    out = model.apply(params, IDS, **options)
    _close(out.logits, ref.logits, "logits")
    g_probs = out.attentions[0][1]
    torch.testing.assert_close(g_probs[:, :, 5], torch.full_like(g_probs[:, :, 5], 1 / 7))


def test_input_mask_equals_attention_mask():
    reference, model, params = _pair("XLNetModel")
    with torch.no_grad():
        ref = reference(IDS, input_mask=1 - MASK).last_hidden_state
    _close(model.apply(params, IDS, attention_mask=MASK).last_hidden_state, ref, "attention_mask")
    _close(model.apply(params, IDS, input_mask=1 - MASK).last_hidden_state, ref, "input_mask")


@pytest.mark.parametrize("num_labels", [3, 1])
def test_sequence_classification_loss(num_labels):
    reference, model, params = _pair("XLNetForSequenceClassification", num_labels=num_labels)
    labels = torch.tensor([0, 2, 1, 1]) if num_labels > 1 else torch.tensor([0.5, -1.0, 2.0, 0.0])
    with torch.no_grad():
        ref = reference(IDS, labels=labels, attention_mask=MASK)
    out = model.apply(params, IDS, labels=labels, attention_mask=MASK)
    _close(out.logits, ref.logits, "logits")
    _close(out.loss, ref.loss, "loss")


P_MASK = torch.zeros(4, 7)
P_MASK[:, :2] = 1.0
P_MASK[2, 6] = 1.0


def test_question_answering_beam_and_loss():
    reference, model, params = _pair("XLNetForQuestionAnswering", start_n_top=3, end_n_top=2)
    cls_index = torch.tensor([6, 0, 3, 6])
    with torch.no_grad():
        ref = reference(IDS, p_mask=P_MASK, cls_index=cls_index, token_type_ids=TYPES)
    out = model.apply(params, IDS, p_mask=P_MASK, cls_index=cls_index, token_type_ids=TYPES)
    assert out.end_top_index.shape == (4, 6)
    for field in ("start_top_log_probs", "start_top_index", "end_top_log_probs", "end_top_index"):
        _close(getattr(out, field).double(), getattr(ref, field).double(), field)
    _close(out.cls_logits, ref.cls_logits, "cls_logits")

    labels = dict(
        start_positions=torch.tensor([2, 3, 4, 5]),
        end_positions=torch.tensor([3, 6, 4, 5]),
        cls_index=cls_index,
        is_impossible=torch.tensor([0.0, 1.0, 0.0, 1.0]),
    )
    with torch.no_grad():
        ref = reference(IDS, p_mask=P_MASK, **labels)
        ref_simple = reference(
            IDS, start_positions=labels["start_positions"], end_positions=labels["end_positions"]
        )
    out = model.apply(params, IDS, p_mask=P_MASK, **labels)
    assert type(out).__name__ == "XLNetForQuestionAnsweringLossOutput"
    _close(out.loss, ref.loss, "loss with answer class")
    simple = model.apply(
        params,
        IDS,
        start_positions=labels["start_positions"],
        end_positions=labels["end_positions"],
    )
    _close(simple.loss, ref_simple.loss, "span loss")


@pytest.mark.parametrize("same_length", [False, True])
def test_uni_with_padding_and_perm_mask_matches_row_by_row(same_length):
    """attn_type="uni" plus a data mask: the references add it to the causal mask in
    place, which broadcasts only for batch 1, so each row is checked on its own."""
    reference, model, params = _pair(
        "XLNetLMHeadModel", attn_type="uni", same_length=same_length, mem_len=4
    )
    perm, target = _lm_targets(n=2)
    perm[:, 1, 0] = 1.0
    options = dict(attention_mask=MASK, perm_mask=perm, target_mapping=target)
    first = model.apply(params, IDS[:, :3])
    out = model.apply(params, IDS, mems=first.mems, **options)
    for row in range(IDS.shape[0]):
        pick = {k: v[row : row + 1] for k, v in options.items()}
        with torch.no_grad():
            ref_first = reference(IDS[row : row + 1, :3])
            ref = reference(IDS[row : row + 1], mems=ref_first.mems, **pick)
        _close(out.logits[row : row + 1], ref.logits, f"row {row} logits")
        _close([m[:, row : row + 1] for m in out.mems], ref.mems, f"row {row} mems")


def test_pretrained_directories_both_ways(tmp_path):
    """A directory saved by transformers loads into ptfunc, and ptfunc's loads back."""
    reference, model, params = _pair("XLNetLMHeadModel", mem_len=4)
    reference.save_pretrained(tmp_path / "theirs")
    loaded_model, loaded = io.from_pretrained(tmp_path / "theirs", xlnet.XLNetLMHeadModel)
    assert loaded_model.config.mem_len == 4 and loaded_model.config.ff_activation == "gelu_new"
    with torch.no_grad():
        ref = reference(IDS).logits
    _close(loaded_model.apply(loaded, IDS).logits, ref, "from transformers' directory")
    io.save_pretrained(tmp_path / "ours", model, params)
    back = transformers.XLNetLMHeadModel.from_pretrained(tmp_path / "ours").eval()
    with torch.no_grad():
        _close(back(IDS).logits, ref, "transformers reading ptfunc's directory")


def test_generate_greedy_matches_a_transformers_loop_and_left_padding():
    """ptfunc.generate through XLNetLMHeadModel.decode_step: each step equals the
    reference's permutation-LM prediction of an appended dummy token."""
    reference, model, params = _pair("XLNetLMHeadModel")
    prompt = IDS[:2, :4]
    out = ptfunc.generate(model, params, prompt, max_new_tokens=3)
    ids = prompt
    for _ in range(3):
        b, s = ids.shape
        x = torch.cat([ids, torch.zeros(b, 1, dtype=ids.dtype)], 1)
        perm = torch.zeros(b, s + 1, s + 1)
        perm[:, :, -1] = 1.0
        target = torch.zeros(b, 1, s + 1)
        target[:, 0, -1] = 1.0
        with torch.no_grad():
            logits = reference(x, perm_mask=perm, target_mapping=target).logits[:, 0]
        ids = torch.cat([ids, logits.argmax(-1, keepdim=True)], 1)
    assert torch.equal(out, ids)
    padded = torch.cat([torch.zeros(1, 2, dtype=prompt.dtype), prompt[1:]], 1)
    mask = torch.tensor([[0, 0, 1, 1, 1, 1]])
    logits, cache = model.decode_step(params, padded, attention_mask=mask)
    _close(logits, model.decode_step(params, prompt[1:])[0], "left-padded step")
    assert cache is None


@pytest.mark.parametrize("attn_type", ["bi", "uni"])
def test_generate_equals_transformers_generate_without_mems(attn_type):
    """Greedy ptfunc.generate == transformers' generate(use_mems=False) (the exact,
    recomputing path); for a causal model ptfunc reuses memories, exactly."""
    reference, model, params = _pair("XLNetLMHeadModel", attn_type=attn_type)
    prompt = IDS[:2, :5]
    # one row at a time: both references crash on "uni" with a perm_mask and batch > 1
    with torch.no_grad():
        want = torch.cat(
            [
                reference.generate(
                    row[None],
                    attention_mask=torch.ones_like(row[None]),
                    max_new_tokens=6,
                    do_sample=False,
                    use_mems=False,
                    pad_token_id=0,
                )
                for row in prompt
            ]
        )
    assert torch.equal(ptfunc.generate(model, params, prompt, max_new_tokens=6), want)
    logits, cache = model.decode_step(params, prompt)
    assert (cache is None) == (attn_type == "bi")
    if attn_type == "uni":  # the cache covers the prompt; the next step equals recomputation
        assert cache[1] == prompt.shape[1] and cache[0][0].shape[0] == prompt.shape[1]
        longer = torch.cat([prompt, logits.argmax(-1, keepdim=True)], 1)
        step, _ = model.decode_step(params, longer, cache=cache)
        _close(step, model.decode_step(params, longer, use_cache=False)[0], "cached step")


def test_generate_sampling_is_keyed():
    """Sampling through decode_step: the same key gives the same text, top_k=1 is greedy."""
    _, model, params = _pair("XLNetLMHeadModel", attn_type="uni")
    prompt = IDS[:2, :4]
    sample = dict(max_new_tokens=5, temperature=0.8, top_k=10)
    a = ptfunc.generate(model, params, prompt, key=ptfunc.random.key(1), **sample)
    assert torch.equal(
        a, ptfunc.generate(model, params, prompt, key=ptfunc.random.key(1), **sample)
    )
    assert not torch.equal(
        a, ptfunc.generate(model, params, prompt, key=ptfunc.random.key(2), **sample)
    )
    greedy = ptfunc.generate(model, params, prompt, max_new_tokens=5)
    top1 = ptfunc.generate(
        model, params, prompt, key=ptfunc.random.key(3), max_new_tokens=5, top_k=1
    )
    assert torch.equal(top1, greedy)
