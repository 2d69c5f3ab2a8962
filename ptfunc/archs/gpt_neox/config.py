"""GPT-NeoX's configuration (GPT-NeoX-20B, the Pythia suite)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from ...errors import ConfigError
from ...layers import rotary
from ..config import ACTIVATION, COUNT, DROPOUT, NON_NEGATIVE, SIZE, PretrainedConfig
from ..decoder.config import checked_rotary, normalise_json_values, split_rope_parameters

__all__ = ["GPTNeoXConfig"]

C = TypeVar("C", bound="GPTNeoXConfig")


@dataclasses.dataclass(frozen=True)
class GPTNeoXConfig(PretrainedConfig):
    """Configuration of the GPT-NeoX models (defaults: GPT-NeoX-20B), config.json's names.

    ``rotary_pct``: the fraction of each head's features that rotate (Pythia: 0.25), with
    base ``rotary_emb_base``; ``rope_scaling`` as Llama's. transformers 5's
    ``rope_parameters`` is read into these three (its ``rope_theta`` is ``rotary_emb_base``,
    its ``partial_rotary_factor`` ``rotary_pct``). ``use_parallel_residual``: attention and MLP
    read the same input, ``x + attn(ln1(x)) + mlp(ln2(x))`` (else sequential, as Llama).

    Example:
        >>> c = GPTNeoXConfig(vocab_size=99, hidden_size=32, num_hidden_layers=2,
        ...                   num_attention_heads=4, intermediate_size=64)
        >>> c.rotary().rotary_dim, c.head_dim
        (2, 8)
    """

    vocab_size: int = 50432
    hidden_size: int = 6144
    num_hidden_layers: int = 44
    num_attention_heads: int = 64
    intermediate_size: int = 24576
    hidden_act: str | Callable = "gelu"
    rotary_pct: float = 0.25
    rotary_emb_base: float = 10000.0
    attention_dropout: float = 0.0
    hidden_dropout: float = 0.0
    classifier_dropout: float = 0.1
    max_position_embeddings: int = 2048
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-5
    use_cache: bool = True
    bos_token_id: int | None = 0
    eos_token_id: int | tuple[int, ...] | None = 2
    pad_token_id: int | None = None
    tie_word_embeddings: bool = False
    use_parallel_residual: bool = True
    rope_scaling: Mapping[str, Any] | None = dataclasses.field(default=None, hash=False)
    attention_bias: bool = True
    torch_dtype: str | None = None

    model_type = "gpt_neox"
    aliases = {"dtype": "torch_dtype"}
    constraints = {
        "vocab_size": SIZE,
        "hidden_size": SIZE,
        "num_hidden_layers": SIZE,
        "num_attention_heads": SIZE,
        "intermediate_size": SIZE,
        "hidden_act": ACTIVATION,
        "rotary_emb_base": NON_NEGATIVE,
        "attention_dropout": DROPOUT,
        "hidden_dropout": DROPOUT,
        "classifier_dropout": DROPOUT,
        "max_position_embeddings": SIZE,
        "initializer_range": NON_NEGATIVE,
        "layer_norm_eps": NON_NEGATIVE,
        "bos_token_id": COUNT,
        "eos_token_id": COUNT,
        "pad_token_id": COUNT,
    }
    multiples = (("hidden_size", "num_attention_heads"),)
    indices = (("pad_token_id", "vocab_size"),)
    param_terms = (
        (2, "vocab_size", "hidden_size"),
        (4, "num_hidden_layers", "hidden_size", "hidden_size"),
        (2, "num_hidden_layers", "hidden_size", "intermediate_size"),
    )

    def __post_init__(self) -> None:
        normalise_json_values(self, ("eos_token_id",))
        super().__post_init__()
        if not 0.0 < self.rotary_pct <= 1.0:
            raise ConfigError(f"GPTNeoXConfig.rotary_pct must lie in (0, 1], got {self.rotary_pct}")
        checked_rotary(self)

    @classmethod
    def from_dict(cls: type[C], d: Mapping[str, Any], **overrides: Any) -> C:
        """Read a config.json dict; ``rope_parameters`` (transformers 5) becomes
        ``rotary_emb_base``, ``rotary_pct`` and ``rope_scaling``."""
        cls._check_mapping(d)
        d, overrides = dict(d), dict(overrides)
        for source in (d, overrides):
            if "rope_parameters" in source:
                rope = source.pop("rope_parameters")
                if isinstance(rope, Mapping) and "partial_rotary_factor" in rope:
                    rope = dict(rope)
                    source["rotary_pct"] = rope.pop("partial_rotary_factor")
                split = split_rope_parameters(cls.__name__, rope)
                if "rope_theta" in split:
                    source["rotary_emb_base"] = split.pop("rope_theta")
                source.update(split)
        return super().from_dict(d, **overrides)

    @property
    def head_dim(self) -> int:
        """Width of one attention head."""
        return self.hidden_size // self.num_attention_heads

    def rotary(self) -> rotary.Rope:
        """The rotary embedding (the first ``rotary_pct`` of each head's features)."""
        return rotary.from_config(
            self.rope_scaling,
            head_dim=self.head_dim,
            max_position_embeddings=self.max_position_embeddings,
            rope_theta=self.rotary_emb_base,
            partial_rotary_factor=self.rotary_pct,
        )

    def sliding_windows(self) -> tuple[None, ...]:
        """No sliding windows: full causal attention in every layer."""
        return (None,) * self.num_hidden_layers
