"""Transformer-XL: the original TensorFlow checkpoints -> a ptfunc directory (TransfoXLLMHeadModel).

Names of kimiyoung/transformer-xl ``tf/model.py`` and the params they become::

    adaptive_embed/lookup_table, proj_W   (div_val == 1: one table; proj_W if d_embed != d_model)
        -> transformer.word_emb.emb_layers.0.weight, emb_projs.0
    adaptive_embed/cutoff_{i}/lookup_table, proj_W   (div_val > 1: one per cluster)
        -> transformer.word_emb.emb_layers.{i}.weight, emb_projs.{i}
    layer_{i}/rel_attn/{qkv,r,o}/kernel    -> transformer.layers.{i}.dec_attn.{qkv,r,o}_net.weight
    layer_{i}/rel_attn/LayerNorm, ff/layer_1, ff/layer_2, ff/LayerNorm
        -> dec_attn.layer_norm, pos_ff.CoreNet.0, pos_ff.CoreNet.3, pos_ff.layer_norm
    r_w_bias, r_r_bias   untie_r: (n_layer, n_head, d_head) -> layers.{i}.dec_attn.r_w_bias...
                         else (n_head, d_head) -> transformer.r_w_bias, r_r_bias (shared)
    adaptive_softmax/cutoff_0/cluster_W, cluster_b   -> crit.cluster_weight, crit.cluster_bias
    adaptive_softmax/cutoff_{i}/b   -> crit.out_layers.{i}.bias
        (div_val == 1: the clusters' biases joined into crit.out_layers.0.bias)
    adaptive_softmax/cutoff_{i}/proj   -> crit.out_projs.{i} (clusters with untied projections)
    adaptive_softmax/bias   -> crit.out_layers.0.bias (no cutoffs)

(every TF name under ``transformer/``).

Kernels and projections are stored ``(in, out)`` and become ``(out, in)``. The
TF softmax always reads the embedding tables (there is no softmax table in a
checkpoint); with ``tie_weight=False`` in the config they are copied into the
head. Without cutoffs, TF's softmax reads the embedding's ``proj_W``, so that
is what ``crit.out_projs.0`` gets. Adam slots (``/Adam``, ``/Adam_1``),
``beta1_power``, ``beta2_power`` and ``global_step`` are skipped.

The original code has no config file (its options are command-line flags):
pass a Transformer-XL config.json (pytorch-transformers 1.0's or today's keys)
with the flags of the run (``n_token``, ``cutoffs``, ``d_model``, ``d_embed``,
``n_head``, ``d_head``, ``d_inner``, ``div_val``, ``n_layer``, ``untie_r``,
``proj_share_all_but_first``...). ``proj_same_dim`` is assumed True (the default).
"""

from __future__ import annotations

import os
from pathlib import Path

from ...archs.transfo_xl import TransfoXLConfig, TransfoXLLMHeadModel
from ..state_dict import expected_shapes
from ._common import Progress, read_file_bytes
from ._tf_names import (
    Source,
    concat,
    convert_checkpoint,
    dense,
    kernel,
    layer_norm,
    open_checkpoint,
    per_layer,
    var,
)

__all__ = ["convert_transfo_xl", "transfo_xl_table"]

_EMB, _SOFTMAX = "transformer/adaptive_embed/", "transformer/adaptive_softmax/"


def _embedding(c: TransfoXLConfig) -> tuple[list[str], list[str | None]]:
    """TF names of the embedding tables and projections, one per cluster (None: no projection)."""
    if c.div_val == 1:
        proj = _EMB + "proj_W" if c.d_embed != c.d_model else None
        return [_EMB + "lookup_table"], [proj]
    clusters = range(c.n_clusters)
    return [f"{_EMB}cutoff_{i}/lookup_table" for i in clusters], [
        f"{_EMB}cutoff_{i}/proj_W" for i in clusters
    ]


def transfo_xl_table(model: TransfoXLLMHeadModel) -> dict[str, Source]:
    """``{TransfoXLLMHeadModel param: TF source}`` for the original checkpoint names."""
    c = model.config
    stored = expected_shapes(model)  # params the model stores (tied copies left out)
    tables, projs = _embedding(c)
    table: dict[str, Source] = {}
    for i, (lookup, proj) in enumerate(zip(tables, projs)):
        table[f"transformer.word_emb.emb_layers.{i}.weight"] = var(lookup)
        if proj is not None:
            table[f"transformer.word_emb.emb_projs.{i}"] = kernel(proj)
    for i in range(c.n_layer):
        tf, pt = f"transformer/layer_{i}/", f"transformer.layers.{i}."
        for net in ("qkv", "r", "o"):
            table[f"{pt}dec_attn.{net}_net.weight"] = kernel(f"{tf}rel_attn/{net}/kernel")
        table.update(layer_norm(f"{tf}rel_attn/LayerNorm", f"{pt}dec_attn.layer_norm"))
        table.update(dense(f"{tf}ff/layer_1", f"{pt}pos_ff.CoreNet.0"))
        table.update(dense(f"{tf}ff/layer_2", f"{pt}pos_ff.CoreNet.3"))
        table.update(layer_norm(f"{tf}ff/LayerNorm", f"{pt}pos_ff.layer_norm"))
    for bias in ("r_w_bias", "r_r_bias"):
        if c.untie_r:
            for i in range(c.n_layer):
                table[f"transformer.layers.{i}.dec_attn.{bias}"] = per_layer(
                    f"transformer/{bias}", i, c.n_layer
                )
        else:
            table[f"transformer.{bias}"] = var(f"transformer/{bias}")
    if not c.cutoffs:
        table["crit.out_layers.0.bias"] = var(_SOFTMAX + "bias")
        if "crit.out_projs.0" in stored:  # TF's softmax reads the embedding projection
            table["crit.out_projs.0"] = kernel(_EMB + "proj_W")
    else:
        cluster = [f"{_SOFTMAX}cutoff_{i}/" for i in range(c.n_clusters)]
        table["crit.cluster_weight"] = var(cluster[0] + "cluster_W")
        table["crit.cluster_bias"] = var(cluster[0] + "cluster_b")
        if c.div_val == 1:
            table["crit.out_layers.0.bias"] = concat(s + "b" for s in cluster)
        else:
            for i, scope in enumerate(cluster):
                table[f"crit.out_layers.{i}.bias"] = var(scope + "b")
        for i, scope in enumerate(cluster):
            if f"crit.out_projs.{i}" in stored:  # a projection of its own (not tied)
                table[f"crit.out_projs.{i}"] = kernel(scope + "proj")
    for i, lookup in enumerate(tables):
        if f"crit.out_layers.{i}.weight" in stored:  # tie_weight=False: copy what TF reads
            table[f"crit.out_layers.{i}.weight"] = var(lookup)
    return table


def _vocab_name(path: str | os.PathLike[str]) -> str:
    """The name ptfunc's TransfoXLTokenizer reads a vocabulary file under."""
    suffix = Path(path).suffix
    return {".json": "vocab.json", ".bin": "vocab.bin"}.get(suffix, "vocab.txt")


def convert_transfo_xl(
    checkpoint: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    *,
    config: str | os.PathLike[str],
    vocab: str | os.PathLike[str] | None = None,
    progress: Progress | None = None,
    strict: bool = True,
) -> Path:
    """Convert an original Transformer-XL TF checkpoint into a ptfunc directory.

    Args:
        checkpoint: the checkpoint prefix (``model.ckpt-0``), its ``.index`` file, or the
            folder holding it.
        output_dir: created (or updated) atomically with ``config.json``,
            ``model.safetensors`` and the vocabulary when given.
        config: a Transformer-XL config.json matching the run (see the module doc).
        vocab: the vocabulary, copied under the name ptfunc's TransfoXLTokenizer reads:
            a text file (one symbol per line, first column; the original ``vocab.txt``
            or 1.0's) -> ``vocab.txt``, a JSON list -> ``vocab.json``, 1.0's pickled
            ``vocab.bin`` -> ``vocab.bin`` (read later without running pickled code).
        progress: ``progress(done, total, variable)`` once per param.
        strict: unknown variables raise (``False``: a warning, and they are left out).

    Returns:
        ``output_dir`` as a Path.

    Example:
        >>> convert_transfo_xl("wt103/model.ckpt-0", "transfo-xl", config="wt103.json",
        ...                    vocab="wt103/vocab.txt")  # doctest: +SKIP
    """
    files = {}
    if vocab is not None:
        files[_vocab_name(vocab)] = read_file_bytes(vocab, "a Transformer-XL vocabulary file")
    model = TransfoXLLMHeadModel(TransfoXLConfig.from_json_file(config))
    ckpt = open_checkpoint(checkpoint)
    return convert_checkpoint(
        ckpt, model, transfo_xl_table(model), output_dir,
        files=files, progress=progress, strict=strict,
    )  # fmt: skip
