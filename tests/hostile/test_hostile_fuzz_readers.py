"""Hypothesis fuzz of every checkpoint reader: damaged copies of valid files, random headers.

Issue 17, point 4. Bounded: a few dozen derandomized examples per reader, no deadline,
no example database, files in a fresh temporary folder per example.

Oracles:

* formats with checksums (zip ``.bin``: CRC-32 per member; TF bundles: CRC-32C per
  block and tensor): the reader returns exactly the original tensors or raises
  :class:`~ptfunc.errors.CheckpointError`;
* formats without (legacy ``.bin``, safetensors data): a CheckpointError, or tensors
  consistent with what the file declares (for safetensors, the loader and ``inspect``
  agree on every name, shape and dtype);
* sharded indexes: a CheckpointError, or shard paths that stay inside the directory.

Never ``KeyError``, ``IndexError``, ``struct.error``, ``UnicodeDecodeError``,
``RuntimeError``, ``OverflowError`` or ``MemoryError``, and the Python heap's peak stays
within twice the file size plus 4 MiB.
"""

from __future__ import annotations

import json
import struct
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from gen_checkpoints_bundle import entry_proto
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from test_hostile_checkpoints import STATE, _bundle, _quiet, bounded_heap, same_state

import ptfunc
from ptfunc.errors import CheckpointError
from ptfunc.io import inspect_checkpoint, load_flat, load_torch_object
from ptfunc.io._crc32c import crc32c, mask
from ptfunc.io.convert.openai_gpt import read_release_layout
from ptfunc.io.pretrained import read_weight_index
from ptfunc.io.tf_checkpoint import load_tf_checkpoint

__all__ = ["_quiet"]  # the autouse fixture that silences torch's warnings, shared

FUZZ = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# A damage: overwrite bytes, cut the file, insert bytes or drop a range (positions are
# fractions of the length, so they fit any file).
_DAMAGE = st.lists(
    st.tuples(
        st.sampled_from(["write", "cut", "insert", "drop"]),
        st.floats(0, 1, allow_nan=False),
        st.binary(min_size=1, max_size=8),
    ),
    min_size=1,
    max_size=3,
)


def damage(data: bytes, edits: list[tuple[str, float, bytes]]) -> bytes:
    out = bytearray(data)
    for kind, where, value in edits:
        i = min(int(where * len(out)), max(len(out) - 1, 0))
        if kind == "write":
            out[i : i + len(value)] = value
            out = out[: max(len(data), i + len(value))]
        elif kind == "cut":
            del out[i:]
        elif kind == "insert":
            out[i:i] = value
        else:
            del out[i : i + len(value)]
    return bytes(out)


@contextmanager
def written(name: str, data: bytes) -> Iterator[Path]:
    """A file ``name`` holding ``data`` in a fresh temporary folder."""
    with tempfile.TemporaryDirectory(prefix="ptfunc-fuzz-") as tmp:
        path = Path(tmp) / name
        path.write_bytes(data)
        yield path


def _saved(name: str, save) -> bytes:
    with written(name, b"") as path:
        save(path)
        return path.read_bytes()


# -- .bin ---------------------------------------------------------------------------------------

ZIP_BIN = _saved("m.bin", lambda path: torch.save(STATE, path))
LEGACY_BIN = _saved(
    "m.bin", lambda path: torch.save(STATE, path, _use_new_zipfile_serialization=False)
)


@FUZZ
@given(edits=_DAMAGE, mmap=st.booleans())
def test_fuzz_zip_bin(edits, mmap):
    with written("m.bin", damage(ZIP_BIN, edits)) as path:
        got = bounded_heap(path, load_torch_object, path, mmap=mmap)
    if not isinstance(got, CheckpointError):
        if mmap:  # tensor records are not checksummed with mmap: names, shapes, dtypes
            assert {k: (v.shape, v.dtype) for k, v in got.items()} == {
                k: (v.shape, v.dtype) for k, v in STATE.items()
            }
        else:
            assert same_state(got, STATE), edits


@FUZZ
@given(edits=_DAMAGE)
def test_fuzz_legacy_bin(edits):
    with written("m.bin", damage(LEGACY_BIN, edits)) as path:
        got = bounded_heap(path, load_torch_object, path)
        if isinstance(got, dict):  # no checksums: values may differ, the storage fits
            for value in got.values():
                if isinstance(value, torch.Tensor):
                    assert value.untyped_storage().nbytes() <= path.stat().st_size


# -- safetensors --------------------------------------------------------------------------------


SAFETENSORS = _saved(
    "m.safetensors",
    lambda path: ptfunc.io.save(
        path, {"a": torch.arange(6.0).reshape(2, 3), "b": torch.ones(3).half()}
    ),
)


def _agree(path: Path) -> None:
    """The loader and inspect both refuse, or agree on every name, shape and dtype."""
    loaded = bounded_heap(path, load_flat, path)
    listed = bounded_heap(path, inspect_checkpoint, path)
    assert isinstance(loaded, CheckpointError) == isinstance(listed, CheckpointError), (
        loaded,
        listed,
    )
    if not isinstance(loaded, CheckpointError):
        want = {
            t.name: (t.shape, t.dtype, t.nbytes)
            for t in listed.tensors  # type: ignore[union-attr]
        }
        got = {
            n: (tuple(v.shape), str(v.dtype).removeprefix("torch."), v.numel() * v.element_size())
            for n, v in loaded.items()
        }
        assert got == want


@FUZZ
@given(edits=_DAMAGE)
def test_fuzz_safetensors_damaged(edits):
    with written("m.safetensors", damage(SAFETENSORS, edits)) as path:
        _agree(path)


_DTYPE = st.sampled_from(["F32", "F16", "BF16", "I64", "U8", "BOOL", "F64", "X9", 7, None])
_INT = st.one_of(
    st.integers(0, 64), st.integers(-5, 5), st.sampled_from([2**31, 2**62, 2**64]), st.floats()
)
_ENTRY = st.fixed_dictionaries(
    {
        "dtype": _DTYPE,
        "shape": st.lists(_INT, max_size=4),
        "data_offsets": st.lists(_INT, min_size=0, max_size=3),
    }
)
_HEADER = st.dictionaries(
    st.text(max_size=6), st.one_of(_ENTRY, st.integers(), st.none()), max_size=4
)


@FUZZ
@given(header=_HEADER, data_size=st.integers(0, 300), length_delta=st.integers(-3, 3))
@example(
    header={"a": {"dtype": "F32", "shape": [2**62, 2**62, 0], "data_offsets": [0, 0]}},
    data_size=0,
    length_delta=0,
)
def test_fuzz_safetensors_headers(header, data_size, length_delta):
    raw = json.dumps(header).encode()
    blob = struct.pack("<Q", max(len(raw) + length_delta, 0)) + raw + b"\x01" * data_size
    with written("m.safetensors", blob) as path:
        _agree(path)


# -- TensorFlow bundles -------------------------------------------------------------------------


def _entry(name: str, raw: bytes, shape: tuple[int, ...], offset: int, dtype: int = 1):
    return name.encode(), entry_proto(dtype, shape, 0, offset, len(raw), mask(crc32c(raw)))


A = np.arange(6, dtype="<f4").tobytes()
B = np.arange(4, dtype="<i4").tobytes()
TF_ENTRIES = [_entry("a", A, (2, 3), 0), _entry("b", B, (4,), len(A), dtype=3)]
TF_EXPECTED = {"a": torch.arange(6.0).reshape(2, 3), "b": torch.arange(4, dtype=torch.int32)}


@FUZZ
@given(edits=_DAMAGE, target=st.sampled_from(["index", "data"]))
def test_fuzz_tf_bundle_damaged(edits, target):
    with written("unused", b"") as unused:
        prefix = _bundle(unused.parent, TF_ENTRIES, A + B)
        path = Path(f"{prefix}.index" if target == "index" else f"{prefix}.data-00000-of-00001")
        path.write_bytes(damage(path.read_bytes(), edits))
        got = bounded_heap(path, load_tf_checkpoint, prefix)
        if not isinstance(got, CheckpointError):
            assert same_state(got, TF_EXPECTED), edits


_TF_ENTRY = st.tuples(
    st.sampled_from([1, 2, 3, 7, 10, 14, 99]),
    st.lists(st.one_of(st.integers(0, 8), st.sampled_from([2**31, 2**62])), max_size=3),
    st.one_of(st.integers(0, 64), st.sampled_from([2**40, 2**62])),
    st.one_of(st.integers(0, 64), st.sampled_from([2**40, 2**62])),
)


@FUZZ
@given(entries=st.lists(_TF_ENTRY, min_size=1, max_size=5), data_size=st.integers(0, 128))
@example(entries=[(1, [2**31, 2**62, 0], 0, 0)], data_size=0)  # torch: numel overflow
def test_fuzz_tf_bundle_entries(entries, data_size):
    data = bytes(range(256))[:data_size]
    rows = []
    for i, (dtype, shape, offset, size) in enumerate(entries):
        raw = data[offset : offset + size]
        rows.append(
            (f"t{i}".encode(), entry_proto(dtype, shape, 0, offset, size, mask(crc32c(raw))))
        )
    with written("unused", b"") as unused:
        prefix = _bundle(unused.parent, rows, data)
        got = bounded_heap(Path(f"{prefix}.index"), load_tf_checkpoint, prefix)
        if not isinstance(got, CheckpointError):
            total = sum(t.numel() * t.element_size() for t in got.values())
            assert total <= data_size
            for i, (_, shape, _, _) in enumerate(entries):
                if f"t{i}" in got:
                    assert tuple(got[f"t{i}"].shape) == tuple(shape)


# -- sharded indexes and the OpenAI release -------------------------------------------------------

_JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=12)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
_SHARD = st.one_of(
    st.sampled_from(["model.safetensors", "../x", "/abs", "a/../../b", "a\\b", "C:x", "", "."]),
    st.text(alphabet="ab./\\:\0 ", max_size=10),
)


@FUZZ
@given(
    index=st.one_of(
        _JSON,
        st.fixed_dictionaries(
            {"weight_map": st.dictionaries(st.text(max_size=4), st.one_of(_SHARD, _JSON))}
        ),
    )
)
@example(index={"weight_map": {"": "."}})
def test_fuzz_sharded_index(index):
    with written("model.safetensors.index.json", json.dumps(index).encode()) as path:
        got = bounded_heap(path, read_weight_index, path)
        if not isinstance(got, CheckpointError):
            assert got, index
            for shard in got:
                relative = shard.relative_to(path.parent)
                assert relative.parts and ".." not in relative.parts, shard


@FUZZ
@given(header=st.binary(max_size=120), shape=st.text(max_size=30))
def test_fuzz_npy_headers_of_the_openai_release(header, shape):
    text = "{'descr': '<f4', 'fortran_order': False, 'shape': " + shape + ", }"
    raw = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text.encode() + header
    with written("params_0.npy", raw) as path:
        (path.parent / "params_shapes.json").write_text(json.dumps([[2, 3]]))
        got = bounded_heap(path, read_release_layout, path.parent)
        if not isinstance(got, CheckpointError):
            assert got[2] == np.dtype("<f4")
