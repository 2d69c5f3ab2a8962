"""XLNet's configuration."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from ...layers.sequence_summary import SUMMARY_TYPES
from ..config import (
    ACTIVATION,
    COUNT,
    DROPOUT,
    NON_NEGATIVE,
    SIZE,
    ConfigError,
    OneOf,
    PretrainedConfig,
)

__all__ = ["XLNetConfig"]


@dataclasses.dataclass(frozen=True)
class XLNetConfig(PretrainedConfig):
    """Configuration of the XLNet models (defaults: xlnet-large-cased, as in 1.0).

    Field names and positional order follow pytorch-transformers 1.0; its
    ``n_token`` and ``vocab_size_or_config_json_file`` are read as ``vocab_size``,
    and today's ``hidden_size``/``num_attention_heads``/``num_hidden_layers`` as
    ``d_model``/``n_head``/``n_layer`` (also available as properties). ``d_head``
    is derived (``d_model // n_head``); a file's ``d_head`` must agree with it. Values
    are checked as :mod:`ptfunc.archs.config` describes.

    Attributes:
        ff_activation: feed-forward activation. ``"gelu"`` is the tanh
            approximation, as in pytorch-transformers 1.0 and the original
            TensorFlow XLNet (today's ``transformers`` reads ``"gelu"`` as the
            exact erf form, so its outputs differ slightly for the same file;
            ``"gelu_new"`` means the tanh form in both).
        untie_r: kept for file compatibility; the relative biases are per layer
            either way (as in the seed's PyTorch model).
        attn_type: ``"bi"`` (XLNet) or ``"uni"`` (causal, as Transformer-XL).
        mem_len: memory length kept in ``mems``; ``None``/0 keeps every state
            (see :class:`~ptfunc.archs.xlnet.XLNetModel`).
        reuse_len: only the first ``reuse_len`` tokens of a segment go to memory.
        bi_data: forward and backward relative positions for the two batch
            halves (the batch must be even).
        clamp_len: relative distances are clamped to ``±clamp_len`` when > 0.
        same_length: with ``attn_type="uni"``, every token sees the same number of keys.
        use_mems_eval, use_mems_train: today's defaults for the ``use_mems`` option
            (return memories) when ``train`` is False / True.
        summary_*: the ``SequenceSummary`` of the classification head.
        start_n_top, end_n_top: beam widths of the question-answering head.

    Example:
        >>> c = XLNetConfig(vocab_size=99, d_model=32, n_layer=2, n_head=4, d_inner=37)
        >>> XLNetConfig.from_dict(c.to_dict()) == c, c.d_head
        (True, 8)
    """

    vocab_size: int = 32000
    d_model: int = 1024
    n_layer: int = 24
    n_head: int = 16
    d_inner: int = 4096
    ff_activation: str | Callable = "gelu"
    untie_r: bool = True
    attn_type: str = "bi"
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-12
    dropout: float = 0.1
    mem_len: int | None = None
    reuse_len: int | None = None
    bi_data: bool = False
    clamp_len: int = -1
    same_length: bool = False
    summary_type: str = "last"
    summary_use_proj: bool = True
    summary_activation: str | None = "tanh"
    summary_last_dropout: float = 0.1
    start_n_top: int = 5
    end_n_top: int = 5
    use_mems_eval: bool = dataclasses.field(default=True, kw_only=True)
    use_mems_train: bool = dataclasses.field(default=False, kw_only=True)

    model_type = "xlnet"
    aliases = {
        "n_token": "vocab_size",
        "hidden_size": "d_model",
        "num_attention_heads": "n_head",
        "num_hidden_layers": "n_layer",
    }

    constraints = {
        "vocab_size": SIZE,
        "d_model": SIZE,
        "n_layer": SIZE,
        "n_head": SIZE,
        "d_inner": SIZE,
        "ff_activation": ACTIVATION,
        "attn_type": OneOf(("bi", "uni")),
        "initializer_range": NON_NEGATIVE,
        "layer_norm_eps": NON_NEGATIVE,
        "dropout": DROPOUT,
        "mem_len": COUNT,
        "reuse_len": COUNT,
        "summary_type": OneOf(SUMMARY_TYPES),
        "summary_activation": ACTIVATION,
        "summary_last_dropout": DROPOUT,
        "start_n_top": SIZE,
        "end_n_top": SIZE,
    }
    multiples = (("d_model", "n_head"), ("d_model", 2))  # 2: sinusoid encodings
    param_terms = (
        ("vocab_size", "d_model"),
        (5, "n_layer", "d_model", "d_model"),
        (2, "n_layer", "d_model", "d_inner"),
    )

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], **overrides: Any) -> XLNetConfig:
        """Read a config.json dict (1.0 or today's keys); a ``d_head`` key is checked, not kept."""
        cls._check_mapping(d)
        d = dict(d)
        d_head = d.pop("d_head", None)
        config = super().from_dict(d, **overrides)
        if d_head is not None and d_head != config.d_head:
            raise ConfigError(
                f"d_head ({d_head}) must equal d_model // n_head "
                f"({config.d_model} // {config.n_head} = {config.d_head})"
            )
        return config

    def to_dict(self) -> dict[str, Any]:
        """A config.json dict that today's ``transformers`` reads (with the derived ``d_head``)."""
        return {**super().to_dict(), "d_head": self.d_head}

    @property
    def d_head(self) -> int:
        """Width of one attention head."""
        return self.d_model // self.n_head

    @property
    def max_position_embeddings(self) -> int:
        """-1: relative positions put no limit on the length (as in the seed)."""
        return -1
