"""ptfunc.research.ensembles: vmap over stacked members against a Python loop of single models.

Reference: the same model, loss and optimizer applied to each member in a loop.
Tolerance 1e-6 absolute (float32; vmap reorders no reductions, but batched matmuls may).
"""

from __future__ import annotations

import pytest
import torch
from torch.func import grad, grad_and_value, vmap

import ptfunc
from ptfunc import optim, research, tree
from ptfunc.archs import bert

N, B, S, V = 3, 2, 5, 40
CONFIG = bert.BertConfig(
    vocab_size=V,
    hidden_size=16,
    num_hidden_layers=1,
    num_attention_heads=2,
    intermediate_size=24,
    max_position_embeddings=16,
    num_labels=2,
)
MODEL = bert.BertForSequenceClassification(CONFIG)
IDS = torch.randint(1, V, (B, S), generator=torch.Generator().manual_seed(0))
LABELS = torch.tensor([1, 0])


def _loss(params, ids, labels, key):
    return MODEL.apply(params, ids, labels=labels, train=True, key=key).loss


def _close(a, b):
    fa, fb = tree.to_flat_dict(a), tree.to_flat_dict(b)
    assert fa.keys() == fb.keys()
    for n, x in fa.items():
        torch.testing.assert_close(x, fb[n], atol=1e-6, rtol=1e-5, msg=lambda m, n=n: f"{n}: {m}")


def test_init_ensemble_stacks_member_inits_exactly():
    keys = ptfunc.random.split(ptfunc.random.key(7), N)
    stacked = research.init_ensemble(MODEL, keys)
    assert research.ensemble_size(stacked) == N
    for i, k in enumerate(keys):
        want = MODEL.init(k)
        got = research.member(stacked, i)
        assert all(torch.equal(x, y) for x, y in zip(tree.leaves(got), tree.leaves(want)))
    by_count = research.init_ensemble(MODEL.init, N, key=ptfunc.random.key(7))
    assert all(torch.equal(x, y) for x, y in zip(tree.leaves(by_count), tree.leaves(stacked)))
    unstacked = research.unstack(stacked)
    assert len(unstacked) == N
    assert torch.equal(unstacked[1]["classifier"]["weight"], stacked["classifier"]["weight"][1])


def test_init_ensemble_errors():
    with pytest.raises(ValueError, match="key="):
        research.init_ensemble(MODEL, 3)
    with pytest.raises(TypeError, match=r"int64 tensor \(N, 2\)"):
        research.init_ensemble(MODEL, torch.zeros(3, 2))
    with pytest.raises(TypeError, match="Model"):
        research.init_ensemble(42, 3, key=ptfunc.random.key(0))


def test_apply_and_grads_equal_loop():
    stacked = research.init_ensemble(MODEL, N, key=ptfunc.random.key(1))
    members = research.unstack(stacked)
    logits = research.ensemble_apply(lambda p, x: MODEL.apply(p, x).logits, stacked, IDS)
    assert logits.shape == (N, B, 2)
    for i, p in enumerate(members):
        torch.testing.assert_close(logits[i], MODEL.apply(p, IDS).logits, atol=1e-6, rtol=1e-5)
    # a Model is a valid apply_fn, options are shared
    out = research.ensemble_apply(MODEL, stacked, IDS, labels=LABELS)
    assert out.loss.shape == (N,)

    # per-member dropout keys (in_dims 0 for the key), grads by vmap(grad)
    keys = ptfunc.random.split(ptfunc.random.key(2), N)
    grads = vmap(grad(_loss), in_dims=(0, None, None, 0))(stacked, IDS, LABELS, keys)
    for i, p in enumerate(members):
        _close(research.member(grads, i), grad(_loss)(p, IDS, LABELS, keys[i]))
    # each member sees its own batch when in_dims=0
    per_member_ids = torch.stack([IDS, IDS.flip(0), IDS + 1])
    losses = research.ensemble_apply(
        lambda p, x: MODEL.apply(p, x, labels=LABELS).loss, stacked, per_member_ids, in_dims=0
    )
    for i, p in enumerate(members):
        want = MODEL.apply(p, per_member_ids[i], labels=LABELS).loss
        torch.testing.assert_close(losses[i], want, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("rule", ["adamw_torch", "sgd_momentum"])
def test_one_optimizer_step_equals_loop(rule):
    opt = (
        optim.adamw_torch(1e-2, weight_decay=0.01)
        if rule == "adamw_torch"
        else optim.sgd(0.1, momentum=0.9)
    )
    stacked = research.init_ensemble(MODEL, N, key=ptfunc.random.key(3))
    state = research.init_stacked(opt, stacked)
    keys = ptfunc.random.split(ptfunc.random.key(4), 2 * N).reshape(2, N, 2)
    members = research.unstack(stacked)
    member_states = [opt.init(p) for p in members]
    # stacked state == stack of member states
    for x, y in zip(tree.leaves(state), tree.leaves(tree.stack(member_states)), strict=True):
        assert torch.equal(x, y)

    for t in range(2):  # two steps, so Adam's moments and momentum buffers are used
        stacked, state, losses = research.ensemble_step(
            _loss, opt, stacked, state, IDS, LABELS, keys[t], in_dims=(None, None, 0)
        )
        for i in range(N):
            g, loss = grad_and_value(_loss)(members[i], IDS, LABELS, keys[t, i])
            members[i], member_states[i] = optim.step(opt, g, member_states[i], members[i])
            torch.testing.assert_close(losses[i], loss, atol=1e-6, rtol=1e-5)
    for i in range(N):
        _close(research.member(stacked, i), members[i])
        _close(research.member(state, i), member_states[i])
