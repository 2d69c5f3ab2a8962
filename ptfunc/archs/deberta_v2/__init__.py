"""DeBERTa-v2/v3 (He et al., 2020/2021): config, base model and the five transformers heads.

Disentangled attention with relative positions (log buckets, c2p and p2c terms, shared
keys) lives in :mod:`ptfunc.layers.disentangled_attention`.

Example:
    >>> import torch, ptfunc
    >>> from ptfunc.archs import deberta_v2
    >>> config = deberta_v2.DebertaV2Config(
    ...     vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
    ...     intermediate_size=37, relative_attention=True, position_buckets=8,
    ...     max_relative_positions=64, pos_att_type=("p2c", "c2p"), share_att_key=True,
    ...     norm_rel_ebd="layer_norm", position_biased_input=False)
    >>> model = deberta_v2.DebertaV2ForMaskedLM(config)
    >>> params = model.init(ptfunc.random.key(0))
    >>> out = model.apply(params, torch.tensor([[2, 5, 7]]))
    >>> out.logits.shape
    torch.Size([1, 3, 99])
"""

from .config import DebertaV2Config
from .heads import (
    DebertaV2ForMaskedLM,
    DebertaV2ForMultipleChoice,
    DebertaV2ForQuestionAnswering,
    DebertaV2ForSequenceClassification,
    DebertaV2ForTokenClassification,
)
from .model import BaseModelOutput, DebertaV2Model

__all__ = [
    "DebertaV2Config",
    "DebertaV2Model",
    "DebertaV2ForMaskedLM",
    "DebertaV2ForSequenceClassification",
    "DebertaV2ForMultipleChoice",
    "DebertaV2ForTokenClassification",
    "DebertaV2ForQuestionAnswering",
    "BaseModelOutput",
]
