"""ptfunc: pytorch-transformers 1.0 models as pure functions over parameter trees.

Example:
    >>> import torch, ptfunc
    >>> from ptfunc.archs import bert
    >>> model = bert.BertModel(bert.BertConfig(vocab_size=50, hidden_size=16,
    ...     num_hidden_layers=1, num_attention_heads=2, intermediate_size=32))
    >>> params = model.init(ptfunc.random.key(0))
    >>> model.apply(params, torch.tensor([[1, 2, 3]])).last_hidden_state.shape
    torch.Size([1, 3, 16])
"""

from . import (
    archs,
    auto,
    distributed,
    errors,
    func,
    hub,
    io,
    layers,
    optim,
    random,
    research,
    tokenize,
    train_state,
    tree,
)
from .archs import Model, PretrainedConfig
from .generation import generate

__version__ = "0.1.0"

__all__ = [
    "archs",
    "auto",
    "distributed",
    "errors",
    "func",
    "hub",
    "io",
    "layers",
    "optim",
    "random",
    "research",
    "tokenize",
    "tree",
    "train_state",
    "generate",
    "Model",
    "PretrainedConfig",
    "__version__",
]
