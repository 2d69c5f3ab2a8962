"""ELECTRA's task heads, named after the transformers classes.

Every head's ``apply(params, input_ids, *, <labels>, train=False, key=None, **options)``
takes the encoder options of :class:`ElectraModel` and returns a NamedTuple; given labels
it returns the ``WithLoss`` twin whose first field is the loss. Labels of -100 (any
negative label) are ignored by the token-level cross-entropy losses.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ...layers import activations, embedding, layer_norm, linear, losses
from ...layers import sequence_summary as summary
from ...random import Key, split
from ...tree import Params
from .. import outputs
from ..bert.heads import BertForQuestionAnswering, _BertHead
from ..head import HeadModel
from ..model import output_types
from ..task_heads import (
    FirstTokenClassificationHead,
    MultipleChoiceHead,
    TokenClassificationHead,
)
from .config import ElectraConfig
from .model import ENCODER_OPTIONS, ElectraModel, Encoded, encode, init_base

__all__ = [
    "ElectraForPreTraining",
    "ElectraForMaskedLM",
    "ElectraForSequenceClassification",
    "ElectraForMultipleChoice",
    "ElectraForTokenClassification",
    "ElectraForQuestionAnswering",
    "ElectraForPreTrainingOutput",
]

ElectraForPreTrainingOutput = output_types(
    "ElectraForPreTrainingOutput",
    "logits hidden_states attentions",
    "logits (b, s): the discriminator's score that each token was replaced.",
)


class _ElectraHead(_BertHead):
    """An ELECTRA encoder under ``params["electra"]`` plus head params beside it."""

    config_class = ElectraConfig
    base_model_prefix = "electra"
    ignored_checkpoint_keys = ElectraModel.ignored_checkpoint_keys
    vocab_biases = ()
    base_options = ENCODER_OPTIONS

    def init(self, key: Key) -> Params:
        return HeadModel.init(self, key)

    def init_base(self, key: Key) -> Params:
        return init_base(key, self.config)

    def run_base(
        self, params: Params, input_ids: Tensor, *, key: Key | None, train: bool, **options: Any
    ) -> Encoded:
        return encode(self.config, params, input_ids, key=key, train=train, **options)

    @property
    def classifier_dropout_rate(self) -> float:
        """``classifier_dropout``, or ``hidden_dropout_prob`` when it is None."""
        return self.config.classifier_dropout_rate


class ElectraForPreTraining(_ElectraHead):
    """The discriminator: dense -> act -> dense_prediction, one logit per token.

    Labels: ``labels`` (b, s), 1 = replaced token. The loss is the binary cross-entropy
    (with logits) averaged over the tokens whose ``attention_mask`` is 1 (all tokens
    without a mask), as transformers.
    Returns ``ElectraForPreTrainingOutput(logits (b, s), ...)``.
    """

    def init_head(self, key: Key) -> Params:
        kd, kp = split(key)
        return {
            "discriminator_predictions": {
                "dense": self._linear(kd, self.config.hidden_size),
                "dense_prediction": self._linear(kp, 1),
            }
        }

    output = ElectraForPreTrainingOutput
    label_names = ("labels", "_loss_mask")

    def prepare(self, input_ids: Tensor, options: dict[str, Any]) -> tuple[Tensor, dict]:
        if options.get("labels") is not None:  # the loss averages over the kept tokens
            options["_loss_mask"] = options.get("attention_mask")
        return input_ids, options

    def head(self, params, h, key, train, labels=None, _loss_mask=None):  # noqa: ANN001
        p = params["discriminator_predictions"]
        h = activations.get(self.config.hidden_act)(linear.apply(p["dense"], h))
        logits = linear.apply(p["dense_prediction"], h)[..., 0]
        return None if labels is None else _active_bce(logits, labels, _loss_mask), logits


def _active_bce(logits: Tensor, labels: Tensor, mask: Tensor | None) -> Tensor:
    """Mean BCE-with-logits over the positions where ``mask == 1`` (all when None).

    A weighted mean rather than boolean indexing, so shapes stay static (vmap, compile).
    """
    logits = losses.upcast(logits)
    per_token = F.binary_cross_entropy_with_logits(
        logits, labels.to(logits.dtype), reduction="none"
    )
    if mask is None:
        return per_token.mean()
    weight = (mask == 1).to(per_token.dtype)
    return (per_token * weight).sum() / weight.sum()


class ElectraForMaskedLM(_ElectraHead):
    """The generator: ``generator_predictions`` (dense to embedding_size, gelu, LayerNorm) and
    ``generator_lm_head``, whose weight is the word embeddings (tied) and whose bias is its own.

    Labels: ``labels`` (b, s); negative = not predicted.
    Returns ``MaskedLMOutput(logits (b, s, V), ...)``.
    """

    tied = {"generator_lm_head.weight": "electra.embeddings.word_embeddings.weight"}
    vocab_biases = (("generator_lm_head", "bias"),)
    output = outputs.MaskedLMOutput

    def init_head(self, key: Key) -> Params:
        c = self.config
        return {
            "generator_predictions": {
                "dense": self._linear(key, c.embedding_size),
                "LayerNorm": layer_norm.init(c.embedding_size),
            },
            "generator_lm_head": {"bias": torch.zeros(c.vocab_size)},
        }

    def head(self, params: Params, h: Tensor, key: Key | None, train: bool, labels=None):
        p = params["generator_predictions"]
        h = activations.gelu(linear.apply(p["dense"], h))
        h = layer_norm.apply(p["LayerNorm"], h, eps=self.config.layer_norm_eps)
        words = params["electra"]["embeddings"]["word_embeddings"]
        logits = embedding.attend(words, h, params["generator_lm_head"]["bias"])
        return None if labels is None else losses.cross_entropy(logits, labels), logits


class ElectraForSequenceClassification(_ElectraHead, FirstTokenClassificationHead):
    """``classifier`` on the first token: dropout -> dense -> gelu -> dropout -> out_proj.

    Labels: ``labels`` (b,) class ids, or floats for regression when ``num_labels == 1``.
    Returns ``SequenceClassifierOutput(logits (b, num_labels), ...)``.
    """

    classifier_activation = "gelu"


class ElectraForMultipleChoice(_ElectraHead, MultipleChoiceHead):
    """Scores each choice: ``sequence_summary`` (first token, dense, gelu, dropout) then
    ``classifier`` Linear(hidden, 1); inputs (b, num_choices, s) -> logits (b, num_choices).

    Per-token options are given as (b, num_choices, s) too.
    Labels: ``labels`` (b,) index of the right choice.
    """

    def init_head(self, key: Key) -> Params:
        ks, kc = split(key)
        c = self.config
        std = c.initializer_range
        proj = summary.init(
            ks, c.hidden_size, c.num_labels, use_proj=c.summary_use_proj, proj_to_labels=False,
            std=std,
        )  # fmt: skip
        return {"sequence_summary": proj, "classifier": self._linear(kc, 1)}

    def classify(self, params: Params, h: Tensor, key: Key | None, train: bool) -> Tensor:
        c = self.config
        pooled = summary.apply(
            params["sequence_summary"], h, summary_type=c.summary_type,
            activation=c.summary_activation, last_dropout=c.summary_last_dropout, key=key,
            train=train,
        )  # fmt: skip
        return linear.apply(params["classifier"], pooled)


class ElectraForTokenClassification(_ElectraHead, TokenClassificationHead):
    """Per-token classifier: dropout -> Linear(hidden, num_labels).

    Labels: ``labels`` (b, s); every non-negative label counts in the loss, padded or not,
    as transformers (BERT's ptfunc head follows 1.0 and skips padding).
    Returns ``TokenClassifierOutput(logits (b, s, num_labels), ...)``.
    """


class ElectraForQuestionAnswering(_ElectraHead, BertForQuestionAnswering):
    """Span extraction: ``qa_outputs`` Linear(hidden, 2) -> start and end logits (b, s).

    BERT's head over the ELECTRA encoder. Labels: ``start_positions`` and
    ``end_positions`` (b,); loss = (start + end) / 2, positions outside are ignored.
    """
