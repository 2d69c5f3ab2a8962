"""Loading by name through the Hugging Face cache, against a fake Hub on 127.0.0.1.

``tests/_hub_server.py`` serves hub-style repos built from tiny models that today's
``transformers`` saves (the reference for the numbers); ``HF_ENDPOINT`` points at it and
``HF_HOME`` at a temporary folder (conftest). The server counts every request, so
"nothing is downloaded twice", "offline makes no request" and "no ``.py`` is ever
asked for" are checked on the wire.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import socket
from pathlib import Path

import pytest
import torch
from _cli import ptfunc_cli
from _hub_server import FakeHub

import ptfunc
from ptfunc import auto, hub
from ptfunc.archs import bert, gpt2
from ptfunc.errors import CheckpointError, HubError

transformers = pytest.importorskip("transformers")

REPO_ID = "google-bert/bert-base-uncased"
CONFIG = dict(
    vocab_size=60,
    hidden_size=16,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=24,
    max_position_embeddings=32,
)
IDS = torch.tensor([[2, 7, 9, 11, 3], [5, 6, 1, 0, 0]])
MASK = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
ASSETS = Path(ptfunc.__file__).parent / "assets" / "tiny-shakespeare"


@pytest.fixture
def server(monkeypatch):
    """A running FakeHub that ``HF_ENDPOINT`` names; online (conftest sets offline)."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with FakeHub() as fake:
        monkeypatch.setenv("HF_ENDPOINT", fake.url)
        yield fake


def _reference(seed=0, cls="BertForMaskedLM"):
    torch.manual_seed(seed)
    return getattr(transformers, cls)(transformers.BertConfig(**CONFIG)).eval()


def _saved(tmp_path, reference, name="saved", **save_kw):
    path = tmp_path / name
    reference.save_pretrained(path, **save_kw)
    return path


def _logits_diff(model, params, reference):
    ours = model.apply(params, IDS, attention_mask=MASK).logits
    with torch.no_grad():
        theirs = reference(IDS, attention_mask=MASK).logits
    return (ours.float() - theirs).abs().max().item()


def _paths(fake):
    return [r.path.split("?")[0] for r in fake.requests]


def _cache(tmp_path=None):
    return Path(os.environ["HF_HOME"]) / "hub"


def _blobs(repo_id=REPO_ID, cache=None):
    folder = (cache or _cache()) / f"models--{repo_id.replace('/', '--')}" / "blobs"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def _dead_endpoint():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    return f"http://127.0.0.1:{port}"


# -- the 1.0 names --------------------------------------------------------------------------


def _seed_names():
    pt = pytest.importorskip("pytorch_transformers")
    from pytorch_transformers import (
        modeling_bert,
        modeling_gpt2,
        modeling_openai,
        modeling_transfo_xl,
        modeling_xlm,
        modeling_xlnet,
    )

    del pt
    maps = {
        "bert": modeling_bert.BERT_PRETRAINED_MODEL_ARCHIVE_MAP,
        "openai-gpt": modeling_openai.OPENAI_GPT_PRETRAINED_MODEL_ARCHIVE_MAP,
        "gpt2": modeling_gpt2.GPT2_PRETRAINED_MODEL_ARCHIVE_MAP,
        "transfo-xl": modeling_transfo_xl.TRANSFO_XL_PRETRAINED_MODEL_ARCHIVE_MAP,
        "xlnet": modeling_xlnet.XLNET_PRETRAINED_MODEL_ARCHIVE_MAP,
        "xlm": modeling_xlm.XLM_PRETRAINED_MODEL_ARCHIVE_MAP,
    }
    return {name: kind for kind, archive in maps.items() for name in archive}


def test_every_seed_shortcut_name_is_in_the_table():
    seed = _seed_names()  # read from pytorch-transformers 1.0 itself
    assert len(seed) == 27
    assert set(hub.SHORTCUT_NAMES) == set(seed)
    for name, kind in seed.items():
        entry = hub.SHORTCUT_NAMES[name]
        assert entry["model_type"] == kind, name
        org, repo = entry["repo_id"].split("/")
        assert repo == name or (kind == "transfo-xl" and repo == "transfo-xl-wt103"), name
    assert hub.repo_id_for("bert-base-uncased") == REPO_ID
    assert hub.repo_id_for("gpt2") == "openai-community/gpt2"
    assert hub.repo_id_for("xlm-mlm-en-2048") == "FacebookAI/xlm-mlm-en-2048"
    assert hub.repo_id_for("transfo-xl-wt103") == "transfo-xl/transfo-xl-wt103"


def test_max_len_of_each_name_is_the_seed_tokenizers_cap():
    pytest.importorskip("pytorch_transformers")
    from pytorch_transformers import (
        tokenization_bert,
        tokenization_gpt2,
        tokenization_openai,
        tokenization_transfo_xl,
        tokenization_xlm,
        tokenization_xlnet,
    )

    caps = {}
    for module in (
        tokenization_bert,
        tokenization_gpt2,
        tokenization_openai,
        tokenization_transfo_xl,
        tokenization_xlm,
        tokenization_xlnet,
    ):
        caps.update(module.PRETRAINED_POSITIONAL_EMBEDDINGS_SIZES)
    for name, entry in hub.SHORTCUT_NAMES.items():
        assert entry["max_len"] == caps.get(name), name


# -- downloads --------------------------------------------------------------------------------


def test_shortcut_name_downloads_only_what_is_needed_and_matches_transformers(server, tmp_path):
    reference = _reference()
    repo = _saved(tmp_path, reference)
    (repo / "modeling_bert_custom.py").write_text("raise SystemExit('code ran')\n")
    (repo / "tf_model.h5").write_bytes(b"\0" * 64)
    (repo / "flax_model.msgpack").write_bytes(b"\0" * 64)
    (repo / "onnx").mkdir()
    (repo / "onnx" / "model.onnx").write_bytes(b"\0" * 64)
    (repo / "README.md").write_text("# a model card\n")
    config = json.loads((repo / "config.json").read_text())
    config["auto_map"] = {"AutoModel": "modeling_bert_custom.BertModel"}
    (repo / "config.json").write_text(json.dumps(config))
    server.add_repo(REPO_ID, repo)

    model, params = bert.BertForMaskedLM.from_pretrained("bert-base-uncased")
    assert _logits_diff(model, params, reference) <= 1e-5
    fetched = {p.rsplit("/", 1)[-1] for p in _paths(server) if "/resolve/" in p}
    assert fetched == {"config.json", "model.safetensors"}
    assert not any(p.endswith((".py", ".h5", ".msgpack", ".onnx", ".md")) for p in _paths(server))
    snapshot = next((_cache() / "models--google-bert--bert-base-uncased" / "snapshots").iterdir())
    assert sorted(p.name for p in snapshot.iterdir()) == ["config.json", "model.safetensors"]


def test_code_files_are_never_requested(server, tmp_path):
    server.add_repo("org/with-code", {"config.json": b"{}", "modeling.py": b"print(1)"})
    with pytest.raises(HubError, match="never downloads code"):
        hub.fetch("org/with-code", ["modeling.py"])
    with pytest.raises(HubError, match="outside the repo"):
        hub.fetch("org/with-code", ["../../etc/passwd"])
    assert not any(".py" in p or "passwd" in p for p in _paths(server))


def test_repo_id_with_a_branch_a_tag_and_a_commit(server, tmp_path):
    first, second = _reference(0), _reference(1)
    sha1 = server.add_repo("someone/tiny-bert", _saved(tmp_path, first, "a"), tags=["v1.0"])
    sha2 = server.add_repo("someone/tiny-bert", _saved(tmp_path, second, "b"))
    server.add_repo("someone/tiny-bert", _saved(tmp_path, first, "c"), branch="dev")

    def load(**kw):
        return bert.BertForMaskedLM.from_pretrained("someone/tiny-bert", **kw)

    assert _logits_diff(*load(), second) <= 1e-5
    assert _logits_diff(*load(revision="v1.0"), first) <= 1e-5
    assert _logits_diff(*load(revision=sha1), first) <= 1e-5
    assert _logits_diff(*load(revision=sha2), second) <= 1e-5
    assert _logits_diff(*load(revision="dev"), first) <= 1e-5
    with pytest.raises(HubError, match="no revision 'v9'"):
        load(revision="v9")


def test_second_load_downloads_nothing_and_offline_makes_no_request(server, tmp_path, monkeypatch):
    reference = _reference()
    server.add_repo(REPO_ID, _saved(tmp_path, reference))
    bert.BertForMaskedLM.from_pretrained("bert-base-uncased")
    assert len(server.content_gets()) == 2

    server.clear_requests()
    model, params = bert.BertForMaskedLM.from_pretrained("bert-base-uncased")
    assert server.content_gets() == []  # metadata checks only
    assert _logits_diff(model, params, reference) <= 1e-5

    server.clear_requests()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model, params = bert.BertForMaskedLM.from_pretrained("bert-base-uncased")
    assert server.requests == []
    assert _logits_diff(model, params, reference) <= 1e-5
    model, params = bert.BertForMaskedLM.from_pretrained(REPO_ID)  # the repo id: same cache
    assert server.requests == []

    monkeypatch.delenv("HF_HUB_OFFLINE")
    model, params = bert.BertForMaskedLM.from_pretrained("bert-base-uncased", local_files_only=True)
    assert server.requests == []
    assert _logits_diff(model, params, reference) <= 1e-5


def test_offline_with_nothing_cached_fails_clearly(server, tmp_path, monkeypatch):
    server.add_repo(REPO_ID, _saved(tmp_path, _reference()))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(HubError, match="offline and not in the cache: config.json") as caught:
        bert.BertForMaskedLM.from_pretrained("bert-base-uncased")
    assert REPO_ID in str(caught.value)
    monkeypatch.delenv("HF_HUB_OFFLINE")
    with pytest.raises(HubError, match="offline and not in the cache"):
        bert.BertForMaskedLM.from_pretrained("bert-base-uncased", local_files_only=True)
    with pytest.raises(HubError, match="offline and not in the cache: vocab.txt"):
        ptfunc.tokenize.BertTokenizer.from_pretrained("bert-base-uncased", local_files_only=True)
    assert server.requests == []


def test_network_down_falls_back_to_the_cache_or_says_offline(server, tmp_path, monkeypatch):
    reference = _reference()
    server.add_repo(REPO_ID, _saved(tmp_path, reference))
    bert.BertForMaskedLM.from_pretrained("bert-base-uncased")
    monkeypatch.setenv("HF_ENDPOINT", _dead_endpoint())
    model, params = bert.BertForMaskedLM.from_pretrained("bert-base-uncased")
    assert _logits_diff(model, params, reference) <= 1e-5
    with pytest.raises(HubError, match="offline and not in the cache: config.json"):
        bert.BertForMaskedLM.from_pretrained("google-bert/bert-large-cased")


def test_cache_dir_and_force_download(server, tmp_path):
    reference = _reference()
    server.add_repo(REPO_ID, _saved(tmp_path, reference))
    elsewhere = tmp_path / "my-cache"
    model, params = bert.BertForMaskedLM.from_pretrained(REPO_ID, cache_dir=elsewhere)
    assert _logits_diff(model, params, reference) <= 1e-5
    assert len(_blobs(cache=elsewhere)) == 2 and _blobs() == []
    server.clear_requests()
    bert.BertForMaskedLM.from_pretrained(REPO_ID, cache_dir=elsewhere)
    assert server.content_gets() == []
    bert.BertForMaskedLM.from_pretrained(REPO_ID, cache_dir=elsewhere, force_download=True)
    assert len(server.content_gets()) == 2


def test_hf_hub_cache_and_hf_home_choose_the_cache(server, tmp_path, monkeypatch):
    server.add_repo(REPO_ID, _saved(tmp_path, _reference()))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "home"))
    bert.BertForMaskedLM.from_pretrained(REPO_ID)
    assert len(_blobs(cache=tmp_path / "home" / "hub")) == 2
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    bert.BertForMaskedLM.from_pretrained(REPO_ID)
    assert len(_blobs(cache=tmp_path / "hub-cache")) == 2


def test_a_local_directory_wins_over_a_name(server, tmp_path, monkeypatch):
    local, remote = _reference(0), _reference(1)
    server.add_repo("someone/tiny-bert", _saved(tmp_path, remote))
    (tmp_path / "someone").mkdir()
    local.save_pretrained(tmp_path / "someone" / "tiny-bert")
    monkeypatch.chdir(tmp_path)
    model, params = bert.BertForMaskedLM.from_pretrained("someone/tiny-bert")
    assert _logits_diff(model, params, local) <= 1e-5
    assert server.requests == []


# -- broken downloads ---------------------------------------------------------------------------


def test_a_download_cut_halfway_leaves_nothing_and_a_retry_is_correct(server, tmp_path):
    reference = _reference()
    server.add_repo(REPO_ID, _saved(tmp_path, reference))
    server.fault(REPO_ID, "model.safetensors", "truncate", times=20)
    with pytest.raises((HubError, CheckpointError)):
        bert.BertForMaskedLM.from_pretrained("bert-base-uncased")
    folder = _cache() / "models--google-bert--bert-base-uncased"
    complete = [p.name for p in (folder / "blobs").iterdir() if not p.name.endswith(".incomplete")]
    assert len(complete) == 1  # config.json only: the weights never landed under a hash
    snapshot = next((folder / "snapshots").iterdir())
    assert [p.name for p in snapshot.iterdir()] == ["config.json"]

    server.clear_faults()
    model, params = bert.BertForMaskedLM.from_pretrained("bert-base-uncased")
    assert _logits_diff(model, params, reference) <= 1e-5


@pytest.mark.parametrize("filename", ["model.safetensors", "config.json"])
def test_a_file_with_the_wrong_hash_is_refused_and_not_cached(server, tmp_path, filename):
    reference = _reference()
    server.add_repo(REPO_ID, _saved(tmp_path, reference))
    server.fault(REPO_ID, filename, "wrong_content")
    with pytest.raises(CheckpointError, match=f"{filename}: the downloaded bytes do not match"):
        bert.BertForMaskedLM.from_pretrained("bert-base-uncased")
    from huggingface_hub import try_to_load_from_cache

    assert try_to_load_from_cache(REPO_ID, filename, cache_dir=_cache()) is None
    model, params = bert.BertForMaskedLM.from_pretrained("bert-base-uncased")
    assert _logits_diff(model, params, reference) <= 1e-5


def test_a_server_error_is_a_clear_error(server, tmp_path):
    server.add_repo(REPO_ID, _saved(tmp_path, _reference()))
    server.fault(REPO_ID, "config.json", "error500", times=20)
    with pytest.raises(HubError, match="could not fetch config.json of google-bert"):
        bert.BertForMaskedLM.from_pretrained("bert-base-uncased")


# -- file layouts -------------------------------------------------------------------------------


def _bin_repo(tmp_path, reference, shards=1):
    folder = tmp_path / f"bin{shards}"
    folder.mkdir()
    reference.config.save_pretrained(folder)
    state = {k: v.contiguous() for k, v in reference.state_dict().items()}
    if shards == 1:
        torch.save(state, folder / "pytorch_model.bin")
        return folder
    names = sorted(state)
    weight_map = {}
    for i in range(shards):
        part = names[i::shards]
        shard = f"pytorch_model-{i + 1:05d}-of-{shards:05d}.bin"
        torch.save({k: state[k] for k in part}, folder / shard)
        weight_map.update(dict.fromkeys(part, shard))
    index = {"metadata": {}, "weight_map": weight_map}
    (folder / "pytorch_model.bin.index.json").write_text(json.dumps(index))
    return folder


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_bin_only_repos_one_file_and_sharded(server, tmp_path):
    reference = _reference()
    server.add_repo("old/one-bin", _bin_repo(tmp_path, reference))
    server.add_repo("old/sharded-bin", _bin_repo(tmp_path, reference, shards=3))
    for name in ("old/one-bin", "old/sharded-bin"):
        model, params = bert.BertForMaskedLM.from_pretrained(name)
        assert _logits_diff(model, params, reference) <= 1e-5, name
    fetched = {p.rsplit("/", 1)[-1] for p in _paths(server) if "/resolve/" in p}
    assert "pytorch_model-00003-of-00003.bin" in fetched


def test_a_pickle_that_runs_code_never_loads(server, tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned > pwned.txt",))

    folder = tmp_path / "evil"
    folder.mkdir()
    _reference().config.save_pretrained(folder)
    (folder / "pytorch_model.bin").write_bytes(pickle.dumps({"bert.x": Evil()}))
    server.add_repo("bad/pickle", folder)
    with pytest.raises(ValueError, match="pytorch_model.bin"):
        bert.BertForMaskedLM.from_pretrained("bad/pickle")
    assert not (Path.cwd() / "pwned.txt").exists()


def test_sharded_safetensors_repo(server, tmp_path):
    reference = _reference()
    folder = _saved(tmp_path, reference, max_shard_size="20KB")
    assert (folder / "model.safetensors.index.json").exists()
    shards = sorted(p.name for p in folder.glob("model-*.safetensors"))
    assert len(shards) > 1
    server.add_repo("big/sharded", folder)
    model, params = bert.BertForMaskedLM.from_pretrained("big/sharded")
    assert _logits_diff(model, params, reference) <= 1e-5
    fetched = {p.rsplit("/", 1)[-1] for p in _paths(server) if "/resolve/" in p}
    assert fetched == {"config.json", "model.safetensors.index.json", *shards}


def test_a_sharded_index_naming_files_outside_the_repo_is_refused(server, tmp_path):
    folder = _saved(tmp_path, _reference(), max_shard_size="20KB")
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    first = next(iter(index["weight_map"]))
    index["weight_map"][first] = "../../../outside.safetensors"
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    server.add_repo("bad/index", folder)
    with pytest.raises(CheckpointError, match="outside"):
        bert.BertForMaskedLM.from_pretrained("bad/index")
    assert not any("outside" in p for p in _paths(server))


def test_a_hand_made_cache_loads_with_the_server_gone(tmp_path, monkeypatch):
    reference = _reference()
    saved = _saved(tmp_path, reference)
    sha = "0123456789abcdef0123456789abcdef01234567"
    folder = tmp_path / "cache" / "models--google-bert--bert-base-uncased"
    snapshot = folder / "snapshots" / sha
    (folder / "blobs").mkdir(parents=True)
    snapshot.mkdir(parents=True)
    for name in ("config.json", "model.safetensors"):
        blob = folder / "blobs" / f"blob-{name}"
        shutil.copy(saved / name, blob)
        (snapshot / name).symlink_to(os.path.relpath(blob, snapshot))
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text(sha)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_ENDPOINT", _dead_endpoint())
    for offline in ("1", "0"):  # explicitly offline, and online with no server at all
        monkeypatch.setenv("HF_HUB_OFFLINE", offline)
        model, params = bert.BertForMaskedLM.from_pretrained("bert-base-uncased")
        assert _logits_diff(model, params, reference) <= 1e-5
        model, params = bert.BertForMaskedLM.from_pretrained(REPO_ID, revision=sha)
        assert _logits_diff(model, params, reference) <= 1e-5


# -- options -------------------------------------------------------------------------------------


def test_dtype_and_device(server, tmp_path):
    reference = _reference()
    server.add_repo(REPO_ID, _saved(tmp_path, reference))
    _, full = bert.BertForMaskedLM.from_pretrained(REPO_ID)
    model, half = bert.BertForMaskedLM.from_pretrained(REPO_ID, dtype=torch.bfloat16, device="cpu")
    half_by_name = ptfunc.tree.to_flat_dict(half)
    for path, a in ptfunc.tree.to_flat_dict(full).items():
        b = half_by_name[path]
        assert b.dtype == torch.bfloat16 and b.device.type == "cpu", path
        assert torch.equal(a.to(torch.bfloat16), b), path
    assert _logits_diff(model, half, reference) < 0.1  # bf16 rounding, same model
    _, meta = bert.BertForMaskedLM.from_pretrained(REPO_ID, device="meta")
    assert all(t.is_meta for t in ptfunc.tree.leaves(meta))


def test_config_overrides_and_config_from_pretrained(server, tmp_path):
    reference = _reference(cls="BertForSequenceClassification")
    server.add_repo("some/classifier", _saved(tmp_path, reference))
    config = bert.BertConfig.from_pretrained("some/classifier")
    assert config.hidden_size == 16 and config.num_labels == 2
    config = bert.BertConfig.from_pretrained("some/classifier", num_labels=5)
    assert config.num_labels == 5
    assert auto.config_from_pretrained("some/classifier").vocab_size == 60


def test_auto_picks_the_class_from_config_and_task(server, tmp_path):
    reference = _reference(cls="BertForSequenceClassification")
    server.add_repo("some/classifier", _saved(tmp_path, reference))
    model, params = auto.from_pretrained("some/classifier")
    assert type(model).__name__ == "BertForSequenceClassification"
    ours = model.apply(params, IDS, attention_mask=MASK).logits
    with torch.no_grad():
        theirs = reference(IDS, attention_mask=MASK).logits
    assert (ours - theirs).abs().max().item() <= 1e-5
    model, _ = auto.from_pretrained("some/classifier", task="masked-lm")
    assert type(model).__name__ == "BertForMaskedLM"
    with pytest.raises(ValueError, match="unknown task"):
        auto.from_pretrained("some/classifier", task="summarise")


# -- errors -------------------------------------------------------------------------------------


def test_an_unknown_name_suggests_the_closest(server):
    with pytest.raises(HubError, match="Did you mean 'bert-base-uncased'"):
        bert.BertModel.from_pretrained("bert-base-uncase")
    with pytest.raises(HubError, match="no model repository 'nobody/nothing'"):
        bert.BertModel.from_pretrained("nobody/nothing")
    with pytest.raises(FileNotFoundError, match="no directory or file at ./not/here"):
        bert.BertModel.from_pretrained("./not/here")


def test_a_gated_repo_says_how_to_pass_a_token(server, tmp_path):
    server.add_repo("meta/gated", _saved(tmp_path, _reference()), gated=True)
    with pytest.raises(HubError, match="gated or private.*token="):
        bert.BertForMaskedLM.from_pretrained("meta/gated")
    model, _ = bert.BertForMaskedLM.from_pretrained("meta/gated", token="hf_test")
    assert any(r.headers.get("authorization") == "Bearer hf_test" for r in server.requests)


def test_a_repo_without_weights_lists_its_files(server, tmp_path):
    folder = _saved(tmp_path, _reference())
    (folder / "model.safetensors").unlink()
    (folder / "tf_model.h5").write_bytes(b"\0" * 8)
    server.add_repo("tf/only", folder)
    with pytest.raises(HubError, match="model.safetensors") as caught:
        bert.BertForMaskedLM.from_pretrained("tf/only")
    assert "tf_model.h5" in str(caught.value) and "config.json" in str(caught.value)


# -- tokenizers ---------------------------------------------------------------------------------


def _serve_fixture(server, repo_id, folder, *names):
    server.add_repo(repo_id, {name: (folder / source).read_bytes() for name, source in names})


TEXTS = [
    "Hello, world! The quick brown fox jumps over the lazy dog.",
    "Tokenizers from the Hub: caf\u00e9, na\u00efve, 12,345.67 -- don't stop.",
]


def test_bert_tokenizer_by_name_equals_the_local_load_and_transformers(server, shared_fixtures):
    folder = shared_fixtures / "bert-base-uncased"
    _serve_fixture(server, REPO_ID, folder, ("vocab.txt", "vocab.txt"))
    ours = ptfunc.tokenize.BertTokenizer.from_pretrained("bert-base-uncased")
    local = ptfunc.tokenize.BertTokenizer.from_pretrained(folder / "vocab.txt")
    theirs = transformers.BertTokenizer(str(folder / "vocab.txt"), do_lower_case=True)
    assert ours.max_len == 512  # 1.0's cap for the name
    for text in TEXTS:
        ids = ours.convert_tokens_to_ids(ours.tokenize(text))
        assert ids == local.convert_tokens_to_ids(local.tokenize(text))
        assert ids == theirs.convert_tokens_to_ids(theirs.tokenize(text))
    fetched = {p.rsplit("/", 1)[-1] for p in _paths(server) if "/resolve/" in p}
    assert fetched == {"vocab.txt"}  # the optional JSON files are not in this repo
    assert type(auto.tokenizer("bert-base-uncased")).__name__ == "BertTokenizer"


def test_gpt2_tokenizer_and_model_by_name(server, shared_fixtures):
    folder = shared_fixtures / "tiny-gpt2"
    files = [
        (n, n)
        for n in (
            "config.json",
            "model.safetensors",
            "vocab.json",
            "merges.txt",
            "tokenizer_config.json",
            "special_tokens_map.json",
        )
    ]
    _serve_fixture(server, "sshleifer/tiny-gpt2", folder, *files)
    tokenizer = ptfunc.tokenize.GPT2Tokenizer.from_pretrained("sshleifer/tiny-gpt2")
    theirs = transformers.GPT2Tokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"))
    for text in TEXTS:
        assert tokenizer.encode(text) == theirs.encode(text)
    model, params = gpt2.GPT2LMHeadModel.from_pretrained("sshleifer/tiny-gpt2")
    reference = transformers.GPT2LMHeadModel.from_pretrained(folder).eval()
    ids = torch.tensor([tokenizer.encode(TEXTS[0])])
    with torch.no_grad():
        expected = reference(ids).logits
    assert (model.apply(params, ids).logits - expected).abs().max().item() <= 1e-5


def test_xlnet_tokenizer_by_name(server, shared_fixtures):
    folder = shared_fixtures / "xlnet-base-cased"
    _serve_fixture(server, "xlnet/xlnet-base-cased", folder, ("spiece.model", "spiece.model"))
    ours = ptfunc.tokenize.XLNetTokenizer.from_pretrained("xlnet-base-cased")
    local = ptfunc.tokenize.XLNetTokenizer.from_pretrained(folder / "spiece.model")
    pt = pytest.importorskip("pytorch_transformers")
    theirs = pt.XLNetTokenizer(str(folder / "spiece.model"))  # the 1.0 tokenizer
    for text in TEXTS:
        ids = ours.convert_tokens_to_ids(ours.tokenize(text))
        assert ids == local.convert_tokens_to_ids(local.tokenize(text))
        assert ids == theirs.convert_tokens_to_ids(theirs.tokenize(text))


def _txl_state():
    symbols = ["<unk>", "<eos>", "the", "cat", "sat", "on", "mat", "."]
    return {
        "special": ["<unk>", "<eos>"],
        "min_freq": 0,
        "max_size": None,
        "lower_case": False,
        "delimiter": None,
        "vocab_file": None,
        "never_split": ["<unk>", "<eos>"],
        "idx2sym": symbols,
        "sym2idx": {s: i for i, s in enumerate(symbols)},
        "unk_idx": 0,
    }


def test_transfo_xl_vocab_pkl_by_name_without_running_code(server, tmp_path):
    class Normalizer:  # stands for the sacremoses objects transformers 4 pickles
        def __reduce__(self):
            return (os.system, ("echo pwned > pwned.txt",))

    state = {**_txl_state(), "moses_punct_normalizer": Normalizer()}
    server.add_repo("transfo-xl/transfo-xl-wt103", {"vocab.pkl": pickle.dumps(state)})
    tokenizer = ptfunc.tokenize.TransfoXLTokenizer.from_pretrained("transfo-xl-wt103")
    assert not (Path.cwd() / "pwned.txt").exists()
    assert tokenizer.convert_tokens_to_ids(tokenizer.tokenize("the cat sat on the mat .")) == [
        2,
        3,
        4,
        5,
        2,
        6,
        7,
    ]
    pt = pytest.importorskip("pytorch_transformers")
    torch.save(_txl_state(), tmp_path / "vocab.bin")
    seed = pt.TransfoXLTokenizer.from_pretrained(str(tmp_path))
    text = "the cat sat on a mat ."
    assert tokenizer.convert_tokens_to_ids(tokenizer.tokenize(text)) == seed.convert_tokens_to_ids(
        seed.tokenize(text)
    )


# -- the command line ---------------------------------------------------------------------------


def test_cli_generate_by_name_against_the_server(server, monkeypatch):
    monkeypatch.setenv("TQDM_POSITION", "-1")  # bars on, as on a terminal
    server.add_repo("someone/tiny-shakespeare", ASSETS)
    args = ["generate", "ROMEO:", "--greedy", "--max-new-tokens", "8"]
    local = ptfunc_cli(*args, "--model", ASSETS)
    assert local.returncode == 0, local.stderr
    first = ptfunc_cli(*args, "--model", "someone/tiny-shakespeare")
    assert first.returncode == 0, first.stderr
    assert first.stdout == local.stdout
    assert "model.safetensors" in first.stderr  # huggingface_hub's progress bar
    server.clear_requests()
    again = ptfunc_cli(*args, "--model", "someone/tiny-shakespeare")
    assert again.returncode == 0 and again.stdout == local.stdout
    assert again.stderr == ""  # nothing is printed when cached
    assert server.content_gets() == []
    offline = ptfunc_cli(*args, "--model", "someone/tiny-shakespeare", "--local-files-only")
    assert offline.stdout == local.stdout
    missing = ptfunc_cli(*args, "--model", "someone/absent", "--local-files-only")
    assert missing.returncode == 1 and "offline and not in the cache" in missing.stderr


def test_cli_inspect_and_encode_by_name(server, tmp_path, shared_fixtures):
    reference = _reference()
    folder = _saved(tmp_path, reference)
    shutil.copy(shared_fixtures / "bert-base-uncased" / "vocab.txt", folder / "vocab.txt")
    server.add_repo(REPO_ID, folder)
    shown = ptfunc_cli("inspect", "bert-base-uncased")
    assert shown.returncode == 0, shown.stderr
    assert "bert" in shown.stdout.lower()
    encoded = ptfunc_cli("encode", "--tokenizer", "bert-base-uncased", stdin="Hello, world!\n")
    assert encoded.returncode == 0, encoded.stderr
    theirs = transformers.BertTokenizer(str(folder / "vocab.txt"))
    expected = theirs.encode("Hello, world!")
    assert [int(x) for x in encoded.stdout.replace(",", " ").split()] in (
        expected,
        expected[1:-1],
    )
