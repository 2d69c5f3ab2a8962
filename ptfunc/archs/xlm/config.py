"""XLM's configuration."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from ...layers.sequence_summary import SUMMARY_TYPES
from ..config import (
    ACTIVATION,
    COUNT,
    DROPOUT,
    NON_NEGATIVE,
    SIZE,
    ConfigTypeError,
    Floats,
    OneOf,
    PretrainedConfig,
)

__all__ = ["XLMConfig"]


@dataclasses.dataclass(frozen=True)
class XLMConfig(PretrainedConfig):
    """Configuration of the XLM models (defaults: xlm-mlm-en-2048, as in 1.0).

    Field names and positional order follow pytorch-transformers 1.0; its
    ``vocab_size_or_config_json_file`` and ``n_words`` are read as ``vocab_size``,
    today's ``hidden_size``/``num_attention_heads``/``num_hidden_layers`` as
    ``emb_dim``/``n_heads``/``n_layers``, and today's ``bos_token_id``,
    ``eos_token_id``, ``pad_token_id`` as ``bos_index``, ``eos_index``,
    ``pad_index`` (all readable as attributes too). :meth:`to_dict` writes both
    spellings of the special indices. Values are checked as :mod:`ptfunc.archs.config`
    describes.

    Attributes:
        gelu_activation: exact (erf) GELU in the feed-forward; ReLU when False.
        sinusoidal_embeddings: fixed interleaved sin/cos positions, computed in
            ``apply`` (no params leaf; a checkpoint's table is ignored).
        causal: lower-triangular attention (the CLM checkpoints); the only mode
            in which ``cache`` is accepted.
        asm: adaptive softmax in the LM head: not implemented (the LM head refuses
            such a config); ``asm_cutoffs``/``asm_div_value`` are kept for files.
        n_langs, use_lang_emb: a ``lang_embeddings`` table exists when
            ``n_langs > 1 and use_lang_emb`` (``use_lang_emb`` is today's key;
            1.0 had none and always used the table when ``n_langs > 1``).
        embed_init_std, init_std: init std of embeddings and of dense layers.
        is_encoder: False (a decoder) is refused, as in the seed.
        summary_*: the ``SequenceSummary`` of the classification head.
        start_n_top, end_n_top: beam widths of the question-answering head.
        lang2id, id2lang: language name maps of multilingual checkpoints.

    Example:
        >>> c = XLMConfig(vocab_size=99, emb_dim=32, n_layers=2, n_heads=4, n_langs=3)
        >>> XLMConfig.from_dict(c.to_dict()) == c, c.hidden_size, c.n_words
        (True, 32, 99)
    """

    vocab_size: int = 30145
    emb_dim: int = 2048
    n_layers: int = 12
    n_heads: int = 16
    dropout: float = 0.1
    attention_dropout: float = 0.1
    gelu_activation: bool = True
    sinusoidal_embeddings: bool = False
    causal: bool = False
    asm: bool = False
    n_langs: int = 1
    max_position_embeddings: int = 512
    embed_init_std: float = 2048**-0.5
    layer_norm_eps: float = 1e-12
    init_std: float = 0.02
    bos_index: int = 0
    eos_index: int = 1
    pad_index: int = 2
    unk_index: int = 3
    mask_index: int = 5
    is_encoder: bool = True
    summary_type: str = "first"
    summary_use_proj: bool = True
    summary_activation: str | None = None
    summary_proj_to_labels: bool = True
    summary_first_dropout: float = 0.1
    start_n_top: int = 5
    end_n_top: int = 5
    use_lang_emb: bool = dataclasses.field(default=True, kw_only=True)
    asm_cutoffs: tuple[int, ...] | None = dataclasses.field(default=None, kw_only=True)
    asm_div_value: float | None = dataclasses.field(default=None, kw_only=True)
    lang2id: Mapping[str, int] | None = dataclasses.field(default=None, kw_only=True, hash=False)
    id2lang: Mapping[Any, str] | None = dataclasses.field(default=None, kw_only=True, hash=False)

    model_type = "xlm"
    aliases = {
        "n_words": "vocab_size",
        "hidden_size": "emb_dim",
        "num_attention_heads": "n_heads",
        "num_hidden_layers": "n_layers",
        "bos_token_id": "bos_index",
        "eos_token_id": "eos_index",
        "pad_token_id": "pad_index",
    }

    constraints = {
        "vocab_size": SIZE,
        "emb_dim": SIZE,
        "n_layers": SIZE,
        "n_heads": SIZE,
        "dropout": DROPOUT,
        "attention_dropout": DROPOUT,
        "n_langs": SIZE,
        "max_position_embeddings": SIZE,
        "embed_init_std": NON_NEGATIVE,
        "layer_norm_eps": NON_NEGATIVE,
        "init_std": NON_NEGATIVE,
        "bos_index": COUNT,
        "eos_index": COUNT,
        "pad_index": COUNT,
        "unk_index": COUNT,
        "mask_index": COUNT,
        "summary_type": OneOf(SUMMARY_TYPES),
        "summary_activation": ACTIVATION,
        "summary_first_dropout": DROPOUT,
        "start_n_top": SIZE,
        "end_n_top": SIZE,
        "asm_cutoffs": SIZE,
        "asm_div_value": Floats(0, lo_open=True),
    }
    multiples = (("emb_dim", "n_heads"),)
    indices = (("pad_index", "vocab_size"),)
    param_terms = (
        ("vocab_size", "emb_dim"),
        ("max_position_embeddings", "emb_dim"),
        ("n_langs", "emb_dim"),
        (12, "n_layers", "emb_dim", "emb_dim"),
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        lang2id, id2lang = self.lang2id, self.id2lang
        try:
            if lang2id is not None:
                if not all(
                    isinstance(v, int) and not isinstance(v, bool) for v in lang2id.values()
                ):
                    raise TypeError
                object.__setattr__(self, "lang2id", dict(lang2id))
            if id2lang is not None:
                object.__setattr__(self, "id2lang", {int(k): v for k, v in id2lang.items()})
        except (TypeError, ValueError):
            raise ConfigTypeError(
                "XLMConfig.lang2id / id2lang expect {language: index} / {index: language}, "
                f"got {lang2id!r} / {id2lang!r}"
            ) from None
        if self.asm_cutoffs is not None:
            object.__setattr__(self, "asm_cutoffs", tuple(self.asm_cutoffs))

    @property
    def head_dim(self) -> int:
        """Width of one attention head."""
        return self.emb_dim // self.n_heads

    @property
    def has_lang_embeddings(self) -> bool:
        """Whether the model holds (and adds) ``lang_embeddings``."""
        return self.n_langs > 1 and self.use_lang_emb

    def to_dict(self) -> dict[str, Any]:
        """A config.json dict that today's ``transformers`` reads (both index spellings)."""
        d = super().to_dict()
        for name in ("lang2id", "id2lang", "asm_cutoffs", "asm_div_value"):
            if d[name] is None:
                del d[name]
        if "id2lang" in d:
            d["id2lang"] = {str(k): v for k, v in d["id2lang"].items()}
        d["n_words"] = self.vocab_size
        d["bos_token_id"], d["eos_token_id"] = self.bos_index, self.eos_index
        d["pad_token_id"] = self.pad_index
        return d
