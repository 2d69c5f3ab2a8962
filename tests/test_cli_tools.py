"""``ptfunc`` as a user runs it (subprocesses): --help everywhere, encode/decode, inspect, bench,
generate with every causal architecture, and bad input.

Oracles: ids from today's ``transformers`` tokenizers (Rust-backed) on the same vocabulary files;
tensor listings from the ``safetensors`` library's own reader and from ``torch.load``; generated
text from ``ptfunc.generate`` called as a library on the same directory.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
from _cli import assert_fails_with, ptfunc_cli
from _tiny_configs import tiny_lm
from safetensors import safe_open

import ptfunc
from ptfunc.cli import DEFAULT_MODEL
from ptfunc.tokenize import GPT2Tokenizer

SUBCOMMANDS = ["generate", "convert", "encode", "decode", "inspect", "bench"]


def test_help_for_every_subcommand():
    top = ptfunc_cli("--help")
    assert top.returncode == 0
    for name in SUBCOMMANDS:
        assert name in top.stdout
        result = ptfunc_cli(name, "--help")
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("usage: ptfunc " + name)


def test_console_script_is_installed():
    exe = shutil.which("ptfunc")
    if exe is None:
        pytest.skip("the ptfunc console script is not on PATH (package not pip-installed)")
    result = subprocess.run([exe, "--help"], capture_output=True, text=True, check=False)
    assert result.returncode == 0 and "convert" in result.stdout


def test_unknown_command_and_missing_arguments_exit_2():
    assert ptfunc_cli("frobnicate").returncode == 2
    assert_fails_with(ptfunc_cli("encode", "hello"), "--tokenizer", status=2)
    assert_fails_with(ptfunc_cli("inspect"), "path", status=2)


# --- encode / decode --------------------------------------------------------------------


def test_encode_matches_transformers_gpt2_tokenizer(tmp_path):
    transformers = pytest.importorskip("transformers")
    reference = transformers.GPT2Tokenizer(
        str(DEFAULT_MODEL / "vocab.json"), str(DEFAULT_MODEL / "merges.txt")
    )
    texts = [
        "ROMEO: What light through yonder window breaks?",
        "  two  spaces\tand a tab",
        "é ü 日本",
    ]
    result = ptfunc_cli("encode", "-t", str(DEFAULT_MODEL), *texts)
    assert result.returncode == 0, result.stderr
    rows = [list(map(int, line.split())) for line in result.stdout.splitlines()]
    assert rows == [reference.encode(t) for t in texts]

    corpus = tmp_path / "lines.txt"
    corpus.write_text("\n".join(texts) + "\n", encoding="utf-8")
    from_file = ptfunc_cli("encode", "-t", str(DEFAULT_MODEL), "--file", str(corpus), "--json")
    assert [json.loads(line) for line in from_file.stdout.splitlines()] == rows
    from_stdin = ptfunc_cli("encode", "-t", str(DEFAULT_MODEL), stdin=corpus.read_text())
    assert from_stdin.stdout == result.stdout

    tokens = ptfunc_cli("encode", "-t", str(DEFAULT_MODEL), "--tokens", "--json", texts[0])
    assert json.loads(tokens.stdout) == reference.tokenize(texts[0])

    decoded = ptfunc_cli("decode", "-t", str(DEFAULT_MODEL), stdin=result.stdout)
    assert decoded.returncode == 0, decoded.stderr
    assert decoded.stdout.splitlines() == [reference.decode(r) for r in rows]
    one = ptfunc_cli("decode", "-t", str(DEFAULT_MODEL), *map(str, rows[0]))
    assert one.stdout.strip() == reference.decode(rows[0])


def test_encode_bert_pair_with_special_tokens(shared_fixtures, tmp_path):
    transformers = pytest.importorskip("transformers")
    shutil.copy(shared_fixtures / "bert-base-uncased" / "vocab.txt", tmp_path / "vocab.txt")
    reference = transformers.BertTokenizer(str(tmp_path / "vocab.txt"))
    result = ptfunc_cli("encode", "-t", str(tmp_path), "Hello, World!", "--pair", "Second one.")
    assert result.returncode == 0, result.stderr
    assert list(map(int, result.stdout.split())) == reference.encode("Hello, World!", "Second one.")
    bare = ptfunc_cli("encode", "-t", str(tmp_path), "--no-special-tokens", "Hello, World!")
    assert list(map(int, bare.stdout.split())) == reference.encode(
        "Hello, World!", add_special_tokens=False
    )
    ids = reference.encode("Hello, World!")
    skipped = ptfunc_cli("decode", "-t", str(tmp_path), "--skip-special-tokens", json.dumps(ids))
    assert skipped.stdout.strip() == reference.decode(ids, skip_special_tokens=True)


def test_encode_decode_errors(tmp_path):
    assert_fails_with(ptfunc_cli("encode", "-t", str(tmp_path / "nope"), "x"), "nope")
    (tmp_path / "readme.txt").write_text("not a tokenizer")
    assert_fails_with(ptfunc_cli("encode", "-t", str(tmp_path), "x"), "cannot tell which tokenizer")
    assert_fails_with(
        ptfunc_cli("encode", "-t", str(DEFAULT_MODEL), "--file", str(tmp_path / "missing.txt")),
        "missing.txt",
    )
    assert_fails_with(
        ptfunc_cli("decode", "-t", str(DEFAULT_MODEL), stdin="1 2 3\n4 five 6\n"),
        "expected integer token ids on line 2",
    )
    assert ptfunc_cli("encode", "-t", str(DEFAULT_MODEL), "--kind", "nope", "x").returncode == 2


# --- inspect -----------------------------------------------------------------------------


def test_inspect_directory_and_files_agree_with_their_readers(tmp_path):
    weights = DEFAULT_MODEL / "model.safetensors"
    with safe_open(str(weights), "pt") as handle:
        truth = {name: tuple(handle.get_slice(name).get_shape()) for name in handle.keys()}
    result = ptfunc_cli("inspect", str(DEFAULT_MODEL), "--json")
    assert result.returncode == 0, result.stderr
    listing = json.loads(result.stdout)
    assert {t["name"]: tuple(t["shape"]) for t in listing["tensors"]} == truth
    total = sum(int(torch.tensor(shape).prod()) for shape in truth.values())
    assert listing["num_parameters"] == total and listing["nbytes"] == 4 * total

    state = {"a.weight": torch.zeros(3, 4, dtype=torch.bfloat16), "b": torch.arange(5)}
    torch.save({"model": state, "params": {"emb_dim": 4}}, tmp_path / "original.pth")
    text = ptfunc_cli("inspect", str(tmp_path / "original.pth"))
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert lines[0].split() == ["model.a.weight", "bfloat16", "[3,", "4]"]
    assert lines[1].split() == ["model.b", "int64", "[5]"]
    assert lines[-1].startswith("pytorch (weights_only): 2 tensors, 17 parameters, 64 B")


def test_inspect_errors(tmp_path):
    assert_fails_with(ptfunc_cli("inspect", str(tmp_path / "nothing")), "no checkpoint at")
    (tmp_path / "bad.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    assert_fails_with(ptfunc_cli("inspect", str(tmp_path / "bad.safetensors")), "bad.safetensors")
    import pickle

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo owned",))

    with open(tmp_path / "evil.bin", "wb") as handle:
        pickle.dump({"x": Evil()}, handle)
    assert_fails_with(ptfunc_cli("inspect", str(tmp_path / "evil.bin")), "weights_only")


# --- bench -------------------------------------------------------------------------------


def test_bench_lists_and_runs_a_quick_benchmark():
    listed = ptfunc_cli("bench", "--list")
    if listed.returncode != 0:
        pytest.skip("benchmarks/ is not beside the package: " + listed.stderr)
    names = listed.stdout.split()
    assert {"bert", "gpt2", "optim"} <= set(names)
    run = ptfunc_cli("bench", "optim", "--quick", "--", "--repeats", "1", timeout=300)
    assert run.returncode == 0, run.stderr
    assert "== optim ==" in run.stdout and "AdamW" in run.stdout
    assert_fails_with(ptfunc_cli("bench", "nope"), "unknown benchmark 'nope'")


# --- generate with every causal architecture ---------------------------------------------


def _save_model(directory: Path, model, seed: int = 0) -> None:
    params = model.init(ptfunc.random.key(seed))
    ptfunc.io.save_pretrained(directory, model, params)


def _library_greedy(directory: Path, cls, prompt_ids: list[int], n: int) -> list[int]:
    model, params = ptfunc.io.from_pretrained(directory, cls)
    with torch.no_grad():
        out = ptfunc.generate(model, params, torch.tensor([prompt_ids]), max_new_tokens=n)
    return out[0].tolist()


@pytest.mark.parametrize("arch", ["transfo-xl", "xlnet", "xlm"])
def test_generate_with_other_causal_models(arch, tmp_path):
    gpt2_tok = GPT2Tokenizer.from_pretrained(DEFAULT_MODEL)
    model = tiny_lm(arch, len(gpt2_tok))
    cls = type(model)
    _save_model(tmp_path, model)
    # The CLI finds the tokenizer from the directory's files; give it GPT-2's BPE with the
    # tokenizer kind forced through tokenizer_config.json, as a user's directory would.
    gpt2_tok.save_pretrained(tmp_path)
    prompt = "ROMEO: the"
    result = ptfunc_cli(
        "generate", prompt, "--model", str(tmp_path), "--greedy", "--max-new-tokens", "5"
    )
    assert result.returncode == 0, result.stderr
    ids = gpt2_tok.encode(prompt, add_special_tokens=False)
    expected = gpt2_tok.decode(_library_greedy(tmp_path, cls, ids, 5))
    assert result.stdout.rstrip("\n") == expected


def test_generate_refuses_models_that_are_not_language_models(tmp_path):
    from ptfunc.archs import bert

    config = bert.BertConfig(
        vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32,
    )  # fmt: skip
    _save_model(tmp_path, bert.BertModel(config))
    assert_fails_with(
        ptfunc_cli("generate", "x", "--model", str(tmp_path)), "generate needs a language model"
    )


CHECKPOINTS = Path(__file__).resolve().parent / "data" / "checkpoints"


@pytest.mark.parametrize("fixture", ["dtypes", "partitioned", "sharded"])
def test_inspect_tensorflow_checkpoints_lists_what_tensorflow_wrote(fixture):
    # expected.json was written by the generator from TensorFlow's own variables.
    folder = CHECKPOINTS / "bundle" / fixture
    truth = json.loads((folder / "expected.json").read_text())
    for target in (folder, folder / "model.ckpt", folder / "model.ckpt.index"):
        result = ptfunc_cli("inspect", str(target), "--json")
        assert result.returncode == 0, result.stderr
        listing = json.loads(result.stdout)
        assert listing["format"] == "tensorflow checkpoint"
        assert {t["name"]: (t["dtype"], t["shape"]) for t in listing["tensors"]} == {
            name: (entry["dtype"], entry["shape"]) for name, entry in truth.items()
        }
