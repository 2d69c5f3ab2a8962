"""The example scripts run pytorch-transformers 1.0's README command lines as they are
(underscore flags, ``--do_train`` / ``--do_eval``, ``--per_gpu_*_batch_size``, ``--task_name
MRPC``, ...), with tiny local models in place of the shortcut names, and write 1.0's result
files; their evaluation numbers are checked against transformers 5 on the saved models.
The shared loop's 1.0 options (gradient accumulation, fp16, the output-directory rule,
data parallel under ``torch.distributed.launch``) are tested in test_examples_loop.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import ptfunc
from ptfunc.archs import bert
from ptfunc.tokenize import BertTokenizer

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
sys.path.insert(0, str(EXAMPLES))
import _loop  # noqa: E402
import run_glue  # noqa: E402
import run_squad  # noqa: E402
import run_swag  # noqa: E402
import utils_glue  # noqa: E402
from test_examples_glue import write_config, write_mrpc, write_vocab  # noqa: E402
from test_examples_squad import write_env as write_squad_env  # noqa: E402
from test_examples_swag import write_env as write_swag_env  # noqa: E402


def pretrained_dir(folder: Path, cls, config_json: Path, vocab_dir: Path, **config) -> Path:
    """A 'pretrained' directory as a shortcut name would give: config, weights, vocab."""
    model = cls(cls.config_class.from_json_file(config_json, **config))
    ptfunc.io.save_pretrained(folder, model, model.init(ptfunc.random.key(5)))
    BertTokenizer(str(vocab_dir / "vocab.txt"), do_lower_case=True).save_pretrained(folder)
    return folder


def eval_results(out: Path) -> dict[str, str]:
    """1.0's eval_results.txt: ``name = value`` lines, sorted by name."""
    lines = (out / "eval_results.txt").read_text().splitlines()
    names = [line.split(" = ")[0] for line in lines]
    assert names == sorted(names)
    return dict(line.split(" = ", 1) for line in lines)


def test_spellings_change_flag_names_only():
    argv = ["--data_dir", "my_dir", "--per_gpu_train_batch_size=8", "-x", "--", "a_b"]
    assert _loop.seed_spellings(argv) == [
        "--data-dir", "my_dir", "--per-gpu-train-batch-size=8", "-x", "--", "a_b",
    ]  # fmt: skip


def test_run_glue_readme_line(tmp_path):
    """README: run_glue.py --model_type bert --model_name_or_path bert-base-uncased
    --task_name $TASK_NAME --do_train --do_eval --do_lower_case --data_dir $GLUE_DIR/$TASK_NAME
    --max_seq_length 128 --per_gpu_eval_batch_size=8 --per_gpu_train_batch_size=8
    --learning_rate 2e-5 --num_train_epochs 3.0 --output_dir /tmp/$TASK_NAME/"""
    transformers = pytest.importorskip("transformers")
    vocab = write_vocab(tmp_path / "vocab")
    model_dir = pretrained_dir(tmp_path / "bert", run_glue.MODELS["bert"],
                               write_config(tmp_path / "c.json", max_position_embeddings=128),
                               vocab)  # fmt: skip
    glue = write_mrpc(tmp_path / "glue" / "MRPC")
    out = tmp_path / "MRPC_out"
    line = (f"--model_type bert --model_name_or_path {model_dir} --task_name MRPC --do_train "
            f"--do_eval --do_lower_case --data_dir {glue} --max_seq_length 128 "
            "--per_gpu_eval_batch_size=8 --per_gpu_train_batch_size=8 --learning_rate 2e-5 "
            f"--num_train_epochs 3.0 --output_dir {out}/").split()  # fmt: skip
    metrics = run_glue.main([*line, "--threads", "1", "--quiet"])
    saved = eval_results(out)
    assert set(saved) == {"acc", "f1", "acc_and_f1", "step"}
    assert float(saved["acc"]) == metrics["acc"]
    assert metrics["step"] == 6  # 16 examples / 8 per step x 3 epochs
    assert len(_loop.read_log(out)) == 6

    # The metrics of the saved model, computed with transformers 5 on the same inputs.
    args = run_glue.parse_args(line)
    tok = BertTokenizer.from_pretrained(out)
    dev = run_glue.featurize(args, tok, "dev")
    hf = transformers.BertForSequenceClassification.from_pretrained(out).eval()
    with torch.no_grad():
        logits = hf(dev.input_ids, attention_mask=dev.attention_mask,
                    token_type_ids=dev.token_type_ids).logits  # fmt: skip
    want = utils_glue.compute_metrics("mrpc", logits.argmax(-1).tolist(), dev.labels.tolist())
    for name in ("acc", "f1", "acc_and_f1"):
        assert metrics[name] == pytest.approx(want[name])

    # 1.0's evaluation-only run reads the model saved in --output_dir.
    again = run_glue.main([a for a in line if a != "--do_train"] + ["--quiet"])
    assert again["acc"] == metrics["acc"] and "step" not in again


def test_xlnet_readme_line_parses_as_1_0_meant():
    """README's XLNet STS-B line: ``--model_name=`` abbreviates --model_name_or_path."""
    line = ("--model_type xlnet --model_name_or_path xlnet-large-cased --do_train --do_eval "
            "--task_name=sts-b --data_dir=glue/STS-B --output_dir=./proc_data/sts-b-110 "
            "--max_seq_length=128 --per_gpu_eval_batch_size=8 --per_gpu_train_batch_size=8 "
            "--gradient_accumulation_steps=1 --max_steps=1200 --model_name=xlnet-large-cased "
            "--overwrite_output_dir --overwrite_cache --warmup_steps=120").split()  # fmt: skip
    args = run_glue.parse_args(line)
    assert args.model_type == "xlnet" and args.model_dir == "xlnet-large-cased"
    assert args.task == "sts-b" and args.max_steps == 1200 and args.warmup_steps == 120
    assert args.batch_size == args.eval_batch_size == 8
    assert args.gradient_accumulation_steps == 1 and args.overwrite_output_dir
    assert args.learning_rate == 5e-5 and args.warmup_proportion == 0.0  # 1.0's defaults


def test_run_squad_readme_line(tmp_path):
    """README: run_squad.py --model_type bert --model_name_or_path ... --do_train --do_eval
    --do_lower_case --train_file ... --predict_file ... --learning_rate 3e-5
    --num_train_epochs 2 --max_seq_length 384 --doc_stride 128 --output_dir ...
    --per_gpu_eval_batch_size=3 --per_gpu_train_batch_size=3"""
    env = write_squad_env(tmp_path, v2=False)
    model_dir = pretrained_dir(tmp_path / "bert", run_squad.MODELS["bert"], env["config"],
                               env["vocab"], num_labels=2)  # fmt: skip
    out = tmp_path / "squad_out"
    line = (f"--model_type bert --model_name_or_path {model_dir} --do_train --do_eval "
            f"--do_lower_case --train_file {env['data']} --predict_file {env['data']} "
            "--learning_rate 3e-5 --num_train_epochs 2 --max_seq_length 64 --doc_stride 16 "
            f"--output_dir {out}/ --per_gpu_eval_batch_size=3 --per_gpu_train_batch_size=3"
            ).split()  # fmt: skip
    metrics = run_squad.main([*line, "--threads", "1", "--quiet"])
    predictions = json.loads((out / "predictions.json").read_text())
    assert sorted(predictions) == ["q1", "q2", "q3", "q4", "q5"]
    saved = eval_results(out)
    assert float(saved["exact"]) == metrics["exact"] and float(saved["f1"]) == metrics["f1"]


def test_run_swag_examples_page_line(tmp_path):
    """1.0's examples page: run_swag.py --bert_model bert-base-uncased --do_train
    --do_lower_case --do_eval --data_dir $SWAG_DIR/data --train_batch_size 16
    --learning_rate 2e-5 --num_train_epochs 3.0 --max_seq_length 80 --output_dir ...
    --gradient_accumulation_steps 4"""
    env = write_swag_env(tmp_path, n=8)
    data = tmp_path / "data"
    data.mkdir()
    for name in ("train.csv", "val.csv"):
        (data / name).write_text(env["csv"].read_text())
    model_dir = pretrained_dir(tmp_path / "bert", run_swag.MODELS["bert"], env["config"],
                               env["vocab"])  # fmt: skip
    out = tmp_path / "swag_output"
    line = (f"--bert_model {model_dir} --do_train --do_lower_case --do_eval --data_dir {data} "
            "--train_batch_size 2 --learning_rate 2e-5 --num_train_epochs 3.0 "
            f"--max_seq_length 16 --output_dir {out}/ --gradient_accumulation_steps 2"
            ).split()  # fmt: skip
    metrics = run_swag.main([*line, "--threads", "1", "--quiet"])
    assert metrics["global_step"] == 6  # 8 rows / 2 per micro-batch / 2 per step x 3 epochs
    saved = eval_results(out)
    assert set(saved) == {"eval_accuracy", "eval_loss", "global_step", "loss", "step"}
    log = _loop.read_log(out)
    assert float(saved["loss"]) == pytest.approx(sum(r["loss"] for r in log) / len(log))


def test_run_lm_finetuning_readme_line(tmp_path):
    """lm_finetuning README: simple_lm_finetuning.py --train_corpus my_corpus.txt
    --bert_model bert-base-uncased --do_lower_case --output_dir finetuned_lm/ --do_train"""
    import test_examples_lm as lm_tests

    vocab = tmp_path / "vocab"
    vocab.mkdir()
    (vocab / "vocab.txt").write_text("\n".join(lm_tests.SPECIALS + lm_tests.WORDS) + "\n")
    config = tmp_path / "c.json"
    config.write_text(json.dumps(dict(
        vocab_size=len(lm_tests.SPECIALS) + len(lm_tests.WORDS), hidden_size=16,
        num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
        max_position_embeddings=32,
    )))  # fmt: skip
    model_dir = pretrained_dir(tmp_path / "bert", bert.BertForPreTraining, config, vocab)
    words = lm_tests.WORDS
    docs = ["\n".join(" ".join(words[(d * 7 + s * 3 + k) % 40] for k in range(5))
                      for s in range(3)) for d in range(4)]  # fmt: skip
    corpus = tmp_path / "my_corpus.txt"
    corpus.write_text("\n\n".join(docs) + "\n")
    out = tmp_path / "finetuned_lm"
    line = (f"--train_corpus {corpus} --bert_model {model_dir} --do_lower_case "
            f"--output_dir {out}/ --do_train").split()  # fmt: skip
    script = lm_tests.SCRIPT
    assert script.main([*line, "--max_seq_length", "24", "--max_steps", "2", "--quiet"]) == 0
    # 1.0 saves the fine-tuned model in --output_dir itself.
    model, params = ptfunc.io.from_pretrained(out, bert.BertForPreTraining)
    assert (out / "vocab.txt").is_file() and len(_loop.read_log(out)) == 2


def test_generation_readme_line(tmp_path):
    """README: run_generation.py --model_type=gpt2 --length=20 --model_name_or_path=gpt2"""
    from ptfunc.cli import DEFAULT_MODEL

    line = ["--model_type=gpt2", "--length=20", f"--model_name_or_path={DEFAULT_MODEL}"]
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / "run_generation.py"), *line, "--json"],
        input="Hello world\n", capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    record = json.loads(proc.stdout.splitlines()[0])
    assert record["prompt"] == "Hello world" and len(record["ids"]) == 20
    wrong = subprocess.run(
        [sys.executable, str(EXAMPLES / "run_generation.py"), "--model_type=xlnet",
         f"--model_name_or_path={DEFAULT_MODEL}", "--prompt", "Hi"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert wrong.returncode != 0 and "holds a gpt2 model" in wrong.stderr
