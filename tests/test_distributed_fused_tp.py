"""Fused tensor-parallel leaves (GPT-2's ``c_attn``, ``[q | k | v]``) as DTensors and in DCP
checkpoints, on gloo runs of 2 and 4 ranks.

Each tp rank holds ``[q_r | k_r | v_r]`` of such a leaf, which is not one box of the full
tensor. References and tolerances:
* 2 ranks, a (dp 1 x tp 2) mesh: ``shard(params, mesh, plan)`` has global values equal to
  the params (``full_params`` without the plan, exact); ``fsdp.value_and_grad(..., plan=)``
  of GPT-2's LM loss and one ``clip_by_global_norm`` + ``adamw_torch`` step equal one
  process's ``torch.autograd.grad`` and step to 1e-5 (the clipping needs the global norm of
  the fused leaves); the train state saved by ``dcp.save``;
* that checkpoint loaded in one process (``dcp.load`` into full trees and ``consolidate``),
  and on 4 ranks into a (2 x 2) mesh, a tp=4 mesh and an FSDP-only 1-D mesh: every leaf
  equals the saved train state exactly (a fused leaf read in another layout would mix
  q, k and v);
* the 4-rank (2 x 2) state saved again and loaded in one process: exact.

The workers are this file run as ``python tests/test_distributed_fused_tp.py MODE OUT``
with torchrun's environment (tests/_ranks.py), gloo and a 60 s collective timeout.
"""

from __future__ import annotations

import datetime
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

REPO = Path(__file__).resolve().parents[1]
if __name__ == "__main__":  # the worker runs from a checkout, maybe uninstalled
    sys.path.insert(1, str(REPO))

from _ranks import run_ranks  # noqa: E402

from ptfunc import distributed as ptd  # noqa: E402
from ptfunc import optim, random, tree  # noqa: E402
from ptfunc.archs import gpt2  # noqa: E402
from ptfunc.distributed import fsdp  # noqa: E402
from ptfunc.distributed import tensor_parallel as tp  # noqa: E402
from ptfunc.train_state import TrainState  # noqa: E402

pytestmark = pytest.mark.skipif(
    not (dist.is_available() and dist.is_gloo_available()),
    reason="torch.distributed with gloo is not available",
)

MODEL = gpt2.GPT2LMHeadModel(
    gpt2.GPT2Config(vocab_size=32, n_embd=16, n_layer=2, n_head=4, n_positions=16)
)
PLAN = tp.plan_for(MODEL)
FUSED = "transformer.h.0.attn.c_attn.weight"


def _params():
    """Init params with random (not zero) biases and norms, so every leaf matters."""
    params = MODEL.init(random.key(0))
    g = torch.Generator().manual_seed(1)
    return tree.map(
        lambda x: x + 0.1 * torch.randn(x.shape, generator=g) if x.dim() == 1 else x, params
    )


def _ids():
    return torch.randint(1, 32, (2, 6), generator=torch.Generator().manual_seed(2))


def _loss(params, ids):
    return MODEL.apply(params, ids, labels=ids).loss


def _optimizer():
    # a clip that binds: the global norm (fused leaves included) decides the step
    return optim.chain(optim.clip_by_global_norm(0.05), optim.adamw_torch(1e-2))


def _one_process():
    """(grads, params after one step, opt_state after it) of one process."""
    params = _params()
    leaves, spec = tree.flatten(params)
    leaves = [x.requires_grad_(True) for x in leaves]
    grads = torch.autograd.grad(_loss(tree.unflatten(spec, leaves), _ids()), leaves)
    grads = tree.unflatten(spec, list(grads))
    opt = _optimizer()
    params, opt_state = optim.step(opt, grads, opt.init(_params()), _params())
    return grads, params, opt_state


def _mesh(shape, names):
    from torch.distributed.device_mesh import init_device_mesh

    return init_device_mesh("cpu", shape, mesh_dim_names=names)


def _full(state: TrainState) -> TrainState:
    return TrainState(ptd.full_params(state.params), ptd.full_params(state.opt_state),
                      state.step, state.key, state.extra)  # fmt: skip


def _like(mesh, plan) -> TrainState:
    params = ptd.shard(_params(), mesh, plan)
    return TrainState(params, _optimizer().init(params), 0, random.key(9), {})


def _worker(mode: str, out: Path) -> None:
    dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=60))
    r = dist.get_rank()
    results: dict = {}
    if mode == "save2":
        mesh = _mesh((1, 2), ("dp", "tp"))
        sharded = ptd.shard(_params(), mesh, PLAN)
        results["placement"] = repr(sharded["transformer"]["h"][0]["attn"]["c_attn"]["weight"]
                                    .placements)  # fmt: skip
        results["full"] = ptd.full_params(sharded)
        loss, grads = fsdp.value_and_grad(_loss, plan=PLAN)(sharded, _ids())
        results["grads"] = ptd.full_params(grads)
        opt = _optimizer()
        params, opt_state = optim.step(opt, grads, opt.init(sharded), sharded)
        state = TrainState(params, opt_state, 1, random.key(3), {"note": "tp2"})
        ptd.dcp.save(out / "ck2", state)
        results["state"] = _full(state)
    elif mode == "load4":
        for name, mesh, plan in [
            ("2x2", _mesh((2, 2), ("dp", "tp")), PLAN),
            ("tp4", _mesh((4,), ("tp",)), PLAN),
            ("fsdp4", _mesh((4,), ("dp",)), None),
        ]:
            loaded = ptd.dcp.load(out / "ck2", _like(mesh, plan))
            results[name] = _full(loaded)
            if name == "2x2":
                ptd.dcp.save(out / "ck4", loaded)
    torch.save(results, out / f"{mode}-rank{r}.pt")
    dist.barrier()  # no rank tears gloo down while a peer still talks to it (SIGABRT)
    dist.destroy_process_group()


def _launch(n: int, mode: str, out: Path) -> list[dict]:
    script = str(Path(__file__).relative_to(REPO))
    ranks = run_ranks(n, [script, mode, str(out)], timeout=120)
    if any(rc for rc, _, _ in ranks):
        text = "\n".join(f"rank {r} rc {rc}:\n{o[-2000:]}\n{e[-3000:]}"
                         for r, (rc, o, e) in enumerate(ranks))  # fmt: skip
        pytest.fail(f"{n} x {mode} failed:\n{text}")
    return [torch.load(out / f"{mode}-rank{r}.pt", weights_only=False) for r in range(n)]


def _equal(a, b) -> None:
    fa, fb = tree.to_flat_dict(a), tree.to_flat_dict(b)
    assert fa.keys() == fb.keys()
    for k in fa:
        assert fa[k].dtype == fb[k].dtype and torch.equal(fa[k], fb[k]), k


def _close(a, b, atol: float) -> None:
    fa, fb = tree.to_flat_dict(a), tree.to_flat_dict(b)
    assert fa.keys() == fb.keys()
    for k in fa:
        assert torch.allclose(fa[k], fb[k], atol=atol, rtol=0), (k, (fa[k] - fb[k]).abs().max())


def _equal_state(a: TrainState, b: TrainState) -> None:
    _equal(a.params, b.params)
    _equal(a.opt_state, b.opt_state)
    assert (a.step, a.extra) == (b.step, b.extra) and torch.equal(a.key, b.key)


def test_fused_leaves_shard_train_and_reshard_through_dcp(tmp_path):
    saved = _launch(2, "save2", tmp_path)
    grads, params, opt_state = _one_process()
    for r in range(2):
        _equal(saved[r]["full"], _params())  # the natural [q | k | v], not the pieces
        _close(saved[r]["grads"], grads, 1e-5)
        _close(saved[r]["state"].params, params, 1e-5)
        _close(saved[r]["state"].opt_state, opt_state, 1e-5)
        assert "_StridedShard(dim=1, sf=3)" in saved[r]["placement"]
    state = saved[0]["state"]
    assert not torch.equal(tree.to_flat_dict(state.params)[FUSED],
                           tree.to_flat_dict(_params())[FUSED])  # fmt: skip  # it trained

    # one process: full trees and consolidate
    like = TrainState(_params(), _optimizer().init(_params()), 0, random.key(9), {})
    _equal_state(ptd.dcp.load(tmp_path / "ck2", like), state)
    flat = ptd.dcp.consolidate(tmp_path / "ck2")
    got = {k[len("params.") :]: v for k, v in flat.items() if k.startswith("params.")}
    _equal(got, tree.to_flat_dict(state.params))

    # 4 ranks: (dp 2 x tp 2), tp 4 and FSDP-only meshes
    loaded = _launch(4, "load4", tmp_path)
    for r in range(4):
        for name in ("2x2", "tp4", "fsdp4"):
            _equal_state(loaded[r][name], state)
    _equal_state(ptd.dcp.load(tmp_path / "ck4", like), state)


if __name__ == "__main__":
    _worker(sys.argv[1], Path(sys.argv[2]))
