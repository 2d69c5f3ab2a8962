"""Text generation for causal language models: greedy, temperature, top-k, top-p,
repetition penalty, EOS stopping, left-padded batches and KV-cache reuse.

``generate(model, params, input_ids, max_new_tokens=...)`` works with any ptfunc
causal LM whose ``apply`` returns ``logits``. Models that return ``presents``
(GPT-2) are fed only the new token each step, with the cache; others (OpenAI GPT)
recompute the whole context. Sampling is a pure function of ``key``: the same key
gives the same text (``fold_in(key, step)`` per step, Gumbel-max draws).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from . import random
from .random import Key

__all__ = ["generate", "filter_logits"]


def filter_logits(logits: Tensor, *, top_k: int = 0, top_p: float = 1.0) -> Tensor:
    """Set to -inf the logits outside the top ``k`` and outside the nucleus of mass ``p``.

    logits (b, V) -> (b, V). The nucleus keeps the smallest set of most likely tokens
    whose probability reaches ``top_p`` (always at least one token).
    """
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


def _penalise(logits: Tensor, seen: Tensor, penalty: float) -> Tensor:
    """CTRL's repetition penalty on tokens already in the sequence (seen: (b, V) bool)."""
    scaled = torch.where(logits > 0, logits / penalty, logits * penalty)
    return torch.where(seen, scaled, logits)


def generate(
    model: Any,
    params: Any,
    input_ids: Tensor,
    *,
    max_new_tokens: int,
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
) -> Tensor:
    """Continue ``input_ids`` (b, s) by up to ``max_new_tokens``; returns (b, s + new).

    Args:
        attention_mask: (b, s), 1 = token, 0 = padding; pad prompts on the *left*.
        do_sample: sample instead of argmax; defaults to True when any of
            ``temperature``, ``top_k``, ``top_p`` asks for sampling. Needs ``key``.
        eos_token_id: a row that produced it is finished; its later tokens are
            ``pad_token_id`` (default: the EOS id). Stops when every row is done.
        use_cache: reuse ``presents`` when the model returns them.
    """
    if not isinstance(input_ids, Tensor) or input_ids.dim() != 2:
        raise ValueError("input_ids must have shape (batch, seq)")
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    if do_sample is None:
        do_sample = temperature != 1.0 or top_k > 0 or top_p < 1.0
    if do_sample and key is None:
        raise ValueError("sampling needs a random key: pass key=ptfunc.random.key(seed)")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    b, s = input_ids.shape
    mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask.to(input_ids)
    pad = eos_token_id if pad_token_id is None else pad_token_id
    ids, past = input_ids, None
    done = torch.zeros(b, dtype=torch.bool, device=input_ids.device)
    step_ids, step_positions = input_ids, (mask.cumsum(-1) - 1).clamp(min=0)
    for step in range(max_new_tokens):
        options: dict[str, Any] = {"attention_mask": mask, "position_ids": step_positions}
        if past is not None:
            options["past"] = past
        out = model.apply(params, step_ids, **options)
        logits = out.logits[:, -1, :].float()
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
        new_positions = step_positions[:, -1:] + 1
        mask = torch.cat([mask, mask.new_ones(b, 1)], dim=1)
        presents = getattr(out, "presents", ())
        if use_cache and presents:
            past, step_ids, step_positions = presents, token[:, None], new_positions
        else:
            step_ids, step_positions = ids, (mask.cumsum(-1) - 1).clamp(min=0)
        if eos_token_id is not None and bool(done.all()):
            break
    return ids
