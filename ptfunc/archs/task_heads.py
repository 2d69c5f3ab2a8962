"""The task heads every encoder family shares: one ``apply`` and four common tails.

A :class:`TaskHead` runs in four steps: :meth:`~TaskHead.prepare` the inputs (multiple
choice flattens its choices), take the labels named in ``label_names`` out of the options,
run the base model (:meth:`HeadModel._encode`), and compute ``(loss or None, *values)``
with :meth:`~TaskHead.head` from the last hidden state. The result is the head's output
NamedTuple with the base model's hidden states and attentions (the ``WithLoss`` twin when
there is a loss).

The four tails below are the same in BERT, RoBERTa, ALBERT, ELECTRA, DistilBERT and
DeBERTa-v2 up to the layers before the classifier and a dropout rate, which each family
supplies through a hook:

- :class:`SequenceClassificationHead`: :meth:`~SequenceClassificationHead.classify`
  gives logits (b, num_labels); cross-entropy, or MSE when ``num_labels == 1``.
- :class:`FirstTokenClassificationHead`: the RoBERTa/ELECTRA classifier (dense,
  activation, out_proj on the first token).
- :class:`MultipleChoiceHead`: inputs (b, num_choices, s) are flattened to
  (b * num_choices, s), ``classify`` scores each choice, logits (b, num_choices).
- :class:`TokenClassificationHead`: dropout (:attr:`classifier_dropout_rate`) and
  ``classifier`` on every token; with ``mask_padding_labels`` (BERT, as 1.0) padded
  positions are left out of the loss, otherwise every non-negative label counts
  (transformers).
- :class:`QuestionAnsweringHead`: ``qa_outputs`` Linear(hidden, 2) to start and end
  logits (b, s), loss the mean of the two span cross-entropies.
- :class:`TiedLMHead`: logits through the tied token embeddings plus a bias (XLNet, XLM).
- :class:`SquadBeamHead`: XLNet's and XLM's beam-search SQuAD head.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor

from ..layers import activations, dropout, embedding, linear, losses, question_answering
from ..random import Key, split, split_for_dropout
from ..tree import Params
from . import inputs, outputs
from .head import HeadModel
from .model import make_output
from .resize import get_at

__all__ = [
    "TaskHead",
    "TiedLMHead",
    "SequenceClassificationHead",
    "FirstTokenClassificationHead",
    "MultipleChoiceHead",
    "TokenClassificationHead",
    "QuestionAnsweringHead",
    "SquadBeamHead",
]


class TaskHead(HeadModel):
    """A head whose ``apply`` is prepare -> encode -> :meth:`head` -> ``output``.

    Attributes:
        output: the NamedTuple type of the result (``make_output`` picks its ``WithLoss``
            twin when the loss is not None).
        label_names: the keyword arguments of ``apply`` that go to :meth:`head` rather than
            to the base model.
    """

    output: ClassVar[Any] = None
    label_names: ClassVar[tuple[str, ...]] = ("labels",)

    @property
    def hidden_width(self) -> int:
        """The width d of the base model's last hidden state (``hidden_size``)."""
        return self.config.hidden_size

    @property
    def classifier_dropout_rate(self) -> float:
        """Dropout before the classifiers (default ``hidden_dropout_prob``)."""
        return self.config.hidden_dropout_prob

    def _linear(self, key: Key, d_out: int) -> Params:
        """A Linear(hidden_width, d_out) with the config's initializer range."""
        return linear.init(key, self.hidden_width, d_out, std=self.config.initializer_range)

    def prepare(self, input_ids: Tensor, options: dict[str, Any]) -> tuple[Tensor, dict]:
        """The inputs as the base model takes them, and the options (labels included)."""
        return input_ids, options

    def head(self, params: Params, h: Tensor, key: Key | None, train: bool, **labels: Any):
        """``(loss or None, *values)`` from the last hidden state h (b, s, d)."""
        raise NotImplementedError

    def apply(
        self,
        params: Params,
        input_ids: Tensor,
        *,
        train: bool = False,
        key: Key | None = None,
        **options: Any,
    ) -> Any:
        """Run the base model and the head; ``options`` are the labels and base options.

        The base model returns a tuple whose first item is its last hidden state (b, s, d).
        """
        input_ids, options = self.prepare(input_ids, dict(options))
        given = {name: options.pop(name) for name in self.label_names if name in options}
        enc, k_head = self._encode(params, input_ids, options, key, train)
        loss, *values = self.head(params, enc[0], k_head, train, **given)
        return self.finish(loss, values, tuple(enc[1:]))

    def finish(self, loss: Tensor | None, values: list[Any], rest: tuple[Any, ...]) -> Any:
        """The output from the head's loss and values and the base model's other outputs
        ``rest`` (everything after its last hidden state: cache or mems where the model has
        them, hidden states, attentions)."""
        return make_output(self.output, loss, *values, *rest)


class TiedLMHead(TaskHead):
    """Language-model logits straight from the last hidden state: h (b, s, d) times the
    token embeddings (``token_embedding_path`` under the base model, tied) plus the
    vocabulary bias at ``vocab_biases[0]``: (b, s, V). ``labels`` (b, s), not shifted;
    negative labels are ignored (XLNet, XLM)."""

    def head(self, params: Params, h: Tensor, key: Key | None, train: bool, labels=None):
        table = get_at(params[self.base_model_prefix], tuple(self.token_embedding_path[:-1]))
        logits = embedding.attend(table, h, get_at(params, tuple(self.vocab_biases[0])))
        return None if labels is None else losses.cross_entropy(logits, labels), logits


class SequenceClassificationHead(TaskHead):
    """``labels`` (b,) class ids, or floats for regression when ``num_labels == 1``.
    Returns ``SequenceClassifierOutput(logits (b, num_labels), ...)``."""

    output = outputs.SequenceClassifierOutput

    def classify(self, params: Params, h: Tensor, key: Key | None, train: bool) -> Tensor:
        """(b, s, d) -> logits (b, num_labels)."""
        raise NotImplementedError

    def head(self, params: Params, h: Tensor, key: Key | None, train: bool, labels=None):
        logits = self.classify(params, h, key, train)
        n = self.config.num_labels
        return None if labels is None else losses.sequence_classification(logits, labels, n), logits


class FirstTokenClassificationHead(SequenceClassificationHead):
    """``classifier`` on the first token: dropout -> ``dense`` (d, d) ->
    ``classifier_activation`` -> dropout -> ``out_proj`` (d, num_labels); both dropouts at
    ``classifier_dropout_rate`` (RoBERTa: tanh, ELECTRA: gelu)."""

    classifier_activation: ClassVar[str] = "tanh"

    def init_head(self, key: Key) -> Params:
        kd, ko = split(key)
        return {
            "classifier": {
                "dense": self._linear(kd, self.hidden_width),
                "out_proj": self._linear(ko, self.config.num_labels),
            }
        }

    def classify(self, params: Params, h: Tensor, key: Key | None, train: bool) -> Tensor:
        k1, k2 = split_for_dropout(key, 2, train)
        rate, p = self.classifier_dropout_rate, params["classifier"]
        x = dropout.apply(h[:, 0], rate, key=k1, train=train)
        x = activations.get(self.classifier_activation)(linear.apply(p["dense"], x))
        return linear.apply(p["out_proj"], dropout.apply(x, rate, key=k2, train=train))


class MultipleChoiceHead(TaskHead):
    """Scores each choice: inputs (b, num_choices, s) -> logits (b, num_choices).

    Every per-token option (``choice_options``) is given as (b, num_choices, s) too;
    ``labels`` (b,) is the index of the right choice. Hidden states and attentions are per
    choice, (b * num_choices, ...), as in transformers.
    """

    output = outputs.MultipleChoiceModelOutput
    label_names = ("labels", "num_choices")
    choice_options: ClassVar[tuple[str, ...] | None] = None
    """The options with a choice axis (None: ``inputs.flatten_choices``' default)."""

    def init_head(self, key: Key) -> Params:
        return {"classifier": self._linear(key, 1)}

    def classify(self, params: Params, h: Tensor, key: Key | None, train: bool) -> Tensor:
        """(b * num_choices, s, d) -> one score per choice (b * num_choices, 1)."""
        raise NotImplementedError

    def prepare(self, input_ids: Tensor, options: dict[str, Any]) -> tuple[Tensor, dict]:
        if "num_choices" in options:  # it would be overwritten: refuse rather than ignore
            raise TypeError(
                f"{type(self).__name__}.apply: num_choices is not an option; it is read "
                "from input_ids (batch, num_choices, seq)"
            )
        per_token = () if self.choice_options is None else (self.choice_options,)
        flat_ids, flat = inputs.flatten_choices(input_ids, options, *per_token)
        flat["num_choices"] = input_ids.shape[1]
        return flat_ids, flat

    def head(self, params, h, key, train, labels=None, num_choices=1):  # noqa: ANN001
        logits = self.classify(params, h, key, train).reshape(-1, num_choices)
        return None if labels is None else losses.cross_entropy(logits, labels), logits


class TokenClassificationHead(TaskHead):
    """Per-token dropout (``classifier_dropout_rate``) -> ``classifier`` Linear(d, num_labels).

    ``labels`` (b, s); negative labels are ignored. With ``mask_padding_labels`` (BERT,
    as 1.0) and an ``attention_mask``, only the kept positions count; otherwise every
    non-negative label counts, padded or not (transformers).
    Returns ``TokenClassifierOutput(logits (b, s, num_labels), ...)``.
    """

    output = outputs.TokenClassifierOutput
    mask_padding_labels: ClassVar[bool] = False

    def init_head(self, key: Key) -> Params:
        return {"classifier": self._linear(key, self.config.num_labels)}

    def prepare(self, input_ids: Tensor, options: dict[str, Any]) -> tuple[Tensor, dict]:
        labels, mask = options.get("labels"), options.get("attention_mask")
        if self.mask_padding_labels and labels is not None and mask is not None:
            options["labels"] = torch.where(mask == 1, labels, torch.full_like(labels, -100))
        return input_ids, options

    def head(self, params: Params, h: Tensor, key: Key | None, train: bool, labels=None):
        h = dropout.apply(h, self.classifier_dropout_rate, key=key, train=train)
        logits = linear.apply(params["classifier"], h)
        return None if labels is None else losses.cross_entropy(logits, labels), logits


class QuestionAnsweringHead(TaskHead):
    """Span extraction: dropout (``span_dropout_rate``, 0 unless a family sets it) ->
    ``qa_outputs`` Linear(d, 2) -> start and end logits (b, s).

    ``start_positions`` and ``end_positions`` (b,); loss = (start + end) / 2, positions
    outside the sequence are ignored. Needs ``num_labels == 2`` (start and end).
    Returns ``QuestionAnsweringModelOutput(start_logits, end_logits, ...)``.
    """

    output = outputs.QuestionAnsweringModelOutput
    label_names = ("start_positions", "end_positions")

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        if config.num_labels != 2:
            raise ValueError(
                f"{type(self).__name__} needs num_labels == 2 (start and end logits), "
                f"got {config.num_labels}"
            )

    @property
    def span_dropout_rate(self) -> float:
        """Dropout on the hidden states before ``qa_outputs`` (BERT: none)."""
        return 0.0

    def init_head(self, key: Key) -> Params:
        return {"qa_outputs": self._linear(key, 2)}

    def head(self, params, h, key, train, start_positions=None, end_positions=None):  # noqa: ANN001
        h = dropout.apply(h, self.span_dropout_rate, key=key, train=train)
        start, end = linear.apply(params["qa_outputs"], h).unbind(-1)
        loss = None
        if start_positions is not None and end_positions is not None:
            loss = losses.span_loss(start, start_positions) + losses.span_loss(end, end_positions)
            loss = loss / 2
        return loss, start, end


class SquadBeamHead(TaskHead):
    """XLNet's and XLM's SQuAD head (:mod:`ptfunc.layers.question_answering`): start and
    end logits, the top ``start_n_top`` x ``end_n_top`` beam and the answerability logit.

    ``start_positions``, ``end_positions`` (b,) give the loss (with ``cls_index`` and
    ``is_impossible`` (b,), the answerability loss too); ``p_mask`` (b, s), 1 = not an
    answer token, applies in both modes. The output family holds the loss and no beam
    when trained, the beam and no loss otherwise.
    """

    label_names = ("start_positions", "end_positions", "cls_index", "is_impossible", "p_mask")

    def qa_params(self, params: Params) -> Params:
        """The head's params (``start_logits``, ``end_logits``, ``answer_class``)."""
        raise NotImplementedError

    def head(self, params, h, key, train, **labels):  # noqa: ANN001
        c = self.config
        out = question_answering.apply(
            self.qa_params(params), h, start_n_top=c.start_n_top, end_n_top=c.end_n_top,
            eps=c.layer_norm_eps, **labels,
        )  # fmt: skip
        if isinstance(out, question_answering.BeamOutput):
            return (None, *out)
        return (out, *(None,) * len(question_answering.BeamOutput._fields))

    def finish(self, loss: Tensor | None, values: list[Any], rest: tuple[Any, ...]) -> Any:
        return self.output.make(loss, *values, *rest)
