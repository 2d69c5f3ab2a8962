"""examples/run_squad.py on a tiny generated SQuAD file (3 paragraphs, 6 questions, 2 of
them unanswerable for v2.0): windows, post-processing and the official EM/F1 logic checked
against values worked out by hand; training, prediction and a bit-exact resume."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

import ptfunc
from ptfunc.tokenize import BertTokenizer
from ptfunc.tokenize.bert import BasicTokenizer

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
sys.path.insert(0, str(EXAMPLES))
import _loop  # noqa: E402
import run_squad  # noqa: E402
import utils_squad  # noqa: E402
import utils_squad_evaluate as ev  # noqa: E402

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]

P1 = "The Eiffel Tower was finished in (1889). It stands in Paris , France."
P2 = ("Marie Curie won the Nobel Prize twice. She was born in Warsaw and worked in Paris "
      "for most of her life.")  # fmt: skip
P3 = "Python is a programming language created by Guido van Rossum."


def _qa(qid, question, context, answer=None):
    if answer is None:
        return {"id": qid, "question": question, "answers": [], "is_impossible": True}
    start = context.index(answer)
    return {"id": qid, "question": question, "is_impossible": False,
            "answers": [{"text": answer, "answer_start": start}]}  # fmt: skip


def squad_data(v2: bool) -> dict:
    paragraphs = [
        {"context": P1, "qas": [_qa("q1", "When was the tower finished?", P1, "1889"),
                                _qa("q2", "Where is the Eiffel Tower?", P1, "Paris , France")]},
        {"context": P2, "qas": [_qa("q3", "Where was Marie Curie born?", P2, "Warsaw"),
                                _qa("q4", "How many Nobel Prizes did Curie win?", P2, "twice")]},
        {"context": P3, "qas": [_qa("q5", "Who created Python?", P3, "Guido van Rossum")]},
    ]  # fmt: skip
    if v2:
        paragraphs[0]["qas"].append(_qa("q6", "Who painted the tower?", P1))
        paragraphs[2]["qas"].append(_qa("q7", "When was Python created?", P3))
    return {"version": "2.0" if v2 else "1.1", "data": [{"title": "t", "paragraphs": paragraphs}]}


def write_env(tmp_path: Path, v2: bool) -> dict:
    data = squad_data(v2)
    path = tmp_path / f"squad-{'v2' if v2 else 'v1'}.json"
    path.write_text(json.dumps(data))
    basic = BasicTokenizer(do_lower_case=True)
    words = set()
    for p in data["data"][0]["paragraphs"]:
        words.update(basic.tokenize(p["context"]))
        for qa in p["qas"]:
            words.update(basic.tokenize(qa["question"]))
    vocab = tmp_path / "vocab"
    vocab.mkdir(exist_ok=True)
    (vocab / "vocab.txt").write_text("\n".join(SPECIALS + sorted(words)) + "\n")
    config = tmp_path / "config.json"
    config.write_text(json.dumps(dict(
        vocab_size=len(SPECIALS) + len(words), hidden_size=16, num_hidden_layers=1,
        num_attention_heads=2, intermediate_size=32, max_position_embeddings=64,
    )))  # fmt: skip
    return {"data": path, "vocab": vocab, "config": config}


def _argv(env: dict, out: Path, *extra: str) -> list[str]:
    return [
        "--do-train", "--do-eval", "--do-lower-case",
        "--train-file", str(env["data"]), "--predict-file", str(env["data"]),
        "--config-json", str(env["config"]), "--tokenizer-dir", str(env["vocab"]),
        "--output-dir", str(out), "--max-seq-length", "32", "--doc-stride", "8",
        "--max-query-length", "12", "--batch-size", "4", "--learning-rate", "1e-3",
        "--threads", "1", "--quiet", *extra,
    ]  # fmt: skip


# -- the official metrics ---------------------------------------------------------------------


def test_normalize_and_scores_by_hand():
    assert ev.normalize_answer("  The Eiffel-Tower, in  PARIS! ") == "eiffeltower in paris"
    assert ev.normalize_answer("an apple a day") == "apple day"
    assert ev.compute_exact("Paris, France", "paris france") == 1
    assert ev.compute_exact("Paris", "Paris France") == 0
    # gold [paris, france], pred [in, paris]: common 1, precision 1/2, recall 1/2 -> F1 1/2
    assert ev.compute_f1("Paris, France", "in Paris") == pytest.approx(0.5)
    # repeated tokens count with multiplicity: gold [a1 a1 b], pred [a1 a1 a1] ->
    # common 2, precision 2/3, recall 2/3 -> 2/3
    assert ev.compute_f1("x x y", "x x x") == pytest.approx(2 / 3)
    assert ev.compute_f1("", "") == 1.0 and ev.compute_f1("", "the") == 1.0  # "the" -> ""
    assert ev.compute_f1("", "paris") == 0.0 and ev.compute_f1("paris", "") == 0.0


def test_evaluate_crafted_predictions_v2():
    data = squad_data(v2=True)["data"]
    preds = {
        "q1": "1889",  # EM 1, F1 1
        "q2": "in Paris",  # gold "Paris , France": EM 0; common 1, P 1/2, R 1/2 -> F1 1/2
        "q3": "Warsaw and",  # EM 0; P 1/2, R 1 -> F1 2/3
        "q4": "the twice",  # normalises to "twice": EM 1, F1 1
        "q5": "Guido",  # EM 0; P 1, R 1/3 -> F1 1/2
        "q6": "",  # unanswerable, answered "": 1, 1
        "q7": "1991",  # unanswerable, answered: 0, 0
    }
    got = ev.evaluate(data, preds)
    assert got["total"] == 7 and got["HasAns_total"] == 5 and got["NoAns_total"] == 2
    assert got["exact"] == pytest.approx(100 * 3 / 7)
    assert got["f1"] == pytest.approx(100 * (1 + 0.5 + 2 / 3 + 1 + 0.5 + 1 + 0) / 7)
    assert got["HasAns_exact"] == pytest.approx(100 * 2 / 5)
    assert got["NoAns_exact"] == pytest.approx(50.0) and got["NoAns_f1"] == pytest.approx(50.0)
    # With no-answer scores: q7 above the threshold counts as "" (now right), and q2 too
    # (now 0 on both, as it has an answer).
    na = {q: 0.0 for q in preds} | {"q7": 0.9, "q2": 0.8}
    got = ev.evaluate(data, preds, na, threshold=0.5)
    assert got["exact"] == pytest.approx(100 * 4 / 7)
    assert got["f1"] == pytest.approx(100 * (1 + 0 + 2 / 3 + 1 + 0.5 + 1 + 1) / 7)
    # Best exact threshold by hand: all "" gives 2 (q6, q7); then in rising na order
    # (stable, na 0.0 first: q1 +1, q3 +0, q4 +1, q5 +0, q6 +0) = 4 at 0.0; q2 (0.8) +0;
    # q7 (0.9, answered) -1 -> best 4 at threshold 0.0.
    assert got["best_exact"] == pytest.approx(100 * 4 / 7) and got["best_exact_thresh"] == 0.0
    with pytest.raises(KeyError, match="no prediction"):
        ev.evaluate(data, {"q1": "1889"})


# -- data and post-processing ---------------------------------------------------------------


def test_examples_windows_and_targets(tmp_path):
    env = write_env(tmp_path, v2=True)
    tok = BertTokenizer(env["vocab"] / "vocab.txt")
    examples = utils_squad.read_squad_examples(env["data"], is_training=True,
                                               version_2_with_negative=True)  # fmt: skip
    q1 = examples[0]
    # P1 words: The Eiffel Tower was finished in (1889). ... -> "(1889)." is word 6
    assert q1.doc_tokens[q1.start_position] == "(1889)." and q1.end_position == 6
    # order: q1 q2 q6 (P1), q3 q4 (P2), q5 q7 (P3)
    assert [e.is_impossible for e in examples] == [False, False, True, False, False, False, True]
    feats = utils_squad.convert_examples_to_features(
        examples, tok, max_seq_length=24, doc_stride=5, max_query_length=12, is_training=True
    )
    for f in feats:
        assert len(f.input_ids) == len(f.attention_mask) == len(f.token_type_ids) == 24
        ex = examples[f.example_index]
        if f.start_position:  # the target tokens spell the (tokenised) answer
            want = " ".join(tok.tokenize(ex.orig_answer_text))
            assert " ".join(f.tokens[f.start_position : f.end_position + 1]) == want
        if ex.is_impossible:
            assert f.start_position == f.end_position == 0
    # q1: the answer "1889" is the inner token of "( 1889 ) ." (improved span), found.
    q1_feats = [f for f in feats if f.example_index == 0]
    assert len(q1_feats) > 1  # the paragraph needs several windows at this length
    assert sum(1 for f in q1_feats if f.start_position) >= 1
    # Every document token is max context in exactly one window.
    doc_len = len([t for w in q1.doc_tokens for t in tok.tokenize(w)])
    owners = collections_count(q1_feats)
    assert sorted(owners) == list(range(doc_len)) and set(owners.values()) == {1}


def collections_count(feats):
    """``{document token position: number of windows where it is max context}``."""
    counts: dict[int, int] = {}
    for f in feats:
        first = min(f.token_to_orig_map)  # sequence position of the window's first doc token
        for pos, is_max in f.token_is_max_context.items():
            if is_max:
                doc_pos = f.doc_start + pos - first
                counts[doc_pos] = counts.get(doc_pos, 0) + 1
    return counts


def test_postprocess_picks_the_span_and_the_null(tmp_path):
    env = write_env(tmp_path, v2=True)
    tok = BertTokenizer(env["vocab"] / "vocab.txt")
    examples = utils_squad.read_squad_examples(env["data"], is_training=False,
                                               version_2_with_negative=True)  # fmt: skip
    examples = examples[:2]  # q1, q2 on P1
    feats = utils_squad.convert_examples_to_features(
        examples, tok, max_seq_length=40, doc_stride=16, max_query_length=12, is_training=False
    )
    assert len(feats) == 2  # one window each
    start = torch.full((2, 40), -5.0)
    end = torch.full((2, 40), -5.0)
    # q1: point at "paris , france" (tokens of the doc), with original case restored.
    toks = feats[0].tokens
    s = toks.index("paris", toks.index("[SEP]"))  # in the document, not the question
    start[0, s], end[0, s + 2] = 4.0, 4.0
    # q2: the null ([CLS]) scores 3 + 3 = 6 against the best span 2 + 2 = 4.
    start[1, 0], end[1, 0] = 3.0, 3.0
    s2 = feats[1].tokens.index("eiffel", feats[1].tokens.index("[SEP]"))
    start[1, s2], end[1, s2 + 1] = 2.0, 2.0
    preds, nbest, odds = utils_squad.postprocess(
        examples, feats, start, end, n_best_size=5, max_answer_length=10, do_lower_case=True,
        version_2_with_negative=True,
    )  # fmt: skip
    assert preds["q1"] == "Paris , France"
    assert preds["q2"] == "" and odds["q2"] == pytest.approx(6.0 - 4.0)
    assert nbest["q2"][0]["text"] == "" and nbest["q2"][1]["text"] == "Eiffel Tower"
    assert sum(x["probability"] for x in nbest["q1"]) == pytest.approx(1.0)
    # A threshold above the odds keeps the span.
    preds, _, _ = utils_squad.postprocess(
        examples, feats, start, end, n_best_size=5, max_answer_length=10, do_lower_case=True,
        version_2_with_negative=True, null_score_diff_threshold=2.5,
    )  # fmt: skip
    assert preds["q2"] == "Eiffel Tower"
    # get_final_text strips what the tokenizer split off: "(1889)." -> "1889".
    assert utils_squad.get_final_text("1889", "(1889).", True) == "1889"


# -- the script ------------------------------------------------------------------------------


@pytest.mark.parametrize("v2", [False, True], ids=["v1.1", "v2.0"])
def test_trains_predicts_and_scores(tmp_path, v2):
    env = write_env(tmp_path, v2)
    out = tmp_path / "out"
    extra = ["--max-steps", "3"] + (["--version-2-with-negative"] if v2 else [])
    metrics = run_squad.main(_argv(env, out, *extra))
    assert json.loads((out / "eval_results.json").read_text()) == pytest.approx(metrics)
    assert 0.0 <= metrics["exact"] <= metrics["f1"] + 1e-9 <= 100.0 + 1e-9
    assert metrics["total"] == (7 if v2 else 5)
    preds = json.loads((out / "predictions.json").read_text())
    assert set(preds) == {f"q{i}" for i in range(1, 8 if v2 else 6)}
    assert (out / "nbest_predictions.json").is_file()
    assert (out / "null_odds.json").is_file() == v2
    # The scores are the official logic applied to the written predictions.
    data = json.loads(env["data"].read_text())["data"]
    again = ev.evaluate(data, preds)
    assert again["exact"] == pytest.approx(metrics["exact"])


def test_resume_is_bit_exact(tmp_path):
    env = write_env(tmp_path, v2=True)
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    common = ["--max-steps", "6", "--version-2-with-negative"]
    run_squad.main(_argv(env, straight, *common))
    assert run_squad.main(_argv(env, stopped, *common, "--stop-at-step", "3")) == {}
    run_squad.main(_argv(env, stopped, *common, "--resume"))
    a = ptfunc.io.from_pretrained(straight, run_squad.MODELS["bert"])[1]
    b = ptfunc.io.from_pretrained(stopped, run_squad.MODELS["bert"])[1]
    for x, y in zip(ptfunc.tree.leaves(a), ptfunc.tree.leaves(b), strict=True):
        assert torch.equal(x, y)
    assert _loop.read_log(straight) == _loop.read_log(stopped)
    assert len(_loop.read_log(stopped)) == 6
    assert (straight / "predictions.json").read_text() == (stopped / "predictions.json").read_text()
