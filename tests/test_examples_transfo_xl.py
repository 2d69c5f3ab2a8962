"""examples/run_transfo_xl.py: runs end to end on a tiny generated corpus, its
perplexity evaluation equals a direct computation, and 1.0's command line gives 1.0's
numbers.

References for ``evaluate``: without memories, the mean NLL of each segment's
log-probabilities (``prediction_scores``) gathered at the targets; with memories
longer than the rows (and ``same_length=False``), one pass over each whole row from
empty memories, which segment-by-segment reading with memories must reproduce. For 1.0's
command line: pytorch-transformers 1.0.0's own ``run_transfo_xl.py`` evaluation loop on
its own model and ``TransfoXLCorpus``, from the same directory. float32 within 1e-5
relative.
"""

from __future__ import annotations

import importlib.util
import json
import math
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import ptfunc

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "run_transfo_xl.py"
TINY = [
    "--d-model", "16", "--n-head", "2", "--d-inner", "32", "--n-layer", "2",
    "--tgt-len", "8", "--mem-len", "8", "--batch-size", "4", "--eval-batch-size", "2",
    "--min-freq", "1", "--warmup", "1", "--log-every", "2",
]  # fmt: skip


def _example():
    spec = importlib.util.spec_from_file_location("run_transfo_xl", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    rng = random.Random(0)
    words = [f"w{i}" for i in range(40)]
    lines = [" ".join(rng.choice(words) for _ in range(rng.randint(3, 12))) for _ in range(120)]
    path = tmp_path_factory.mktemp("corpus") / "tiny.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_runs_and_prints_both_perplexities(corpus):
    result = subprocess.run(
        [sys.executable, str(EXAMPLE), "--corpus", str(corpus), "--max-steps", "4"]
        + TINY
        + ["--threads", "1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    values = {}
    for label in ("with memories", "without memories"):
        match = re.search(rf"perplexity {label}[^:]*: ([0-9.]+|nan|inf)", result.stdout)
        assert match, result.stdout
        values[label] = float(match.group(1))
    assert all(math.isfinite(v) and v > 1 for v in values.values()), values
    assert "step     0" in result.stdout


def test_evaluate_equals_direct_computation(corpus):
    ex = _example()
    tokenizer, train_ids, eval_ids = ex.build_data(corpus, min_freq=1, eval_fraction=0.2)
    args = ex.parse_args(TINY + ["--mem-len", "200"])
    model = ex.make_model(len(tokenizer), args)
    params = model.init(ptfunc.random.key(0))
    ids = eval_ids[: 2 * 37]  # two rows of 37 tokens: 36 targets each, segments of 8
    rows = ids.reshape(2, 37)

    without = ex.evaluate(model, params, ids, tgt_len=8, batch_size=2, use_memory=False)
    nll = []
    for start in range(0, 36, 8):
        data, target = rows[:, start : start + 8], rows[:, start + 1 : start + 9]
        data = data[:, : target.shape[1]]
        scores = model.apply(params, data).prediction_scores
        nll.append(-scores.gather(-1, target[..., None]).flatten())
    direct = math.exp(float(torch.cat(nll).mean()))
    assert without == pytest.approx(direct, rel=1e-5)

    with_memory = ex.evaluate(model, params, ids, tgt_len=8, batch_size=2, use_memory=True)
    whole = model.apply(params, rows[:, :-1], labels=rows[:, 1:], mems=())  # one pass
    assert with_memory == pytest.approx(math.exp(float(whole.loss)), rel=1e-5)


def test_evaluates_a_pretrained_model_by_name_or_path(corpus, tmp_path):
    """A saved ptfunc directory and a text corpus: evaluate only, 1.0's way (first segment
    from mems=None, 1.0's zero memories)."""
    ex = _example()
    args = ex.parse_args(["--corpus", str(corpus), *TINY])
    tokenizer, _, _ = ex.build_data(corpus, min_freq=1, eval_fraction=0.1)
    model = ex.make_model(len(tokenizer), args)
    params = model.init(ptfunc.random.key(3))
    model.save_pretrained(tmp_path, params)
    tokenizer.save_pretrained(tmp_path)
    flags = ["--tgt-len", "8", "--mem-len", "8", "--batch-size", "2", "--threads", "1"]
    result = subprocess.run(
        [sys.executable, str(EXAMPLE), "--corpus", str(corpus), "--model_name_or_path"]
        + [str(tmp_path), *flags],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "step" not in result.stdout  # no training
    match = re.search(r"\| test loss +[0-9.]+ \| test ppl +([0-9.]+)", result.stdout)
    assert match, result.stdout
    ids = tokenizer.encode_file(corpus, ordered=True, add_eos=True)
    loss = ex.evaluate_loss(model, params, ids, tgt_len=8, batch_size=2, first_mems=None)
    assert float(match.group(1)) == pytest.approx(math.exp(loss), rel=1e-4)  # printed: 3 places


def _one_oh_directory(directory: Path, seed_model_config: dict):
    """``directory`` in pytorch-transformers 1.0's layout, written by 1.0 itself:
    config.json and pytorch_model.bin of a tiny random TransfoXLLMHeadModel, vocab.bin, and
    the pre-tokenised corpus.bin that ``TransfoXLCorpus.from_pretrained`` reads (built by
    ``TransfoXLCorpus.build_corpus`` from train/valid/test.txt, saved as 1.0's conversion
    script saves it). Returns (1.0 model, 1.0 corpus)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pytorch_transformers as pt
    rng = random.Random(1)
    words = [f"w{i}" for i in range(60)]
    text = directory.parent / "text"
    text.mkdir()
    for split, n_lines in (("train", 200), ("valid", 140), ("test", 160)):
        lines = [" ".join(rng.choices(words, k=rng.randint(5, 25))) for _ in range(n_lines)]
        (text / f"{split}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    corpus = pt.TransfoXLCorpus(special=["<unk>", "<eos>"], lower_case=False)
    corpus.build_corpus(str(text), "wt103")
    directory.mkdir()
    corpus.vocab.save_vocabulary(str(directory))
    state = {k: v for k, v in corpus.__dict__.items() if k != "vocab"}
    torch.save(state, directory / "corpus.bin")
    torch.manual_seed(0)
    config = pt.TransfoXLConfig(len(corpus.vocab), **seed_model_config)
    reference = pt.TransfoXLLMHeadModel(config).eval()
    reference.save_pretrained(str(directory))
    return reference, corpus


def _one_oh_evaluate(model, eval_iter):
    """The ``evaluate`` of 1.0's examples/single_model_scripts/run_transfo_xl.py."""
    total_len, total_loss = 0, 0.0
    with torch.no_grad():
        mems = None
        for data, target, seq_len in eval_iter:
            ret = model(data, target, mems)
            loss, _, mems = ret
            loss = loss.mean()
            total_loss += seq_len * loss.item()
            total_len += seq_len
    return total_loss / total_len


SEED_COMMAND = (  # the seed's README line, verbatim
    "--model_name transfo-xl-wt103 --tgt_len 128 --ext_len 0 --mem_len 1600 --clamp_len 1000 "
    "--same_length --work_dir ../log"
)


def test_the_command_line_of_1_0_gives_its_perplexities(tmp_path, seed_txl_bool_masks):
    """1.0's command line verbatim, run where ``transfo-xl-wt103`` is a local directory (a
    local directory wins over a shortcut name) holding a tiny model that 1.0 wrote, with its
    corpus.bin: the losses of 1.0's own script on 1.0's model, valid and test."""
    pytest.importorskip("pytorch_transformers")
    small = dict(
        cutoffs=[20, 40], d_model=16, d_embed=16, n_head=2, d_head=8, d_inner=32, div_val=2,
        n_layer=2, tgt_len=16, mem_len=8, clamp_len=1000, same_length=True,
    )  # fmt: skip
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    reference, corpus = _one_oh_directory(run_dir / "transfo-xl-wt103", small)
    reference.reset_length(128, 0, 1600)  # what 1.0's script does (clamp_len and
    want = {  # same_length are the config's already)
        split: _one_oh_evaluate(reference, corpus.get_iterator(split, 10, 128, ext_len=0))
        for split in ("valid", "test")
    }

    def run(*argv):
        return subprocess.run(
            [sys.executable, str(EXAMPLE), *argv],
            capture_output=True, text=True, timeout=300, cwd=run_dir,
        )  # fmt: skip

    result = run(*SEED_COMMAND.split())
    assert result.returncode == 0, result.stderr
    written = json.loads((tmp_path / "log" / "eval_results.json").read_text())
    assert set(written) - {"model_name", "settings"} == {"test"}  # 1.0's default --split
    assert written["test"]["loss"] == pytest.approx(want["test"], rel=1e-5)
    log = (tmp_path / "log" / "log.txt").read_text()
    assert "Evaluating with bsz 10 tgt_len 128 ext_len 0 mem_len 1600 clamp_len 1000" in log
    assert log.splitlines()[-2] in result.stdout and "| test loss" in log.splitlines()[-2]

    # hyphens, --split all, --no_log (nothing written), 1.0's debugging flags (ignored)
    again = run(
        *SEED_COMMAND.replace("_", "-").split(), "--split", "all", "--no_log",
        "--server_ip", "localhost", "--server_port", "5678",
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert "ignored" in again.stdout
    assert (tmp_path / "log" / "log.txt").read_text() == log  # not rewritten
    result_line = again.stdout.split("=" * 100)[1]
    assert result_line.index("valid") < result_line.index("test")  # 1.0's order
    for split in ("valid", "test"):
        match = re.search(rf"\| {split} ppl +([0-9.]+)", result_line)
        assert float(match.group(1)) == pytest.approx(math.exp(want[split]), rel=1e-4)


def test_a_model_without_a_corpus_fails_with_the_remedy(corpus, tmp_path):
    ex = _example()
    tokenizer, _, _ = ex.build_data(corpus, min_freq=1, eval_fraction=0.1)
    model = ex.make_model(len(tokenizer), ex.parse_args(TINY))
    model.save_pretrained(tmp_path / "m", model.init(ptfunc.random.key(0)))
    tokenizer.save_pretrained(tmp_path / "m")
    for extra, message in (
        ([], "no corpus for --split test"),
        (["--corpus", str(corpus), "--split", "all"], "--corpus is one text"),
    ):
        result = subprocess.run(
            [sys.executable, str(EXAMPLE), "--model_name", str(tmp_path / "m"), *extra],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert result.returncode != 0 and message in result.stderr, result.stderr
