"""Generate the TensorFlow tensor-bundle fixtures under ``tests/data/checkpoints/bundle/``.

Environment: a Python with ``tensorflow`` (CPU build is enough), ``numpy`` and
``cramjam`` (Snappy), e.g.
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
* ``big_endian/`` and ``snappy/``: the tensors of ``dtypes/`` (other random values) plus a
  string tensor, written by :func:`write_bundle` below as a big-endian bundle, and as an
  index whose blocks are all Snappy-compressed (as TensorFlow 1.1 could write); the
  generator asserts that TensorFlow reads both back exactly.
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


# -- a minimal tensor-bundle writer (for fixtures TF's Python API cannot make, and for
#    crafted test cases); the generator checks that TensorFlow reads what it writes.

MAGIC = 0xDB4775248B80FB57


def varint(value: int) -> bytes:
    """Base-128 varint of a non-negative int (negative int64: two's complement, 10 bytes)."""
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def field(number: int, value: int | bytes, fixed32: bool = False) -> bytes:
    """One protobuf field: varint, fixed32 or length-delimited (bytes)."""
    if isinstance(value, bytes):
        return varint(number << 3 | 2) + varint(len(value)) + value
    if fixed32:
        return varint(number << 3 | 5) + (value & 0xFFFFFFFF).to_bytes(4, "little")
    return varint(number << 3) + varint(value)


def header_proto(num_shards: int = 1, endianness: int = 0, min_consumer: int = 0) -> bytes:
    """A ``BundleHeaderProto`` (version: producer 1)."""
    version = field(1, 1) + (field(2, min_consumer) if min_consumer else b"")
    out = field(1, num_shards) + (field(2, endianness) if endianness else b"")
    return out + field(3, version)


def shape_proto(shape) -> bytes:
    return b"".join(field(2, field(1, n) if n else b"") for n in shape)


def entry_proto(dtype, shape, shard_id=0, offset=0, size=0, crc=None, slices=()) -> bytes:
    """A ``BundleEntryProto``; ``slices``: per slice, per dim ``(start, length or None)``."""
    out = field(1, dtype) + field(2, shape_proto(shape))
    out += field(3, shard_id) if shard_id else b""
    out += field(4, offset) if offset else b""
    out += field(5, size) if size else b""
    out += field(6, crc, fixed32=True) if crc is not None else b""
    for extents in slices:
        body = b""
        for start, length in extents:
            extent = field(1, start) if start else b""
            extent += field(2, length) if length is not None else b""
            body += field(1, extent)
        out += field(7, body)
    return out


def _block(entries, restart_interval: int = 16) -> bytes:
    out, restarts, previous = bytearray(), [], b""
    for i, (key, value) in enumerate(entries):
        shared = 0
        if i % restart_interval == 0:
            restarts.append(len(out))
        else:
            while shared < min(len(key), len(previous)) and key[shared] == previous[shared]:
                shared += 1
        out += varint(shared) + varint(len(key) - shared) + varint(len(value))
        out += key[shared:] + value
        previous = key
    restarts = restarts or [0]
    for offset in restarts:
        out += offset.to_bytes(4, "little")
    return bytes(out + len(restarts).to_bytes(4, "little"))


def table_bytes(entries, *, block_size: int = 4096, compress=None) -> bytes:
    """A sorted table of ``(key, value)`` pairs; ``compress``: Snappy for every block."""
    from ptfunc.io._crc32c import crc32c, mask

    out = bytearray()

    def emit(contents: bytes) -> bytes:
        kind = 0
        if compress is not None:
            contents, kind = compress(contents), 1
        handle = varint(len(out)) + varint(len(contents))
        trailer = bytes([kind]) + mask(crc32c(contents + bytes([kind]))).to_bytes(4, "little")
        out.extend(contents + trailer)
        return handle

    index, group, size = [], [], 0
    for key, value in entries:
        group.append((key, value))
        size += len(key) + len(value) + 3
        if size >= block_size:
            index.append((group[-1][0], emit(_block(group))))
            group, size = [], 0
    if group:
        index.append((group[-1][0], emit(_block(group))))
    handles = emit(_block([])) + emit(_block(index, 1))
    return bytes(out + handles.ljust(40, b"\0") + MAGIC.to_bytes(8, "little"))


def string_tensor_bytes(items: list[bytes], big_endian: bool = False) -> tuple[bytes, int]:
    """TF's stored form of a string tensor and its (unmasked) CRC-32C."""
    from ptfunc.io._crc32c import crc32c, mask

    order = "big" if big_endian else "little"
    crc = 0
    lengths = b""
    for item in items:
        lengths += varint(len(item))
        crc = crc32c(len(item).to_bytes(4, order), crc)
    checksum = mask(crc).to_bytes(4, order)
    crc = crc32c(checksum, crc)
    for item in items:
        crc = crc32c(item, crc)
    return lengths + checksum + b"".join(items), crc


def write_bundle(prefix, tensors, *, big_endian=False, compress=None, block_size=4096) -> None:
    """Write ``{name: (dtype enum, shape, raw bytes or list of bytes)}`` as one shard."""
    from ptfunc.io._crc32c import crc32c, mask

    chunks, entries, offset = [], [], 0
    for name, (dtype, shape, value) in sorted(tensors.items()):
        if isinstance(value, list):
            raw, crc = string_tensor_bytes(value, big_endian)
        else:
            raw, crc = value, crc32c(value)
        entries.append((name.encode(), entry_proto(dtype, shape, 0, offset, len(raw), mask(crc))))
        chunks.append(raw)
        offset += len(raw)
    table = [(b"", header_proto(endianness=int(big_endian)))] + entries
    Path(f"{prefix}.index").write_bytes(
        table_bytes(table, block_size=block_size, compress=compress)
    )
    with open(f"{prefix}.data-00000-of-00001", "wb") as handle:
        handle.writelines(chunks)


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


_ENUMS = {
    "float32": 1,
    "float64": 2,
    "int32": 3,
    "uint8": 4,
    "int8": 6,
    "int64": 9,
    "bool": 10,
    "bfloat16": 14,
    "float16": 19,
}


def _raw(dtype: str, value: np.ndarray, big_endian: bool) -> bytes:
    """Stored bytes of a numeric value (bfloat16 given as float32)."""
    if dtype == "bfloat16":
        value = (np.asarray(value, np.float32).view(np.uint32) >> 16).astype(np.uint16)
    elif dtype == "bool":
        value = np.asarray(value).astype(np.uint8)
    value = np.asarray(value)
    return value.astype(value.dtype.newbyteorder(">" if big_endian else "<")).tobytes()


def _check_with_tf(tf, prefix: Path, values) -> None:
    """TensorFlow must read back exactly ``values`` from a bundle we wrote."""
    reader = tf.train.load_checkpoint(str(prefix))
    assert sorted(reader.get_variable_to_shape_map()) == sorted(values)
    for name, (dtype, value) in values.items():
        got = reader.get_tensor(name)
        if dtype == "string":
            shape, strings = value
            assert got.shape == shape and list(got.reshape(-1)) == [
                t.encode("latin-1") for t in strings
            ], name
        else:
            got = np.asarray(got, np.float32) if dtype == "bfloat16" else got
            assert got.shape == np.shape(value) and got.tobytes() == np.asarray(value).tobytes()


def gen_written(tf, name: str, *, big_endian: bool, compress) -> None:
    """A bundle written by :func:`write_bundle` (big-endian or Snappy), checked by TF."""
    folder = _fresh(name)
    values = _values(np.random.default_rng(19 if big_endian else 23))
    tensors = {n: (_ENUMS[d], np.shape(v), _raw(d, v, big_endian)) for n, (d, v) in values.items()}
    words = [b"big", b"", b"endian \xff"]
    values["strings"] = ("string", ((3,), [w.decode("latin-1") for w in words]))
    tensors["strings"] = (7, (3,), words)
    write_bundle(
        folder / "model.ckpt", tensors, big_endian=big_endian, compress=compress, block_size=256
    )
    _check_with_tf(tf, folder / "model.ckpt", values)
    _write_expected(folder, values)


def main() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import cramjam
    import tensorflow as tf

    tf.config.set_logical_device_configuration(
        tf.config.list_physical_devices("CPU")[0],
        [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()],
    )
    gen_object_graph(tf)
    gen_dtypes(tf)
    gen_partitioned(tf)
    gen_sharded(tf)
    gen_written(tf, "big_endian", big_endian=True, compress=None)
    gen_written(
        tf, "snappy", big_endian=False, compress=lambda b: bytes(cramjam.snappy.compress_raw(b))
    )
    print(f"wrote {sorted(p.name for p in OUT.iterdir())} under {OUT}", file=sys.stderr)


if __name__ == "__main__":
    main()
