"""examples/run_swag.py on a tiny generated SWAG CSV (8 rows): features laid out as the
seed's script builds them, training and accuracy, and a bit-exact resume."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import pytest
import torch

import ptfunc
from ptfunc.tokenize import BertTokenizer

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
sys.path.insert(0, str(EXAMPLES))
import _loop  # noqa: E402
import run_swag  # noqa: E402

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = "someone he she opens the door walks away sits down on a chair smiles runs fast".split()


def write_env(tmp_path: Path, n: int = 8) -> dict:
    rng = torch.Generator().manual_seed(0)

    def sentence(k: int) -> str:
        return " ".join(WORDS[i] for i in torch.randint(0, len(WORDS), (k,), generator=rng))

    path = tmp_path / "swag.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(run_swag.COLUMNS)
        for i in range(n):
            endings = [sentence(3) for _ in range(4)]
            w.writerow([f"v{i}", i, "x", sentence(5), sentence(2), "gold", *endings, i % 4])
    vocab = tmp_path / "vocab"
    vocab.mkdir()
    (vocab / "vocab.txt").write_text("\n".join(SPECIALS + sorted(set(WORDS))) + "\n")
    config = tmp_path / "config.json"
    config.write_text(json.dumps(dict(
        vocab_size=len(SPECIALS) + len(set(WORDS)), hidden_size=16, num_hidden_layers=1,
        num_attention_heads=2, intermediate_size=32, max_position_embeddings=32,
    )))  # fmt: skip
    return {"csv": path, "vocab": vocab, "config": config}


def _argv(env: dict, out: Path, *extra: str) -> list[str]:
    return [
        "--do-train", "--do-eval", "--do-lower-case",
        "--train-file", str(env["csv"]), "--predict-file", str(env["csv"]),
        "--config-json", str(env["config"]), "--tokenizer-dir", str(env["vocab"]),
        "--output-dir", str(out), "--max-seq-length", "16", "--batch-size", "4",
        "--learning-rate", "1e-3", "--threads", "1", "--quiet", *extra,
    ]  # fmt: skip


def test_reader_and_features(tmp_path):
    path = tmp_path / "one.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(run_swag.COLUMNS)
        w.writerow(["v", "0", "x", "she opens the door", "she", "gold",
                    "walks away", "sits down on a chair", "smiles", "runs fast", "1"])  # fmt: skip
    (ex,) = run_swag.read_swag_examples(path)
    assert ex.context == "she opens the door" and ex.label == 1 and len(ex.endings) == 4
    (tmp_path / "v").mkdir()
    (tmp_path / "v" / "vocab.txt").write_text("\n".join(SPECIALS + sorted(set(WORDS))))
    tok = BertTokenizer(tmp_path / "v" / "vocab.txt")
    f = run_swag.convert_examples_to_features([ex], tok, 10)
    assert f["input_ids"].shape == (1, 4, 10) and f["labels"].tolist() == [1]
    # choice 0: [CLS] she opens the door [SEP] she walks away [SEP] (10 tokens, no padding)
    want = "[CLS] she opens the door [SEP] she walks away [SEP]".split()
    assert tok.convert_ids_to_tokens(f["input_ids"][0, 0].tolist()) == want
    assert f["token_type_ids"][0, 0].tolist() == [0] * 6 + [1] * 4
    # choice 1: context 4 + "she sits down on a chair" 6 > 10 - 3: the longer side loses its
    # tail until 4 + 3 fit: [CLS] she opens the door [SEP] she sits down [SEP]
    assert tok.convert_ids_to_tokens(f["input_ids"][0, 1].tolist())[6:] == [
        "she", "sits", "down", "[SEP]"]  # fmt: skip
    # choice 2: [CLS] she opens the door [SEP] she smiles [SEP] = 9 tokens, then 1 pad
    assert f["attention_mask"][0, 2].tolist() == [1] * 9 + [0]
    assert f["input_ids"][0, 2, 9] == tok.pad_token_id
    bad = tmp_path / "bad.csv"
    bad.write_text("video-id,fold-ind,startphrase,sent1\nv,0,x,y\n")
    with pytest.raises(ValueError, match="lacks columns"):
        run_swag.read_swag_examples(bad)


def test_trains_and_reports_accuracy(tmp_path):
    env = write_env(tmp_path)
    out = tmp_path / "out"
    metrics = run_swag.main(_argv(env, out, "--max-steps", "3"))
    saved = json.loads((out / "eval_results.json").read_text())
    assert saved == pytest.approx(metrics) and saved["step"] == 3
    assert saved["eval_accuracy"] in {k / 8 for k in range(9)}
    assert saved["eval_loss"] > 0
    assert len(_loop.read_log(out)) == 3 and _loop.latest_checkpoint(out) is not None


def test_resume_is_bit_exact(tmp_path):
    env = write_env(tmp_path)
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    run_swag.main(_argv(env, straight, "--max-steps", "6", "--save-steps", "2"))
    assert run_swag.main(_argv(env, stopped, "--max-steps", "6", "--stop-at-step", "3")) == {}
    run_swag.main(_argv(env, stopped, "--max-steps", "6", "--resume"))
    a = ptfunc.io.from_pretrained(straight, run_swag.MODELS["bert"])[1]
    b = ptfunc.io.from_pretrained(stopped, run_swag.MODELS["bert"])[1]
    for x, y in zip(ptfunc.tree.leaves(a), ptfunc.tree.leaves(b), strict=True):
        assert torch.equal(x, y)
    assert _loop.read_log(straight) == _loop.read_log(stopped)
    ra = json.loads((straight / "eval_results.json").read_text())
    rb = json.loads((stopped / "eval_results.json").read_text())
    assert ra == rb
    names = sorted(p.name for p in (straight / "checkpoints").iterdir())
    assert names == [f"step-0000000{s}.safetensors" for s in (2, 4, 6)]
