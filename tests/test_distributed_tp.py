"""Tensor parallelism (ptfunc.distributed.tensor_parallel): one process and gloo runs of 2 and
4 ranks.

References and tolerances:
* tp=2 (2 ranks): each tiny model (Llama with GQA and an untied head, Qwen3 with QK-norm and
  tied embeddings, Qwen2 with biases and sliding windows, Mistral sequence classification,
  GPT-NeoX, BERT masked LM with padding and sequence classification, GPT-2 tied LM head, a
  bare Llama's hidden states) run by :func:`parallel` on its :func:`split_params` pieces: the
  outputs and the loss equal one process's ``model.apply`` on the full params, and the local
  gradients merged with ``plan.merge`` equal ``torch.autograd.grad`` of it, to 1e-5; the
  replicated leaves' gradients agree on the two ranks to 1e-6;
* loss-parallel: ``vocab_parallel_cross_entropy`` of local logits equals ``F.cross_entropy``
  of the full logits (random logits, ignored labels) to 1e-6 with the local slices of its
  gradient, a Llama's next-token loss from ``TPMode(loss_parallel=True)`` equals the head's
  loss to 1e-5, and Llama, Qwen3, GPT-2 and BERT-MLM heads given ``labels=`` under
  ``loss_parallel`` return their local logits slice with the one-process loss and gradients
  (the heads' ``F.cross_entropy`` is computed vocab-parallel) to 1e-5;
* dp=2 x tp=2 (4 ranks, a 2-D device mesh): two ``adamw_torch`` steps of Llama and GPT-2,
  each data-parallel group on half the batch and the gradients averaged over "dp", give the
  params of two steps of one process on the whole batch, to 1e-5;
* one process: split/merge round trips are exact, every family's ``plan_for`` cuts its
  projections as Megatron-LM does, ``plan.check`` names the leaf or head count that does not
  divide, and ``parallel`` over a group of one equals ``apply`` exactly.

The workers are this file run as ``python tests/test_distributed_tp.py MODE OUT`` with
torchrun's environment (tests/_ranks.py), gloo and a 60 s collective timeout.
"""

from __future__ import annotations

import datetime
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
if __name__ == "__main__":  # the worker runs from a checkout, maybe uninstalled
    sys.path.insert(1, str(REPO))

from _ranks import run_ranks  # noqa: E402

from ptfunc import optim, random, tree  # noqa: E402
from ptfunc.archs import bert, gpt2, gpt_neox, llama, mistral, qwen2, qwen3, xlnet  # noqa: E402
from ptfunc.distributed import tensor_parallel as tp  # noqa: E402

pytestmark = pytest.mark.skipif(
    not (dist.is_available() and dist.is_gloo_available()),
    reason="torch.distributed with gloo is not available",
)

V, B, S = 32, 4, 6  # vocabulary, batch, sequence: every split divides by 2 and 4
_DEC = dict(vocab_size=V, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2)  # fmt: skip


def _models() -> dict:
    """name -> model (tiny configs)."""
    bert_c = bert.BertConfig(vocab_size=V, hidden_size=16, num_hidden_layers=2,
                             num_attention_heads=4, intermediate_size=32,
                             max_position_embeddings=16, num_labels=3, pad_token_id=0)  # fmt: skip
    return {
        "llama": llama.LlamaForCausalLM(llama.LlamaConfig(**_DEC)),
        "llama_base": llama.LlamaModel(llama.LlamaConfig(**_DEC)),
        "qwen3": qwen3.Qwen3ForCausalLM(
            qwen3.Qwen3Config(**_DEC, head_dim=8, tie_word_embeddings=True)
        ),
        "qwen2": qwen2.Qwen2ForCausalLM(
            qwen2.Qwen2Config(
                **_DEC, use_sliding_window=True, sliding_window=3, max_window_layers=1
            )  # fmt: skip
        ),
        "mistral_cls": mistral.MistralForSequenceClassification(
            mistral.MistralConfig(**_DEC, sliding_window=3, pad_token_id=0, num_labels=3)
        ),
        "neox": gpt_neox.GPTNeoXForCausalLM(
            gpt_neox.GPTNeoXConfig(
                vocab_size=V,
                hidden_size=16,
                intermediate_size=32,
                num_hidden_layers=2,
                num_attention_heads=4,
                rotary_pct=0.5,
            )  # fmt: skip
        ),
        "bert_mlm": bert.BertForMaskedLM(bert_c),
        "bert_cls": bert.BertForSequenceClassification(bert_c),
        "gpt2": gpt2.GPT2LMHeadModel(
            gpt2.GPT2Config(vocab_size=V, n_embd=16, n_layer=2, n_head=4, n_positions=16)
        ),  # fmt: skip
    }


def _params(model):
    """Init params with random (not zero) biases and norms, so every leaf matters."""
    params = model.init(random.key(0))
    g = torch.Generator().manual_seed(1)
    return tree.map(
        lambda x: x + 0.1 * torch.randn(x.shape, generator=g) if x.dim() == 1 else x, params
    )


def _batch(rows: slice = slice(None)):
    g = torch.Generator().manual_seed(2)
    ids = torch.randint(1, V, (B, S), generator=g)
    ids[1, -2:] = 0  # right padding (the pad id 0) in row 1
    mask = (ids != 0).long()
    mlm = torch.where(torch.rand(B, S, generator=g) < 0.5, ids, -100)
    cls = torch.randint(0, 3, (B,), generator=g)
    return {k: v[rows] for k, v in dict(ids=ids, mask=mask, mlm=mlm, cls=cls).items()}


def _run(name: str, model, apply, params, batch):
    """(output, loss) of one model on the batch: ``apply`` is model.apply or its parallel."""
    ids = batch["ids"]
    if name == "llama_base":
        h = apply(params, ids).last_hidden_state
        return h, (h.square() * torch.linspace(0, 1, h.shape[-1])).mean()
    if name == "mistral_cls":
        out = apply(params, ids, labels=batch["cls"])
    elif name == "bert_mlm":
        out = apply(params, ids, attention_mask=batch["mask"], labels=batch["mlm"])
    elif name == "bert_cls":
        out = apply(params, ids, attention_mask=batch["mask"], labels=batch["cls"])
    else:
        out = apply(params, ids, labels=ids)
    return out.logits, out.loss


def _value_and_grad(name, model, apply, params, batch):
    leaves, spec = tree.flatten(params)
    leaves = [x.detach().requires_grad_(True) for x in leaves]
    params = tree.unflatten(spec, leaves)
    out, loss = _run(name, model, apply, params, batch)
    grads = torch.autograd.grad(loss, leaves)
    return out.detach(), loss.detach(), tree.unflatten(spec, list(grads))


def _max_err(a, b) -> float:
    return max((x - y).abs().max().item() for x, y in zip(tree.leaves(a), tree.leaves(b)))


# -- the workers ------------------------------------------------------------------------


LOSS_PARALLEL_HEADS = ("llama", "qwen3", "gpt2", "bert_mlm")  # vocab read-outs with labels=


def _tp2(out: Path) -> None:
    """Every model's output, loss and local gradients on tp=2; loss-parallel checks."""
    r, group = dist.get_rank(), dist.group.WORLD
    results: dict = {}
    batch = _batch()
    for name, model in _models().items():
        plan = tp.plan_for(model)
        local = tp.split_params(_params(model), plan, r, 2)
        results[name] = _value_and_grad(name, model, tp.parallel(model.apply, plan), local, batch)

    # loss-parallel: the local logits of a Llama scored by vocab_parallel_cross_entropy
    model = _models()["llama"]
    plan = tp.plan_for(model)
    leaves, spec = tree.flatten(tp.split_params(_params(model), plan, r, 2))
    leaves = [x.requires_grad_(True) for x in leaves]
    ids = batch["ids"]
    logits = tp.parallel(model.apply, plan, group, loss_parallel=True)(
        tree.unflatten(spec, leaves), ids
    ).logits
    labels = torch.cat([ids[:, 1:], torch.full_like(ids[:, :1], -100)], dim=1)
    loss = tp.vocab_parallel_cross_entropy(logits, labels, group)
    grads = torch.autograd.grad(loss, leaves)
    results["loss_parallel"] = (logits.shape, loss.detach(), tree.unflatten(spec, list(grads)))

    # loss-parallel with the heads' own labels= losses (F.cross_entropy inside the mode)
    for name in LOSS_PARALLEL_HEADS:
        model = _models()[name]
        plan = tp.plan_for(model)
        local = tp.split_params(_params(model), plan, r, 2)
        apply = tp.parallel(model.apply, plan, group, loss_parallel=True)
        results[f"labels:{name}"] = _value_and_grad(name, model, apply, local, batch)

    # vocab_parallel_cross_entropy on random logits against F.cross_entropy
    g = torch.Generator().manual_seed(3)
    full = torch.randn(5, 7, 12, generator=g, dtype=torch.float64) * 4
    target = torch.randint(0, 12, (5, 7), generator=g)
    target[0, :3] = -100
    local = full.narrow(-1, 6 * r, 6).clone().requires_grad_(True)
    loss = tp.vocab_parallel_cross_entropy(local, target, group)
    (grad,) = torch.autograd.grad(loss, local)
    results["vpce"] = (full, target, loss.detach(), grad)
    torch.save(results, out / f"tp2-rank{r}.pt")


OPT = dict(lr=1e-3, eps=1e-6, weight_decay=0.01)


def _train(name, model, apply, params, batch, dp_group=None, dp=1, steps=2):
    """``steps`` adamw_torch steps; gradients averaged over ``dp_group``."""
    opt = optim.adamw_torch(**OPT)
    state = opt.init(params)
    losses = []
    for _ in range(steps):
        _, loss, grads = _value_and_grad(name, model, apply, params, batch)
        if dp > 1:
            grads = tree.map(lambda x: _dp_mean(x, dp_group, dp), grads)
        updates, state = opt.update(grads, state, params)
        params = optim.apply_updates(params, updates)
        losses.append(loss)
    return params, losses


def _dp_mean(x, group, n):
    x = x.clone()
    dist.all_reduce(x, group=group)
    return x / n


def _dp2tp2(out: Path) -> None:
    """Two training steps of Llama and GPT-2 on a (dp=2, tp=2) mesh."""
    from torch.distributed.device_mesh import init_device_mesh

    mesh = init_device_mesh("cpu", (2, 2), mesh_dim_names=("dp", "tp"))
    d, t = mesh.get_local_rank("dp"), mesh.get_local_rank("tp")
    tp_group, dp_group = mesh.get_group("tp"), mesh.get_group("dp")
    batch = _batch(slice(2 * d, 2 * d + 2))
    results = {"dp": d, "tp": t}
    for name in ("llama", "gpt2"):
        model = _models()[name]
        plan = tp.plan_for(model)
        local = tp.split_params(_params(model), plan, t, 2)
        apply = tp.parallel(model.apply, plan, tp_group)
        results[name] = _train(name, model, apply, local, batch, dp_group, 2)
    torch.save(results, out / f"dp2tp2-rank{dist.get_rank()}.pt")


def _worker(mode: str, out: Path) -> None:
    dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=60))
    {"tp2": _tp2, "dp2tp2": _dp2tp2}[mode](out)
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


# -- several processes ----------------------------------------------------------------------


def test_tp2_equals_one_process(tmp_path):
    ranks = _launch(2, "tp2", tmp_path)
    batch = _batch()
    for name, model in _models().items():
        plan = tp.plan_for(model)
        out, loss, grads = _value_and_grad(name, model, model.apply, _params(model), batch)
        for r in range(2):
            assert torch.allclose(ranks[r][name][0], out, atol=1e-5, rtol=0), (name, r)
            assert torch.allclose(ranks[r][name][1], loss, atol=1e-5, rtol=0), (name, r)
        merged = tp.merge_params([ranks[0][name][2], ranks[1][name][2]], plan)
        assert _max_err(merged, grads) < 1e-5, name
        for path, g0 in tree.to_flat_dict(ranks[0][name][2]).items():
            if plan.rule(path).kind == "replicate":  # whole and equal on both ranks
                g1 = tree.to_flat_dict(ranks[1][name][2])[path]
                assert torch.allclose(g0, g1, atol=1e-6, rtol=0), (name, path)

    # loss-parallel Llama: local logits (b, s, V / 2); the head's loss and gradients
    model = _models()["llama"]
    _, loss, grads = _value_and_grad("llama", model, model.apply, _params(model), batch)
    for r in range(2):
        shape, got, _ = ranks[r]["loss_parallel"]
        assert shape == (B, S, V // 2) and torch.allclose(got, loss, atol=1e-5, rtol=0)
    pieces = [ranks[r]["loss_parallel"][2] for r in range(2)]
    assert _max_err(tp.merge_params(pieces, tp.plan_for(model)), grads) < 1e-5

    # loss-parallel heads given labels=: local logits, the one-process loss and gradients
    for name in LOSS_PARALLEL_HEADS:
        model = _models()[name]
        out, loss, grads = _value_and_grad(name, model, model.apply, _params(model), batch)
        width = out.shape[-1] // 2
        for r in range(2):
            got_out, got_loss, _ = ranks[r][f"labels:{name}"]
            assert torch.allclose(got_out, out.narrow(-1, width * r, width), atol=1e-5, rtol=0)
            assert torch.allclose(got_loss, loss, atol=1e-5, rtol=0), (name, r)
        pieces = [ranks[r][f"labels:{name}"][2] for r in range(2)]
        assert _max_err(tp.merge_params(pieces, tp.plan_for(model)), grads) < 1e-5, name

    # vocab_parallel_cross_entropy == F.cross_entropy of the full logits (float64)
    full, target, *_ = ranks[0]["vpce"]
    full = full.clone().requires_grad_(True)
    want = F.cross_entropy(full.reshape(-1, 12), target.reshape(-1), ignore_index=-100)
    (grad,) = torch.autograd.grad(want, full)
    for r in range(2):
        _, _, got, local_grad = ranks[r]["vpce"]
        assert torch.allclose(got, want, atol=1e-6, rtol=0)
        assert torch.allclose(local_grad, grad.narrow(-1, 6 * r, 6), atol=1e-6, rtol=0)


def test_dp2_tp2_training_equals_one_process(tmp_path):
    ranks = sorted(_launch(4, "dp2tp2", tmp_path), key=lambda x: (x["dp"], x["tp"]))
    batch = _batch()
    for name in ("llama", "gpt2"):
        model = _models()[name]
        plan = tp.plan_for(model)
        want, want_losses = _train(name, model, model.apply, _params(model), batch)
        for d in range(2):
            pieces = [ranks[2 * d + t][name][0] for t in range(2)]
            assert _max_err(tp.merge_params(pieces, plan), want) < 1e-5, (name, d)
        # each dp group's loss is its half's: their mean is the whole batch's
        for step in range(2):
            mean = (ranks[0][name][1][step] + ranks[2][name][1][step]) / 2
            assert torch.allclose(mean, want_losses[step], atol=1e-5, rtol=0), (name, step)


# -- one process ----------------------------------------------------------------------------


def test_split_merge_round_trip_and_plans():
    for name, model in _models().items():
        params, plan = _params(model), tp.plan_for(model)
        leaves_only = tp.TPPlan(plan.rules)  # 4 ranks cut a GQA head group: leaves only
        for n, p in ((1, plan), (2, plan), (4, leaves_only)):
            pieces = [tp.split_params(params, p, r, n) for r in range(n)]
            back = tp.merge_params(pieces, p)
            assert tree.structure(back) == tree.structure(params)
            assert all(torch.equal(x, y) for x, y in zip(tree.leaves(back), tree.leaves(params)))
        cut = {p for p in tree.to_flat_dict(params) if plan.rule(p).kind != "replicate"}
        assert cut, name

    def kinds(model):
        plan = tp.plan_for(model)
        return {p: tuple(plan.rule(p)) for p in tree.to_flat_dict(_params(model))}

    m = _models()
    llama_k = kinds(m["llama"])
    assert llama_k["model.embed_tokens.weight"] == ("vocab", 0, 1, False)
    assert llama_k["lm_head.weight"] == ("vocab", 0, 1, False)
    assert llama_k["model.layers.1.self_attn.k_proj.weight"] == ("colwise", 0, 1, False)
    assert llama_k["model.layers.1.self_attn.o_proj.weight"] == ("rowwise", 1, 1, False)
    assert llama_k["model.layers.0.mlp.down_proj.weight"] == ("rowwise", 1, 1, False)
    assert llama_k["model.norm.weight"][0] == "replicate"
    assert kinds(m["llama_base"])["layers.0.mlp.up_proj.weight"] == ("colwise", 0, 1, False)
    assert kinds(m["qwen2"])["model.layers.0.self_attn.q_proj.bias"] == ("colwise", 0, 1, False)
    assert kinds(m["qwen3"])["model.layers.0.self_attn.q_norm.weight"][0] == "replicate"
    assert kinds(m["mistral_cls"])["score.weight"][0] == "replicate"
    neox = kinds(m["neox"])
    assert neox["gpt_neox.layers.0.attention.query_key_value.bias"] == ("colwise", 0, 1, False)
    assert neox["gpt_neox.layers.0.mlp.dense_4h_to_h.weight"] == ("rowwise", 1, 1, False)
    assert neox["embed_out.weight"] == ("vocab", 0, 1, False)
    b = kinds(m["bert_mlm"])
    assert b["bert.embeddings.word_embeddings.weight"] == ("vocab", 0, 1, False)
    assert b["bert.encoder.layer.0.attention.output.dense.weight"] == ("rowwise", 1, 1, False)
    assert b["bert.encoder.layer.0.output.dense.bias"][0] == "replicate"
    assert b["cls.predictions.bias"] == ("colwise", 0, 1, False)
    assert b["bert.embeddings.position_embeddings.weight"][0] == "replicate"
    assert kinds(m["bert_cls"])["classifier.weight"][0] == "replicate"
    g = kinds(m["gpt2"])
    assert g["transformer.h.0.attn.c_attn.weight"] == ("colwise", 1, 3, False)
    assert g["transformer.h.0.attn.c_proj.weight"] == ("rowwise", 0, 1, False)
    assert g["transformer.h.0.mlp.c_fc.weight"] == ("colwise", 1, 1, False)
    # GPT-2's fused [q|k|v]: rank r holds its share of each third
    c_attn = torch.arange(24.0).reshape(2, 12)
    piece = tp.plan_for(m["gpt2"]).split("h.0.attn.c_attn.weight", c_attn, 1, 2)
    assert piece.tolist() == [[2, 3, 6, 7, 10, 11], [14, 15, 18, 19, 22, 23]]
    with pytest.raises(TypeError, match="no tensor-parallel plan for XLNetModel"):
        tp.plan_for(xlnet.XLNetModel(xlnet.XLNetConfig(d_model=16, n_layer=1, n_head=2)))


def test_check_names_what_does_not_divide():
    model = _models()["llama"]
    params, plan = _params(model), tp.plan_for(model)
    plan.check(params, 2)
    with pytest.raises(ValueError, match="num_key_value_heads = 2 is not divisible by 4"):
        plan.check(params, 4)
    with pytest.raises(ValueError, match="num_attention_heads = 4 is not divisible by 8"):
        tp.split_params(params, plan, 0, 8)
    leaves_only = tp.TPPlan(plan.rules)  # no config counts: the leaves are checked
    leaves_only.check(params, 4)
    with pytest.raises(ValueError, match=r"model\.embed_tokens\.weight has size 32 along dim 0"):
        leaves_only.check(params, 3)
    gpt = _models()["gpt2"]
    gp = tp.TPPlan(tp.plan_for(gpt).rules)
    with pytest.raises(ValueError, match=r"c_attn\.weight has size 48 along dim 1 \(3 fused"):
        gp.check(_params(gpt), 32)
    with pytest.raises(ValueError, match="kind must be one of"):
        tp.TPRule("diagonal", 0) and tp.TPPlan([("*", tp.TPRule("diagonal", 0))])


def test_parallel_over_one_process_is_apply():
    assert tp.current() is None
    batch = _batch()
    for name, model in _models().items():
        plan = tp.plan_for(model)
        params = _params(model)
        local = tp.split_params(params, plan, 0, 1)
        got = _run(name, model, tp.parallel(model.apply, plan), local, batch)
        want = _run(name, model, model.apply, params, batch)
        assert all(torch.equal(x, y) for x, y in zip(got, want)), name
    with tp.TPMode(plan) as mode:
        assert tp.current() is mode
        w = torch.ones(4, 2)
        mode.register(w, tp.TPRule("colwise", 0))
        assert mode._lookup(w.t()) == (tp.TPRule("colwise", 0), True)
        mode.unregister(w)
        assert mode._lookup(w) is None
    assert tp.current() is None
    # loss_parallel: a cross-entropy it cannot shard, and head_mask, are clear errors
    model = _models()["llama"]
    plan = tp.plan_for(model)
    local = tp.split_params(_params(model), plan, 0, 1)
    with tp.TPMode(plan, loss_parallel=True) as mode:
        mode.register_tree(local)
        logits = model.apply(local, batch["ids"]).logits
        flat = logits.reshape(-1, logits.shape[-1])
        labels = batch["ids"].reshape(-1)
        assert torch.allclose(F.cross_entropy(flat, labels), tp.vocab_parallel_cross_entropy(
            flat, labels), atol=1e-6, rtol=0)  # fmt: skip
        with pytest.raises(ValueError, match="label_smoothing"):
            F.cross_entropy(flat, labels, label_smoothing=0.1)
        with pytest.raises(ValueError, match="reduction='sum'"):
            F.cross_entropy(flat, labels, reduction="sum")
        by_class_dim = F.cross_entropy(logits.transpose(1, 2), batch["ids"])  # (b, V, s)
        assert torch.allclose(by_class_dim, F.cross_entropy(flat, labels), atol=1e-6, rtol=0)
        with pytest.raises(ValueError, match="class-index labels"):
            F.cross_entropy(flat, flat.softmax(-1))
    bert_model = _models()["bert_mlm"]
    bert_plan = tp.plan_for(bert_model)
    bert_local = tp.split_params(_params(bert_model), bert_plan, 0, 1)
    with pytest.raises(ValueError, match="head_mask"):
        tp.parallel(bert_model.apply, bert_plan)(
            bert_local, batch["ids"], head_mask=torch.ones(bert_model.config.num_attention_heads)
        )
    # torch.func transforms over the mode: a clear error, not a silent one-rank computation
    model = _models()["gpt2"]
    plan = tp.plan_for(model)
    local = tp.split_params(_params(model), plan, 0, 1)
    f = tp.parallel(model.apply, plan)
    with pytest.raises(TypeError, match="torch.func transforms"):
        torch.func.grad(lambda p: f(p, batch["ids"])[0].sum())(local)


if __name__ == "__main__":
    _worker(sys.argv[1], Path(sys.argv[2]))
