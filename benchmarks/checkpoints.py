"""Reading checkpoints: ptfunc's TensorFlow reader and converter against their peers.

    python benchmarks/checkpoints.py [--repeats 3] [--quick]
    /path/to/venv-tf/bin/python benchmarks/checkpoints.py   # adds TensorFlow's own reader

Rows (ratios of medians, interleaved in the same run):

* CRC-32C of 64 MB in numpy (``ptfunc.io._crc32c``) / ``zlib.crc32`` (CRC-32 in C, the
  same amount of work): what checksum verification costs without a C extension;
* read every tensor of a BERT-base-sized TF checkpoint (checksums verified) /
  ``torch.load`` of the same tensors saved as ``pytorch_model.bin``;
* the same read / ``safetensors`` loading the same tensors (copied, so every byte is read);
* (TensorFlow installed) the same read / ``tf.train.load_checkpoint`` + ``get_tensor`` of all;
* ``convert_bert`` (read, map, write ``model.safetensors``) / ``torch.load`` + ``save_pretrained``
  of the same model (what a user pays to start from TF instead of a PyTorch file).

The checkpoint is written by the bundle writer of ``tests/gen_checkpoints_bundle.py`` under
BERT's original names (random values; no TensorFlow needed).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import zlib
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))
from _timing import Row, format_table, time_interleaved  # noqa: E402
from gen_checkpoints_bundle import write_bundle  # noqa: E402

import ptfunc  # noqa: E402
from ptfunc.archs import bert  # noqa: E402
from ptfunc.cli._inspect import human_bytes  # noqa: E402
from ptfunc.io import convert, load_tf_checkpoint  # noqa: E402
from ptfunc.io._crc32c import crc32c  # noqa: E402
from ptfunc.io.convert.bert import bert_table  # noqa: E402

DT_FLOAT = 1


def _config(quick: bool) -> bert.BertConfig:
    if quick:
        return bert.BertConfig(
            vocab_size=1000, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
            intermediate_size=128,
        )  # fmt: skip
    return bert.BertConfig()  # BERT-base: 110M params, 440 MB in float32


def _write_tf_checkpoint(folder: Path, config: bert.BertConfig) -> Path:
    """BERT's original variables (BertForPreTraining) with random values, as a TF bundle."""
    model = bert.BertForPreTraining(config)
    shapes = ptfunc.io.expected_shapes(model)
    rng = np.random.default_rng(0)
    tensors = {}
    for param, source in bert_table(config).items():
        shape = tuple(shapes[param])
        if source.what == "transposed":
            shape = shape[::-1]
        array = rng.standard_normal(shape, dtype=np.float32)
        tensors[source.names[0]] = (DT_FLOAT, shape, array.tobytes())
    prefix = folder / "bert_model.ckpt"
    write_bundle(prefix, tensors)
    (folder / "bert_config.json").write_text(json.dumps(config.to_dict()))
    return prefix


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []

    blob = np.random.default_rng(1).integers(0, 256, (4 if args.quick else 64) << 20, np.uint8)
    data = blob.tobytes()
    ours, peer = time_interleaved(
        [lambda: crc32c(data), lambda: zlib.crc32(data)], repeats=args.repeats
    )
    rows.append(Row(f"crc32c numpy {len(data) >> 20} MB / zlib.crc32 (C)", ours, peer))

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        config = _config(args.quick)
        prefix = _write_tf_checkpoint(folder, config)
        converted = convert.convert_bert(prefix, folder / "bert_config.json", folder / "ptfunc")
        model, params = ptfunc.io.from_pretrained(folder / "ptfunc", bert.BertForPreTraining)
        state = ptfunc.io.to_torch_state_dict(model, params, include_tied=False)
        torch.save(state, folder / "pytorch_model.bin")
        size = human_bytes(sum(t.numel() * t.element_size() for t in state.values()))
        what = f"BERT{'-tiny' if args.quick else '-base'} ({size})"

        def read_tf():
            return load_tf_checkpoint(prefix)

        def read_bin():
            return torch.load(folder / "pytorch_model.bin", weights_only=True)

        def read_safetensors():  # safetensors maps the file lazily: copy to read every byte
            return {
                k: v.clone()
                for k, v in ptfunc.io.load_flat(converted / "model.safetensors").items()
            }

        ours, peer = time_interleaved([read_tf, read_bin], repeats=args.repeats)
        rows.append(Row(f"read TF checkpoint {what} / torch.load .bin", ours, peer))
        ours, peer = time_interleaved([read_tf, read_safetensors], repeats=args.repeats)
        rows.append(Row(f"read TF checkpoint {what} / safetensors load", ours, peer))
        try:
            import tensorflow as tf
        except ImportError:
            tf = None
        if tf is not None:

            def read_with_tf():
                reader = tf.train.load_checkpoint(str(prefix))
                return {n: reader.get_tensor(n) for n in reader.get_variable_to_shape_map()}

            ours, peer = time_interleaved([read_tf, read_with_tf], repeats=args.repeats)
            rows.append(Row(f"read TF checkpoint {what} / TensorFlow reader", ours, peer))

        def convert_tf():
            convert.convert_bert(prefix, folder / "bert_config.json", folder / "out-tf")

        def convert_bin():
            m, p = ptfunc.io.from_pretrained(folder / "bin", bert.BertForPreTraining)
            ptfunc.io.save_pretrained(folder / "out-bin", m, p)

        (folder / "bin").mkdir()
        os.link(folder / "pytorch_model.bin", folder / "bin" / "pytorch_model.bin")
        (folder / "bin" / "config.json").write_text((converted / "config.json").read_text())
        ours, peer = time_interleaved([convert_tf, convert_bin], repeats=args.repeats)
        rows.append(Row(f"convert_bert {what} / .bin -> save_pretrained", ours, peer))

    print(format_table(rows, peer="peer"))


if __name__ == "__main__":
    main()
