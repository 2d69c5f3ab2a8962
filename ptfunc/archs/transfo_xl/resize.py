"""Vocabulary resize for Transformer-XL: the last cluster grows or shrinks.

The adaptive input and softmax split the vocabulary at ``cutoffs``; new tokens
join the last cluster (the rarest words), so the cutoffs stay valid and every
existing id keeps its embedding and its log-probability computation.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ...random import Key, split
from ...tree import Params
from ..resize import replace_at
from .layer import seed_initializers

__all__ = ["resize_last_cluster"]


def _resized(old: Tensor, rows: int, fresh: Tensor | None) -> Tensor:
    """``old`` cut to ``rows`` rows, or extended with the last rows of ``fresh``."""
    if rows <= old.shape[0]:
        return old[:rows]
    extra = (
        fresh[: rows - old.shape[0]]
        if fresh is not None
        else old.new_zeros((rows - old.shape[0], *old.shape[1:]))
    )
    return torch.cat([old, extra.to(old)])


def resize_last_cluster(model: Any, params: Params, new_num_tokens: int, *, key: Key):
    """Return ``(model with vocab_size=new_num_tokens, params)``; nothing is mutated.

    Raises:
        ValueError: ``new_num_tokens`` would leave the last cluster empty.
    """
    c = model.config
    first = c.cutoffs[-1] if c.cutoffs else 0
    if not isinstance(new_num_tokens, int) or new_num_tokens <= first:
        raise ValueError(
            f"new_num_tokens must be an int above the last cutoff ({first}) so the last "
            f"cluster keeps at least one token, got {new_num_tokens!r}"
        )
    delta = new_num_tokens - c.vocab_size
    init_weight, _ = seed_initializers(c)  # new rows drawn as the seed draws them
    k_emb, k_out = split(key)
    prefix = (model.params_prefix,) if model.params_prefix else ()
    emb_layers = (
        params[prefix[0]]["word_emb"]["emb_layers"] if prefix else params["word_emb"]["emb_layers"]
    )
    last = len(emb_layers) - 1
    table = emb_layers[last]["weight"]
    fresh = init_weight(k_emb, (max(delta, 0), table.shape[1])) if delta > 0 else None
    path = prefix + ("word_emb", "emb_layers")
    new_layers = [*emb_layers[:last], {"weight": _resized(table, table.shape[0] + delta, fresh)}]
    out = replace_at(params, path, new_layers)
    if "crit" in params:
        layers = params["crit"]["out_layers"]
        layer = dict(layers[-1])
        layer["bias"] = _resized(layer["bias"], layer["bias"].shape[0] + delta, None)
        if "weight" in layer:
            w = layer["weight"]
            fresh_w = init_weight(k_out, (max(delta, 0), w.shape[1])) if delta > 0 else None
            layer["weight"] = _resized(w, w.shape[0] + delta, fresh_w)
        out = replace_at(out, ("crit", "out_layers"), [*layers[:-1], layer])
    return type(model)(c.replace(vocab_size=new_num_tokens)), out
