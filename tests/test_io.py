"""ptfunc.io: safetensors files, state-dict name maps and pretrained directories.

References: today's ``transformers`` (``save_pretrained``/``from_pretrained``) and
pytorch-transformers 1.0 (``pytorch_model.bin`` with old ``gamma``/``beta`` names).
Outputs after a load must match the reference module within 1e-5 max-abs.
"""

from __future__ import annotations

import json
import pickle
import warnings

import pytest
import torch

import ptfunc
from ptfunc import io, tree
from ptfunc.archs import bert

transformers = pytest.importorskip("transformers")

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


def _hf(name="BertForMaskedLM", **kw):
    torch.manual_seed(0)
    return getattr(transformers, name)(transformers.BertConfig(**{**CONFIG, **kw})).eval()


def _max_diff(a, b):
    return (a - b).abs().max().item()


# -- save / load -------------------------------------------------------------------------------


def test_save_load_round_trip(tmp_path):
    model = bert.BertForMaskedLM(bert.BertConfig(**CONFIG))
    params = model.init(ptfunc.random.key(0))
    io.save(tmp_path / "p.safetensors", params)
    back = io.load(tmp_path / "p.safetensors")
    assert tree.structure(back) == tree.structure(params)
    assert all(
        torch.equal(a, b) for a, b in zip(tree.leaves(back), tree.leaves(params), strict=True)
    )


def test_failed_save_leaves_previous_file_intact(tmp_path, monkeypatch):
    path = tmp_path / "p.safetensors"
    io.save(path, {"a": torch.ones(3)})
    before = path.read_bytes()

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("ptfunc._atomic.os.replace", boom)
    with pytest.raises(OSError, match="disk full"):
        io.save(path, {"a": torch.zeros(3)})
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["p.safetensors"]  # no temp files left


def test_save_refuses_aliased_leaves_and_non_tensors(tmp_path):
    w = torch.ones(2)
    with pytest.raises(ValueError, match="share memory"):
        io.save(tmp_path / "x.safetensors", {"a": w, "b": w})
    with pytest.raises(TypeError, match="tensor leaves"):
        io.save(tmp_path / "x.safetensors", {"a": 1.0})
    assert not (tmp_path / "x.safetensors").exists()


def test_truncated_safetensors_is_a_clear_error(tmp_path):
    path = tmp_path / "p.safetensors"
    io.save(path, {"a": torch.ones(100)})
    path.write_bytes(path.read_bytes()[:50])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        io.load(path)
    with pytest.raises(FileNotFoundError, match="expected a safetensors file"):
        io.load(tmp_path / "missing.safetensors")


# -- state dicts -------------------------------------------------------------------------------


def test_shape_mismatch_names_both_shapes():
    reference = _hf(vocab_size=61)
    model = bert.BertForMaskedLM(bert.BertConfig(**CONFIG))
    with pytest.raises(ValueError, match=r"word_embeddings.weight.*\(61, 16\).*\(60, 16\)"):
        io.from_torch_state_dict(model, reference.state_dict())


def test_checkpoint_of_another_architecture_is_refused():
    gpt2 = transformers.GPT2LMHeadModel(
        transformers.GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=60, n_positions=32)
    )
    with pytest.raises(ValueError, match="another architecture"):
        io.from_torch_state_dict(bert.BertModel(bert.BertConfig(**CONFIG)), gpt2.state_dict())


def test_missing_and_unexpected_keys_reported_by_name():
    base = _hf("BertModel")
    head = bert.BertForSequenceClassification(bert.BertConfig(**CONFIG))
    with pytest.warns(UserWarning, match="classifier.weight"):
        params, info = io.from_torch_state_dict(head, base.state_dict(), output_loading_info=True)
    assert info.missing_keys == ["classifier.bias", "classifier.weight"]
    assert info.unexpected_keys == []
    with pytest.raises(ValueError, match="missing keys"):
        io.from_torch_state_dict(head, base.state_dict(), strict=True)
    # base weights landed under the prefix
    torch.testing.assert_close(
        params["bert"]["pooler"]["dense"]["weight"],
        base.state_dict()["pooler.dense.weight"],
        rtol=0,
        atol=0,
    )

    mlm = _hf("BertForMaskedLM")
    with pytest.warns(UserWarning, match="cls.predictions"):
        _, info = io.from_torch_state_dict(
            bert.BertModel(bert.BertConfig(**CONFIG)), mlm.state_dict(), output_loading_info=True
        )
    assert "cls.predictions.bias" in info.unexpected_keys
    assert "pooler.dense.weight" in info.missing_keys  # transformers' MLM has no pooler


def test_round_trip_to_torch_state_dict_loads_into_transformers():
    model = bert.BertForMaskedLM(bert.BertConfig(**CONFIG))
    params = model.init(ptfunc.random.key(1))
    reference = _hf()
    state = io.to_torch_state_dict(model, params)
    assert torch.equal(
        state["cls.predictions.decoder.weight"], state["bert.embeddings.word_embeddings.weight"]
    )
    missing, unexpected = reference.load_state_dict(state, strict=False)
    assert unexpected == [] and all("position_ids" in m or "decoder.bias" in m for m in missing)
    with torch.no_grad():
        ref = reference(IDS, attention_mask=MASK).logits
    assert _max_diff(model.apply(params, IDS, attention_mask=MASK).logits, ref) <= 1e-5


# -- pretrained directories ---------------------------------------------------------------------


def test_transformers_layout_with_and_without_prefix(tmp_path):
    reference = _hf("BertForSequenceClassification")
    reference.save_pretrained(tmp_path / "cls")
    assert (tmp_path / "cls" / "model.safetensors").is_file()
    model, params = io.from_pretrained(tmp_path / "cls", bert.BertForSequenceClassification)
    with torch.no_grad():
        ref = reference(IDS, attention_mask=MASK).logits
    assert _max_diff(model.apply(params, IDS, attention_mask=MASK).logits, ref) <= 1e-5

    base = _hf("BertModel")
    base.save_pretrained(tmp_path / "base")  # names without the "bert." prefix
    model, params = io.from_pretrained(tmp_path / "base", bert.BertModel)
    with torch.no_grad():
        ref = base(IDS, attention_mask=MASK).last_hidden_state
    assert _max_diff(model.apply(params, IDS, attention_mask=MASK).last_hidden_state, ref) <= 1e-5


pt = pytest.importorskip("pytorch_transformers")


def _seed_dir(tmp_path, name="BertForPreTraining", old_layer_norm_names=True):
    config = pt.BertConfig(
        CONFIG["vocab_size"], **{k: v for k, v in CONFIG.items() if k != "vocab_size"}
    )
    torch.manual_seed(0)
    reference = getattr(pt, name)(config).eval()
    reference.save_pretrained(str(tmp_path))
    if old_layer_norm_names:  # checkpoints of the 0.x era spell LayerNorm params gamma/beta
        state = torch.load(tmp_path / "pytorch_model.bin", weights_only=True)
        state = {
            k.replace("LayerNorm.weight", "LayerNorm.gamma").replace(
                "LayerNorm.bias", "LayerNorm.beta"
            ): v
            for k, v in state.items()
        }
        torch.save(state, tmp_path / "pytorch_model.bin")
    return reference


@pytest.mark.parametrize("old_names", [False, True], ids=["weight-bias", "gamma-beta"])
def test_seed_layout_pytorch_model_bin(tmp_path, old_names):
    reference = _seed_dir(tmp_path, old_layer_norm_names=old_names)
    model, params, info = io.from_pretrained(
        tmp_path, bert.BertForPreTraining, output_loading_info=True
    )
    assert info.missing_keys == [] and info.unexpected_keys == []
    with torch.no_grad():
        ref = reference(IDS, attention_mask=MASK)
    out = model.apply(params, IDS, attention_mask=MASK)
    assert _max_diff(out.prediction_logits, ref[0]) <= 1e-5
    assert _max_diff(out.seq_relationship_logits, ref[1]) <= 1e-5


def test_bin_is_read_with_weights_only(tmp_path):
    _seed_dir(tmp_path, old_layer_norm_names=False)

    class Evil:
        def __reduce__(self):
            return (print, ("this must never run",))

    with open(tmp_path / "pytorch_model.bin", "wb") as f:
        pickle.dump({"x": Evil()}, f)
    with pytest.raises(ValueError, match="weights_only"):
        io.from_pretrained(tmp_path, bert.BertForPreTraining)


def test_truncated_bin_and_missing_files(tmp_path):
    _seed_dir(tmp_path, old_layer_norm_names=False)
    data = (tmp_path / "pytorch_model.bin").read_bytes()
    (tmp_path / "pytorch_model.bin").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated"):
        io.from_pretrained(tmp_path, bert.BertForPreTraining)
    (tmp_path / "pytorch_model.bin").unlink()
    with pytest.raises(FileNotFoundError, match="no weights"):
        io.from_pretrained(tmp_path, bert.BertForPreTraining)
    with pytest.raises(FileNotFoundError, match="no directory or file at"):
        io.from_pretrained(tmp_path / "nope", bert.BertForPreTraining)


def test_config_of_another_model_type_is_refused(tmp_path):
    transformers.GPT2Config(n_layer=1).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="model_type 'bert'.*'gpt2'"):
        io.from_pretrained(tmp_path, bert.BertModel)


@pytest.mark.parametrize(
    "name",
    [
        "BertModel",
        "BertForMaskedLM",
        "BertForPreTraining",
        "BertForSequenceClassification",
        "BertForQuestionAnswering",
    ],
)
def test_save_pretrained_loads_in_transformers_to_identical_outputs(tmp_path, name):
    model = getattr(bert, name)(bert.BertConfig(**CONFIG, num_labels=2))
    params = model.init(ptfunc.random.key(2))
    io.save_pretrained(tmp_path, model, params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference, info = getattr(transformers, name).from_pretrained(
            tmp_path, output_loading_info=True
        )
    reference.eval()
    assert info["missing_keys"] == set() or not info["missing_keys"], info
    assert not info["unexpected_keys"], info
    with torch.no_grad():
        ref = reference(IDS, attention_mask=MASK)
    out = model.apply(params, IDS, attention_mask=MASK)
    assert _max_diff(out[0], ref[0]) <= 1e-5
    # ptfunc reads its own directories back exactly
    model2, params2 = io.from_pretrained(tmp_path, getattr(bert, name))
    assert model2 == model
    assert all(
        torch.equal(a, b) for a, b in zip(tree.leaves(params2), tree.leaves(params), strict=True)
    )
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["architectures"] == [name] and config["model_type"] == "bert"


def test_failed_save_pretrained_leaves_previous_directory_intact(tmp_path, monkeypatch):
    model = bert.BertModel(bert.BertConfig(**CONFIG))
    io.save_pretrained(tmp_path, model, model.init(ptfunc.random.key(0)))
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    monkeypatch.setattr(
        "ptfunc._atomic.os.fsync", lambda fd: (_ for _ in ()).throw(OSError("io error"))
    )
    with pytest.raises(OSError, match="io error"):
        io.save_pretrained(tmp_path, model, model.init(ptfunc.random.key(1)))
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
