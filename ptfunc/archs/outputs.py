"""Output NamedTuples shared by the architectures (each with a ``WithLoss`` twin).

Shapes: ``b`` batch, ``s`` sequence, ``d`` hidden size, ``V`` vocabulary.
``hidden_states`` is a tuple of ``n_layers + 1`` tensors (b, s, d) and
``attentions`` a tuple of ``n_layers`` tensors (b, heads, s, s) when requested,
empty tuples otherwise.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from ..layers import losses
from .model import make_output, output_types

BaseModelOutputWithPooling = output_types(
    "BaseModelOutputWithPooling",
    "last_hidden_state pooler_output hidden_states attentions",
    "last_hidden_state (b, s, d); pooler_output (b, d).",
)
PreTrainingOutput = output_types(
    "PreTrainingOutput",
    "prediction_logits seq_relationship_logits hidden_states attentions",
    "prediction_logits (b, s, V); seq_relationship_logits (b, 2).",
)
MaskedLMOutput = output_types(
    "MaskedLMOutput", "logits hidden_states attentions", "logits (b, s, V)."
)
NextSentencePredictorOutput = output_types(
    "NextSentencePredictorOutput", "logits hidden_states attentions", "logits (b, 2)."
)
SequenceClassifierOutput = output_types(
    "SequenceClassifierOutput", "logits hidden_states attentions", "logits (b, num_labels)."
)
MultipleChoiceModelOutput = output_types(
    "MultipleChoiceModelOutput", "logits hidden_states attentions", "logits (b, num_choices)."
)
TokenClassifierOutput = output_types(
    "TokenClassifierOutput", "logits hidden_states attentions", "logits (b, s, num_labels)."
)
QuestionAnsweringModelOutput = output_types(
    "QuestionAnsweringModelOutput",
    "start_logits end_logits hidden_states attentions",
    "start_logits (b, s); end_logits (b, s).",
)


def sequence_classification(
    logits: Tensor,
    labels: Tensor | None,
    num_labels: int,
    hidden_states: tuple[Tensor, ...],
    attentions: tuple[Tensor, ...],
) -> Any:
    """A sequence-classification head's output: logits (b, num_labels), with the loss of
    :func:`ptfunc.layers.losses.sequence_classification` (regression when ``num_labels ==
    1``) first when ``labels`` (b,) are given."""
    loss = None if labels is None else losses.sequence_classification(logits, labels, num_labels)
    return make_output(SequenceClassifierOutput, loss, logits, hidden_states, attentions)
