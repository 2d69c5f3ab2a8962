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

from ...layers import activations, dropout, embedding, layer_norm, linear, losses
from ...layers import sequence_summary as summary
from ...random import Key, split, split_for_dropout
from ...tree import Params
from .. import inputs, outputs
from ..bert.heads import BertForQuestionAnswering, _BertHead
from ..head import HeadModel
from ..model import make_output, output_types
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
        enc, _ = self._encode(params, input_ids, options, key, train)
        p = params["discriminator_predictions"]
        h = activations.get(self.config.hidden_act)(linear.apply(p["dense"], enc.sequence_output))
        logits = linear.apply(p["dense_prediction"], h)[..., 0]
        loss = None
        if labels is not None:
            loss = _active_bce(logits, labels, options.get("attention_mask"))
        return make_output(
            ElectraForPreTrainingOutput, loss, logits, enc.hidden_states, enc.attentions
        )


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

    def init_head(self, key: Key) -> Params:
        c = self.config
        return {
            "generator_predictions": {
                "dense": self._linear(key, c.embedding_size),
                "LayerNorm": layer_norm.init(c.embedding_size),
            },
            "generator_lm_head": {"bias": torch.zeros(c.vocab_size)},
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
        enc, _ = self._encode(params, input_ids, options, key, train)
        p = params["generator_predictions"]
        h = activations.gelu(linear.apply(p["dense"], enc.sequence_output))
        h = layer_norm.apply(p["LayerNorm"], h, eps=self.config.layer_norm_eps)
        words = params["electra"]["embeddings"]["word_embeddings"]
        logits = embedding.attend(words, h, params["generator_lm_head"]["bias"])
        loss = None if labels is None else losses.cross_entropy(logits, labels)
        return make_output(outputs.MaskedLMOutput, loss, logits, enc.hidden_states, enc.attentions)


class ElectraForSequenceClassification(_ElectraHead):
    """``classifier`` on the first token: dropout -> dense -> gelu -> dropout -> out_proj.

    Labels: ``labels`` (b,) class ids, or floats for regression when ``num_labels == 1``.
    Returns ``SequenceClassifierOutput(logits (b, num_labels), ...)``.
    """

    def init_head(self, key: Key) -> Params:
        kd, ko = split(key)
        c = self.config
        return {
            "classifier": {
                "dense": self._linear(kd, c.hidden_size),
                "out_proj": self._linear(ko, c.num_labels),
            }
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
        enc, k_head = self._encode(params, input_ids, options, key, train)
        k1, k2 = split_for_dropout(k_head, 2, train)
        p = params["classifier"]
        x = dropout.apply(enc.sequence_output[:, 0], c.classifier_dropout_rate, key=k1, train=train)
        x = activations.gelu(linear.apply(p["dense"], x))
        x = dropout.apply(x, c.classifier_dropout_rate, key=k2, train=train)
        logits = linear.apply(p["out_proj"], x)
        return outputs.sequence_classification(
            logits, labels, c.num_labels, enc.hidden_states, enc.attentions
        )


class ElectraForMultipleChoice(_ElectraHead):
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
        n_choices = input_ids.shape[1] if isinstance(input_ids, Tensor) else 0
        flat_ids, flat = inputs.flatten_choices(input_ids, options)
        enc, k_head = self._encode(params, flat_ids, flat, key, train)
        pooled = summary.apply(
            params["sequence_summary"], enc.sequence_output, summary_type=c.summary_type,
            activation=c.summary_activation, last_dropout=c.summary_last_dropout, key=k_head,
            train=train,
        )  # fmt: skip
        logits = linear.apply(params["classifier"], pooled).reshape(-1, n_choices)
        loss = None if labels is None else losses.cross_entropy(logits, labels)
        return make_output(
            outputs.MultipleChoiceModelOutput, loss, logits, enc.hidden_states, enc.attentions
        )


class ElectraForTokenClassification(_ElectraHead):
    """Per-token classifier: dropout -> Linear(hidden, num_labels).

    Labels: ``labels`` (b, s); every non-negative label counts in the loss, padded or not,
    as transformers (BERT's ptfunc head follows 1.0 and skips padding).
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
        enc, k = self._encode(params, input_ids, options, key, train)
        rate = self.config.classifier_dropout_rate
        h = dropout.apply(enc.sequence_output, rate, key=k, train=train)
        logits = linear.apply(params["classifier"], h)
        loss = None if labels is None else losses.cross_entropy(logits, labels)
        return make_output(
            outputs.TokenClassifierOutput, loss, logits, enc.hidden_states, enc.attentions
        )


class ElectraForQuestionAnswering(_ElectraHead, BertForQuestionAnswering):
    """Span extraction: ``qa_outputs`` Linear(hidden, 2) -> start and end logits (b, s).

    BERT's head over the ELECTRA encoder. Labels: ``start_positions`` and
    ``end_positions`` (b,); loss = (start + end) / 2, positions outside are ignored.
    """
