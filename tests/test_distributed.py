"""Multi-process training (ptfunc.distributed) under real 2-process gloo runs.

References:
* data parallel and sharded runs of ``examples/train_ddp.py`` (``torchrun``, 2 processes)
  against a one-process loop written here: the full global batch, the loss as a Python
  sum over examples, ``torch.func.grad``, ``clip_by_global_norm`` + ``adamw_torch``;
  params within 1e-6 (absolute) after 4 steps of lr 1e-2, clipping active;
* collectives (bucketed all-reduce of mixed dtypes and odd sizes, broadcast, gather,
  reduce-scatter, global norm) against sums computed locally from the same per-rank
  inputs: exact (``torch.equal``) for 2 ranks, where a sum has one rounding;
* resuming a sharded run: bit-exact against the uninterrupted run.

The data-parallel run goes through ``torchrun``; the others start the two workers
directly with torchrun's environment (RANK, WORLD_SIZE, MASTER_ADDR/PORT), which saves
the launcher's start-up. This file is also the worker of the collectives test
(``test_distributed.py --worker OUT`` writes each rank's results to ``OUT/rank<r>.pt``).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

REPO = Path(__file__).resolve().parents[1]
if __name__ == "__main__":  # the worker runs from a checkout, maybe uninstalled
    sys.path.insert(1, str(REPO))

from _ranks import rank_env, run_ranks  # noqa: E402

import ptfunc  # noqa: E402
from ptfunc import distributed as ptd  # noqa: E402
from ptfunc import optim, random, tree  # noqa: E402
from ptfunc.archs import bert  # noqa: E402
from ptfunc.distributed._buckets import plan_buckets  # noqa: E402

TOL = 1e-6
TINY = [
    "--hidden", "16", "--layers", "1", "--heads", "2", "--vocab", "24", "--seq-len", "8",
    "--train-size", "32", "--batch", "4", "--lr", "1e-2", "--warmup-steps", "1",
    "--max-steps", "4", "--clip", "0.05", "--quiet",
]  # fmt: skip

needs_gloo = pytest.mark.skipif(
    not (dist.is_available() and dist.is_gloo_available()),
    reason="torch.distributed with gloo is not available",
)


def _fail(what: str, outputs: list[tuple[str, str]]) -> None:
    text = "\n".join(f"{out[-3000:]}\n{err[-3000:]}" for out, err in outputs)
    pytest.fail(f"{what} failed:\n{text}")


def _torchrun(*args: str, timeout: float = 240) -> None:
    """``python -m torch.distributed.run --standalone --nproc_per_node=2 ARGS``."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    done = subprocess.run(
        cmd + list(args), cwd=REPO, env=rank_env(), capture_output=True, text=True, timeout=timeout
    )
    if done.returncode:
        _fail(f"torchrun {' '.join(args)}", [(done.stdout, done.stderr)])


def _launch2(*args: str, timeout: float = 240) -> None:
    """Two ``python ARGS`` processes with the environment torchrun gives its workers
    (``env://`` rendezvous on a free port); saves the launcher's start-up."""
    ranks = run_ranks(2, list(args), timeout=timeout)
    if any(rc for rc, _, _ in ranks):
        _fail(" ".join(args), [(out, err) for _, out, err in ranks])


def _script():
    spec = importlib.util.spec_from_file_location("train_ddp", REPO / "examples" / "train_ddp.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- the one-process reference -----------------------------------------------------------


def _reference(steps: int):
    """Params and AdamW state after ``steps`` one-process steps on the full global batch."""
    script = _script()
    args = script.parse_args(TINY)
    model = bert.BertForSequenceClassification(script.make_config(args))
    init_key, dropout_key = random.split(random.key(args.seed))
    params = model.init(init_key)
    (ids, mask, labels), _ = script.datasets(args)
    opt = optim.chain(
        optim.clip_by_global_norm(0.05),  # active: the grad norms here are 0.08-0.4
        optim.adamw_torch(
            1e-2,
            weight_decay=0.01,
            schedule=optim.schedules.warmup_linear(1, 4),
            mask=optim.no_decay_mask,
        ),
    )

    def loss_fn(p, ids, mask, labels, step_key):
        total = 0.0
        for j in range(ids.shape[0]):  # example j draws dropout from fold_in(step_key, j)
            out = model.apply(
                p, ids[j : j + 1], attention_mask=mask[j : j + 1], labels=labels[j : j + 1],
                train=True, key=random.fold_in(step_key, j),
            )  # fmt: skip
            total = total + out.loss
        return total / ids.shape[0]

    state = opt.init(params)
    initial = params
    for step in range(steps):
        idx = script.global_batch_indices(step, args)
        grads = torch.func.grad(loss_fn)(
            params, ids[idx], mask[idx], labels[idx], random.fold_in(dropout_key, step)
        )
        updates, state = opt.update(grads, state, params)
        params = optim.apply_updates(params, updates)
    return initial, params, state, opt


@pytest.fixture(scope="module")
def reference():
    return _reference(4)


def _max_diff(a, b) -> float:
    la, lb = tree.leaves(a), tree.leaves(b)
    assert tree.structure(a) == tree.structure(b) and len(la) == len(lb)
    return max((x.double() - y.double()).abs().max().item() for x, y in zip(la, lb))


# -- data parallel ------------------------------------------------------------------------


@needs_gloo
def test_data_parallel_equals_one_process_on_the_full_batch(tmp_path, reference):
    initial, expected, expected_state, opt = reference
    _torchrun("examples/train_ddp.py", *TINY, "--out", str(tmp_path), "--bucket-mb", "0.01")
    got = ptfunc.io.load(tmp_path / "model.safetensors")
    assert _max_diff(got, expected) <= TOL
    assert _max_diff(initial, expected) > 1e-3  # the params did move
    saved = ptfunc.train_state.load_train_state(
        tmp_path / "checkpoints" / "step-4.safetensors", initial, opt.init(initial)
    )
    assert saved.step == 4 and _max_diff(saved.params, expected) <= TOL
    assert _max_diff(saved.opt_state, expected_state) <= TOL


# -- sharded ------------------------------------------------------------------------------


@needs_gloo
def test_sharded_equals_one_process_consolidates_and_resumes(tmp_path, reference):
    initial, expected, expected_state, opt = reference
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    _launch2("examples/train_ddp.py", *TINY, "--sharded", "--save-steps", "2",
              "--out", str(straight))  # fmt: skip
    last = straight / "checkpoints" / "step-4"
    assert sorted(p.name for p in last.iterdir()) == [
        "index.json", "rank0-of-2.safetensors", "rank1-of-2.safetensors"
    ]  # fmt: skip

    # consolidated in this one process: the one-process params and optimizer state
    params = ptd.consolidate(last, initial)
    assert _max_diff(params, expected) <= TOL
    assert _max_diff(initial, expected) > 1e-3
    full = ptd.consolidate_train_state(last, initial, opt.init(initial))
    assert full.step == 4 and _max_diff(full.opt_state, expected_state) <= TOL
    gathered = ptfunc.io.load(straight / "model.safetensors")  # all-gathered by the run
    assert all(torch.equal(a, b) for a, b in zip(tree.leaves(params), tree.leaves(gathered)))

    # stop at step 2, resume to step 4: bit-exact with the uninterrupted run
    (resumed / "checkpoints").mkdir(parents=True)
    shutil.copytree(straight / "checkpoints" / "step-2", resumed / "checkpoints" / "step-2")
    _launch2("examples/train_ddp.py", *TINY, "--sharded", "--resume", "--out", str(resumed))
    for r in range(2):
        name = f"rank{r}-of-2.safetensors"
        a = ptfunc.io.load_flat(last / name)
        b = ptfunc.io.load_flat(resumed / "checkpoints" / "step-4" / name)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

    # a consolidated state re-cut for one process equals the one-process state's pieces
    layout = ptd.ShardLayout.of(initial, 1)
    recut = ptd.shard_like(full.opt_state, layout, 0)
    flat_state = ptfunc.tree.map(lambda x: x.reshape(-1) if x.dim() else x, full.opt_state)
    assert all(torch.equal(a, b) for a, b in zip(tree.leaves(recut), tree.leaves(flat_state)))

    # refusals: another world size; files of an interrupted save
    with pytest.raises(ValueError, match="saved by 2 processes"):
        ptd.load_sharded(last, params, full.opt_state)
    index = json.loads((last / "index.json").read_text())
    index["save_id"] = "0" * 32
    (last / "index.json").write_text(json.dumps(index))
    with pytest.raises(ValueError, match="another save"):
        ptd.consolidate(last)
    with pytest.raises(FileNotFoundError, match="index.json"):
        ptd.consolidate(tmp_path)


# -- collectives --------------------------------------------------------------------------


def _rank_tree(r: int) -> dict:
    """Rank ``r``'s inputs: mixed dtypes, odd sizes, a 0-d leaf, an empty leaf."""
    g = torch.Generator().manual_seed(100 + r)
    return {
        "a": torch.randn(7, 3, generator=g),
        "b": [torch.randn(5, generator=g).double(), torch.randn((), generator=g)],
        "c": {
            "half": torch.randn(11, generator=g).half(),
            "bf": torch.randn(3, 2, generator=g).bfloat16(),
        },
        "d": torch.randn(1031, generator=g),
        "e": torch.zeros(0),
    }  # fmt: skip


def _worker(out: Path) -> None:
    dist.init_process_group("gloo")
    r, world = ptd.rank(), ptd.world_size()
    mine = _rank_tree(r)
    results = {
        "sum_small_buckets": ptd.allreduce_grads(mine, bucket_bytes=64, average=False),
        "mean_default": ptd.allreduce_grads(mine),
        "int_sum": ptd.allreduce_grads({"n": torch.arange(5) * (r + 1)}, average=False),
        "broadcast": ptd.broadcast_params(mine, bucket_bytes=100),
    }
    floats = {k: v for k, v in mine.items() if k != "c"}
    same_everywhere = {k: v for k, v in _rank_tree(0).items() if k != "c"}
    layout = ptd.ShardLayout.of(floats, world)
    shards = ptd.shard_params(same_everywhere, layout, r)
    results["gathered"] = ptd.gather_params(shards, layout, bucket_bytes=48)
    results["scattered"] = ptd.reduce_scatter_grads(floats, layout, bucket_bytes=48)
    results["norm"] = ptd.global_norm(shards)
    # the fallbacks for backends without single-tensor all-gather / reduce-scatter
    from ptfunc.distributed import _comm

    def unsupported(*a, **k):
        raise RuntimeError("ProcessGroupGloo does not support this collective")

    _comm._ALL_GATHER = _comm._REDUCE_SCATTER = unsupported
    results["gathered_fallback"] = ptd.gather_params(shards, layout)
    results["scattered_fallback"] = ptd.reduce_scatter_grads(floats, layout)
    torch.save(results, out / f"rank{r}.pt")
    dist.barrier()  # no rank tears gloo down while a peer still talks to it
    dist.destroy_process_group()


@needs_gloo
def test_collectives_equal_local_sums(tmp_path):
    _launch2(str(Path(__file__).relative_to(REPO)), "--worker", str(tmp_path))
    trees = [_rank_tree(0), _rank_tree(1)]
    total = tree.map(lambda a, b: a + b, *trees)
    floats = {k: v for k, v in trees[0].items() if k != "c"}
    layout = ptd.ShardLayout.of(floats, 2)
    float_sum = {k: v for k, v in total.items() if k != "c"}

    def same(a, b):
        assert tree.structure(a) == tree.structure(b)
        for x, y in zip(tree.leaves(a), tree.leaves(b)):
            assert x.dtype == y.dtype and torch.equal(x, y)

    for r in range(2):
        got = torch.load(tmp_path / f"rank{r}.pt", weights_only=True)
        same(got["sum_small_buckets"], total)
        same(got["mean_default"], tree.map(lambda x: x / 2, total))
        same(got["int_sum"], {"n": torch.arange(5) * 3})
        same(got["broadcast"], trees[0])
        same(got["gathered"], floats)
        same(got["gathered_fallback"], got["gathered"])
        want = ptd.shard_params(tree.map(lambda x: x / 2, float_sum), layout, r)
        same(got["scattered"], want)
        same(got["scattered_fallback"], want)
        norm = torch.sqrt(sum(x.double().square().sum() for x in tree.leaves(floats)))
        assert abs(got["norm"].item() - norm.item()) <= 1e-12 * norm.item()


# -- one process: helpers without a process group -----------------------------------------


def test_buckets_group_by_dtype_and_respect_the_size():
    leaves = [torch.zeros(4), torch.zeros(4, dtype=torch.float64), torch.zeros(4), torch.zeros(100)]
    buckets = plan_buckets(leaves, bucket_bytes=32)
    assert [(b.indices, b.dtype) for b in buckets] == [
        ((0, 2), torch.float32), ((3,), torch.float32), ((1,), torch.float64)
    ]  # fmt: skip
    with pytest.raises(ValueError, match="bucket_bytes"):
        plan_buckets(leaves, 0)


def test_without_a_process_group_everything_is_one_process():
    grads = {"w": torch.ones(3)}
    assert ptd.world_size() == 1 and ptd.rank() == 0
    assert ptd.allreduce_grads(grads) is grads and ptd.broadcast_params(grads) is grads
    with pytest.raises(TypeError, match="average=False"):
        ptd.allreduce_grads({"n": torch.arange(3)})
    layout = ptd.ShardLayout.of({"w": torch.arange(6.0).view(2, 3)}, 1)
    shards = ptd.shard_params({"w": torch.arange(6.0).view(2, 3)}, layout, 0)
    assert torch.equal(ptd.gather_params(shards, layout)["w"], torch.arange(6.0).view(2, 3))
    with pytest.raises(ValueError, match="2 pieces but the group has 1"):
        ptd.gather_params(shards, ptd.ShardLayout.of({"w": torch.zeros(2, 3)}, 2))


def test_shard_batch_and_indices():
    batch = {"x": torch.arange(12).view(6, 2), "y": torch.arange(6)}
    parts = [ptd.shard_batch(batch, r, 3) for r in range(3)]
    assert torch.equal(torch.cat([p["y"] for p in parts]), batch["y"])
    with pytest.raises(ValueError, match="multiple of 4"):
        ptd.shard_batch(batch, 0, 4)
    with pytest.raises(ValueError, match="different leading sizes"):
        ptd.shard_batch({"x": torch.zeros(4), "y": torch.zeros(2)}, 0, 2)
    shares = [ptd.shard_indices(10, r, 3, seed=1, epoch=2) for r in range(3)]
    assert {len(s) for s in shares} == {4}
    assert set(torch.cat(shares).tolist()) == set(range(10))  # all covered (2 repeated)
    again = [ptd.shard_indices(10, r, 3, seed=1, epoch=2) for r in range(3)]
    assert all(torch.equal(a, b) for a, b in zip(shares, again))  # deterministic
    dropped = torch.cat([ptd.shard_indices(10, r, 3, drop_last=True) for r in range(3)])
    assert len(dropped) == 9 and len(set(dropped.tolist())) == 9


def test_shard_layout_round_trips_and_pads_with_zeros():
    params = {"w": torch.arange(7.0), "s": torch.tensor(3.0)}
    layout = ptd.ShardLayout.of(params, 3)
    assert ptd.ShardLayout.from_dict(json.loads(json.dumps(layout.to_dict()))) == layout
    pieces = [ptd.shard_params(params, layout, r) for r in range(3)]
    assert torch.equal(torch.cat([p["w"] for p in pieces]), torch.tensor([*range(7), 0, 0.0]))
    assert torch.equal(torch.cat([p["s"] for p in pieces]), torch.tensor([3.0, 0, 0]))
    with pytest.raises(ValueError, match="expected shape"):
        ptd.shard_params({"w": torch.zeros(8), "s": torch.tensor(0.0)}, layout, 0)


def test_sharded_optimizer_step_equals_the_full_step():
    """Elementwise AdamW on the pieces (clipping by the all-ranks norm, here one process
    holding every piece in turn) equals the full-tree step, within float rounding."""
    model = bert.BertForSequenceClassification(
        bert.BertConfig(vocab_size=20, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=16, num_labels=2)
    )  # fmt: skip
    params = model.init(random.key(0))
    grads = tree.map(lambda p: torch.randn_like(p) * 3, params)
    opt = optim.adamw_torch(1e-2, weight_decay=0.1, mask=optim.no_decay_mask)
    full, _ = optim.step(opt, grads, opt.init(params), params)
    layout = ptd.ShardLayout.of(params, 3)
    pieces = []
    for r in range(3):
        p, g = ptd.shard_params(params, layout, r), ptd.shard_params(grads, layout, r)
        pieces.append(optim.step(opt, g, opt.init(p), p)[0])
    joined = tree.map(lambda ref, *ps: torch.cat(ps)[: ref.numel()].view(ref.shape), full, *pieces)
    assert _max_diff(joined, full) <= TOL


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--worker", type=Path, required=True)
    _worker(parser.parse_args().worker)
