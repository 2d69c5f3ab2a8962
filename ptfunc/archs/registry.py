"""Find a model class from what a directory says about itself.

``config.json`` names its model in ``architectures`` (today's ``transformers``
and ptfunc) or only by its fields (pytorch-transformers 1.0 wrote neither
``architectures`` nor ``model_type``). :func:`model_class` turns a class name
into the ptfunc class; :func:`architecture_of` reads a config dict.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import (
    albert,
    bert,
    deberta_v2,
    distilbert,
    electra,
    gpt2,
    gpt_neox,
    llama,
    mistral,
    openai_gpt,
    qwen2,
    qwen3,
    roberta,
    transfo_xl,
    xlm,
    xlnet,
)

__all__ = [
    "MODEL_CLASSES",
    "CONFIG_CLASSES",
    "BASE_CLASS",
    "model_class",
    "architecture_of",
    "model_type_of",
]

_MODULES = (
    bert,
    gpt2,
    openai_gpt,
    transfo_xl,
    xlnet,
    xlm,
    llama,
    mistral,
    qwen2,
    qwen3,
    gpt_neox,
    roberta,
    distilbert,
    electra,
    albert,
    deberta_v2,
)

MODEL_CLASSES: dict[str, Any] = {
    name: getattr(module, name)
    for module in _MODULES
    for name in module.__all__
    if isinstance(getattr(module, name), type) and hasattr(getattr(module, name), "config_class")
}
"""``{class name: ptfunc model class}`` for every model of every architecture."""

CONFIG_CLASSES: dict[str, Any] = {
    cls.config_class.model_type: cls.config_class for cls in MODEL_CLASSES.values()
}
"""``{model_type: config class}`` (``bert``, ``gpt2``, ``openai-gpt``, ``transfo-xl``, ...)."""

BASE_CLASS: Mapping[str, str] = {
    "bert": "BertModel",
    "gpt2": "GPT2Model",
    "openai-gpt": "OpenAIGPTModel",
    "transfo-xl": "TransfoXLModel",
    "xlnet": "XLNetModel",
    "xlm": "XLMModel",
    "llama": "LlamaModel",
    "mistral": "MistralModel",
    "qwen2": "Qwen2Model",
    "qwen3": "Qwen3Model",
    "gpt_neox": "GPTNeoXModel",
    "roberta": "RobertaModel",
    "distilbert": "DistilBertModel",
    "electra": "ElectraModel",
    "albert": "AlbertModel",
    "deberta-v2": "DebertaV2Model",
}
"""Head-less class per model type: what a directory without ``architectures`` loads as."""

# Fields that only one architecture's 1.0 config.json has.
_SIGNATURE_FIELDS = (
    ("transfo-xl", ("div_val", "cutoffs")),
    ("xlnet", ("d_head", "untie_r", "bi_data")),
    ("xlm", ("emb_dim", "n_langs")),
    ("openai-gpt", ("afn",)),
    ("gpt2", ("n_embd",)),
    ("bert", ("type_vocab_size", "intermediate_size")),
)


def model_class(name: str) -> Any:
    """The ptfunc class called ``name`` (e.g. ``"BertForMaskedLM"``).

    The seed's class names are today's ``transformers`` names too. Raises
    ``ValueError`` naming the known classes otherwise.

    Example:
        >>> model_class("GPT2LMHeadModel").__name__
        'GPT2LMHeadModel'
    """
    if name in MODEL_CLASSES:
        return MODEL_CLASSES[name]
    raise ValueError(
        f"unknown model class {name!r}; ptfunc has: {', '.join(sorted(MODEL_CLASSES))}"
    )


def model_type_of(config: Mapping[str, Any]) -> str:
    """``model_type`` of a config dict, inferred from its fields for 1.0 files.

    Example:
        >>> model_type_of({"n_embd": 768, "n_layer": 12})
        'gpt2'
    """
    kind = config.get("model_type")
    if kind is not None:
        if kind not in CONFIG_CLASSES:
            raise ValueError(
                f"config.json says model_type {kind!r}; ptfunc knows {sorted(CONFIG_CLASSES)}"
            )
        return str(kind)
    for kind, fields in _SIGNATURE_FIELDS:
        if all(field in config for field in fields):
            return kind
    raise ValueError(
        "cannot tell the architecture of this config.json: it has no model_type and none of "
        "the fields that mark a BERT, GPT, GPT-2, Transformer-XL, XLNet or XLM config"
    )


def architecture_of(config: Mapping[str, Any]) -> Any:
    """The model class a config dict describes: its first known ``architectures`` entry,
    else the base model of its ``model_type`` (inferred for 1.0 files)."""
    for name in config.get("architectures") or ():
        if name in MODEL_CLASSES:
            return MODEL_CLASSES[name]
    return MODEL_CLASSES[BASE_CLASS[model_type_of(config)]]
