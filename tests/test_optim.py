"""ptfunc.optim against the originals: 50-step trajectories on random pytrees.

References: ``torch.optim.AdamW``/``Adam``/``SGD``; pytorch-transformers 1.0 ``AdamW`` and
its five schedules; pytorch-pretrained-bert 0.6.2 ``BertAdam``/``OpenAIAdam`` with every
schedule. Params after every step must agree within rtol 1e-6, atol 1e-6 (float32);
learning rates per step exactly (to float64 rounding). The foreach fast path is held
to the per-leaf reference path bit for bit.
"""

from __future__ import annotations

import warnings

import pytest
import torch
from torch.func import vmap

import ptfunc
from ptfunc import optim, tree
from ptfunc.optim import schedules

STEPS = 50


def _params():
    g = torch.Generator().manual_seed(0)
    return {
        "w": torch.randn(5, 4, generator=g),
        "layer": [
            {
                "bias": torch.randn(4, generator=g),
                "LayerNorm": {"weight": torch.randn(4, generator=g)},
            }
        ],
        "v": torch.randn(3, generator=g),
    }


def _grads(step: int, params) -> dict:
    g = torch.Generator().manual_seed(1000 + step)
    return tree.map(lambda p: torch.randn(p.shape, generator=g) * 2.0, params)


def _run_torch(make_opt, make_sched=None, steps=STEPS):
    """The reference: a torch optimizer stepping module-free tensors; params and lr per step."""
    params = _params()
    leaves = [p.clone().requires_grad_() for p in tree.leaves(params)]
    spec = tree.structure(params)
    opt = make_opt(leaves)
    sched = make_sched(opt) if make_sched else None
    out, lrs = [], []
    for t in range(steps):
        grads = tree.leaves(_grads(t, params))
        for p, g in zip(leaves, grads, strict=True):
            p.grad = g.clone()
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        if sched:
            sched.step()
        out.append([p.detach().clone() for p in leaves])
    del spec
    return out, lrs


def _run_ours(opt, steps=STEPS, inplace=False, fused=False):
    params = _params()
    state = opt.init(params)
    out, lrs = [], []
    for t in range(steps):
        if fused:  # optim.step: the fused path writing params directly
            params, state = optim.step(opt, _grads(t, params), state, params, inplace=inplace)
        else:
            updates, state = opt.update(_grads(t, params), state, params, inplace=inplace)
            params = optim.apply_updates(params, updates)
        out.append([p.clone() for p in tree.leaves(params)])
        lr = optim.current_lr(state)
        lrs.append(None if lr is None else float(lr))
    return out, lrs


def _assert_trajectories(ours, theirs):
    for step, (a, b) in enumerate(zip(ours, theirs, strict=True)):
        for x, y in zip(a, b, strict=True):
            torch.testing.assert_close(
                x, y, rtol=1e-6, atol=1e-6, msg=lambda m, s=step: f"step {s}: {m}"
            )


# -- torch.optim ---------------------------------------------------------------------------------


@pytest.mark.parametrize("wd", [0.0, 0.1])
def test_adamw_torch_matches_torch_optim(wd):
    ours, _ = _run_ours(optim.adamw_torch(lr=0.01, betas=(0.8, 0.99), eps=1e-7, weight_decay=wd))
    theirs, _ = _run_torch(
        lambda p: torch.optim.AdamW(p, lr=0.01, betas=(0.8, 0.99), eps=1e-7, weight_decay=wd)
    )
    _assert_trajectories(ours, theirs)


def test_adam_matches_torch_optim():
    ours, _ = _run_ours(optim.adam(lr=0.01, weight_decay=0.05))
    theirs, _ = _run_torch(lambda p: torch.optim.Adam(p, lr=0.01, weight_decay=0.05))
    _assert_trajectories(ours, theirs)


@pytest.mark.parametrize(
    "kw",
    [
        dict(momentum=0.0),
        dict(momentum=0.9),
        dict(momentum=0.9, dampening=0.3, weight_decay=0.1),
        dict(momentum=0.9, nesterov=True),
    ],
    ids=["plain", "momentum", "dampening-wd", "nesterov"],
)
def test_sgd_matches_torch_optim(kw):
    ours, _ = _run_ours(optim.sgd(lr=0.01, **kw))
    theirs, _ = _run_torch(lambda p: torch.optim.SGD(p, lr=0.01, **kw))
    _assert_trajectories(ours, theirs)


# -- pytorch-transformers 1.0 --------------------------------------------------------------------

pt = pytest.importorskip("pytorch_transformers")

SCHEDULES_1_0 = {
    "constant": (lambda: schedules.constant(), lambda o: pt.ConstantLRSchedule(o)),
    "warmup_constant": (
        lambda: schedules.warmup_constant(7),
        lambda o: pt.WarmupConstantSchedule(o, 7),
    ),
    "warmup_linear": (
        lambda: schedules.warmup_linear(7, 40),
        lambda o: pt.WarmupLinearSchedule(o, 7, 40),
    ),
    "warmup_cosine": (
        lambda: schedules.warmup_cosine(7, 40, cycles=0.7),
        lambda o: pt.WarmupCosineSchedule(o, 7, 40, cycles=0.7),
    ),
    "hard_restarts": (
        lambda: schedules.warmup_cosine_with_hard_restarts(7, 40, cycles=2.0),
        lambda o: pt.WarmupCosineWithHardRestartsSchedule(o, 7, 40, cycles=2.0),
    ),
}


@pytest.mark.parametrize("name", list(SCHEDULES_1_0))
@pytest.mark.parametrize("correct_bias", [True, False])
def test_adamw_matches_pytorch_transformers(name, correct_bias):
    ours_sched, their_sched = SCHEDULES_1_0[name]
    opt = optim.adamw(lr=0.02, weight_decay=0.1, correct_bias=correct_bias, schedule=ours_sched())
    ours, our_lrs = _run_ours(opt)
    theirs, their_lrs = _run_torch(
        lambda p: pt.AdamW(p, lr=0.02, weight_decay=0.1, correct_bias=correct_bias), their_sched
    )
    assert our_lrs == pytest.approx(their_lrs, rel=1e-12, abs=1e-15)
    _assert_trajectories(ours, theirs)


def test_1_0_schedule_values_from_its_tests():
    """The expectations of 1.0's optimization_test (lr=10, read after each scheduler step)."""

    def values(s):
        return [round(10 * float(s(t)), 2) for t in range(1, 11)]

    assert values(schedules.warmup_constant(4)) == [2.5, 5.0, 7.5, 10.0] + [10.0] * 6
    assert values(schedules.warmup_linear(2, 10)) == [
        5.0,
        10.0,
        8.75,
        7.5,
        6.25,
        5.0,
        3.75,
        2.5,
        1.25,
        0.0,
    ]
    assert values(schedules.warmup_cosine(2, 10)) == [
        5.0,
        10.0,
        9.62,
        8.54,
        6.91,
        5.0,
        3.09,
        1.46,
        0.38,
        0.0,
    ]
    assert values(schedules.warmup_cosine_with_hard_restarts(2, 10, cycles=2)) == [
        5.0,
        10.0,
        8.54,
        5.0,
        1.46,
        10.0,
        8.54,
        5.0,
        1.46,
        0.0,
    ]


# -- pytorch-pretrained-bert 0.6.2 ---------------------------------------------------------------

ppb = pytest.importorskip("pytorch_pretrained_bert")
LEGACY = ["warmup_linear", "warmup_constant", "warmup_cosine", "none", None]


def _legacy_object(name):
    from pytorch_pretrained_bert import optimization as o

    return {
        "warmup_cosine_hard_restarts": o.WarmupCosineWithHardRestartsSchedule,
        "warmup_cosine_warmup_restarts": o.WarmupCosineWithWarmupRestartsSchedule,
    }[name]


@pytest.mark.parametrize("schedule", LEGACY)
@pytest.mark.parametrize("t_total", [30, -1], ids=["t_total30", "no_t_total"])
def test_bert_adam_matches_0_6_2(schedule, t_total):
    """t_total=30 < 50 steps also checks the behaviour past t_total."""
    kw = dict(
        lr=0.01,
        warmup=0.2,
        t_total=t_total,
        schedule=schedule,
        weight_decay=0.05,
        max_grad_norm=1.0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs, their_lrs = _run_torch(lambda p: ppb.BertAdam(p, **kw))
    ours, _ = _run_ours(optim.bert_adam(**kw))
    _assert_trajectories(ours, theirs)


@pytest.mark.parametrize("name", ["warmup_cosine_hard_restarts", "warmup_cosine_warmup_restarts"])
def test_bert_adam_with_restart_schedule_objects(name):
    their_schedule = _legacy_object(name)(warmup=0.1, t_total=40, cycles=2.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs, _ = _run_torch(lambda p: ppb.BertAdam(p, lr=0.01, schedule=their_schedule))
    ours, _ = _run_ours(
        optim.bert_adam(lr=0.01, schedule=schedules.legacy(name, 0.1, 40, cycles=2.0))
    )
    _assert_trajectories(ours, theirs)
    for t in range(60):
        assert float(schedules.legacy(name, 0.1, 40, cycles=2.0)(t)) == pytest.approx(
            their_schedule.get_lr(t, nowarn=True), abs=1e-12
        )


@pytest.mark.parametrize("schedule", LEGACY)
@pytest.mark.parametrize("vector_l2", [False, True])
def test_openai_adam_matches_0_6_2(schedule, vector_l2):
    kw = dict(
        lr=0.01,
        warmup=0.2,
        t_total=40,
        schedule=schedule,
        weight_decay=0.1,
        vector_l2=vector_l2,
        max_grad_norm=1.0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs, _ = _run_torch(lambda p: ppb.OpenAIAdam(p, **kw))
    ours, _ = _run_ours(optim.openai_adam(**kw))
    _assert_trajectories(ours, theirs)


# -- the engine ----------------------------------------------------------------------------------

RULES = {
    "adamw": lambda **kw: optim.adamw(lr=0.01, weight_decay=0.1, mask=optim.no_decay_mask, **kw),
    "adamw_torch": lambda **kw: optim.adamw_torch(lr=0.01, **kw),
    "adam": lambda **kw: optim.adam(lr=0.01, weight_decay=0.1, **kw),
    "sgd": lambda **kw: optim.sgd(lr=0.01, momentum=0.9, weight_decay=0.1, **kw),
    "bert_adam": lambda **kw: optim.bert_adam(lr=0.01, warmup=0.1, t_total=50, **kw),
    "openai_adam": lambda **kw: optim.openai_adam(
        lr=0.01, warmup=0.1, t_total=50, weight_decay=0.1, max_grad_norm=1.0, **kw
    ),
}


ADAM_RULES = [name for name in RULES if name != "sgd"]


def _foreach(name, **kw):
    """The rule on the foreach path (the Adam family's fused kernel off)."""
    return RULES[name](**kw) if name == "sgd" else RULES[name](fused=False, **kw)


@pytest.mark.parametrize("name", list(RULES))
def test_foreach_path_equals_per_leaf_reference_and_inplace(name):
    fast, _ = _run_ours(_foreach(name))
    slow, _ = _run_ours(RULES[name](reference=True))
    donated, _ = _run_ours(_foreach(name), inplace=True)
    fused, _ = _run_ours(_foreach(name), inplace=True, fused=True)
    fused_functional, _ = _run_ours(_foreach(name), fused=True)
    for a, b, c in zip(fast, slow, donated, strict=True):
        for x, y, z in zip(a, b, c, strict=True):
            assert torch.equal(x, y) and torch.equal(x, z)
    # the fused step skips the updates tree (p_new directly, not p + (p_new - p)): last-bit
    # differences only, and the same trajectory as the references within their tolerance
    _assert_trajectories(fused, fast)
    for a, b in zip(fused, fused_functional, strict=True):
        assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def test_no_decay_mask_is_the_bert_recipe():
    mask = optim.no_decay_mask(_params())
    assert mask == {
        "w": True,
        "layer": [{"bias": False, "LayerNorm": {"weight": False}}],
        "v": True,
    }


@pytest.mark.parametrize("name", ADAM_RULES)
def test_fused_kernel_path_follows_the_foreach_path(name):
    """torch's fused kernel (fused=True) in every form: the same trajectory as the foreach
    path up to float32 rounding (the kernel's lerp and folded constants round in another
    order: about 1e-6 relative after 50 steps), every form of it bit-identical, and the
    inputs of the functional forms left untouched."""
    exact, _ = _run_ours(_foreach(name))
    forms = [
        _run_ours(RULES[name](fused=True), inplace=inplace, fused=direct)[0]
        for inplace in (False, True)
        for direct in (False, True)
    ]
    for got in forms:
        for step, (a, b) in enumerate(zip(got, exact, strict=True)):
            for x, y in zip(a, b, strict=True):
                torch.testing.assert_close(x, y, rtol=2e-5, atol=2e-5,
                                           msg=lambda m, s=step: f"step {s}: {m}")  # fmt: skip
    direct_functional, direct_inplace = forms[1], forms[3]
    for a, b in zip(direct_functional, direct_inplace, strict=True):
        assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    # The functional forms copy what the kernel writes: params, grads and state survive.
    opt = RULES[name](fused=True)
    params = _params()
    grads = tree.map(lambda g: g * 1e3, _grads(0, params))  # large: per-tensor clipping runs
    state = opt.init(params)
    before = [x.clone() for x in tree.leaves((params, grads, state))]
    for fn in (opt.update, lambda g, s, p: optim.step(opt, g, s, p)):
        fn(grads, state, params)
        assert all(torch.equal(x, y) for x, y in zip(tree.leaves((params, grads, state)), before))


def test_fused_kernel_is_used_in_eager_and_skipped_under_transforms(monkeypatch):
    calls = []
    real = optim.kernels.run
    monkeypatch.setattr(optim.kernels, "run", lambda *a: calls.append(1) or real(*a))
    opt = optim.adamw_torch(lr=0.01)
    params = _params()
    state = opt.init(params)
    optim.step(opt, _grads(0, params), state, params, inplace=True)
    assert len(calls) == 1
    vmap(lambda p, g, s: optim.step(opt, g, s, p))(
        tree.stack([params, params]), tree.stack([_grads(0, params)] * 2), tree.stack([state] * 2)
    )
    loss = lambda p: tree.leaves(optim.step(opt, _grads(0, p), opt.init(p), p)[0])[0].sum()  # noqa: E731
    torch.func.grad(loss)(params)
    compiled = torch.compile(lambda g, s, p: optim.step(opt, g, s, p), fullgraph=True,
                             backend="aot_eager")  # fmt: skip
    p_c, s_c = params, state
    for t in range(2):  # the count and lr are tensors: the second step must not recompile
        with torch.compiler.set_stance("fail_on_recompile" if t else "default"):
            p_c, s_c = compiled(_grads(t, p_c), s_c, p_c)
    assert len(calls) == 1  # vmap, grad and torch.compile took the foreach path


@pytest.mark.parametrize("name", list(RULES))
def test_vmap_over_an_ensemble_of_states(name):
    opt = RULES[name]()
    members = [tree.map(lambda p, i=i: p + i, _params()) for i in range(3)]
    grads = [_grads(i, m) for i, m in enumerate(members)]
    states = [opt.init(m) for m in members]

    def step(params, grads, state):
        updates, state = opt.update(grads, state, params)
        return optim.apply_updates(params, updates), state

    batched, _ = vmap(step)(tree.stack(members), tree.stack(grads), tree.stack(states))
    for i in range(3):
        want, _ = step(members[i], grads[i], states[i])
        for x, y in zip(tree.leaves(tree.unstack(batched)[i]), tree.leaves(want), strict=True):
            torch.testing.assert_close(x, y, rtol=1e-6, atol=1e-7)


def test_state_saves_and_restores_exactly(tmp_path):
    opt = RULES["bert_adam"]()
    params = _params()
    state = opt.init(params)
    for t in range(3):
        updates, state = opt.update(_grads(t, params), state, params)
        params = optim.apply_updates(params, updates)
    ptfunc.io.save(tmp_path / "state.safetensors", state)
    restored = ptfunc.io.load(tmp_path / "state.safetensors", like=opt.init(params))
    assert type(restored) is type(state) and restored.count.dtype == torch.int64
    assert all(
        torch.equal(a, b) for a, b in zip(tree.leaves(restored), tree.leaves(state), strict=True)
    )
    with pytest.raises(ValueError, match="names do not match"):
        ptfunc.io.load(
            tmp_path / "state.safetensors", like=optim.sgd(lr=0.1, momentum=0.9).init(params)
        )


def test_differentiating_through_a_step():
    """The functional update is differentiable: d(loss after one SGD step)/d(lr-scaled grads)."""
    params = {"w": torch.tensor([1.0, 2.0])}

    def after_step(w):
        opt = optim.adamw_torch(lr=0.1, weight_decay=0.0)
        state = opt.init({"w": w})
        updates, _ = opt.update({"w": 2 * w}, state, {"w": w})
        return optim.apply_updates({"w": w}, updates)["w"].sum()

    g = torch.func.grad(after_step)(params["w"])
    assert torch.isfinite(g).all() and g.shape == (2,)


def test_bad_hyperparameters_and_trees():
    with pytest.raises(ValueError, match="lr must be"):
        optim.adamw(lr=-1.0)
    with pytest.raises(ValueError, match=r"b1 \(beta\) must lie in \[0, 1\)"):
        optim.adamw(betas=(1.0, 0.999))
    with pytest.raises(ValueError, match="eps must be > 0"):
        optim.adamw_torch(eps=0.0)
    with pytest.raises(ValueError, match="e must be > 0"):
        optim.bert_adam(lr=0.1, e=-1.0)
    with pytest.raises(ValueError, match="unknown schedule"):
        optim.bert_adam(lr=0.1, schedule="warmup_cubic")
    opt = optim.adamw(lr=0.1)
    params = _params()
    state = opt.init(params)
    with pytest.raises(ValueError, match="grads do not have the structure of the params"):
        opt.update({"w": torch.ones(5, 4)}, state, params)
    with pytest.raises(TypeError, match="expects its own state"):
        opt.update(_grads(0, params), optim.sgd(lr=0.1).init(params), params)


# -- building blocks -----------------------------------------------------------------------------


def test_chained_blocks_equal_torch_adamw():
    """scale_by_adam + add_decayed_weights + scale(-lr) is AdamW (torch.optim's math)."""
    lr, wd = 0.01, 0.1
    opt = optim.chain(
        optim.scale_by_adam(0.9, 0.999, 1e-8), optim.add_decayed_weights(wd), optim.scale(-lr)
    )
    ours, _ = _run_ours(opt)
    theirs, _ = _run_torch(lambda p: torch.optim.AdamW(p, lr=lr, weight_decay=wd))
    _assert_trajectories(ours, theirs)


def test_clip_by_global_norm_matches_torch():
    grads = _grads(0, _params())
    clipped, _ = optim.clip_by_global_norm(1.5).update(grads, ())
    holders = _with_grads(tree.leaves(grads))
    torch.nn.utils.clip_grad_norm_(holders, 1.5)
    for a, h in zip(tree.leaves(clipped), holders, strict=True):
        torch.testing.assert_close(a, h.grad, rtol=1e-6, atol=1e-7)


def _with_grads(grads):
    """Parameters holding the given grads (torch's clipping works on ``.grad``)."""
    holders = []
    for g in grads:
        p = torch.zeros_like(g, requires_grad=True)
        p.grad = g.clone()
        holders.append(p)
    return holders


def test_clip_per_leaf_matches_torch_per_tensor():
    grads = _grads(1, _params())
    clipped, _ = optim.clip_by_norm_per_leaf(0.7).update(grads, ())
    for a, h in zip(tree.leaves(clipped), _with_grads(tree.leaves(grads)), strict=True):
        torch.nn.utils.clip_grad_norm_(h, 0.7)
        torch.testing.assert_close(a, h.grad, rtol=1e-6, atol=1e-7)


def test_masked_decay_and_schedule_lr_readout():
    params = _params()
    opt = optim.chain(
        optim.masked(optim.add_decayed_weights(1.0), optim.no_decay_mask),
        optim.scale_by_schedule(lambda count: -0.5 * schedules.warmup_linear(2, 10)(count)),
    )
    state = opt.init(params)
    zeros = tree.map(torch.zeros_like, params)
    for _ in range(2):
        updates, state = opt.update(zeros, state, params)
    assert float(optim.current_lr(state)) == pytest.approx(-0.25)  # step 1 of warmup 2
    assert torch.equal(updates["w"], -0.25 * params["w"])  # decayed
    assert (
        not updates["layer"][0]["bias"].any()
        and not updates["layer"][0]["LayerNorm"]["weight"].any()
    )


def test_identity_and_chain_state_checks():
    params = _params()
    grads = _grads(0, params)
    same, state = optim.identity().update(grads, optim.identity().init(params))
    assert same is grads and state == ()
    opt = optim.chain(optim.identity(), optim.scale(-1.0))
    updates, state = opt.update(grads, opt.init(params), params)
    assert torch.equal(updates["w"], -grads["w"])
    with pytest.raises(TypeError, match="chain of 2 transformations"):
        opt.update(grads, (), params)


class _Clipped:
    """A torch optimizer whose step clips the grads by global norm first (the recipe)."""

    def __init__(self, opt: torch.optim.Optimizer, max_norm: float) -> None:
        self.opt, self.max_norm = opt, max_norm
        self.param_groups = opt.param_groups

    def step(self) -> None:
        torch.nn.utils.clip_grad_norm_(self.param_groups[0]["params"], self.max_norm)
        self.opt.step()


@pytest.mark.parametrize("inplace", [False, True])
def test_chain_of_clipping_and_a_rule_steps_in_one_kernel(inplace, monkeypatch):
    """step(chain(clip_by_global_norm, adamw_torch)) folds the clipping coefficient into
    the fused kernel (one kernel call, the grads' norms the only extra pass) and follows
    torch's clip_grad_norm_ + AdamW(fused=True); the functional form leaves grads alone."""
    calls = []
    real = optim.kernels.run
    monkeypatch.setattr(optim.kernels, "run", lambda *a: calls.append(a[-1]) or real(*a))
    theirs, _ = _run_torch(
        lambda p: _Clipped(torch.optim.AdamW(p, lr=0.01, weight_decay=0.1, fused=True), 1.0)
    )
    opt = optim.chain(optim.clip_by_global_norm(1.0), optim.adamw_torch(lr=0.01, weight_decay=0.1))
    ours, _ = _run_ours(opt, inplace=inplace, fused=True)
    _assert_trajectories(ours, theirs)
    assert len(calls) == STEPS
    assert all(f is not None for f in calls) == inplace  # functional: the grads scaled first
    params = _params()
    grads = _grads(0, params)
    before = [g.clone() for g in tree.leaves(grads)]
    optim.step(opt, grads, opt.init(params), params)
    assert all(torch.equal(a, b) for a, b in zip(tree.leaves(grads), before, strict=True))


def test_chain_without_a_direct_step_still_updates():
    opt = optim.chain(optim.clip_by_global_norm(1.0), optim.scale(-0.1))
    assert opt.fused is None
    params = _params()
    new, _ = optim.step(opt, _grads(0, params), opt.init(params), params)
    assert tree.structure(new) == tree.structure(params)
