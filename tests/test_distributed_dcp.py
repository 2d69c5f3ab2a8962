"""DCP checkpoints (ptfunc.distributed.dcp): one process and real gloo runs of 1, 2 and 4 ranks.

References and tolerances (all exact, ``torch.equal`` with equal dtypes):
* one process: the train state saved (tiny BERT params, ``adamw`` state after a step,
  step, key, extra) is what comes back; :func:`consolidate` gives the params that
  ``ptfunc.io.from_torch_state_dict`` maps back to the same tree;
* a sharded 2-rank run (``ptfunc.distributed.sharded``) saves the same state in DCP and in
  the old per-rank format: the DCP checkpoint loaded in one process equals
  ``consolidate_train_state`` of the old one; loaded by 4 ranks, each rank's pieces are
  ``shard_params`` / ``shard_like`` of that full state; 4 ranks save it again and 2 ranks
  load that (4 -> 2) with the same result;
* a train state of DTensors (every leaf sharded on its last dim over 2 ranks, as
  ``ptfunc.distributed.shard`` gives) loads on 4 ranks into DTensors sharded on dim 0, into
  flat pieces, and in one process into full trees; flat pieces load into DTensors: each
  equal to the full state;
* ``save_async``: params changed in place after it returns do not reach the checkpoint,
  whose directory appears only in ``wait()`` (one process and 2 ranks);
* the old per-rank checkpoint converted by ``ptfunc convert-sharded`` loads in one process
  and on 4 ranks as the DCP checkpoint does;
* a save whose rank 0 is killed (``os._exit``) after writing its data leaves no
  checkpoint at the target and the previous checkpoint loadable; the next save there
  cleans the leftovers.

The workers are this file run as ``python tests/test_distributed_dcp.py MODE OUT`` with
torchrun's environment (RANK, WORLD_SIZE, MASTER_ADDR/PORT) on a free port, gloo, and a
60 s collective timeout (room for slow starts on a loaded machine), so a dead peer ends a
run instead of hanging it.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import shutil
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

REPO = Path(__file__).resolve().parents[1]
if __name__ == "__main__":  # the worker runs from a checkout, maybe uninstalled
    sys.path.insert(1, str(REPO))

from _ranks import run_ranks  # noqa: E402

import ptfunc  # noqa: E402
import ptfunc.cli  # noqa: E402
from ptfunc import distributed as ptd  # noqa: E402
from ptfunc import optim, random, tree  # noqa: E402
from ptfunc.archs import bert  # noqa: E402
from ptfunc.errors import CheckpointError  # noqa: E402
from ptfunc.train_state import TrainState  # noqa: E402

pytestmark = pytest.mark.skipif(
    not dist.is_available(),
    reason="torch.distributed (and its checkpoint package) is not available",
)
needs_gloo = pytest.mark.skipif(
    not (dist.is_available() and dist.is_gloo_available()),
    reason="torch.distributed with gloo is not available",
)

# hidden 18 and 3 labels: leaves whose length 2 and 4 ranks do not divide (padding, and
# ranks with an empty piece: the classifier bias over 4 ranks is 1, 1, 1, 0 elements)
CONFIG = bert.BertConfig(
    vocab_size=23, hidden_size=18, num_hidden_layers=1, num_attention_heads=2,
    intermediate_size=30, max_position_embeddings=16, num_labels=3,
)  # fmt: skip
MODEL = bert.BertForSequenceClassification(CONFIG)
OPT = optim.adamw(1e-2, weight_decay=0.01)
STEP, EXTRA = 3, {"data_position": 17, "epoch": 1}


def _grads(params):
    g = torch.Generator().manual_seed(7)
    return tree.map(lambda x: torch.randn(x.shape, generator=g, dtype=x.dtype), params)


def _initial():
    return MODEL.init(random.key(0))


def _full_state() -> TrainState:
    """One process: params and adamw state after one step on fixed gradients."""
    params = _initial()
    updates, opt_state = OPT.update(_grads(params), OPT.init(params), params)
    return TrainState(optim.apply_updates(params, updates), opt_state, STEP, random.key(5), EXTRA)


def _sharded_state(world: int, r: int) -> tuple[TrainState, ptd.ShardLayout]:
    """Rank ``r``'s pieces of the same step taken on shards (elementwise: the same numbers)."""
    params = _initial()
    layout = ptd.ShardLayout.of(params, world)
    shards = ptd.shard_params(params, layout, r)
    grads = ptd.shard_params(_grads(params), layout, r)
    updates, opt_state = OPT.update(grads, OPT.init(shards), shards)
    shards = optim.apply_updates(shards, updates)
    return TrainState(shards, opt_state, STEP, random.key(5), EXTRA), layout


def _like(world: int | None, r: int = 0) -> tuple[TrainState, ptd.ShardLayout | None]:
    """Fresh trees to load into: full (``world`` None) or rank ``r``'s pieces."""
    params = _initial()
    if world is None:
        return TrainState(params, OPT.init(params), 0, None, {}), None
    layout = ptd.ShardLayout.of(params, world)
    shards = ptd.shard_params(params, layout, r)
    return TrainState(shards, OPT.init(shards), 0, None, {}), layout


def _as_dtensors(state: TrainState, dim: int) -> TrainState:
    """``state`` with every leaf of rank >= 1 a DTensor sharded on ``dim`` (-1: the last) over
    the world (a DTensor train state, as ``ptfunc.distributed.shard`` gives)."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import Shard, distribute_tensor

    mesh = init_device_mesh("cpu", (ptd.world_size(),))

    def cut(x):
        return x if x.dim() == 0 else distribute_tensor(x, mesh, [Shard(dim % x.dim())])

    return state._replace(
        params=tree.map(cut, state.params), opt_state=tree.map(cut, state.opt_state)
    )


def _whole(state: TrainState) -> TrainState:
    """The full tensors of a DTensor train state (a collective: every rank calls it)."""
    from torch.distributed.tensor import DTensor

    def full(x):
        return x.full_tensor() if isinstance(x, DTensor) else x

    return state._replace(
        params=tree.map(full, state.params), opt_state=tree.map(full, state.opt_state)
    )


def _same(a, b) -> None:
    assert tree.structure(a) == tree.structure(b)
    for x, y in zip(tree.leaves(a), tree.leaves(b)):
        assert x.dtype == y.dtype and torch.equal(x, y)


def _same_state(a: TrainState, b: TrainState) -> None:
    _same(a.params, b.params)
    _same(a.opt_state, b.opt_state)
    assert a.step == b.step and a.extra == b.extra and torch.equal(a.key, b.key)


# -- the workers ------------------------------------------------------------------------


def _worker(mode: str, out: Path) -> None:
    dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=60))
    r, world = ptd.rank(), ptd.world_size()
    results: dict = {}
    if mode == "save2":  # a sharded run saves in both formats
        state, layout = _sharded_state(world, r)
        ptd.save_sharded(
            out / "old", state.params, state.opt_state, layout,
            step=state.step, key=state.key, extra=state.extra,
        )  # fmt: skip
        ptd.dcp.save(out / "dcp2", state, layout=layout)
        ptd.dcp.save(out / "dtensor2", _as_dtensors(_full_state(), dim=-1))  # last-dim pieces
        pending = ptd.dcp.save_async(out / "async2", state, layout=layout)
        for x in tree.leaves(state.params):  # training goes on: the save keeps its copy
            x.add_(1.0)
        assert not (out / "async2").exists()
        assert pending.wait() == out / "async2" and (out / "async2").is_dir()
    elif mode == "load4":  # 2 -> 4 (pieces and full trees), then save from 4
        like, layout = _like(world, r)
        got = ptd.dcp.load(out / "dcp2", like, layout=layout)
        results["pieces"] = got
        results["gathered"] = ptd.gather_params(got.params, layout)
        results["full"] = ptd.dcp.load(out / "dcp2", _like(None)[0])
        ptd.dcp.save(out / "dcp4", got, layout=layout)
        ptd.dcp.save(out / "dcp4-full", results["full"])  # replicated: written once
        # DTensors: resharded DTensor -> DTensor (last dim on 2 -> dim 0 on 4), and across
        # the forms (flat pieces -> DTensors, DTensors -> flat pieces)
        dt_like = _as_dtensors(_like(None)[0], dim=0)
        results["dt_from_dt"] = _whole(ptd.dcp.load(out / "dtensor2", dt_like))
        results["dt_from_flat"] = _whole(ptd.dcp.load(out / "dcp2", dt_like))
        results["flat_from_dt"] = ptd.dcp.load(out / "dtensor2", like, layout=layout)
        results["converted"] = ptd.dcp.load(out / "converted", like, layout=layout)
    elif mode == "load2kill":  # 4 -> 2, a good save, then a save whose rank 0 dies
        like, layout = _like(world, r)
        got = ptd.dcp.load(out / "dcp4", like, layout=layout)
        results["pieces"] = got
        ptd.dcp.save(out / "first", got, layout=layout)
        torch.save(results, out / f"{mode}-rank{r}.pt")
        if r == 0:
            from torch.distributed.checkpoint import FileSystemWriter

            write = FileSystemWriter.write_data

            def write_then_die(self, plan, planner):
                fut = write(self, plan, planner)
                fut.wait()
                os._exit(3)

            FileSystemWriter.write_data = write_then_die
        ptd.dcp.save(out / "second", got, layout=layout)
        raise SystemExit("the second save should not have finished")
    torch.save(results, out / f"{mode}-rank{r}.pt")
    dist.barrier()  # no rank tears gloo down while a peer still talks to it (SIGABRT)
    dist.destroy_process_group()


def _launch(n: int, mode: str, out: Path, *, ok: bool = True, timeout: float = 120) -> None:
    """``n`` worker processes of ``mode`` with torchrun's environment; fail unless they all
    succeed (``ok``) or at least one fails (``not ok``)."""
    script = str(Path(__file__).relative_to(REPO))
    ranks = run_ranks(n, [script, mode, str(out)], timeout=timeout)
    failed = any(rc for rc, _, _ in ranks)
    if failed == ok:
        text = "\n".join(f"rank {r} rc {rc}:\n{o[-2000:]}\n{e[-3000:]}"
                         for r, (rc, o, e) in enumerate(ranks))  # fmt: skip
        pytest.fail(f"{n} x {mode} {'failed' if ok else 'did not fail'}:\n{text}")


def _results(out: Path, mode: str, n: int) -> list[dict]:
    return [torch.load(out / f"{mode}-rank{r}.pt", weights_only=False) for r in range(n)]


# -- one process ----------------------------------------------------------------------------


def test_one_process_round_trip_is_bit_exact(tmp_path):
    state = _full_state()
    assert ptd.world_size() == 1
    ptd.dcp.save(tmp_path / "ckpt", state)
    back = ptd.dcp.load(tmp_path / "ckpt", _like(None)[0])
    _same_state(back, state)
    assert type(back.opt_state) is type(state.opt_state)

    # consolidated: a plain state dict that the BERT name map reads back
    flat = ptd.dcp.consolidate(tmp_path / "ckpt")
    assert flat["step"].item() == STEP and torch.equal(flat["key"], state.key)
    weights = {k.removeprefix("params."): v for k, v in flat.items() if k.startswith("params.")}
    _same(ptfunc.io.from_torch_state_dict(MODEL, weights, strict=True), state.params)
    torch_names = ptfunc.io.to_torch_state_dict(MODEL, state.params)
    assert set(torch_names) == set(weights) and all(
        torch.equal(torch_names[k], weights[k]) for k in weights
    )

    # in the background: the state is copied when save_async returns, the path appears in wait
    params = tree.map(torch.clone, state.params)
    pending = ptd.dcp.save_async(tmp_path / "async", state._replace(params=params))
    for x in tree.leaves(params):
        x.mul_(-1.0)
    assert not (tmp_path / "async").exists()
    assert pending.wait() == tmp_path / "async" and pending.done()
    _same_state(ptd.dcp.load(tmp_path / "async", _like(None)[0]), state)

    # a plain tree (no TrainState)
    ptd.dcp.save(tmp_path / "tree", state.params)
    _same(ptd.dcp.load(tmp_path / "tree", _initial()), state.params)
    assert ptd.dcp.consolidate(tmp_path / "tree").keys() == tree.to_flat_dict(state.params).keys()


def test_errors_name_the_path(tmp_path):
    state = _full_state()
    good = ptd.dcp.save(tmp_path / "good", state)
    like = _like(None)[0]
    with pytest.raises(FileNotFoundError, match="nowhere"):
        ptd.dcp.load(tmp_path / "nowhere", like)
    with pytest.raises(FileExistsError, match="good exists"):
        ptd.dcp.save(good, state)
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="empty is not a complete DCP checkpoint"):
        ptd.dcp.load(tmp_path / "empty", like)

    # another model, another optimizer, a tree for a train state, a layout of 2 in 1 process
    other = bert.BertForSequenceClassification(dataclasses.replace(CONFIG, hidden_size=20))
    params = other.init(random.key(0))
    with pytest.raises(CheckpointError, match=r"(?s)good does not fit.*word_embeddings.weight"):
        ptd.dcp.load(good, TrainState(params, OPT.init(params), 0, None, {}))
    sgd = optim.sgd(0.1)
    with pytest.raises(CheckpointError, match="kinds differ"):
        ptd.dcp.load(good, TrainState(like.params, sgd.init(like.params), 0, None, {}))
    with pytest.raises(CheckpointError, match="holds a train state"):
        ptd.dcp.load(good, like.params)
    pieces, layout2 = _like(2, 0)
    with pytest.raises(ValueError, match="2 pieces but the group has 1"):
        ptd.dcp.load(good, pieces, layout=layout2)

    # damaged copies: a data file gone, a truncated data file, a garbled .metadata
    for damage in ("remove", "truncate", "metadata"):
        bad = tmp_path / f"bad-{damage}"
        shutil.copytree(good, bad)
        data = sorted(bad.glob("*.distcp"))[0]
        if damage == "remove":
            data.unlink()
        elif damage == "truncate":
            data.write_bytes(data.read_bytes()[:100])
        else:
            (bad / ".metadata").write_bytes(b"not a pickle")
        with pytest.raises(CheckpointError, match=f"bad-{damage}"):
            ptd.dcp.load(bad, like)
        with pytest.raises(CheckpointError, match=f"bad-{damage}"):
            ptd.dcp.consolidate(bad)


# -- several processes ----------------------------------------------------------------------


@needs_gloo
def test_reshards_2_to_1_to_4_and_4_to_2_and_survives_a_killed_save(tmp_path):
    _launch(2, "save2", tmp_path)
    full = ptd.consolidate_train_state(tmp_path / "old", _initial(), OPT.init(_initial()))
    expected = TrainState(full.params, full.opt_state, full.step, full.key, full.extra)
    assert full.step == STEP and full.extra == EXTRA
    _same(expected.params, _full_state().params)  # the shard-wise step is the full step

    # 2 -> 1: the DCP checkpoint equals the old format's consolidation
    _same_state(ptd.dcp.load(tmp_path / "dcp2", _like(None)[0]), expected)
    flat = ptd.dcp.consolidate(tmp_path / "dcp2")
    _same(tree.from_flat_dict({k[7:]: v for k, v in flat.items() if k.startswith("params.")},
                              like=_initial()), expected.params)  # fmt: skip

    _same_state(ptd.dcp.load(tmp_path / "async2", _like(None)[0]), expected)  # background save

    # the old per-rank format converted (the command line) loads anywhere, here in 1 and on 4
    assert (
        ptfunc.cli.main(
            ["convert-sharded", str(tmp_path / "old"), str(tmp_path / "converted"), "-q"]
        )
        == 0
    )
    _same_state(ptd.dcp.load(tmp_path / "converted", _like(None)[0]), expected)
    assert (
        ptfunc.cli.main(["convert-sharded", str(tmp_path / "dcp2"), str(tmp_path / "x"), "-q"]) == 1
    )

    # 2 -> 4: each rank's pieces are the full state's, cut for 4; full trees on every rank
    _launch(4, "load4", tmp_path)
    layout4 = ptd.ShardLayout.of(_initial(), 4)
    for r, got in enumerate(_results(tmp_path, "load4", 4)):
        pieces = got["pieces"]
        _same(pieces.params, ptd.shard_params(expected.params, layout4, r))
        _same(pieces.opt_state, ptd.shard_like(expected.opt_state, layout4, r))
        assert pieces.step == STEP and pieces.extra == EXTRA
        _same(got["gathered"], expected.params)
        _same_state(got["full"], expected)
        _same_state(got["dt_from_dt"], expected)
        _same_state(got["dt_from_flat"], expected)
        _same_state(got["flat_from_dt"], pieces)
        _same_state(got["converted"], pieces)
    _same_state(ptd.dcp.load(tmp_path / "dcp4", _like(None)[0]), expected)
    _same_state(ptd.dcp.load(tmp_path / "dcp4-full", _like(None)[0]), expected)
    _same_state(ptd.dcp.load(tmp_path / "dtensor2", _like(None)[0]), expected)  # DTensors -> 1
    flat = ptd.dcp.consolidate(tmp_path / "dtensor2")
    assert flat["params.classifier.weight"].shape == (3, 18)
    assert len(list((tmp_path / "dcp4").glob("*.distcp"))) == 4

    # 4 -> 2, then a save killed part-way: no "second", "first" intact
    _launch(2, "load2kill", tmp_path, ok=False)
    layout2 = ptd.ShardLayout.of(_initial(), 2)
    for r, got in enumerate(_results(tmp_path, "load2kill", 2)):
        _same(got["pieces"].params, ptd.shard_params(expected.params, layout2, r))
        _same(got["pieces"].opt_state, ptd.shard_like(expected.opt_state, layout2, r))
    assert not (tmp_path / "second").exists()
    leftovers = [p for p in tmp_path.iterdir() if p.name.startswith(".second")]
    assert leftovers and any(leftovers[0].glob("*.distcp"))  # rank 0 died after writing
    _same_state(ptd.dcp.load(tmp_path / "first", _like(None)[0]), expected)
    ptd.dcp.save(tmp_path / "second", expected)  # the next save cleans the leftovers
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".second")]
    _same_state(ptd.dcp.load(tmp_path / "second", _like(None)[0]), expected)


if __name__ == "__main__":
    _worker(sys.argv[1], Path(sys.argv[2]))
