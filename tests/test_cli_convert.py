"""``ptfunc convert`` run as a user would: the seed's argument order and named options for every
original format, progress on stderr, one-line failures, and output that is all-or-nothing.

Oracle: the library converters (``ptfunc.io.convert``), themselves checked against the seed's
and transformers' loaders in ``test_convert_tf.py``, ``test_convert_openai_gpt.py`` and
``test_convert_xlm.py``: the command must write the same directory, tensor for tensor.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from _cli import assert_fails_with, ptfunc_cli
from safetensors.torch import load_file

from ptfunc.io import convert

DATA = Path(__file__).resolve().parent / "data" / "checkpoints"
BERT_CKPT, BERT_CFG = DATA / "bert" / "model.ckpt", DATA / "bert" / "bert_config.json"
GPT2_CKPT, GPT2_CFG = DATA / "gpt2" / "model.ckpt", DATA / "gpt2" / "hparams.json"
TXL_CKPT, TXL_CFG = DATA / "transfo_xl" / "model.ckpt", DATA / "transfo_xl" / "config.json"
SQUAD_CKPT, XLNET_CFG = DATA / "xlnet_squad" / "model.ckpt", DATA / "xlnet" / "xlnet_config.json"


def assert_same_weights(a: Path, b: Path) -> None:
    left, right = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    assert left.keys() == right.keys()
    for name in left:
        assert torch.equal(left[name], right[name]), name
    assert (a / "config.json").read_text() == (b / "config.json").read_text()


# (seed-order arguments after the output, library call) per format
CASES = {
    "bert": (
        ["bert", BERT_CKPT, BERT_CFG, "{out}"],
        lambda out: convert.convert_bert(
            BERT_CKPT, BERT_CFG, out
        ),
    ),
    "gpt2": (
        ["gpt2", GPT2_CKPT, "{out}", GPT2_CFG],
        lambda out: convert.convert_gpt2(
            GPT2_CKPT, out, config=GPT2_CFG
        ),
    ),
    "transfo_xl": (
        ["transfo_xl", TXL_CKPT, "{out}", TXL_CFG],
        lambda out: convert.convert_transfo_xl(
            TXL_CKPT, out, config=TXL_CFG
        ),
    ),
    "xlnet": (
        ["xlnet", SQUAD_CKPT, XLNET_CFG, "{out}", "squad"],
        lambda out: convert.convert_xlnet(
            SQUAD_CKPT, XLNET_CFG, out,
            finetuning_task="squad",
        ),
    ),
    "gpt": (
        ["gpt", DATA / "openai_gpt", "{out}", "--n-head", "2"],
        lambda out: convert.convert_openai_gpt(DATA / "openai_gpt", out, n_head=2),
    ),
    "xlm": (
        ["xlm", DATA / "xlm" / "mlm_enfr_tiny.pth", "{out}"],
        lambda out: convert.convert_xlm(DATA / "xlm" / "mlm_enfr_tiny.pth", out),
    ),
}  # fmt: skip


@pytest.mark.parametrize("arch", sorted(CASES))
def test_seed_argument_order_writes_what_the_library_writes(arch, tmp_path):
    argv, library = CASES[arch]
    out = tmp_path / "cli"
    result = ptfunc_cli("convert", *[str(a).replace("{out}", str(out)) for a in argv])
    assert result.returncode == 0, result.stderr
    assert f"wrote {out}" in result.stdout
    progress = [line for line in result.stderr.splitlines() if line.startswith("convert: ")]
    assert progress, result.stderr
    done, total = progress[-1].split()[1].split("/")
    assert done == total and int(total) > 0
    library(tmp_path / "lib")
    assert_same_weights(out, tmp_path / "lib")


def test_named_options_and_vocabulary(tmp_path):
    out = tmp_path / "named"
    result = ptfunc_cli(
        "convert", "--from", "bert", "--checkpoint", BERT_CKPT,
        "--config", BERT_CFG, "--output", out,
        "--vocab", DATA / "bert" / "vocab.txt", "--quiet",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert sorted(p.name for p in out.iterdir()) == [
        "config.json",
        "model.safetensors",
        "vocab.txt",
    ]
    assert (out / "vocab.txt").read_bytes() == (DATA / "bert" / "vocab.txt").read_bytes()
    convert.convert_bert(BERT_CKPT, BERT_CFG, tmp_path / "lib")
    assert_same_weights(out, tmp_path / "lib")
    # The converted directory works with the other commands.
    encoded = ptfunc_cli("encode", "-t", out, "hello world")
    assert encoded.returncode == 0, encoded.stderr
    listing = ptfunc_cli("inspect", out)
    assert "bert.embeddings.word_embeddings.weight" in listing.stdout


def test_bad_arguments(tmp_path):
    assert_fails_with(ptfunc_cli("convert"), "say what to convert", status=2)
    assert_fails_with(ptfunc_cli("convert", "albert", "a", "b"), "unknown architecture", 2)
    assert_fails_with(ptfunc_cli("convert", "bert", "a", "b"), "missing output", status=2)
    assert_fails_with(ptfunc_cli("convert", "xlm", "a", "b", "c"), "too many arguments", 2)
    assert_fails_with(ptfunc_cli("convert", "--to", "onnx", "a", "b"), "invalid choice", 2)
    assert_fails_with(
        ptfunc_cli("convert", "bert", BERT_CKPT, BERT_CFG,
                   tmp_path / "pytorch_model.bin"),
        "looks like a file name",
    )  # fmt: skip
    assert_fails_with(
        ptfunc_cli("convert", "transfo_xl", DATA / "bert" / "vocab.txt", tmp_path / "o", TXL_CFG),
        "does not unpickle",
    )  # fmt: skip


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["bert", "{tmp}/missing.ckpt", BERT_CFG, "{out}"], "missing.ckpt"),
        (["bert", BERT_CKPT, "{tmp}/nope.json", "{out}"], "nope.json"),
        (["bert", BERT_CKPT, XLNET_CFG, "{out}"], "Does the config match"),
        (["gpt2", BERT_CKPT, "{out}", GPT2_CFG], "model/"),
        (["xlnet", SQUAD_CKPT, XLNET_CFG, "{out}"], "squad"),
        (["gpt", "{tmp}", "{out}"], "params_shapes.json"),
        (["xlm", DATA / "bert" / "vocab.txt", "{out}"], "vocab.txt"),
    ],
)  # fmt: skip
def test_failures_name_the_problem_and_leave_nothing(argv, needle, tmp_path):
    out = tmp_path / "out"
    argv = [str(a).replace("{out}", str(out)).replace("{tmp}", str(tmp_path)) for a in argv]
    result = ptfunc_cli("convert", *argv)
    assert_fails_with(result, needle)
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_failed_conversion_leaves_an_existing_directory_as_it_was(tmp_path):
    out = tmp_path / "model"
    ok = ptfunc_cli("convert", "gpt2", GPT2_CKPT, out, GPT2_CFG)
    assert ok.returncode == 0, ok.stderr
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    broken = tmp_path / "broken"
    shutil.copytree(DATA / "gpt2", broken)
    data = broken / "model.ckpt.data-00000-of-00001"
    blob = bytearray(data.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    data.write_bytes(bytes(blob))
    result = ptfunc_cli("convert", "gpt2", broken / "model.ckpt", out, broken / "hparams.json")
    assert_fails_with(result, "checksum mismatch")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


@pytest.mark.parametrize("layout", ["transformers", "pytorch-transformers"])
def test_export_to_other_layouts(layout, tmp_path):
    converted = tmp_path / "converted"
    vocab, merges = DATA / "gpt2" / "encoder.json", DATA / "gpt2" / "vocab.bpe"
    convert.convert_gpt2(GPT2_CKPT, converted, config=GPT2_CFG, vocab=vocab, merges=merges)
    out = tmp_path / layout
    result = ptfunc_cli("convert", "--to", layout, converted, out)
    assert result.returncode == 0, result.stderr
    weights = "model.safetensors" if layout == "transformers" else "pytorch_model.bin"
    assert {"config.json", weights, "vocab.json", "merges.txt"} <= {p.name for p in out.iterdir()}
    # The exported directory loads back to the same tensors.
    from ptfunc.archs import gpt2
    from ptfunc.io import from_pretrained
    from ptfunc.tree import to_flat_dict

    _, original = from_pretrained(converted, gpt2.GPT2LMHeadModel)
    _, exported = from_pretrained(out, gpt2.GPT2LMHeadModel)
    a, b = to_flat_dict(original), to_flat_dict(exported)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    again = ptfunc_cli("convert", "--to", layout, "--checkpoint", converted, "--output", out, "-q")
    assert again.returncode == 0, again.stderr
    missing = ptfunc_cli("convert", "--to", layout, tmp_path / "nope", tmp_path / "x")
    assert_fails_with(missing, "nope")
    assert not (tmp_path / "x").exists()
