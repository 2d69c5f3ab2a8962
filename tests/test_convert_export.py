"""Export of ptfunc model directories to today's ``transformers`` layout and to 1.0's.

Oracles: ``transformers`` 5 (``from_pretrained`` of the specific class) and
pytorch-transformers 1.0 (``<Class>.from_pretrained(dir)``) load each exported
directory; their float32 outputs equal ptfunc's within 1e-5 (max-abs). Then the
reference library's own ``save_pretrained`` output, read back by ptfunc, gives
bitwise the same params (the round trips ptfunc -> transformers -> ptfunc and
ptfunc -> 1.0 -> ptfunc), as does ptfunc reading the exported directory itself.

Transformer-XL is not in ``transformers`` 5: only the 1.0 path runs here, with the
test-only ``seed_bool_masks`` shim of ``tests/test_transfo_xl_parity.py`` (1.0's
uint8 attention masks fail in torch 2.x). Its 4.x export was checked by hand with
transformers 4.46.3. XLM with sinusoidal positions is checked against
``transformers`` only (1.0 cannot build it under current torch).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch

import ptfunc
from ptfunc import io, tree
from ptfunc.archs import bert, gpt2, openai_gpt, transfo_xl, xlm, xlnet
from ptfunc.io.convert.export import export_directory

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    transformers = pytest.importorskip("transformers")
    pt = pytest.importorskip("pytorch_transformers")
    from test_transfo_xl_parity import seed_bool_masks  # noqa: F401 (autouse shim)

ATOL = 1e-5
V = 40
B, S = 2, 6
GEN = torch.Generator().manual_seed(0)
IDS = torch.randint(0, V, (B, S), generator=GEN)
TYPES = torch.randint(0, 2, (B, S), generator=GEN)
MASK = torch.tensor([[1] * S, [1] * (S - 2) + [0, 0]])
LANGS = torch.randint(0, 2, (B, S), generator=GEN)

BERT = dict(
    vocab_size=V,
    hidden_size=16,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=32,
    max_position_embeddings=16,
)
GPT = dict(vocab_size=V, n_positions=16, n_ctx=16, n_embd=16, n_layer=2, n_head=4)
XLNET = dict(vocab_size=V, d_model=16, n_layer=2, n_head=4, d_inner=32)
XLM = dict(vocab_size=V, emb_dim=16, n_layers=2, n_heads=4, n_langs=2, max_position_embeddings=16)
TXL = dict(
    vocab_size=V, cutoffs=[10, 20], d_model=16, d_embed=16, n_head=2, d_head=8, d_inner=32,
    div_val=2, n_layer=2, tgt_len=S, mem_len=4, clamp_len=6,
)  # fmt: skip

BERT_INPUTS = dict(token_type_ids=TYPES, attention_mask=MASK)
XLM_INPUTS = dict(langs=LANGS)

# (ptfunc module, class, config, inputs, in transformers 5)
CASES = {
    "bert-pretraining": (bert, "BertForPreTraining", BERT, BERT_INPUTS, True),
    "bert-classification-3": (
        bert, "BertForSequenceClassification", {**BERT, "num_labels": 3}, BERT_INPUTS, True
    ),
    "gpt2-lm": (gpt2, "GPT2LMHeadModel", GPT, {}, True),
    "openai-gpt-lm": (openai_gpt, "OpenAIGPTLMHeadModel", GPT, {}, True),
    "xlnet-lm": (xlnet, "XLNetLMHeadModel", XLNET, {}, True),
    "xlnet-qa": (xlnet, "XLNetForQuestionAnswering", XLNET, {}, True),
    "xlm-lm": (xlm, "XLMWithLMHeadModel", XLM, XLM_INPUTS, True),
    "xlm-classification": (xlm, "XLMForSequenceClassification", XLM, XLM_INPUTS, True),
    "transfo-xl-lm": (transfo_xl, "TransfoXLLMHeadModel", TXL, {}, False),
}  # fmt: skip
TRANSFORMERS_CASES = [name for name, case in CASES.items() if case[4]]


def _close(a, b, what):
    err = (a - b).abs().max().item()
    assert a.shape == b.shape and err <= ATOL, f"{what}: {tuple(a.shape)} {tuple(b.shape)} {err}"


def _assert_same_params(a, b, what):
    flat_a, flat_b = tree.to_flat_dict(a), tree.to_flat_dict(b)
    assert sorted(flat_a) == sorted(flat_b), what
    for name, value in flat_a.items():
        assert flat_b[name].dtype == value.dtype and torch.equal(flat_b[name], value), (what, name)


def _source(case, tmp_path):
    """A ptfunc directory with random params (noise on every leaf, so no leaf is 0 or 1)."""
    module, name, config, _, _ = CASES[case]
    model = getattr(module, name)(getattr(module, name).config_class(**config))
    g = torch.Generator().manual_seed(1)
    params = tree.map(
        lambda x: x + 0.1 * torch.randn(x.shape, generator=g), model.init(ptfunc.random.key(0))
    )
    io.save_pretrained(tmp_path / "src", model, params)
    return model, params, tmp_path / "src"


def _ours(model, params, case):
    return model.apply(params, IDS, **CASES[case][3])[0]


def _export_and_load(case, tmp_path, to, library):
    """Export a random ptfunc directory and load it with the reference library's class."""
    model, params, src = _source(case, tmp_path)
    out = export_directory(src, tmp_path / to, to=to)
    weights = "model.safetensors" if to == "transformers" else "pytorch_model.bin"
    assert sorted(p.name for p in out.iterdir()) == ["config.json", weights]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cls = getattr(library, CASES[case][1])
        reference, info = cls.from_pretrained(str(out), output_loading_info=True)
    _, back = io.from_pretrained(out, type(model), strict=True)
    _assert_same_params(params, back, "exported directory")
    return model, params, reference.eval(), info


def _resaved(reference, model, params, tmp_path, what):
    """The reference's own save_pretrained, read back by ptfunc: bitwise the same params."""
    (tmp_path / "resaved").mkdir()
    reference.save_pretrained(str(tmp_path / "resaved"))
    loaded_model, resaved = io.from_pretrained(tmp_path / "resaved", type(model), strict=True)
    _assert_same_params(params, resaved, what)
    return loaded_model.config.replace(extra={})


@pytest.mark.parametrize("case", TRANSFORMERS_CASES)
def test_transformers_loads_the_export_and_round_trips(case, tmp_path):
    model, params, reference, info = _export_and_load(case, tmp_path, "transformers", transformers)
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    with torch.no_grad():
        want = reference(IDS, **CASES[case][3])[0]
    _close(_ours(model, params, case), want, f"{case} vs transformers")
    config = _resaved(reference, model, params, tmp_path, "ptfunc -> transformers -> ptfunc")
    assert config == _comparable(model.config, case)


def _comparable(config, case):
    """What the config reads back as (XLNet's tanh gelu is written gelu_new)."""
    if case.startswith("xlnet") and config.ff_activation == "gelu":
        return config.replace(ff_activation="gelu_new")
    return config


@pytest.mark.parametrize("case", list(CASES))
def test_pytorch_transformers_loads_the_export_and_round_trips(case, tmp_path):
    model, params, reference, info = _export_and_load(case, tmp_path, "pytorch-transformers", pt)
    assert not info["unexpected_keys"], info
    assert all(k.endswith("attn.bias") for k in info["missing_keys"]), info  # causal masks
    inputs = dict(CASES[case][3])  # Transformer-XL: mems=None on both sides (zero memories)
    with torch.no_grad():
        want = reference(IDS, **inputs)[0]
    ours = _ours(model, params, case)
    _close(ours, want.reshape(ours.shape), f"{case} vs pytorch-transformers 1.0")
    assert _resaved(reference, model, params, tmp_path, "ptfunc -> 1.0 -> ptfunc") == model.config


def test_seed_config_has_every_1_0_field_under_its_1_0_name(tmp_path):
    seed_configs = {
        "bert-pretraining": pt.BertConfig(V),
        "gpt2-lm": pt.GPT2Config(),
        "openai-gpt-lm": pt.OpenAIGPTConfig(),
        "xlnet-lm": pt.XLNetConfig(),
        "xlm-lm": pt.XLMConfig(),
        "transfo-xl-lm": pt.TransfoXLConfig(),
    }
    for case, seed in seed_configs.items():
        _, _, src = _source(case, tmp_path / case)
        out = export_directory(src, tmp_path / case / "seed", to="pytorch-transformers")
        text = (out / "config.json").read_text()
        written = json.loads(text)
        assert text == json.dumps(written, indent=2, sort_keys=True) + "\n"  # as 1.0 writes it
        missing = set(seed.to_dict()) - set(written)
        assert not missing, (case, missing)
        vocab_key = {"xlnet-lm": "n_token", "transfo-xl-lm": "n_token", "xlm-lm": "n_words"}
        assert written[vocab_key.get(case, "vocab_size")] == V


def test_sinusoidal_xlm_writes_the_fixed_table(tmp_path):
    model = xlm.XLMWithLMHeadModel(xlm.XLMConfig(**XLM, sinusoidal_embeddings=True))
    params = model.init(ptfunc.random.key(0))
    io.save_pretrained(tmp_path / "src", model, params)
    out = export_directory(tmp_path / "src", tmp_path / "hf", to="transformers")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = transformers.XLMWithLMHeadModel.from_pretrained(out).eval()
    with torch.no_grad():
        want = reference(IDS, langs=LANGS).logits
    _close(model.apply(params, IDS, langs=LANGS).logits, want, "sinusoidal XLM")
    _, back = io.from_pretrained(out, xlm.XLMWithLMHeadModel, strict=True)
    _assert_same_params(params, back, "sinusoidal round trip")


def test_a_1_0_directory_exports_with_its_head_class(tmp_path):
    """1.0's config.json names no class: the head is found from the weights' names."""
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        seed = pt.BertForPreTraining(
            pt.BertConfig(V, **{k: v for k, v in BERT.items() if k != "vocab_size"})
        )
    (tmp_path / "seed").mkdir()
    seed.save_pretrained(str(tmp_path / "seed"))
    out = export_directory(tmp_path / "seed", tmp_path / "hf", to="transformers")
    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == ["BertForPreTraining"] and config["model_type"] == "bert"
    reference = transformers.BertForPreTraining.from_pretrained(out).eval()
    with torch.no_grad():
        _close(reference(IDS, **BERT_INPUTS)[0], seed.eval()(IDS, **BERT_INPUTS)[0], "1.0 -> hf")


def test_tokenizer_files_are_copied(tmp_path):
    model, params, src = _source("xlm-lm", tmp_path)
    (src / "vocab.json").write_text('{"a</w>": 0}')
    (src / "merges.txt").write_text("a b 3\n")
    (src / "special_tokens_map.json").write_text("{}")
    (src / "notes.md").write_text("not copied")
    for to in ("transformers", "pytorch-transformers"):
        out = export_directory(src, tmp_path / to, to=to)
        names = {p.name for p in out.iterdir()}
        assert {"vocab.json", "merges.txt", "special_tokens_map.json"} <= names
        assert "notes.md" not in names
        assert (out / "merges.txt").read_bytes() == (src / "merges.txt").read_bytes()


def test_progress_and_bad_arguments(tmp_path):
    model, params, src = _source("gpt2-lm", tmp_path)
    calls = []
    export_directory(src, tmp_path / "hf", to="transformers", progress=lambda *a: calls.append(a))
    assert calls and calls[-1][0] == calls[-1][1] == len(calls)
    with pytest.raises(ValueError, match="to must be"):
        export_directory(src, tmp_path / "x", to="onnx")
    with pytest.raises(FileNotFoundError, match="config.json"):
        export_directory(tmp_path / "nowhere", tmp_path / "x")
    with pytest.raises(ValueError, match="source directory"):
        export_directory(src, src)
    # a directory already holding the other layout's weights would be read instead
    with pytest.raises(ValueError, match="model.safetensors"):
        export_directory(src, tmp_path / "hf", to="pytorch-transformers")
    assert not (tmp_path / "x").exists() and not (tmp_path / "hf" / "pytorch_model.bin").exists()


def test_activations_take_1_0_names(tmp_path):
    """XLNet's tanh gelu goes to transformers as gelu_new and back to 1.0 as gelu."""
    model, params, src = _source("xlnet-lm", tmp_path)
    hf_dir = export_directory(src, tmp_path / "hf", to="transformers")
    assert json.loads((hf_dir / "config.json").read_text())["ff_activation"] == "gelu_new"
    seed_dir = export_directory(hf_dir, tmp_path / "seed", to="pytorch-transformers")
    assert json.loads((seed_dir / "config.json").read_text())["ff_activation"] == "gelu"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = pt.XLNetLMHeadModel.from_pretrained(str(seed_dir)).eval()
    with torch.no_grad():
        _close(_ours(model, params, "xlnet-lm"), reference(IDS)[0], "XLNet via both layouts")
    config = json.loads((src / "config.json").read_text())
    config["ff_activation"] = "tanh"
    (src / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="no ff_activation='tanh'"):
        export_directory(src, tmp_path / "seed2", to="pytorch-transformers")


def test_xlm_without_language_embeddings_cannot_go_to_1_0(tmp_path):
    model = xlm.XLMWithLMHeadModel(xlm.XLMConfig(**XLM, use_lang_emb=False))
    io.save_pretrained(tmp_path / "src", model, model.init(ptfunc.random.key(0)))
    with pytest.raises(ValueError, match="use_lang_emb"):
        export_directory(tmp_path / "src", tmp_path / "seed", to="pytorch-transformers")
    export_directory(tmp_path / "src", tmp_path / "hf", to="transformers")  # today's has it


def test_weights_the_class_lacks_are_refused(tmp_path):
    model, params, src = _source("gpt2-lm", tmp_path)
    with pytest.raises(ValueError, match="lacks weights"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            export_directory(src, tmp_path / "out", model_class="GPT2DoubleHeadsModel")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("case", ["bert-pretraining", "xlnet-qa", "openai-gpt-lm"])
def test_round_trip_through_both_exports(case, tmp_path):
    """ptfunc -> 1.0 -> transformers -> ptfunc, with the exporter only."""
    model, params, src = _source(case, tmp_path)
    seed_dir = export_directory(src, tmp_path / "seed", to="pytorch-transformers")
    hf_dir = export_directory(seed_dir, tmp_path / "hf", to="transformers")
    _, back = io.from_pretrained(hf_dir, type(model), strict=True)
    _assert_same_params(params, back, "through both layouts")
    assert Path(hf_dir / "model.safetensors").is_file()


@pytest.mark.parametrize("case", TRANSFORMERS_CASES)
def test_default_save_loads_in_transformers(case, tmp_path):
    """``save_pretrained(dir, params)`` itself (no export step) is today's layout."""
    model, params, src = _source(case, tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference, info = getattr(transformers, CASES[case][1]).from_pretrained(
            str(src), output_loading_info=True
        )
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    with torch.no_grad():
        want = reference.eval()(IDS, **CASES[case][3])[0]
    _close(_ours(model, params, case), want, f"{case}: default save vs transformers")


@pytest.mark.parametrize("case", list(CASES))
def test_pt1_save_loads_in_pytorch_transformers(case, tmp_path):
    """``save_pretrained(dir, params, format="pt1")`` writes what 1.0 loads, replacing a
    safetensors file that ptfunc would otherwise read instead of the new weights."""
    model, params, src = _source(case, tmp_path)
    model.save_pretrained(src, params, format="pt1")  # over the safetensors save
    assert sorted(p.name for p in src.iterdir()) == ["config.json", "pytorch_model.bin"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference, info = getattr(pt, CASES[case][1]).from_pretrained(
            str(src), output_loading_info=True
        )
    assert not info["unexpected_keys"], info
    assert all(k.endswith("attn.bias") for k in info["missing_keys"]), info
    inputs = dict(CASES[case][3])  # Transformer-XL: mems=None on both sides (zero memories)
    with torch.no_grad():
        want = reference.eval()(IDS, **inputs)[0]
    ours = _ours(model, params, case)
    _close(ours, want.reshape(ours.shape), f"{case}: pt1 save vs pytorch-transformers 1.0")
    _, back = io.from_pretrained(src, type(model), strict=True)
    _assert_same_params(params, back, "pt1 save read back")


def test_save_format_is_checked(tmp_path):
    model, params, src = _source("gpt2-lm", tmp_path)
    with pytest.raises(ValueError, match="format must be 'safetensors' or 'pt1'"):
        io.save_pretrained(tmp_path / "x", model, params, format="bin")
