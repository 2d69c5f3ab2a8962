"""examples/extract_features.py: JSON lines of hidden states, checked against an independent
model.

Reference: today's ``transformers`` ``BertModel`` and ``BertTokenizer`` loaded from the same
directory ptfunc saved (hidden states within 1e-5: the script rounds to 6 decimals); the
seed's layout (``linex_index``, ``features``, ``token``, ``layers``, ``index``, ``values``)
and truncation (longest first, special tokens included in ``--max-seq-length``).
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from _tiny_configs import MODEL_CLASSES, tiny_config

import ptfunc
from ptfunc.archs import bert
from ptfunc.cli import DEFAULT_MODEL
from ptfunc.tokenize import BertTokenizer

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "extract_features.py"
WORDS = "the a cat dog sat on mat ran far away house big small red blue".split()
LINES = [
    "the cat sat on the mat",
    "a big dog ran far away ||| the small red house",
    "Blue dogs sat",
    "the cat sat on the mat the cat sat on the mat the dog ran ||| a big red house far away",
]


def _example():
    spec = importlib.util.spec_from_file_location("extract_features", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


EX = _example()


def run_script(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(EXAMPLE), *args, "--threads", "1"],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("bert")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS, "##s"]
    (directory / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    BertTokenizer(str(directory / "vocab.txt")).save_pretrained(directory)
    config = bert.BertConfig(
        vocab_size=len(vocab), hidden_size=16, num_hidden_layers=4, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=64,
    )  # fmt: skip
    model = bert.BertForPreTraining(config)  # a head checkpoint: the script loads its base
    ptfunc.io.save_pretrained(directory, model, model.init(ptfunc.random.key(3)))
    return directory


@pytest.fixture(scope="module")
def input_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("input") / "input.txt"
    path.write_text("\n".join(LINES) + "\n", encoding="utf-8")
    return path


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_hidden_states_equal_transformers_bert(bert_dir, input_file, tmp_path, capsys):
    transformers = pytest.importorskip("transformers")
    out = tmp_path / "out.jsonl"
    status = EX.main([
        "--input-file", str(input_file), "--output-file", str(out), "--model-dir", str(bert_dir),
        "--max-seq-length", "16", "--batch-size", "3",
    ])  # fmt: skip
    assert status == 0
    assert "extract_features: 4/4 examples" in capsys.readouterr().err
    records = _read(out)
    assert [r["linex_index"] for r in records] == [0, 1, 2, 3]

    tokenizer = transformers.BertTokenizer.from_pretrained(str(bert_dir))
    reference = transformers.BertModel.from_pretrained(str(bert_dir)).eval()
    for record, line in zip(records, LINES):
        a, _, b = line.partition(" ||| ")
        enc = tokenizer(
            a, b or None, truncation="longest_first", max_length=16, return_tensors="pt"
        )
        tokens = tokenizer.convert_ids_to_tokens(enc["input_ids"][0].tolist())
        assert [f["token"] for f in record["features"]] == tokens
        with torch.no_grad():
            hidden = reference(**enc, output_hidden_states=True).hidden_states[1:]  # layers only
        for position, feature in enumerate(record["features"]):
            assert [layer["index"] for layer in feature["layers"]] == [-1, -2, -3, -4]
            for layer in feature["layers"]:
                expected = hidden[layer["index"]][0, position]
                got = torch.tensor(layer["values"])
                torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    assert len(records[3]["features"]) == 16  # the long pair is truncated to the limit


def test_truncate_pair_is_longest_first():
    a, b = EX.truncate_pair(list(range(7)), list(range(10, 13)), 6)
    assert (a, b) == ([0, 1, 2], [10, 11, 12])
    a, b = EX.truncate_pair([1, 2], [3, 4, 5, 6], 3)
    assert (a, b) == ([1, 2], [3])  # on a tie the second sequence loses a token, as the seed's


def _base_model(arch: str, vocab: int):
    # XLNet stays bidirectional: padding is reached only through the attention mask.
    return MODEL_CLASSES[arch][0](tiny_config(arch, vocab))


@pytest.mark.parametrize("arch", ["gpt2", "transfo-xl", "xlnet", "xlm"])
def test_any_model_directory(arch, input_file, tmp_path):
    # A random 2-layer model with GPT-2's tokenizer: the features equal its hidden states
    # computed directly (ptfunc, no padding) on each line alone; the script pads batches.
    directory = tmp_path / "model"
    tokenizer = ptfunc.tokenize.GPT2Tokenizer.from_pretrained(DEFAULT_MODEL)
    tokenizer.save_pretrained(directory)
    model = _base_model(arch, len(tokenizer))
    params = model.init(ptfunc.random.key(1))
    ptfunc.io.save_pretrained(directory, model, params)
    out = tmp_path / "out.jsonl"
    status = EX.main(
        [
            "--input-file",
            str(input_file),
            "--output-file",
            str(out),
            "--model-dir",
            str(directory),
            "--layers",
            "0,-1",
            "--max-seq-length",
            "64",
            "--batch-size",
            "4",
        ]
    )  # fmt: skip  (in process: faster than a new interpreter per architecture)
    assert status == 0
    records = _read(out)
    assert len(records) == len(LINES)
    for record, line in zip(records, LINES):
        a, _, b = line.partition(" ||| ")
        ids = tokenizer.encode(a) + tokenizer.encode(b)  # GPT-2's BPE has no pair template
        assert [f["token"] for f in record["features"]] == tokenizer.convert_ids_to_tokens(ids)
        with torch.no_grad():
            hidden = model.apply(params, torch.tensor([ids]), output_hidden_states=True)
        for position, feature in enumerate(record["features"]):
            first, last = feature["layers"]
            assert (first["index"], last["index"]) == (0, -1)
            for layer, expected in (
                (first, hidden.hidden_states[1]),
                (last, hidden.hidden_states[-1]),
            ):
                torch.testing.assert_close(
                    torch.tensor(layer["values"]), expected[0, position], atol=1e-5, rtol=0
                )


def test_bad_layer_index_is_a_one_line_error(bert_dir, input_file, tmp_path):
    out = tmp_path / "out.jsonl"
    result = run_script(
        "--input-file", str(input_file), "--output-file", str(out), "--model-dir", str(bert_dir),
        "--layers", "-1,-5",
    )  # fmt: skip
    assert result.returncode == 1
    assert "index -5 is out of range for a model of 4 layers" in result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists()
