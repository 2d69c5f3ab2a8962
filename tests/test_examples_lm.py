"""examples/run_lm_finetuning.py and examples/utils_lm.py: BERT MLM + NSP on a generated
corpus with a tiny vocabulary written here.

References: a hand-written masking loop that follows the documented procedure draw for
draw (exact), and the binomial proportions of the seed's procedure (15% chosen; of those
80% [MASK], 10% random, 10% kept) on a large sample within 5 standard deviations;
next-sentence pairs checked against the corpus itself; held-out metrics against a direct
computation with the model; resume: 6 steps straight == 3 steps + resume + 3 steps,
``torch.equal`` on every tensor of the final checkpoint (params, optimizer state, step, key).
"""

from __future__ import annotations

import importlib.util
import json
import math
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import ptfunc
from ptfunc.archs import bert
from ptfunc.tokenize import BertTokenizer

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = [f"w{i}" for i in range(40)]


def _load(name: str):
    if str(EXAMPLES) not in sys.path:
        sys.path.insert(0, str(EXAMPLES))
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


LM = _load("utils_lm")
SCRIPT = _load("run_lm_finetuning")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A 12-document corpus, a vocabulary directory and a tiny BERT config."""
    root = tmp_path_factory.mktemp("lm")
    rng = random.Random(0)

    def sentence() -> str:
        return " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 9)))

    docs = [[sentence() for _ in range(rng.randint(2, 6))] for _ in range(12)]
    corpus = root / "corpus.txt"
    corpus.write_text("\n\n".join("\n".join(d) for d in docs) + "\n", encoding="utf-8")
    vocab_dir = root / "vocab"
    vocab_dir.mkdir()
    (vocab_dir / "vocab.txt").write_text("\n".join(SPECIALS + WORDS) + "\n", encoding="utf-8")
    BertTokenizer(str(vocab_dir / "vocab.txt")).save_pretrained(vocab_dir)
    config = bert.BertConfig(
        vocab_size=len(SPECIALS) + len(WORDS), hidden_size=16, num_hidden_layers=2,
        num_attention_heads=2, intermediate_size=32, max_position_embeddings=32,
    )  # fmt: skip
    config_json = root / "config.json"
    config_json.write_text(json.dumps(config.to_dict()), encoding="utf-8")
    return {"root": root, "corpus": corpus, "docs": docs, "vocab": vocab_dir, "config": config_json}


def _argv(setup, out: Path, *extra: str) -> list[str]:
    return [
        "--do-train", "--do-eval",
        "--corpus", str(setup["corpus"]), "--config-json", str(setup["config"]),
        "--tokenizer-dir", str(setup["vocab"]), "--output-dir", str(out),
        "--max-seq-length", "24", "--batch-size", "4", "--learning-rate", "1e-3",
        "--eval-fraction", "0.25", "--log-every", "1", "--threads", "1", *extra,
    ]  # fmt: skip


# -- masking ---------------------------------------------------------------------------------


def reference_mask(ids, maskable, rng, vocab_size, mask_id):
    """The documented procedure written out: per maskable position one uniform draw u; u <
    0.15 chooses it; then v = u / 0.15: v < 0.8 -> [MASK], v < 0.9 -> randrange(vocab), else
    kept. When nothing was chosen, one position from rng.choice and one more uniform draw."""
    out, labels = [], []
    for token, ok in zip(ids, maskable):
        label, new = -1, token
        if ok:
            u = rng.random()
            if u < 0.15:
                label = token
                v = u / 0.15
                new = mask_id if v < 0.8 else (rng.randrange(vocab_size) if v < 0.9 else token)
        out.append(new)
        labels.append(label)
    if all(x == -1 for x in labels) and any(maskable):
        i = rng.choice([i for i, ok in enumerate(maskable) if ok])
        v = rng.random()
        labels[i] = ids[i]
        out[i] = mask_id if v < 0.8 else (rng.randrange(vocab_size) if v < 0.9 else ids[i])
    return out, labels


def test_masking_equals_the_hand_written_procedure():
    for seed in range(200):
        n = 1 + seed % 13
        ids = [random.Random(seed).randrange(5, 100) for _ in range(n)]
        maskable = [i % 4 != 0 for i in range(n)]
        got = LM.mask_tokens(ids, maskable, random.Random(seed), vocab_size=100, mask_id=4)
        want = reference_mask(ids, maskable, random.Random(seed), 100, 4)
        assert got == want, seed


def test_masking_proportions_on_a_large_sample():
    rng = random.Random(123)
    vocab, mask_id = 30000, 4
    chosen = masked = kept = replaced = positions = 0
    for _ in range(400):
        ids = [2] + [rng.randrange(5, vocab) for _ in range(500)] + [3]
        maskable = [False] + [True] * 500 + [False]
        inputs, labels = LM.mask_tokens(ids, maskable, rng, vocab_size=vocab, mask_id=mask_id)
        assert inputs[0] == 2 and inputs[-1] == 3 and labels[0] == labels[-1] == -1
        for x, y, label in zip(ids[1:-1], inputs[1:-1], labels[1:-1]):
            positions += 1
            if label == -1:
                assert y == x  # not chosen: untouched
                continue
            assert label == x
            chosen += 1
            masked += y == mask_id
            kept += y == x
            replaced += y not in (x, mask_id)

    def within(count, total, p):
        sd = math.sqrt(total * p * (1 - p))
        return abs(count - total * p) < 5 * sd

    assert within(chosen, positions, 0.15), chosen / positions
    assert within(masked, chosen, 0.8), masked / chosen
    assert within(kept, chosen, 0.1), kept / chosen
    assert within(replaced, chosen, 0.1), replaced / chosen


def test_examples_pairs_segments_and_specials(setup):
    tokenizer = BertTokenizer.from_pretrained(setup["vocab"])
    corpus = LM.tokenize_documents(setup["docs"], tokenizer)
    assert len(corpus.documents) == 12
    nexts = 0
    cls, sep, mask = tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.mask_token_id
    for index in range(len(corpus.starts)):
        for epoch in range(3):
            rng = LM.example_rng("t", 0, epoch, index)
            ex = LM.make_example(corpus, index, rng, max_seq_length=12, tokenizer=tokenizer)
            assert ex == LM.make_example(
                corpus, index, LM.example_rng("t", 0, epoch, index), max_seq_length=12,
                tokenizer=tokenizer,
            )  # fmt: skip
            n = len(ex.input_ids)
            assert n <= 12 and len(ex.token_type_ids) == len(ex.labels) == n
            seps = [i for i, t in enumerate(ex.input_ids) if t == sep and ex.labels[i] == -1]
            assert ex.input_ids[0] == cls and ex.input_ids[-1] == sep and len(seps) >= 2
            first_sep = ex.token_type_ids.index(1) - 1
            assert ex.token_type_ids == [0] * (first_sep + 1) + [1] * (n - first_sep - 1)
            for i in (0, first_sep, n - 1):
                assert ex.labels[i] == -1  # special tokens are never chosen
            # Undo the masking from the labels and find the sentences in the corpus.
            original = [t if lab == -1 else lab for t, lab in zip(ex.input_ids, ex.labels)]
            a, b = original[1:first_sep], original[first_sep + 1 : -1]
            d, s = corpus.starts[index]
            sentence_a = corpus.documents[d][s]
            assert sentence_a[: len(a)] == a
            if ex.is_next == 0:
                nexts += 1
                assert corpus.documents[d][s + 1][: len(b)] == b
            else:
                others = [x for j, doc in enumerate(corpus.documents) if j != d for x in doc]
                assert any(x[: len(b)] == b for x in others)
            assert all(t != mask or lab != -1 for t, lab in zip(ex.input_ids, ex.labels))
    total = 3 * len(corpus.starts)
    assert abs(nexts - total / 2) < 5 * math.sqrt(total / 4)


# -- the script ------------------------------------------------------------------------------


def test_runs_end_to_end_and_evaluates_held_out(setup, tmp_path, capsys):
    out = tmp_path / "run"
    assert SCRIPT.main(_argv(setup, out, "--max-steps", "4")) == 0
    captured = capsys.readouterr()
    assert "held-out: mlm_accuracy" in captured.out
    assert "step 4/4" in captured.err
    metrics = json.loads((out / "eval_results.json").read_text())
    assert metrics["heldout"] and metrics["step"] == 4 and metrics["masked_tokens"] > 0
    assert [r["step"] for r in _loop_log(out)] == [1, 2, 3, 4]

    # Metrics against a direct computation on the saved model, example by example.
    model, params = ptfunc.io.from_pretrained(out, bert.BertForPreTraining)
    tokenizer = BertTokenizer.from_pretrained(out)
    corpus = LM.tokenize_documents(LM.read_documents(setup["corpus"]), tokenizer)
    _, held = LM.split_corpus(corpus, 0.25)
    assert len(held.documents) == 3
    correct = count = nsp = 0
    nll = 0.0
    for index in range(len(held.starts)):
        rng = LM.example_rng("eval", 42, 0, index)
        ex = LM.make_example(held, index, rng, max_seq_length=24, tokenizer=tokenizer)
        with torch.no_grad():
            res = model.apply(
                params, torch.tensor([ex.input_ids]),
                token_type_ids=torch.tensor([ex.token_type_ids]),
            )  # fmt: skip
        for pos, label in enumerate(ex.labels):
            if label != -1:
                logp = res.prediction_logits[0, pos].log_softmax(-1)
                nll -= float(logp[label])
                correct += int(logp.argmax()) == label
                count += 1
        nsp += int(res.seq_relationship_logits[0].argmax()) == ex.is_next
    assert metrics["masked_tokens"] == count and metrics["examples"] == len(held.starts)
    assert metrics["mlm_accuracy"] == pytest.approx(correct / count)
    assert metrics["mlm_loss"] == pytest.approx(nll / count, rel=1e-5)
    assert metrics["nsp_accuracy"] == pytest.approx(nsp / len(held.starts))


def _loop_log(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]


def test_resume_is_bit_exact(setup, tmp_path):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    assert SCRIPT.main(_argv(setup, straight, "--max-steps", "6", "--quiet")) == 0
    assert SCRIPT.main(_argv(setup, resumed, "--max-steps", "6", "--stop-at-step", "3")) == 0
    assert not (resumed / "eval_results.json").exists()
    assert SCRIPT.main(_argv(setup, resumed, "--max-steps", "6", "--resume", "--quiet")) == 0
    name = "checkpoints/step-00000006.safetensors"
    a, b = load_file(straight / name), load_file(resumed / name)
    assert a.keys() == b.keys() and len(a) > 10
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert _loop_log(straight) == _loop_log(resumed)
    assert json.loads((straight / "eval_results.json").read_text()) == json.loads(
        (resumed / "eval_results.json").read_text()
    )


def test_command_line_refuses_a_small_model(setup, tmp_path):
    small = tmp_path / "small.json"
    config = json.loads(setup["config"].read_text())
    small.write_text(json.dumps({**config, "vocab_size": 10}))
    argv = _argv(setup, tmp_path / "out", "--max-steps", "1")
    argv[argv.index("--config-json") + 1] = str(small)
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "run_lm_finetuning.py"), *argv],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 1
    assert "the model has 10 token embeddings; the tokenizer has 45 tokens" in result.stderr
