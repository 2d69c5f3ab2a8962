"""ptfunc.io.tf_checkpoint against checkpoints written by TensorFlow itself.

Oracle: the fixtures under ``tests/data/checkpoints/bundle/`` were saved by TensorFlow
2.21 (``tests/gen_checkpoints_bundle.py``); ``expected.json`` / ``expected.npz`` hold
the values the generator assigned, written by numpy. Names, shapes, dtypes and values
must match exactly (bitwise; bfloat16 compared by bit pattern).
CRC-32C oracle: RFC 3720 B.4 test vectors and a bitwise reference implementation.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from ptfunc.io._crc32c import crc32c, mask, unmask
from ptfunc.io.tf_checkpoint import CheckpointError, TFCheckpoint, load_tf_checkpoint

BUNDLE = Path(__file__).resolve().parent / "data" / "checkpoints" / "bundle"
FIXTURES = ["dtypes", "partitioned", "sharded", "object_graph", "big_endian", "snappy"]

TORCH_DTYPES = {
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "float64": torch.float64,
    "int32": torch.int32,
    "int64": torch.int64,
    "int8": torch.int8,
    "uint8": torch.uint8,
    "bool": torch.bool,
}


def expected(fixture: str) -> dict[str, dict]:
    """name -> {"dtype", "shape", "value" (numpy; bfloat16 as uint16 bits) or "strings"}."""
    folder = BUNDLE / fixture
    meta = json.loads((folder / "expected.json").read_text())
    arrays = np.load(folder / "expected.npz")
    for info in meta.values():
        if "key" in info:
            info["value"] = arrays[info["key"]]
        else:
            info["strings"] = [s.encode("latin-1") for s in info["strings_latin1"]]
    return meta


def as_numpy(tensor: torch.Tensor) -> np.ndarray:
    """Bit-exact numpy copy (bfloat16 -> uint16 bit patterns)."""
    if tensor.dtype == torch.bfloat16:
        return tensor.view(torch.int16).numpy().view(np.uint16)
    return tensor.numpy()


# -- CRC-32C ------------------------------------------------------------------


def crc32c_bitwise(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFF


def test_crc32c_known_vectors():
    # "123456789" check value; RFC 3720 appendix B.4.
    assert crc32c(b"123456789") == 0xE3069283
    assert crc32c(bytes(32)) == 0x8A9136AA
    assert crc32c(b"\xff" * 32) == 0x62A8AB43
    assert crc32c(bytes(range(32))) == 0x46DD794E
    assert crc32c(bytes(range(31, -1, -1))) == 0x113FDB5C
    assert crc32c(b"") == 0


@pytest.mark.parametrize(
    "length", [*range(0, 40), 1023, 1024, 1025, 4096 + 7, 65 * 1024 + 3, 300_001]
)
def test_crc32c_matches_bitwise_reference(length):
    data = np.random.default_rng(length).integers(0, 256, length, dtype=np.uint8).tobytes()
    reference = crc32c_bitwise(data) if length < 70_000 else None
    value = crc32c(data)
    if reference is not None:
        assert value == reference
    cut = length // 3
    assert crc32c(data[cut:], crc32c(data[:cut])) == value


def test_crc32c_large_buffer_chained():
    data = np.random.default_rng(0).integers(0, 256, 5_000_003, dtype=np.uint8).tobytes()
    parts = [data[:1], data[1:1_000_000], data[1_000_000:4_999_999], data[4_999_999:]]
    crc = 0
    for part in parts:
        crc = crc32c(part, crc)
    assert crc == crc32c(data)


def test_mask_roundtrip():
    for value in [0, 1, 0xFFFFFFFF, 0xE3069283, 0x12345678]:
        assert unmask(mask(value)) == value
    assert mask(0) == 0xA282EAD8


# -- fixtures written by TensorFlow ----------------------------------------------


@pytest.mark.parametrize("fixture", FIXTURES)
def test_names_shapes_dtypes_values(fixture):
    want = expected(fixture)
    ckpt = TFCheckpoint(BUNDLE / fixture)
    assert ckpt.names == sorted(want)
    assert len(ckpt) == len(want) and list(ckpt) == ckpt.names
    for name, info in want.items():
        assert name in ckpt
        assert ckpt.shape(name) == tuple(info["shape"]), name
        assert ckpt.tf_dtype(name) == info["dtype"], name
        if info["dtype"] == "string":
            assert ckpt.read_strings(name) == info["strings"]
            with pytest.raises(CheckpointError, match="string"):
                ckpt.dtype(name)
            continue
        assert ckpt.dtype(name) == TORCH_DTYPES[info["dtype"]], name
        tensor = ckpt.read(name)
        assert tensor.dtype == TORCH_DTYPES[info["dtype"]]
        assert tuple(tensor.shape) == tuple(info["shape"])
        assert ckpt.nbytes(name) == tensor.numel() * tensor.element_size()
        got = as_numpy(tensor)
        assert got.dtype == info["value"].dtype, name
        assert got.tobytes() == info["value"].tobytes(), name


def test_dtypes_fixture_covers_what_it_promises():
    ckpt = TFCheckpoint(BUNDLE / "dtypes")
    dtypes = {ckpt.tf_dtype(n) for n in ckpt}
    assert set(TORCH_DTYPES) <= dtypes
    assert {len(ckpt.shape(n)) for n in ckpt} >= {0, 1, 2, 3, 4}
    assert (0, 3) in {ckpt.shape(n) for n in ckpt}
    assert "bert/encoder/layer_0/attention/self/query/kernel" in ckpt


def test_partitioned_variables_are_listed_once():
    ckpt = TFCheckpoint(BUNDLE / "partitioned")
    assert all(not n.startswith("\x00") and "part_" not in n for n in ckpt.names)
    assert ckpt._slices.keys() == {"part/rows", "part/cols", "part/int_rows", "part/bf16_rows"}
    assert len(ckpt._slices["part/cols"]) == 4


def test_sharded_uses_two_data_files():
    ckpt = TFCheckpoint(BUNDLE / "sharded")
    assert ckpt.num_shards == 2
    assert {ckpt._entries[n].shard_id for n in ckpt} == {0, 1}


def test_read_returns_owned_memory():
    ckpt = TFCheckpoint(BUNDLE / "dtypes")
    first = ckpt.read("bert/embeddings/word_embeddings")
    second = ckpt.read("bert/embeddings/word_embeddings")
    assert torch.equal(first, second)
    first.zero_()  # writable, and not shared with the next read
    assert torch.count_nonzero(second) == second.numel()


# -- path resolution ---------------------------------------------------------------


def test_path_forms(tmp_path):
    folder = BUNDLE / "dtypes"
    prefix = str(folder / "model.ckpt")
    for path in [
        prefix,
        Path(prefix),
        prefix + ".index",
        prefix + ".data-00000-of-00001",
        folder,
    ]:
        assert TFCheckpoint(path).prefix == prefix
    # A state file with an absolute path from another machine: found by base name.
    copy = tmp_path / "moved"
    shutil.copytree(folder, copy)
    (copy / "checkpoint").write_text('model_checkpoint_path: "/elsewhere/model.ckpt"\n')
    assert TFCheckpoint(copy).prefix == str(copy / "model.ckpt")
    # Two checkpoints and no state file: ambiguous.
    (copy / "checkpoint").unlink()
    shutil.copy(copy / "model.ckpt.index", copy / "other.index")
    with pytest.raises(CheckpointError, match="2 checkpoints"):
        TFCheckpoint(copy)


def test_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.index"):
        TFCheckpoint(tmp_path / "nothing")
    with pytest.raises(FileNotFoundError, match=r"\*\.index"):
        TFCheckpoint(tmp_path)
    (tmp_path / "v1.ckpt").write_bytes(b"not a bundle")
    with pytest.raises(FileNotFoundError, match="V1-format"):
        TFCheckpoint(tmp_path / "v1.ckpt")
    copy = tmp_path / "sharded"
    shutil.copytree(BUNDLE / "sharded", copy)
    os.remove(copy / "model.ckpt.data-00001-of-00002")
    with pytest.raises(FileNotFoundError, match="data-00001-of-00002"):
        TFCheckpoint(copy / "model.ckpt")


# -- load_tf_checkpoint ------------------------------------------------------------


def test_load_all_names_and_progress():
    calls = []
    tensors = load_tf_checkpoint(
        BUNDLE / "partitioned", progress=lambda d, t, w: calls.append((d, t, w))
    )
    want = expected("partitioned")
    assert list(tensors) == sorted(want)
    assert calls == [(i + 1, len(want), n) for i, n in enumerate(sorted(want))]
    for name, tensor in tensors.items():
        assert as_numpy(tensor).tobytes() == want[name]["value"].tobytes()


def test_load_selected_names():
    names = ["types/int8", "bert/embeddings/word_embeddings"]
    tensors = load_tf_checkpoint(BUNDLE / "dtypes" / "model.ckpt", names=names)
    assert list(tensors) == names
    with pytest.raises(KeyError, match="no/such"):
        load_tf_checkpoint(BUNDLE / "dtypes", names=["no/such"])


def test_load_skips_string_tensors_by_default():
    tensors = load_tf_checkpoint(BUNDLE / "object_graph")
    assert list(tensors) == ["model/dense/.ATTRIBUTES/VARIABLE_VALUE"]
    with pytest.raises(CheckpointError, match="string"):
        load_tf_checkpoint(BUNDLE / "object_graph", names=["_CHECKPOINTABLE_OBJECT_GRAPH"])
