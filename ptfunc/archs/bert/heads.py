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
import torch.nn.functional as F
from torch import Tensor

from ...layers import activations, dropout, embedding, layer_norm, linear, losses
from ...random import Key, split
from ...tree import Params
from .. import inputs, outputs
from ..head import HeadModel
from ..model import make_output
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

_ENCODER_OPTIONS = frozenset(
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


class _BertHead(ParamTransforms, HeadModel):
    """A BERT encoder under ``params[base_model_prefix]`` (``"bert"``) plus head params beside
    it. The families built on BERT's encoder (RoBERTa, ELECTRA, ALBERT) reuse the heads with
    their own prefix and :attr:`classifier_dropout_rate`."""

    config_class = BertConfig
    base_model_prefix = "bert"
    ignored_checkpoint_keys = BertModel.ignored_checkpoint_keys
    token_embedding_path = BertModel.token_embedding_path
    vocab_biases = (("cls", "predictions", "bias"),)
    base_options = _ENCODER_OPTIONS
    has_pooler = True

    def init(self, key: Key) -> Params:
        c = self.config
        ke, kl, kp, kh = split(key, 4)
        base = {"embeddings": init_embeddings(ke, c), "encoder": init_encoder(kl, c)}
        if self.has_pooler:
            base["pooler"] = init_pooler(kp, c)
        return {self.base_model_prefix: base, **self.init_head(kh)}

    @property
    def classifier_dropout_rate(self) -> float:
        """Dropout before the classifiers (BERT: ``hidden_dropout_prob``)."""
        return self.config.hidden_dropout_prob

    def pooled(self, params: Params, enc: Encoded) -> Tensor:
        """The pooler's output (b, d) for the heads that read it."""
        return pool(params[self.base_model_prefix]["pooler"], enc.sequence_output)

    def _linear(self, key: Key, d_out: int) -> Params:
        return linear.init(key, self.config.hidden_size, d_out, std=self.config.initializer_range)

    def run_base(
        self, params: Params, input_ids: Tensor, *, key: Key | None, train: bool, **options: Any
    ) -> Encoded:
        kw = {name: options.get(name) for name in _ENCODER_OPTIONS}
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

    def init_head(self, key: Key) -> Params:
        k_lm, k_nsp = split(key)
        return {
            "cls": {
                "predictions": _lm_head_init(self.config, k_lm),
                "seq_relationship": self._linear(k_nsp, 2),
            }
        }

    def apply(
        self,
        params: Params,
        input_ids: Tensor,
        *,
        masked_lm_labels: Tensor | None = None,
        next_sentence_label: Tensor | None = None,
        labels: Tensor | None = None,
        train: bool = False,
        key: Key | None = None,
        **options: Any,
    ) -> Any:
        enc, _ = self._encode(params, input_ids, options, key, train)
        logits = _lm_logits(self.config, params, enc.sequence_output, self.base_model_prefix)
        pooled = pool(params[self.base_model_prefix]["pooler"], enc.sequence_output)
        nsp = linear.apply(params["cls"]["seq_relationship"], pooled)
        mlm_labels = _pick("masked_lm_labels", masked_lm_labels, labels)
        loss = None
        if mlm_labels is not None and next_sentence_label is not None:
            loss = losses.cross_entropy(logits, mlm_labels) + losses.cross_entropy(
                nsp, next_sentence_label
            )
        return make_output(
            outputs.PreTrainingOutput, loss, logits, nsp, enc.hidden_states, enc.attentions
        )


class BertForMaskedLM(_BertHead):
    """Masked language model head (decoder tied to the word embeddings).

    Labels: ``masked_lm_labels`` (b, s) (alias ``labels``); negative = not predicted.
    Returns ``MaskedLMOutput(logits (b, s, V), ...)``. Has no pooler, as today's
    ``transformers``; a 1.0 checkpoint's pooler weights are reported unexpected.
    """

    has_pooler = False
    tied = BertForPreTraining.tied
    ignored_checkpoint_keys = BertForPreTraining.ignored_checkpoint_keys

    def init_head(self, key: Key) -> Params:
        return {"cls": {"predictions": _lm_head_init(self.config, key)}}

    def apply(
        self,
        params: Params,
        input_ids: Tensor,
        *,
        masked_lm_labels: Tensor | None = None,
        labels: Tensor | None = None,
        train: bool = False,
        key: Key | None = None,
        **options: Any,
    ) -> Any:
        enc, _ = self._encode(params, input_ids, options, key, train)
        logits = _lm_logits(self.config, params, enc.sequence_output, self.base_model_prefix)
        mlm_labels = _pick("masked_lm_labels", masked_lm_labels, labels)
        loss = None if mlm_labels is None else losses.cross_entropy(logits, mlm_labels)
        return make_output(outputs.MaskedLMOutput, loss, logits, enc.hidden_states, enc.attentions)


class BertForNextSentencePrediction(_BertHead):
    """Next-sentence head on the pooled output.

    Labels: ``next_sentence_label`` (b,) (alias ``labels``), 0 = B follows A.
    Returns ``NextSentencePredictorOutput(logits (b, 2), ...)``.
    """

    def init_head(self, key: Key) -> Params:
        return {"cls": {"seq_relationship": self._linear(key, 2)}}

    def apply(
        self,
        params: Params,
        input_ids: Tensor,
        *,
        next_sentence_label: Tensor | None = None,
        labels: Tensor | None = None,
        train: bool = False,
        key: Key | None = None,
        **options: Any,
    ) -> Any:
        enc, _ = self._encode(params, input_ids, options, key, train)
        pooled = pool(params[self.base_model_prefix]["pooler"], enc.sequence_output)
        logits = linear.apply(params["cls"]["seq_relationship"], pooled)
        target = _pick("next_sentence_label", next_sentence_label, labels)
        loss = None if target is None else losses.cross_entropy(logits, target)
        return make_output(
            outputs.NextSentencePredictorOutput, loss, logits, enc.hidden_states, enc.attentions
        )


class BertForSequenceClassification(_BertHead):
    """Classifier on the pooled output: dropout -> Linear(hidden, num_labels).

    Labels: ``labels`` (b,) class ids, or floats for regression when ``num_labels == 1``.
    Returns ``SequenceClassifierOutput(logits (b, num_labels), ...)``.
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
        pooled = self.pooled(params, enc)
        pooled = dropout.apply(pooled, self.classifier_dropout_rate, key=k_head, train=train)
        logits = linear.apply(params["classifier"], pooled)
        return outputs.sequence_classification(
            logits, labels, self.config.num_labels, enc.hidden_states, enc.attentions
        )


class BertForMultipleChoice(_BertHead):
    """Scores each choice: inputs (b, num_choices, s) -> logits (b, num_choices).

    Every encoder option with a sequence axis is given as (b, num_choices, s) too.
    Labels: ``labels`` (b,) index of the right choice.
    """

    def init_head(self, key: Key) -> Params:
        return {"classifier": self._linear(key, 1)}

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
        b, n = input_ids.shape[:2] if isinstance(input_ids, Tensor) else (0, 0)
        flat_ids, flat = inputs.flatten_choices(input_ids, options)
        enc, k_head = self._encode(params, flat_ids, flat, key, train)
        pooled = self.pooled(params, enc)
        pooled = dropout.apply(pooled, self.config.hidden_dropout_prob, key=k_head, train=train)
        logits = linear.apply(params["classifier"], pooled).reshape(b, n)
        loss = None if labels is None else losses.cross_entropy(logits, labels)
        return make_output(
            outputs.MultipleChoiceModelOutput, loss, logits, enc.hidden_states, enc.attentions
        )


class BertForTokenClassification(_BertHead):
    """Per-token classifier: dropout -> Linear(hidden, num_labels).

    Labels: ``labels`` (b, s); with an ``attention_mask`` only kept positions
    count in the loss (as in 1.0).
    Returns ``TokenClassifierOutput(logits (b, s, num_labels), ...)``.
    """

    has_pooler = False

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
        h = dropout.apply(
            enc.sequence_output, self.classifier_dropout_rate, key=k_head, train=train
        )
        logits = linear.apply(params["classifier"], h)
        loss = None
        if labels is not None:
            mask = options.get("attention_mask")
            if mask is not None:
                labels = torch.where(mask == 1, labels, torch.full_like(labels, -100))
            loss = losses.cross_entropy(logits, labels)
        return make_output(
            outputs.TokenClassifierOutput, loss, logits, enc.hidden_states, enc.attentions
        )


def _span_loss(logits: Tensor, positions: Tensor) -> Tensor:
    """Cross-entropy of (b, s) logits; positions outside [0, s) are clamped to s and ignored."""
    s = logits.shape[1]
    positions = positions.reshape(-1).clamp(0, s)
    return F.cross_entropy(losses.upcast(logits), positions, ignore_index=s)


class BertForQuestionAnswering(_BertHead):
    """Span extraction: Linear(hidden, 2) -> start and end logits (b, s).

    Labels: ``start_positions`` and ``end_positions`` (b,); loss = (start + end) / 2,
    positions outside the sequence are ignored.
    """

    has_pooler = False

    def __init__(self, config: BertConfig) -> None:
        super().__init__(config)
        if config.num_labels != 2:
            raise ValueError(
                f"{type(self).__name__} needs num_labels == 2 (start and end logits), "
                f"got {config.num_labels}"
            )

    def init_head(self, key: Key) -> Params:
        return {"qa_outputs": self._linear(key, 2)}

    def apply(
        self,
        params: Params,
        input_ids: Tensor,
        *,
        start_positions: Tensor | None = None,
        end_positions: Tensor | None = None,
        train: bool = False,
        key: Key | None = None,
        **options: Any,
    ) -> Any:
        enc, _ = self._encode(params, input_ids, options, key, train)
        logits = linear.apply(params["qa_outputs"], enc.sequence_output)
        start, end = logits[..., 0], logits[..., 1]
        loss = None
        if start_positions is not None and end_positions is not None:
            loss = (_span_loss(start, start_positions) + _span_loss(end, end_positions)) / 2
        return make_output(
            outputs.QuestionAnsweringModelOutput,
            loss,
            start,
            end,
            enc.hidden_states,
            enc.attentions,
        )
