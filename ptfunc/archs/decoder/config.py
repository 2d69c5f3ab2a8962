"""The configuration shared by today's decoder LLMs (Llama, Mistral, Qwen2, Qwen3).

:class:`DecoderConfig` holds the fields every Llama-style config.json has, with their
``transformers`` names, and reads the two spellings of the rotary settings:

* ``rope_theta`` + ``rope_scaling`` (``{"rope_type"|"type": ..., "factor": ...}``), what most
  hub checkpoints and ``transformers`` 4.x write, kept as the fields of the same names;
* ``rope_parameters`` (``transformers`` 5: the theta and the scaling in one dict), split into
  those two fields on read.

``to_dict`` writes ``rope_theta`` and ``rope_scaling``, which every ``transformers`` reads.
``head_dim`` and ``num_key_value_heads`` default (``None``) to ``hidden_size //
num_attention_heads`` and ``num_attention_heads`` and are stored resolved; ``torch_dtype``
(alias ``dtype``) is the dtype the checkpoint was saved in, informational. The rotary
settings are validated when the config is built (:func:`ptfunc.layers.rotary.from_config`).

Each architecture's config subclasses it and says how its blocks differ, through
:meth:`DecoderConfig.attention_biases`, :attr:`DecoderConfig.qk_norm`, :attr:`mlp_bias` and
:meth:`DecoderConfig.sliding_windows`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, TypeVar

from ...errors import ConfigError
from ...layers import rotary
from ..config import ACTIVATION, COUNT, DROPOUT, NON_NEGATIVE, SIZE, OneOf, PretrainedConfig

__all__ = ["DecoderConfig", "LAYER_TYPES"]

C = TypeVar("C", bound="DecoderConfig")

LAYER_TYPES = ("full_attention", "sliding_attention")
"""The values of a ``layer_types`` list (Qwen2, Qwen3)."""


@dataclasses.dataclass(frozen=True)
class DecoderConfig(PretrainedConfig):
    """Fields of a Llama-style decoder (defaults: Llama-2-7B)."""

    vocab_size: int = 32000
    hidden_size: int = 4096
    intermediate_size: int = 11008
    num_hidden_layers: int = 32
    num_attention_heads: int = 32
    num_key_value_heads: int | None = None
    head_dim: int | None = None
    hidden_act: str | Callable = "silu"
    max_position_embeddings: int = 2048
    initializer_range: float = 0.02
    rms_norm_eps: float = 1e-6
    use_cache: bool = True
    pad_token_id: int | None = None
    bos_token_id: int | None = 1
    eos_token_id: int | tuple[int, ...] | None = 2
    tie_word_embeddings: bool = False
    rope_theta: float = 10000.0
    rope_scaling: Mapping[str, Any] | None = dataclasses.field(default=None, hash=False)
    attention_dropout: float = 0.0
    torch_dtype: str | None = None

    aliases = {"dtype": "torch_dtype"}
    constraints = {
        "vocab_size": SIZE,
        "hidden_size": SIZE,
        "intermediate_size": SIZE,
        "num_hidden_layers": SIZE,
        "num_attention_heads": SIZE,
        "num_key_value_heads": SIZE,
        "head_dim": SIZE,
        "hidden_act": ACTIVATION,
        "max_position_embeddings": SIZE,
        "initializer_range": NON_NEGATIVE,
        "rms_norm_eps": NON_NEGATIVE,
        "pad_token_id": COUNT,
        "bos_token_id": COUNT,
        "eos_token_id": COUNT,
        "rope_theta": NON_NEGATIVE,
        "attention_dropout": DROPOUT,
        "torch_dtype": OneOf(("float32", "float16", "bfloat16", "float64")),
    }
    multiples = (("num_attention_heads", "num_key_value_heads"),)
    indices = (("pad_token_id", "vocab_size"),)
    param_terms = (
        (2, "vocab_size", "hidden_size"),
        (2, "num_hidden_layers", "hidden_size", "num_attention_heads", "head_dim"),
        (2, "num_hidden_layers", "hidden_size", "num_key_value_heads", "head_dim"),
        (3, "num_hidden_layers", "hidden_size", "intermediate_size"),
    )

    qk_norm: ClassVar[bool] = False
    """RMSNorm over each query and key head before the rotation (Qwen3)."""

    def __post_init__(self) -> None:
        if self.num_key_value_heads is None and isinstance(self.num_attention_heads, int):
            object.__setattr__(self, "num_key_value_heads", self.num_attention_heads)
        if (
            self.head_dim is None
            and isinstance(self.hidden_size, int)
            and isinstance(self.num_attention_heads, int)
            and self.num_attention_heads > 0
        ):
            if self.hidden_size % self.num_attention_heads:
                raise ConfigError(
                    f"{type(self).__name__}.hidden_size ({self.hidden_size}) must be a multiple "
                    f"of num_attention_heads ({self.num_attention_heads}) when head_dim is not "
                    "given"
                )
            object.__setattr__(self, "head_dim", self.hidden_size // self.num_attention_heads)
        normalise_json_values(self, ("eos_token_id", "layer_types"))
        super().__post_init__()
        rope = checked_rotary(self)
        if rope.rotary_dim != self.head_dim:
            raise ConfigError(
                f"{type(self).__name__}: partial_rotary_factor {rope.rotary_dim / self.head_dim} "
                "asks to rotate part of each head, which these models do not do (transformers "
                "ignores it or fails); remove it from rope_scaling / rope_parameters"
            )

    @classmethod
    def from_dict(cls: type[C], d: Mapping[str, Any], **overrides: Any) -> C:
        """Read a config.json dict; ``rope_parameters`` (transformers 5) becomes
        ``rope_theta`` and ``rope_scaling`` (see the module doc)."""
        cls._check_mapping(d)
        d, overrides = dict(d), dict(overrides)
        for source in (d, overrides):
            if "rope_parameters" in source:
                source.update(split_rope_parameters(cls.__name__, source.pop("rope_parameters")))
        return super().from_dict(d, **overrides)

    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        d["rope_scaling"] = None if self.rope_scaling is None else dict(self.rope_scaling)
        return d

    # -- what the blocks need --------------------------------------------------------------------

    def rotary(self) -> rotary.Rope:
        """The rotary embedding these settings describe."""
        return rotary.from_config(
            self.rope_scaling,
            head_dim=self.head_dim,
            max_position_embeddings=self.max_position_embeddings,
            rope_theta=self.rope_theta,
        )

    def attention_biases(self) -> tuple[bool, bool]:
        """``(q/k/v projections have biases, the output projection has one)``."""
        return False, False

    @property
    def has_mlp_bias(self) -> bool:
        """The gated MLP's three projections have biases."""
        return False

    def sliding_windows(self) -> tuple[int | None, ...]:
        """Per layer, the sliding-window length or None (full causal attention)."""
        return (None,) * self.num_hidden_layers

    def _check_layer_types(self, layer_types: tuple[str, ...] | None) -> None:
        """``layer_types`` (Qwen2/Qwen3): one known entry per layer."""
        if layer_types is None:
            return
        if len(layer_types) != self.num_hidden_layers or any(
            t not in LAYER_TYPES for t in layer_types
        ):
            raise ConfigError(
                f"{type(self).__name__}.layer_types must list one of {list(LAYER_TYPES)} per "
                f"layer ({self.num_hidden_layers}), got {list(layer_types)}"
            )


def normalise_json_values(config: Any, list_fields: tuple[str, ...]) -> None:
    """Before validation: the JSON lists among ``list_fields`` become tuples (the config
    stays hashable) and ``torch_dtype`` loses a ``"torch."`` prefix."""
    for name in list_fields:
        value = getattr(config, name, None)
        if isinstance(value, list):
            object.__setattr__(config, name, tuple(value))
    if isinstance(config.torch_dtype, str):
        object.__setattr__(config, "torch_dtype", config.torch_dtype.removeprefix("torch."))


def checked_rotary(config: Any) -> rotary.Rope:
    """``config.rotary()``, its ValueError raised as a ConfigError naming the config class."""
    try:
        return config.rotary()
    except ValueError as error:
        raise ConfigError(f"{type(config).__name__}: {error}") from None


def split_rope_parameters(owner: str, rope_parameters: Any) -> dict[str, Any]:
    """transformers 5's ``rope_parameters`` dict -> ``{"rope_theta": ..., "rope_scaling": ...}``
    (``rope_scaling`` None for the default rotation with nothing else set)."""
    if rope_parameters is None:
        return {}
    if not isinstance(rope_parameters, Mapping):
        raise ConfigError(
            f"{owner}.rope_parameters must be a JSON object, got {type(rope_parameters).__name__}"
        )
    scaling = dict(rope_parameters)
    out: dict[str, Any] = {}
    if "rope_theta" in scaling:
        out["rope_theta"] = scaling.pop("rope_theta")
    kind = scaling.get("rope_type", scaling.get("type", "default"))
    plain = kind == "default" and set(scaling) <= {"rope_type", "type"}
    out["rope_scaling"] = None if plain else scaling
    return out
