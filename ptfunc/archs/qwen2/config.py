"""Qwen2's configuration: Llama's blocks with q/k/v biases and optional sliding windows."""

from __future__ import annotations

import dataclasses

from ..config import COUNT, SIZE
from ..decoder.config import DecoderConfig

__all__ = ["Qwen2Config", "QwenConfigBase"]


@dataclasses.dataclass(frozen=True)
class QwenConfigBase(DecoderConfig):
    """The fields Qwen2 and Qwen3 share (defaults of both): Qwen's vocabulary and sliding
    windows. Sliding windows are off unless ``use_sliding_window``; then the layers that
    ``layer_types`` marks ``"sliding_attention"`` (by default those from
    ``max_window_layers`` on) attend to the last ``sliding_window`` positions."""

    vocab_size: int = 151936
    intermediate_size: int = 22016
    num_key_value_heads: int | None = 32
    max_position_embeddings: int = 32768
    bos_token_id: int | None = None
    eos_token_id: int | tuple[int, ...] | None = None
    use_sliding_window: bool = False
    sliding_window: int | None = 4096
    max_window_layers: int = 28
    layer_types: tuple[str, ...] | None = None

    constraints = {"sliding_window": SIZE, "max_window_layers": COUNT}

    def __post_init__(self) -> None:
        super().__post_init__()
        self._check_layer_types(self.layer_types)

    def sliding_windows(self) -> tuple[int | None, ...]:
        window = self.sliding_window if self.use_sliding_window else None
        if window is None:
            return (None,) * self.num_hidden_layers
        kinds = self.layer_types or tuple(
            "sliding_attention" if i >= self.max_window_layers else "full_attention"
            for i in range(self.num_hidden_layers)
        )
        return tuple(window if kind == "sliding_attention" else None for kind in kinds)


@dataclasses.dataclass(frozen=True)
class Qwen2Config(QwenConfigBase):
    """Configuration of the Qwen2 / Qwen2.5 models (defaults: Qwen2-7B), config.json's names.

    q/k/v projections have biases, the output projection none; sliding windows as
    :class:`QwenConfigBase`.

    Example:
        >>> c = Qwen2Config(vocab_size=99, hidden_size=32, intermediate_size=64,
        ...                 num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2,
        ...                 use_sliding_window=True, sliding_window=8, max_window_layers=1)
        >>> c.sliding_windows(), c.attention_biases()
        ((None, 8, 8), (True, False))
    """

    model_type = "qwen2"

    def attention_biases(self) -> tuple[bool, bool]:
        return True, False
