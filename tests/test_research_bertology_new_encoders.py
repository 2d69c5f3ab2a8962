"""ptfunc.research.bertology on the BERT-family encoders added after the seed (RoBERTa,
DistilBERT, ELECTRA, ALBERT, DeBERTa-v2), against independent references:

- head importance: ``head_mask_grad`` equals plain ``torch.autograd.grad`` of the loss
  w.r.t. a hand-made ``head_mask`` leaf (atol 1e-6), and central finite differences in
  float64 (atol 1e-6), for every encoder (ALBERT with 1 and 2 layer groups and 1 and 2
  inner layers; DeBERTa-v2 with shared and with its own position projections);
  ``compute_head_stats`` equals the seed's recipe written out by hand;
- the head_mask forward equals transformers 5 (which has no head_mask for these models) on
  the same weights with the head's output removed there by other means: DeBERTa-v2 and
  DistilBERT with the head's rows of the value projection (weight and bias) zeroed, ALBERT
  (shared weights) with a forward hook zeroing the head's slice of ``attention.value``'s
  output on the call of the masked step only (max abs diff <= 1e-5, float32);
- pruning by importance: pruning the least important heads gives the output of the full
  model with those heads masked to 0 (atol 1e-6), and ``mask_heads`` the same (bit for bit
  under a head mask of ones, to rounding on the fused path without one); for DistilBERT
  and DeBERTa-v2 the pruned model also equals transformers 5 with those heads' value rows
  zeroed, and its ``save_pretrained`` directory loads in transformers 5 (and back in
  ptfunc, bit for bit);
- ``compute_head_stats`` and ``mask_heads_by_importance`` run end to end on each encoder;
- ALBERT refuses pruning (its layer groups share weights) with errors naming head_mask.
"""

from __future__ import annotations

import copy
import warnings

import pytest
import torch

import ptfunc
from ptfunc import io, tree
from ptfunc.archs import albert, deberta_v2, distilbert, electra, roberta
from ptfunc.research import bertology

TOL = 1e-6
L, H, V, B, S = 2, 4, 40, 3, 7
BERTLIKE = dict(hidden_size=16, num_hidden_layers=L, num_attention_heads=H,
                intermediate_size=24, max_position_embeddings=32)  # fmt: skip


DEBERTA = {  # DeBERTa-v3's shape (shared position projections, buckets), and its own ones
    "deberta": dict(relative_attention=True, position_buckets=4, max_relative_positions=16,
                    pos_att_type=["p2c", "c2p"], share_att_key=True, norm_rel_ebd="layer_norm",
                    position_biased_input=False, type_vocab_size=0),
    "deberta-own-pos": dict(relative_attention=True, max_relative_positions=4,
                            pos_att_type=["p2c", "c2p"], share_att_key=False, type_vocab_size=2),
}  # fmt: skip
ALBERT = {"albert-1x1": (1, 1), "albert-1x2": (1, 2), "albert-2x1": (2, 1), "albert-2x2": (2, 2)}
"""name -> (num_hidden_groups, inner_group_num)."""


def _config(arch: str):
    if arch in ALBERT:
        groups, inner = ALBERT[arch]
        return albert.AlbertConfig(V, embedding_size=8, num_hidden_groups=groups,
                                   inner_group_num=inner, **BERTLIKE)  # fmt: skip
    if arch in DEBERTA:
        return deberta_v2.DebertaV2Config(V, **BERTLIKE, **DEBERTA[arch])
    raise KeyError(arch)


def _calls(model) -> int:
    """Attention calls of a forward pass (ALBERT: every inner layer of every step)."""
    return L * getattr(model.config, "inner_group_num", 1)


def _model(arch: str):
    if arch in ALBERT:
        model = albert.AlbertForSequenceClassification(_config(arch))
    elif arch in DEBERTA:
        model = deberta_v2.DebertaV2ForSequenceClassification(_config(arch))
    elif arch == "roberta":
        model = roberta.RobertaForSequenceClassification(roberta.RobertaConfig(V, **BERTLIKE))
    elif arch == "electra":
        config = electra.ElectraConfig(V, embedding_size=8, **BERTLIKE)
        model = electra.ElectraForSequenceClassification(config)
    else:
        config = distilbert.DistilBertConfig(vocab_size=V, dim=16, n_layers=L, n_heads=H,
                                             hidden_dim=24, max_position_embeddings=32)  # fmt: skip
        model = distilbert.DistilBertForSequenceClassification(config)
    return model, model.init(ptfunc.random.key(0))


def _batch(seed: int, arch: str) -> dict:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, V, (B, S), generator=g)  # no pad id (RoBERTa's is 1)
    mask = torch.ones(B, S, dtype=torch.long)
    mask[0, 5:] = 0
    mask[2, 3:] = 0
    batch = {"input_ids": ids, "attention_mask": mask,
             "labels": torch.randint(0, 2, (B,), generator=g)}  # fmt: skip
    if arch == "electra" or arch in ALBERT or arch == "deberta-own-pos":  # segment embeddings
        batch["token_type_ids"] = (torch.arange(S) >= 4).long().expand(B, S)
    return batch


ARCHS = ("roberta", "distilbert", "electra", *ALBERT, *DEBERTA)
PRUNABLE = ("roberta", "distilbert", "electra", *DEBERTA)


@pytest.mark.parametrize("arch", ARCHS)
def test_head_mask_grad_equals_autograd_and_finite_differences(arch):
    model, params = _model(arch)
    assert bertology.head_shape(model) == (L, H)
    for point in (torch.ones(L, H), bertology.mask_from_heads((L, H), {1: [2]})):
        batch = _batch(1, arch)
        got, out = bertology.head_mask_grad(model, params, batch, point)
        hm = point.clone().requires_grad_()
        loss = model.apply(params, head_mask=hm, **batch).loss
        (ref,) = torch.autograd.grad(loss, hm)
        assert got.shape == (L, H) and got.abs().sum() > 0
        assert torch.allclose(got, ref, atol=TOL, rtol=0), (got - ref).abs().max()
        assert torch.allclose(out.loss, loss.detach(), atol=TOL)
        assert len(out.attentions) == _calls(model) and out.attentions[0].shape == (B, H, S, S)
    # central finite differences in float64
    params64 = tree.map(lambda t: t.double() if t.is_floating_point() else t, params)
    batch = _batch(2, arch)
    one = torch.ones(L, H, dtype=torch.float64)
    got, _ = bertology.head_mask_grad(model, params64, batch, one)
    eps = 1e-6

    def loss64(hm):
        return model.apply(params64, head_mask=hm, **batch).loss.item()

    for layer in range(L):
        for head in range(H):
            e = torch.zeros(L, H, dtype=torch.float64)
            e[layer, head] = eps
            fd = (loss64(one + e) - loss64(one - e)) / (2 * eps)
            assert abs(fd - got[layer, head].item()) <= TOL, (layer, head, fd)


@pytest.mark.parametrize("arch", ARCHS)
def test_compute_head_stats_equals_hand_recipe(arch):
    model, params = _model(arch)
    batches = [_batch(3, arch), _batch(4, arch)]
    imp, tokens = torch.zeros(L, H), 0
    for batch in batches:
        hm = torch.ones(L, H, requires_grad=True)
        (g,) = torch.autograd.grad(model.apply(params, head_mask=hm, **batch).loss, hm)
        imp += g.abs()
        tokens += int(batch["attention_mask"].sum())
    imp = imp / tokens
    imp = imp / (imp.pow(2).sum(-1).sqrt()[:, None] + 1e-20)
    imp = (imp - imp.min()) / (imp.max() - imp.min())
    stats = bertology.compute_head_stats(model, params, batches)
    assert stats.n_tokens == tokens
    assert torch.allclose(stats.importance, imp, atol=1e-5, rtol=0)
    assert stats.logits.shape == (2 * B, 2)
    assert stats.entropy.shape == (L, H) and bool((stats.entropy > 0).all())


@pytest.mark.parametrize("arch", PRUNABLE)
def test_pruning_by_importance_equals_masking(arch):
    model, params = _model(arch)
    stats = bertology.compute_head_stats(model, params, [_batch(5, arch)])
    # the 3 least important heads (ranks 5..7 of 8), wherever they are
    ranks = bertology.head_ranks(stats.importance)
    mask = (ranks < L * H - 3).float()
    heads = bertology.heads_from_mask(mask)
    assert sum(len(h) for h in heads.values()) == 3
    batch = {k: v for k, v in _batch(6, arch).items() if k != "labels"}
    masked = model.apply(params, head_mask=mask, **batch)
    masked_params = bertology.mask_heads(model, params, heads)
    # bit for bit on the same attention path (a head mask of ones); without any head mask
    # the model takes its fused path, equal to rounding (about 1e-9 here)
    same = model.apply(masked_params, head_mask=torch.ones(L, H), **batch)
    assert torch.equal(same.logits, masked.logits)
    fused = model.apply(masked_params, **batch)
    assert torch.allclose(fused.logits, masked.logits, atol=TOL, rtol=0)
    new_model, pruned = bertology.prune_heads(model, params, heads)
    out = new_model.apply(pruned, **batch)
    assert torch.allclose(out.logits, masked.logits, atol=TOL, rtol=0)
    assert tree.size(pruned) < tree.size(params)
    assert new_model.config.pruned_heads == {k: tuple(sorted(v)) for k, v in heads.items()}
    # the pruned model's attentions are the kept heads' ones of the masked full model
    kept = new_model.apply(pruned, output_attentions=True, **batch).attentions
    full = model.apply(params, head_mask=mask, output_attentions=True, **batch).attentions
    for layer in range(L):
        keep = [h for h in range(H) if h not in heads.get(layer, [])]
        assert torch.allclose(kept[layer], full[layer][:, keep], atol=TOL, rtol=0)
    # a fresh init of the pruned model has the pruned shapes
    assert tree.map(lambda t: t.shape, new_model.init(ptfunc.random.key(1))) == tree.map(
        lambda t: t.shape, pruned
    )


@pytest.mark.parametrize("arch", ARCHS)
def test_head_stats_and_greedy_masking_run_end_to_end(arch):
    model, params = _model(arch)
    batches = [_batch(7, arch), _batch(8, arch)]

    def evaluate(head_mask):
        stats = bertology.compute_head_stats(model, params, batches, head_mask=head_mask)
        accuracy = (stats.logits.argmax(-1) == stats.labels).float().mean()
        return float(accuracy), stats.importance

    result = bertology.mask_heads_by_importance(evaluate, bertology.head_shape(model),
                                                threshold=0.5, amount=0.25)  # fmt: skip
    assert result.head_mask.shape == (L, H)
    assert set(result.head_mask.unique().tolist()) <= {0.0, 1.0}
    assert result.score >= 0.5 * result.original_score
    kept = [n for n, _ in result.history]
    assert kept[0] == L * H and all(a - b == 2 for a, b in zip(kept, kept[1:]))


# -- transformers 5 references ---------------------------------------------------------------

try:
    import transformers
except ImportError:  # the tests above need no reference
    transformers = None
needs_transformers = pytest.mark.skipif(transformers is None, reason="transformers not installed")
HF_TOL = 1e-5
HEAD_DIM = BERTLIKE["hidden_size"] // H
SILENCED = {0: [1], 1: [0, 3]}  # heads masked in the reference comparisons


def _reference(arch: str):
    """A transformers 5 sequence classifier (eval, eager attention) with random weights
    ~ N(0, 0.3) (LayerNorm weights around 1), and ptfunc's model and params on them."""
    if arch in ALBERT:
        name, cfg = "AlbertForSequenceClassification", _config(arch).to_dict()
        config = transformers.AlbertConfig(**cfg, attn_implementation="eager")
    elif arch in DEBERTA:
        name, cfg = "DebertaV2ForSequenceClassification", _config(arch).to_dict()
        config = transformers.DebertaV2Config(**cfg, attn_implementation="eager")
    else:
        name = "DistilBertForSequenceClassification"
        config = transformers.DistilBertConfig(vocab_size=V, dim=16, n_layers=L, n_heads=H,
                                               hidden_dim=24, max_position_embeddings=32,
                                               attn_implementation="eager")  # fmt: skip
    torch.manual_seed(0)
    ref = getattr(transformers, name)(config).eval()
    with torch.no_grad():
        for pname, p in ref.named_parameters():
            p.copy_(torch.randn_like(p) * 0.3 + (1.0 if "LayerNorm.weight" in pname else 0.0))
    model = _model(arch)[0]
    params, info = io.from_torch_state_dict(model, ref.state_dict(), output_loading_info=True)
    assert info.missing_keys == [] and info.unexpected_keys == []
    return ref, model, params


def _value_projections(ref, arch: str) -> list:
    if arch in DEBERTA:
        return [layer.attention.self.value_proj for layer in ref.deberta.encoder.layer]
    return [layer.attention.v_lin for layer in ref.distilbert.transformer.layer]


def _zero_value_rows(ref, arch: str, heads: dict):
    """A copy of ``ref`` whose value projection rows (weight and bias) of ``heads`` are 0."""
    ref = copy.deepcopy(ref)
    with torch.no_grad():
        for layer, hs in heads.items():
            value = _value_projections(ref, arch)[layer]
            for h in hs:
                value.weight[h * HEAD_DIM : (h + 1) * HEAD_DIM] = 0
                value.bias[h * HEAD_DIM : (h + 1) * HEAD_DIM] = 0
    return ref


def _hf_logits(ref, batch: dict) -> torch.Tensor:
    kw = {k: v for k, v in batch.items() if k in ("attention_mask", "token_type_ids")}
    with torch.no_grad():
        return ref(batch["input_ids"], **kw).logits


def _close(a: torch.Tensor, b: torch.Tensor, what: str, tol: float = HF_TOL) -> None:
    err = (a - b).abs().max().item()
    assert err <= tol, f"{what}: max abs diff {err:.3g} > {tol}"


@needs_transformers
@pytest.mark.parametrize("arch", [*DEBERTA, "distilbert"])
def test_head_mask_equals_transformers_with_zero_value_rows(arch):
    ref, model, params = _reference(arch)
    batch = {k: v for k, v in _batch(9, arch).items() if k != "labels"}
    _close(model.apply(params, **batch).logits, _hf_logits(ref, batch), f"{arch}: unmasked")
    mask = bertology.mask_from_heads((L, H), SILENCED)
    want = _hf_logits(_zero_value_rows(ref, arch, SILENCED), batch)
    got = model.apply(params, head_mask=mask, **batch).logits
    _close(got, want, f"{arch}: head_mask")
    assert (got - model.apply(params, **batch).logits).abs().max() > 1e-3  # the mask matters


def _silence_steps(ref, config, step_heads: dict) -> list:
    """Forward hooks on ``ref``'s ALBERT ``attention.value`` Linears zeroing the heads
    ``step_heads[l]`` of the output of the call(s) that run step ``l`` (each inner layer of
    the step's group, on the k-th call of that module where step l is the k-th step using
    the group); returns the hook handles."""
    groups = ref.albert.encoder.albert_layer_groups
    steps_of = {}
    for step in range(config.num_hidden_layers):
        steps_of.setdefault(config.group_of_layer(step), []).append(step)
    handles = []
    for g, steps in steps_of.items():
        for layer in groups[g].albert_layers:
            calls = {"n": 0}

            def hook(module, args, out, steps=steps, calls=calls):
                step = steps[calls["n"]]
                calls["n"] += 1
                keep = torch.ones(out.shape[-1], dtype=out.dtype)
                for h in step_heads.get(step, ()):
                    keep[h * HEAD_DIM : (h + 1) * HEAD_DIM] = 0
                return out * keep

            handles.append(layer.attention.value.register_forward_hook(hook))
    return handles


@needs_transformers
@pytest.mark.parametrize("arch", list(ALBERT))
def test_albert_head_mask_equals_transformers_with_hooked_value(arch):
    ref, model, params = _reference(arch)
    batch = {k: v for k, v in _batch(10, arch).items() if k != "labels"}
    _close(model.apply(params, **batch).logits, _hf_logits(ref, batch), f"{arch}: unmasked")
    for step_heads in (SILENCED, {1: [2]}):  # both steps, then the second step only
        handles = _silence_steps(ref, model.config, step_heads)
        try:
            want = _hf_logits(ref, batch)
        finally:
            for handle in handles:
                handle.remove()
        mask = bertology.mask_from_heads((L, H), step_heads)
        got = model.apply(params, head_mask=mask, **batch).logits
        _close(got, want, f"{arch}: head_mask {step_heads}")
        assert (got - model.apply(params, **batch).logits).abs().max() > 1e-4


@needs_transformers
@pytest.mark.parametrize("arch", [*DEBERTA, "distilbert"])
def test_pruned_model_equals_transformers_and_saves_for_it(arch, tmp_path):
    ref, model, params = _reference(arch)
    batch = {k: v for k, v in _batch(11, arch).items() if k != "labels"}
    new_model, pruned = bertology.prune_heads(model, params, SILENCED)
    got = new_model.apply(pruned, **batch).logits
    _close(got, _hf_logits(_zero_value_rows(ref, arch, SILENCED), batch), f"{arch}: pruned")
    # transformers 5 dropped head pruning (no ``prune_heads`` on PreTrainedModel, no
    # DistilBERT/DeBERTa ``_prune_heads``), so its own pruning cannot be the reference here;
    # where an older transformers still has it, compare against it too
    if hasattr(ref, "prune_heads"):
        hf_pruned = copy.deepcopy(ref)
        hf_pruned.prune_heads(SILENCED)
        _close(got, _hf_logits(hf_pruned, batch), f"{arch}: transformers' prune_heads")
    # the save is full-size (the pruned heads' tensors zero), which transformers 5 loads
    io.save_pretrained(tmp_path, new_model, pruned)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded, info = type(ref).from_pretrained(str(tmp_path), output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    _close(got, _hf_logits(loaded.eval(), batch), f"{arch}: transformers loads the save")
    back_model, back = io.from_pretrained(tmp_path, type(new_model), strict=True)
    assert back_model.config.pruned_heads == new_model.config.pruned_heads
    flat, want_flat = tree.to_flat_dict(back), tree.to_flat_dict(pruned)
    assert flat.keys() == want_flat.keys()
    assert all(torch.equal(flat[k], want_flat[k]) for k in flat)


# -- refusals ----------------------------------------------------------------------------------


@pytest.mark.parametrize("arch", ["albert-1x2", "deberta"])
def test_bad_head_mask_shapes_are_refused(arch):
    model, params = _model(arch)
    ids = torch.randint(3, V, (B, S))
    for bad in (torch.ones(L + 1, H), torch.ones(H + 1), torch.ones(L * 2, H)):
        with pytest.raises(ValueError, match="head_mask"):
            model.apply(params, ids, head_mask=bad)


def test_albert_pruning_refuses_clearly():
    model, params = _model("albert-2x2")
    with pytest.raises(NotImplementedError, match="head_mask"):
        bertology.prune_heads(model, params, {0: [1]})
    with pytest.raises(NotImplementedError, match="head_mask"):
        bertology.mask_heads(model, params, {0: [1]})
    with pytest.raises(NotImplementedError, match="shares each layer group"):
        model.prune_heads(params, {0: [1]})
