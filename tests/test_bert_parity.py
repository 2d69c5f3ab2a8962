"""BERT parity: every head against today's ``transformers`` and pytorch-transformers 1.0.

Same weights (the reference module's state dict loaded through ``ptfunc.io``),
same inputs; float32 outputs and losses must agree within 1e-5 max-abs.
"""

from __future__ import annotations

import warnings

import pytest
import torch

import ptfunc
from ptfunc.archs import bert

transformers = pytest.importorskip("transformers")

ATOL = 1e-5
B, S, V = 3, 7, 99
CONFIG = dict(
    vocab_size=V,
    hidden_size=32,
    num_hidden_layers=3,
    num_attention_heads=4,
    intermediate_size=37,
    max_position_embeddings=64,
    type_vocab_size=2,
    num_labels=3,
)

# (ptfunc constructor, transformers class name, pytorch-transformers class name)
HEADS = [
    (bert.BertModel, "BertModel"),
    (bert.BertForPreTraining, "BertForPreTraining"),
    (bert.BertForMaskedLM, "BertForMaskedLM"),
    (bert.BertForNextSentencePrediction, "BertForNextSentencePrediction"),
    (bert.BertForSequenceClassification, "BertForSequenceClassification"),
    (bert.BertForMultipleChoice, "BertForMultipleChoice"),
    (bert.BertForTokenClassification, "BertForTokenClassification"),
    (bert.BertForQuestionAnswering, "BertForQuestionAnswering"),
]


def _inputs(multiple_choice: bool = False, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    shape = (B, 2, S) if multiple_choice else (B, S)
    ids = torch.randint(1, V, shape, generator=g)
    mask = torch.ones(shape, dtype=torch.long)
    mask[..., 0, 5:] = 0  # first example padded
    types = torch.zeros(shape, dtype=torch.long)
    types[..., 4:] = 1
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


def _labels(name: str, negative: int = -100) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    if name in ("BertForPreTraining", "BertForMaskedLM"):
        mlm = torch.randint(0, V, (B, S), generator=g)
        mlm[:, ::2] = negative
        out = {"labels": mlm}
        if name == "BertForPreTraining":
            out["next_sentence_label"] = torch.tensor([0, 1, 1])
        return out
    if name == "BertForNextSentencePrediction":
        return {"labels": torch.tensor([0, 1, 0])}
    if name == "BertForSequenceClassification":
        return {"labels": torch.tensor([0, 2, 1])}
    if name == "BertForMultipleChoice":
        return {"labels": torch.tensor([1, 0, 1])}
    if name == "BertForTokenClassification":
        # Padded positions carry ignored labels: transformers counts every labelled position,
        # 1.0 (and ptfunc) only those with attention_mask == 1; this way both agree.
        labels = torch.randint(0, 3, (B, S), generator=g)
        labels[0, 5:] = negative
        return {"labels": labels}
    if name == "BertForQuestionAnswering":
        return {
            "start_positions": torch.tensor([1, 3, 9]),
            "end_positions": torch.tensor([2, 5, 0]),
        }
    return {}


def _overrides(name: str) -> dict:
    return {"num_labels": 2} if name == "BertForQuestionAnswering" else {}


def _hf_model(name: str, **overrides):
    overrides = {**_overrides(name), **overrides}
    config = transformers.BertConfig(
        **{**CONFIG, **overrides}, attn_implementation="eager", hidden_dropout_prob=0.1
    )
    torch.manual_seed(0)
    return getattr(transformers, name)(config).eval()


def _ours(ctor, reference, **overrides):
    overrides = {**_overrides(ctor.__name__), **overrides}
    config = bert.BertConfig(**{**CONFIG, **overrides})
    model = ctor(config)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 1.0 heads carry a pooler some of ours lack
        params = ptfunc.io.from_torch_state_dict(model, reference.state_dict())
    return model, params


def _assert_close(a, b, what):
    assert a.shape == b.shape, f"{what}: shape {tuple(a.shape)} vs {tuple(b.shape)}"
    err = (a - b).abs().max().item()
    assert err <= ATOL, f"{what}: max abs diff {err:.3g} > {ATOL}"


def _ref_fields(name: str, out) -> list[torch.Tensor]:
    fields = {
        "BertModel": ["last_hidden_state", "pooler_output"],
        "BertForPreTraining": ["prediction_logits", "seq_relationship_logits"],
        "BertForQuestionAnswering": ["start_logits", "end_logits"],
    }.get(name, ["logits"])
    return [getattr(out, f) for f in fields]


@pytest.mark.parametrize("ctor,name", HEADS, ids=[n for _, n in HEADS])
@pytest.mark.parametrize("with_labels", [False, True], ids=["nolabels", "labels"])
def test_matches_transformers(ctor, name, with_labels):
    """Outputs, hidden states, attentions and loss vs transformers (eager attention)."""
    reference = _hf_model(name)
    model, params = _ours(ctor, reference)
    inputs = _inputs(multiple_choice=name == "BertForMultipleChoice")
    labels = _labels(name) if with_labels else {}
    with torch.no_grad():
        ref = reference(**inputs, **labels, output_hidden_states=True, output_attentions=True)
    out = model.apply(
        params,
        inputs.pop("input_ids"),
        **inputs,
        **labels,
        output_hidden_states=True,
        output_attentions=True,
    )
    n_fields = len(_ref_fields(name, ref))
    offset = 0
    if labels:
        assert type(out).__name__.endswith("WithLoss")
        _assert_close(out.loss, ref.loss, "loss")
        offset = 1
    for i, expected in enumerate(_ref_fields(name, ref)):
        _assert_close(out[offset + i], expected, f"output {i}")
    assert len(out.hidden_states) == CONFIG["num_hidden_layers"] + 1
    for i, (a, b) in enumerate(zip(out.hidden_states, ref.hidden_states, strict=True)):
        _assert_close(a, b, f"hidden_states[{i}]")
    assert len(out.attentions) == CONFIG["num_hidden_layers"]
    for i, (a, b) in enumerate(zip(out.attentions, ref.attentions, strict=True)):
        _assert_close(a, b, f"attentions[{i}]")
    assert len(out) == offset + n_fields + 2


@pytest.mark.parametrize("ctor,name", HEADS, ids=[n for _, n in HEADS])
def test_fused_attention_path_matches(ctor, name):
    """Without attentions requested, the fused SDPA path gives the same outputs."""
    reference = _hf_model(name)
    model, params = _ours(ctor, reference)
    inputs = _inputs(multiple_choice=name == "BertForMultipleChoice")
    with torch.no_grad():
        ref = reference(**inputs)
    out = model.apply(params, inputs.pop("input_ids"), **inputs)
    for i, expected in enumerate(_ref_fields(name, ref)):
        _assert_close(out[i], expected, f"output {i}")
    assert out.hidden_states == () and out.attentions == ()


def test_regression_head_uses_mse():
    """num_labels == 1: MSE loss, as transformers (and 1.0) do."""
    reference = _hf_model("BertForSequenceClassification", num_labels=1)
    model, params = _ours(bert.BertForSequenceClassification, reference, num_labels=1)
    inputs = _inputs()
    targets = torch.tensor([0.5, -1.0, 2.0])
    with torch.no_grad():
        ref = reference(**inputs, labels=targets)
    out = model.apply(params, inputs.pop("input_ids"), **inputs, labels=targets)
    _assert_close(out.loss, ref.loss, "mse loss")
    _assert_close(out.logits, ref.logits, "logits")


def test_position_ids_match_transformers():
    reference = _hf_model("BertModel")
    model, params = _ours(bert.BertModel, reference)
    inputs = _inputs()
    positions = torch.arange(S).flip(0).expand(B, S)
    with torch.no_grad():
        ref = reference(**inputs, position_ids=positions)
    out = model.apply(params, inputs.pop("input_ids"), **inputs, position_ids=positions)
    _assert_close(out.last_hidden_state, ref.last_hidden_state, "last_hidden_state")


# -- pytorch-transformers 1.0 (the seed): head_mask, -1 labels, config output flags ------------

pt = pytest.importorskip("pytorch_transformers")


def _seed_model(name: str, **config_flags):
    config = pt.BertConfig(
        CONFIG["vocab_size"],
        hidden_size=CONFIG["hidden_size"],
        num_hidden_layers=CONFIG["num_hidden_layers"],
        num_attention_heads=CONFIG["num_attention_heads"],
        intermediate_size=CONFIG["intermediate_size"],
        max_position_embeddings=CONFIG["max_position_embeddings"],
        **config_flags,
    )
    config.num_labels = _overrides(name).get("num_labels", CONFIG["num_labels"])
    torch.manual_seed(0)
    return getattr(pt, name)(config).eval()


def _seed_labels(name: str) -> dict[str, torch.Tensor]:
    labels = _labels(name, negative=-1)
    if "labels" in labels and name in ("BertForPreTraining", "BertForMaskedLM"):
        labels["masked_lm_labels"] = labels.pop("labels")
    if name == "BertForNextSentencePrediction":
        labels["next_sentence_label"] = labels.pop("labels")
    return labels


@pytest.mark.parametrize("ctor,name", HEADS, ids=[n for _, n in HEADS])
def test_matches_seed_with_head_mask(ctor, name):
    """Against pytorch-transformers 1.0: head_mask, 1.0's -1 ignore index, label names."""
    reference = _seed_model(name, output_attentions=True, output_hidden_states=True)
    model, params = _ours(ctor, reference)
    inputs = _inputs(multiple_choice=name == "BertForMultipleChoice")
    head_mask = torch.ones(CONFIG["num_hidden_layers"], CONFIG["num_attention_heads"])
    head_mask[0, 1] = 0
    head_mask[2, 0] = 0
    labels = _seed_labels(name)
    with torch.no_grad():
        ref = reference(**inputs, head_mask=head_mask, **labels)
    config = model.config.replace(output_attentions=True, output_hidden_states=True)
    model = type(model)(config)  # 1.0 style: the flags come from the config
    out = model.apply(params, inputs.pop("input_ids"), **inputs, head_mask=head_mask, **labels)
    ref_att, ref_hidden = ref[-1], ref[-2]
    for i, (a, b) in enumerate(zip(out.attentions, ref_att, strict=True)):
        _assert_close(a, b, f"attentions[{i}]")
    for i, (a, b) in enumerate(zip(out.hidden_states, ref_hidden, strict=True)):
        _assert_close(a, b, f"hidden_states[{i}]")
    assert out.attentions[0][:, 1].abs().max() == 0 and out.attentions[2][:, 0].abs().max() == 0
    for i, expected in enumerate(ref[: len(ref) - 2]):
        _assert_close(out[i], expected, f"output {i}")


def test_head_mask_of_one_row_broadcasts_to_all_layers():
    reference = _seed_model("BertModel", output_attentions=True)
    model, params = _ours(bert.BertModel, reference)
    inputs = _inputs()
    head_mask = torch.tensor([1.0, 0.0, 1.0, 1.0])
    with torch.no_grad():
        ref = reference(**inputs, head_mask=head_mask)
    out = model.apply(
        params, inputs.pop("input_ids"), **inputs, head_mask=head_mask, output_attentions=True
    )
    _assert_close(out.last_hidden_state, ref[0], "last_hidden_state")
    for a, b in zip(out.attentions, ref[-1], strict=True):
        _assert_close(a, b, "attentions")


def test_token_classification_loss_skips_padding_like_seed():
    """1.0 counts only attention_mask == 1 positions, whatever their labels say."""
    reference = _seed_model("BertForTokenClassification")
    model, params = _ours(bert.BertForTokenClassification, reference)
    inputs = _inputs()
    labels = torch.randint(0, 3, (B, S), generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        ref_loss = reference(**inputs, labels=labels)[0]
    out = model.apply(params, inputs.pop("input_ids"), **inputs, labels=labels)
    _assert_close(out.loss, ref_loss, "loss")
