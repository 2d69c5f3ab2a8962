"""examples/run_glue.py, run_squad.py and run_swag.py with ``--model-type`` roberta,
distilbert, electra, albert and deberta-v2: tiny random models and tokenizers saved into a
temp folder, tiny MRPC / SQuAD v1.1 / SWAG files; each run trains, evaluates and writes its
results. The oracles: the inputs the tokenizer's own templates build
(``build_inputs_with_special_tokens``: RoBERTa's ``<s> A </s></s> B </s>``), the metrics
recomputed from the saved model on those inputs, the loss on the training set lower than
the initial model's, and SQuAD's target spans reading back as the answers."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import pytest
import torch

import ptfunc
from ptfunc.tokenize import BertTokenizer, train_bpe
from ptfunc.tokenize.auto import load_tokenizer

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
sys.path.insert(0, str(EXAMPLES))
import run_glue  # noqa: E402
import run_squad  # noqa: E402
import run_swag  # noqa: E402
import utils_glue  # noqa: E402
import utils_squad  # noqa: E402

TYPES = ("roberta", "distilbert", "electra", "albert", "deberta-v2")
WORDS = ("the cat sat on a mat dog ran in park he said it was good bad movie very not fun "
         "boring great and film someone she opens door walks away sits down chair smiles "
         "runs fast tower finished paris france where when who").split()  # fmt: skip
BERT_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
ROBERTA_SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
SPIECE = {
    "albert": "albert/spiece.model",
    "deberta-v2": "sentencepiece/hf_test_sentencepiece.model",
}
LAYER = dict(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
             max_position_embeddings=64, hidden_dropout_prob=0.0,
             attention_probs_dropout_prob=0.0)  # fmt: skip


def _tokenizer(model_type: str, folder: Path, fixtures: Path) -> Path:
    """A tokenizer of ``model_type`` saved into ``folder`` (its files say its class)."""
    folder.mkdir(parents=True, exist_ok=True)
    if model_type == "roberta":
        from ptfunc.tokenize.roberta import RobertaTokenizer

        encoder, merges = train_bpe([" ".join(WORDS)] * 3, vocab_size=400)
        vocab = {t: i for i, t in enumerate(ROBERTA_SPECIALS)}  # pad id 1, as RoBERTa's
        for token in sorted(encoder, key=encoder.get):
            vocab.setdefault(token, len(vocab))
        tok = RobertaTokenizer(vocab, merges)
    elif model_type in SPIECE:
        pytest.importorskip("sentencepiece")
        from ptfunc.tokenize.albert import AlbertTokenizer
        from ptfunc.tokenize.deberta_v2 import DebertaV2Tokenizer

        model = fixtures / SPIECE[model_type]
        if not model.is_file():
            pytest.skip(f"{SPIECE[model_type]} not in the shared fixtures")
        cls = AlbertTokenizer if model_type == "albert" else DebertaV2Tokenizer
        tok = cls(model)
    else:
        (folder / "vocab.txt").write_text("\n".join(BERT_SPECIALS + sorted(set(WORDS))) + "\n")
        tok = BertTokenizer(folder / "vocab.txt")
    tok.save_pretrained(folder)
    return folder


def _config(model_type: str, tok, path: Path, **fields) -> Path:
    if model_type == "distilbert":
        config = dict(dim=16, n_layers=1, n_heads=2, hidden_dim=32, max_position_embeddings=64,
                      dropout=0.0, attention_dropout=0.0)  # fmt: skip
    else:
        config = dict(LAYER)
        if model_type in ("electra", "albert"):
            config["embedding_size"] = 8
    config.update(vocab_size=len(tok), pad_token_id=tok.pad_token_id, **fields)
    path.write_text(json.dumps(config))
    return path


@pytest.fixture(params=TYPES)
def env(request, tmp_path, shared_fixtures):
    model_type = request.param
    folder = _tokenizer(model_type, tmp_path / "tok", shared_fixtures)
    tok = load_tokenizer(folder)
    return {"type": model_type, "tok_dir": folder, "tok": tok,
            "config": _config(model_type, tok, tmp_path / "config.json")}  # fmt: skip


def _common(env: dict, out: Path) -> list[str]:
    return [
        "--do-train", "--do-eval", "--model-type", env["type"],
        "--config-json", str(env["config"]), "--tokenizer-dir", str(env["tok_dir"]),
        "--output-dir", str(out), "--batch-size", "8", "--learning-rate", "3e-3",
        "--max-steps", "4", "--threads", "1", "--quiet",
    ]  # fmt: skip


def _ids(tok, text: str) -> list[int]:
    return tok.convert_tokens_to_ids(tok.tokenize(text))


def _pad(rows: list[list[int]], length: int, value: int) -> torch.Tensor:
    assert max(len(r) for r in rows) <= length  # the oracle never truncates
    return torch.tensor([r + [value] * (length - len(r)) for r in rows], dtype=torch.int64)


def _oracle_inputs(env: dict, model, pairs: list[tuple[list[int], list[int]]], length: int):
    """Padded inputs of the id ``pairs`` by the tokenizer's own templates (token types only
    where the model reads them)."""
    tok = env["tok"]
    ids, types = [], []
    for ia, ib in pairs:
        ids.append(tok.build_inputs_with_special_tokens(ia, ib))
        types.append(tok.create_token_type_ids_from_sequences(ia, ib))
    inputs = {"input_ids": _pad(ids, length, tok.pad_token_id)}
    inputs["attention_mask"] = (inputs["input_ids"] != tok.pad_token_id).long()
    takes = utils_glue.takes_token_types(env["type"], model.config)
    assert takes == (env["type"] in ("electra", "albert"))
    if takes:
        inputs["token_type_ids"] = _pad(types, length, 0)
    return inputs


def _initial(model_cls, args, **overrides):
    """The model and initial params the script draws (its seed's first key)."""
    config = model_cls.config_class.from_json_file(args.config_json, **overrides)
    model = model_cls(config)
    key = ptfunc.random.split(ptfunc.random.key(args.seed))[0]
    return model, model.init(key)


def _apply(model, params, inputs: dict, **labels):
    with torch.no_grad():
        return model.apply(params, inputs["input_ids"], **labels,
                           **{k: v for k, v in inputs.items() if k != "input_ids"})  # fmt: skip


# -- GLUE (MRPC) -----------------------------------------------------------------------------


def _write_mrpc(folder: Path, n: int = 8) -> Path:
    rng = torch.Generator().manual_seed(0)
    folder.mkdir(parents=True, exist_ok=True)

    def sentence(k: int) -> str:
        return " ".join(WORDS[i] for i in torch.randint(0, 20, (k,), generator=rng).tolist())

    for split in ("train", "dev"):
        lines = ["Quality\t#1 ID\t#2 ID\t#1 String\t#2 String"]
        for i in range(n):
            a = sentence(4)
            lines.append(f"{i % 2}\t{i}\t{i + 100}\t{a}\t{a if i % 2 else sentence(4)}")
        (folder / f"{split}.tsv").write_text("\n".join(lines) + "\n")
    return folder


def test_glue(env, tmp_path):
    out, length = tmp_path / "out", 32
    argv = [*_common(env, out), "--task", "mrpc", "--data-dir", str(_write_mrpc(tmp_path / "d")),
            "--max-seq-length", str(length)]  # fmt: skip
    metrics = run_glue.main(argv)
    assert json.loads((out / "eval_results.json").read_text()) == pytest.approx(metrics)
    assert metrics["step"] == 4 and (out / "eval_results.txt").is_file()
    cls = run_glue.MODELS[env["type"]]
    model, params = ptfunc.io.from_pretrained(out, cls)
    # The script's features are the tokenizer's templates (RoBERTa's double </s>).
    args = run_glue.parse_args(argv)
    feats = run_glue.featurize(args, env["tok"], "dev")
    dev = utils_glue.read_examples(args.data_dir, "mrpc", "dev")
    inputs = _oracle_inputs(
        env, model, [(_ids(env["tok"], e.text_a), _ids(env["tok"], e.text_b)) for e in dev], length
    )
    assert torch.equal(feats.input_ids, inputs["input_ids"])
    assert torch.equal(feats.attention_mask, inputs["attention_mask"])
    if "token_type_ids" in inputs:
        assert torch.equal(feats.token_type_ids, inputs["token_type_ids"])
    if env["type"] == "roberta":
        seps = (feats.input_ids[0] == env["tok"].sep_token_id).nonzero().flatten().tolist()
        assert len(seps) == 3 and seps[1] == seps[0] + 1
    # The metrics, recomputed from the saved model on those inputs.
    preds = _apply(model, params, inputs).logits.argmax(-1).tolist()
    assert metrics["acc"] == utils_glue.accuracy(preds, feats.labels.tolist())
    # Training lowered the loss on the training set (no dropout: a deterministic loss).
    train = utils_glue.read_examples(args.data_dir, "mrpc", "train")
    tr_inputs = _oracle_inputs(
        env,
        model,
        [(_ids(env["tok"], e.text_a), _ids(env["tok"], e.text_b)) for e in train],
        length,
    )
    labels = torch.tensor([int(e.label) for e in train])
    model0, params0 = _initial(cls, args, num_labels=2)
    before = _apply(model0, params0, tr_inputs, labels=labels).loss
    after = _apply(model, params, tr_inputs, labels=labels).loss
    assert after < before


# -- SQuAD v1.1 ------------------------------------------------------------------------------

CONTEXTS = ("the cat sat on a mat in paris france", "she opens the door and walks away fast")
QUESTIONS = (("where the cat sat", "a mat"), ("who said paris", "paris france"),
             ("when she runs", "walks away fast"), ("who opens", "she"))  # fmt: skip


def _write_squad(path: Path) -> Path:
    paragraphs = []
    for c, context in enumerate(CONTEXTS):
        qas = []
        for q, (question, answer) in enumerate(QUESTIONS[2 * c : 2 * c + 2]):
            qas.append({"id": f"q{c}{q}", "question": question, "answers": [
                {"text": answer, "answer_start": context.index(answer)}]})  # fmt: skip
        paragraphs.append({"context": context, "qas": qas})
    path.write_text(
        json.dumps({"version": "1.1", "data": [{"title": "t", "paragraphs": paragraphs}]})
    )
    return path


def test_squad(env, tmp_path):
    out, data = tmp_path / "out", _write_squad(tmp_path / "squad.json")
    argv = [*_common(env, out), "--train-file", str(data), "--predict-file", str(data),
            "--max-seq-length", "32", "--doc-stride", "16"]  # fmt: skip
    metrics = run_squad.main(argv)
    assert json.loads((out / "eval_results.json").read_text()) == pytest.approx(metrics)
    assert 0.0 <= metrics["exact"] <= 100.0 and 0.0 <= metrics["f1"] <= 100.0
    assert set(json.loads((out / "predictions.json").read_text())) == {"q00", "q01", "q10",
                                                                       "q11"}  # fmt: skip
    args = run_squad.parse_args(argv)
    tok = run_squad.load_tokenizer(args)
    examples = utils_squad.read_squad_examples(data, is_training=True,
                                               version_2_with_negative=False)  # fmt: skip
    feats = utils_squad.convert_examples_to_features(
        examples, tok, is_training=True, **run_squad.window_options(args)
    )
    # Every window is the tokenizer's template of (question, window) and its span reads
    # the answer; RoBERTa's words are encoded as inside a sentence (add_prefix_space).
    for f in feats:
        ex = examples[f.example_index]
        doc = [f.input_ids[i] for i in sorted(f.token_to_orig_map)]
        want = tok.build_inputs_with_special_tokens(_ids(tok, ex.question_text), doc)
        assert f.input_ids == want + [tok.pad_token_id] * (32 - len(want))
        if env["type"] in ("roberta", "distilbert"):
            assert set(f.token_type_ids) == {0}
        span = f.tokens[f.start_position : f.end_position + 1]
        text = tok.convert_tokens_to_string(span).replace(" ##", "").strip()
        assert text == ex.orig_answer_text
    if env["type"] == "roberta":
        assert tok.tokenize("cat") == ["\u0120cat"]  # as inside a sentence
    cls = run_squad.MODELS[env["type"]]
    model, params = ptfunc.io.from_pretrained(out, cls)
    stacked = utils_squad.stack_features(feats)
    names = run_squad.input_names(env["type"], model.config)
    assert ("token_type_ids" in names) == (env["type"] in ("electra", "albert"))
    inputs = {"input_ids": stacked["input_ids"], **{k: stacked[k] for k in names}}
    targets = {k: stacked[k] for k in ("start_positions", "end_positions")}
    model0, params0 = _initial(cls, args, num_labels=2)
    assert _apply(model, params, inputs, **targets).loss < _apply(
        model0, params0, inputs, **targets).loss  # fmt: skip


# -- SWAG ------------------------------------------------------------------------------------


def _write_swag(path: Path, n: int = 8) -> Path:
    rng = torch.Generator().manual_seed(0)

    def sentence(k: int) -> str:
        return " ".join(WORDS[i] for i in torch.randint(20, 35, (k,), generator=rng).tolist())

    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(run_swag.COLUMNS)
        for i in range(n):
            endings = [sentence(2) for _ in range(4)]
            w.writerow([f"v{i}", i, "x", sentence(3), sentence(1), "gold", *endings, i % 4])
    return path


def test_swag(env, tmp_path):
    out, data, length = tmp_path / "out", _write_swag(tmp_path / "swag.csv"), 24
    argv = [*_common(env, out), "--train-file", str(data), "--predict-file", str(data),
            "--max-seq-length", str(length)]  # fmt: skip
    metrics = run_swag.main(argv)
    assert json.loads((out / "eval_results.json").read_text()) == pytest.approx(metrics)
    cls = run_swag.MODELS[env["type"]]
    model, params = ptfunc.io.from_pretrained(out, cls)
    examples = run_swag.read_swag_examples(data)
    tok = env["tok"]
    pairs = [(_ids(tok, ex.context), _ids(tok, ex.start_ending) + _ids(tok, e))
             for ex in examples for e in ex.endings]  # fmt: skip
    flat = _oracle_inputs(env, model, pairs, length)
    inputs = {k: v.reshape(len(examples), 4, length) for k, v in flat.items()}
    feats = run_swag.featurize(run_swag.parse_args(argv), env["tok"], data)
    assert torch.equal(feats["input_ids"], inputs["input_ids"])
    labels = feats["labels"]
    trained = _apply(model, params, inputs, labels=labels)
    acc = (trained.logits.argmax(-1) == labels).float().mean().item()
    assert metrics["eval_accuracy"] == pytest.approx(acc)
    assert metrics["eval_loss"] == pytest.approx(trained.loss.item(), rel=1e-5)
    model0, params0 = _initial(cls, run_swag.parse_args(argv))
    assert trained.loss < _apply(model0, params0, inputs, labels=labels).loss


def test_roberta_single_text_and_pair_templates(tmp_path, shared_fixtures):
    folder = _tokenizer("roberta", tmp_path / "tok", shared_fixtures)
    tok = load_tokenizer(folder)
    ex = [utils_glue.InputExample("x", "the cat sat", None, "1"),
          utils_glue.InputExample("y", "the cat sat", "a dog ran", "0")]  # fmt: skip
    lay = utils_glue.layout("roberta")
    f = utils_glue.convert_examples_to_features(
        ex, tok, "sst-2", 12, sep_token_extra=lay.sep_token_extra, token_types=lay.token_types
    )
    single = tok.build_inputs_with_special_tokens(_ids(tok, "the cat sat"))
    pair = tok.build_inputs_with_special_tokens(_ids(tok, "the cat sat"), _ids(tok, "a dog ran"))
    assert tok.convert_ids_to_tokens(pair).count("</s>") == 3
    assert f.input_ids[0].tolist() == single + [tok.pad_token_id] * (12 - len(single))
    assert f.input_ids[1].tolist() == pair + [tok.pad_token_id] * (12 - len(pair))
    assert f.token_type_ids.eq(0).all()
    # a pair too long for 10 tokens loses the longer text's tail first, 4 specials kept
    g = utils_glue.convert_examples_to_features(ex[1:], tok, "mrpc", 9, sep_token_extra=True)
    assert tok.convert_ids_to_tokens(g.input_ids[0].tolist()).count("</s>") == 3
    assert g.attention_mask.sum() == 9
