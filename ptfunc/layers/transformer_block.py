"""The post-LN transformer encoder block, in BERT's parameter layout.

::

    a = LayerNorm(x + dropout(dense(self_attention(x))))
    y = LayerNorm(a + dropout(dense(act(dense(a)))))

Parameter names follow the pytorch-transformers state dict
(``attention.self.query``, ``attention.output.LayerNorm``, ``intermediate.dense``,
``output.dense``, ``output.LayerNorm``), so a checkpoint maps by name.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor

from ..random import Key, split, split_for_dropout
from ..tree import Params
from . import attention, feed_forward, layer_norm, linear, residual

__all__ = ["init", "apply"]


def init(key: Key, dim: int, d_ff: int, *, std: float = 0.02) -> Params:
    """Params of one block: attention (dim -> dim), feed-forward (dim -> d_ff -> dim), two LNs."""
    k_attn, k_out, k_in, k_ff = split(key, 4)
    return {
        "attention": {
            "self": attention.init_self_attention(k_attn, dim, std=std),
            "output": {
                "dense": linear.init(k_out, dim, dim, std=std),
                "LayerNorm": layer_norm.init(dim),
            },
        },
        "intermediate": {"dense": linear.init(k_in, dim, d_ff, std=std)},
        "output": {
            "dense": linear.init(k_ff, d_ff, dim, std=std),
            "LayerNorm": layer_norm.init(dim),
        },
    }


def apply(
    params: Params,
    x: Tensor,
    *,
    head_dim: int,
    activation: Callable[[Tensor], Tensor],
    eps: float,
    hidden_dropout: float = 0.0,
    attention_dropout: float = 0.0,
    bias: Tensor | None = None,
    head_mask: Tensor | None = None,
    need_weights: bool = False,
    key: Key | None = None,
    train: bool = False,
) -> tuple[Tensor, Tensor | None]:
    """x (batch, seq, dim) -> (y (batch, seq, dim), attention probs or None).

    Args:
        bias: additive attention bias, broadcastable to (batch, heads, seq, seq).
        head_mask: (heads,) or broadcastable to (batch, heads, 1, 1); 1 keeps a head.
        key: one key for the block; its dropout sites get independent sub-keys.
    """
    k_attn, k_attn_out, k_ff = split_for_dropout(key, 3, train)
    if head_mask is not None and head_mask.dim() == 1:
        head_mask = head_mask[:, None, None]
    attn = params["attention"]
    context, probs = attention.apply_self_attention(
        attn["self"],
        x,
        head_dim=head_dim,
        bias=bias,
        dropout_rate=attention_dropout,
        head_mask=head_mask,
        need_weights=need_weights,
        key=k_attn,
        train=train,
    )
    a = residual.post_norm(
        attn["output"]["LayerNorm"],
        linear.apply(attn["output"]["dense"], context),
        x,
        eps=eps,
        dropout_rate=hidden_dropout,
        key=k_attn_out,
        train=train,
    )
    h = feed_forward.apply(
        params["intermediate"]["dense"], params["output"]["dense"], a, activation=activation
    )
    y = residual.post_norm(
        params["output"]["LayerNorm"],
        h,
        a,
        eps=eps,
        dropout_rate=hidden_dropout,
        key=k_ff,
        train=train,
    )
    return y, probs
