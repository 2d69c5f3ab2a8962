"""examples/run_openai_gpt.py on tiny generated ROCStories files and a tiny OpenAI GPT: the
seed's command line runs as it is and writes 1.0's eval_results.txt; the inputs have the
seed's layout; the training loss of a step and the evaluation numbers equal transformers 5's
OpenAIGPTDoubleHeadsModel on the same weights and inputs."""

from __future__ import annotations

import csv
import json
import string
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import ptfunc
from ptfunc.archs import openai_gpt
from ptfunc.tokenize import OpenAIGPTTokenizer

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
sys.path.insert(0, str(EXAMPLES))
import _loop  # noqa: E402
import run_openai_gpt  # noqa: E402

WORDS = "the cat sat on a mat dog ran in park he said it was good bad fun".split()
NO_DROPOUT = dict(resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, summary_first_dropout=0.0)


def write_vocab(folder: Path, *, with_specials: bool) -> Path:
    """A character-level OpenAI GPT vocabulary (no merges): every word becomes its letters,
    the last with ``</w>``."""
    folder.mkdir(parents=True, exist_ok=True)
    tokens = ["<unk>"] + list(string.ascii_lowercase)
    tokens += [c + "</w>" for c in string.ascii_lowercase + ".,"]
    if with_specials:
        tokens += list(run_openai_gpt.SPECIAL_TOKENS)
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    return folder


def write_model(folder: Path, *, with_specials: bool, **config) -> Path:
    write_vocab(folder, with_specials=with_specials)
    tokenizer = OpenAIGPTTokenizer.from_pretrained(folder)
    fields = dict(n_embd=16, n_layer=1, n_head=2, n_positions=64, **config)
    model = openai_gpt.OpenAIGPTDoubleHeadsModel(
        openai_gpt.OpenAIGPTConfig(vocab_size=len(tokenizer), **fields)
    )
    ptfunc.io.save_pretrained(folder, model, model.init(ptfunc.random.key(3)))
    tokenizer.save_pretrained(folder)
    return folder


def write_stories(path: Path, n: int, seed: int) -> Path:
    rng = torch.Generator().manual_seed(seed)

    def sentence(k: int) -> str:
        idx = torch.randint(0, len(WORDS), (k,), generator=rng).tolist()
        return " ".join(WORDS[i] for i in idx) + "."

    header = ["InputStoryid", "InputSentence1", "InputSentence2", "InputSentence3",
              "InputSentence4", "RandomFifthSentenceQuiz1", "RandomFifthSentenceQuiz2",
              "AnswerRightEnding"]  # fmt: skip
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for i in range(n):
            writer.writerow([f"id{i}", *(sentence(3) for _ in range(4)), sentence(2),
                             sentence(3), str(1 + i % 2)])  # fmt: skip
    return path


@pytest.fixture
def data(tmp_path):
    return {
        "train": write_stories(tmp_path / "train.csv", 12, 0),
        "eval": write_stories(tmp_path / "eval.csv", 6, 1),
    }


def test_seed_command_line_runs_as_is(tmp_path, data):
    model_dir = write_model(tmp_path / "gpt", with_specials=False)
    out = tmp_path / "log"
    seed_line = [
        "--model_name", str(model_dir), "--do_train", "--do_eval",
        "--train_dataset", str(data["train"]), "--eval_dataset", str(data["eval"]),
        "--output_dir", str(out), "--train_batch_size", "4", "--num_train_epochs", "1",
    ]  # fmt: skip
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / "run_openai_gpt.py"), *seed_line],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = (out / "eval_results.txt").read_text().splitlines()
    assert [line.split(" = ")[0] for line in lines] == [
        "eval_accuracy", "eval_loss", "step", "train_loss",
    ]  # fmt: skip
    assert "eval_accuracy = " in proc.stdout
    assert len(_loop.read_log(out)) == 3  # 12 stories / 4 per step, one epoch
    # The special tokens were added and the embeddings grown by three rows.
    tok = OpenAIGPTTokenizer.from_pretrained(out)
    model, params = ptfunc.io.from_pretrained(out, openai_gpt.OpenAIGPTDoubleHeadsModel)
    base = len(OpenAIGPTTokenizer.from_pretrained(model_dir))
    assert len(tok) == model.config.vocab_size == base + 3
    assert tok.convert_tokens_to_ids(list(run_openai_gpt.SPECIAL_TOKENS)) == [base, base + 1,
                                                                              base + 2]  # fmt: skip


def test_inputs_have_the_seed_layout(tmp_path, data):
    tok = OpenAIGPTTokenizer.from_pretrained(write_vocab(tmp_path / "v", with_specials=True))
    stories = run_openai_gpt.load_rocstories(data["eval"])
    assert stories[0].label == 0 and stories[1].label == 1
    encoded = run_openai_gpt.encode(tok, stories)
    length = run_openai_gpt.input_length([encoded], 64)
    ids = tuple(tok.convert_tokens_to_ids(list(run_openai_gpt.SPECIAL_TOKENS)))
    f = run_openai_gpt.make_features(encoded, stories, length, 30, ids)
    story, e1, e2 = (x[:30] for x in encoded[0])  # each part capped at n_positions // 2 - 2
    assert len(encoded[0][0]) > 30  # (so the cap is exercised)
    want = [ids[0], *story, ids[1], *e2, ids[2]]
    assert f.input_ids[0, 1, : len(want)].tolist() == want
    assert (f.input_ids[0, 1, len(want):] == 0).all()  # fmt: skip
    assert f.lm_labels[0, 1, : len(want)].tolist() == want
    assert (f.lm_labels[0, 1, len(want):] == -1).all()  # fmt: skip
    assert f.mc_token_ids[0].tolist() == [len(story) + len(e1) + 2, len(want) - 1]
    assert length == max(len(s[:30]) + max(len(a[:30]), len(b[:30])) + 3 for s, a, b in encoded)


def test_bad_rows_name_the_file_and_line(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("h1,h2\nid,a,b,c,d,e1,e2,3\n")
    with pytest.raises(ValueError, match=r"bad\.csv, line 2: .*1 or 2"):
        run_openai_gpt.load_rocstories(path)


def _hf_losses(hf, f, idx):
    """transformers 5's LM and multiple-choice losses of rows ``idx`` (-1 labels -> -100)."""
    labels = f.lm_labels[idx].masked_fill(f.lm_labels[idx] < 0, -100)
    out = hf(f.input_ids[idx], mc_token_ids=f.mc_token_ids[idx], labels=labels,
             mc_labels=f.mc_labels[idx])  # fmt: skip
    return out.loss, out.mc_loss, out.mc_logits


def test_loss_and_metrics_equal_transformers(tmp_path, data):
    transformers = pytest.importorskip("transformers")
    model_dir = write_model(tmp_path / "gpt", with_specials=True, **NO_DROPOUT)
    out = tmp_path / "out"
    argv = ["--model_name", str(model_dir), "--do_train", "--do_eval", "--train_dataset",
            str(data["train"]), "--eval_dataset", str(data["eval"]), "--output_dir", str(out),
            "--train_batch_size", "4", "--eval_batch_size", "4", "--max_steps", "2",
            "--learning_rate", "1e-3", "--threads", "1", "--quiet"]  # fmt: skip
    metrics = run_openai_gpt.main(argv)

    # Rebuild the inputs as the script does, then compute with transformers 5.
    args = run_openai_gpt.parse_args(argv)
    tok = OpenAIGPTTokenizer.from_pretrained(model_dir)
    stories = [run_openai_gpt.load_rocstories(p) for p in (data["train"], data["eval"])]
    encoded = [run_openai_gpt.encode(tok, s) for s in stories]
    length = run_openai_gpt.input_length(encoded, 64)
    ids = tuple(tok.convert_tokens_to_ids(list(run_openai_gpt.SPECIAL_TOKENS)))
    train_f, eval_f = (run_openai_gpt.make_features(e, s, length, 30, ids)
                       for e, s in zip(encoded, stories))  # fmt: skip
    cls = transformers.OpenAIGPTDoubleHeadsModel
    with torch.no_grad():
        # Step 1's loss is the untrained model's lm_coef * lm + mc on the first batch.
        before = cls.from_pretrained(model_dir).eval()
        first = _loop.Batches(12, args.batch_size, seed=args.seed).indices(0)
        lm, mc, _ = _hf_losses(before, train_f, first)
        assert _loop.read_log(out)[0]["loss"] == pytest.approx(float(0.9 * lm + mc), abs=1e-5)

        after = cls.from_pretrained(out).eval()
        losses, correct = [], 0
        for start in range(0, 6, 4):
            idx = torch.arange(start, min(start + 4, 6))
            _, mc, logits = _hf_losses(after, eval_f, idx)
            losses.append(float(mc))
            correct += int((logits.argmax(-1) == eval_f.mc_labels[idx]).sum())
    assert metrics["eval_loss"] == pytest.approx(sum(losses) / len(losses), abs=1e-5)
    assert metrics["eval_accuracy"] == correct / 6


def test_eval_only_reads_the_output_dir(tmp_path, data):
    model_dir = write_model(tmp_path / "gpt", with_specials=False)
    out = tmp_path / "out"
    common = ["--model_name", str(model_dir), "--output_dir", str(out), "--threads", "1",
              "--quiet", "--eval_dataset", str(data["eval"])]  # fmt: skip
    trained = run_openai_gpt.main([*common, "--do_train", "--do_eval", "--train_dataset",
                                   str(data["train"]), "--max_steps", "1"])  # fmt: skip
    again = run_openai_gpt.main([*common, "--do_eval"])
    assert again["train_loss"] is None
    assert again["eval_loss"] == pytest.approx(trained["eval_loss"], abs=1e-6)
    assert again["eval_accuracy"] == trained["eval_accuracy"]
