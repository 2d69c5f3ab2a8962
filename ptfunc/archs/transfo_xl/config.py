"""Transformer-XL's configuration."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from ...layers.adaptive_embedding import cluster_bounds, cluster_dims
from ..config import COUNT, DROPOUT, NON_NEGATIVE, SIZE, ConfigError, OneOf, PretrainedConfig

__all__ = ["TransfoXLConfig"]


@dataclasses.dataclass(frozen=True)
class TransfoXLConfig(PretrainedConfig):
    """Configuration of the Transformer-XL models (defaults: transfo-xl-wt103, 257M).

    Field names and positional order follow pytorch-transformers 1.0, whose first
    argument (``vocab_size_or_config_json_file``, stored as ``n_token``) is
    ``vocab_size`` here; ``n_token`` is read as an alias and is a property.
    transformers 4.x's ``tie_word_embeddings`` is read as ``tie_weight``, its
    ``hidden_size``/``num_attention_heads``/``num_hidden_layers`` as ``d_model``/
    ``n_head``/``n_layer``.

    Values are checked as :mod:`ptfunc.archs.config` describes (sizes in ``[1, 2**24]``,
    ``cutoffs`` increasing within the vocabulary, ``d_model`` even...).

    Attributes:
        vocab_size: number of tokens (``n_token``).
        cutoffs: cluster boundaries of the adaptive input and softmax.
        d_model: hidden width; d_embed: width of the first embedding cluster.
        n_head, d_head: heads and their width (``n_head * d_head`` need not be ``d_model``).
        d_inner: feed-forward width. div_val: width divisor between clusters.
        pre_lnorm: LayerNorm before each sublayer instead of after the residual.
        n_layer: layers. tgt_len: segment length (informational, as in 1.0).
        ext_len: tokens at the end of a segment kept out of the next memory.
        mem_len: memory length kept per layer. clamp_len: relative distances
            beyond it share one position embedding (``<= 0``: no clamping).
        same_length: every query attends to the same number of keys.
        proj_share_all_but_first: tail clusters of the softmax share the
            input projections; stored as ``tie_projs`` (one flag per cluster).
        attn_type: 0 = relative attention (the only pretrained one, the only
            one ptfunc models build; 1-3 are read but refused by the models).
        sample_softmax: > 0 asks for sampled softmax in training (refused by
            the LM head, see ``ptfunc.archs.transfo_xl.model``).
        adaptive: kept for file compatibility (1.0 always builds the adaptive softmax).
        tie_weight: the softmax's cluster tables are the embedding tables.
        dropout, dropatt: dropout on activations and on attention probabilities.
        untie_r: one pair of position biases per layer (else one shared pair).
        init: "normal" (N(0, init_std)) or "uniform" (U(-init_range, init_range)).
        proj_init_std: std of the projections. init_std: also the std of the
            LayerNorm weights around 1.
        layer_norm_epsilon: 1e-12 (1.0's BertLayerNorm) unless the file says
            otherwise (transformers 4.x writes 1e-5).
        tie_projs: per-cluster projection ties; derived from
            ``proj_share_all_but_first`` unless given (1.0 and 4.x files store it).
    """

    vocab_size: int = 267735
    cutoffs: tuple[int, ...] = (20000, 40000, 200000)
    d_model: int = 1024
    d_embed: int = 1024
    n_head: int = 16
    d_head: int = 64
    d_inner: int = 4096
    div_val: int = 4
    pre_lnorm: bool = False
    n_layer: int = 18
    tgt_len: int = 128
    ext_len: int = 0
    mem_len: int = 1600
    clamp_len: int = 1000
    same_length: bool = True
    proj_share_all_but_first: bool = True
    attn_type: int = 0
    sample_softmax: int = -1
    adaptive: bool = True
    tie_weight: bool = True
    dropout: float = 0.1
    dropatt: float = 0.0
    untie_r: bool = True
    init: str = "normal"
    init_range: float = 0.01
    proj_init_std: float = 0.01
    init_std: float = 0.02
    layer_norm_epsilon: float = 1e-12
    tie_projs: tuple[bool, ...] | None = None

    model_type = "transfo-xl"
    aliases = {
        "n_token": "vocab_size",
        "tie_word_embeddings": "tie_weight",
        "hidden_size": "d_model",
        "num_attention_heads": "n_head",
        "num_hidden_layers": "n_layer",
    }

    constraints = {
        "vocab_size": SIZE,
        "cutoffs": SIZE,
        "d_model": SIZE,
        "d_embed": SIZE,
        "n_head": SIZE,
        "d_head": SIZE,
        "d_inner": SIZE,
        "div_val": SIZE,
        "n_layer": SIZE,
        "tgt_len": COUNT,
        "ext_len": COUNT,
        "mem_len": COUNT,
        "attn_type": OneOf((0, 1, 2, 3)),
        "dropout": DROPOUT,
        "dropatt": DROPOUT,
        "init": OneOf(("normal", "uniform")),
        "init_range": NON_NEGATIVE,
        "proj_init_std": NON_NEGATIVE,
        "init_std": NON_NEGATIVE,
        "layer_norm_epsilon": NON_NEGATIVE,
    }
    multiples = (("d_model", 2),)  # sinusoid positions
    param_terms = (
        (2, "vocab_size", "d_embed"),  # adaptive input and softmax, at most
        (5, "n_layer", "n_head", "d_head", "d_model"),
        (2, "n_layer", "d_model", "d_inner"),
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "cutoffs", tuple(self.cutoffs))
        n_clusters = len(self.cutoffs) + 1
        if self.tie_projs is None:
            ties = (False,) + (self.proj_share_all_but_first,) * len(self.cutoffs)
            object.__setattr__(self, "tie_projs", ties)
        else:
            object.__setattr__(self, "tie_projs", tuple(self.tie_projs))
        if len(self.tie_projs) != n_clusters:
            raise ConfigError(
                f"TransfoXLConfig.tie_projs needs one flag per cluster ({n_clusters} for cutoffs "
                f"{list(self.cutoffs)}), got {list(self.tie_projs)}"
            )
        if self.div_val > 1 and n_clusters - 1 > self.d_embed.bit_length():  # before div_val**i
            raise ConfigError(
                f"TransfoXLConfig: d_embed={self.d_embed} with div_val={self.div_val} leaves "
                f"empty cluster widths for {n_clusters} clusters"
            )
        try:
            cluster_bounds(self.vocab_size, self.cutoffs)
            cluster_dims(self.d_embed, self.div_val, n_clusters)
        except ValueError as error:
            raise ConfigError(f"TransfoXLConfig: {error}") from None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], **overrides: Any) -> TransfoXLConfig:
        """Read a 1.0 or transformers 4.x config.json dict (``overrides`` win).

        When a file has both names of a field, the newer one wins: ``vocab_size``
        over ``n_token``, ``tie_word_embeddings`` (what 4.x models obey) over ``tie_weight``.
        """
        cls._check_mapping(d)
        d = dict(d)
        if "tie_projs" in d and "proj_share_all_but_first" not in d:  # files store only tie_projs
            d["proj_share_all_but_first"] = all(d["tie_projs"][1:])
        for old, new in (("n_token", "vocab_size"), ("tie_weight", "tie_word_embeddings")):
            if old in d and new in d:
                d.pop(old)
        return super().from_dict(d, **overrides)

    def to_dict(self) -> dict[str, Any]:
        """config.json that transformers 4.x and pytorch-transformers 1.0 both read back.

        Both names of the renamed fields are written (``n_token`` for 1.0,
        ``tie_word_embeddings`` for 4.x).
        """
        d = super().to_dict()
        d["n_token"] = self.vocab_size
        d["tie_word_embeddings"] = self.tie_weight
        return d

    def replace(self, **changes: Any) -> TransfoXLConfig:
        """A copy with some fields changed; ``tie_projs`` is derived again when
        ``cutoffs`` or ``proj_share_all_but_first`` change and it is not given."""
        if "tie_projs" not in changes and (
            "cutoffs" in changes or "proj_share_all_but_first" in changes
        ):
            changes["tie_projs"] = None
        return dataclasses.replace(self, **changes)

    @property
    def max_position_embeddings(self) -> int:
        """1.0's ``tgt_len + ext_len + mem_len`` (positions are sinusoids: no hard limit)."""
        return self.tgt_len + self.ext_len + self.mem_len

    @property
    def n_clusters(self) -> int:
        """Clusters of the adaptive input and softmax (the shortlist included)."""
        return len(self.cutoffs) + 1

    @property
    def has_projections(self) -> bool:
        """Whether the adaptive input/softmax carry projection matrices."""
        return self.div_val != 1 or self.d_model != self.d_embed
