"""DistilBERT's task heads, named after the transformers classes.

Every head's ``apply(params, input_ids, *, <labels>, train=False, key=None,
**options)`` takes the encoder options of :class:`DistilBertModel` (``attention_mask``,
``position_ids``, ``head_mask``, ``output_attentions``, ``output_hidden_states``,
``remat``, ``validate``) and returns a NamedTuple of :mod:`ptfunc.archs.outputs`; given
labels it returns the ``WithLoss`` twin whose first field is the loss. Negative labels
are ignored by the language-model and token losses.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ...layers import activations, dropout, embedding, layer_norm, linear, losses
from ...random import Key, split
from ...tree import Params
from .. import outputs
from ..bert.model import Encoded
from ..task_heads import (
    MultipleChoiceHead,
    QuestionAnsweringHead,
    SequenceClassificationHead,
    TaskHead,
    TokenClassificationHead,
)
from .config import DistilBertConfig
from .model import DistilBertModel, HeadPruningMixin, encode

__all__ = [
    "DistilBertForMaskedLM",
    "DistilBertForSequenceClassification",
    "DistilBertForMultipleChoice",
    "DistilBertForTokenClassification",
    "DistilBertForQuestionAnswering",
]

_ENCODER_OPTIONS = frozenset(
    {
        "attention_mask",
        "position_ids",
        "head_mask",
        "output_attentions",
        "output_hidden_states",
        "remat",
        "validate",
    }
)


class _DistilBertHead(HeadPruningMixin, TaskHead):
    """A DistilBERT encoder under ``params["distilbert"]`` plus head params beside it."""

    config_class = DistilBertConfig
    base_model_prefix = "distilbert"
    ignored_checkpoint_keys = DistilBertModel.ignored_checkpoint_keys
    token_embedding_path = DistilBertModel.token_embedding_path
    base_options = _ENCODER_OPTIONS

    @property
    def hidden_width(self) -> int:
        """``dim``."""
        return self.config.dim

    @property
    def classifier_dropout_rate(self) -> float:
        """``dropout`` (the token classifier's)."""
        return self.config.dropout

    def init_base(self, key: Key) -> Params:
        return DistilBertModel(self.config).init(key)

    def run_base(
        self, params: Params, input_ids: Tensor, *, key: Key | None, train: bool, **options: Any
    ) -> Encoded:
        return encode(self.config, params, input_ids, key=key, train=train, **options)


class _FirstTokenHead(_DistilBertHead):
    """``pre_classifier`` (dim, dim), ReLU, dropout(``seq_classif_dropout``), ``classifier``
    of :meth:`num_outputs` outputs, on the first token."""

    def num_outputs(self) -> int:
        return self.config.num_labels

    def init_head(self, key: Key) -> Params:
        kp, kc = split(key)
        return {
            "pre_classifier": self._linear(kp, self.config.dim),
            "classifier": self._linear(kc, self.num_outputs()),
        }

    def classify(self, params: Params, h: Tensor, key: Key | None, train: bool) -> Tensor:
        """(b, s, d) -> (b, outputs)."""
        x = torch.relu(linear.apply(params["pre_classifier"], h[:, 0]))
        x = dropout.apply(x, self.config.seq_classif_dropout, key=key, train=train)
        return linear.apply(params["classifier"], x)


class DistilBertForMaskedLM(_DistilBertHead):
    """Masked LM: vocab_transform, activation, vocab_layer_norm, vocab_projector (its weight
    tied to the word embeddings).

    Labels: ``labels`` (b, s); negative = not predicted.
    Returns ``MaskedLMOutput(logits (b, s, V), ...)``.
    """

    tied = {"vocab_projector.weight": "distilbert.embeddings.word_embeddings.weight"}
    vocab_biases = (("vocab_projector", "bias"),)
    output = outputs.MaskedLMOutput

    def init_head(self, key: Key) -> Params:
        c = self.config
        return {
            "vocab_transform": self._linear(key, c.dim),
            "vocab_layer_norm": layer_norm.init(c.dim),
            "vocab_projector": {"bias": torch.zeros(c.vocab_size)},
        }

    def head(self, params: Params, h: Tensor, key: Key | None, train: bool, labels=None):
        c = self.config
        h = activations.get(c.activation)(linear.apply(params["vocab_transform"], h))
        h = layer_norm.apply(params["vocab_layer_norm"], h, eps=c.layer_norm_eps)
        words = params["distilbert"]["embeddings"]["word_embeddings"]
        logits = embedding.attend(words, h, params["vocab_projector"]["bias"])
        return None if labels is None else losses.cross_entropy(logits, labels), logits


class DistilBertForSequenceClassification(_FirstTokenHead, SequenceClassificationHead):
    """First token -> pre_classifier -> ReLU -> dropout(seq_classif_dropout) -> classifier.

    Labels: ``labels`` (b,) class ids, or floats for regression when ``num_labels == 1``.
    Returns ``SequenceClassifierOutput(logits (b, num_labels), ...)``.
    """


class DistilBertForMultipleChoice(_FirstTokenHead, MultipleChoiceHead):
    """Scores each choice: inputs (b, num_choices, s) -> logits (b, num_choices), through
    the sequence-classification layers with one output.

    ``attention_mask`` and ``position_ids`` are given as (b, num_choices, s) too.
    Labels: ``labels`` (b,) index of the right choice.
    """

    choice_options = ("attention_mask", "position_ids")

    def num_outputs(self) -> int:
        return 1


class DistilBertForTokenClassification(_DistilBertHead, TokenClassificationHead):
    """Per-token classifier: dropout(dropout) -> classifier.

    Labels: ``labels`` (b, s); every position whose label is not negative counts in the
    loss (as transformers; give padding -100).
    Returns ``TokenClassifierOutput(logits (b, s, num_labels), ...)``.
    """


class DistilBertForQuestionAnswering(_DistilBertHead, QuestionAnsweringHead):
    """Span extraction: dropout(qa_dropout) -> qa_outputs (dim -> 2): start and end logits
    (b, s).

    Labels: ``start_positions`` and ``end_positions`` (b,); loss = (start + end) / 2,
    positions outside the sequence are ignored.
    """

    @property
    def span_dropout_rate(self) -> float:
        """``qa_dropout``."""
        return self.config.qa_dropout
