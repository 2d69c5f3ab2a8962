"""Pure building blocks: each an ``init(...) -> params`` and an ``apply(params, x, ...)``.

Architectures compose these; nothing here knows about a particular model.
"""

from . import (
    activations,
    adaptive_embedding,
    adaptive_softmax,
    attention,
    causal_attention,
    dropout,
    embedding,
    feed_forward,
    gated_mlp,
    initializers,
    layer_norm,
    linear,
    losses,
    positions,
    question_answering,
    relative_position,
    residual,
    rms_norm,
    rotary,
    rotary_attention,
    sequence_summary,
    transformer_block,
)

__all__ = [
    "activations",
    "adaptive_embedding",
    "adaptive_softmax",
    "attention",
    "causal_attention",
    "dropout",
    "embedding",
    "feed_forward",
    "gated_mlp",
    "initializers",
    "layer_norm",
    "linear",
    "losses",
    "positions",
    "question_answering",
    "relative_position",
    "residual",
    "rms_norm",
    "rotary",
    "rotary_attention",
    "sequence_summary",
    "transformer_block",
]
