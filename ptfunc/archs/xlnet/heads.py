"""XLNet's task heads, named after the pytorch-transformers classes.

Every head's ``apply(params, input_ids, *, <labels>, train=False, key=None,
**options)`` takes the options of :class:`~ptfunc.archs.xlnet.XLNetModel`
(``mems``, ``perm_mask``, ``target_mapping``, ``token_type_ids``, ``input_mask``,
``attention_mask``, ``head_mask``, ``use_mems``, ``output_attentions``,
``output_hidden_states``) and returns a NamedTuple whose ``mems``,
``hidden_states`` and ``attentions`` are the base model's; given labels, the
loss (a scalar, at least float32) comes first, as in the seed. Logits are in the
params' dtype; beam indices are int64.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ...layers import linear, question_answering, sequence_summary
from ...random import Key, split
from ...tree import Params
from ..model import output_types
from ..output_tuple import output_family
from ..task_heads import SequenceClassificationHead, SquadBeamHead, TaskHead, TiedLMHead
from .config import XLNetConfig
from .model import Encoded, XLNetModel, init_transformer, transformer

__all__ = [
    "XLNetLMHeadModel",
    "XLNetForSequenceClassification",
    "XLNetForQuestionAnswering",
    "XLNetLMHeadModelOutput",
    "XLNetForSequenceClassificationOutput",
    "XLNetForQuestionAnsweringOutput",
    "XLNetForQuestionAnsweringLossOutput",
]

_REST = "mems hidden_states attentions"
_BEAM = ",".join(question_answering.BeamOutput._fields)  # one optional group
_REST_DOC = " mems, hidden_states, attentions: as XLNetModel's."

XLNetLMHeadModelOutput = output_types(
    "XLNetLMHeadModelOutput",
    "logits " + _REST,
    "logits (b, s, V), or (b, num_predict, V) with target_mapping;" + _REST_DOC,
)
XLNetForSequenceClassificationOutput = output_types(
    "XLNetForSequenceClassificationOutput", "logits " + _REST, "logits (b, num_labels);" + _REST_DOC
)
XLNetForQuestionAnsweringOutput = output_family(
    "XLNetForQuestionAnsweringOutput",
    "loss? "
    + ",".join(question_answering.BeamOutput._fields)
    + "? mems hidden_states? attentions?",
    "Inference outputs: the SQuAD beam (see ptfunc.layers.question_answering.BeamOutput: "
    "start_top_* (b, start_n_top), end_top_* (b, start_n_top * end_n_top), cls_logits (b,)); "
    "training outputs (start and end positions given, type "
    "XLNetForQuestionAnsweringLossOutput): loss (scalar float32) instead of the beam, as the "
    "seed's (total_loss, mems, ...);" + _REST_DOC,
    loss_name="XLNetForQuestionAnsweringLossOutput",
)
XLNetForQuestionAnsweringLossOutput = XLNetForQuestionAnsweringOutput  # one family, two names
"""The same output family under its with-loss name (start and end positions given)."""

_BASE_OPTIONS = frozenset(
    {
        "mems",
        "perm_mask",
        "target_mapping",
        "token_type_ids",
        "input_mask",
        "attention_mask",
        "head_mask",
        "use_mems",
        "output_attentions",
        "output_hidden_states",
        "remat",
        "validate",
    }
)


class _XLNetHead(TaskHead):
    """An XLNet transformer under ``params["transformer"]`` plus head params beside it."""

    config_class = XLNetConfig
    base_model_prefix = "transformer"
    token_embedding_path = XLNetModel.token_embedding_path
    base_options = _BASE_OPTIONS

    def init_base(self, key: Key) -> Params:
        return init_transformer(key, self.config)

    def run_base(
        self, params: Params, input_ids: Tensor, *, key: Key | None, train: bool, **options: Any
    ) -> Encoded:
        return transformer(self.config, params, input_ids, key=key, train=train, **options)


class XLNetLMHeadModel(_XLNetHead, TiedLMHead):
    """XLNet with the language-model head ``lm_loss``: the word embedding (one leaf,
    tied) plus its own bias (vocab,).

    Labels: ``labels`` (b, s), or (b, num_predict) with ``target_mapping``; not
    shifted; negative labels (1.0's -1, today's -100) are ignored.
    Returns ``XLNetLMHeadModelOutput(logits, mems, hidden_states, attentions)``.
    """

    tied = {"lm_loss.weight": "transformer.word_embedding.weight"}
    vocab_biases = (("lm_loss", "bias"),)
    output = XLNetLMHeadModelOutput

    def init_head(self, key: Key) -> Params:
        return {"lm_loss": {"bias": torch.zeros(self.config.vocab_size)}}

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

        As XLNet generates in both references: a dummy token is appended, hidden
        from every position by ``perm_mask``, and the query stream predicts it.

        Memories are reused only where that is exact: a causal model
        (``attn_type="uni"``, no ``same_length``, ``bi_data`` or ``reuse_len``) on an
        unpadded batch. Then each step feeds only the tokens added since the last
        call, with the memories of all earlier ones (the dummy's state is dropped),
        and with ``mem_len`` None the logits equal a full recomputation. A
        bidirectional model (the pretrained XLNet checkpoints) recomputes the whole
        sequence every step, as 1.0's generation script did: its earlier tokens'
        states change when a token is added, so memories cannot reproduce it.
        (Today's ``transformers`` reuses memories there anyway, with an offset of
        2, which changes the text; ``use_mems=False`` makes it recompute.)
        Left-padded prompts (``attention_mask`` (b, L), 0 = padding) give the same
        logits as unpadded ones: positions are relative and padding is masked.

        The cache is ``(mems, number of tokens they cover)`` or None.
        """
        c = self.config
        b, length = ids.shape
        padded = attention_mask is not None and not bool(attention_mask.all())
        exact = c.attn_type == "uni" and not (c.same_length or c.bi_data or c.reuse_len)
        reuse = use_cache and exact and not padded
        mems, new = None, ids
        if reuse:
            attention_mask = None  # nothing is masked, and the mask would span the memories
            if cache is not None:
                mems, seen = cache
                new = ids[:, seen:]
        n = new.shape[1]
        last = torch.arange(n + 1, device=ids.device) == n
        mask = None
        if attention_mask is not None:
            mask = torch.cat([attention_mask, attention_mask.new_ones(b, 1)], dim=1)
        out = self.apply(
            params,
            torch.cat([new, new.new_zeros(b, 1)], dim=1),
            perm_mask=last.to(torch.float32).expand(b, n + 1, n + 1),
            target_mapping=last.to(torch.float32).expand(b, 1, n + 1),
            attention_mask=mask,
            mems=mems,
            use_mems=reuse,
        )
        if not reuse:
            return out.logits[:, 0], None
        return out.logits[:, 0], (tuple(m[:-1] for m in out.mems), length)


class XLNetForSequenceClassification(_XLNetHead, SequenceClassificationHead):
    """``SequenceSummary`` (``summary_type``, projection to d_model, ``summary_activation``,
    ``summary_last_dropout``) then ``logits_proj`` Linear(d_model, num_labels).

    Labels: ``labels`` (b,) class ids, or floats for regression when ``num_labels == 1``.
    Returns ``XLNetForSequenceClassificationOutput(logits (b, num_labels), mems, ...)``.
    """

    output = XLNetForSequenceClassificationOutput

    def init_head(self, key: Key) -> Params:
        c = self.config
        ks, kp = split(key)
        return {
            "sequence_summary": sequence_summary.init(
                ks,
                c.d_model,
                c.num_labels,
                use_proj=c.summary_use_proj,
                proj_to_labels=False,
                std=c.initializer_range,
            ),
            "logits_proj": linear.init(kp, c.d_model, c.num_labels, std=c.initializer_range),
        }

    def classify(self, params: Params, h: Tensor, key: Key | None, train: bool) -> Tensor:
        c = self.config
        summary = sequence_summary.apply(
            params["sequence_summary"], h, summary_type=c.summary_type,
            activation=c.summary_activation, last_dropout=c.summary_last_dropout, key=key,
            train=train,
        )  # fmt: skip
        return linear.apply(params["logits_proj"], summary)


class XLNetForQuestionAnswering(_XLNetHead, SquadBeamHead):
    """The SQuAD head of :mod:`ptfunc.layers.question_answering` (``start_logits``,
    ``end_logits``, ``answer_class`` beside ``transformer``).

    Labels: ``start_positions``, ``end_positions`` (b,); optional ``cls_index`` and
    ``is_impossible`` (b,) add the answerability loss. ``p_mask`` (b, s), 1 = not
    an answer token, applies in both modes.

    Returns, with both positions, ``XLNetForQuestionAnsweringLossOutput(loss, mems,
    hidden_states, attentions)``; otherwise ``XLNetForQuestionAnsweringOutput``
    with the top ``start_n_top`` starts, ``end_n_top`` ends per start and
    ``cls_logits`` (softmax probabilities named log_probs, as in the seed).
    """

    output = XLNetForQuestionAnsweringOutput

    def init_head(self, key: Key) -> Params:
        return question_answering.init(key, self.config.d_model, std=self.config.initializer_range)

    def qa_params(self, params: Params) -> Params:
        return params
