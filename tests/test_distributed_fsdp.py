"""FSDP on DTensor trees (ptfunc.distributed.fsdp) and ptfunc.optim on DTensors.

References and tolerances:
* training: a tiny BERT (sequence classification, hidden 18, 3 labels) and a tiny Llama
  (4 layers, hidden 16, vocab 23, intermediate 30: leaves that 2 and 4 ranks do not
  divide, some ranks with empty pieces) take 3 steps on 2 and on 4 gloo ranks, each rank
  on its part of the batch, with ``fsdp.value_and_grad`` and ``adamw_torch`` (BERT) or
  ``chain(clip_by_global_norm, adamw)`` (Llama) on the DTensor tree; the losses and the
  gathered params equal a one-process loop on the whole batch (plain autograd, the same
  optimizer on the full tree) to 1e-5 (absolute; values of order 1);
* the first step's gradients without prefetch equal those with it (exactly: the same
  collectives on the same buffers);
* bf16 (``param_dtype=torch.bfloat16``): the gradients equal one process's gradients of
  the same model with bf16-cast params to 2e-2 relative (of the largest gradient), and
  come back fp32;
* memory: ``fn.stats`` counts, by weak references to the gathered buffers (and their
  storage sizes), at most 2 layer units alive at any gather (Llama: of 4) and 1 prefetch
  in flight; the backward re-gathers the layers (the forward's buffers are not kept);
* ptfunc.optim on DTensor trees: every rule (``update``, ``step``, ``step(inplace=True)``,
  chains with ``clip_by_global_norm``, per-leaf clipping) gives the full tree's result
  to 1e-6 after 2 updates;
* one process: a plain tree and a 1-rank mesh give the ordinary gradient (1e-6); bad
  input raises ValueError / TypeError naming the problem.

The workers are this file run as ``python tests/test_distributed_fsdp.py MODE OUT`` with
torchrun's environment, gloo, a 60 s collective timeout and a barrier before
``destroy_process_group`` (as tests/test_distributed_dcp.py).
"""

from __future__ import annotations

import datetime
import os
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

REPO = Path(__file__).resolve().parents[1]
if __name__ == "__main__":  # the worker runs from a checkout, maybe uninstalled
    sys.path.insert(1, str(REPO))

from _ranks import free_port, run_ranks  # noqa: E402

from ptfunc import optim, random, tree  # noqa: E402
from ptfunc.archs import bert, llama  # noqa: E402
from ptfunc.distributed import fsdp  # noqa: E402

needs_gloo = pytest.mark.skipif(
    not (dist.is_available() and dist.is_gloo_available()),
    reason="torch.distributed with gloo is not available",
)

TOL, BF16_TOL, STEPS, BATCH, SEQ = 1e-5, 2e-2, 3, 8, 6
BERT = bert.BertForSequenceClassification(
    bert.BertConfig(
        vocab_size=23,
        hidden_size=18,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=30,
        max_position_embeddings=16,
        num_labels=3,
    )  # fmt: skip
)
LLAMA = llama.LlamaForCausalLM(
    llama.LlamaConfig(
        vocab_size=23,
        hidden_size=16,
        intermediate_size=30,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=16,
    )  # fmt: skip
)


def _optimizers():
    return {
        "bert": optim.adamw_torch(1e-2),
        "llama": optim.chain(optim.clip_by_global_norm(0.5), optim.adamw(1e-2, weight_decay=0.01)),
    }


def _batch(name: str, step: int) -> dict:
    g = torch.Generator().manual_seed(100 + step)
    ids = torch.randint(0, 23, (BATCH, SEQ), generator=g)
    if name == "bert":
        mask = torch.ones(BATCH, SEQ, dtype=torch.long)
        mask[1, 4:] = 0
        return {"ids": ids, "mask": mask, "labels": torch.randint(0, 3, (BATCH,), generator=g)}
    return {"ids": ids}


def _loss(name: str):
    if name == "bert":
        return lambda p, b: (
            BERT.apply(p, b["ids"], attention_mask=b["mask"], labels=b["labels"]).loss
        )
    return lambda p, b: LLAMA.apply(p, b["ids"], labels=b["ids"]).loss


def _params(name: str):
    return (BERT if name == "bert" else LLAMA).init(random.key(0))


def _local(b: dict, rank: int, world: int) -> dict:
    n = BATCH // world
    return {k: v[rank * n : (rank + 1) * n] for k, v in b.items()}


def _plain_grad(loss_fn, params, b):
    leaves, spec = tree.flatten(params)
    leaves = [x.detach().requires_grad_(True) for x in leaves]
    loss = loss_fn(tree.unflatten(spec, leaves), b)
    return loss.detach(), tree.unflatten(spec, list(torch.autograd.grad(loss, leaves)))


def _reference(name: str) -> dict:
    """One process on the whole batch: losses, final params, first grads, bf16 grads."""
    params, opt = _params(name), _optimizers()[name]
    state, losses, first = opt.init(params), [], None
    for s in range(STEPS):
        loss, grads = _plain_grad(_loss(name), params, _batch(name, s))
        first = grads if first is None else first
        losses.append(loss)
        params, state = optim.step(opt, grads, state, params)
    p16 = tree.map(lambda x: x.to(torch.bfloat16), _params(name))
    bf16 = _plain_grad(_loss(name), p16, _batch(name, 0))[1]
    return {"losses": torch.stack(losses), "params": params, "first": first, "bf16": bf16}


# -- optimizers on DTensor trees -------------------------------------------------------------

OPT_RULES = {
    "adamw": lambda: optim.adamw(1e-2, weight_decay=0.1),
    "adamw_fused": lambda: optim.adamw(1e-2, weight_decay=0.1, fused=True),
    "adamw_torch": lambda: optim.adamw_torch(1e-2),
    "adamw_torch_foreach": lambda: optim.adamw_torch(1e-2, fused=False),
    "adam": lambda: optim.adam(1e-2, weight_decay=0.1),
    "sgd": lambda: optim.sgd(0.1, momentum=0.9, weight_decay=0.1, nesterov=True),
    "bert_adam": lambda: optim.bert_adam(1e-2, max_grad_norm=0.5),
    "bert_adam_fused": lambda: optim.bert_adam(1e-2, max_grad_norm=0.5, fused=True),
    "openai_adam": lambda: optim.openai_adam(1e-2, max_grad_norm=0.5, weight_decay=0.1),
    "clip_adamw": lambda: optim.chain(optim.clip_by_global_norm(0.3), optim.adamw(1e-2)),
    "clip_adamw_torch": lambda: optim.chain(
        optim.clip_by_global_norm(0.3), optim.adamw_torch(1e-2)
    ),
    "parts": lambda: optim.chain(
        optim.clip_by_global_norm(0.3),
        optim.scale_by_adam(),
        optim.masked(optim.add_decayed_weights(0.1), optim.no_decay_mask),
        optim.scale(-1e-2),
    ),  # fmt: skip
    "per_leaf_clip": lambda: optim.chain(optim.clip_by_norm_per_leaf(0.2), optim.sgd(0.1)),
}


def _optim_errors(mesh) -> dict[str, float]:
    """max |full-tree result - gathered DTensor result| per (rule, mode) after 2 updates."""
    g = torch.Generator().manual_seed(0)
    full = {
        "w": torch.randn(5, 3, generator=g), "b": torch.randn(3, generator=g),
        "c": torch.randn((), generator=g), "LayerNorm": {"weight": torch.randn(7, generator=g)},
    }  # fmt: skip
    grads = [tree.map(lambda x: torch.randn(x.shape, generator=g), full) for _ in range(2)]
    errors = {}
    for name, make in OPT_RULES.items():
        for mode in ("update", "step", "inplace"):
            opt = make()
            results = []
            for params, gs in ((full, grads), (fsdp.shard(full, mesh), None)):
                gs = gs or [fsdp.shard(x, mesh) for x in grads]
                state = opt.init(params)
                for g_ in gs:
                    if mode == "update":
                        u, state = opt.update(g_, state, params)
                        params = optim.apply_updates(params, u)
                    else:
                        donate = mode == "inplace"
                        g_, params = (tree.map(torch.clone, x) for x in (g_, params))
                        params, state = optim.step(opt, g_, state, params, inplace=donate)
                results.append(params)
            assert all(type(x).__name__ == "DTensor" for x in tree.leaves(results[1]))
            gathered = fsdp.full_params(results[1])
            errors[f"{name}/{mode}"] = max(
                (a - b).abs().max().item()
                for a, b in zip(tree.leaves(results[0]), tree.leaves(gathered))
            )
    return errors


# -- the worker ---------------------------------------------------------------------------------


def _worker(mode: str, out: Path) -> None:
    from torch.distributed.device_mesh import init_device_mesh

    dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=60))
    r, world = dist.get_rank(), dist.get_world_size()
    mesh = init_device_mesh("cpu", (world,))
    results: dict = {"optim": _optim_errors(mesh) if mode == "all" else {}}
    for name in ("bert", "llama"):
        params, opt, loss_fn = _params(name), _optimizers()[name], _loss(name)
        sharded = fsdp.shard(params, mesh)
        assert all(torch.equal(a, b) for a, b in
                   zip(tree.leaves(fsdp.full_params(sharded)), tree.leaves(params)))  # fmt: skip
        vg = fsdp.value_and_grad(loss_fn)
        state, losses, stats = opt.init(sharded), [], []
        for s in range(STEPS):
            loss, grads = vg(sharded, _local(_batch(name, s), r, world))
            if s == 0:
                results[f"{name}/first"] = fsdp.full_params(grads)
                plain = fsdp.value_and_grad(loss_fn, prefetch=False)
                no_prefetch = plain(sharded, _local(_batch(name, s), r, world))[1]
                results[f"{name}/no_prefetch"] = fsdp.full_params(no_prefetch)
                results[f"{name}/no_prefetch_stats"] = plain.stats
                bf = fsdp.value_and_grad(loss_fn, param_dtype=torch.bfloat16)
                results[f"{name}/bf16"] = fsdp.full_params(
                    bf(sharded, _local(_batch(name, s), r, world))[1]
                )
            losses.append(loss)
            stats.append(vg.stats)
            sharded, state = optim.step(opt, grads, state, sharded)
        mean_loss = torch.stack(losses)
        dist.all_reduce(mean_loss)
        results[f"{name}/losses"] = mean_loss / world
        results[f"{name}/params"] = fsdp.full_params(sharded)
        results[f"{name}/stats"] = stats
    if r == 0:
        torch.save(results, out / f"{mode}-{world}.pt")
    dist.barrier()  # no rank tears gloo down while a peer still talks to it (SIGABRT)
    dist.destroy_process_group()


def _launch(n: int, mode: str, out: Path, timeout: float = 120) -> dict:
    script = str(Path(__file__).relative_to(REPO))
    ranks = run_ranks(n, [script, mode, str(out)], timeout=timeout)
    if any(rc for rc, _, _ in ranks):
        text = "\n".join(f"rank {r} rc {rc}:\n{o[-2000:]}\n{e[-3000:]}"
                         for r, (rc, o, e) in enumerate(ranks))  # fmt: skip
        pytest.fail(f"{n} x {mode} failed:\n{text}")
    return torch.load(out / f"{mode}-{n}.pt", weights_only=False)


def _max_err(a, b) -> float:
    assert tree.structure(a) == tree.structure(b)
    return max((x - y).abs().max().item() for x, y in zip(tree.leaves(a), tree.leaves(b)))


# -- several processes ------------------------------------------------------------------------


@needs_gloo
@pytest.mark.parametrize("world", [2, 4])
def test_fsdp_training_equals_one_process(tmp_path, world):
    got = _launch(world, "all" if world == 2 else "train", tmp_path)
    for name in ("bert", "llama"):
        ref = _reference(name)
        assert torch.allclose(got[f"{name}/losses"], ref["losses"], atol=TOL, rtol=0)
        assert _max_err(got[f"{name}/first"], ref["first"]) < TOL
        assert _max_err(got[f"{name}/params"], ref["params"]) < TOL
        # prefetch changes the schedule, not the numbers
        assert _max_err(got[f"{name}/no_prefetch"], got[f"{name}/first"]) == 0.0
        assert got[f"{name}/no_prefetch_stats"].prefetched == 0
        # bf16 compute from fp32 shards: fp32 grads near the bf16 model's
        bf16 = got[f"{name}/bf16"]
        assert all(x.dtype == torch.float32 for x in tree.leaves(bf16))
        scale = max(x.abs().max().item() for x in tree.leaves(ref["bf16"]))
        assert _max_err(bf16, tree.map(lambda x: x.float(), ref["bf16"])) < BF16_TOL * scale
        stats = got[f"{name}/stats"][-1]
        layers = stats.units - 1
        assert layers >= 2 and stats.prefetched >= layers - 1
        assert 1 <= stats.peak_units <= 2 and layers == (2 if name == "bert" else 4)
        assert stats.peak_inflight <= 1
        assert stats.regathers >= layers - 1  # the backward gathers again
        assert stats.reduces == stats.units
    if world == 2:
        bad = {k: v for k, v in got["optim"].items() if not v <= 1e-6}
        assert len(got["optim"]) == 3 * len(OPT_RULES) and not bad, bad


# -- one process ----------------------------------------------------------------------------------


def test_plain_tree_is_the_ordinary_gradient():
    params, b = _params("llama"), _batch("llama", 0)
    loss, grads = fsdp.value_and_grad(_loss("llama"))(params, b)
    ref_loss, ref = _plain_grad(_loss("llama"), params, b)
    assert torch.allclose(loss, ref_loss, atol=1e-6) and _max_err(grads, ref) < 1e-6
    fn = fsdp.value_and_grad(_loss("llama"), units=["model.layers.0", "model.layers.1"])
    assert _max_err(fn(params, b)[1], ref) < 1e-6
    assert fn.stats.units == 3


@pytest.fixture
def one_rank_mesh():
    from torch.distributed.device_mesh import init_device_mesh

    if dist.is_initialized():
        pytest.skip("a process group is already initialised")
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    store = dist.TCPStore("127.0.0.1", free_port(), 1, True)
    dist.init_process_group("gloo", store=store, rank=0, world_size=1)
    try:
        yield init_device_mesh("cpu", (1,))
    finally:
        dist.destroy_process_group()


@needs_gloo
def test_one_rank_mesh_and_bad_input(one_rank_mesh):
    from torch.distributed.device_mesh import init_device_mesh

    params, b = _params("bert"), _batch("bert", 0)
    sharded = fsdp.shard(params, one_rank_mesh)
    loss, grads = fsdp.value_and_grad(_loss("bert"))(sharded, b)
    ref_loss, ref = _plain_grad(_loss("bert"), params, b)
    assert torch.allclose(loss, ref_loss, atol=1e-6)
    assert _max_err(fsdp.full_params(grads), ref) < 1e-6
    opt = optim.adamw_torch(1e-2)
    stepped, _ = optim.step(opt, grads, opt.init(sharded), sharded)
    full, _ = optim.step(opt, ref, opt.init(params), params)
    assert _max_err(fsdp.full_params(stepped), full) < 1e-6

    with pytest.raises(TypeError, match="needs a DeviceMesh"):
        fsdp.shard(params, None)
    with pytest.raises(TypeError, match="already a DTensor"):
        fsdp.shard(sharded, one_rank_mesh)
    with pytest.raises(ValueError, match="needs a mesh with a dim named 'tp'"):
        fsdp.shard(params, one_rank_mesh, plan=object())
    with pytest.raises(ValueError, match="2-D mesh named"):
        fsdp.shard(params, init_device_mesh("cpu", (1, 1), mesh_dim_names=("a", "b")))
    with pytest.raises(ValueError, match="needs a tensor-parallel plan"):
        fsdp.shard(params, init_device_mesh("cpu", (1, 1), mesh_dim_names=("dp", "tp")))
    with pytest.raises(ValueError, match="units name no subtree"):
        fsdp.value_and_grad(_loss("bert"), units=["nowhere.0"])(sharded, b)
    with pytest.raises(TypeError, match="floating dtype"):
        fsdp.value_and_grad(_loss("bert"), param_dtype=torch.int32)
    mixed = dict(sharded, classifier=params["classifier"])
    with pytest.raises(TypeError, match="plain tensor among DTensors"):
        fsdp.value_and_grad(_loss("bert"))(mixed, b)
    with pytest.raises(TypeError, match="0-d tensor"):
        fsdp.value_and_grad(lambda p, b: _loss("bert")(p, b).reshape(1))(sharded, b)


if __name__ == "__main__":
    _worker(sys.argv[1], Path(sys.argv[2]))
