"""The model classes of the Llama-style decoders: bare, causal LM, sequence classification.

Each architecture (:mod:`ptfunc.archs.llama`, ``mistral``, ``qwen2``, ``qwen3``) subclasses
these three with its config class and ``transformers``' class names; everything else is here.

Params: the bare model's tree (:mod:`.model`) under ``model``, plus ``lm_head.weight``
(V, d) unless ``tie_word_embeddings`` (then the head reads ``model.embed_tokens.weight``:
one leaf, written under both names in checkpoints), or ``score.weight`` (num_labels, d).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import torch
from torch import Tensor

from ...layers import embedding, linear, losses
from ...random import Key, split
from ...tree import Params
from ..double_heads import lm_loss
from ..model import Model, make_output, output_types
from .config import DecoderConfig
from .model import LLAMA, DecoderStack, StackSpec, decoder, init_decoder

__all__ = [
    "DecoderModel",
    "DecoderForCausalLM",
    "DecoderForSequenceClassification",
    "BaseModelOutputWithPast",
    "CausalLMOutputWithPast",
    "SequenceClassifierOutputWithPast",
    "last_token_index",
    "family",
]

BaseModelOutputWithPast = output_types(
    "BaseModelOutputWithPast",
    "last_hidden_state presents hidden_states attentions",
    "last_hidden_state (b, s, d); presents: per layer (2, b, kv_heads, past + s, head_dim).",
)
CausalLMOutputWithPast = output_types(
    "CausalLMOutputWithPast",
    "logits presents hidden_states attentions",
    "logits (b, s, V); presents as the base model's.",
)
SequenceClassifierOutputWithPast = output_types(
    "SequenceClassifierOutputWithPast",
    "logits presents hidden_states attentions",
    "logits (b, num_labels), read at each row's last token that is not padding.",
)


class _Decoder(Model):
    """What the three classes share: the config type, the names, the stack.

    An architecture with other names or blocks (GPT-NeoX) sets ``stack`` (its
    :class:`~.model.StackSpec`), ``init_stack`` and the names below.
    """

    config_class = DecoderConfig
    base_model_prefix = "model"
    token_embedding_path = ("embed_tokens", "weight")
    ignored_checkpoint_keys = ("rotary_emb.inv_freq",)
    stack: ClassVar[StackSpec] = LLAMA
    init_stack: ClassVar[Callable[[Key, Any], Params]] = staticmethod(init_decoder)
    lm_head_name: ClassVar[str] = "lm_head"

    def _run(self, params: Params, input_ids: Tensor | None, **options: Any) -> DecoderStack:
        return decoder(self.config, params, input_ids, spec=self.stack, **options)


class DecoderModel(_Decoder):
    """The bare decoder: ``apply(params, input_ids, *, inputs_embeds=None, past=None,
    cache_position=None, attention_mask=None, position_ids=None, output_attentions=None,
    output_hidden_states=None, train=False, key=None, remat=False, validate=True)`` ->
    ``BaseModelOutputWithPast(last_hidden_state, presents, hidden_states, attentions)``
    (see :func:`ptfunc.archs.decoder.model.decoder`)."""

    is_base_model = True

    def init(self, key: Key) -> Params:
        return self.init_stack(key, self.config)

    def apply(
        self,
        params: Params,
        input_ids: Tensor | None = None,
        *,
        train: bool = False,
        key: Key | None = None,
        **options: Any,
    ) -> Any:
        enc = self._run(params, input_ids, train=train, key=key, **options)
        return make_output(BaseModelOutputWithPast, None, *enc)


class DecoderForCausalLM(_Decoder):
    """The decoder with its language-model head.

    ``labels`` (b, s): token t's logits are scored against ``labels[:, t + 1]`` (shifted
    inside, as ``transformers``); negative labels are ignored. Returns
    ``CausalLMOutputWithPast(logits (b, s, V), presents, hidden_states, attentions)``, the
    loss first when labels are given. ``logits_to_keep=n`` computes only the last n
    positions' logits (0: all), as ``transformers``' argument of that name.
    """

    supports_static_cache = True  # apply(..., past=buffers, cache_position=...)

    @property
    def tied(self) -> Mapping[str, str]:  # type: ignore[override]
        if self.config.tie_word_embeddings:
            embed = ".".join((self.base_model_prefix, *self.token_embedding_path))
            return {f"{self.lm_head_name}.weight": embed}
        return {}

    def init(self, key: Key) -> Params:
        km, kh = split(key)
        c = self.config
        params = {self.base_model_prefix: self.init_stack(km, c)}
        if not c.tie_word_embeddings:
            params[self.lm_head_name] = linear.init(
                kh, c.hidden_size, c.vocab_size, bias=False, std=c.initializer_range
            )
        return params

    def apply(
        self,
        params: Params,
        input_ids: Tensor | None = None,
        *,
        labels: Tensor | None = None,
        logits_to_keep: int = 0,
        train: bool = False,
        key: Key | None = None,
        **options: Any,
    ) -> Any:
        base = params[self.base_model_prefix]
        enc = self._run(base, input_ids, train=train, key=key, **options)
        h = enc.last_hidden_state
        if logits_to_keep:
            if labels is not None:
                raise ValueError("labels need every position's logits: leave logits_to_keep=0")
            h = h[:, -logits_to_keep:]
        if self.config.tie_word_embeddings:
            logits = embedding.attend(base[self.token_embedding_path[0]], h)
        else:
            logits = linear.apply(params[self.lm_head_name], h)
        loss = None if labels is None else lm_loss(logits, labels)
        return make_output(CausalLMOutputWithPast, loss, logits, *enc[1:])


def last_token_index(input_ids: Tensor | None, pad_token_id: int | None, batch: int) -> Tensor:
    """(b,) index of each row's rightmost token that is not ``pad_token_id`` (left or right
    padding alike), or the last position of every row when there is no pad id.

    Raises:
        ValueError: no ``pad_token_id`` and a batch of more than one row (which token to read
            would be a guess), as ``transformers``.
    """
    if pad_token_id is None or input_ids is None:
        if pad_token_id is None and batch != 1:
            raise ValueError(
                "sequence classification of a batch of more than one row needs "
                "config.pad_token_id, to find each row's last token"
            )
        return torch.full((batch,), -1, dtype=torch.long)
    positions = torch.arange(input_ids.shape[-1], device=input_ids.device)
    return (positions * (input_ids != pad_token_id)).argmax(-1)


class DecoderForSequenceClassification(_Decoder):
    """A linear ``score`` (d -> num_labels, no bias) read at each row's last non-padding
    token (:func:`last_token_index`). ``labels`` (b,): regression (MSE) when
    ``num_labels == 1``, cross-entropy otherwise."""

    def init(self, key: Key) -> Params:
        km, ks = split(key)
        c = self.config
        score = linear.init(ks, c.hidden_size, c.num_labels, bias=False, std=c.initializer_range)
        return {self.base_model_prefix: self.init_stack(km, c), "score": score}

    def apply(
        self,
        params: Params,
        input_ids: Tensor | None = None,
        *,
        labels: Tensor | None = None,
        train: bool = False,
        key: Key | None = None,
        **options: Any,
    ) -> Any:
        enc = self._run(params[self.base_model_prefix], input_ids, train=train, key=key, **options)
        logits = linear.apply(params["score"], enc.last_hidden_state)
        b = logits.shape[0]
        index = last_token_index(input_ids, self.config.pad_token_id, b).to(logits.device)
        pooled = logits[torch.arange(b, device=logits.device), index]
        loss = None
        if labels is not None:
            loss = losses.sequence_classification(pooled, labels, self.config.num_labels)
        return make_output(SequenceClassifierOutputWithPast, loss, pooled, *enc[1:])


def family(prefix: str, config_class: type, module: str) -> tuple[type, type, type]:
    """An architecture's three classes on the shared decoder, named as in ``transformers``:
    ``{prefix}Model``, ``{prefix}ForCausalLM``, ``{prefix}ForSequenceClassification``, taking
    ``config_class`` and defined in ``module`` (for pickling and their repr).

    Example:
        >>> from ptfunc.archs.llama import LlamaConfig
        >>> [c.__name__ for c in family("Llama", LlamaConfig, __name__)]
        ['LlamaModel', 'LlamaForCausalLM', 'LlamaForSequenceClassification']
    """
    made = []
    for base in (DecoderModel, DecoderForCausalLM, DecoderForSequenceClassification):
        name = prefix + base.__name__.removeprefix("Decoder")
        attrs = {"config_class": config_class, "__doc__": base.__doc__, "__module__": module}
        made.append(type(name, (base,), {**attrs, "__qualname__": name}))
    return made[0], made[1], made[2]
