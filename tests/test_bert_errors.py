"""Bad input to BERT models and configs gets a clear error naming what was expected."""

from __future__ import annotations

import pytest
import torch

import ptfunc
from ptfunc.archs import bert

CONFIG = bert.BertConfig(
    vocab_size=30,
    hidden_size=8,
    num_hidden_layers=1,
    num_attention_heads=2,
    intermediate_size=16,
    max_position_embeddings=10,
)
MODEL = bert.BertForSequenceClassification(CONFIG)
PARAMS = MODEL.init(ptfunc.random.key(0))


def test_float_ids_are_refused():
    with pytest.raises(TypeError, match=r"input_ids must be an integer tensor.*float32"):
        MODEL.apply(PARAMS, torch.ones(1, 4))


def test_wrong_rank_is_refused():
    with pytest.raises(ValueError, match=r"input_ids must have shape \(batch, seq\); got \(4,\)"):
        MODEL.apply(PARAMS, torch.ones(4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\(batch, num_choices, seq\)"):
        bert.BertForMultipleChoice(CONFIG).apply(PARAMS, torch.ones(1, 4, dtype=torch.long))


def test_ids_outside_the_vocabulary_are_refused():
    with pytest.raises(ValueError, match=r"input_ids must lie in \[0, 30\).*\[0, 30\]"):
        MODEL.apply(PARAMS, torch.tensor([[0, 30]]))
    with pytest.raises(ValueError, match=r"\[-1, 3\]"):
        MODEL.apply(PARAMS, torch.tensor([[-1, 3]]))
    with pytest.raises(ValueError, match=r"token_type_ids must lie in \[0, 2\)"):
        MODEL.apply(PARAMS, torch.tensor([[1, 2]]), token_type_ids=torch.tensor([[0, 2]]))


def test_sequence_longer_than_positions_is_refused():
    with pytest.raises(
        ValueError, match=r"sequence length 11 exceeds max_position_embeddings \(10\)"
    ):
        MODEL.apply(PARAMS, torch.ones(1, 11, dtype=torch.long))


def test_bad_masks_and_options():
    with pytest.raises(ValueError, match=r"attention_mask must have shape \(batch, seq\)"):
        MODEL.apply(PARAMS, torch.ones(1, 3, dtype=torch.long), attention_mask=torch.ones(3))
    with pytest.raises(ValueError, match=r"head_mask must have shape"):
        MODEL.apply(PARAMS, torch.ones(1, 3, dtype=torch.long), head_mask=torch.ones(3, 2))
    with pytest.raises(TypeError, match=r"unexpected options \['atention_mask'\]"):
        MODEL.apply(PARAMS, torch.ones(1, 3, dtype=torch.long), atention_mask=torch.ones(1, 3))
    with pytest.raises(TypeError, match=r"unexpected options \['labels'\]"):
        bert.BertForQuestionAnswering(CONFIG).apply(
            PARAMS, torch.ones(1, 3, dtype=torch.long), labels=torch.zeros(1, dtype=torch.long)
        )
    with pytest.raises(TypeError, match=r"num_choices is not an option"):
        bert.BertForMultipleChoice(CONFIG).apply(
            PARAMS, torch.ones(1, 2, 3, dtype=torch.long), num_choices=3
        )


def test_wrong_config_type_for_model():
    with pytest.raises(TypeError, match="expects a BertConfig"):
        bert.BertModel({"vocab_size": 3})


@pytest.mark.parametrize(
    "kwargs,pattern",
    [
        ({"hidden_size": "768"}, r"BertConfig.hidden_size expects int, got '768'"),
        ({"num_hidden_layers": 2.5}, r"num_hidden_layers expects int"),
        ({"output_attentions": 1}, r"output_attentions expects bool"),
        ({"hidden_dropout_prob": "0.1"}, r"hidden_dropout_prob expects float"),
        ({"hidden_size": 10, "num_attention_heads": 3}, r"multiple of num_attention_heads"),
        ({"hidden_dropout_prob": 1.5}, r"must lie in \[0, 1\)"),
        ({"vocab_size": 0}, r"vocab_size must be >= 1"),
    ],
)
def test_config_values_are_checked(kwargs, pattern):
    with pytest.raises((TypeError, ValueError), match=pattern):
        bert.BertConfig(**kwargs)


def test_question_answering_needs_two_labels():
    with pytest.raises(ValueError, match="num_labels == 2"):
        bert.BertForQuestionAnswering(CONFIG.replace(num_labels=3))


def test_mlm_labels_given_twice():
    model = bert.BertForMaskedLM(CONFIG)
    params = model.init(ptfunc.random.key(0))
    ids = torch.ones(1, 3, dtype=torch.long)
    with pytest.raises(ValueError, match="either masked_lm_labels"):
        model.apply(params, ids, masked_lm_labels=ids, labels=ids)
