"""examples/run_bertology.py on a tiny generated MRPC-like TSV and a random tiny BERT:
it writes entropy and importance (checked against the library called directly on the
same batches), masks heads and prunes them (pruned score = masked score, same logits)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import ptfunc
from ptfunc.research import bertology

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
sys.path.insert(0, str(EXAMPLES))
import run_bertology  # noqa: E402

WORDS = "the cat sat on a mat dog ran in park he said it was good bad not fun".split()
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def _write_data(tmp: Path) -> tuple[Path, Path, Path]:
    rng = torch.Generator().manual_seed(0)
    data = tmp / "MRPC"
    data.mkdir()
    lines = ["Quality\t#1 ID\t#2 ID\t#1 String\t#2 String"]

    def words(n: int) -> str:
        return " ".join(WORDS[j] for j in torch.randint(0, len(WORDS), (n,), generator=rng))

    for i in range(10):
        a = words(5)
        b = a if i % 2 else words(4)
        lines.append(f"{i % 2}\t{i}\t{i + 100}\t{a}\t{b}")
    (data / "dev.tsv").write_text("\n".join(lines) + "\n")
    vocab = tmp / "vocab"
    vocab.mkdir()
    (vocab / "vocab.txt").write_text("\n".join(SPECIALS + sorted(set(WORDS))) + "\n")
    config = tmp / "config.json"
    config.write_text(json.dumps(dict(
        vocab_size=len(SPECIALS) + len(set(WORDS)), hidden_size=16, num_hidden_layers=2,
        num_attention_heads=4, intermediate_size=24, max_position_embeddings=32,
    )))  # fmt: skip
    return data, vocab, config


def _argv(tmp: Path, *extra: str) -> list[str]:
    data, vocab, config = _write_data(tmp)
    return [
        "--data-dir", str(data), "--output-dir", str(tmp / "out"), "--config-json",
        str(config), "--tokenizer-dir", str(vocab), "--max-seq-length", "16",
        "--batch-size", "4", "--quiet", *extra,
    ]  # fmt: skip


def test_stats_written_and_equal_the_library(tmp_path):
    argv = _argv(tmp_path, "--max-steps", "2")
    results = run_bertology.main(argv)
    out = tmp_path / "out"
    imp = np.load(out / "head_importance.npy")
    ent = np.load(out / "attn_entropy.npy")
    assert imp.shape == ent.shape == (2, 4)
    assert imp.min() == 0.0 and imp.max() == 1.0  # global min-max normalisation
    stats = json.loads((out / "head_stats.json").read_text())
    assert stats["n_tokens"] == results["n_tokens"]
    # the same numbers from the library on the same two batches of 4
    args = run_bertology.parse_args(argv)
    tok = run_bertology._loop.load_tokenizer(args)
    ex = run_bertology.utils_glue.read_examples(args.data_dir, "mrpc", "dev")
    f = run_bertology.utils_glue.convert_examples_to_features(ex, tok, "mrpc", 16)
    model, params = run_bertology._loop.load_model(
        args, run_bertology.bert.BertForSequenceClassification, ptfunc.random.key(42), num_labels=2
    )
    batches = [
        {"input_ids": f.input_ids[s], "attention_mask": f.attention_mask[s],
         "token_type_ids": f.token_type_ids[s], "labels": f.labels[s]}
        for s in (slice(0, 4), slice(4, 8))
    ]  # fmt: skip
    ref = bertology.compute_head_stats(model, params, batches)
    assert ref.n_tokens == results["n_tokens"]
    assert np.allclose(imp, ref.importance.numpy(), atol=1e-6)
    assert np.allclose(ent, ref.entropy.numpy(), atol=1e-6)
    assert set(results["metrics"]) == {"acc", "f1", "acc_and_f1"}


def test_masking_and_pruning(tmp_path):
    results = run_bertology.main(
        _argv(tmp_path, "--try-masking", "--masking-threshold", "0.0", "--masking-amount",
              "0.25", "--save-pruned", "--remat")
    )  # fmt: skip
    m = results["masking"]
    assert m["heads_kept"] == 2  # 8 heads, 2 at a time, stops with no more than 2 left
    assert m["params_after"] < m["params_before"]
    assert m["pruned_score"] == m["masked_score"]
    assert m["max_logit_diff_pruned_vs_masked"] <= 1e-6
    mask = np.load(tmp_path / "out" / "head_mask.npy")
    assert mask.sum() == 2
    pruned = json.loads((tmp_path / "out" / "pruned" / "config.json").read_text())
    assert sum(len(v) for v in pruned["pruned_heads"].values()) == 6


def test_plot_needs_matplotlib(tmp_path):
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="matplotlib"):
            run_bertology.main(_argv(tmp_path, "--max-steps", "1", "--plot"))
    else:
        run_bertology.main(_argv(tmp_path, "--max-steps", "1", "--plot"))
        assert (tmp_path / "out" / "head_importance.png").stat().st_size > 0


def test_runs_as_a_script(tmp_path):
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "run_bertology.py"), *_argv(tmp_path, "--max-steps", "1")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "Head importance scores" in done.stdout and "Final metrics: acc" in done.stdout
    assert (tmp_path / "out" / "bertology_results.json").is_file()
