"""The language-model + multiple-choice heads shared by OpenAI GPT and GPT-2.

Inputs are (b, n_choices, s); the transformer runs on the flattened
(b * n_choices, s) rows, the LM head reads the tied token embedding, and a
``SequenceSummary`` scores each choice at ``mc_token_ids``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from ..layers import embedding, losses, sequence_summary
from ..random import Key, split_for_dropout
from ..tree import Params
from .output_tuple import output_family

__all__ = ["DoubleHeadsOutput", "DoubleHeadsOutputWithLoss", "init_head", "apply"]

_PER_TOKEN = ("attention_mask", "token_type_ids", "position_ids")


DoubleHeadsOutput = output_family(
    "DoubleHeadsOutput",
    "loss? mc_loss? logits mc_logits presents? hidden_states? attentions?",
    "loss: LM loss (scalar float32), when lm_labels/labels are given; mc_loss: the "
    "multiple-choice loss, when mc_labels are given (1.0's (lm_loss, mc_loss, ...) order; "
    "the seed's recipe is loss = lm_coef * out.loss + out.mc_loss); logits (b, n_choices, s, "
    "V); mc_logits (b, n_choices); presents (GPT-2 only): per layer (2, b * n_choices, heads, "
    "s, head_dim); hidden_states: n_layer + 1 tensors (b, n_choices, s, d); attentions: per "
    "layer (b * n_choices, heads, s, s) (OpenAI GPT) or (b, n_choices, heads, s, s) (GPT-2), "
    "as pytorch-transformers 1.0 shaped them.",
    loss_name="DoubleHeadsOutputWithLoss",
    loss_fields=("loss", "mc_loss"),
    aliases={"lm_loss": "loss"},
)
DoubleHeadsOutputWithLoss = DoubleHeadsOutput  # one family, two names
"""The same output family under its with-labels name (``lm_labels`` or ``mc_labels`` given)."""


def init_head(key: Key, c: Any) -> Params:
    """The ``multiple_choice_head`` params from the config's ``summary_*`` fields."""
    return sequence_summary.init(
        key,
        c.n_embd,
        c.num_labels,
        use_proj=c.summary_use_proj,
        proj_to_labels=c.summary_proj_to_labels,
        std=c.initializer_range,
    )


def lm_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """Next-token cross-entropy: logits (..., s, V) at t against labels (..., s) at t + 1.

    Negative labels are ignored. The labels are shifted (the last position gets an ignored
    label) rather than the logits sliced: slicing (..., s - 1, V) would copy the logits in
    the forward and zero-fill and copy their gradient in the backward.
    """
    ignored = torch.full_like(labels[..., :1], -100)
    return losses.cross_entropy(logits, torch.cat([labels[..., 1:], ignored], dim=-1))


def apply(
    c: Any,
    params: Params,
    input_ids: Tensor,
    *,
    run: Callable[..., tuple[Tensor, tuple, tuple, tuple]],
    embed: str,
    mc_token_ids: Tensor | None,
    lm_labels: Tensor | None,
    labels: Tensor | None,
    mc_labels: Tensor | None,
    train: bool,
    key: Key | None,
    options: dict[str, Any],
    choice_attentions: bool = False,
) -> Any:
    """Run both heads. ``run(params, ids (b*n, s), train=, key=, **options)`` returns
    ``(hidden (b*n, s, d), presents, hidden_states, attentions)``; ``embed`` names the
    token-embedding leaf under ``params["transformer"]``; ``choice_attentions`` shapes the
    attentions (b, n_choices, heads, s, s), as 1.0's GPT-2 did."""
    if not isinstance(input_ids, Tensor) or input_ids.dim() != 3:
        got = tuple(input_ids.shape) if isinstance(input_ids, Tensor) else type(input_ids)
        raise ValueError(f"input_ids must have shape (batch, num_choices, seq), got {got}")
    if lm_labels is not None and labels is not None:
        raise ValueError("pass either lm_labels (pytorch-transformers 1.0) or labels, not both")
    lm_labels = lm_labels if lm_labels is not None else labels
    b, n, s = input_ids.shape
    flat = {
        k: v.reshape(b * n, -1) if k in _PER_TOKEN and v is not None else v
        for k, v in options.items()
    }
    k_enc, k_head = split_for_dropout(key, 2, train)
    h, presents, hidden, att = run(
        params["transformer"], input_ids.reshape(b * n, s), train=train, key=k_enc, **flat
    )
    h = h.reshape(b, n, s, -1)
    logits = embedding.attend(params["transformer"][embed], h)
    mc_logits = sequence_summary.apply(
        params["multiple_choice_head"],
        h,
        summary_type=c.summary_type,
        cls_index=mc_token_ids,
        activation=c.summary_activation,
        first_dropout=c.summary_first_dropout,
        key=k_head,
        train=train,
    ).squeeze(-1)
    # pytorch-transformers 1.0's shapes: hidden states per choice; GPT-2's attentions too
    hidden = tuple(t.reshape(b, n, s, -1) for t in hidden)
    if choice_attentions:
        att = tuple(t.reshape(b, n, *t.shape[1:]) for t in att)
    lm = None if lm_labels is None else lm_loss(logits, lm_labels)
    mc = None if mc_labels is None else losses.cross_entropy(mc_logits, mc_labels)
    return DoubleHeadsOutput.make(lm, mc, logits, mc_logits, presents, hidden, att)
