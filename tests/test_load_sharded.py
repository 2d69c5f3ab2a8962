"""Sharded checkpoints loaded straight into bfloat16, memory-mapped, and Pythia-style
revisions by name (issue 20 point 3).

References: ``transformers`` 5 saves each checkpoint (``max_shard_size`` small enough for
several shards); ptfunc's params must equal its state dict bit for bit, its logits within
2e-2 in bfloat16 (as ``test_decoder_parity``) and 1e-5 in float32, and ptfunc's
``dtype="auto"`` must pick the dtype ``transformers`` 5's ``dtype="auto"`` picks. The memory
bounds are measured in a fresh process by ``benchmarks/load_llm_memory.py`` (peak RSS above
the RSS after imports, once every param's pages have been read) on synthetic checkpoints
of a few hundred MB: bounds on memory, not on time.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import sys
import warnings
import weakref
from pathlib import Path

import pytest
import torch
from _hub_server import FakeHub

import ptfunc
from ptfunc import io
from ptfunc.archs import gpt_neox, llama
from ptfunc.errors import CheckpointError
from ptfunc.io import safetensors_io
from ptfunc.tree import to_flat_dict

transformers = pytest.importorskip("transformers")

MB = 2**20
IDS = torch.tensor([[1, 5, 9, 2, 7, 3, 11], [4, 4, 8, 1, 0, 6, 2]])
LLAMA = dict(
    vocab_size=64,
    hidden_size=32,
    intermediate_size=48,
    num_hidden_layers=3,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=64,
)
NEOX = dict(
    vocab_size=64,
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    max_position_embeddings=64,
    rotary_pct=0.25,
)


def _bench():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "load_llm_memory.py"
    spec = importlib.util.spec_from_file_location("load_llm_memory", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("load_llm_memory", module)
    spec.loader.exec_module(module)
    return module


def _reference(cls="LlamaForCausalLM", config=LLAMA, seed=0, dtype=torch.bfloat16):
    torch.manual_seed(seed)
    hf_config = getattr(transformers, cls.replace("ForCausalLM", "Config"))(**config)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return getattr(transformers, cls)(hf_config).eval().to(dtype)


def _saved(directory, reference):
    reference.save_pretrained(directory, max_shard_size="20KB")
    shards = sorted(directory.glob("model-*.safetensors"))
    assert (directory / "model.safetensors.index.json").is_file() and len(shards) > 2
    return directory


def _check_equal(params, reference, dtype):
    flat = to_flat_dict(params)
    state = reference.state_dict()
    if "embed_out.weight" in flat:  # GPT-NeoX: transformers 5's module name for the file's
        state["embed_out.weight"] = state.pop("lm_head.weight")
    assert set(flat) == set(state)
    for name, value in flat.items():
        assert value.dtype == dtype, name
        assert torch.equal(value, state[name].to(dtype)), name


def _logits_diff(model, params, reference):
    with torch.no_grad():
        theirs = reference(IDS).logits
    return (model.apply(params, IDS).logits.float() - theirs.float()).abs().max().item()


class _FloatOutputs(torch.utils._python_dispatch.TorchDispatchMode):
    """The ops that return a float32 tensor off the meta device, with its size."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[str, int]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in torch.utils._pytree.tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor) and not t.is_meta and t.dtype == torch.float32:
                self.seen.append((str(func), t.numel()))
        return out


# -- (a) a bfloat16 checkpoint loads as bfloat16, never through float32 ----------------------


@pytest.mark.parametrize("dtype", ["auto", torch.bfloat16, "bfloat16", "torch.bfloat16"])
def test_sharded_bf16_llama_loads_as_bf16_equal_to_transformers(tmp_path, dtype):
    reference = _reference()
    directory = _saved(tmp_path / "llama", reference)
    with _FloatOutputs() as floats:
        model, params = llama.LlamaForCausalLM.from_pretrained(directory, dtype=dtype)
    assert floats.seen == []  # not one float32 tensor made, not even for one weight
    _check_equal(params, reference, torch.bfloat16)
    assert _logits_diff(model, params, reference) <= 2e-2


def test_without_dtype_the_params_are_float32_as_before(tmp_path):
    reference = _reference()
    model, params = llama.LlamaForCausalLM.from_pretrained(_saved(tmp_path / "llama", reference))
    _check_equal(params, reference, torch.float32)
    assert _logits_diff(model, params, reference.float()) <= 1e-5


@pytest.mark.parametrize(
    "recorded",
    [{"dtype": "bfloat16"}, {"dtype": "float32"}, {"torch_dtype": "float16"}, {}],
    ids=["config-bf16", "config-f32", "config-torch_dtype-f16", "config-none"],
)
@pytest.mark.parametrize("stored", [torch.bfloat16, torch.float32])
def test_auto_picks_the_dtype_transformers_5_picks(tmp_path, recorded, stored):
    reference = _reference(dtype=stored)
    directory = _saved(tmp_path / "llama", reference)
    config = json.loads((directory / "config.json").read_text())
    config.pop("dtype", None)
    (directory / "config.json").write_text(json.dumps({**config, **recorded}))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = transformers.LlamaForCausalLM.from_pretrained(directory, dtype="auto").dtype
    _, params = llama.LlamaForCausalLM.from_pretrained(directory, dtype="auto")
    assert {t.dtype for t in ptfunc.tree.leaves(params)} == {theirs}
    _check_equal(params, reference, theirs)


def test_a_bad_dtype_argument_is_refused():
    for dtype in ("int8", "half-precision", torch.int64, 16):
        with pytest.raises(TypeError, match="dtype must be a floating-point torch dtype"):
            llama.LlamaForCausalLM.from_pretrained("/nonexistent", dtype=dtype)


def test_auto_refuses_a_config_dtype_that_is_no_float_naming_config_json(tmp_path):
    from ptfunc.archs import bert

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = transformers.BertModel(
            transformers.BertConfig(
                vocab_size=30, hidden_size=16, num_hidden_layers=1, num_attention_heads=2
            )
        )
    reference.save_pretrained(tmp_path / "bert")  # BertConfig has no dtype field of its own
    config = json.loads((tmp_path / "bert" / "config.json").read_text())
    (tmp_path / "bert" / "config.json").write_text(json.dumps({**config, "dtype": "int8"}))
    with pytest.raises(CheckpointError, match="config.json: dtype 'int8'"):
        bert.BertModel.from_pretrained(tmp_path / "bert", dtype="auto")
    _, params = bert.BertModel.from_pretrained(tmp_path / "bert")  # the default ignores it
    assert {t.dtype for t in ptfunc.tree.leaves(params)} == {torch.float32}


# -- the params view the files copy-on-write -------------------------------------------------


def _hashes(directory):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in directory.iterdir()}


def test_params_are_copy_on_write_views_and_a_save_over_them_is_safe(tmp_path):
    reference = _reference()
    directory = _saved(tmp_path / "llama", reference)
    before = _hashes(directory)
    model, params = llama.LlamaForCausalLM.from_pretrained(directory, dtype="auto")
    weight = params["model"]["layers"][0]["mlp"]["up_proj"]["weight"]
    original = weight.clone()
    weight.add_(1.0)  # an in-place optimizer step on a param that views the file
    assert torch.equal(weight, original + 1.0)
    assert _hashes(directory) == before  # the file is untouched
    _, again = llama.LlamaForCausalLM.from_pretrained(directory, dtype="auto")
    _check_equal(again, reference, torch.bfloat16)
    # saving over the directory the params view replaces the files; the views stay valid
    io.save_pretrained(directory, model, params)
    assert not (directory / "model.safetensors.index.json").exists()
    assert torch.equal(weight, original + 1.0)
    _, saved = llama.LlamaForCausalLM.from_pretrained(directory, dtype="auto")
    for name, value in to_flat_dict(saved).items():
        assert torch.equal(value, to_flat_dict(params)[name]), name


def _odd_file(path: Path) -> None:
    """A safetensors file of every kind of entry, its float32 tensor at an odd offset."""
    tensors = [
        ("byte", "U8", [3], bytes([1, 2, 3])),
        ("odd", "F32", [2, 2], torch.tensor([1.5, -2.0, 3.25, 1e-3]).numpy().tobytes()),
        ("empty", "F32", [0, 4], b""),
        ("scalar", "F64", [], torch.tensor(2.5, dtype=torch.float64).numpy().tobytes()),
        ("flags", "BOOL", [3], bytes([1, 0, 1])),
        ("ids", "I64", [2], torch.tensor([7, -1]).numpy().tobytes()),
        ("half", "F16", [3], torch.tensor([0.5, 1.0, -4.0], dtype=torch.float16).numpy().tobytes()),
    ]
    header, offset = {}, 0
    for name, dtype, shape, data in tensors:
        header[name] = {
            "dtype": dtype,
            "shape": shape,
            "data_offsets": [offset, offset + len(data)],
        }
        offset += len(data)
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)  # the data section starts 8-aligned: "odd" is at byte 3
    path.write_bytes(len(raw).to_bytes(8, "little") + raw + b"".join(t[3] for t in tensors))


@pytest.mark.parametrize("dtype", [None, torch.bfloat16, torch.float64])
def test_load_flat_reads_every_kind_of_entry_as_safetensors_does(tmp_path, dtype):
    import safetensors.torch

    path = tmp_path / "odd.safetensors"
    _odd_file(path)
    reference = safetensors.torch.load_file(str(path))  # the format's own reader
    ours = io.load_flat(path, dtype=dtype)
    assert list(ours) == list(reference)
    for name, want in reference.items():
        if dtype is not None and want.is_floating_point():
            want = want.to(dtype)
        assert ours[name].dtype == want.dtype and torch.equal(ours[name], want), name
        assert ours[name].data_ptr() % ours[name].element_size() == 0, name  # aligned


# -- (b) a float32 checkpoint cast to bfloat16 one tensor at a time --------------------------


class _LiveNotBf16(torch.utils._python_dispatch.TorchDispatchMode):
    """The most bytes alive at once in fresh (non-view) CPU tensors that ops make of bytes
    (uint8) or floats other than bfloat16, and those dtypes (random keys, int64, left out)."""

    def __init__(self) -> None:
        super().__init__()
        self.live: list[tuple[weakref.ref, int]] = []
        self.most = 0
        self.dtypes: set[torch.dtype] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if not any(r.alias_info is not None for r in func._schema.returns):
            for t in torch.utils._pytree.tree_flatten(out)[0]:
                if (
                    isinstance(t, torch.Tensor)
                    and not t.is_meta
                    and (t.dtype == torch.uint8 or t.is_floating_point())
                    and t.dtype != torch.bfloat16
                ):
                    self.dtypes.add(t.dtype)
                    self.live = [(r, n) for r, n in self.live if r() is not None]
                    self.live.append((weakref.ref(t), t.numel() * t.element_size()))
                    self.most = max(self.most, sum(n for _, n in self.live))
        return out


def test_float32_shards_are_cast_to_bf16_one_chunk_at_a_time(tmp_path, monkeypatch):
    reference = _reference(dtype=torch.float32)
    directory = _saved(tmp_path / "llama", reference)
    chunk = 256  # bytes: 64 float32 elements; every weight here is larger
    monkeypatch.setattr(safetensors_io, "CHUNK_BYTES", chunk)
    with _LiveNotBf16() as others:
        model, params = llama.LlamaForCausalLM.from_pretrained(directory, dtype=torch.bfloat16)
    # the file's float32 bytes pass through one reused chunk of bytes: no float32 tensor
    # is ever made, and no more than one chunk is alive beside the bfloat16 params
    assert others.dtypes == {torch.uint8} and others.most == chunk
    _check_equal(params, reference, torch.bfloat16)
    assert _logits_diff(model, params, reference.to(torch.bfloat16)) <= 2e-2


# -- (c) peak memory of a few-hundred-MB checkpoint, in a fresh process ----------------------


def test_peak_rss_of_a_sharded_bf16_load_is_within_1_1x_the_checkpoint(tmp_path):
    bench = _bench()
    size = bench.write_checkpoint(
        tmp_path / "ck", bench.llama_config(400 * 10**6), shard_bytes=10**8
    )
    assert len(list((tmp_path / "ck").glob("model-*.safetensors"))) >= 4
    row = bench.measure("ptfunc", tmp_path / "ck", dtype="auto")
    assert row["dtypes"] == ["torch.bfloat16"]
    assert row["peak_touched"] <= 1.1 * size + 32 * MB, row["peak_touched"] / size


def test_peak_rss_of_a_float32_load_cast_to_bf16_stays_near_the_bf16_size(tmp_path):
    bench = _bench()
    config = bench.llama_config(200 * 10**6)  # shapes of 200 MB in bfloat16, 400 MB in float32
    size = bench.write_checkpoint(tmp_path / "ck", config, shard_bytes=10**10, dtype="float32")
    assert len(list((tmp_path / "ck").glob("model-*.safetensors"))) == 1  # one 400 MB shard
    row = bench.measure("ptfunc", tmp_path / "ck", dtype="bfloat16")
    assert row["dtypes"] == ["torch.bfloat16"]
    # the bfloat16 params (size / 2) and a 16 MiB chunk: never a float32 shard or model
    bound = 1.1 * size / 2 + safetensors_io.CHUNK_BYTES + 32 * MB
    assert row["peak_touched"] <= bound, row["peak_touched"] / size


# -- (d) Pythia's revisions by name through the hub ------------------------------------------


@pytest.fixture
def server(monkeypatch):
    """A running FakeHub that ``HF_ENDPOINT`` names; online (conftest sets offline), as in
    ``test_hub``."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with FakeHub() as fake:
        monkeypatch.setenv("HF_ENDPOINT", fake.url)
        yield fake


def test_pythia_revision_by_name_gets_that_branchs_weights(server, tmp_path):
    repo = "EleutherAI/pythia-tiny"
    steps = {"step1000": 1, "step143000": 2}
    references = {"main": _reference("GPTNeoXForCausalLM", NEOX, seed=0)}
    server.add_repo(repo, _saved(tmp_path / "main", references["main"]))
    for branch, seed in steps.items():
        references[branch] = _reference("GPTNeoXForCausalLM", NEOX, seed=seed)
        server.add_repo(repo, _saved(tmp_path / branch, references[branch]), branch=branch)
    for revision, reference in references.items():
        kw = {} if revision == "main" else {"revision": revision}
        model, params = gpt_neox.GPTNeoXForCausalLM.from_pretrained(repo, dtype="auto", **kw)
        _check_equal(params, reference, torch.bfloat16)
        assert _logits_diff(model, params, reference) <= 2e-2, revision
    fetched = [r.path for r in server.requests if "/resolve/step143000/" in r.path]
    assert any(p.endswith("model.safetensors.index.json") for p in fetched)


# -- damaged shards: CheckpointError naming the file -----------------------------------------


def _cut(path: Path, keep: int) -> None:
    path.write_bytes(path.read_bytes()[:keep])


def _grow_first_tensor(path: Path, keep: int) -> None:
    """A header claiming one more row for its first tensor than the file holds bytes for."""
    data = path.read_bytes()
    length = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + length])
    name = min((k for k in header if k != "__metadata__"), key=lambda k: header[k]["data_offsets"])
    header[name]["shape"][0] += 1
    raw = json.dumps(header).encode()
    path.write_bytes(len(raw).to_bytes(8, "little") + raw + data[8 + length :])


@pytest.mark.parametrize(
    "damage",
    [
        lambda p: _cut(p, 4),  # inside the header's length
        lambda p: _cut(p, 100),  # inside the header
        lambda p: _cut(p, p.stat().st_size // 2),  # inside a tensor's bytes
        lambda p: _cut(p, p.stat().st_size - 1),  # one byte short
        lambda p: p.write_bytes(p.read_bytes() + b"\0"),  # a byte too many
        lambda p: _grow_first_tensor(p, 0),  # a tensor whose bytes are cut
    ],
    ids=["length", "header", "mid-tensor", "one-byte-short", "trailing-byte", "short-tensor"],
)
@pytest.mark.parametrize("dtype", ["auto", torch.float16])
def test_a_damaged_shard_is_refused_naming_it(tmp_path, damage, dtype):
    directory = _saved(tmp_path / "llama", _reference())
    shard = sorted(directory.glob("model-*.safetensors"))[1]
    damage(shard)
    with pytest.raises(CheckpointError, match=shard.name):
        llama.LlamaForCausalLM.from_pretrained(directory, dtype=dtype)


def test_an_index_naming_a_missing_shard_is_refused_naming_both(tmp_path):
    directory = _saved(tmp_path / "llama", _reference())
    shard = sorted(directory.glob("model-*.safetensors"))[-1]
    shard.unlink()
    with pytest.raises(CheckpointError, match="index.json names shards") as error:
        llama.LlamaForCausalLM.from_pretrained(directory, dtype="auto")
    assert shard.name in str(error.value)


@pytest.mark.parametrize("dtype", [None, torch.float16])
def test_a_shard_cut_while_it_is_read_is_refused(tmp_path, monkeypatch, dtype):
    directory = _saved(tmp_path / "llama", _reference())
    shard = sorted(directory.glob("model-*.safetensors"))[1]
    check = safetensors_io.read_header

    def then_cut(path):
        out = check(path)
        if Path(path) == shard:  # the header was fine; then the file shrinks
            _cut(shard, shard.stat().st_size - 10)
        return out

    monkeypatch.setattr(safetensors_io, "read_header", then_cut)
    with pytest.raises(CheckpointError, match=f"{shard.name} changed while it was read"):
        llama.LlamaForCausalLM.from_pretrained(directory, dtype=dtype)
