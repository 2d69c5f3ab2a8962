"""resize_token_embeddings and prune_heads as pure param transforms.

References: today's ``transformers`` (``resize_token_embeddings``, ``prune_heads``)
and pytorch-transformers 1.0 ``prune_heads``; outputs within 1e-5 max-abs.
"""

from __future__ import annotations

import warnings

import pytest
import torch

import ptfunc
from ptfunc import io, tree
from ptfunc.archs import bert

pt = pytest.importorskip("pytorch_transformers")

CONFIG = dict(
    vocab_size=60,
    hidden_size=16,
    num_hidden_layers=3,
    num_attention_heads=4,
    intermediate_size=24,
    max_position_embeddings=32,
)
IDS = torch.tensor([[2, 7, 9, 11, 3], [5, 6, 1, 4, 8]])


def _seed(name):
    torch.manual_seed(0)
    config = pt.BertConfig(
        CONFIG["vocab_size"], **{k: v for k, v in CONFIG.items() if k != "vocab_size"}
    )
    return getattr(pt, name)(config).eval()


def _ours(name, reference):
    model = getattr(bert, name)(bert.BertConfig(**CONFIG))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model, io.from_torch_state_dict(model, reference.state_dict())


def test_prune_heads_matches_seed():
    reference = _seed("BertModel")
    model, params = _ours("BertModel", reference)
    heads = {0: [1, 2], 2: [0]}
    new_model, pruned = model.prune_heads(params, heads)
    reference.prune_heads(heads)
    with torch.no_grad():
        ref = reference(IDS)[0]
    out = new_model.apply(pruned, IDS).last_hidden_state
    assert (out - ref).abs().max() <= 1e-5
    assert pruned["encoder"]["layer"][0]["attention"]["self"]["query"]["weight"].shape == (8, 16)
    assert new_model.config.pruned_heads == {0: (1, 2), 2: (0,)}
    # the input params are untouched
    assert params["encoder"]["layer"][0]["attention"]["self"]["query"]["weight"].shape == (16, 16)


def test_prune_heads_indices_refer_to_the_unpruned_model():
    """Pruning in two steps equals pruning at once (today's transformers semantics)."""
    model = bert.BertModel(bert.BertConfig(**CONFIG))
    params = model.init(ptfunc.random.key(0))
    m1, p1 = model.prune_heads(params, {1: [0]})
    m2, p2 = m1.prune_heads(p1, {1: [0, 3]})
    m3, p3 = model.prune_heads(params, {1: [0, 3]})
    assert m2.config.pruned_heads == m3.config.pruned_heads == {1: (0, 3)}
    torch.testing.assert_close(m2.apply(p2, IDS)[0], m3.apply(p3, IDS)[0], rtol=0, atol=0)


def test_pruned_model_saves_and_reloads(tmp_path):
    model = bert.BertForSequenceClassification(bert.BertConfig(**CONFIG))
    model, params = model.prune_heads(model.init(ptfunc.random.key(0)), {0: [0, 1, 2]})
    io.save_pretrained(tmp_path, model, params)
    model2, params2 = io.from_pretrained(tmp_path, bert.BertForSequenceClassification)
    assert model2.config.pruned_heads == {0: (0, 1, 2)}
    torch.testing.assert_close(
        model2.apply(params2, IDS).logits, model.apply(params, IDS).logits, rtol=0, atol=0
    )


transformers = pytest.importorskip("transformers")


@pytest.mark.parametrize("new_size", [70, 50])
def test_resize_token_embeddings_like_transformers(new_size):
    model = bert.BertForMaskedLM(bert.BertConfig(**CONFIG))
    params = model.init(ptfunc.random.key(0))
    new_model, resized = model.resize_token_embeddings(params, new_size, key=ptfunc.random.key(1))
    assert new_model.config.vocab_size == new_size
    weight = resized["bert"]["embeddings"]["word_embeddings"]["weight"]
    old = params["bert"]["embeddings"]["word_embeddings"]["weight"]
    keep = min(new_size, 60)
    assert weight.shape == (new_size, 16) and torch.equal(weight[:keep], old[:keep])
    assert resized["cls"]["predictions"]["bias"].shape == (new_size,)
    tree.check_no_alias(resized)

    reference = transformers.BertForMaskedLM(transformers.BertConfig(**CONFIG)).eval()
    reference.load_state_dict(io.to_torch_state_dict(model, params), strict=False)
    reference.resize_token_embeddings(new_size)
    # copy our fresh rows in, then the two models must agree everywhere
    reference.load_state_dict(io.to_torch_state_dict(new_model, resized), strict=False)
    ids = IDS.clamp(max=keep - 1)
    with torch.no_grad():
        ref = reference(ids).logits
    assert ref.shape[-1] == new_size
    assert (new_model.apply(resized, ids).logits - ref).abs().max() <= 1e-5
