"""Output NamedTuples shared by the architectures (each with a ``WithLoss`` twin).

Shapes: ``b`` batch, ``s`` sequence, ``d`` hidden size, ``V`` vocabulary.
``hidden_states`` is a tuple of ``n_layers + 1`` tensors (b, s, d) and
``attentions`` a tuple of ``n_layers`` tensors (b, heads, s, s) when requested,
empty tuples otherwise.
"""

from __future__ import annotations

from .model import output_types

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
