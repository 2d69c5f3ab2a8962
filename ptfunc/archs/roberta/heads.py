"""RoBERTa's task heads, named after the transformers classes.

Token classification, question answering and multiple choice are BERT's heads
(:mod:`ptfunc.archs.bert.heads`) over RoBERTa's encoder; the masked LM
(``lm_head``) and sequence classification (``classifier.dense/out_proj``) heads
are RoBERTa's own. Every head takes the encoder options of :class:`RobertaModel` and
returns the NamedTuples of :mod:`ptfunc.archs.outputs` (the ``WithLoss`` twin given
labels).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ...layers import activations, embedding, layer_norm, linear, losses
from ...random import Key
from ...tree import Params
from .. import outputs
from ..bert import heads as bert_heads
from ..task_heads import FirstTokenClassificationHead
from .config import RobertaConfig
from .model import RobertaModel, prepare, zero_padding_rows

__all__ = [
    "RobertaForMaskedLM",
    "RobertaForSequenceClassification",
    "RobertaForMultipleChoice",
    "RobertaForTokenClassification",
    "RobertaForQuestionAnswering",
]

_WORD_EMBEDDINGS = "roberta.embeddings.word_embeddings.weight"


class _RobertaHead(bert_heads._BertHead):
    """A RoBERTa encoder under ``params["roberta"]``, with padding-aware positions."""

    config_class = RobertaConfig
    base_model_prefix = "roberta"
    ignored_checkpoint_keys = RobertaModel.ignored_checkpoint_keys
    vocab_biases = ()
    has_pooler = False

    def init(self, key: Key) -> Params:
        params = super().init(key)
        return {**params, "roberta": zero_padding_rows(params["roberta"], self.config)}

    def run_base(
        self, params: Params, input_ids: Tensor, *, key: Key | None, train: bool, **options: Any
    ) -> Any:
        params, options = prepare(self.config, params, input_ids, options)
        return super().run_base(params, input_ids, key=key, train=train, **options)

    @property
    def classifier_dropout_rate(self) -> float:
        """``classifier_dropout``, or ``hidden_dropout_prob`` when it is None."""
        c = self.config
        return c.hidden_dropout_prob if c.classifier_dropout is None else c.classifier_dropout


class RobertaForMaskedLM(_RobertaHead):
    """Masked language model: ``lm_head`` (dense, gelu, layer_norm, decoder tied to the word
    embeddings, plus ``bias``).

    Labels: ``labels`` (b, s); negative = not predicted.
    Returns ``MaskedLMOutput(logits (b, s, V), ...)``.
    """

    tied = {"lm_head.decoder.weight": _WORD_EMBEDDINGS}
    ignored_checkpoint_keys = (*_RobertaHead.ignored_checkpoint_keys, "lm_head.decoder.bias")
    vocab_biases = (("lm_head", "bias"),)
    output = outputs.MaskedLMOutput

    def init_head(self, key: Key) -> Params:
        c = self.config
        return {
            "lm_head": {
                "dense": linear.init(key, c.hidden_size, c.hidden_size, std=c.initializer_range),
                "layer_norm": layer_norm.init(c.hidden_size),
                "bias": torch.zeros(c.vocab_size),
            }
        }

    def head(self, params: Params, h: Tensor, key: Key | None, train: bool, labels=None):
        p = params["lm_head"]
        h = activations.get("gelu")(linear.apply(p["dense"], h))
        h = layer_norm.apply(p["layer_norm"], h, eps=self.config.layer_norm_eps)
        logits = embedding.attend(params["roberta"]["embeddings"]["word_embeddings"], h, p["bias"])
        return None if labels is None else losses.cross_entropy(logits, labels), logits


class RobertaForSequenceClassification(_RobertaHead, FirstTokenClassificationHead):
    """``classifier``: dropout, dense, tanh, dropout, out_proj on the first token (``<s>``).

    Labels: ``labels`` (b,) class ids, or floats for regression when ``num_labels == 1``.
    Returns ``SequenceClassifierOutput(logits (b, num_labels), ...)``.
    """


class RobertaForTokenClassification(_RobertaHead, bert_heads.BertForTokenClassification):
    """BERT's per-token classifier (dropout, ``classifier``) over RoBERTa.

    As :class:`~ptfunc.archs.bert.BertForTokenClassification`, the loss counts only the
    positions where ``attention_mask == 1`` (transformers counts every position whose
    label is not -100: the same when padding carries -100); the dropout rate is
    ``classifier_dropout`` (``hidden_dropout_prob`` when None), as transformers.
    """


class RobertaForQuestionAnswering(_RobertaHead, bert_heads.BertForQuestionAnswering):
    """BERT's span head (``qa_outputs``: start and end logits (b, s)) over RoBERTa."""


class RobertaForMultipleChoice(_RobertaHead, bert_heads.BertForMultipleChoice):
    """BERT's multiple-choice head (pooler, dropout, ``classifier``) over RoBERTa:
    inputs (b, num_choices, s) -> logits (b, num_choices)."""

    has_pooler = True
