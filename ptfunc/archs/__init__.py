"""One module per architecture; each exposes its config and the seed's model classes."""

from . import bert, gpt2, openai_gpt, transfo_xl, xlm, xlnet
from .config import PretrainedConfig
from .model import Model

__all__ = ["bert", "gpt2", "openai_gpt", "transfo_xl", "xlm", "xlnet", "Model", "PretrainedConfig"]
