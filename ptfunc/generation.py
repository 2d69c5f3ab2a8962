"""Text generation for causal language models: greedy, temperature, top-k, top-p,
repetition penalty, EOS stopping, left-padded batches and cache reuse.

``generate(model, params, input_ids, max_new_tokens=...)`` works with any ptfunc
language model. Each step asks the model for the next-token logits through its
``decode_step`` method when it has one (the protocol below), else through the
default step: GPT-2, which returns ``presents``, is fed only the new token with
its cache; OpenAI GPT recomputes the whole context. Sampling is a pure function
of ``key``: the same key gives the same text (``fold_in(key, step)`` per step,
Gumbel-max draws).

The decoding protocol, for models whose cache is not GPT-2's ``past``
(Transformer-XL memories, XLNet's permutation-mask trick)::

    logits, cache = model.decode_step(
        params, ids, cache=cache, attention_mask=mask, use_cache=use_cache
    )

``ids`` (b, L) is the whole sequence so far, ``mask`` (b, L) its attention mask,
``cache`` what the previous call returned (None on the first call). It returns
the next-token logits (b, V) and the new cache; with ``use_cache=False`` it must
recompute from ``ids`` alone.

``compile=True`` (models with a static KV cache: GPT-2) runs the prompt once eagerly, copies
its keys and values into a cache of the final length, and decodes every further token with
one ``torch.compile``'d step whose shapes never change (no recompilation, no Python per
layer). ``compile="reduce-overhead"`` (any ``torch.compile`` mode) also captures CUDA graphs.
Tokens equal the eager path's up to float rounding (greedy picks agree unless two logits tie
to rounding).

Arguments are checked before any model call, each with a ``ValueError`` naming it and its
allowed range: ``temperature`` finite and ``>= 0`` (0 means greedy: the limit of sampling
as the temperature goes to 0, so no key is needed), ``top_k`` an int ``>= 0`` (0: off),
``top_p`` in ``(0, 1]`` (1: off), ``repetition_penalty`` finite and ``> 0``,
``max_new_tokens`` an int ``>= 0`` or ``max_length`` (prompt plus new tokens) ``>=`` the
prompt length, ``num_return_sequences`` an int ``>= 1`` (more than 1 needs sampling:
greedy copies would be identical), ``input_ids`` (b, s) integer ids with ``s >= 1`` and an
``attention_mask`` of the same shape.
"""

from __future__ import annotations

import math
import os
from typing import Any

import torch
from torch import Tensor

from . import random, tree
from .random import Key

__all__ = ["generate", "filter_logits", "LANGUAGE_MODELS", "load_language_model", "context_length"]

# model type -> (language-model class, config field holding the context length or None)
LANGUAGE_MODELS: dict[str, tuple[str, str | None]] = {
    "gpt2": ("GPT2LMHeadModel", "n_positions"),
    "openai-gpt": ("OpenAIGPTLMHeadModel", "n_positions"),
    "transfo-xl": ("TransfoXLLMHeadModel", None),
    "xlnet": ("XLNetLMHeadModel", None),
    "xlm": ("XLMWithLMHeadModel", "max_position_embeddings"),
    "llama": ("LlamaForCausalLM", None),
    "mistral": ("MistralForCausalLM", None),
    "qwen2": ("Qwen2ForCausalLM", None),
    "qwen3": ("Qwen3ForCausalLM", None),
    "gpt_neox": ("GPTNeoXForCausalLM", None),
}
"""``model_type -> (language-model class name, config field of the context length or None)``:
the models ``generate`` and ``ptfunc generate`` load from a directory or a name."""


def load_language_model(
    name_or_path: str | os.PathLike[str], **kwargs: Any
) -> tuple[str, Any, Any]:
    """``(model type, model, params)`` of the language model in a directory, or of a 1.0
    shortcut name or Hub repo id (``kwargs``: those of :func:`ptfunc.io.from_pretrained`).

    Raises:
        FileNotFoundError: no config.json (or no weights) there.
        ValueError: the directory holds a model that is not a language model.
    """
    from .auto import model_class_for
    from .io import from_pretrained

    try:
        cls = model_class_for(_config_of(name_or_path, kwargs), "causal-lm")
    except ValueError as error:
        raise ValueError(f"{name_or_path}: generate needs a language model ({error})") from None
    model, params = from_pretrained(name_or_path, cls, **kwargs)
    return model.config.model_type, model, params


def _config_of(name_or_path: str | os.PathLike[str], kwargs: dict[str, Any]) -> dict[str, Any]:
    from . import hub
    from .auto import _config_dict

    return _config_dict(name_or_path, hub.HubOptions.pop_from(dict(kwargs)))


def context_length(model: Any) -> int | None:
    """The most tokens ``model`` (a language model) takes, or None when memories make it
    unbounded (Transformer-XL, XLNet)."""
    field = LANGUAGE_MODELS[model.config.model_type][1]
    return None if field is None else int(getattr(model.config, field))


def filter_logits(logits: Tensor, *, top_k: int = 0, top_p: float = 1.0) -> Tensor:
    """Set to -inf the logits outside the top ``k`` and outside the nucleus of mass ``p``.

    logits (b, V) -> (b, V). The nucleus keeps the smallest set of most likely tokens
    whose probability reaches ``top_p`` (always at least one token). ``top_k`` 0 and
    ``top_p`` 1 turn either filter off.

    Raises:
        ValueError: ``top_k`` not an int ``>= 0``, or ``top_p`` outside ``(0, 1]``.
    """
    _check_filters(top_k, top_p)
    if top_k > 0:
        k = min(top_k, logits.shape[-1])
        threshold = logits.topk(k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < threshold, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        probs = sorted_logits.softmax(dim=-1)
        before = probs.cumsum(dim=-1) - probs  # mass of the tokens ranked above
        drop_sorted = before >= top_p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_real(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _check_filters(top_k: Any, top_p: Any) -> None:
    if not _is_int(top_k) or top_k < 0:
        raise ValueError(f"top_k must be an int >= 0 (0 turns it off), got {top_k!r}")
    if not _is_real(top_p) or not 0.0 < top_p <= 1.0:  # NaN fails the comparison
        raise ValueError(f"top_p must lie in (0, 1] (1 turns it off), got {top_p!r}")


def _check_arguments(
    input_ids: Any,
    attention_mask: Any,
    max_new_tokens: Any,
    max_length: Any,
    temperature: Any,
    top_k: Any,
    top_p: Any,
    repetition_penalty: Any,
    num_return_sequences: Any,
    eos_token_id: Any,
    pad_token_id: Any,
) -> int:
    """Refuse arguments that would give degenerate output; returns the new-token budget."""
    if not isinstance(input_ids, Tensor) or input_ids.dim() != 2:
        got = tuple(input_ids.shape) if isinstance(input_ids, Tensor) else type(input_ids).__name__
        raise ValueError(f"input_ids must have shape (batch, seq), got {got}")
    if input_ids.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"input_ids must be int64 or int32 token ids, got {input_ids.dtype}")
    if input_ids.shape[1] == 0:
        raise ValueError(
            f"input_ids must hold a prompt of at least one token, got shape "
            f"{tuple(input_ids.shape)} (start from a BOS token)"
        )
    if attention_mask is not None and (
        not isinstance(attention_mask, Tensor) or attention_mask.shape != input_ids.shape
    ):
        got = getattr(attention_mask, "shape", type(attention_mask).__name__)
        raise ValueError(
            f"attention_mask must have the shape of input_ids {tuple(input_ids.shape)}, "
            f"got {tuple(got) if isinstance(got, torch.Size) else got}"
        )
    prompt = input_ids.shape[1]
    if max_new_tokens is None and max_length is None:
        raise ValueError("pass max_new_tokens (new tokens) or max_length (prompt + new tokens)")
    if max_new_tokens is not None and max_length is not None:
        raise ValueError("pass either max_new_tokens or max_length, not both")
    if max_length is not None:
        if not _is_int(max_length) or max_length < prompt:
            raise ValueError(
                f"max_length must be an int >= the prompt length ({prompt}), got {max_length!r}"
            )
        max_new_tokens = max_length - prompt
    if not _is_int(max_new_tokens) or max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be an int >= 0, got {max_new_tokens!r}")
    if not _is_real(temperature) or not math.isfinite(temperature) or temperature < 0:
        raise ValueError(
            f"temperature must be a finite number >= 0 (0 = greedy), got {temperature!r}"
        )
    _check_filters(top_k, top_p)
    if (
        not _is_real(repetition_penalty)
        or not math.isfinite(repetition_penalty)
        or repetition_penalty <= 0
    ):
        raise ValueError(
            f"repetition_penalty must be a finite number > 0 (1 turns it off), "
            f"got {repetition_penalty!r}"
        )
    if not _is_int(num_return_sequences) or num_return_sequences < 1:
        raise ValueError(f"num_return_sequences must be an int >= 1, got {num_return_sequences!r}")
    for name, value in (("eos_token_id", eos_token_id), ("pad_token_id", pad_token_id)):
        if value is not None and (not _is_int(value) or value < 0):
            raise ValueError(f"{name} must be None or an int >= 0, got {value!r}")
    return max_new_tokens


def _penalise(logits: Tensor, seen: Tensor, penalty: float) -> Tensor:
    """CTRL's repetition penalty on tokens already in the sequence (seen: (b, V) bool)."""
    scaled = torch.where(logits > 0, logits / penalty, logits * penalty)
    return torch.where(seen, scaled, logits)


def _past_decode_step(
    model: Any, params: Any, ids: Tensor, past: Any, mask: Tensor, use_cache: bool
) -> tuple[Tensor, Any]:
    """The default step: GPT-2's ``past``/``presents`` cache, or the whole context again.

    Position ids count only unmasked tokens, so left-padded prompts line up.
    """
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    options: dict[str, Any] = {"attention_mask": mask}
    if past is not None:
        options["past"] = past
        ids, positions = ids[:, -1:], positions[:, -1:]
    out = model.apply(params, ids, position_ids=positions, **options)
    presents = getattr(out, "presents", ())
    return out.logits[:, -1, :], (presents if use_cache and presents else None)


def generate(
    model: Any,
    params: Any,
    input_ids: Tensor,
    *,
    max_new_tokens: int | None = None,
    key: Key | None = None,
    attention_mask: Tensor | None = None,
    do_sample: bool | None = None,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    repetition_penalty: float = 1.0,
    eos_token_id: int | None = None,
    pad_token_id: int | None = None,
    use_cache: bool = True,
    compile: bool | str = False,  # noqa: A002 - the torch.compile switch, by its name
    max_length: int | None = None,
    num_return_sequences: int = 1,
) -> Tensor:
    """Continue ``input_ids`` (b, s) by up to ``max_new_tokens``; returns (b, s + new).

    Args:
        max_new_tokens: how many tokens to add (an int >= 0); or give
        max_length: the length of prompt plus new tokens (>= s), not both.
        attention_mask: (b, s), 1 = token, 0 = padding; pad prompts on the *left*.
        do_sample: sample instead of argmax; defaults to True when any of
            ``temperature``, ``top_k``, ``top_p`` asks for sampling. Needs ``key``.
        temperature: logits are divided by it before sampling (finite, >= 0);
            ``temperature=0`` means greedy decoding (argmax), even with ``do_sample=True``,
            and needs no key.
        top_k: keep the ``top_k`` most likely tokens (0: all). top_p: keep the nucleus of
            that probability mass, in (0, 1] (1: all). repetition_penalty: CTRL's, > 0.
        num_return_sequences: continuations per prompt (>= 1; more than one needs
            sampling); the output has b * num_return_sequences rows, each prompt's
            continuations next to each other (as in ``transformers``).
        eos_token_id: a row that produced it is finished; its later tokens are
            ``pad_token_id`` (default: the EOS id). Stops when every row is done.
        use_cache: reuse the model's cache (GPT-2's ``presents``, Transformer-XL's and
            XLNet's memories) instead of re-running the prefix.
        compile: decode with one compiled step over a static cache (see the module doc);
            True for ``torch.compile``'s default mode, or the name of a mode. Needs a model
            with a static cache (GPT-2) and ``use_cache``.
    """
    max_new_tokens = _check_arguments(
        input_ids,
        attention_mask,
        max_new_tokens,
        max_length,
        temperature,
        top_k,
        top_p,
        repetition_penalty,
        num_return_sequences,
        eos_token_id,
        pad_token_id,
    )
    if do_sample is None:
        do_sample = temperature != 1.0 or top_k > 0 or top_p < 1.0
    if temperature == 0:
        do_sample = False  # the zero-temperature limit of sampling
    if num_return_sequences > 1:
        if not do_sample:
            raise ValueError(
                f"num_return_sequences={num_return_sequences} needs sampling (do_sample=True "
                "and temperature > 0): greedy decoding would return identical copies"
            )
        input_ids = input_ids.repeat_interleave(num_return_sequences, dim=0)
        if attention_mask is not None:
            attention_mask = attention_mask.repeat_interleave(num_return_sequences, dim=0)
    if do_sample and key is None:
        raise ValueError("sampling needs a random key: pass key=ptfunc.random.key(seed)")
    b, s = input_ids.shape
    mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask.to(input_ids)
    pad = eos_token_id if pad_token_id is None else pad_token_id
    ids, cache = input_ids, None
    done = torch.zeros(b, dtype=torch.bool, device=input_ids.device)
    decode_step = getattr(model, "decode_step", None)
    if compile:
        decode_step = _static_cache_step(model, s + max_new_tokens, compile, use_cache)
    for step in range(max_new_tokens):
        if decode_step is not None:
            logits, cache = decode_step(
                params, ids, cache=cache, attention_mask=mask, use_cache=use_cache
            )
        else:
            logits, cache = _past_decode_step(model, params, ids, cache, mask, use_cache)
        logits = logits.float()
        if repetition_penalty != 1.0:
            seen = torch.zeros(b, logits.shape[-1], dtype=torch.bool, device=logits.device)
            seen = seen.scatter(1, ids, torch.ones_like(ids, dtype=torch.bool))
            logits = _penalise(logits, seen, repetition_penalty)
        if do_sample:
            logits = filter_logits(logits / temperature, top_k=top_k, top_p=top_p)
            u = random.uniform(random.fold_in(key, step), logits.shape).clamp(min=1e-10)
            token = (logits - torch.log(-torch.log(u))).argmax(dim=-1)
        else:
            token = logits.argmax(dim=-1)
        if eos_token_id is not None:
            token = torch.where(done, torch.full_like(token, pad), token)
            done = done | (token == eos_token_id)
        ids = torch.cat([ids, token[:, None]], dim=1)
        mask = torch.cat([mask, mask.new_ones(b, 1)], dim=1)
        if eos_token_id is not None and bool(done.all()):
            break
    return ids


_COMPILED_STEPS: dict[str, Any] = {}
_CUDA_GRAPH_MODES = ("reduce-overhead", "max-autotune")


def _static_cache_step(model: Any, total: int, mode: bool | str, use_cache: bool) -> Any:
    """A ``decode_step`` over a static cache of ``total`` slots, the tokens after the prompt
    run by a compiled function (one per mode, shared by every model and call)."""
    if not getattr(model, "supports_static_cache", False):
        raise ValueError(
            f"compile=True needs a model with a static KV cache (GPT-2's language models); "
            f"{type(model).__name__} has none"
        )
    if not use_cache:
        raise ValueError("compile=True decodes with the cache: it needs use_cache=True")
    limit = context_length(model)
    if limit is not None and total > limit:
        raise ValueError(f"prompt + max_new_tokens = {total} exceeds the model's {limit} positions")
    key = "default" if mode is True else str(mode)
    if key not in _COMPILED_STEPS:
        options = {} if key == "default" else {"mode": key}
        _COMPILED_STEPS[key] = torch.compile(_static_decode, dynamic=False, **options)
    return _StaticCacheStep(model, total, _COMPILED_STEPS[key], key in _CUDA_GRAPH_MODES)


def _static_decode(
    model: Any, params: Any, token: Tensor, cache: tuple[Tensor, ...], at: Tensor, mask: Tensor
) -> tuple[Tensor, tuple[Tensor, ...]]:
    """One token per row: token (b, 1) written at slot ``at`` (1,) of ``cache``, its position
    id the count of unmasked slots before it in ``mask`` (b, total), which is 0 after ``at``
    -> (logits (b, V), the updated cache)."""
    positions = mask.sum(-1, keepdim=True) - 1  # slots after ``at`` are still 0 in mask
    out = model.apply(
        params, token, past=cache, cache_position=at, position_ids=positions, attention_mask=mask
    )
    return out.logits[:, -1, :], out.presents


class _StaticCacheStep:
    """The decode_step protocol over a static cache: prefill eagerly, then compiled steps."""

    def __init__(self, model: Any, total: int, compiled: Any, cuda_graphs: bool) -> None:
        self.model, self.total, self.compiled = model, total, compiled
        self.cuda_graphs = cuda_graphs

    def __call__(
        self, params: Any, ids: Tensor, *, cache: Any, attention_mask: Tensor, use_cache: bool
    ) -> tuple[Tensor, Any]:
        b, length = ids.shape
        if cache is None:  # the prompt: one eager call, its keys and values into the cache
            logits, presents = _past_decode_step(
                self.model, params, ids, None, attention_mask, True
            )
            if self.cuda_graphs:  # the weights stay where they are: no copy into the
                for t in tree.leaves(params):  # graph's inputs at every replay
                    torch._dynamo.mark_static_address(t)
            return logits, tuple(_padded_cache(p, self.total) for p in presents)
        full = attention_mask.new_zeros(b, self.total)
        full[:, :length] = attention_mask
        at = torch.full((1,), length - 1, dtype=torch.long, device=ids.device)
        # its own storage, standard strides: the same guards at every step
        token = ids[:, -1:].clone(memory_format=torch.contiguous_format)
        logits, cache = self.compiled(self.model, params, token, cache, at, full)
        if not self.cuda_graphs:
            return logits, cache
        # the next replay overwrites the graph's outputs while this step's cache is its input
        return logits.clone(), tuple(c.clone() for c in cache)


def _padded_cache(present: Tensor, total: int) -> Tensor:
    """(2, b, h, s, d) -> (2, b, h, total, d), the first s slots filled."""
    buffer = present.new_zeros(*present.shape[:3], total, present.shape[-1])
    buffer[..., : present.shape[-2], :] = present
    return buffer
