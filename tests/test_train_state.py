"""Saving and resuming a run: a run stopped, saved, loaded and continued is bit-identical to
one that never stopped (the oracle is the uninterrupted run itself), for a BERT with
dropout (keyed) and AdamW with a warmup schedule."""

from __future__ import annotations

import pytest
import torch

import ptfunc
from ptfunc import optim, random, tree
from ptfunc.archs import bert
from ptfunc.errors import CheckpointError
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


# -- resuming something else is refused, naming the differences (issue 17, point 14) ---------


def _saved(tmp_path, params, opt_state, **kw):
    path = tmp_path / "s.safetensors"
    save_train_state(path, params, opt_state, step=5, key=random.key(0), **kw)
    return path


def test_resuming_another_model_config_names_each_param_and_both_shapes(tmp_path):
    params, opt, _ = _setup()
    path = _saved(tmp_path, params, opt.init(params))
    wider = bert.BertForSequenceClassification(
        bert.BertConfig(vocab_size=60, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, num_labels=3)
    ).init(random.key(0))  # fmt: skip
    with pytest.raises(CheckpointError) as info:
        load_train_state(path, wider, opt.init(wider))
    message = str(info.value)
    assert "another model, optimizer or run" in message
    for line in (
        "param bert.embeddings.word_embeddings.weight: checkpoint (60, 16) vs model (60, 32)",
        "param bert.encoder.layer.0.attention.self.key.weight: checkpoint (16, 16) vs model "
        "(32, 32)",
    ):
        assert line in message
    assert "... and" in message  # the list is cut short, not hundreds of lines
    assert "mu." not in message  # the optimizer's slots mirror the params: not repeated


def test_resuming_with_another_optimizer_says_which(tmp_path):
    params, opt, _ = _setup()
    path = _saved(tmp_path, params, opt.init(params))
    with pytest.raises(CheckpointError, match="checkpoint has AdamState, resuming with SGDState"):
        load_train_state(path, params, optim.sgd(0.1).init(params))
    clipped = optim.chain(optim.clip_by_global_norm(1.0), optim.adamw_torch(1e-3))
    with pytest.raises(CheckpointError, match=r"has AdamState, resuming with \(1: AdamState\)"):
        load_train_state(path, params, clipped.init(params))


def test_resuming_another_run_names_the_keys_that_differ(tmp_path):
    params, opt, _ = _setup()
    run = {"seed": 0, "lr": 1e-3, "model": CONFIG.to_dict()}
    path = _saved(tmp_path, params, opt.init(params), run=run)
    assert load_train_state(path, params, opt.init(params), run=dict(run)).step == 5
    assert load_train_state(path, params, opt.init(params)).step == 5  # no run given: no check
    other = {**run, "seed": 1, "model": {**CONFIG.to_dict(), "hidden_dropout_prob": 0.3}}
    with pytest.raises(CheckpointError) as info:
        load_train_state(path, params, opt.init(params), run=other)
    assert "run seed: checkpoint 0 vs this run 1" in str(info.value)
    assert "run model:" in str(info.value) and "run lr" not in str(info.value)


def test_resuming_in_another_dtype_is_refused(tmp_path):
    params, opt, _ = _setup()
    half = tree.map(lambda x: x.to(torch.bfloat16), params)
    path = _saved(tmp_path, half, opt.init(half))
    with pytest.raises(CheckpointError) as info:
        load_train_state(path, params, opt.init(params))
    expected = (
        "param bert.embeddings.LayerNorm.bias and 40 more: checkpoint bfloat16 vs model float32"
    )
    assert expected in str(info.value)


def test_checkpoints_without_the_fingerprint_still_load(tmp_path):
    """Files written before the optimizer kinds were recorded: names and shapes still checked."""
    params, opt, _ = _setup()
    opt_state = opt.init(params)
    flat = {f"params.{k}": v for k, v in tree.to_flat_dict(params).items()}
    flat.update({f"opt_state.{k}": v for k, v in tree.to_flat_dict(opt_state).items()})
    flat["key"] = random.key(0)
    ptfunc.io.save(tmp_path / "old.safetensors", flat, metadata={"step": "2", "extra": "{}"})
    state = load_train_state(tmp_path / "old.safetensors", params, opt_state)
    assert state.step == 2 and all(
        torch.equal(a, b) for a, b in zip(tree.leaves(state.params), tree.leaves(params))
    )
