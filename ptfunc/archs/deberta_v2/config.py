"""DeBERTa-v2/v3's configuration."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from ...errors import ConfigError
from ...layers.disentangled_attention import relative_span
from ..config import (
    ACTIVATION,
    COUNT,
    DROPOUT,
    NON_NEGATIVE,
    SIZE,
    Ints,
    OneOf,
    PretrainedConfig,
)

__all__ = ["DebertaV2Config"]


@dataclasses.dataclass(frozen=True)
class DebertaV2Config(PretrainedConfig):
    """Configuration of the DeBERTa-v2/v3 models (defaults: transformers' ``DebertaV2Config``,
    microsoft/deberta-v2-xlarge without its convolution).

    Field names are transformers'; the ones its modules read with ``getattr``
    (``position_buckets``, ``share_att_key``, ``norm_rel_ebd``, ``attention_head_size``,
    ``embedding_size``, ``cls_dropout``, ``conv_kernel_size``...) are fields here too.
    ``pos_att_type`` may be given as transformers' ``"p2c|c2p"`` string; it is kept as a
    tuple. ``legacy=True`` names the masked-LM head ``cls.predictions`` (transformers'
    default), ``legacy=False`` ``lm_predictions.lm_head`` (the Hub files' names).
    The convolution of deberta-v2-xlarge (``conv_kernel_size > 0``) is refused.

    Example:
        >>> c = DebertaV2Config(vocab_size=99, hidden_size=32, num_hidden_layers=2,
        ...                     num_attention_heads=4, intermediate_size=37,
        ...                     relative_attention=True, pos_att_type="p2c|c2p")
        >>> c.pos_att_type
        ('p2c', 'c2p')
        >>> DebertaV2Config.from_dict(c.to_dict()) == c
        True
    """

    vocab_size: int = 128100
    hidden_size: int = 1536
    num_hidden_layers: int = 24
    num_attention_heads: int = 24
    intermediate_size: int = 6144
    hidden_act: str | Callable = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 0
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-7
    relative_attention: bool = False
    max_relative_positions: int = -1
    pad_token_id: int = 0
    position_biased_input: bool = True
    pos_att_type: tuple[str, ...] | None = None
    pooler_dropout: float = 0.0
    pooler_hidden_act: str | Callable = "gelu"
    legacy: bool = True
    position_buckets: int = -1
    share_att_key: bool = False
    norm_rel_ebd: str = "none"
    attention_head_size: int | None = None
    embedding_size: int | None = None
    cls_dropout: float | None = None
    conv_kernel_size: int = 0

    model_type = "deberta-v2"
    constraints = {
        "vocab_size": SIZE,
        "hidden_size": SIZE,
        "num_hidden_layers": SIZE,
        "num_attention_heads": SIZE,
        "intermediate_size": SIZE,
        "hidden_act": ACTIVATION,
        "hidden_dropout_prob": DROPOUT,
        "attention_probs_dropout_prob": DROPOUT,
        "max_position_embeddings": SIZE,
        "type_vocab_size": COUNT,
        "initializer_range": NON_NEGATIVE,
        "layer_norm_eps": NON_NEGATIVE,
        "max_relative_positions": Ints(-1, 2**24),
        "pad_token_id": COUNT,
        "pos_att_type": OneOf(("c2p", "p2c")),
        "pooler_dropout": DROPOUT,
        "pooler_hidden_act": ACTIVATION,
        "position_buckets": Ints(-1, 2**24),
        "norm_rel_ebd": OneOf(("none", "layer_norm")),
        "attention_head_size": SIZE,
        "embedding_size": SIZE,
        "cls_dropout": DROPOUT,
        "conv_kernel_size": Ints(0, 0),
    }
    indices = (("pad_token_id", "vocab_size"),)
    param_terms = (
        ("vocab_size", "hidden_size"),
        ("max_position_embeddings", "hidden_size"),
        (2, "max_position_embeddings", "hidden_size"),
        (6, "num_hidden_layers", "hidden_size", "hidden_size"),
        (2, "num_hidden_layers", "hidden_size", "intermediate_size"),
    )

    def __post_init__(self) -> None:
        kinds = self.pos_att_type
        if isinstance(kinds, str):  # transformers' "p2c|c2p"
            kinds = tuple(t.strip() for t in kinds.lower().split("|") if t.strip())
        elif isinstance(kinds, list):
            kinds = tuple(kinds)
        object.__setattr__(self, "pos_att_type", kinds)
        if isinstance(self.norm_rel_ebd, str) and "|" in self.norm_rel_ebd:
            parts = {t.strip() for t in self.norm_rel_ebd.lower().split("|")}
            object.__setattr__(
                self, "norm_rel_ebd", "layer_norm" if "layer_norm" in parts else "none"
            )
        if isinstance(self.conv_kernel_size, int) and self.conv_kernel_size > 0:
            raise ConfigError(
                f"DebertaV2Config.conv_kernel_size={self.conv_kernel_size}: the convolution "
                "layer of deberta-v2-xlarge/xxlarge (ConvLayer) is not implemented in ptfunc; "
                "only configs with conv_kernel_size 0 (DeBERTa-v3, deberta-v2 without conv) load"
            )
        super().__post_init__()
        if self.attention_head_size is None and self.hidden_size % self.num_attention_heads:
            raise ConfigError(
                f"DebertaV2Config.hidden_size ({self.hidden_size}) must be a multiple of "
                f"num_attention_heads ({self.num_attention_heads}) unless attention_head_size "
                "is given"
            )
        if self.legacy is False and self.embedding_width != self.hidden_size:
            raise ConfigError(
                "DebertaV2Config(legacy=False) needs embedding_size == hidden_size (the "
                "lm_predictions head multiplies hidden states by the word embeddings)"
            )
        if self.relative_attention and self.position_buckets > 0:
            mid, top = self.position_buckets // 2, self.max_relative
            if mid < 1 or top - 1 <= mid:
                raise ConfigError(
                    f"DebertaV2Config.position_buckets ({self.position_buckets}) needs "
                    f"max_relative_positions (or max_position_embeddings), here {top}, above "
                    f"position_buckets // 2 + 1 = {mid + 1} for its log buckets"
                )

    def to_dict(self) -> dict:
        """config.json; ``attention_head_size`` and ``embedding_size`` are left out when None
        (transformers reads them with ``getattr(config, name, default)``)."""
        d = super().to_dict()
        for name in ("attention_head_size", "embedding_size"):
            if d.get(name) is None:
                d.pop(name, None)
        return d

    @property
    def head_dim(self) -> int:
        """Width of one attention head (``attention_head_size`` or hidden / heads)."""
        if self.attention_head_size is not None:
            return self.attention_head_size
        return self.hidden_size // self.num_attention_heads

    @property
    def all_head_size(self) -> int:
        """Width of the attention projections: heads * head_dim."""
        return self.num_attention_heads * self.head_dim

    @property
    def embedding_width(self) -> int:
        """Width of the embedding tables (``embedding_size`` or ``hidden_size``)."""
        return self.hidden_size if self.embedding_size is None else self.embedding_size

    @property
    def max_relative(self) -> int:
        """The largest relative distance: ``max_relative_positions``, or
        ``max_position_embeddings`` when that is below 1."""
        if self.max_relative_positions >= 1:
            return self.max_relative_positions
        return self.max_position_embeddings

    @property
    def span(self) -> int:
        """Half the rows of ``encoder.rel_embeddings``."""
        return relative_span(
            self.position_buckets, self.max_relative_positions, self.max_position_embeddings
        )

    @property
    def kinds(self) -> tuple[str, ...]:
        """``pos_att_type`` as a tuple (``()`` for None)."""
        return self.pos_att_type or ()
