"""DeBERTa-v2's task heads, named after the transformers classes.

Every head's ``apply(params, input_ids, *, <labels>, train=False, key=None, **options)``
takes the encoder options of :class:`DebertaV2Model` (``attention_mask``,
``token_type_ids``, ``position_ids``, ``output_attentions``, ``output_hidden_states``,
``remat``, ``validate``) and returns a NamedTuple; given labels it returns the ``WithLoss``
twin whose first field is the loss. The classification heads pool with transformers'
``ContextPooler`` (``pooler.dense``: dropout, dense, ``pooler_hidden_act`` on the first
token), then drop out with ``cls_dropout`` (default ``hidden_dropout_prob``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from ...layers import activations, dropout, embedding, layer_norm, linear, losses
from ...random import Key, split, split_for_dropout
from ...tree import Params
from .. import outputs
from ..task_heads import (
    MultipleChoiceHead,
    QuestionAnsweringHead,
    SequenceClassificationHead,
    TaskHead,
    TokenClassificationHead,
)
from .config import DebertaV2Config
from .model import (
    _ENCODER_OPTIONS,
    Encoded,
    HeadPruningMixin,
    encode,
    ignored_keys,
    init_embeddings,
    init_encoder,
)

__all__ = [
    "DebertaV2ForMaskedLM",
    "DebertaV2ForSequenceClassification",
    "DebertaV2ForMultipleChoice",
    "DebertaV2ForTokenClassification",
    "DebertaV2ForQuestionAnswering",
]

_WORD_EMBEDDINGS = "deberta.embeddings.word_embeddings.weight"
_CHECKPOINT_EXTRAS = tuple(
    f"mask_predictions.{layer}.{leaf}"
    for layer in ("dense", "LayerNorm", "classifier")
    for leaf in ("weight", "bias")
)  # the replaced-token-detection head of the Hub's DeBERTa-v3 files: not a param here


class _DebertaV2Head(HeadPruningMixin, TaskHead):
    """A DeBERTa-v2 encoder under ``params["deberta"]`` plus head params beside it."""

    config_class = DebertaV2Config
    base_model_prefix = "deberta"
    token_embedding_path = ("embeddings", "word_embeddings", "weight")
    base_options = frozenset(_ENCODER_OPTIONS)

    @property
    def ignored_checkpoint_keys(self) -> tuple[str, ...]:  # type: ignore[override]
        return ignored_keys(self.config)

    def init_base(self, key: Key) -> Params:
        ke, kl = split(key)
        c = self.config
        return {"embeddings": init_embeddings(ke, c), "encoder": init_encoder(kl, c)}

    def run_base(
        self, params: Params, input_ids: Tensor, *, key: Key | None, train: bool, **options: Any
    ) -> Encoded:
        return encode(self.config, params, input_ids, options, key=key, train=train)


# -- masked LM ------------------------------------------------------------------------------------

_LEGACY = ("cls", "predictions")
_LM = ("lm_predictions", "lm_head")
_LEGACY_LEAVES = {
    "transform.dense.weight": "dense.weight",
    "transform.dense.bias": "dense.bias",
    "transform.LayerNorm.weight": "LayerNorm.weight",
    "transform.LayerNorm.bias": "LayerNorm.bias",
    "bias": "bias",
}


class DebertaV2ForMaskedLM(_DebertaV2Head):
    """Masked language model head, decoder tied to the word embeddings.

    ``legacy=True`` (transformers' default): ``cls.predictions.{transform.{dense,LayerNorm},
    bias}``; ``legacy=False``: ``lm_predictions.lm_head.{dense,LayerNorm,bias}``, the names
    of the Hub's DeBERTa-v3 files. Both compute dense -> act -> LayerNorm -> tied decoder
    + bias, and each loads a checkpoint written with the other names (the Hub files'
    ``mask_predictions`` head is ignored).

    ``apply(params, input_ids, *, labels=None, ...)``: ``labels`` (b, s), negative = not
    predicted. Returns ``MaskedLMOutput(logits (b, s, V), ...)``.
    """

    output = outputs.MaskedLMOutput

    @property
    def tied(self) -> Mapping[str, str]:  # type: ignore[override]
        if not self.config.legacy:
            return {}
        return {
            "cls.predictions.decoder.weight": _WORD_EMBEDDINGS,
            "cls.predictions.decoder.bias": "cls.predictions.bias",
        }

    @property
    def vocab_biases(self) -> tuple[tuple[str, ...], ...]:  # type: ignore[override]
        return ((*(_LEGACY if self.config.legacy else _LM), "bias"),)

    @property
    def checkpoint_aliases(self) -> Mapping[str, str]:  # type: ignore[override]
        legacy, lm = ".".join(_LEGACY), ".".join(_LM)
        if self.config.legacy:
            return {f"{lm}.{new}": f"{legacy}.{old}" for old, new in _LEGACY_LEAVES.items()}
        return {f"{legacy}.{old}": f"{lm}.{new}" for old, new in _LEGACY_LEAVES.items()}

    @property
    def ignored_checkpoint_keys(self) -> tuple[str, ...]:  # type: ignore[override]
        decoder = (
            ()
            if self.config.legacy
            else ("cls.predictions.decoder.weight", "cls.predictions.decoder.bias")
        )
        return (*ignored_keys(self.config), *_CHECKPOINT_EXTRAS, *decoder)

    def init_head(self, key: Key) -> Params:
        c = self.config
        width = c.embedding_width if c.legacy else c.hidden_size
        dense = linear.init(key, c.hidden_size, width, std=c.initializer_range)
        head = {"dense": dense, "LayerNorm": layer_norm.init(width)}
        if c.legacy:
            return {"cls": {"predictions": {"transform": head, "bias": torch.zeros(c.vocab_size)}}}
        return {"lm_predictions": {"lm_head": {**head, "bias": torch.zeros(c.vocab_size)}}}

    def head(self, params: Params, h: Tensor, key: Key | None, train: bool, labels=None):
        c = self.config
        p = params["cls"]["predictions"] if c.legacy else params["lm_predictions"]["lm_head"]
        t = p["transform"] if c.legacy else p
        h = activations.get(c.hidden_act)(linear.apply(t["dense"], h))
        h = layer_norm.apply(t["LayerNorm"], h, eps=c.layer_norm_eps)
        words = params["deberta"]["embeddings"]["word_embeddings"]
        logits = embedding.attend(words, h, p["bias"])
        return None if labels is None else losses.cross_entropy(logits, labels), logits


# -- pooled classifiers ---------------------------------------------------------------------------


class _PooledHead(_DebertaV2Head):
    """``pooler.dense`` (ContextPooler) and a ``classifier`` of :meth:`num_outputs` outputs."""

    def num_outputs(self) -> int:
        return self.config.num_labels

    def init_head(self, key: Key) -> Params:
        kp, kc = split(key)
        return {
            "pooler": {"dense": self._linear(kp, self.config.hidden_size)},
            "classifier": self._linear(kc, self.num_outputs()),
        }

    def classify(self, params: Params, h: Tensor, key: Key | None, train: bool) -> Tensor:
        """(b, s, d) -> (b, outputs): pool the first token, drop out, classify."""
        c = self.config
        k_pool, k_cls = split_for_dropout(key, 2, train)
        first = dropout.apply(h[:, 0], c.pooler_dropout, key=k_pool, train=train)
        act = activations.get(c.pooler_hidden_act)
        pooled = act(linear.apply(params["pooler"]["dense"], first))
        rate = c.hidden_dropout_prob if c.cls_dropout is None else c.cls_dropout
        return linear.apply(
            params["classifier"], dropout.apply(pooled, rate, key=k_cls, train=train)
        )


class DebertaV2ForSequenceClassification(_PooledHead, SequenceClassificationHead):
    """Classifier on the pooled first token.

    ``apply(params, input_ids, *, labels=None, ...)``: ``labels`` (b,) class ids (negative
    ids are left out of the loss, as in transformers), or floats for regression when
    ``num_labels == 1``. Returns ``SequenceClassifierOutput(logits (b, num_labels), ...)``.
    """


class DebertaV2ForMultipleChoice(_PooledHead, MultipleChoiceHead):
    """Scores each choice: inputs (b, num_choices, s) -> logits (b, num_choices).

    ``attention_mask``, ``token_type_ids`` and ``position_ids`` are (b, num_choices, s) too.
    ``apply(params, input_ids, *, labels=None, ...)``: ``labels`` (b,) index of the right
    choice. Returns ``MultipleChoiceModelOutput(logits (b, num_choices), ...)``; hidden
    states and attentions are per choice, (b * num_choices, ...), as in transformers.
    """

    def num_outputs(self) -> int:
        return 1


# -- per-token heads ------------------------------------------------------------------------------


class DebertaV2ForTokenClassification(_DebertaV2Head, TokenClassificationHead):
    """Per-token classifier: dropout (``hidden_dropout_prob``) -> ``classifier``
    Linear(hidden, num_labels).

    ``apply(params, input_ids, *, labels=None, ...)``: ``labels`` (b, s); negative =
    ignored (transformers counts every other label, padded positions included). Returns
    ``TokenClassifierOutput(logits (b, s, num_labels), ...)``.
    """


class DebertaV2ForQuestionAnswering(_DebertaV2Head, QuestionAnsweringHead):
    """Span extraction: ``qa_outputs`` Linear(hidden, 2) -> start and end logits (b, s).

    ``apply(params, input_ids, *, start_positions=None, end_positions=None, ...)``: both
    (b,); loss = (start + end) / 2, positions outside the sequence ignored. Returns
    ``QuestionAnsweringModelOutput(start_logits, end_logits, ...)``. Needs ``num_labels``
    2, as transformers' split into start and end does.
    """
