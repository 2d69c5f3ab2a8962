"""ptfunc.research.per_example against a Python loop of ``torch.func.grad`` on one example
(given as a batch of one, ``ids[i : i + 1]``), for a BERT classifier and a GPT-2 LM.

Tolerance 1e-6 absolute, 1e-5 relative (float32).
"""

from __future__ import annotations

import math

import pytest
import torch
from torch.func import grad

import ptfunc
from ptfunc import research, tree
from ptfunc.archs import bert, gpt2

B, S, V = 4, 6, 40
GEN = torch.Generator().manual_seed(0)
IDS = torch.randint(1, V, (B, S), generator=GEN)
MASK = torch.ones(B, S, dtype=torch.long)
MASK[1, 4:] = 0

BERT = bert.BertForSequenceClassification(
    bert.BertConfig(
        vocab_size=V,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=24,
        max_position_embeddings=16,
        num_labels=3,
    )
)
GPT2 = gpt2.GPT2LMHeadModel(
    gpt2.GPT2Config(vocab_size=V, n_positions=16, n_ctx=16, n_embd=16, n_layer=1, n_head=2)
)


def _bert_loss(params, batch):
    ids, mask, labels = batch
    return BERT.apply(params, ids, attention_mask=mask, labels=labels).loss


def _gpt2_loss(params, batch):
    return GPT2.apply(params, batch["ids"], labels=batch["ids"]).loss


CASES = {
    "bert_cls": (BERT, _bert_loss, (IDS, MASK, torch.tensor([0, 2, 1, 2]))),
    "gpt2_lm": (GPT2, _gpt2_loss, {"ids": IDS}),
}


def _loop(loss_fn, params, batch):
    """Reference: grad of the loss of each example, given as a batch of one."""
    return [grad(loss_fn)(params, tree.map(lambda x, i=i: x[i : i + 1], batch)) for i in range(B)]


def _assert_rows(per_example, looped):
    flat = tree.to_flat_dict(per_example)
    for i, one in enumerate(looped):
        for n, g in tree.to_flat_dict(one).items():
            torch.testing.assert_close(
                flat[n][i], g, atol=1e-6, rtol=1e-5, msg=lambda m, n=n: f"{n}: {m}"
            )


@pytest.mark.parametrize("case", list(CASES))
def test_per_example_grads_and_norms_equal_loop(case):
    model, loss_fn, batch = CASES[case]
    params = model.init(ptfunc.random.key(1))
    looped = _loop(loss_fn, params, batch)
    grads, losses = research.per_example_grads(loss_fn, params, batch, return_loss=True)
    _assert_rows(grads, looped)
    for i in range(B):
        one = loss_fn(params, tree.map(lambda x, i=i: x[i : i + 1], batch))
        torch.testing.assert_close(losses[i], one, atol=1e-6, rtol=1e-5)

    norms = research.per_example_grad_norms(loss_fn, params, batch)
    want = [
        math.sqrt(sum(float(g.double().pow(2).sum()) for g in tree.leaves(one))) for one in looped
    ]
    torch.testing.assert_close(
        norms.double(), torch.tensor(want, dtype=torch.float64), rtol=1e-5, atol=1e-7
    )
    torch.testing.assert_close(research.global_norms(grads), norms, rtol=1e-5, atol=1e-7)

    # chunked vmap gives the same rows
    chunked = research.per_example_grads(loss_fn, params, batch, chunk_size=3)
    _assert_rows(chunked, looped)


def test_shared_leaves_and_squeezed_examples_with_dropout_keys():
    params = BERT.init(ptfunc.random.key(2))
    labels = torch.tensor([0, 1, 2, 1])
    head_mask = torch.tensor([[1.0, 0.0]])  # (layers, heads), shared by all examples

    # in_dims as a pytree prefix: the head mask is shared (None), not given a batch axis
    def loss_shared(p, batch):
        return BERT.apply(p, batch["ids"], labels=batch["labels"], head_mask=batch["hm"]).loss

    batch = {"ids": IDS, "labels": labels, "hm": head_mask}
    got = research.per_example_grads(
        loss_shared, params, batch, in_dims={"ids": 0, "labels": 0, "hm": None}
    )
    looped = [
        grad(loss_shared)(
            params, {"ids": IDS[i : i + 1], "labels": labels[i : i + 1], "hm": head_mask}
        )
        for i in range(B)
    ]
    _assert_rows(got, looped)

    # keep_batch_dim=False: the example arrives squeezed, with its own (2,) dropout key
    keys = ptfunc.random.split(ptfunc.random.key(3), B)

    def loss_train(p, example):
        ids, y, key = example
        return BERT.apply(p, ids[None], labels=y[None], train=True, key=key).loss

    got = research.per_example_grads(loss_train, params, (IDS, labels, keys), keep_batch_dim=False)
    looped = [grad(loss_train)(params, (IDS[i], labels[i], keys[i])) for i in range(B)]
    _assert_rows(got, looped)
