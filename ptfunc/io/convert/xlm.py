"""XLM from an original ``facebookresearch/XLM`` checkpoint (``.pth``) to a ptfunc directory.

XLM's trainer saves one dict per checkpoint:

* ``model``: the ``TransformerModel`` state dict (``embeddings.weight``,
  ``attentions.0.q_lin.weight``, ..., ``pred_layer.proj.bias``; ``module.`` in
  front of every name when it was trained with DistributedDataParallel);
* ``params``: every command-line option of the run as a dict, the model's
  (``emb_dim``, ``n_layers``, ``n_heads``, ``n_words``, ``n_langs``, ``lang2id``, ...)
  among training ones, some of them NumPy arrays or tensors;
* ``dico_word2id``, ``dico_id2word``, ``dico_counts``: the vocabulary.

The file is read with ``torch.load(weights_only=True)``; NumPy arrays, dtypes and
scalars are the only objects allowed beyond what that accepts by default (they
are plain data), and only for this load. Anything else (a class, a function, a
pickle that would run code) is refused with the name of the object.

What differs from the seed's ``convert_xlm_checkpoint_to_pytorch`` (which saved
``model`` as it came and dumped all of ``params`` into config.json):

* the weights are renamed for ``XLMWithLMHeadModel`` (``transformer.`` in front of the
  base model's names, as today's ``transformers`` converter does), so the LM head's
  bias is kept; the seed's output loads the base model only and leaves
  ``pred_layer.proj.bias`` at zero;
* ``module.`` prefixes are removed (XLM's own reloading does the same);
* config.json holds the model's fields only, not the training options; the size
  of the position table (512 in every XLM release) comes from the weights;
* the vocabulary rule is the seed's: ids above 13 get ``</w>`` unless they end in
  ``@@``, which is removed.

Adaptive-softmax heads (``asm``), translation checkpoints (``encoder``/``decoder``
instead of ``model``) and untied output embeddings are refused.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ...archs.xlm import XLMConfig, XLMWithLMHeadModel
from ...errors import CheckpointError
from ..pretrained import load_torch_object, pretrained_files
from ..state_dict import from_torch_state_dict
from ._common import Progress, copied_files, report, write_directory

__all__ = ["convert_xlm", "load_xlm_checkpoint", "xlm_config", "xlm_vocab"]

_SPECIAL_WORDS = 14  # <s>, </s>, <pad>, <unk>, <special0> .. <special9>


def convert_xlm(
    checkpoint: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    *,
    merges: str | os.PathLike[str] | None = None,
    progress: Progress | None = None,
) -> Path:
    """Convert an original XLM ``.pth`` into ``output_dir`` (``XLMWithLMHeadModel``).

    Args:
        checkpoint: the ``.pth`` file XLM's trainer saved (e.g. ``mlm_enfr1024.pth``).
        output_dir: created or updated atomically: ``config.json``, ``model.safetensors``,
            ``vocab.json`` and, with ``merges``, ``merges.txt``.
        merges: XLM's BPE codes file (lines ``a b count``), copied as ``merges.txt``.
        progress: called as ``progress(done, total, name)`` per tensor.

    Returns:
        ``output_dir`` as a ``Path``.

    Raises:
        FileNotFoundError: ``checkpoint`` or ``merges`` is missing.
        ValueError: the file is corrupt, holds objects that are not plain data, is not an
            XLM language-model checkpoint, or its weights do not fit its ``params``.

    Example:
        >>> convert_xlm("mlm_enfr1024.pth", "out", merges="codes_enfr")  # doctest: +SKIP
    """
    path = Path(checkpoint)
    chkpt = load_xlm_checkpoint(path)
    state = _state_dict(chkpt, path)
    config = xlm_config(chkpt["params"], state, where=str(path))
    model = XLMWithLMHeadModel(config)
    renamed: dict[str, Tensor] = {}
    total = len(state)
    for i, (name, value) in enumerate(state.items(), start=1):
        renamed[name if name.startswith("pred_layer.") else "transformer." + name] = value
        report(progress, i, total, name)
    try:
        params = from_torch_state_dict(model, renamed, strict=True)
    except ValueError as e:
        raise CheckpointError(
            f"{path}: the weights do not fit the checkpoint's params: {e}"
        ) from None
    files = pretrained_files(model, params)
    files["vocab.json"] = (
        json.dumps(xlm_vocab(chkpt["dico_word2id"]), ensure_ascii=False, indent=2) + "\n"
    )
    files.update(copied_files({"merges.txt": merges}, what="BPE codes file"))
    return write_directory(output_dir, files)


# -- reading ------------------------------------------------------------------------------------


def load_xlm_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The dict of an XLM ``.pth``, read with ``weights_only=True`` plus NumPy data.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: truncated or corrupt, or holding objects other than tensors, plain
            containers, numbers, strings and NumPy arrays/scalars (named in the message).
    """
    chkpt = load_torch_object(path, allow_numpy=True, what="an XLM checkpoint (.pth)")
    if not isinstance(chkpt, dict):
        raise CheckpointError(
            f"{path}: expected XLM's checkpoint dict, got a {type(chkpt).__name__}"
        )
    return chkpt


def _state_dict(chkpt: Mapping[str, Any], path: Path) -> dict[str, Tensor]:
    missing = [k for k in ("model", "params", "dico_word2id") if k not in chkpt]
    if missing:
        hint = (
            " (a translation checkpoint with an encoder and a decoder; only XLM language "
            "models convert)"
            if "encoder" in chkpt
            else ""
        )
        raise CheckpointError(
            f"{path}: expected XLM's checkpoint keys model, params and dico_word2id; "
            f"missing {missing}, found {sorted(map(str, chkpt))}{hint}"
        )
    state = chkpt["model"]
    if not isinstance(state, Mapping) or not all(isinstance(v, Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: 'model' should be a state dict of tensors")
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    state = dict(state)
    out = state.get("pred_layer.proj.weight")
    emb = state.get("embeddings.weight")
    if out is not None and emb is not None and not torch.equal(out, emb):
        raise CheckpointError(
            f"{path}: pred_layer.proj.weight differs from embeddings.weight (trained with "
            "share_inout_emb off); ptfunc's XLMWithLMHeadModel ties them"
        )
    return state


# -- config and vocabulary ----------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """NumPy scalars as Python numbers; tuples as lists."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def xlm_config(
    params: Mapping[str, Any], state: Mapping[str, Tensor], *, where: str = "params"
) -> XLMConfig:
    """An ``XLMConfig`` from XLM's ``params`` (model fields only) and the weights' shapes.

    Training options, tensors and arrays are left out. ``max_position_embeddings``
    is the rows of ``position_embeddings.weight`` (XLM fixes 512) unless ``params``
    says otherwise.
    """
    if not isinstance(params, Mapping):
        raise ValueError(f"{where}: 'params' should be a dict, got {type(params).__name__}")
    if params.get("asm"):
        raise ValueError(
            f"{where}: the checkpoint has an adaptive-softmax output layer (asm=True), "
            "which ptfunc's XLMWithLMHeadModel does not implement"
        )
    if params.get("share_inout_emb") is False:
        raise ValueError(
            f"{where}: share_inout_emb is off (untied output embeddings); "
            "ptfunc's XLMWithLMHeadModel ties them"
        )
    fields = {f.name for f in dataclasses.fields(XLMConfig)} - {"extra", "pruned_heads"}
    known = fields | set(XLMConfig.aliases)
    kwargs = {
        key: _plain(value)
        for key, value in params.items()
        if key in known and not isinstance(value, (Tensor, np.ndarray))
    }
    table = state.get("position_embeddings.weight")
    if "max_position_embeddings" not in kwargs and table is not None:
        kwargs["max_position_embeddings"] = int(table.shape[0])
    try:
        return XLMConfig.from_dict(kwargs)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{where}: the model options in 'params' are not valid: {e}") from None


def xlm_vocab(word2id: Mapping[str, int]) -> dict[str, int]:
    """The seed's vocabulary rule: past the 14 special words, a word gets ``</w>``
    unless it ends in ``@@`` (then ``@@`` is removed).

    Example:
        >>> xlm_vocab({"<s>": 0, "th@@": 14, "e": 15})
        {'<s>': 0, 'th': 14, 'e</w>': 15}
    """
    if not isinstance(word2id, Mapping) or not all(
        isinstance(w, str) and isinstance(i, int) for w, i in word2id.items()
    ):
        raise ValueError("dico_word2id should map words (str) to ids (int)")
    return {
        (w + "</w>" if "@@" not in w and i >= _SPECIAL_WORDS else w.replace("@@", "")): i
        for w, i in word2id.items()
    }
