"""A full fine-tuning loop: BERT sequence classification with bert_adam and warmup.

Checks: the loss goes down on a small synthetic task; saving params and optimizer
state mid-run and restoring them continues bit-identically; a compiled step
(``torch.compile`` around grad + update) matches the eager step.
"""

from __future__ import annotations

import torch
from torch.func import grad_and_value

import ptfunc
from ptfunc import optim, tree
from ptfunc.archs import bert

CONFIG = bert.BertConfig(
    vocab_size=30,
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=64,
    max_position_embeddings=16,
    num_labels=2,
)
MODEL = bert.BertForSequenceClassification(CONFIG)
STEPS = 60


def _batch(step: int, size: int = 16):
    """Label 1 when token 7 occurs in the sequence."""
    g = torch.Generator().manual_seed(step)
    ids = torch.randint(1, 30, (size, 10), generator=g)
    ids[: size // 2, 3] = 7
    ids[size // 2 :][ids[size // 2 :] == 7] = 8
    labels = (ids == 7).any(dim=1).long()
    return ids, labels


def _make_opt():
    return optim.bert_adam(
        lr=3e-3, warmup=0.1, t_total=STEPS, weight_decay=0.01, mask=optim.no_decay_mask
    )


def _step(opt, params, state, step):
    ids, labels = _batch(step)
    key = ptfunc.random.fold_in(ptfunc.random.key(0), step)
    return _train_step(opt, params, state, ids, labels, key)


def _train_step(opt, params, state, ids, labels, key):
    def loss(p):
        return MODEL.apply(p, ids, labels=labels, train=True, key=key).loss

    grads, value = grad_and_value(loss)(params)
    updates, state = opt.update(grads, state, params)
    return optim.apply_updates(params, updates), state, value


def test_loss_goes_down_and_restore_continues_bit_identically(tmp_path):
    opt = _make_opt()
    params = MODEL.init(ptfunc.random.key(1))
    state = opt.init(params)
    losses = []
    for step in range(STEPS // 2):
        params, state, value = _step(opt, params, state, step)
        losses.append(float(value))
    ptfunc.io.save(tmp_path / "params.safetensors", params)
    ptfunc.io.save(tmp_path / "opt.safetensors", state)
    for step in range(STEPS // 2, STEPS):
        params, state, value = _step(opt, params, state, step)
        losses.append(float(value))
    assert sum(losses[-10:]) / 10 < 0.5 * sum(losses[:10]) / 10, losses

    restored = ptfunc.io.load(tmp_path / "params.safetensors")
    restored_state = ptfunc.io.load(tmp_path / "opt.safetensors", like=opt.init(restored))
    for step in range(STEPS // 2, STEPS):
        restored, restored_state, _ = _step(opt, restored, restored_state, step)
    for a, b in zip(tree.leaves(restored), tree.leaves(params), strict=True):
        assert torch.equal(a, b)
    assert int(restored_state.count) == STEPS


def test_compiled_train_step_matches_eager():
    opt = optim.adamw(
        lr=1e-3,
        weight_decay=0.01,
        mask=optim.no_decay_mask,
        schedule=optim.schedules.warmup_linear(2, 10),
    )
    params = MODEL.init(ptfunc.random.key(2))
    state = opt.init(params)
    compiled = torch.compile(lambda *args: _train_step(opt, *args), backend="aot_eager")
    p_c, s_c = params, state
    for step in range(3):
        ids, labels = _batch(step)
        key = ptfunc.random.fold_in(ptfunc.random.key(0), step)
        # the step count and learning rate are tensors: later steps must not recompile
        with torch.compiler.set_stance("fail_on_recompile" if step else "default"):
            p_c, s_c, _ = compiled(p_c, s_c, ids, labels, key)
        params, state, _ = _step(opt, params, state, step)
    for a, b in zip(tree.leaves(p_c), tree.leaves(params), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
