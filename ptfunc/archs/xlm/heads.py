"""XLM's task heads, named after the pytorch-transformers classes.

Every head's ``apply(params, input_ids, *, <labels>, train=False, key=None,
**options)`` takes the options of :class:`~ptfunc.archs.xlm.XLMModel` and
returns a NamedTuple whose ``cache``, ``hidden_states`` and ``attentions`` are
the base model's; given labels, the loss (a scalar, at least float32) comes
first, as in the seed.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ...layers import question_answering, sequence_summary
from ...random import Key
from ...tree import Params
from ..model import output_types
from ..output_tuple import output_family
from ..task_heads import SequenceClassificationHead, SquadBeamHead, TaskHead, TiedLMHead
from .config import XLMConfig
from .model import BASE_OPTIONS, Encoded, XLMModel, check_config, init_transformer, transformer
from .prune import ParamTransforms

__all__ = [
    "XLMWithLMHeadModel",
    "XLMForSequenceClassification",
    "XLMForQuestionAnswering",
    "XLMWithLMHeadModelOutput",
    "XLMForSequenceClassificationOutput",
    "XLMForQuestionAnsweringOutput",
    "XLMForQuestionAnsweringLossOutput",
]

_REST = "cache? hidden_states attentions"
_BEAM = ",".join(question_answering.BeamOutput._fields)  # one optional group
_REST_DOC = " cache, hidden_states, attentions: as XLMModel's."

XLMWithLMHeadModelOutput = output_types(
    "XLMWithLMHeadModelOutput", "logits " + _REST, "logits (b, s, vocab_size);" + _REST_DOC
)
XLMForSequenceClassificationOutput = output_types(
    "XLMForSequenceClassificationOutput", "logits " + _REST, "logits (b, num_labels);" + _REST_DOC
)
XLMForQuestionAnsweringOutput = output_family(
    "XLMForQuestionAnsweringOutput",
    "loss? "
    + ",".join(question_answering.BeamOutput._fields)
    + "? cache? hidden_states? attentions?",
    "Inference outputs: the SQuAD beam (see ptfunc.layers.question_answering.BeamOutput); "
    "training outputs (start and end positions given, type XLMForQuestionAnsweringLossOutput): "
    "loss (scalar float32) instead of the beam;" + _REST_DOC,
    loss_name="XLMForQuestionAnsweringLossOutput",
)
XLMForQuestionAnsweringLossOutput = XLMForQuestionAnsweringOutput  # one family, two names
"""The same output family under its with-loss name (start and end positions given)."""


class _XLMHead(ParamTransforms, TaskHead):
    """An XLM transformer under ``params["transformer"]`` plus head params beside it."""

    config_class = XLMConfig
    base_model_prefix = "transformer"
    token_embedding_path = XLMModel.token_embedding_path
    ignored_checkpoint_keys = XLMModel.ignored_checkpoint_keys
    base_options = BASE_OPTIONS

    def __init__(self, config: XLMConfig) -> None:
        super().__init__(config)
        check_config(config)

    def init_base(self, key: Key) -> Params:
        return init_transformer(key, self.config)

    def run_base(
        self, params: Params, input_ids: Tensor, *, key: Key | None, train: bool, **options: Any
    ) -> Encoded:
        return transformer(self.config, params, input_ids, key=key, train=train, **options)


class XLMWithLMHeadModel(_XLMHead, TiedLMHead):
    """XLM with the prediction layer ``pred_layer.proj``: the word embeddings (one
    leaf, tied) plus its own bias (vocab_size,).

    Labels: ``labels`` (b, s), not shifted; negative labels (today's -100) are
    ignored. Logits are (b, s, V) as in today's ``transformers`` (1.0 flattened them
    to (b * s, V)). ``asm=True`` (adaptive softmax) is refused.
    Returns ``XLMWithLMHeadModelOutput(logits, cache, hidden_states, attentions)``.
    """

    tied = {"pred_layer.proj.weight": "transformer.embeddings.weight"}
    vocab_biases = (("pred_layer", "proj", "bias"),)
    output = XLMWithLMHeadModelOutput

    def __init__(self, config: XLMConfig) -> None:
        super().__init__(config)
        if config.asm:
            raise NotImplementedError(
                "XLMWithLMHeadModel: asm=True (adaptive softmax prediction layer) is not "
                "implemented in ptfunc; use a checkpoint with asm=False"
            )

    def init_head(self, key: Key) -> Params:
        return {"pred_layer": {"proj": {"bias": torch.zeros(self.config.vocab_size)}}}

    def decode_step(
        self,
        params: Params,
        ids: Tensor,
        *,
        cache: Any = None,
        attention_mask: Tensor | None = None,
        use_cache: bool = True,
    ) -> tuple[Tensor, Any]:
        """``ptfunc.generate``'s step: next-token logits (b, V) after ids (b, L).

        A causal model with ``use_cache`` feeds only the tokens added since the last
        call, with the cache (``(key/value tensors, tokens covered)``); otherwise the
        whole sequence is recomputed. ``attention_mask`` (b, L) marks kept tokens
        (the seed's padding semantics: states of masked tokens are zeroed).
        """
        reuse = use_cache and self.config.causal
        if reuse and cache is not None:
            kv, seen = cache
            out = self.apply(params, ids[:, seen:], cache=kv, attention_mask=attention_mask)
        else:
            out = self.apply(params, ids, attention_mask=attention_mask, use_cache=reuse)
        new = (out.cache, ids.shape[1]) if reuse else None
        return out.logits[:, -1], new


class XLMForSequenceClassification(_XLMHead, SequenceClassificationHead):
    """``SequenceSummary`` (``summary_type`` "first" by default, projection straight to
    num_labels, ``summary_first_dropout``) under ``sequence_summary``.

    Labels: ``labels`` (b,) class ids, or floats for regression when ``num_labels == 1``.
    Returns ``XLMForSequenceClassificationOutput(logits (b, num_labels), cache, ...)``.
    """

    output = XLMForSequenceClassificationOutput

    def init_head(self, key: Key) -> Params:
        c = self.config
        return {
            "sequence_summary": sequence_summary.init(
                key,
                c.emb_dim,
                c.num_labels,
                use_proj=c.summary_use_proj,
                proj_to_labels=c.summary_proj_to_labels,
                std=c.init_std,
            )
        }

    def classify(self, params: Params, h: Tensor, key: Key | None, train: bool) -> Tensor:
        c = self.config
        return sequence_summary.apply(
            params["sequence_summary"], h, summary_type=c.summary_type,
            activation=c.summary_activation, first_dropout=c.summary_first_dropout, key=key,
            train=train,
        )  # fmt: skip


class XLMForQuestionAnswering(_XLMHead, SquadBeamHead):
    """The SQuAD head of :mod:`ptfunc.layers.question_answering` under ``qa_outputs``.

    Labels: ``start_positions``, ``end_positions`` (b,); optional ``cls_index`` and
    ``is_impossible`` (b,) add the answerability loss. ``p_mask`` (b, s), 1 = not
    an answer token, applies in both modes.

    Returns, with both positions, ``XLMForQuestionAnsweringLossOutput(loss, cache,
    hidden_states, attentions)``; otherwise ``XLMForQuestionAnsweringOutput`` with
    the top ``start_n_top`` starts, ``end_n_top`` ends per start and ``cls_logits``.
    """

    output = XLMForQuestionAnsweringOutput

    def init_head(self, key: Key) -> Params:
        return {
            "qa_outputs": question_answering.init(
                key, self.config.emb_dim, std=self.config.init_std
            )
        }

    def qa_params(self, params: Params) -> Params:
        return params["qa_outputs"]
