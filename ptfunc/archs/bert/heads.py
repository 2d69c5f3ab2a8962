"""BERT's task heads, named after the pytorch-transformers classes.

Every head's ``apply(params, input_ids, *, <labels>, train=False, key=None,
**options)`` takes the encoder options of :class:`BertModel` (``attention_mask``,
``token_type_ids``, ``position_ids``, ``head_mask``, ``output_attentions``,
``output_hidden_states``, ``remat``) and returns a NamedTuple; given labels it returns the
``WithLoss`` twin whose first field is the loss. Negative labels (1.0's -1 and
today's -100) are ignored by the language-model and next-sentence losses.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ...layers import activations, dropout, embedding, layer_norm, linear, losses
from ...random import Key, split
from ...tree import Params
from .. import outputs
from ..task_heads import (
    MultipleChoiceHead,
    QuestionAnsweringHead,
    SequenceClassificationHead,
    TaskHead,
    TokenClassificationHead,
)
from .config import BertConfig
from .model import BertModel, Encoded, encode, init_embeddings, init_encoder, init_pooler, pool
from .transforms import ParamTransforms

__all__ = [
    "BertForPreTraining",
    "BertForMaskedLM",
    "BertForNextSentencePrediction",
    "BertForSequenceClassification",
    "BertForMultipleChoice",
    "BertForTokenClassification",
    "BertForQuestionAnswering",
]

ENCODER_OPTIONS = frozenset(
    {
        "attention_mask",
        "token_type_ids",
        "position_ids",
        "head_mask",
        "output_attentions",
        "output_hidden_states",
        "remat",
        "validate",
    }
)
_WORD_EMBEDDINGS = "bert.embeddings.word_embeddings.weight"


class _BertHead(ParamTransforms, TaskHead):
    """A BERT encoder under ``params[base_model_prefix]`` (``"bert"``) plus head params beside
    it. The families built on BERT's encoder (RoBERTa, ELECTRA, ALBERT) reuse the heads with
    their own prefix and :attr:`classifier_dropout_rate`."""

    config_class = BertConfig
    base_model_prefix = "bert"
    ignored_checkpoint_keys = BertModel.ignored_checkpoint_keys
    token_embedding_path = BertModel.token_embedding_path
    vocab_biases = (("cls", "predictions", "bias"),)
    base_options = ENCODER_OPTIONS
    has_pooler = True

    def init(self, key: Key) -> Params:
        c = self.config
        ke, kl, kp, kh = split(key, 4)
        base = {"embeddings": init_embeddings(ke, c), "encoder": init_encoder(kl, c)}
        if self.has_pooler:
            base["pooler"] = init_pooler(kp, c)
        return {self.base_model_prefix: base, **self.init_head(kh)}

    def pooled(self, params: Params, h: Tensor) -> Tensor:
        """The pooler's output (b, d) from the last hidden state h (b, s, d)."""
        return pool(params[self.base_model_prefix]["pooler"], h)

    def _pooled_classifier(
        self, params: Params, h: Tensor, key: Key | None, train: bool, rate: float
    ) -> Tensor:
        """pooler -> dropout(rate) -> ``classifier``: (b, s, d) -> (b, classifier outputs)."""
        pooled = dropout.apply(self.pooled(params, h), rate, key=key, train=train)
        return linear.apply(params["classifier"], pooled)

    def run_base(
        self, params: Params, input_ids: Tensor, *, key: Key | None, train: bool, **options: Any
    ) -> Encoded:
        kw = {name: options.get(name) for name in ENCODER_OPTIONS}
        return encode(self.config, params, input_ids, key=key, train=train, **kw)


def _lm_head_init(c: BertConfig, key: Key) -> Params:
    """``predictions``: transform (dense, act, LayerNorm) and the decoder bias.

    The decoder weight is the word-embedding leaf (tied), so it is not stored.
    """
    return {
        "transform": {
            "dense": linear.init(key, c.hidden_size, c.hidden_size, std=c.initializer_range),
            "LayerNorm": layer_norm.init(c.hidden_size),
        },
        "bias": torch.zeros(c.vocab_size),
    }


def _lm_logits(c: BertConfig, params: Params, h: Tensor, prefix: str = "bert") -> Tensor:
    """(b, s, d) -> (b, s, V) through the transform and the tied decoder."""
    p = params["cls"]["predictions"]
    t = activations.get(c.hidden_act)(linear.apply(p["transform"]["dense"], h))
    t = layer_norm.apply(p["transform"]["LayerNorm"], t, eps=c.layer_norm_eps)
    return embedding.attend(params[prefix]["embeddings"]["word_embeddings"], t, p["bias"])


def _pick(seed_name: str, seed_value: Tensor | None, labels: Tensor | None) -> Tensor | None:
    if seed_value is not None and labels is not None:
        raise ValueError(f"pass either {seed_name} (pytorch-transformers 1.0) or labels, not both")
    return seed_value if seed_value is not None else labels


class BertForPreTraining(_BertHead):
    """Masked LM and next-sentence heads; loss = MLM + NSP when both labels are given.

    Labels: ``masked_lm_labels`` (b, s) (alias ``labels``), ``next_sentence_label`` (b,).
    Returns ``PreTrainingOutput(prediction_logits (b, s, V), seq_relationship_logits (b, 2), ...)``.
    """

    tied = {"cls.predictions.decoder.weight": _WORD_EMBEDDINGS}
    ignored_checkpoint_keys = (*_BertHead.ignored_checkpoint_keys, "cls.predictions.decoder.bias")
    output = outputs.PreTrainingOutput
    label_names = ("masked_lm_labels", "next_sentence_label", "labels")

    def init_head(self, key: Key) -> Params:
        k_lm, k_nsp = split(key)
        return {
            "cls": {
                "predictions": _lm_head_init(self.config, k_lm),
                "seq_relationship": self._linear(k_nsp, 2),
            }
        }

    def head(self, params, h, key, train, masked_lm_labels=None, next_sentence_label=None,
             labels=None):  # fmt: skip  # noqa: ANN001
        logits = _lm_logits(self.config, params, h, self.base_model_prefix)
        nsp = linear.apply(params["cls"]["seq_relationship"], self.pooled(params, h))
        mlm_labels = _pick("masked_lm_labels", masked_lm_labels, labels)
        loss = None
        if mlm_labels is not None and next_sentence_label is not None:
            loss = losses.cross_entropy(logits, mlm_labels) + losses.cross_entropy(
                nsp, next_sentence_label
            )
        return loss, logits, nsp


class BertForMaskedLM(_BertHead):
    """Masked language model head (decoder tied to the word embeddings).

    Labels: ``masked_lm_labels`` (b, s) (alias ``labels``); negative = not predicted.
    Returns ``MaskedLMOutput(logits (b, s, V), ...)``. Has no pooler, as today's
    ``transformers``; a 1.0 checkpoint's pooler weights are reported unexpected.
    """

    has_pooler = False
    tied = BertForPreTraining.tied
    ignored_checkpoint_keys = BertForPreTraining.ignored_checkpoint_keys
    output = outputs.MaskedLMOutput
    label_names = ("masked_lm_labels", "labels")

    def init_head(self, key: Key) -> Params:
        return {"cls": {"predictions": _lm_head_init(self.config, key)}}

    def head(self, params, h, key, train, masked_lm_labels=None, labels=None):  # noqa: ANN001
        logits = _lm_logits(self.config, params, h, self.base_model_prefix)
        mlm_labels = _pick("masked_lm_labels", masked_lm_labels, labels)
        return None if mlm_labels is None else losses.cross_entropy(logits, mlm_labels), logits


class BertForNextSentencePrediction(_BertHead):
    """Next-sentence head on the pooled output.

    Labels: ``next_sentence_label`` (b,) (alias ``labels``), 0 = B follows A.
    Returns ``NextSentencePredictorOutput(logits (b, 2), ...)``.
    """

    output = outputs.NextSentencePredictorOutput
    label_names = ("next_sentence_label", "labels")

    def init_head(self, key: Key) -> Params:
        return {"cls": {"seq_relationship": self._linear(key, 2)}}

    def head(self, params, h, key, train, next_sentence_label=None, labels=None):  # noqa: ANN001
        logits = linear.apply(params["cls"]["seq_relationship"], self.pooled(params, h))
        target = _pick("next_sentence_label", next_sentence_label, labels)
        return None if target is None else losses.cross_entropy(logits, target), logits


class BertForSequenceClassification(_BertHead, SequenceClassificationHead):
    """Classifier on the pooled output: dropout -> Linear(hidden, num_labels).

    Labels: ``labels`` (b,) class ids, or floats for regression when ``num_labels == 1``.
    Returns ``SequenceClassifierOutput(logits (b, num_labels), ...)``.
    """

    def init_head(self, key: Key) -> Params:
        return {"classifier": self._linear(key, self.config.num_labels)}

    def classify(self, params: Params, h: Tensor, key: Key | None, train: bool) -> Tensor:
        return self._pooled_classifier(params, h, key, train, self.classifier_dropout_rate)


class BertForMultipleChoice(_BertHead, MultipleChoiceHead):
    """Scores each choice: pooler -> dropout -> Linear(hidden, 1); inputs
    (b, num_choices, s) -> logits (b, num_choices).

    Every encoder option with a sequence axis is given as (b, num_choices, s) too.
    Labels: ``labels`` (b,) index of the right choice.
    """

    @property
    def choice_dropout_rate(self) -> float:
        """Dropout on the pooled output (``hidden_dropout_prob``, as BERT and RoBERTa)."""
        return self.config.hidden_dropout_prob

    def classify(self, params: Params, h: Tensor, key: Key | None, train: bool) -> Tensor:
        return self._pooled_classifier(params, h, key, train, self.choice_dropout_rate)


class BertForTokenClassification(_BertHead, TokenClassificationHead):
    """Per-token classifier: dropout -> Linear(hidden, num_labels).

    Labels: ``labels`` (b, s); with an ``attention_mask`` only kept positions
    count in the loss (as in 1.0).
    Returns ``TokenClassifierOutput(logits (b, s, num_labels), ...)``.
    """

    has_pooler = False
    mask_padding_labels = True


class BertForQuestionAnswering(_BertHead, QuestionAnsweringHead):
    """Span extraction: Linear(hidden, 2) -> start and end logits (b, s).

    Labels: ``start_positions`` and ``end_positions`` (b,); loss = (start + end) / 2,
    positions outside the sequence are ignored.
    """

    has_pooler = False
