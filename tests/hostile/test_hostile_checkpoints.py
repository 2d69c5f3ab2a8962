"""Hostile checkpoint files: every reader refuses them cleanly, runs no code, allocates little.

Issue 17, points 3-9. The files are made here: single-bit flips over every byte of a
small zip ``.bin``, truncation at every byte (so at every section boundary) of zip,
legacy, safetensors and TensorFlow files, lying headers, zip bombs, ``__reduce__``
pickles, path traversal in sharded indexes, overlapping TF entries, weights of the
wrong dtype or shape, and a load that lacks a few params.

Oracle, for every case: the reader returns exactly the tensors the file was made from
(``torch.equal``, same dtype and shape), or raises :class:`ptfunc.errors.CheckpointError`
naming the file; never ``KeyError``/``IndexError``/``struct.error``/``UnicodeDecodeError``/
``RuntimeError``/``OverflowError``/``MemoryError``. Where a file declares more than it
holds, the Python heap (``tracemalloc`` peak, which also sees numpy's buffers) stays
within twice the file size plus 4 MiB, and refusals that must come before torch
allocates are recognised by their message.
"""

from __future__ import annotations

import collections
import io
import json
import pickle
import struct
import tracemalloc
import warnings
import zipfile
import zlib
from pathlib import Path
from typing import Any

import pytest
import torch
from gen_checkpoints_bundle import entry_proto, header_proto, table_bytes

import ptfunc
from ptfunc import cli
from ptfunc.archs import bert
from ptfunc.errors import CheckpointError
from ptfunc.io import (
    from_pretrained,
    from_torch_state_dict,
    inspect_checkpoint,
    load_flat,
    load_torch_object,
)
from ptfunc.io._bundle_proto import slice_key
from ptfunc.io._crc32c import crc32c, mask
from ptfunc.io.pretrained import weight_files
from ptfunc.io.tf_checkpoint import TFCheckpoint, load_tf_checkpoint
from ptfunc.tree import to_flat_dict

FORBIDDEN = (
    KeyError,
    IndexError,
    struct.error,
    UnicodeDecodeError,
    RuntimeError,
    OverflowError,
    MemoryError,
    AssertionError,
)
STATE = {
    "a": torch.arange(6, dtype=torch.float32).reshape(2, 3),
    "b": torch.tensor([1, 2, 3]),
    "c": torch.tensor([True, False]),
}
CONFIG = bert.BertConfig(
    vocab_size=40, hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16
)


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def outcome(read, *args: Any, **kwargs: Any) -> Any:
    """``read(...)``'s result, or the CheckpointError it raised; anything else fails the test."""
    try:
        return read(*args, **kwargs)
    except CheckpointError as error:
        assert str(error)
        return error
    except FORBIDDEN as error:  # pragma: no cover - the failure this file guards against
        raise AssertionError(f"raw {type(error).__name__} from {read.__name__}: {error}") from error


def refused(read, *args: Any, match: str = "", **kwargs: Any) -> CheckpointError:
    result = outcome(read, *args, **kwargs)
    assert isinstance(result, CheckpointError), f"{read.__name__} accepted a hostile file"
    assert match in str(result), str(result)
    return result


def same_state(got: Any, want: dict[str, torch.Tensor]) -> bool:
    return (
        isinstance(got, dict)
        and got.keys() == want.keys()
        and all(
            isinstance(got[k], torch.Tensor)
            and got[k].dtype == want[k].dtype
            and got[k].shape == want[k].shape
            and torch.equal(got[k], want[k])
            for k in want
        )
    )


def bounded_heap(path: Path, read, *args: Any, **kwargs: Any) -> Any:
    """``outcome(read, ...)`` with the Python heap's peak held to 2x the file + 4 MiB."""
    tracemalloc.start()
    try:
        result = outcome(read, *args, **kwargs)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    size = path.stat().st_size if path.is_file() else 0
    assert peak <= 2 * size + 4 * 2**20, f"{read.__name__} allocated {peak} bytes for {size}"
    return result


# -- zip-format .bin ---------------------------------------------------------------------


def _zip_bin(tmp_path: Path) -> tuple[Path, bytes]:
    path = tmp_path / "model.bin"
    torch.save(STATE, path)
    return path, path.read_bytes()


def test_every_byte_of_a_zip_bin_flipped_loads_exactly_or_is_refused(tmp_path):
    source, data = _zip_bin(tmp_path)
    damaged = tmp_path / "flipped.bin"
    wrong = []
    for i in range(len(data)):
        copy = bytearray(data)
        copy[i] ^= 1 << (i % 8)
        damaged.write_bytes(copy)
        got = outcome(load_torch_object, damaged)
        if not isinstance(got, CheckpointError) and not same_state(got, STATE):
            wrong.append(i)
    assert not wrong, f"flips at bytes {wrong[:10]} loaded wrong values"


def _central_entries(data: bytes) -> dict[str, int]:
    """``{member name: offset of its central-directory entry}``."""
    pos = zipfile.ZipFile(io.BytesIO(data)).start_dir
    out = {}
    while data[pos : pos + 4] == b"PK\x01\x02":
        n, e, c = struct.unpack("<3H", data[pos + 28 : pos + 34])
        out[data[pos + 46 : pos + 46 + n].decode()] = pos
        pos += 46 + n + e + c
    return out


def _member(entries: dict[str, int], suffix: str) -> int:
    return next(pos for name, pos in entries.items() if name.endswith(suffix))


def test_tensor_bytes_and_directory_attributes_are_checked(tmp_path):
    """A flip in tensor bytes (which torch never checks), and the DOS directory attribute
    on a record (for which torch reads no bytes at all and hands back uninitialised memory)."""
    source, data = _zip_bin(tmp_path)
    record = next(i for i in zipfile.ZipFile(source).infolist() if i.filename.endswith("/data/0"))
    n, e = struct.unpack("<2H", data[record.header_offset + 26 : record.header_offset + 30])
    start = record.header_offset + 30 + n + e
    flipped = bytearray(data)
    flipped[start] ^= 0x01
    (tmp_path / "data.bin").write_bytes(flipped)
    refused(load_torch_object, tmp_path / "data.bin", match="CRC")
    marked = bytearray(data)
    marked[_member(_central_entries(data), "/data/0") + 38] |= 0x10
    (tmp_path / "dir.bin").write_bytes(marked)
    refused(load_torch_object, tmp_path / "dir.bin", match="directory")


def test_zip_bin_truncated_at_every_byte_is_refused(tmp_path):
    _, data = _zip_bin(tmp_path)
    cut = tmp_path / "cut.bin"
    for n in range(len(data)):
        cut.write_bytes(data[:n])
        refused(load_torch_object, cut)


def _rezip(data: bytes, change, compression: int = zipfile.ZIP_STORED) -> bytes:
    """The members of a torch zip written again, ``change(name, bytes)`` applied."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w", compression) as dst:
        for info in src.infolist():
            value = change(info.filename, src.read(info))
            if value is not None:
                dst.writestr(info.filename, value)
    return out.getvalue()


def test_zip_bomb_and_compressed_members_are_refused(tmp_path):
    _, data = _zip_bin(tmp_path)
    bomb = _rezip(
        data,
        lambda name, value: b"\0" * (64 * 2**20) if name.endswith("/data/0") else value,
        zipfile.ZIP_DEFLATED,
    )
    path = tmp_path / "bomb.bin"
    path.write_bytes(bomb)
    assert len(bomb) < 2**20
    error = bounded_heap(path, load_torch_object, path)
    assert isinstance(error, CheckpointError) and "compressed" in str(error)


def test_declared_sizes_past_the_file_are_refused_before_reading(tmp_path):
    _, data = _zip_bin(tmp_path)
    lying = bytearray(data)
    for pos in _central_entries(data).values():  # every member claims 3 GiB, stored
        lying[pos + 20 : pos + 28] = struct.pack("<2L", 3 * 2**30, 3 * 2**30)
    path = tmp_path / "lying.bin"
    path.write_bytes(lying)
    assert isinstance(bounded_heap(path, load_torch_object, path), CheckpointError)


def test_storage_larger_than_its_record_is_refused_with_mmap_too(tmp_path):
    _, data = _zip_bin(tmp_path)
    short = _rezip(data, lambda name, value: value[:4] if name.endswith("/data/0") else value)
    path = tmp_path / "short.bin"
    path.write_bytes(short)
    for mmap in (False, True):
        refused(load_torch_object, path, mmap=mmap, match="declared as 24 bytes")


def test_overlapping_zip_members_are_refused(tmp_path):
    """data/1 pointed at data/0's bytes, with data/0's CRC and sizes: every CRC holds."""
    _, data = _zip_bin(tmp_path)
    first = next(
        i for i in zipfile.ZipFile(io.BytesIO(data)).infolist() if i.filename.endswith("/data/0")
    )
    pos = _member(_central_entries(data), "/data/1")
    overlapped = bytearray(data)
    overlapped[pos + 16 : pos + 28] = struct.pack(
        "<3L", first.CRC, first.file_size, first.file_size
    )
    overlapped[pos + 42 : pos + 46] = struct.pack("<L", first.header_offset)
    path = tmp_path / "overlap.bin"
    path.write_bytes(overlapped)
    refused(load_torch_object, path)


# -- pickles that would run code -------------------------------------------------------------


class _Payload:
    marker: Path

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('ran')",))


def test_reduce_pickles_never_run(tmp_path):
    _Payload.marker = tmp_path / "RAN"
    plain = tmp_path / "plain.bin"
    plain.write_bytes(pickle.dumps({"x": _Payload()}, protocol=2))
    zipped = tmp_path / "zipped.bin"
    _, data = _zip_bin(tmp_path)
    zipped.write_bytes(
        _rezip(
            data,
            lambda name, value: (
                pickle.dumps({"a": _Payload()}, protocol=2) if name.endswith("data.pkl") else value
            ),
        )
    )
    legacy = tmp_path / "legacy.bin"
    legacy.write_bytes(_legacy_bytes(main={"a": _Payload()}))
    for path in (plain, zipped, legacy):
        for mmap in (False, True):
            refused(load_torch_object, path, mmap=mmap, match="exec")
    assert not _Payload.marker.exists()


# -- legacy (torch < 1.6, pytorch-transformers 1.0) .bin ----------------------------------------


class _StorageRef:
    pass


def _legacy_bytes(
    *,
    declared: int = 4,
    stored: int = 4,
    main: Any = None,
    first: bytes | None = None,
) -> bytes:
    """A legacy torch.save file by hand: one float storage of ``declared`` elements in the
    pickle and ``stored`` elements of data, holding ``{"w": tensor}`` (or ``main``)."""
    ref = _StorageRef()

    class Tensor:
        def __reduce__(self):
            return (
                torch._utils._rebuild_tensor_v2,
                (ref, 0, (stored,), (1,), False, collections.OrderedDict()),
            )

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            if obj is ref:
                return ("storage", torch.FloatStorage, "0", "cpu", declared, None)
            return None

    buf = io.BytesIO()
    buf.write(first if first is not None else pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2))
    pickle.dump(1001, buf, protocol=2)
    pickle.dump({"protocol_version": 1001, "little_endian": True}, buf, protocol=2)
    Pickler(buf, protocol=2).dump({"w": Tensor()} if main is None else main)
    pickle.dump(["0"] if main is None else [], buf, protocol=2)
    if main is None:
        buf.write(
            struct.pack("<q", stored) + torch.arange(stored, dtype=torch.float32).numpy().tobytes()
        )
    return buf.getvalue()


def test_hand_made_legacy_file_loads():
    """The writer above makes what torch itself reads (the oracle for the cases below)."""
    got = torch.load(io.BytesIO(_legacy_bytes()), weights_only=True)
    assert torch.equal(got["w"], torch.arange(4.0))


def test_legacy_bin_round_trip_and_truncation_at_every_byte(tmp_path):
    path = tmp_path / "legacy.bin"
    torch.save(STATE, path, _use_new_zipfile_serialization=False)
    assert same_state(load_torch_object(path), STATE)
    data = path.read_bytes()
    for n in range(len(data)):
        path.write_bytes(data[:n])
        refused(load_torch_object, path)


def test_legacy_bin_flips_never_raise_raw_errors(tmp_path):
    """Legacy files carry no checksums: a flip in tensor bytes loads other values. Every
    other outcome must be the original state or a CheckpointError."""
    path = tmp_path / "legacy.bin"
    torch.save(STATE, path, _use_new_zipfile_serialization=False)
    data = path.read_bytes()
    for i in range(len(data)):
        copy = bytearray(data)
        copy[i] ^= 1 << (i % 8)
        path.write_bytes(copy)
        outcome(load_torch_object, path)


@pytest.mark.parametrize("declared", [2**28, 2**40, 2**61])
def test_legacy_storage_declared_larger_than_the_file_is_refused_before_allocation(
    tmp_path, declared
):
    path = tmp_path / "huge.bin"
    path.write_bytes(_legacy_bytes(declared=declared))
    error = bounded_heap(path, load_torch_object, path)
    assert isinstance(error, CheckpointError) and "need" in str(error), error


def test_legacy_pickle_string_claiming_4_gib_is_not_allocated(tmp_path):
    path = tmp_path / "long.bin"
    path.write_bytes(_legacy_bytes(first=b"\x80\x02X\xff\xff\xff\xffabc."))
    assert isinstance(bounded_heap(path, load_torch_object, path), CheckpointError)


# -- safetensors --------------------------------------------------------------------------------


def _st(header: Any, data: bytes = b"", *, length: int | None = None) -> bytes:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(raw) if length is None else length) + raw + data


F32x2 = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}


def _read_both(path: Path) -> tuple[Any, Any]:
    return outcome(load_flat, path), outcome(inspect_checkpoint, path)


def test_safetensors_truncated_at_every_byte_is_refused_by_loader_and_inspect(tmp_path):
    source = tmp_path / "ok.safetensors"
    ptfunc.io.save(source, {"a": torch.arange(6.0), "b": torch.ones(2, 2, dtype=torch.float16)})
    data = source.read_bytes()
    cut = tmp_path / "cut.safetensors"
    for n in range(len(data)):
        cut.write_bytes(data[:n])
        for result in _read_both(cut):
            assert isinstance(result, CheckpointError), n


HOSTILE_HEADERS = {
    "offsets past the end": ({"a": {**F32x2, "data_offsets": [0, 8 * 2**30]}}, 8),
    "huge shape": ({"a": {"dtype": "F32", "shape": [2**62, 2**62], "data_offsets": [0, 8]}}, 8),
    "size is not prod(shape)": ({"a": {**F32x2, "shape": [3]}}, 8),
    "overlap": ({"a": F32x2, "b": {**F32x2, "data_offsets": [4, 12]}}, 12),
    "gap": ({"a": {**F32x2, "data_offsets": [4, 12]}}, 12),
    "trailing bytes": ({"a": F32x2}, 16),
    "unknown dtype": ({"a": {**F32x2, "dtype": "Q7"}}, 8),
    "negative offset": ({"a": {**F32x2, "data_offsets": [-8, 0]}}, 8),
    "float offsets": ({"a": {**F32x2, "data_offsets": [0.0, 8.0]}}, 8),
    "not an entry": ({"a": [1, 2]}, 8),
    "metadata not strings": ({"__metadata__": {"x": 1}, "a": F32x2}, 8),
    "header a list": ([F32x2], 8),
    "bool shape": ({"a": {**F32x2, "shape": [True, 2]}}, 8),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_HEADERS))
def test_lying_safetensors_headers_are_refused_by_loader_and_inspect(tmp_path, case):
    header, size = HOSTILE_HEADERS[case]
    path = tmp_path / "x.safetensors"
    path.write_bytes(_st(header, b"\0" * size))
    for result in _read_both(path):
        assert isinstance(result, CheckpointError), (case, result)


@pytest.mark.parametrize(
    "raw",
    [
        _st({"a": F32x2}, b"\0" * 8, length=2**63),
        _st({"a": F32x2}, b"\0" * 8, length=2**40),
        _st({"a": F32x2}, b"\0" * 8, length=10**8 + 1),
        _st(b'{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "a": {}}', b"\0" * 8),
        _st(b"{\xff\xfe}", b""),
        _st(b"{" * 100_000, b""),
        _st(b"   {}", b""),
        b"\x05\x00",
    ],
    ids=["2**63", "2**40", "over 100 MB", "duplicate", "not utf-8", "deep", "no brace", "short"],
)
def test_safetensors_header_lengths_and_encodings(tmp_path, raw):
    path = tmp_path / "x.safetensors"
    path.write_bytes(raw)
    for read in (load_flat, inspect_checkpoint):
        result = bounded_heap(path, read, path)
        assert isinstance(result, CheckpointError), result


def test_inspect_lists_a_valid_safetensors_file_from_its_header(tmp_path):
    path = tmp_path / "ok.safetensors"
    ptfunc.io.save(path, {"a": torch.zeros(3, 4, dtype=torch.bfloat16), "b": torch.arange(5)})
    summary = inspect_checkpoint(path)
    assert [(t.name, t.shape, t.dtype, t.nbytes) for t in summary.tensors] == [
        ("a", (3, 4), "bfloat16", 24),
        ("b", (5,), "int64", 40),
    ]


# -- TensorFlow bundles -------------------------------------------------------------------------


def _bundle(tmp_path: Path, entries: list[tuple[bytes, bytes]], data: bytes) -> Path:
    prefix = tmp_path / "model.ckpt"
    rows = [(b"", header_proto())] + sorted(entries)
    (tmp_path / "model.ckpt.index").write_bytes(table_bytes(rows))
    (tmp_path / "model.ckpt.data-00000-of-00001").write_bytes(data)
    return prefix


def _plain(name: str, raw: bytes, shape: tuple[int, ...], offset: int = 0, **kw: Any):
    return name.encode(), entry_proto(1, shape, 0, offset, len(raw), mask(crc32c(raw)), **kw)


def test_tf_index_and_data_truncated_at_every_byte_are_refused(tmp_path):
    a, b = torch.arange(6.0).numpy().tobytes(), torch.ones(4).numpy().tobytes()
    prefix = _bundle(tmp_path, [_plain("a", a, (6,)), _plain("b", b, (4,), len(a))], a + b)
    assert torch.equal(load_tf_checkpoint(prefix)["a"], torch.arange(6.0))
    for suffix in (".index", ".data-00000-of-00001"):
        path = Path(f"{prefix}{suffix}")
        whole = path.read_bytes()
        for n in range(len(whole)):
            path.write_bytes(whole[:n])
            result = outcome(load_tf_checkpoint, prefix)
            assert isinstance(result, CheckpointError), (suffix, n)
        path.write_bytes(whole)


def test_tf_overlapping_entries_are_refused_at_open(tmp_path):
    raw = torch.arange(8.0).numpy().tobytes()
    prefix = _bundle(tmp_path, [_plain("a", raw, (8,)), _plain("b", raw[:16], (4,), 8)], raw)
    refused(TFCheckpoint, prefix, match="overlap")


def test_tf_slices_sharing_bytes_are_refused_before_allocating(tmp_path):
    """The 5 KB index that made the reader allocate 3.2 GiB: many slices of one variable,
    all pointing at the same bytes of a small data file."""
    rows, cols = 64, 1024
    part = torch.ones(1, cols).numpy().tobytes()
    slices = tuple(((i, 1), (0, None)) for i in range(rows))
    full = (b"w", entry_proto(1, (rows, cols), slices=slices))
    parts = [
        (slice_key(b"w", extents), entry_proto(1, (1, cols), 0, 0, len(part), mask(crc32c(part))))
        for extents in slices
    ]
    prefix = _bundle(tmp_path, [full, *parts], part)
    assert Path(f"{prefix}.index").stat().st_size < 8 * 2**10
    refused(TFCheckpoint, prefix, match="overlap")


@pytest.mark.parametrize(
    "offset, size, shape",
    [(2**62, 8, (2,)), (0, 2**62, (2**60,)), (4, 8, (2,)), (0, 8, (2**31, 2**31, 0, 2))],
)
def test_tf_entries_out_of_range_are_refused_at_open(tmp_path, offset, size, shape):
    raw = b"\0" * 8
    entry = (b"a", entry_proto(1, shape, 0, offset, size, mask(crc32c(raw))))
    prefix = _bundle(tmp_path, [entry], raw)
    refused(TFCheckpoint, prefix)


# -- sharded indexes ----------------------------------------------------------------------------


def _model_dir(tmp_path: Path) -> tuple[Path, Any, Any]:
    model = bert.BertModel(CONFIG)
    params = model.init(ptfunc.random.key(0))
    directory = tmp_path / "model"
    ptfunc.io.save_pretrained(directory, model, params)
    return directory, model, params


@pytest.mark.parametrize(
    "weight_map, match",
    [
        ([["a", "model.safetensors"]], "weight_map"),
        ({}, "weight_map"),
        ({"a": "missing.safetensors"}, "not there"),
        ({"a": "../model.safetensors"}, "outside"),
        ({"a": "sub/../../model.safetensors"}, "outside"),
        ({"a": "/etc/passwd"}, "outside"),
        ({"a": "C:model.safetensors"}, "outside"),
        ({"a": "a\\..\\..\\x"}, "outside"),
        ({"a": 3}, "shard file name"),
        ({"a": ""}, "shard file name"),
        ({"a": "x\0y"}, "shard file name"),
    ],
    ids=lambda v: str(v)[:24],
)
def test_sharded_index_that_is_malformed_or_escapes_is_refused(tmp_path, weight_map, match):
    directory, _, _ = _model_dir(tmp_path)
    (tmp_path / "outside.safetensors").write_bytes((directory / "model.safetensors").read_bytes())
    (directory / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {}, "weight_map": weight_map})
    )
    for read in (weight_files, inspect_checkpoint):
        refused(read, directory, match=match)
    refused(from_pretrained, directory, bert.BertModel, match=match)


@pytest.mark.parametrize("text", ["[" * 100_000, "not json", "\xff\xfe", '"weight_map"'])
def test_sharded_index_that_is_not_json_is_refused(tmp_path, text):
    directory, _, _ = _model_dir(tmp_path)
    (directory / "model.safetensors.index.json").write_bytes(text.encode("latin-1"))
    refused(weight_files, directory)


def test_shards_holding_the_same_tensor_twice_are_refused(tmp_path):
    directory, _, _ = _model_dir(tmp_path)
    data = (directory / "model.safetensors").read_bytes()
    for name in ("a.safetensors", "b.safetensors"):
        (directory / name).write_bytes(data)
    weight_map = {"x": "a.safetensors", "y": "b.safetensors"}
    (directory / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    refused(from_pretrained, directory, bert.BertModel, match="holds")


# -- weights that do not fit the model ------------------------------------------------------------


def _write_weights(directory: Path, change) -> None:
    flat = load_flat(directory / "model.safetensors")
    ptfunc.io.save(directory / "model.safetensors", change(dict(flat)))


def test_wrong_dtypes_and_shapes_are_reported_all_at_once(tmp_path):
    directory, _, _ = _model_dir(tmp_path)

    def change(flat):
        flat["embeddings.word_embeddings.weight"] = torch.zeros(41, 8)
        flat["pooler.dense.weight"] = torch.zeros(8, 8, dtype=torch.int64)
        flat["pooler.dense.bias"] = torch.zeros(8, dtype=torch.bool)
        flat["embeddings.LayerNorm.weight"] = torch.zeros(8, dtype=torch.complex64)
        return flat

    _write_weights(directory, change)
    error = refused(from_pretrained, directory, bert.BertModel, match="4 tensors do not fit")
    text = str(error)
    for name in ("word_embeddings", "pooler.dense.weight", "pooler.dense.bias", "LayerNorm"):
        assert name in text
    assert "(41, 8)" in text and "(40, 8)" in text and "int64" in text and "bool" in text
    assert str(directory / "model.safetensors") in text


@pytest.mark.parametrize("stored", [torch.float16, torch.bfloat16, torch.float64])
def test_other_float_kinds_are_cast_to_the_model_dtype_or_to_dtype(tmp_path, stored):
    directory, _, params = _model_dir(tmp_path)
    _write_weights(directory, lambda flat: {k: v.to(stored) for k, v in flat.items()})
    _, loaded = from_pretrained(directory, bert.BertModel)
    for name, value in to_flat_dict(loaded).items():
        assert value.dtype == torch.float32, name
        assert torch.equal(value, to_flat_dict(params)[name].to(stored).float()), name
    _, half = from_pretrained(directory, bert.BertModel, dtype=torch.float16)
    assert {v.dtype for v in to_flat_dict(half).values()} == {torch.float16}


def test_state_dict_with_integer_weights_is_refused():
    model = bert.BertModel(CONFIG)
    state = {k: v.long() for k, v in to_flat_dict(model.init(ptfunc.random.key(0))).items()}
    refused(from_torch_state_dict, model, state, match="expects a floating-point tensor")


# -- missing params: only those are initialised -------------------------------------------------


class _RealAllocations(torch.utils._python_dispatch.TorchDispatchMode):
    """Bytes of the non-meta tensors ops return, and the largest one."""

    def __init__(self) -> None:
        super().__init__()
        self.total = self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if not any(r.alias_info is not None for r in func._schema.returns):
            for t in torch.utils._pytree.tree_flatten(out)[0]:
                if isinstance(t, torch.Tensor) and not t.is_meta:
                    nbytes = t.numel() * t.element_size()
                    self.total += nbytes
                    self.largest = max(self.largest, nbytes)
        return out


def test_a_missing_head_is_initialised_alone_and_as_a_full_init_would():
    config = bert.BertConfig(
        vocab_size=600,
        hidden_size=256,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=512,
    )
    head = bert.BertForSequenceClassification(config)
    key = ptfunc.random.key(7)
    full = to_flat_dict(head.init(key))
    base_state = {k[len("bert.") :]: v for k, v in full.items() if k.startswith("bert.")}
    model_bytes = sum(v.numel() * v.element_size() for v in full.values())
    counter = _RealAllocations()
    with counter:
        params, info = from_torch_state_dict(head, base_state, key=key, output_loading_info=True)
    assert info.missing_keys == ["classifier.bias", "classifier.weight"]
    flat = to_flat_dict(params)
    for name in info.missing_keys:
        assert torch.equal(flat[name], full[name]), name
    assert counter.largest < 2**17, counter.largest  # no word-embedding-sized draw
    assert counter.total < model_bytes / 4, (counter.total, model_bytes)


# -- the command line ---------------------------------------------------------------------------


def _one_line_failure(capsys, argv: list[str]) -> str:
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if not line.startswith("convert: ")]
    assert len(lines) == 1 and lines[0].startswith("ptfunc: "), err
    assert "Traceback" not in err
    return lines[0]


def test_cli_inspect_and_convert_print_one_line_for_hostile_files(tmp_path, capsys):
    lying = tmp_path / "lying.safetensors"
    lying.write_bytes(_st(HOSTILE_HEADERS["offsets past the end"][0], b"\0" * 8))
    assert "lying.safetensors" in _one_line_failure(capsys, ["inspect", str(lying)])
    _, data = _zip_bin(tmp_path)
    cut = tmp_path / "cut.bin"
    cut.write_bytes(data[: len(data) // 2])
    assert "cut.bin" in _one_line_failure(capsys, ["inspect", str(cut)])
    directory, _, _ = _model_dir(tmp_path)
    weights = directory / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-10])
    line = _one_line_failure(
        capsys, ["convert", "--to", "pytorch-transformers", str(directory), str(tmp_path / "o")]
    )
    assert "model.safetensors" in line
    tf = tmp_path / "tf"
    tf.mkdir()
    raw = torch.arange(8.0).numpy().tobytes()
    prefix = _bundle(tf, [_plain("a", raw, (8,)), _plain("b", raw[:16], (4,), 8)], raw)
    assert "overlap" in _one_line_failure(capsys, ["inspect", str(prefix)])


def test_zlib_crc_is_what_the_zip_directory_stores(tmp_path):
    """The oracle of the flip test: the zip CRC-32 is zlib's, over the stored bytes."""
    source, _ = _zip_bin(tmp_path)
    with zipfile.ZipFile(source) as archive:
        for info in archive.infolist():
            assert zlib.crc32(archive.read(info)) == info.CRC
