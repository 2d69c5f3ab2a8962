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
from ...random import Key, split, split_for_dropout
from ...tree import Params
from .. import inputs, outputs
from ..bert.heads import BertForQuestionAnswering
from ..bert.model import Encoded
from ..head import HeadModel
from ..model import make_output
from .config import DistilBertConfig
from .model import DistilBertModel, encode

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
_PER_TOKEN = ("attention_mask", "position_ids")


class _DistilBertHead(HeadModel):
    """A DistilBERT encoder under ``params["distilbert"]`` plus head params beside it."""

    config_class = DistilBertConfig
    base_model_prefix = "distilbert"
    ignored_checkpoint_keys = DistilBertModel.ignored_checkpoint_keys
    token_embedding_path = DistilBertModel.token_embedding_path
    base_options = _ENCODER_OPTIONS
    required_num_labels: int | None = None
    """The ``num_labels`` a head's output width fixes (question answering: start and end)."""

    def __init__(self, config: DistilBertConfig) -> None:
        super().__init__(config)
        want = self.required_num_labels
        if want is not None and config.num_labels != want:
            raise ValueError(
                f"{type(self).__name__} needs num_labels == {want}, got {config.num_labels}"
            )

    def init_base(self, key: Key) -> Params:
        return DistilBertModel(self.config).init(key)

    def _linear(self, key: Key, d_out: int) -> Params:
        return linear.init(key, self.config.dim, d_out, std=self.config.initializer_range)

    def run_base(
        self, params: Params, input_ids: Tensor, *, key: Key | None, train: bool, **options: Any
    ) -> Encoded:
        return encode(self.config, params, input_ids, key=key, train=train, **options)

    def _classify_first(self, params: Params, enc: Encoded, key: Key | None, train: bool):
        """pre_classifier, ReLU, dropout, classifier on the first token: (b, s, d) -> (b, n)."""
        h = linear.apply(params["pre_classifier"], enc.sequence_output[:, 0])
        h = dropout.apply(torch.relu(h), self.config.seq_classif_dropout, key=key, train=train)
        return linear.apply(params["classifier"], h)


class DistilBertForMaskedLM(_DistilBertHead):
    """Masked LM: vocab_transform, activation, vocab_layer_norm, vocab_projector (its weight
    tied to the word embeddings).

    Labels: ``labels`` (b, s); negative = not predicted.
    Returns ``MaskedLMOutput(logits (b, s, V), ...)``.
    """

    tied = {"vocab_projector.weight": "distilbert.embeddings.word_embeddings.weight"}
    vocab_biases = (("vocab_projector", "bias"),)

    def init_head(self, key: Key) -> Params:
        c = self.config
        return {
            "vocab_transform": self._linear(key, c.dim),
            "vocab_layer_norm": layer_norm.init(c.dim),
            "vocab_projector": {"bias": torch.zeros(c.vocab_size)},
        }

    def apply(
        self,
        params: Params,
        input_ids: Tensor,
        *,
        labels: Tensor | None = None,
        train: bool = False,
        key: Key | None = None,
        **options: Any,
    ) -> Any:
        c = self.config
        enc, _ = self._encode(params, input_ids, options, key, train)
        h = activations.get(c.activation)(
            linear.apply(params["vocab_transform"], enc.sequence_output)
        )
        h = layer_norm.apply(params["vocab_layer_norm"], h, eps=c.layer_norm_eps)
        words = params["distilbert"]["embeddings"]["word_embeddings"]
        logits = embedding.attend(words, h, params["vocab_projector"]["bias"])
        loss = None if labels is None else losses.cross_entropy(logits, labels)
        return make_output(outputs.MaskedLMOutput, loss, logits, enc.hidden_states, enc.attentions)


class DistilBertForSequenceClassification(_DistilBertHead):
    """First token -> pre_classifier -> ReLU -> dropout(seq_classif_dropout) -> classifier.

    Labels: ``labels`` (b,) class ids, or floats for regression when ``num_labels == 1``.
    Returns ``SequenceClassifierOutput(logits (b, num_labels), ...)``.
    """

    def init_head(self, key: Key) -> Params:
        kp, kc = split(key)
        return {
            "pre_classifier": self._linear(kp, self.config.dim),
            "classifier": self._linear(kc, self.config.num_labels),
        }

    def apply(
        self,
        params: Params,
        input_ids: Tensor,
        *,
        labels: Tensor | None = None,
        train: bool = False,
        key: Key | None = None,
        **options: Any,
    ) -> Any:
        enc, k_head = self._encode(params, input_ids, options, key, train)
        logits = self._classify_first(params, enc, k_head, train)
        return outputs.sequence_classification(
            logits, labels, self.config.num_labels, enc.hidden_states, enc.attentions
        )


class DistilBertForMultipleChoice(_DistilBertHead):
    """Scores each choice: inputs (b, num_choices, s) -> logits (b, num_choices), through
    the sequence-classification layers with one output.

    ``attention_mask`` and ``position_ids`` are given as (b, num_choices, s) too.
    Labels: ``labels`` (b,) index of the right choice.
    """

    def init_head(self, key: Key) -> Params:
        kp, kc = split(key)
        return {
            "pre_classifier": self._linear(kp, self.config.dim),
            "classifier": self._linear(kc, 1),
        }

    def apply(
        self,
        params: Params,
        input_ids: Tensor,
        *,
        labels: Tensor | None = None,
        train: bool = False,
        key: Key | None = None,
        **options: Any,
    ) -> Any:
        inputs.check_index_tensor("input_ids", input_ids)
        ids, flat = inputs.flatten_choices(input_ids, options, _PER_TOKEN)
        enc, k_head = self._encode(params, ids, flat, key, train)
        logits = self._classify_first(params, enc, k_head, train).reshape(input_ids.shape[:2])
        loss = None if labels is None else losses.cross_entropy(logits, labels)
        return make_output(
            outputs.MultipleChoiceModelOutput, loss, logits, enc.hidden_states, enc.attentions
        )


class DistilBertForTokenClassification(_DistilBertHead):
    """Per-token classifier: dropout(dropout) -> classifier.

    Labels: ``labels`` (b, s); every position whose label is not negative counts in the
    loss (as transformers; give padding -100).
    Returns ``TokenClassifierOutput(logits (b, s, num_labels), ...)``.
    """

    def init_head(self, key: Key) -> Params:
        return {"classifier": self._linear(key, self.config.num_labels)}

    def apply(
        self,
        params: Params,
        input_ids: Tensor,
        *,
        labels: Tensor | None = None,
        train: bool = False,
        key: Key | None = None,
        **options: Any,
    ) -> Any:
        enc, k_head = self._encode(params, input_ids, options, key, train)
        h = dropout.apply(enc.sequence_output, self.config.dropout, key=k_head, train=train)
        logits = linear.apply(params["classifier"], h)
        loss = None if labels is None else losses.cross_entropy(logits, labels)
        return make_output(
            outputs.TokenClassifierOutput, loss, logits, enc.hidden_states, enc.attentions
        )


class DistilBertForQuestionAnswering(_DistilBertHead):
    """Span extraction: dropout(qa_dropout) -> qa_outputs (dim -> 2): start and end logits
    (b, s). ``apply`` is :class:`~ptfunc.archs.bert.BertForQuestionAnswering`'s, over
    DistilBERT's encoder (``qa_dropout`` applied by :meth:`run_base`).

    Labels: ``start_positions`` and ``end_positions`` (b,); loss = (start + end) / 2,
    positions outside the sequence are ignored.
    """

    required_num_labels = 2

    def init_head(self, key: Key) -> Params:
        return {"qa_outputs": self._linear(key, 2)}

    def run_base(
        self, params: Params, input_ids: Tensor, *, key: Key | None, train: bool, **options: Any
    ) -> Encoded:
        """The encoder, then the head's dropout on its output (the span layers are BERT's)."""
        k_base, k_head = split_for_dropout(key, 2, train)
        enc = super().run_base(params, input_ids, key=k_base, train=train, **options)
        h = dropout.apply(enc.sequence_output, self.config.qa_dropout, key=k_head, train=train)
        return enc._replace(sequence_output=h)

    apply = BertForQuestionAnswering.apply
