"""Generate the TensorFlow tensor-bundle fixtures under ``tests/data/checkpoints/bundle/``.

Environment: a Python with ``tensorflow`` (CPU build is enough) and ``numpy``, e.g.
``/tmp/venv-tf/bin/python tests/gen_checkpoints_bundle.py``. The tests that read these
fixtures never need TensorFlow.

Each fixture folder holds a checkpoint written by TensorFlow itself plus
``expected.json`` (name -> dtype, shape, key into the ``.npz``) and ``expected.npz``
(the values the generator assigned, written by numpy; bfloat16 values are stored as
their uint16 bit patterns, string tensors as latin-1 text lists in the JSON):

* ``dtypes/``: ``tf.compat.v1.train.Saver`` (graph mode) over variables of every
  common dtype, scalars, 1-D to 4-D, an empty tensor, BERT-style slash names.
* ``partitioned/``: variables made with ``fixed_size_partitioner`` (axis 0 and 1)
  and ``variable_axis_size_partitioner``, saved by a Saver as slices.
* ``sharded/``: ``Saver(sharded=True)`` over variables placed on two logical CPU
  devices, giving ``model.ckpt.data-00000-of-00002`` and ``-00001-of-00002``.
* ``object_graph/``: a TF2 ``tf.train.Checkpoint`` (keys ``.../.ATTRIBUTES/VARIABLE_VALUE``
  and the string tensor ``_CHECKPOINTABLE_OBJECT_GRAPH``) with a string variable.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent / "data" / "checkpoints" / "bundle"


def _bf16_round(x: np.ndarray) -> np.ndarray:
    """float32 values exactly representable in bfloat16 (low 16 bits cleared)."""
    bits = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32) & np.uint32(0xFFFF0000)
    return bits.view(np.float32)


def _values(rng: np.random.Generator) -> dict[str, tuple[str, np.ndarray]]:
    """name -> (TF dtype name, value as a numpy array; bfloat16 given as float32)."""
    f32 = lambda *s: rng.standard_normal(s).astype(np.float32)  # noqa: E731
    return {
        "bert/embeddings/word_embeddings": ("float32", f32(20, 8)),
        "bert/encoder/layer_0/attention/self/query/kernel": ("float32", f32(8, 8)),
        "bert/encoder/layer_0/attention/self/query/bias": ("float32", f32(8)),
        "conv/kernel_4d": ("float32", f32(2, 3, 2, 4)),
        "scalar/float32": ("float32", np.array(3.25, dtype=np.float32)),
        "scalar/int64": ("int64", np.array(-(2**40) - 7, dtype=np.int64)),
        "types/float16": ("float16", rng.standard_normal((3, 5)).astype(np.float16)),
        "types/bfloat16": ("bfloat16", _bf16_round(f32(4, 6))),
        "types/float64": ("float64", rng.standard_normal((2, 3, 4))),
        "types/int32": ("int32", rng.integers(-(2**31), 2**31, (7,), dtype=np.int32)),
        "types/int64": ("int64", rng.integers(-(2**62), 2**62, (2, 5), dtype=np.int64)),
        "types/int8": ("int8", rng.integers(-128, 128, (9,), dtype=np.int8)),
        "types/uint8": ("uint8", rng.integers(0, 256, (3, 3), dtype=np.uint8)),
        "types/bool": ("bool", rng.integers(0, 2, (2, 4)).astype(bool)),
        "types/empty": ("float32", np.zeros((0, 3), dtype=np.float32)),
        "global_step": ("int64", np.array(1234, dtype=np.int64)),
    }


def _write_expected(folder: Path, values: dict[str, tuple[str, object]]) -> None:
    meta, arrays = {}, {}
    for i, (name, (dtype, value)) in enumerate(sorted(values.items())):
        if dtype == "string":
            shape, strings = value
            meta[name] = {"dtype": dtype, "shape": list(shape), "strings_latin1": strings}
            continue
        key = f"t{i}"
        array = np.asarray(value)
        if dtype == "bfloat16":
            array = (array.astype(np.float32).view(np.uint32) >> 16).astype(np.uint16)
        meta[name] = {"dtype": dtype, "shape": list(array.shape), "key": key}
        arrays[key] = array
    (folder / "expected.json").write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
    np.savez(folder / "expected.npz", **arrays)


def _fresh(name: str) -> Path:
    folder = OUT / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


def _save_v1(tf, folder: Path, build, **saver_kwargs) -> None:
    """Build variables in a fresh graph, initialise them, save with a V2-format Saver."""
    graph = tf.Graph()
    with graph.as_default():
        build()
        saver = tf.compat.v1.train.Saver(
            write_version=tf.compat.v1.train.SaverDef.V2, **saver_kwargs
        )
        config = tf.compat.v1.ConfigProto(device_count={"CPU": 2})
        with tf.compat.v1.Session(graph=graph, config=config) as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            saver.save(sess, str(folder / "model.ckpt"), write_meta_graph=False)
    # TF writes absolute paths into the state file; keep the fixture relocatable.
    (folder / "checkpoint").write_text(
        'model_checkpoint_path: "model.ckpt"\nall_model_checkpoint_paths: "model.ckpt"\n'
    )


def _tf_value(tf, dtype: str, value: np.ndarray):
    if dtype == "bfloat16":
        return tf.cast(tf.constant(value, dtype=tf.float32), tf.bfloat16)
    return tf.constant(value, dtype=getattr(tf, dtype))


def gen_dtypes(tf) -> None:
    folder = _fresh("dtypes")
    values = _values(np.random.default_rng(7))

    def build():
        for name, (dtype, value) in values.items():
            tf.compat.v1.get_variable(
                name, initializer=_tf_value(tf, dtype, value), use_resource=True
            )

    _save_v1(tf, folder, build)
    _write_expected(folder, values)


def _slice_initializer(tf, tf_dtype: str, full: np.ndarray):
    """An initializer giving each partition its part of ``full``."""

    def init(shape, dtype=None, partition_info=None):  # noqa: ARG001
        offsets = partition_info.var_offset if partition_info else [0] * len(shape)
        part = full[tuple(slice(o, o + n) for o, n in zip(offsets, shape))]
        return _tf_value(tf, tf_dtype, part)

    return init


def gen_partitioned(tf) -> None:
    folder = _fresh("partitioned")
    rng = np.random.default_rng(11)
    values = {
        "part/rows": ("float32", rng.standard_normal((7, 4)).astype(np.float32)),
        "part/cols": ("float32", rng.standard_normal((3, 10)).astype(np.float32)),
        "part/int_rows": ("int32", rng.integers(-100, 100, (5, 2, 3), dtype=np.int32)),
        "part/bf16_rows": ("bfloat16", _bf16_round(rng.standard_normal((6, 2)))),
        "plain/bias": ("float32", rng.standard_normal(4).astype(np.float32)),
    }
    partitioners = {
        "part/rows": tf.compat.v1.fixed_size_partitioner(3, axis=0),
        "part/cols": tf.compat.v1.fixed_size_partitioner(4, axis=1),
        "part/int_rows": tf.compat.v1.fixed_size_partitioner(2, axis=0),
        "part/bf16_rows": tf.compat.v1.fixed_size_partitioner(3, axis=0),
        "plain/bias": None,
    }

    def build():
        for name, (dtype, value) in values.items():
            tf.compat.v1.get_variable(
                name,
                shape=value.shape,
                dtype=getattr(tf, dtype),
                initializer=_slice_initializer(tf, dtype, value),
                partitioner=partitioners[name],
            )

    _save_v1(tf, folder, build)
    _write_expected(folder, values)


def gen_sharded(tf) -> None:
    folder = _fresh("sharded")
    rng = np.random.default_rng(13)
    values = {
        "dev0/kernel": ("float32", rng.standard_normal((5, 3)).astype(np.float32)),
        "dev0/bias": ("float32", rng.standard_normal(3).astype(np.float32)),
        "dev1/kernel": ("float16", rng.standard_normal((4, 2)).astype(np.float16)),
        "dev1/step": ("int64", np.array(42, dtype=np.int64)),
    }

    def build():
        for name, (dtype, value) in values.items():
            with tf.device("/cpu:0" if name.startswith("dev0") else "/cpu:1"):
                tf.compat.v1.get_variable(name, initializer=_tf_value(tf, dtype, value))

    _save_v1(tf, folder, build, sharded=True)
    _write_expected(folder, values)


def gen_object_graph(tf) -> None:
    folder = _fresh("object_graph")
    rng = np.random.default_rng(17)
    dense = rng.standard_normal((3, 2)).astype(np.float32)
    words = [b"hello", b"", b"\x00\xffbytes", "w\u00f6rd".encode()]
    module = tf.Module()
    module.dense = tf.Variable(dense)
    module.words = tf.Variable(words)
    prefix = tf.train.Checkpoint(model=module).write(str(folder / "ckpt"))
    reader = tf.train.load_checkpoint(prefix)
    values = {}
    for name in reader.get_variable_to_shape_map():
        if name.endswith("dense/.ATTRIBUTES/VARIABLE_VALUE"):
            values[name] = ("float32", dense)
        elif name.endswith("words/.ATTRIBUTES/VARIABLE_VALUE"):
            values[name] = ("string", ((len(words),), [w.decode("latin-1") for w in words]))
    # The object graph is a serialized proto: stored as TF reads it back.
    graph = reader.get_tensor("_CHECKPOINTABLE_OBJECT_GRAPH")
    values["_CHECKPOINTABLE_OBJECT_GRAPH"] = ("string", ((), [graph.decode("latin-1")]))
    _write_expected(folder, values)


def main() -> None:
    import tensorflow as tf

    tf.config.set_logical_device_configuration(
        tf.config.list_physical_devices("CPU")[0],
        [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()],
    )
    gen_object_graph(tf)
    gen_dtypes(tf)
    gen_partitioned(tf)
    gen_sharded(tf)
    print(f"wrote {sorted(p.name for p in OUT.iterdir())} under {OUT}", file=sys.stderr)


if __name__ == "__main__":
    main()
