"""BERT: google-research TensorFlow checkpoints -> a ptfunc directory (BertForPreTraining).

The original ``modeling.py`` names and layouts, and the params they become::

    bert/embeddings/{word,position,token_type}_embeddings   bert.embeddings.*.weight
    bert/embeddings/LayerNorm/{gamma,beta}                  bert.embeddings.LayerNorm.{weight,bias}
    bert/encoder/layer_{i}/attention/self/{query,key,value}/{kernel,bias}
    bert/encoder/layer_{i}/attention/output/{dense,LayerNorm}
    bert/encoder/layer_{i}/{intermediate,output}/dense, output/LayerNorm
    bert/pooler/dense/{kernel,bias}
    cls/predictions/transform/{dense,LayerNorm}, cls/predictions/output_bias  (masked-LM head)
    cls/seq_relationship/output_weights (2, hidden: NOT transposed), output_bias  (next sentence)

Dense kernels are ``(in, out)`` and become ``(out, in)``. The optimizer slots
(``adam_m``, ``adam_v``, ``AdamWeightDecayOptimizer[_1]``) and ``global_step`` are
skipped; any other variable left over is an error (see :mod:`._tf_names`).
"""

from __future__ import annotations

import os
from pathlib import Path

from ...archs.bert import BertConfig, BertForPreTraining
from ._common import Progress, read_file_bytes
from ._tf_names import Source, convert_checkpoint, dense, layer_norm, open_checkpoint, var

__all__ = ["convert_bert", "bert_table"]

_LAYER_DENSE = (
    ("attention/self/query", "attention.self.query"),
    ("attention/self/key", "attention.self.key"),
    ("attention/self/value", "attention.self.value"),
    ("attention/output/dense", "attention.output.dense"),
    ("intermediate/dense", "intermediate.dense"),
    ("output/dense", "output.dense"),
)
_LAYER_NORMS = (
    ("attention/output/LayerNorm", "attention.output.LayerNorm"),
    ("output/LayerNorm", "output.LayerNorm"),
)


def bert_table(config: BertConfig) -> dict[str, Source]:
    """``{BertForPreTraining param: TF source}`` for google-research checkpoint names."""
    table = {
        f"bert.embeddings.{kind}_embeddings.weight": var(f"bert/embeddings/{kind}_embeddings")
        for kind in ("word", "position", "token_type")
    }
    table.update(layer_norm("bert/embeddings/LayerNorm", "bert.embeddings.LayerNorm"))
    for i in range(config.num_hidden_layers):
        tf, pt = f"bert/encoder/layer_{i}/", f"bert.encoder.layer.{i}."
        for tf_name, pt_name in _LAYER_DENSE:
            table.update(dense(tf + tf_name, pt + pt_name))
        for tf_name, pt_name in _LAYER_NORMS:
            table.update(layer_norm(tf + tf_name, pt + pt_name))
    table.update(dense("bert/pooler/dense", "bert.pooler.dense"))
    table.update(dense("cls/predictions/transform/dense", "cls.predictions.transform.dense"))
    table.update(
        layer_norm("cls/predictions/transform/LayerNorm", "cls.predictions.transform.LayerNorm")
    )
    table["cls.predictions.bias"] = var("cls/predictions/output_bias")
    table["cls.seq_relationship.weight"] = var("cls/seq_relationship/output_weights")
    table["cls.seq_relationship.bias"] = var("cls/seq_relationship/output_bias")
    return table


def convert_bert(
    checkpoint: str | os.PathLike[str],
    config: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    *,
    vocab: str | os.PathLike[str] | None = None,
    progress: Progress | None = None,
    strict: bool = True,
) -> Path:
    """Convert a google-research BERT checkpoint into a ptfunc directory (BertForPreTraining).

    Args:
        checkpoint: the checkpoint prefix (``.../bert_model.ckpt``), its ``.index`` file,
            or the folder holding it.
        config: the original ``bert_config.json``.
        output_dir: created (or updated) atomically with ``config.json``,
            ``model.safetensors`` and, when ``vocab`` is given, ``vocab.txt``.
        vocab: the original ``vocab.txt``, copied unchanged.
        progress: ``progress(done, total, variable)`` once per param.
        strict: variables that are neither weights of the model nor optimizer state raise
            (``False``: a warning, and they are left out).

    Returns:
        ``output_dir`` as a Path.

    Raises:
        FileNotFoundError: a named file is missing.
        ValueError: the config does not fit the checkpoint (the variable is named).

    Example:
        >>> convert_bert("uncased_L-12_H-768_A-12/bert_model.ckpt",
        ...              "uncased_L-12_H-768_A-12/bert_config.json", "bert-base",
        ...              vocab="uncased_L-12_H-768_A-12/vocab.txt")  # doctest: +SKIP
    """
    files = {"vocab.txt": read_file_bytes(vocab, "a BERT vocab.txt")} if vocab else {}
    model = BertForPreTraining(BertConfig.from_json_file(config))
    ckpt = open_checkpoint(checkpoint)
    return convert_checkpoint(
        ckpt, model, bert_table(model.config), output_dir,
        files=files, progress=progress, strict=strict,
    )  # fmt: skip
