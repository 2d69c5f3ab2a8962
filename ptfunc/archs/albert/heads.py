"""ALBERT's task heads, named after the transformers classes.

Every head's ``apply(params, input_ids, *, <labels>, train=False, key=None, **options)``
takes the encoder options of :class:`AlbertModel` and returns a NamedTuple; given labels it
returns the ``WithLoss`` twin whose first field is the loss. Negative labels (-100) are
ignored by the token-level cross-entropy losses.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ...layers import activations, dropout, embedding, layer_norm, linear, losses
from ...random import Key, split
from ...tree import Params
from .. import outputs
from ..bert.heads import (
    BertForMultipleChoice,
    BertForQuestionAnswering,
    BertForSequenceClassification,
    BertForTokenClassification,
    _BertHead,
)
from ..head import HeadModel
from ..model import output_types
from .config import AlbertConfig
from .model import ALBERT_OPTIONS, AlbertModel, Encoded, encode, init_base, pool

__all__ = [
    "AlbertForPreTraining",
    "AlbertForMaskedLM",
    "AlbertForSequenceClassification",
    "AlbertForMultipleChoice",
    "AlbertForTokenClassification",
    "AlbertForQuestionAnswering",
    "AlbertForPreTrainingOutput",
]

AlbertForPreTrainingOutput = output_types(
    "AlbertForPreTrainingOutput",
    "prediction_logits sop_logits hidden_states attentions",
    "prediction_logits (b, s, V); sop_logits (b, 2): sentence-order prediction.",
)
_WORD_EMBEDDINGS = "albert.embeddings.word_embeddings.weight"


class _AlbertHead(_BertHead):
    """An ALBERT encoder under ``params["albert"]`` plus head params beside it."""

    config_class = AlbertConfig
    base_model_prefix = "albert"
    ignored_checkpoint_keys = AlbertModel.ignored_checkpoint_keys
    vocab_biases = ()
    base_options = ALBERT_OPTIONS
    has_pooler = True

    def init(self, key: Key) -> Params:
        return HeadModel.init(self, key)

    def init_base(self, key: Key) -> Params:
        return init_base(key, self.config, pooler=self.has_pooler)

    def run_base(
        self, params: Params, input_ids: Tensor, *, key: Key | None, train: bool, **options: Any
    ) -> Encoded:
        return encode(self.config, params, input_ids, key=key, train=train, **options)

    def prune_heads(self, params: Params, heads_to_prune: Any) -> Any:
        """Refused: each group's attention weights serve several layers, so a head cannot
        be removed from one layer alone (BERT's ``prune_heads`` would not fit this tree)."""
        raise NotImplementedError(
            f"{type(self).__name__}.prune_heads: ALBERT shares each layer group's weights "
            "across its layers, so heads cannot be pruned per layer"
        )

    def unprune_heads(self, params: Params) -> tuple[Any, Params]:
        """ALBERT models are never pruned (its config refuses ``pruned_heads``)."""
        return self, params

    @property
    def classifier_dropout_rate(self) -> float:
        """``classifier_dropout_prob``."""
        return self.config.classifier_dropout_prob

    def pooled(self, params: Params, h: Tensor) -> Tensor:
        return pool(params["albert"]["pooler"], h)

    def _classify(self, params: Params, features: Tensor, key: Key | None, train: bool) -> Tensor:
        """dropout(classifier_dropout_prob) -> ``classifier``."""
        h = dropout.apply(features, self.config.classifier_dropout_prob, key=key, train=train)
        return linear.apply(params["classifier"], h)


class _MaskedLMHead(_AlbertHead):
    """``predictions``: dense (hidden -> embedding_size), act, LayerNorm, then the decoder
    tied to the word embeddings, with ``predictions.bias`` (the decoder's bias is tied to it)."""

    tied = {
        "predictions.decoder.weight": _WORD_EMBEDDINGS,
        "predictions.decoder.bias": "predictions.bias",
    }
    vocab_biases = (("predictions", "bias"),)

    def _init_predictions(self, key: Key) -> Params:
        c = self.config
        return {
            "dense": self._linear(key, c.embedding_size),
            "LayerNorm": layer_norm.init(c.embedding_size),
            "bias": torch.zeros(c.vocab_size),
        }

    def _lm_logits(self, params: Params, h: Tensor) -> Tensor:
        """(b, s, hidden) -> (b, s, V)."""
        c, p = self.config, params["predictions"]
        t = activations.get(c.hidden_act)(linear.apply(p["dense"], h))
        t = layer_norm.apply(p["LayerNorm"], t, eps=c.layer_norm_eps)
        return embedding.attend(params["albert"]["embeddings"]["word_embeddings"], t, p["bias"])


class AlbertForPreTraining(_MaskedLMHead):
    """Masked LM and sentence-order heads; loss = MLM + SOP when both labels are given.

    Labels: ``labels`` (b, s) for the masked LM, ``sentence_order_label`` (b,), 0 = in order.
    Returns ``AlbertForPreTrainingOutput(prediction_logits (b, s, V), sop_logits (b, 2), ...)``.
    """

    output = AlbertForPreTrainingOutput
    label_names = ("labels", "sentence_order_label")

    def init_head(self, key: Key) -> Params:
        k_lm, k_sop = split(key)
        return {
            "predictions": self._init_predictions(k_lm),
            "sop_classifier": {"classifier": self._linear(k_sop, self.config.num_labels)},
        }

    def head(self, params, h, key, train, labels=None, sentence_order_label=None):  # noqa: ANN001
        logits = self._lm_logits(params, h)
        sop = self._classify(params["sop_classifier"], self.pooled(params, h), key, train)
        loss = None
        if labels is not None and sentence_order_label is not None:
            sop_loss = losses.cross_entropy(sop.reshape(-1, 2), sentence_order_label)
            loss = losses.cross_entropy(logits, labels) + sop_loss
        return loss, logits, sop


class AlbertForMaskedLM(_MaskedLMHead):
    """Masked language model head; no pooler, as transformers.

    Labels: ``labels`` (b, s); negative = not predicted.
    Returns ``MaskedLMOutput(logits (b, s, V), ...)``.
    """

    has_pooler = False
    output = outputs.MaskedLMOutput

    def init_head(self, key: Key) -> Params:
        return {"predictions": self._init_predictions(key)}

    def head(self, params: Params, h: Tensor, key: Key | None, train: bool, labels=None):
        logits = self._lm_logits(params, h)
        return None if labels is None else losses.cross_entropy(logits, labels), logits


class AlbertForSequenceClassification(_AlbertHead, BertForSequenceClassification):
    """BERT's sequence classifier over ALBERT: pooled output -> dropout
    (``classifier_dropout_prob``) -> ``classifier``.

    Labels: ``labels`` (b,) class ids, or floats for regression when ``num_labels == 1``.
    Returns ``SequenceClassifierOutput(logits (b, num_labels), ...)``.
    """


class AlbertForMultipleChoice(_AlbertHead, BertForMultipleChoice):
    """Scores each choice: pooled output -> dropout (``classifier_dropout_prob``) ->
    ``classifier`` Linear(hidden, 1); inputs (b, num_choices, s) -> logits (b, num_choices).

    Per-token options are given as (b, num_choices, s) too.
    Labels: ``labels`` (b,) index of the right choice.
    """

    @property
    def choice_dropout_rate(self) -> float:
        """``classifier_dropout_prob``."""
        return self.config.classifier_dropout_prob


class AlbertForTokenClassification(_AlbertHead, BertForTokenClassification):
    """Per-token dropout(classifier_dropout_prob) -> ``classifier``; no pooler.

    Labels: ``labels`` (b, s); every non-negative label counts, padded or not, as
    transformers. Returns ``TokenClassifierOutput(logits (b, s, num_labels), ...)``.
    """

    has_pooler = False
    mask_padding_labels = False


class AlbertForQuestionAnswering(_AlbertHead, BertForQuestionAnswering):
    """Span extraction: ``qa_outputs`` Linear(hidden, 2) -> start and end logits (b, s).

    BERT's head over the ALBERT encoder (no pooler). Labels: ``start_positions`` and
    ``end_positions`` (b,); loss = (start + end) / 2, positions outside are ignored.
    """

    has_pooler = False
