"""The ``ptfunc generate`` command: the shipped model, any GPT-2 directory, errors.

Reference for the checkpoint case: ``transformers`` greedy ``generate`` on the real
``tiny-gpt2`` hub checkpoint, decoded with transformers' own tokenizer.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from ptfunc import cli


def test_default_model_is_shipped_and_generates(capsys):
    assert (cli.DEFAULT_MODEL / "model.safetensors").is_file()
    assert sum(p.stat().st_size for p in cli.DEFAULT_MODEL.iterdir()) <= 10 * 2**20
    assert cli.main(["generate", "ROMEO:", "--max-new-tokens", "20", "--seed", "1"]) == 0
    first = capsys.readouterr().out
    assert first.startswith("ROMEO:") and len(first) > len("ROMEO:") + 20
    cli.main(["generate", "ROMEO:", "--max-new-tokens", "20", "--seed", "1"])
    assert capsys.readouterr().out == first  # same key, same text
    cli.main(["generate", "ROMEO:", "--max-new-tokens", "20", "--seed", "2"])
    assert capsys.readouterr().out != first


def test_python_dash_m_entry_point():
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "ptfunc",
            "generate",
            "JULIET:",
            "--max-new-tokens",
            "5",
            "--greedy",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("JULIET:")


def test_checkpoint_directory_matches_transformers_greedy(shared_fixtures, capsys):
    transformers = pytest.importorskip("transformers")
    directory = shared_fixtures / "tiny-gpt2"
    assert (
        cli.main(
            [
                "generate",
                "Hello world",
                "--model",
                str(directory),
                "--greedy",
                "--max-new-tokens",
                "6",
            ]
        )
        == 0
    )
    ours = capsys.readouterr().out.rstrip("\n")
    tokenizer = transformers.AutoTokenizer.from_pretrained(directory)
    reference = transformers.GPT2LMHeadModel.from_pretrained(directory).eval()
    ids = tokenizer("Hello world", return_tensors="pt").input_ids
    out = reference.generate(
        ids,
        attention_mask=torch.ones_like(ids),
        max_new_tokens=6,
        do_sample=False,
        pad_token_id=tokenizer.eos_token_id,
    )
    assert ours == tokenizer.decode(out[0])


def test_errors_are_clear(tmp_path, capsys):
    assert cli.main(["generate", "x", "--model", str(tmp_path / "missing")]) == 1
    assert "no directory or file at" in capsys.readouterr().err
    (tmp_path / "config.json").write_text('{"model_type": "bert"}')
    assert cli.main(["generate", "x", "--model", str(tmp_path)]) == 1
    assert "generate needs a language model" in capsys.readouterr().err
