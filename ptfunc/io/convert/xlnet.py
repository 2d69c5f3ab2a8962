"""XLNet: the original TensorFlow checkpoints -> a ptfunc directory (LM, classification or QA head).

Names of zihangdai/xlnet (``modeling.py``, ``function_builder.py``) and the params they become::

    model/transformer/word_embedding/lookup_table  -> transformer.word_embedding.weight
    model/transformer/mask_emb/mask_emb            -> transformer.mask_emb (pretraining graphs only)
    model/transformer/layer_{i}/rel_attn/{q,k,v,o,r}/kernel (d_model, n_head, d_head)
        -> transformer.layer.{i}.rel_attn.{q,k,v,o,r} (same layout)
    model/transformer/layer_{i}/rel_attn/LayerNorm, ff/layer_1, ff/layer_2, ff/LayerNorm
    model/transformer/{r_w_bias,r_r_bias,r_s_bias}   untie_r: (n_layer, n_head, d_head), one per
        layer; else (n_head, d_head), copied to each layer
    model/transformer/seg_embed (n_layer, 2, n_head, d_head) -> layer.{i}.rel_attn.seg_embed
    model/lm_loss/bias   -> lm_loss.bias (XLNetLMHeadModel; the decoder is tied)
    model/sequnece_summary/summary/{kernel,bias}   -> sequence_summary.summary (sic)
    model/{classification,regression}_{task}/logit/{kernel,bias}   -> logits_proj
    start_logits/dense, end_logits/dense_0, end_logits/LayerNorm, end_logits/dense_1,
    answer_class/dense_0, answer_class/dense_1 (no bias)   -> the SQuAD head (run_squad.py)

Dense kernels ``(in, out)`` become ``(out, in)``; the attention kernels keep
their layout. ``adam_m``/``adam_v`` slots and ``global_step`` are skipped.

The head follows ``finetuning_task``, as the seed's converter: a GLUE task name
(``GLUE_TASKS_NUM_LABELS``) gives XLNetForSequenceClassification with that many
labels, a name containing ``squad`` gives XLNetForQuestionAnswering, no task the
XLNetLMHeadModel. Beyond the seed: the classification head is read from
``classification_{task}`` or ``regression_{task}`` (the seed read only the latter),
or from the checkpoint's only such head when the scope carries another name
(``run_classifier.py --cls_scope``, ``mnli_matched``...); another task name with
such a head in the checkpoint converts with the head's number of labels; the
summary projection is kept only where the checkpoint has one
(``summary_use_proj``); ``mask_emb``, which fine-tuning graphs do not create, is
zeros in the classification and QA models (it only acts with ``target_mapping``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from ...archs.xlnet import (
    XLNetConfig,
    XLNetForQuestionAnswering,
    XLNetForSequenceClassification,
    XLNetLMHeadModel,
)
from ..tf_checkpoint import TFCheckpoint
from ._common import Progress, read_file_bytes
from ._tf_names import (
    Source,
    convert_checkpoint,
    dense,
    layer_norm,
    open_checkpoint,
    per_layer,
    var,
)

__all__ = ["convert_xlnet", "xlnet_table", "GLUE_TASKS_NUM_LABELS"]

GLUE_TASKS_NUM_LABELS = {
    "cola": 2,
    "mnli": 3,
    "mrpc": 2,
    "sst-2": 2,
    "sts-b": 1,
    "qqp": 2,
    "qnli": 2,
    "rte": 2,
    "wnli": 2,
}
"""The seed's GLUE task -> number of labels (sts-b is a regression)."""

_T = "model/transformer/"
_SUMMARY = "model/sequnece_summary/summary"  # sic: the original's scope name
_LOGIT = re.compile(r"model/(classification|regression)_(.+)/logit/kernel")


def _logit_scope(task: str, ckpt: TFCheckpoint) -> str | None:
    """``model/{classification,regression}_{task}/logit`` if present, else the only such head."""
    for kind in ("classification", "regression"):
        scope = f"model/{kind}_{task.lower()}/logit"
        if scope + "/kernel" in ckpt:
            return scope
    found = [n[: -len("/kernel")] for n in ckpt.names if _LOGIT.fullmatch(n)]
    return found[0] if len(found) == 1 else None


def _head(task: str | None, ckpt: TFCheckpoint) -> tuple[Any, dict[str, Any], str | None]:
    """(model class, config overrides, logit scope) for ``finetuning_task``."""
    if task is None:
        return XLNetLMHeadModel, {}, None
    if "squad" in task.lower():
        return XLNetForQuestionAnswering, {"finetuning_task": task}, None
    scope = _logit_scope(task, ckpt)
    if scope is None:
        if task in GLUE_TASKS_NUM_LABELS:
            heads = [n for n in ckpt.names if _LOGIT.fullmatch(n)]
            raise ValueError(
                f"finetuning_task {task!r} asks for a classification head, but the checkpoint "
                f"has no model/classification_{task}/logit or model/regression_{task}/logit "
                f"variables (logit heads found: {heads or 'none'})"
            )
        return XLNetLMHeadModel, {"finetuning_task": task}, None  # the seed's fallback
    num_labels = GLUE_TASKS_NUM_LABELS.get(task, ckpt.shape(scope + "/kernel")[-1])
    overrides = {
        "finetuning_task": task,
        "num_labels": num_labels,
        "summary_use_proj": _SUMMARY + "/kernel" in ckpt,
    }
    return XLNetForSequenceClassification, overrides, scope


def xlnet_table(model: Any, *, logit_scope: str | None = None) -> dict[str, Source]:
    """``{param: TF source}`` of an XLNet LM, classification or QA model (see the module doc)."""
    c = model.config
    table: dict[str, Source] = {
        "transformer.word_embedding.weight": var(_T + "word_embedding/lookup_table")
    }
    if isinstance(model, XLNetLMHeadModel):
        table["transformer.mask_emb"] = var(_T + "mask_emb/mask_emb")
        table["lm_loss.bias"] = var("model/lm_loss/bias")
    else:  # fine-tuning graphs have no mask_emb: zeros, in the embedding's dtype
        table["transformer.mask_emb"] = Source(
            (_T + "word_embedding/lookup_table",),
            lambda emb: emb.new_zeros(1, 1, emb.shape[-1]),
            "zeros: fine-tuned checkpoints have no mask_emb",
        )
    for i in range(c.n_layer):
        tf, pt = f"{_T}layer_{i}/", f"transformer.layer.{i}."
        for net in ("q", "k", "v", "o", "r"):
            table[f"{pt}rel_attn.{net}"] = var(f"{tf}rel_attn/{net}/kernel")
        table.update(layer_norm(f"{tf}rel_attn/LayerNorm", f"{pt}rel_attn.layer_norm"))
        table.update(dense(f"{tf}ff/layer_1", f"{pt}ff.layer_1"))
        table.update(dense(f"{tf}ff/layer_2", f"{pt}ff.layer_2"))
        table.update(layer_norm(f"{tf}ff/LayerNorm", f"{pt}ff.layer_norm"))
        for bias in ("r_w_bias", "r_r_bias", "r_s_bias"):
            stacked = per_layer(_T + bias, i, c.n_layer)
            table[f"{pt}rel_attn.{bias}"] = stacked if c.untie_r else var(_T + bias)
        table[f"{pt}rel_attn.seg_embed"] = per_layer(_T + "seg_embed", i, c.n_layer)
    if isinstance(model, XLNetForSequenceClassification):
        if c.summary_use_proj:
            table.update(dense(_SUMMARY, "sequence_summary.summary"))
        table.update(dense(logit_scope, "logits_proj"))
    if isinstance(model, XLNetForQuestionAnswering):
        table.update(dense("start_logits/dense", "start_logits.dense"))
        table.update(dense("end_logits/dense_0", "end_logits.dense_0"))
        table.update(layer_norm("end_logits/LayerNorm", "end_logits.LayerNorm"))
        table.update(dense("end_logits/dense_1", "end_logits.dense_1"))
        table.update(dense("answer_class/dense_0", "answer_class.dense_0"))
        table.update(dense("answer_class/dense_1", "answer_class.dense_1", bias=False))
    return table


def _hint(ckpt: TFCheckpoint, task: str | None) -> str:
    """What to try when names do not match: the heads the checkpoint holds."""
    tasks = [m.group(2) for n in ckpt.names if (m := _LOGIT.fullmatch(n))]
    if "start_logits/dense/kernel" in ckpt:
        tasks.append("squad")
    if task is None and tasks:
        return f" It holds a fine-tuned head: pass finetuning_task={' or '.join(map(repr, tasks))}."
    if task is not None and "model/lm_loss/bias" in ckpt:
        return " It holds the pretraining LM head: leave finetuning_task out."
    return ""


def convert_xlnet(
    checkpoint: str | os.PathLike[str],
    config: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    *,
    finetuning_task: str | None = None,
    spiece_model: str | os.PathLike[str] | None = None,
    progress: Progress | None = None,
    strict: bool = True,
) -> Path:
    """Convert an original XLNet TF checkpoint into a ptfunc directory.

    Args:
        checkpoint: the checkpoint prefix (``xlnet_model.ckpt``), its ``.index`` file, or
            the folder holding it.
        config: the original ``xlnet_config.json`` (or a config.json).
        output_dir: created (or updated) atomically with ``config.json``,
            ``model.safetensors`` and ``spiece.model`` when given.
        finetuning_task: picks the head (see the module doc); None: XLNetLMHeadModel.
        spiece_model: the SentencePiece model, copied as ``spiece.model``.
        progress: ``progress(done, total, variable)`` once per param.
        strict: unknown variables raise (``False``: a warning, and they are left out).

    Returns:
        ``output_dir`` as a Path.

    Example:
        >>> convert_xlnet("xlnet_cased_L-12_H-768_A-12/xlnet_model.ckpt",
        ...               "xlnet_cased_L-12_H-768_A-12/xlnet_config.json", "xlnet-base",
        ...               spiece_model="xlnet_cased_L-12_H-768_A-12/spiece.model")  # doctest: +SKIP
    """
    files = {}
    if spiece_model is not None:
        files["spiece.model"] = read_file_bytes(spiece_model, "XLNet's spiece.model")
    base = XLNetConfig.from_json_file(config)
    ckpt = open_checkpoint(checkpoint)
    cls, overrides, scope = _head(finetuning_task, ckpt)
    model = cls(XLNetConfig.from_json_file(config, **overrides) if overrides else base)
    return convert_checkpoint(
        ckpt, model, xlnet_table(model, logit_scope=scope), output_dir,
        files=files, progress=progress, strict=strict, hint=_hint(ckpt, finetuning_task),
    )  # fmt: skip
