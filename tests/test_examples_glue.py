"""examples/run_glue.py on tiny generated GLUE files: it trains, evaluates and writes its
metrics; its resume is bit-exact (the oracle: the same run without a stop); the metric
functions match values worked out by hand."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import ptfunc

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
sys.path.insert(0, str(EXAMPLES))
import _loop  # noqa: E402
import run_glue  # noqa: E402
import utils_glue  # noqa: E402

WORDS = ("the cat sat on a mat dog ran in park he said it was good bad movie very "
         "not fun boring great and film").split()  # fmt: skip
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def _sentence(rng: torch.Generator, n: int) -> str:
    return " ".join(WORDS[i] for i in torch.randint(0, len(WORDS), (n,), generator=rng).tolist())


def write_vocab(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(SPECIALS + sorted(set(WORDS))) + "\n")
    return folder


def write_mrpc(folder: Path, n_train: int = 16, n_dev: int = 8) -> Path:
    rng = torch.Generator().manual_seed(0)
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("dev", n_dev)):
        lines = ["Quality\t#1 ID\t#2 ID\t#1 String\t#2 String"]
        for i in range(n):
            a = _sentence(rng, 5)
            b = a if i % 2 else _sentence(rng, 6)
            lines.append(f"{i % 2}\t{i}\t{i + 100}\t{a}\t{b}")
        (folder / f"{split}.tsv").write_text("\n".join(lines) + "\n")
    return folder


def write_sst2(folder: Path) -> Path:
    rng = torch.Generator().manual_seed(1)
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", 12), ("dev", 6)):
        rows = ["sentence\tlabel"] + [f"{_sentence(rng, 4)}\t{i % 2}" for i in range(n)]
        (folder / f"{split}.tsv").write_text("\n".join(rows) + "\n")
    return folder


def write_stsb(folder: Path) -> Path:
    rng = torch.Generator().manual_seed(2)
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", 8), ("dev", 6)):
        rows = ["index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\ts1\ts2\tscore"]
        for i in range(n):
            rows.append(f"{i}\tg\tf\t2012\t{i}\ts\ts\t{_sentence(rng, 4)}\t{_sentence(rng, 4)}"
                        f"\t{(i * 0.7) % 5:.2f}")  # fmt: skip
        (folder / f"{split}.tsv").write_text("\n".join(rows) + "\n")
    return folder


def write_config(path: Path, **fields) -> Path:
    config = dict(
        vocab_size=len(SPECIALS) + len(set(WORDS)), hidden_size=16, num_hidden_layers=1,
        num_attention_heads=2, intermediate_size=32, max_position_embeddings=64,
    )  # fmt: skip
    config.update(fields)
    path.write_text(json.dumps(config))
    return path


@pytest.fixture
def glue_env(tmp_path):
    return {
        "vocab": write_vocab(tmp_path / "vocab"),
        "mrpc": write_mrpc(tmp_path / "MRPC"),
        "config": write_config(tmp_path / "config.json"),
    }


def _argv(env, out: Path, *extra: str, task: str = "mrpc", data: Path | None = None) -> list[str]:
    return [
        "--do-train", "--do-eval",
        "--task", task, "--data-dir", str(data or env[task]), "--config-json", str(env["config"]),
        "--tokenizer-dir", str(env["vocab"]), "--output-dir", str(out), "--max-seq-length", "24",
        "--batch-size", "4", "--learning-rate", "1e-3", "--threads", "1", "--quiet", *extra,
    ]  # fmt: skip


def test_mrpc_trains_evaluates_and_saves(glue_env, tmp_path):
    out = tmp_path / "out"
    metrics = run_glue.main(_argv(glue_env, out, "--max-steps", "3"))
    saved = json.loads((out / "eval_results.json").read_text())
    assert saved == pytest.approx(metrics)
    assert saved["step"] == 3
    for name in ("acc", "f1", "acc_and_f1"):
        assert 0.0 <= saved[name] <= 1.0
    assert len(_loop.read_log(out)) == 3
    assert (out / "config.json").is_file() and (out / "model.safetensors").is_file()
    # The saved model reloads with the pretrained loader and continues from it.
    model, params = ptfunc.io.from_pretrained(out, run_glue.MODELS["bert"])
    assert model.config.num_labels == 2 and ptfunc.tree.size(params) > 0


def test_resume_is_bit_exact(glue_env, tmp_path):
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    run_glue.main(_argv(glue_env, straight, "--max-steps", "6"))
    assert run_glue.main(_argv(glue_env, stopped, "--max-steps", "6", "--stop-at-step", "3")) == {}
    assert not (stopped / "eval_results.json").exists()
    run_glue.main(_argv(glue_env, stopped, "--max-steps", "6", "--resume"))
    a = ptfunc.io.from_pretrained(straight, run_glue.MODELS["bert"])[1]
    b = ptfunc.io.from_pretrained(stopped, run_glue.MODELS["bert"])[1]
    assert ptfunc.tree.structure(a) == ptfunc.tree.structure(b)
    for x, y in zip(ptfunc.tree.leaves(a), ptfunc.tree.leaves(b)):
        assert torch.equal(x, y)
    log_a, log_b = _loop.read_log(straight), _loop.read_log(stopped)
    assert [r["step"] for r in log_a] == list(range(1, 7))
    assert log_a == log_b  # losses and learning rates, bit for bit (JSON floats round-trip)
    ca = _loop.latest_checkpoint(straight)
    cb = _loop.latest_checkpoint(stopped)
    assert ca.name == cb.name == "step-00000006.safetensors"


def test_sst2_and_stsb_readers_train(tmp_path):
    env = {"vocab": write_vocab(tmp_path / "vocab"), "config": write_config(tmp_path / "c.json")}
    sst = run_glue.main(_argv(env, tmp_path / "sst", "--max-steps", "2", task="sst-2",
                              data=write_sst2(tmp_path / "SST-2")))  # fmt: skip
    assert 0.0 <= sst["acc"] <= 1.0
    sts = run_glue.main(_argv(env, tmp_path / "sts", "--max-steps", "2", task="sts-b",
                              data=write_stsb(tmp_path / "STS-B")))  # fmt: skip
    assert -1.0 <= sts["pearson"] <= 1.0 and -1.0 <= sts["spearmanr"] <= 1.0


def test_xlm_model_type_runs(glue_env, tmp_path):
    config = tmp_path / "xlm.json"
    config.write_text(json.dumps(dict(vocab_size=40, emb_dim=16, n_layers=1, n_heads=2,
                                      max_position_embeddings=32)))  # fmt: skip
    env = dict(glue_env, config=config)
    metrics = run_glue.main(_argv(env, tmp_path / "xlm", "--max-steps", "2", "--model-type", "xlm"))
    assert 0.0 <= metrics["acc"] <= 1.0


def test_xlnet_with_the_shared_sentencepiece_vocab(glue_env, tmp_path, shared_fixtures):
    spiece = shared_fixtures / "xlnet-base-cased"
    if not (spiece / "spiece.model").is_file():
        pytest.skip("xlnet-base-cased/spiece.model not in the shared fixtures")
    pytest.importorskip("sentencepiece")
    config = tmp_path / "xlnet.json"
    config.write_text(json.dumps(dict(vocab_size=32000, d_model=16, n_layer=1, n_head=2,
                                      d_inner=32)))  # fmt: skip
    env = dict(glue_env, config=config, vocab=spiece)
    out = tmp_path / "xlnet"
    metrics = run_glue.main(_argv(env, out, "--max-steps", "2", "--model-type", "xlnet"))
    assert 0.0 <= metrics["acc"] <= 1.0
    # XLNet layout: <cls> last, padding on the left with segment id 4.
    from ptfunc.tokenize.auto import load_tokenizer

    args = run_glue.parse_args(_argv(env, out, "--model-type", "xlnet"))
    f = run_glue.featurize(args, load_tokenizer(spiece), "dev")
    tok = load_tokenizer(spiece)
    assert (f.input_ids[:, -1] == tok.cls_token_id).all()
    assert f.attention_mask[0, 0] == 0 and f.token_type_ids[0, 0] == 4
    assert (f.token_type_ids[:, -1] == 2).all()


def test_bert_features_layout(glue_env, tmp_path):
    from ptfunc.tokenize import BertTokenizer

    tok = BertTokenizer(glue_env["vocab"] / "vocab.txt")
    ex = [utils_glue.InputExample("x", "the cat sat", "a dog ran in the park", "1")]
    f = utils_glue.convert_examples_to_features(ex, tok, "mrpc", 10)
    tokens = tok.convert_ids_to_tokens(f.input_ids[0].tolist())
    # 10 - 3 specials = 7 word tokens: the longer b loses its tail first (3 + 4).
    assert tokens == ["[CLS]", "the", "cat", "sat", "[SEP]", "a", "dog", "ran", "in", "[SEP]"]
    assert f.token_type_ids[0].tolist() == [0] * 5 + [1] * 5
    assert f.labels.tolist() == [1]


def test_metrics_against_hand_computed_values():
    labels = [1, 1, 0, 0, 1, 0, 1, 0]
    preds = [1, 0, 0, 1, 1, 0, 1, 1]
    # tp = 3 (0, 4, 6), fp = 2 (3, 7), fn = 1 (1), tn = 2 (2, 5)
    assert utils_glue.accuracy(preds, labels) == 5 / 8
    assert utils_glue.f1_score(labels, preds) == pytest.approx(6 / 9)
    assert utils_glue.matthews_corrcoef(labels, preds) == pytest.approx(
        (3 * 2 - 2 * 1) / math.sqrt(5 * 4 * 4 * 3)
    )
    assert utils_glue.f1_score([0, 0], [0, 0]) == 0.0
    m = utils_glue.compute_metrics("mrpc", preds, labels)
    assert m["acc_and_f1"] == pytest.approx((5 / 8 + 6 / 9) / 2)
    # Pearson of x and 2x + 1 is 1; of x and -x is -1. Spearman with ties: ranks of
    # [1, 2, 2, 3] are [1, 2.5, 2.5, 4]; of [4, 3, 2, 1] are [4, 3, 2, 1]:
    # dx = [-1.5, 0, 0, 1.5], dy = [1.5, .5, -.5, -1.5], sxy = -4.5, sxx = 4.5, syy = 5.
    x = [1.0, 2.0, 3.0, 4.0]
    assert utils_glue.pearson(x, [2 * v + 1 for v in x]) == pytest.approx(1.0)
    assert utils_glue.pearson(x, [-v for v in x]) == pytest.approx(-1.0)
    assert utils_glue.spearman([1.0, 2.0, 2.0, 3.0], [4.0, 3.0, 2.0, 1.0]) == pytest.approx(
        -4.5 / math.sqrt(4.5 * 5)
    )
    # Pearson by hand: x = [1, 2, 3], y = [1, 3, 2]: sxy = 1, sxx = syy = 2 -> 0.5.
    assert utils_glue.pearson([1.0, 2.0, 3.0], [1.0, 3.0, 2.0]) == pytest.approx(0.5)


def test_script_runs_as_a_subprocess(glue_env, tmp_path):
    out = tmp_path / "sub"
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / "run_glue.py"),
         *[a for a in _argv(glue_env, out, "--max-steps", "2", "--log-every", "1")
           if a != "--quiet"]],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "step 2/2" in proc.stderr and "acc = " in proc.stdout
    assert json.loads((out / "eval_results.json").read_text())["step"] == 2
