"""Saving and resuming a run: a run stopped, saved, loaded and continued is bit-identical to
one that never stopped (the oracle is the uninterrupted run itself), for a BERT with
dropout (keyed) and AdamW with a warmup schedule."""

from __future__ import annotations

import pytest
import torch

import ptfunc
from ptfunc import optim, random, tree
from ptfunc.archs import bert
from ptfunc.train_state import load_train_state, save_train_state

CONFIG = bert.BertConfig(
    vocab_size=60, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
    intermediate_size=32, num_labels=3,
)  # fmt: skip


def _setup():
    model = bert.BertForSequenceClassification(CONFIG)
    params = model.init(random.key(0))
    opt = optim.adamw_torch(1e-3, schedule=optim.schedules.warmup_linear(2, 10))
    ids = torch.randint(0, 60, (4, 6), generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([0, 1, 2, 1])

    def loss_fn(p, key):
        return model.apply(p, ids, labels=labels, train=True, key=key).loss

    def train_step(params, opt_state, key):
        key, sub = random.split(key)
        grads = torch.func.grad(loss_fn)(params, sub)
        updates, opt_state = opt.update(grads, opt_state, params)
        return optim.apply_updates(params, updates), opt_state, key

    return params, opt, train_step


def test_resume_is_bit_exact(tmp_path):
    params, opt, train_step = _setup()
    key = random.key(1)
    straight = (params, opt.init(params), key)
    for _ in range(6):
        straight = train_step(*straight)

    run = (params, opt.init(params), key)
    for _ in range(3):
        run = train_step(*run)
    save_train_state(tmp_path / "s.safetensors", run[0], run[1], step=3, key=run[2],
                     extra={"epoch": 0})  # fmt: skip
    del run
    fresh_params, _, _ = _setup()
    state = load_train_state(tmp_path / "s.safetensors", fresh_params, opt.init(fresh_params))
    assert state.step == 3 and state.extra == {"epoch": 0}
    run = (state.params, state.opt_state, state.key)
    for _ in range(3):
        run = train_step(*run)
    for a, b in zip(tree.leaves(run[:2]), tree.leaves(straight[:2])):
        assert torch.equal(a, b)
    assert torch.equal(run[2], straight[2])


def test_loading_into_another_model_is_refused(tmp_path):
    params, opt, _ = _setup()
    save_train_state(
        tmp_path / "s.safetensors", params, opt.init(params), step=0, key=random.key(0)
    )
    other = bert.BertModel(CONFIG).init(random.key(0))
    with pytest.raises(ValueError):
        load_train_state(tmp_path / "s.safetensors", other, opt.init(other))
    ptfunc.io.save(tmp_path / "plain.safetensors", params)
    with pytest.raises(ValueError, match="not a training state"):
        load_train_state(tmp_path / "plain.safetensors", params, opt.init(params))
