"""Load by name without naming the class: ``auto.from_pretrained(name, task=...)``.

The class comes from config.json: the model type (``model_type``, or inferred from
the fields of a pytorch-transformers 1.0 file) and the ``task``; without a task, the
first class in ``architectures`` that ptfunc has, else the base model.

Example:
    >>> from ptfunc import auto
    >>> auto.TASKS["masked-lm"]["bert"]
    'BertForMaskedLM'
    >>> model, params = auto.from_pretrained("bert-base-cased", task="masked-lm")  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from . import hub
from .archs.config import read_config_file
from .archs.registry import BASE_CLASS, architecture_of, model_class, model_type_of
from .tree import Params

__all__ = ["TASKS", "model_class_for", "from_pretrained", "config_from_pretrained", "tokenizer"]

TASKS: Mapping[str, Mapping[str, str]] = {
    "base": BASE_CLASS,
    "pretraining": {
        "bert": "BertForPreTraining",
        "electra": "ElectraForPreTraining",
        "albert": "AlbertForPreTraining",
    },
    "masked-lm": {
        "bert": "BertForMaskedLM",
        "xlm": "XLMWithLMHeadModel",
        "roberta": "RobertaForMaskedLM",
        "distilbert": "DistilBertForMaskedLM",
        "electra": "ElectraForMaskedLM",
        "albert": "AlbertForMaskedLM",
        "deberta-v2": "DebertaV2ForMaskedLM",
    },
    "causal-lm": {
        "gpt2": "GPT2LMHeadModel",
        "openai-gpt": "OpenAIGPTLMHeadModel",
        "transfo-xl": "TransfoXLLMHeadModel",
        "xlnet": "XLNetLMHeadModel",
        "xlm": "XLMWithLMHeadModel",
        "llama": "LlamaForCausalLM",
        "mistral": "MistralForCausalLM",
        "qwen2": "Qwen2ForCausalLM",
        "qwen3": "Qwen3ForCausalLM",
        "gpt_neox": "GPTNeoXForCausalLM",
    },
    "next-sentence-prediction": {"bert": "BertForNextSentencePrediction"},
    "sequence-classification": {
        "bert": "BertForSequenceClassification",
        "xlnet": "XLNetForSequenceClassification",
        "xlm": "XLMForSequenceClassification",
        "llama": "LlamaForSequenceClassification",
        "mistral": "MistralForSequenceClassification",
        "qwen2": "Qwen2ForSequenceClassification",
        "qwen3": "Qwen3ForSequenceClassification",
        "gpt_neox": "GPTNeoXForSequenceClassification",
        "roberta": "RobertaForSequenceClassification",
        "distilbert": "DistilBertForSequenceClassification",
        "electra": "ElectraForSequenceClassification",
        "albert": "AlbertForSequenceClassification",
        "deberta-v2": "DebertaV2ForSequenceClassification",
    },
    "token-classification": {
        "bert": "BertForTokenClassification",
        "roberta": "RobertaForTokenClassification",
        "distilbert": "DistilBertForTokenClassification",
        "electra": "ElectraForTokenClassification",
        "albert": "AlbertForTokenClassification",
        "deberta-v2": "DebertaV2ForTokenClassification",
    },
    "question-answering": {
        "bert": "BertForQuestionAnswering",
        "xlnet": "XLNetForQuestionAnswering",
        "xlm": "XLMForQuestionAnswering",
        "roberta": "RobertaForQuestionAnswering",
        "distilbert": "DistilBertForQuestionAnswering",
        "electra": "ElectraForQuestionAnswering",
        "albert": "AlbertForQuestionAnswering",
        "deberta-v2": "DebertaV2ForQuestionAnswering",
    },
    "multiple-choice": {
        "bert": "BertForMultipleChoice",
        "roberta": "RobertaForMultipleChoice",
        "distilbert": "DistilBertForMultipleChoice",
        "electra": "ElectraForMultipleChoice",
        "albert": "AlbertForMultipleChoice",
        "deberta-v2": "DebertaV2ForMultipleChoice",
    },
    "double-heads": {"gpt2": "GPT2DoubleHeadsModel", "openai-gpt": "OpenAIGPTDoubleHeadsModel"},
}
"""``{task: {model type: class name}}``; the tasks :func:`from_pretrained` accepts."""


def model_class_for(config: Mapping[str, Any], task: str | None = None) -> Any:
    """The ptfunc model class for a config.json dict and a task (see the module docstring).

    Raises:
        ValueError: an unknown task, or a model type that has no class for the task.

    Example:
        >>> model_class_for({"model_type": "gpt2"}, "causal-lm").__name__
        'GPT2LMHeadModel'
    """
    if task is None:
        return architecture_of(config)
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
    kind = model_type_of(config)
    name = TASKS[task].get(kind)
    if name is None:
        have = [t for t, classes in TASKS.items() if kind in classes]
        raise ValueError(f"a {kind!r} model has no {task!r} head; it has: {', '.join(have)}")
    return model_class(name)


def _config_dict(name_or_path: str | os.PathLike[str], options: hub.HubOptions) -> dict[str, Any]:
    return read_config_file(hub.fetch(name_or_path, ["config.json"], options=options))


def from_pretrained(
    name_or_path: str | os.PathLike[str], task: str | None = None, **kwargs: Any
) -> tuple[Any, Params]:
    """``(model, params)`` of the class config.json and ``task`` name.

    ``kwargs`` are those of :func:`ptfunc.io.from_pretrained` (``revision=``, ``dtype=``,
    ``device=``, config overrides...).
    """
    from .io import from_pretrained as load

    options = hub.HubOptions.pop_from(dict(kwargs))
    cls = model_class_for(_config_dict(name_or_path, options), task)
    return load(name_or_path, cls, **kwargs)


def config_from_pretrained(name_or_path: str | os.PathLike[str], **kwargs: Any) -> Any:
    """The config (of the right class) of a directory, shortcut name or repo id."""
    options = hub.HubOptions.pop_from(kwargs)
    config = _config_dict(name_or_path, options)
    return architecture_of(config).config_class.from_dict(config, **kwargs)


def tokenizer(name_or_path: str | os.PathLike[str], kind: str | None = None, **kwargs: Any) -> Any:
    """The tokenizer of a directory, shortcut name or repo id, whichever family it is."""
    from .tokenize.auto import load_tokenizer

    return load_tokenizer(name_or_path, kind, **kwargs)
