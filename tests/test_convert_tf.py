"""Converters from the original TensorFlow checkpoints: BERT, GPT-2, Transformer-XL, XLNet.

Oracle: ``tests/data/checkpoints/<name>/reference.safetensors``, written by
``tests/gen_checkpoints_tf.py`` with TensorFlow installed: the outputs, on the saved
inputs, of the seed's (pytorch-transformers 1.0) or transformers 4.46.3's models loaded
with their ``load_tf_weights_in_*`` from the same checkpoint, and for Transformer-XL a
forward pass in TensorFlow ops over the checkpoint variables that follows the original
``tf/model.py`` (each file's metadata ``reference`` says which). ptfunc converts the
checkpoint without TensorFlow, loads the directory with ``from_pretrained`` and must
match within 1e-5 max-abs (beam indices exactly).
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from ptfunc import io
from ptfunc.archs import bert, gpt2, transfo_xl, xlnet
from ptfunc.io.convert import _common, _tf_names
from ptfunc.io.convert import bert as bert_convert
from ptfunc.io.convert import gpt2 as gpt2_convert
from ptfunc.io.convert.bert import convert_bert
from ptfunc.io.convert.gpt2 import convert_gpt2
from ptfunc.io.convert.transfo_xl import convert_transfo_xl
from ptfunc.io.convert.xlnet import convert_xlnet
from ptfunc.io.tf_checkpoint import TFCheckpoint

DATA = Path(__file__).resolve().parent / "data" / "checkpoints"
ATOL = 1e-5
WEIGHTS = {"config.json", "model.safetensors"}
BERT_CONFIG = DATA / "bert" / "bert_config.json"


def reference(name: str) -> dict[str, torch.Tensor]:
    return load_file(DATA / name / "reference.safetensors")


def reference_note(name: str) -> str:
    with safe_open(DATA / name / "reference.safetensors", "pt") as f:
        return f.metadata()["reference"]


def assert_close(got: torch.Tensor, want: torch.Tensor, what: str) -> None:
    assert got.shape == want.shape, f"{what}: shape {tuple(got.shape)} != {tuple(want.shape)}"
    err = (got.double() - want.double()).abs().max().item()
    assert err <= ATOL, f"{what}: max abs error {err} > {ATOL}"


def run(model, params, r: dict[str, torch.Tensor], **options):
    """``model.apply`` on the saved inputs (token types and attention mask where saved)."""
    for name in ("token_type_ids", "attention_mask"):
        if name in r:
            options[name] = r[name]
    return model.apply(params, r["input_ids"], **options)


def files_in(directory: Path) -> set[str]:
    return {p.name for p in directory.iterdir()}


def leftovers(tmp_path: Path, name: str) -> list[str]:
    """Anything the converter left for ``name`` in ``tmp_path`` (the dir or a staging dir)."""
    return [p.name for p in tmp_path.iterdir() if name in p.name]


# -- outputs equal the reference loaders' -------------------------------------------------------


def test_bert_matches_reference(tmp_path):
    d = DATA / "bert"
    out = convert_bert(
        d / "model.ckpt", d / "bert_config.json", tmp_path / "out", vocab=d / "vocab.txt"
    )
    model, params = io.from_pretrained(out, bert.BertForPreTraining, strict=True)
    r = reference("bert")
    got = run(model, params, r, output_hidden_states=True)
    note = reference_note("bert")
    assert_close(got[0], r["ref_prediction_logits"], f"MLM logits vs {note}")
    assert_close(got[1], r["ref_seq_relationship_logits"], f"NSP logits vs {note}")
    assert_close(got.hidden_states[-1], r["ref_last_hidden_state"], "last hidden state")
    assert files_in(out) == WEIGHTS | {"vocab.txt"}
    assert (out / "vocab.txt").read_bytes() == (d / "vocab.txt").read_bytes()
    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == ["BertForPreTraining"]
    assert config["model_type"] == "bert"


def test_gpt2_matches_reference(tmp_path):
    d = DATA / "gpt2"
    out = convert_gpt2(
        d / "model.ckpt", tmp_path / "out", vocab=d / "encoder.json", merges=d / "vocab.bpe"
    )  # config: the hparams.json next to the checkpoint
    model, params = io.from_pretrained(out, gpt2.GPT2LMHeadModel, strict=True)
    r = reference("gpt2")
    got = model.apply(params, r["input_ids"], output_hidden_states=True)
    assert_close(got.logits, r["ref_logits"], f"logits vs {reference_note('gpt2')}")
    assert_close(got.hidden_states[-1], r["ref_last_hidden_state"], "last hidden state")
    assert files_in(out) == WEIGHTS | {"vocab.json", "merges.txt"}
    assert (out / "vocab.json").read_bytes() == (d / "encoder.json").read_bytes()
    assert (out / "merges.txt").read_bytes() == (d / "vocab.bpe").read_bytes()
    assert model.config.n_head == 2 and model.config.n_positions == 16
    names = set(load_file(out / "model.safetensors"))
    assert "lm_head.weight" not in names  # tied to wte, stored once


@pytest.mark.parametrize(
    ("name", "constructor", "task"),
    [
        ("xlnet", xlnet.XLNetLMHeadModel, None),
        ("xlnet_stsb", xlnet.XLNetForSequenceClassification, "sts-b"),
    ],
)
def test_xlnet_matches_reference(tmp_path, name, constructor, task):
    d = DATA / name
    out = convert_xlnet(
        d / "model.ckpt", d / "xlnet_config.json", tmp_path / "out", finetuning_task=task
    )
    model, params = io.from_pretrained(out, constructor, strict=True)
    r = reference(name)
    got = run(model, params, r)
    assert_close(got.logits, r["ref_logits"], f"logits vs {reference_note(name)}")
    assert json.loads((out / "config.json").read_text())["architectures"] == [constructor.__name__]


def test_xlnet_squad_matches_reference(tmp_path):
    d = DATA / "xlnet_squad"
    out = convert_xlnet(d, d / "xlnet_config.json", tmp_path / "out", finetuning_task="squad")
    model, params = io.from_pretrained(out, xlnet.XLNetForQuestionAnswering, strict=True)
    r = reference("xlnet_squad")
    got = run(model, params, r)
    for field in ("start_top_log_probs", "end_top_log_probs", "cls_logits"):
        assert_close(getattr(got, field), r[f"ref_{field}"], field)
    for field in ("start_top_index", "end_top_index"):
        assert torch.equal(getattr(got, field), r[f"ref_{field}"]), field


def _txl_outputs(out: Path, name: str) -> None:
    model, params = io.from_pretrained(out, transfo_xl.TransfoXLLMHeadModel, strict=True)
    r = reference(name)
    got = model.apply(params, r["input_ids"], mems=())  # empty memories, as the TF pass
    assert_close(got.prediction_scores, r["ref_nomem_scores"], f"{name} vs {reference_note(name)}")
    if "ref_scores" in r:  # the seed's first segment attends to zero memories
        first = model.apply(params, r["input_ids"])  # mems=None: 1.0's zero memories
        second = model.apply(params, r["input_ids_2"], mems=first.mems)
        assert_close(first.prediction_scores, r["ref_scores"], "first segment")
        assert_close(second.prediction_scores, r["ref_scores_2"], "second segment, with mems")


@pytest.mark.parametrize("name", ["transfo_xl", "transfo_xl_div1", "transfo_xl_nocutoff"])
def test_transfo_xl_matches_reference(tmp_path, name):
    d = DATA / name
    out = convert_transfo_xl(d / "model.ckpt", tmp_path / "out", config=d / "config.json")
    _txl_outputs(out, name)
    assert files_in(out) == WEIGHTS


def test_transfo_xl_untied_softmax_config_copies_the_tables(tmp_path):
    """TF's softmax always reads the embedding tables; tie_weight=False gets copies of them."""
    d = DATA / "transfo_xl"
    config = json.loads((d / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "tie_weight": False}))
    out = convert_transfo_xl(d / "model.ckpt", tmp_path / "out", config=tmp_path / "config.json")
    _txl_outputs(out, "transfo_xl")
    state = load_file(out / "model.safetensors")
    for i in range(3):
        table = state[f"transformer.word_emb.emb_layers.{i}.weight"]
        assert torch.equal(state[f"crit.out_layers.{i}.weight"], table)


def test_transfo_xl_no_cutoffs_softmax_reads_the_embedding_projection(tmp_path):
    d = DATA / "transfo_xl_nocutoff"
    out = convert_transfo_xl(d / "model.ckpt", tmp_path / "out", config=d / "config.json")
    state = load_file(out / "model.safetensors")
    assert torch.equal(state["crit.out_projs.0"], state["transformer.word_emb.emb_projs.0"])


def test_transfo_xl_shared_and_per_layer_r_biases(tmp_path):
    ckpt = TFCheckpoint(DATA / "transfo_xl_div1" / "model.ckpt")
    out = convert_transfo_xl(
        ckpt.prefix, tmp_path / "div1", config=DATA / "transfo_xl_div1" / "config.json"
    )
    state = load_file(out / "model.safetensors")
    stacked = ckpt.read("transformer/r_w_bias")  # (n_layer, n_head, d_head): untie_r
    assert "transformer.r_w_bias" not in state
    for i in range(2):
        assert torch.equal(state[f"transformer.layers.{i}.dec_attn.r_w_bias"], stacked[i])
    out = convert_transfo_xl(
        DATA / "transfo_xl", tmp_path / "shared", config=DATA / "transfo_xl" / "config.json"
    )
    state = load_file(out / "model.safetensors")
    shared = TFCheckpoint(DATA / "transfo_xl").read("transformer/r_w_bias")
    assert torch.equal(state["transformer.r_w_bias"], shared)  # stored once
    assert not any(".dec_attn.r_w_bias" in n for n in state)


# -- optimizer state, progress, variants --------------------------------------------------------


def test_optimizer_slots_and_global_step_are_skipped(tmp_path):
    d = DATA / "bert"
    names = TFCheckpoint(d / "model.ckpt").names
    slots = [n for n in names if n.endswith(("/adam_m", "/adam_v"))]
    assert slots and "global_step" in names
    assert any("AdamWeightDecayOptimizer" in n for n in names)
    out = convert_bert(d / "model.ckpt", d / "bert_config.json", tmp_path / "out")  # strict
    state = load_file(out / "model.safetensors")
    assert not any("adam" in n.lower() or "global_step" in n for n in state)
    weights = [n for n in names if not _tf_names.is_training_state(n)]
    assert len(state) == len(weights)  # every weight is used exactly once, nothing else


@pytest.mark.parametrize(
    ("name", "state"),
    [
        ("bert/pooler/dense/kernel/adam_m", True),
        ("bert/pooler/dense/kernel/AdamWeightDecayOptimizer_1", True),
        ("transformer/layer_0/ff/layer_1/kernel/Adam_1", True),
        ("beta1_power", True),
        ("global_step", True),
        ("model/transformer/r_w_bias", False),
        ("transformer/adaptive_softmax/cutoff_0/b", False),
        ("model/global_step_scale", False),
    ],
)
def test_is_training_state(name, state):
    assert _tf_names.is_training_state(name) is state


def test_progress_is_reported_once_per_param(tmp_path):
    d = DATA / "gpt2"
    calls = []
    out = convert_gpt2(d / "model.ckpt", tmp_path / "out", progress=lambda *a: calls.append(a))
    n_params = len(load_file(out / "model.safetensors"))
    assert [c[0] for c in calls] == list(range(1, n_params + 1))
    assert {c[1] for c in calls} == {n_params}
    assert calls[0][2] == "model/wte"


def test_gpt2_accepts_a_config_json(tmp_path):
    d = DATA / "gpt2"
    config = gpt2.GPT2Config(
        vocab_size=22, n_positions=16, n_ctx=16, n_embd=16, n_layer=2, n_head=2
    )
    (tmp_path / "config.json").write_text(config.to_json_string())
    out = convert_gpt2(d / "model.ckpt", tmp_path / "out", config=tmp_path / "config.json")
    model, params = io.from_pretrained(out, gpt2.GPT2LMHeadModel)
    r = reference("gpt2")
    assert_close(model.apply(params, r["input_ids"]).logits, r["ref_logits"], "logits")


class _FakeCheckpoint:
    """Names and shapes only: enough for the GPT-2 config inference."""

    def __init__(self, shapes: dict[str, tuple[int, ...]]) -> None:
        self.shapes = shapes
        self.names = sorted(shapes)

    def __contains__(self, name: object) -> bool:
        return name in self.shapes

    def shape(self, name: str) -> tuple[int, ...]:
        return self.shapes[name]


def test_gpt2_config_inferred_from_the_weights(tmp_path):
    shapes = {"model/wte": (50, 128), "model/wpe": (32, 128)}
    shapes.update({f"model/h{i}/ln_1/g": (128,) for i in range(3)})
    with pytest.warns(UserWarning, match="n_head = n_embd // 64"):
        config = gpt2_convert.gpt2_config(None, _FakeCheckpoint(shapes), tmp_path / "model.ckpt")
    assert (config.vocab_size, config.n_positions, config.n_ctx) == (50, 32, 32)
    assert (config.n_embd, config.n_layer, config.n_head) == (128, 3, 2)


def test_gpt2_without_config_or_hparams_and_odd_width_is_refused(tmp_path):
    src = tmp_path / "ckpt"
    src.mkdir()
    for f in (DATA / "gpt2").glob("model.ckpt.*"):
        shutil.copy(f, src / f.name)
    with pytest.raises(ValueError, match="cannot infer n_head"):
        convert_gpt2(src / "model.ckpt", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_xlnet_finetuned_head_with_another_task_name(tmp_path):
    """A head scope named after another task: the checkpoint's only logit head is used,
    with its own number of labels."""
    d = DATA / "xlnet_stsb"
    out = convert_xlnet(d, d / "xlnet_config.json", tmp_path / "out", finetuning_task="similarity")
    model, params = io.from_pretrained(out, xlnet.XLNetForSequenceClassification)
    assert model.config.num_labels == 1 and model.config.finetuning_task == "similarity"
    r = reference("xlnet_stsb")
    got = run(model, params, r)
    assert_close(got.logits, r["ref_logits"], "logits")
    assert torch.equal(params["transformer"]["mask_emb"], torch.zeros(1, 1, 16))  # not in the ckpt


def test_tokenizers_load_from_the_converted_directories(tmp_path):
    from ptfunc.tokenize.bert import BertTokenizer
    from ptfunc.tokenize.gpt2 import GPT2Tokenizer
    from ptfunc.tokenize.transfo_xl import TransfoXLTokenizer
    from ptfunc.tokenize.xlnet import XLNetTokenizer

    b = convert_bert(DATA / "bert", BERT_CONFIG, tmp_path / "b", vocab=DATA / "bert/vocab.txt")
    assert BertTokenizer.from_pretrained(b).tokenize("hello worlds") == ["hello", "world", "##s"]
    g = convert_gpt2(
        DATA / "gpt2",
        tmp_path / "g",
        vocab=DATA / "gpt2/encoder.json",
        merges=DATA / "gpt2/vocab.bpe",
    )
    assert GPT2Tokenizer.from_pretrained(g).tokenize(" lower") == ["\u0120low", "er"]
    x = convert_xlnet(
        DATA / "xlnet",
        DATA / "xlnet/xlnet_config.json",
        tmp_path / "x",
        spiece_model=DATA / "xlnet/spiece.model",
    )
    assert files_in(x) == WEIGHTS | {"spiece.model"}
    assert len(XLNetTokenizer.from_pretrained(x)) == 48
    t = convert_transfo_xl(
        DATA / "transfo_xl",
        tmp_path / "t",
        config=DATA / "transfo_xl/config.json",
        vocab=DATA / "transfo_xl/vocab.txt",
    )
    assert files_in(t) == WEIGHTS | {"vocab.txt"}
    tok = TransfoXLTokenizer.from_pretrained(t)
    assert tok.convert_tokens_to_ids(["the", "w3", "<eos>"]) == [2, 13, 0]


# -- bad input: clear errors, nothing written ---------------------------------------------------


def test_missing_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        convert_bert(tmp_path / "nowhere" / "model.ckpt", BERT_CONFIG, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_missing_config_and_vocab(tmp_path):
    with pytest.raises(FileNotFoundError, match="bert_config"):
        convert_bert(DATA / "bert", tmp_path / "bert_config.json", tmp_path / "out")
    with pytest.raises(FileNotFoundError, match="vocab.txt"):
        convert_bert(
            DATA / "bert",
            BERT_CONFIG,
            tmp_path / "out",
            vocab=tmp_path / "vocab.txt",
        )
    with pytest.raises(FileNotFoundError, match="vocab.bpe"):
        convert_gpt2(DATA / "gpt2", tmp_path / "out", merges=tmp_path / "vocab.bpe")
    assert leftovers(tmp_path, "out") == []


def _bert_config(tmp_path: Path, **changes) -> Path:
    config = json.loads((BERT_CONFIG).read_text())
    path = tmp_path / "bert_config.json"
    path.write_text(json.dumps({**config, **changes}))
    return path


def test_wrong_config_shape_error_names_the_variable(tmp_path):
    config = _bert_config(tmp_path, intermediate_size=48)
    with pytest.raises(
        ValueError, match=r"bert/encoder/layer_0/intermediate/dense/kernel \(16, 32\)"
    ):
        convert_bert(DATA / "bert", config, tmp_path / "out")
    assert leftovers(tmp_path, "out") == []


def test_config_with_too_many_layers_names_the_missing_variables(tmp_path):
    config = _bert_config(tmp_path, num_hidden_layers=3)
    with pytest.raises(ValueError, match=r"lacks variables.*bert/encoder/layer_2/"):
        convert_bert(DATA / "bert", config, tmp_path / "out")
    assert leftovers(tmp_path, "out") == []


def test_unused_variables_are_an_error_unless_not_strict(tmp_path):
    config = _bert_config(tmp_path, num_hidden_layers=1)
    with pytest.raises(ValueError, match=r"does not use: .*bert/encoder/layer_1/.*strict=False"):
        convert_bert(DATA / "bert", config, tmp_path / "out")
    assert leftovers(tmp_path, "out") == []
    with pytest.warns(UserWarning, match="bert/encoder/layer_1/"):
        out = convert_bert(DATA / "bert", config, tmp_path / "out", strict=False)
    state = load_file(out / "model.safetensors")
    assert not any(n.startswith("bert.encoder.layer.1.") for n in state)


class _Hiding:
    """A checkpoint without one variable (the reader is exercised elsewhere)."""

    def __init__(self, ckpt: TFCheckpoint, hidden: str) -> None:
        self.ckpt, self.hidden = ckpt, hidden
        self.prefix = ckpt.prefix
        self.names = [n for n in ckpt.names if n != hidden]

    def __contains__(self, name: object) -> bool:
        return name != self.hidden and name in self.ckpt

    def shape(self, name: str) -> tuple[int, ...]:
        return self.ckpt.shape(name)

    def read(self, name: str) -> torch.Tensor:
        assert name != self.hidden
        return self.ckpt.read(name)


def test_missing_variable_is_named(tmp_path, monkeypatch):
    hidden = "cls/seq_relationship/output_weights"
    monkeypatch.setattr(bert_convert, "open_checkpoint", lambda p: _Hiding(TFCheckpoint(p), hidden))
    with pytest.raises(ValueError, match=f"lacks variables .*{hidden}"):
        convert_bert(DATA / "bert", BERT_CONFIG, tmp_path / "out")
    assert leftovers(tmp_path, "out") == []


def test_xlnet_head_mismatches_are_explained(tmp_path):
    d = DATA / "xlnet_stsb"
    with pytest.raises(ValueError, match="pass finetuning_task='sts-b'"):
        convert_xlnet(d, d / "xlnet_config.json", tmp_path / "out")  # LM head asked
    with pytest.raises(ValueError, match="no model/classification_mrpc/logit"):
        convert_xlnet(
            DATA / "xlnet",
            DATA / "xlnet/xlnet_config.json",
            tmp_path / "out",
            finetuning_task="mrpc",
        )
    with pytest.raises(ValueError, match="leave finetuning_task out"):
        convert_xlnet(
            DATA / "xlnet",
            DATA / "xlnet/xlnet_config.json",
            tmp_path / "out",
            finetuning_task="squad",
        )
    with pytest.raises(ValueError, match=r"model/transformer/r_w_bias \(2, 8\)"):
        convert_xlnet(
            d, DATA / "xlnet_squad/xlnet_config.json", tmp_path / "out", finetuning_task="sts-b"
        )
    assert leftovers(tmp_path, "out") == []


def test_transfo_xl_wrong_div_val_is_refused(tmp_path):
    d = DATA / "transfo_xl"
    config = json.loads((d / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "div_val": 1}))
    with pytest.raises(ValueError, match="transformer/adaptive_embed/lookup_table"):
        convert_transfo_xl(d, tmp_path / "out", config=tmp_path / "config.json")
    assert leftovers(tmp_path, "out") == []


# -- interrupted conversions leave nothing half-written -----------------------------------------


def test_failure_while_reading_leaves_no_output(tmp_path, monkeypatch):
    calls = []
    original = TFCheckpoint.read

    def read(self, name):
        calls.append(name)
        if len(calls) == 5:
            raise OSError("disk gone")
        return original(self, name)

    monkeypatch.setattr(TFCheckpoint, "read", read)
    with pytest.raises(OSError, match="disk gone"):
        convert_gpt2(DATA / "gpt2", tmp_path / "out")
    assert leftovers(tmp_path, "out") == []


def test_failure_while_writing_leaves_no_output(tmp_path, monkeypatch):
    from ptfunc import _atomic

    def failing(files):
        first = next(iter(files))
        first.write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(_common, "write_files_atomically", failing)
    with pytest.raises(OSError, match="disk full"):
        convert_bert(
            DATA / "bert",
            BERT_CONFIG,
            tmp_path / "out",
            vocab=DATA / "bert/vocab.txt",
        )
    assert leftovers(tmp_path, "out") == []
    # an existing directory keeps its previous files
    monkeypatch.setattr(_common, "write_files_atomically", _atomic.write_files_atomically)
    out = convert_bert(DATA / "bert", BERT_CONFIG, tmp_path / "out")
    before = (out / "model.safetensors").read_bytes()
    (out / "notes.txt").write_text("mine")

    def failing_replace(src, dst):
        raise OSError("interrupted")

    monkeypatch.setattr(_atomic.os, "replace", failing_replace)
    with pytest.raises(OSError, match="interrupted"):
        convert_bert(DATA / "bert", BERT_CONFIG, out, vocab=DATA / "bert/vocab.txt")
    assert (out / "model.safetensors").read_bytes() == before
    assert files_in(out) == WEIGHTS | {"notes.txt"}


def test_converting_into_an_existing_directory_replaces_the_weights(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "model.safetensors").write_bytes(b"old")
    (out / "README.md").write_text("kept")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        convert_xlnet(
            DATA / "xlnet_squad",
            DATA / "xlnet_squad/xlnet_config.json",
            out,
            finetuning_task="squad",
        )
    assert files_in(out) == WEIGHTS | {"README.md"}
    io.from_pretrained(out, xlnet.XLNetForQuestionAnswering, strict=True)
