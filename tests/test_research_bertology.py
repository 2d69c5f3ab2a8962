"""ptfunc.research.bertology against independent references.

- head-mask gradients: pytorch-transformers 1.0 (the seed) ``head_mask.grad`` after
  ``loss.backward()`` on the same weights (atol 1e-6), and central finite differences
  in float64 (atol 1e-6);
- attention entropy: a Python loop over the attention probabilities (math.log);
- the whole importance pipeline: the seed's recipe written out by hand over the seed model;
- pruning: the pruned model's output equals the unpruned model's with those heads masked
  to 0 (atol 1e-6), and equals the seed's own ``prune_heads`` (atol 1e-6);
- masking: only the masked head's attention and what depends on it change.
"""

from __future__ import annotations

import math
import warnings

import pytest
import torch

import ptfunc
from ptfunc import tree
from ptfunc.archs import bert, gpt2, xlnet
from ptfunc.research import bertology

pt = pytest.importorskip("pytorch_transformers")

TOL = 1e-6
L, H = 3, 4
CONFIG = dict(
    hidden_size=16,
    num_hidden_layers=L,
    num_attention_heads=H,
    intermediate_size=24,
    max_position_embeddings=32,
)
V, B, S = 40, 3, 7


def _seed_model():
    torch.manual_seed(0)
    cfg = pt.BertConfig(V, output_attentions=True, **CONFIG)
    return pt.BertForSequenceClassification(cfg).eval()


def _ours(seed_model, config_cls=bert.BertForSequenceClassification):
    model = config_cls(bert.BertConfig(vocab_size=V, **CONFIG))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        params = ptfunc.io.from_torch_state_dict(model, seed_model.state_dict())
    return model, params


def _batch(seed: int) -> dict:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, V, (B, S), generator=g)
    mask = torch.ones(B, S, dtype=torch.long)
    mask[0, 5:] = 0
    mask[2, 3:] = 0
    labels = torch.randint(0, 2, (B,), generator=g)
    tt = (torch.arange(S) >= 4).long().expand(B, S)
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": tt, "labels": labels}


def _seed_grad(seed_model, batch, head_mask=None):
    hm = (torch.ones(L, H) if head_mask is None else head_mask.clone()).requires_grad_()
    out = seed_model(
        batch["input_ids"],
        token_type_ids=batch["token_type_ids"],
        attention_mask=batch["attention_mask"],
        labels=batch["labels"],
        head_mask=hm,
    )
    out[0].backward()
    return hm.grad, out


def test_head_mask_grad_equals_seed_autograd():
    seed_model = _seed_model()
    model, params = _ours(seed_model)
    for seed in (1, 2):
        batch = _batch(seed)
        ref, ref_out = _seed_grad(seed_model, batch)
        got, out = bertology.head_mask_grad(model, params, batch)
        assert got.shape == (L, H)
        assert torch.allclose(got, ref, atol=TOL, rtol=0), (got - ref).abs().max()
        assert torch.allclose(out.loss, ref_out[0], atol=TOL)
        # the attentions come along (layer-for-layer those of the seed)
        for a, b in zip(out.attentions, ref_out[-1]):
            assert torch.allclose(a, b, atol=TOL)
    # at a partly masked point too
    hm = torch.ones(L, H)
    hm[1, 2] = 0.0
    ref, _ = _seed_grad(seed_model, batch, hm)
    got, _ = bertology.head_mask_grad(model, params, batch, hm)
    assert torch.allclose(got, ref, atol=TOL, rtol=0)


def test_head_mask_grad_equals_finite_differences():
    seed_model = _seed_model()
    model, params = _ours(seed_model)
    params = tree.map(lambda t: t.double() if t.is_floating_point() else t, params)
    batch = _batch(3)
    got, _ = bertology.head_mask_grad(model, params, batch, torch.ones(L, H, dtype=torch.float64))
    eps = 1e-6

    def loss(hm):
        return model.apply(params, head_mask=hm, **batch).loss.item()

    for layer in range(L):
        for head in range(H):
            e = torch.zeros(L, H, dtype=torch.float64)
            e[layer, head] = eps
            one = torch.ones(L, H, dtype=torch.float64)
            fd = (loss(one + e) - loss(one - e)) / (2 * eps)
            assert abs(fd - got[layer, head].item()) <= TOL, (layer, head, fd, got[layer, head])


def test_entropy_equals_hand_computation():
    torch.manual_seed(0)
    probs = torch.softmax(torch.randn(2, 3, 4, 5), -1)
    probs[0, 1, 2] = torch.tensor([0.5, 0.5, 0.0, 0.0, 0.0])  # 0 log 0 = 0
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])
    got = bertology.attention_entropy([probs, probs.flip(-1)], mask)
    for layer, p in enumerate([probs, probs.flip(-1)]):
        for h in range(3):
            total = 0.0
            for b in range(2):
                for q in range(4):
                    if mask[b, q]:
                        total -= sum(x * math.log(x) for x in p[b, h, q].tolist() if x > 0)
            assert abs(got[layer, h].item() - total) <= 1e-5
    assert bertology.entropy(torch.tensor([1.0, 0.0])).item() == 0.0
    assert abs(bertology.entropy(torch.tensor([0.5, 0.5])).item() - math.log(2)) <= 1e-7


def test_head_stats_equal_the_seed_recipe_by_hand():
    """Importance and entropy over two batches vs the seed model, normalised by hand."""
    seed_model = _seed_model()
    model, params = _ours(seed_model)
    batches = [_batch(4), _batch(5)]
    imp = torch.zeros(L, H)
    ent = torch.zeros(L, H)
    tokens = 0
    for batch in batches:
        grad, out = _seed_grad(seed_model, batch)
        imp += grad.abs()
        m = batch["attention_mask"].float()
        for layer, att in enumerate(out[-1]):
            p = att.detach()
            plogp = torch.where(p > 0, p * torch.log(p), torch.zeros_like(p))
            ent[layer] += (-plogp.sum(-1) * m[:, None, :]).sum(-1).sum(0)
        tokens += int(m.sum())
    imp, ent = imp / tokens, ent / tokens
    raw = imp.clone()
    imp = imp / (imp.pow(2).sum(-1).sqrt()[:, None] + 1e-20)
    imp = (imp - imp.min()) / (imp.max() - imp.min())

    stats = bertology.compute_head_stats(model, params, batches)
    assert stats.n_tokens == tokens
    assert torch.allclose(stats.importance, imp, atol=1e-5, rtol=0)
    assert torch.allclose(stats.entropy, ent, atol=1e-5, rtol=0)
    assert stats.logits.shape == (2 * B, 2) and stats.labels.shape == (2 * B,)
    plain = bertology.compute_head_stats(
        model, params, batches, normalize_by_layer=False, normalize_global=False
    )
    assert torch.allclose(plain.importance, raw, atol=TOL, rtol=0)
    # with remat the numbers are the same
    again = bertology.compute_head_stats(model, params, batches, remat=True)
    assert torch.allclose(again.importance, stats.importance, atol=TOL, rtol=0)


def test_normalize_importance_options():
    x = torch.tensor([[3.0, 4.0], [1.0, 0.0]])
    by_layer = bertology.normalize_importance(x, global_minmax=False)
    assert torch.allclose(by_layer, torch.tensor([[0.6, 0.8], [1.0, 0.0]]))
    cubic = bertology.normalize_importance(x, exponent=3, global_minmax=False)
    assert torch.allclose(cubic[0], x[0] / (27 + 64) ** (1 / 3))
    glob = bertology.normalize_importance(x, by_layer=False)
    assert torch.allclose(glob, x / 4)
    assert torch.equal(bertology.normalize_importance(torch.ones(2, 2)), torch.zeros(2, 2))
    ranks = bertology.head_ranks(torch.tensor([[0.1, 0.9], [0.5, 0.0]]))
    assert ranks.tolist() == [[2, 0], [1, 3]]


@pytest.mark.parametrize("heads", [{0: [1]}, {0: [0, 3], 2: [2]}, {1: [0, 1, 2]}])
def test_pruned_output_equals_masked_output(heads):
    seed_model = _seed_model()
    model, params = _ours(seed_model)
    batch = {k: v for k, v in _batch(6).items() if k != "labels"}
    mask = bertology.mask_from_heads((L, H), heads)
    masked = model.apply(params, head_mask=mask, **batch)
    new_model, pruned = bertology.prune_heads(model, params, heads)
    out = new_model.apply(pruned, **batch)
    assert torch.allclose(out.logits, masked.logits, atol=TOL, rtol=0)
    # fewer parameters, the config records the pruned heads, the input params untouched
    assert tree.size(pruned) < tree.size(params)
    assert new_model.config.pruned_heads == {k: tuple(sorted(v)) for k, v in heads.items()}
    q = params["bert"]["encoder"]["layer"][0]["attention"]["self"]["query"]["weight"]
    assert q.shape == (16, 16)
    # and the seed's own pruning of the same heads agrees
    seed_model.prune_heads({k: list(v) for k, v in heads.items()})
    with torch.no_grad():
        ref = seed_model(batch["input_ids"], batch["token_type_ids"], batch["attention_mask"])
    assert torch.allclose(out.logits, ref[0], atol=TOL, rtol=0)
    # masks of the pruned model's remaining heads: the attentions kept are the same
    kept_out = new_model.apply(pruned, output_attentions=True, **batch)
    full = model.apply(params, head_mask=mask, output_attentions=True, **batch)
    for layer in range(L):
        keep = [h for h in range(H) if h not in heads.get(layer, [])]
        a, b = kept_out.attentions[layer], full.attentions[layer][:, keep]
        assert torch.allclose(a, b, atol=TOL, rtol=0)


def test_masking_changes_only_what_it_should():
    seed_model = _seed_model()
    model, params = _ours(seed_model)
    batch = {k: v for k, v in _batch(7).items() if k != "labels"}
    kw = dict(output_attentions=True, output_hidden_states=True, **batch)
    base = model.apply(params, head_mask=torch.ones(L, H), **kw)
    mask = bertology.mask_from_heads((L, H), {1: [2]})
    out = model.apply(params, head_mask=mask, **kw)
    # the masked head's attention is zero; the other heads of that layer are untouched
    assert torch.equal(out.attentions[1][:, 2], torch.zeros_like(out.attentions[1][:, 2]))
    others = [0, 1, 3]
    assert torch.equal(out.attentions[1][:, others], base.attentions[1][:, others])
    # layers before it are untouched, its output and what follows change
    assert torch.equal(out.attentions[0], base.attentions[0])
    for i in range(2):
        assert torch.equal(out.hidden_states[i], base.hidden_states[i])
    assert not torch.allclose(out.hidden_states[2], base.hidden_states[2])
    assert not torch.allclose(out.logits, base.logits)
    # the params transform computes the same thing, bit for bit, without a head mask
    masked_params = bertology.mask_heads(model, params, {1: [2]})
    same = model.apply(masked_params, **kw)
    assert torch.equal(same.logits, out.logits)
    assert bertology.heads_from_mask(mask) == {1: [2]}


def test_other_architectures_refuse_pruning_clearly():
    """XLNet has no head pruning (GPT, GPT-2 and XLM do: tests/test_prune_heads.py)."""
    other = xlnet.XLNetLMHeadModel(
        xlnet.XLNetConfig(vocab_size=20, d_model=8, n_layer=1, n_head=2, d_inner=16)
    )
    other_params = other.init(ptfunc.random.key(0))
    with pytest.raises(NotImplementedError, match="head_mask"):
        bertology.prune_heads(other, other_params, {0: [1]})
    with pytest.raises(NotImplementedError, match="head_mask"):
        bertology.mask_heads(other, other_params, {0: [1]})
    # importance works everywhere: the gradient w.r.t. head_mask of a GPT-2 LM loss
    model = gpt2.GPT2LMHeadModel(gpt2.GPT2Config(vocab_size=20, n_embd=8, n_layer=1, n_head=2))
    params = model.init(ptfunc.random.key(0))
    ids = torch.randint(0, 20, (2, 5))
    grad, _ = bertology.head_mask_grad(model, params, {"input_ids": ids, "labels": ids})
    assert grad.shape == (1, 2) and grad.abs().sum() > 0


def test_mask_heads_by_importance_loop():
    """A synthetic evaluation: score = fraction of heads kept; importance fixed."""
    importance = torch.tensor([[0.5, 0.1, 0.9], [0.3, 0.7, 0.2]])
    calls = []

    def evaluate(mask):
        calls.append(mask.clone())
        return float(mask.sum() / mask.numel()), importance

    res = bertology.mask_heads_by_importance(evaluate, (2, 3), threshold=0.5, amount=1 / 6)
    # masks 0.1, then 0.2, then 0.3 (score 3/6 = 0.5 still >= 0.5), then 0.5 (2/6 < 0.5): stop
    assert [int(m.sum()) for m in calls] == [6, 5, 4, 3, 2]
    assert res.head_mask.tolist() == [[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]]
    assert res.score == 0.5 and res.original_score == 1.0
    assert res.history[-1][0] == 2 and res.history[-1][1] == pytest.approx(2 / 6)
    # masking two at a time
    calls.clear()
    res = bertology.mask_heads_by_importance(evaluate, (2, 3), threshold=0.0, amount=2 / 6)
    assert res.head_mask.sum() == 2  # stops when no more than 2 heads are left


def test_plot_head_importance(tmp_path):
    scores = torch.rand(2, 3)
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="pip install matplotlib"):
            bertology.plot_head_importance(scores, tmp_path / "h.png")
        return
    path = bertology.plot_head_importance(scores, tmp_path / "h.png")
    assert path.stat().st_size > 0
