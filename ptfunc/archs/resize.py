"""Resize a model's vocabulary as a pure params transform (every architecture).

A model names its token-embedding leaf (``token_embedding_path``, relative to
the base model's params) and any vocabulary-sized biases
(``vocab_biases``, relative to the whole params); a tied LM head follows
automatically because it reads the same leaf.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..layers.initializers import normal
from ..random import Key
from ..tree import Params

__all__ = ["resize_token_embeddings", "replace_at", "get_at"]


def replace_at(params: Params, path: tuple[str, ...], value: Any) -> Params:
    """A copy of ``params`` with the leaf at ``path`` replaced (nothing is mutated)."""
    if not path:
        return value
    head, *rest = path
    return {**params, head: replace_at(params[head], tuple(rest), value)}


def get_at(params: Params, path: tuple[str, ...]) -> Any:
    """The subtree or leaf of ``params`` at ``path`` (dict keys from the root)."""
    for part in path:
        params = params[part]
    return params


def resize_token_embeddings(model: Any, params: Params, new_num_tokens: int, *, key: Key):
    """Grow or shrink the token embeddings to ``new_num_tokens`` rows.

    Kept rows are copied; new rows are drawn from N(0, initializer_range) with
    ``key``; vocabulary-sized biases are cut or padded with zeros.

    Returns:
        ``(model whose config.vocab_size is new_num_tokens, new params)``.
    """
    if not isinstance(new_num_tokens, int) or new_num_tokens < 1:
        raise ValueError(f"new_num_tokens must be a positive int, got {new_num_tokens!r}")
    c = model.config
    prefix = (model.params_prefix,) if model.params_prefix else ()
    path = prefix + tuple(model.token_embedding_path)
    old: Tensor = get_at(params, path)
    keep = min(old.shape[0], new_num_tokens)
    fresh = normal(key, (new_num_tokens, old.shape[1]), std=c.initializer_range, dtype=old.dtype)
    out = replace_at(params, path, torch.cat([old[:keep], fresh[keep:].to(old.device)]))
    for bias_path in model.vocab_biases:
        try:
            bias = get_at(out, tuple(bias_path))
        except (KeyError, TypeError):
            continue
        pad = bias.new_zeros(max(0, new_num_tokens - bias.shape[0]))
        out = replace_at(out, tuple(bias_path), torch.cat([bias[:keep], pad]))
    return type(model)(c.replace(vocab_size=new_num_tokens)), out
