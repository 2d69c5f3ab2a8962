"""The 1.0 run options of the examples' shared loop (examples/_loop.py), through run_glue on
tiny data: gradient accumulation equals the larger batch, ``--fp16`` trains under autocast
with a loss scale that skips non-finite steps, the output-directory rule and the
nothing-to-do error are 1.0's, and ``python -m torch.distributed.launch`` with two
processes equals one process on the same global batch."""

from __future__ import annotations

import os
import socket
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
from test_examples_glue import write_config, write_mrpc, write_vocab  # noqa: E402

NO_DROPOUT = dict(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)


@pytest.fixture
def env(tmp_path):
    return {
        "vocab": write_vocab(tmp_path / "vocab"),
        "mrpc": write_mrpc(tmp_path / "MRPC"),
        "config": write_config(tmp_path / "config.json", **NO_DROPOUT),
    }


def _argv(env, out: Path, *extra: str) -> list[str]:
    return [
        "--task_name", "mrpc", "--data_dir", str(env["mrpc"]), "--config_json",
        str(env["config"]), "--tokenizer_name", str(env["vocab"]), "--output_dir", str(out),
        "--max_seq_length", "24", "--learning_rate", "1e-2", "--threads", "1", "--quiet",
        *extra,
    ]  # fmt: skip


def _params(out: Path):
    return ptfunc.io.from_pretrained(out, run_glue.MODELS["bert"])[1]


def _max_diff(a, b) -> float:
    return max((x - y).abs().max().item() for x, y in zip(ptfunc.tree.leaves(a),
                                                          ptfunc.tree.leaves(b)))  # fmt: skip


def test_gradient_accumulation_equals_the_larger_batch(env, tmp_path):
    run_glue.main(_argv(env, tmp_path / "big", "--do_train", "--per_gpu_train_batch_size", "4",
                        "--max_steps", "3"))  # fmt: skip
    run_glue.main(_argv(env, tmp_path / "acc", "--do_train", "--per_gpu_train_batch_size", "2",
                        "--gradient_accumulation_steps", "2", "--max_steps", "3"))  # fmt: skip
    assert _max_diff(_params(tmp_path / "big"), _params(tmp_path / "acc")) < 1e-6
    big, acc = _loop.read_log(tmp_path / "big"), _loop.read_log(tmp_path / "acc")
    assert [r["loss"] for r in big] == pytest.approx([r["loss"] for r in acc], abs=1e-6)


def test_epochs_count_optimizer_steps_after_accumulation(env, tmp_path):
    # 16 examples, 2 per micro-batch, 4 micro-batches per step: 2 steps per epoch.
    metrics = run_glue.main(_argv(env, tmp_path / "o", "--do_train", "--do_eval",
                                  "--per_gpu_train_batch_size", "2",
                                  "--gradient_accumulation_steps", "4",
                                  "--num_train_epochs", "2"))  # fmt: skip
    assert metrics["step"] == 4


def test_fp16_trains_under_autocast_close_to_float32(env, tmp_path):
    run_glue.main(_argv(env, tmp_path / "f32", "--do_train", "--max_steps", "2"))
    run_glue.main(_argv(env, tmp_path / "f16", "--do_train", "--max_steps", "2", "--fp16"))
    l32, l16 = _loop.read_log(tmp_path / "f32"), _loop.read_log(tmp_path / "f16")
    # The first step's loss is the same model on the same batch; float16 matmuls differ
    # from float32 by about their precision (2**-11 relative).
    assert l16[0]["loss"] == pytest.approx(l32[0]["loss"], rel=5e-3)
    assert l16[0]["loss"] != l32[0]["loss"]  # autocast did run in float16
    p16 = _params(tmp_path / "f16")
    assert all(x.dtype == torch.float32 for x in ptfunc.tree.leaves(p16))  # float32 weights
    assert _max_diff(p16, _params(tmp_path / "f32")) < 5e-2


def test_loss_scale_skips_non_finite_steps_and_adapts():
    s = _loop.LossScale()
    assert s.update(False) == _loop.LossScale(2.0**15, 0)
    grown = _loop.LossScale(8.0, 1999).update(True)
    assert grown.scale == 16.0 and grown.good_steps == 0
    static = _loop.LossScale(128.0, dynamic=False)
    assert static.update(False) == static

    # A loss that overflows float16 on the first step: the step is skipped (params kept),
    # the scale halves, and the next (finite) step updates.
    params = {"w": torch.ones(3)}
    calls = []

    def loss_fn(p, batch, key):
        calls.append(1)
        big = 1e6 if len(calls) == 1 else 1.0  # 1e6 * 2**16 overflows float16's 65504
        return (p["w"] * big).sum().to(torch.float16).float()

    result = _loop.train(loss_fn, params, ptfunc.optim.sgd(0.1), lambda i: torch.zeros(1),
                         total_steps=2, key=ptfunc.random.key(0), progress=False,
                         fp16=True)  # fmt: skip
    # Step 1 skipped: only step 2's gradient (ones, lr 0.1) moved the weights.
    assert torch.allclose(result.params["w"], torch.full((3,), 0.9))


def test_nothing_to_do_and_busy_output_dir_fail_loudly(env, tmp_path):
    with pytest.raises(SystemExit, match="nothing to do"):
        run_glue.main(_argv(env, tmp_path / "x"))
    out = tmp_path / "busy"
    run_glue.main(_argv(env, out, "--do_train", "--max_steps", "2", "--save_steps", "1"))
    assert len(list((out / "checkpoints").iterdir())) == 2
    with pytest.raises(SystemExit, match="--overwrite_output_dir"):
        run_glue.main(_argv(env, out, "--do_train", "--max_steps", "1"))
    run_glue.main(_argv(env, out, "--do_train", "--max_steps", "1", "--overwrite_output_dir"))
    # The old run's checkpoints are gone (a later --resume must not pick up step 2).
    assert [p.name for p in (out / "checkpoints").iterdir()] == ["step-00000001.safetensors"]
    assert len(_loop.read_log(out)) == 1
    with pytest.raises(SystemExit, match="O1"):
        run_glue.main(_argv(env, tmp_path / "y", "--do_train", "--fp16", "--fp16_opt_level",
                            "O2"))  # fmt: skip


def test_distributed_launch_equals_one_process(env, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    run_glue.main(_argv(env, one, "--do_train", "--do_eval", "--per_gpu_train_batch_size", "4",
                        "--max_steps", "3"))  # fmt: skip
    # The README's multi-process line: python -m torch.distributed.launch --nproc_per_node N
    # run_glue.py ... (launch passes --local-rank=<r> to each process).
    with socket.socket() as free:  # a port nobody else holds
        free.bind(("127.0.0.1", 0))
        port = str(free.getsockname()[1])
    cmd = [sys.executable, "-m", "torch.distributed.launch", "--nproc_per_node", "2",
           "--master_addr", "127.0.0.1", "--master_port", port, str(EXAMPLES / "run_glue.py"),
           *_argv(env, two, "--do_train", "--do_eval", "--per_gpu_train_batch_size", "2",
                  "--max_steps", "3")]  # fmt: skip
    environ = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=environ)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # 2 processes x 2 examples = the one process's batch of 4: the same steps.
    assert _max_diff(_params(one), _params(two)) < 1e-5
    l1, l2 = _loop.read_log(one), _loop.read_log(two)
    assert [r["loss"] for r in l1] == pytest.approx([r["loss"] for r in l2], abs=1e-5)
    assert (two / "eval_results.txt").read_text().split("\n")[0].startswith("acc = ")
