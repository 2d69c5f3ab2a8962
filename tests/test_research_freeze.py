"""ptfunc.research.freeze: masks, partition/combine, and fine-tuning a subset of a BERT.

References: ``torch.func.grad`` over the full params (the trainable part's gradient must
equal it restricted, within 1e-7); the original tensors (frozen leaves must stay
bit-identical); the same optimizer run on the trainable subtree (for ``freeze``).
"""

from __future__ import annotations

import pytest
import torch
from torch.func import grad

import ptfunc
from ptfunc import optim, research, tree
from ptfunc.archs import bert

CONFIG = bert.BertConfig(
    vocab_size=30,
    hidden_size=8,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=16,
    max_position_embeddings=8,
    num_labels=2,
)
MODEL = bert.BertForSequenceClassification(CONFIG)
IDS = torch.randint(1, 30, (3, 5), generator=torch.Generator().manual_seed(0))
LABELS = torch.tensor([0, 1, 1])
PATTERNS = ["classifier", "bert.pooler", "bert.encoder.layer.1.output.*"]


def _loss(params, ids, labels):
    return MODEL.apply(params, ids, labels=labels).loss


def _names(mask):
    return sorted(n for n, m in tree.to_flat_dict(mask).items() if m)


def test_trainable_mask_patterns_and_predicates():
    params = MODEL.init(ptfunc.random.key(0))
    mask = research.trainable_mask(params, PATTERNS)
    assert _names(mask) == [
        "bert.encoder.layer.1.output.LayerNorm.bias",
        "bert.encoder.layer.1.output.LayerNorm.weight",
        "bert.encoder.layer.1.output.dense.bias",
        "bert.encoder.layer.1.output.dense.weight",
        "bert.pooler.dense.bias",
        "bert.pooler.dense.weight",
        "classifier.bias",
        "classifier.weight",
    ]
    biases = research.trainable_mask(params, "*.bias")
    assert all(n.endswith(".bias") for n in _names(biases)) and len(_names(biases)) > 5
    by_fn = research.trainable_mask(params, lambda name, x: x.dim() == 2)
    assert _names(by_fn) == sorted(n for n, x in tree.to_flat_dict(params).items() if x.dim() == 2)
    with pytest.raises(ValueError, match="select no parameter"):
        research.trainable_mask(params, "clasifier")
    with pytest.raises(TypeError, match="predicate"):
        research.trainable_mask(params, [1, 2])


def test_partition_combine_roundtrip_and_restricted_grads():
    params = MODEL.init(ptfunc.random.key(1))
    mask = research.trainable_mask(params, PATTERNS)
    trainable, frozen = research.partition(params, mask)
    assert sorted(tree.to_flat_dict(trainable)) == _names(mask)
    assert len(tree.leaves(trainable)) + len(tree.leaves(frozen)) == len(tree.leaves(params))
    back = research.combine(trainable, frozen)
    flat, flat_back = tree.to_flat_dict(params), tree.to_flat_dict(back)
    assert list(flat) == list(flat_back) and all(flat[n] is flat_back[n] for n in flat)

    g_sub = grad(research.with_frozen(_loss, frozen))(trainable, IDS, LABELS)
    g_full = tree.to_flat_dict(grad(_loss)(params, IDS, LABELS))
    got = tree.to_flat_dict(g_sub)
    assert sorted(got) == _names(mask)
    for n, g in got.items():
        torch.testing.assert_close(g, g_full[n], atol=1e-7, rtol=1e-6)

    with pytest.raises(ValueError, match="both halves"):
        research.combine(params, params)


def test_fine_tuning_a_subset_leaves_frozen_leaves_bit_identical():
    params = MODEL.init(ptfunc.random.key(2))
    original = tree.map(torch.clone, params)
    mask = research.trainable_mask(params, PATTERNS)
    opt = optim.adamw_torch(1e-2, weight_decay=0.01)

    # route 1: partition, grad and optimizer over the trainable part only
    trainable, frozen = research.partition(params, mask)
    state = opt.init(trainable)
    assert len(tree.leaves(state.mu)) == len(_names(mask))
    loss_of_trainable = research.with_frozen(_loss, frozen)
    for _ in range(3):
        g = grad(loss_of_trainable)(trainable, IDS, LABELS)
        trainable, state = optim.step(opt, g, state, trainable)
    tuned = research.combine(trainable, frozen)

    # route 2: full gradients, an optimizer that freezes the unmasked leaves
    frozen_opt = research.freeze(opt, mask)
    p2, s2 = params, frozen_opt.init(params)
    for _ in range(3):
        p2, s2 = optim.step(frozen_opt, grad(_loss)(p2, IDS, LABELS), s2, p2)

    before, after, after2 = (tree.to_flat_dict(t) for t in (original, tuned, p2))
    trained = set(_names(mask))
    for n, x in before.items():
        if n in trained:
            assert not torch.equal(after[n], x), n
            torch.testing.assert_close(after2[n], after[n], atol=1e-7, rtol=1e-6)
        else:
            assert torch.equal(after[n], x) and torch.equal(after2[n], x), n
