"""DistilBERT against transformers 5 (eager attention), and under torch.func / torch.compile.

References: transformers' ``DistilBert*`` modules with the same weights (their state dict
loaded through ``ptfunc.io``) on the same inputs, float32 max-abs <= 1e-5; ``vmap``
against loops, ``jvp`` against a central finite difference in float64 (atol 1e-6),
``torch.compile(fullgraph=True)`` against eager (atol 1e-5).
"""

from __future__ import annotations

import pytest
import torch
from torch.func import grad, jvp, vmap

import ptfunc
from ptfunc import tree
from ptfunc.archs import distilbert

transformers = pytest.importorskip("transformers")

ATOL = 1e-5
B, S, V = 3, 7, 99
CONFIG = dict(vocab_size=V, dim=32, n_layers=2, n_heads=4, hidden_dim=37, num_labels=3)
CONFIG.update(max_position_embeddings=20)
NAMES = [
    "DistilBertModel",
    "DistilBertForMaskedLM",
    "DistilBertForSequenceClassification",
    "DistilBertForMultipleChoice",
    "DistilBertForTokenClassification",
    "DistilBertForQuestionAnswering",
]


def _extra(name: str) -> dict:
    return {"num_labels": 2} if name == "DistilBertForQuestionAnswering" else {}


def _inputs(name: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """Example 0 padded on the right, example 1 on the left."""
    g = torch.Generator().manual_seed(seed)
    shape = (B, 2, S) if name == "DistilBertForMultipleChoice" else (B, S)
    mask = torch.ones(shape, dtype=torch.long)
    mask[..., 0, 5:] = 0
    mask[..., 1, :2] = 0
    ids = torch.randint(1, V, shape, generator=g) * mask
    return {"input_ids": ids, "attention_mask": mask}


def _labels(name: str) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    if name == "DistilBertForMaskedLM":
        labels = torch.randint(0, V, (B, S), generator=g)
        labels[:, ::2] = -100
        return {"labels": labels}
    if name in ("DistilBertForSequenceClassification", "DistilBertForMultipleChoice"):
        return {"labels": torch.tensor([0, 1, 1])}
    if name == "DistilBertForTokenClassification":
        labels = torch.randint(0, 3, (B, S), generator=g)
        return {"labels": labels.masked_fill(_inputs(name)["attention_mask"] == 0, -100)}
    if name == "DistilBertForQuestionAnswering":
        return {
            "start_positions": torch.tensor([1, 3, 9]),
            "end_positions": torch.tensor([2, 5, 0]),
        }
    return {}


def _reference(name: str, **overrides):
    config = transformers.DistilBertConfig(
        **{**CONFIG, **_extra(name), **overrides}, attn_implementation="eager"
    )
    torch.manual_seed(0)
    return getattr(transformers, name)(config).eval()


def _config(name: str, **overrides) -> distilbert.DistilBertConfig:
    return distilbert.DistilBertConfig(**{**CONFIG, **_extra(name), **overrides})


def _from_reference(name: str, reference, **overrides):
    model = getattr(distilbert, name)(_config(name, **overrides))
    return model, ptfunc.io.from_torch_state_dict(model, reference.state_dict())


def _max_err(a, b, what):
    assert a.shape == b.shape, f"{what}: shape {tuple(a.shape)} vs {tuple(b.shape)}"
    err = (a - b).abs().max().item()
    assert err <= ATOL, f"{what}: max abs diff {err:.3g} > {ATOL}"


def _main(name: str, out) -> list[torch.Tensor]:
    if name == "DistilBertModel":
        return [out.last_hidden_state]
    if name == "DistilBertForQuestionAnswering":
        return [out.start_logits, out.end_logits]
    return [out.logits]


@pytest.mark.parametrize("name", NAMES)
def test_matches_transformers(name):
    """Outputs, loss, hidden states and attentions, with left and right padding."""
    reference = _reference(name)
    model, params = _from_reference(name, reference)
    inputs, labels = _inputs(name), _labels(name)
    with torch.no_grad():
        ref = reference(**inputs, **labels, output_hidden_states=True, output_attentions=True)
    out = model.apply(params, **inputs, **labels, output_hidden_states=True, output_attentions=True)
    if labels:
        _max_err(out.loss, ref.loss, "loss")
    for i, (a, b) in enumerate(zip(_main(name, out), _main(name, ref), strict=True)):
        _max_err(a, b, f"output {i}")
    assert len(out.hidden_states) == 3 and len(out.attentions) == 2
    for i, (a, b) in enumerate(zip(out.hidden_states, ref.hidden_states, strict=True)):
        _max_err(a, b, f"hidden_states[{i}]")
    for i, (a, b) in enumerate(zip(out.attentions, ref.attentions, strict=True)):
        _max_err(a, b, f"attentions[{i}]")
    fused = model.apply(params, **inputs)
    assert fused.hidden_states == () and fused.attentions == ()
    for i, (a, b) in enumerate(zip(_main(name, fused), _main(name, ref), strict=True)):
        _max_err(a, b, f"fused output {i}")


def test_sinusoidal_positions_and_position_ids():
    """``sinusoidal_pos_embds``: init writes transformers' table; explicit position_ids."""
    reference = _reference("DistilBertModel", sinusoidal_pos_embds=True)
    model, params = _from_reference("DistilBertModel", reference, sinusoidal_pos_embds=True)
    mine = model.init(ptfunc.random.key(0))["embeddings"]["position_embeddings"]["weight"]
    _max_err(mine, reference.embeddings.position_embeddings.weight.detach(), "sinusoids")
    inputs = _inputs("DistilBertModel")
    positions = torch.arange(S).flip(0).expand(B, S)
    with torch.no_grad():
        ref = reference(**inputs, position_ids=positions).last_hidden_state
    _max_err(model.apply(params, **inputs, position_ids=positions)[0], ref, "position_ids")


def test_regression_head_uses_mse():
    name = "DistilBertForSequenceClassification"
    reference = _reference(name, num_labels=1)
    model, params = _from_reference(name, reference, num_labels=1)
    inputs, targets = _inputs(name), torch.tensor([0.5, -1.0, 2.0])
    with torch.no_grad():
        ref = reference(**inputs, labels=targets)
    _max_err(model.apply(params, **inputs, labels=targets).loss, ref.loss, "mse loss")


def test_head_mask_zeroes_heads():
    """transformers 5 has no head_mask for DistilBERT: ones change nothing, zeros drop heads."""
    model = distilbert.DistilBertModel(_config("DistilBertModel"))
    params = model.init(ptfunc.random.key(2))
    inputs = _inputs("DistilBertModel")
    base = model.apply(params, **inputs).last_hidden_state
    ones = model.apply(params, **inputs, head_mask=torch.ones(2, 4)).last_hidden_state
    torch.testing.assert_close(ones, base)
    head_mask = torch.ones(2, 4)
    head_mask[1, 2] = 0
    out = model.apply(params, **inputs, head_mask=head_mask, output_attentions=True)
    assert out.attentions[1][:, 2].abs().max() == 0
    assert not torch.allclose(out.last_hidden_state, base)


@pytest.mark.parametrize("name", ["DistilBertForMaskedLM", "DistilBertForQuestionAnswering"])
def test_save_then_transformers_loads(name, tmp_path):
    """ptfunc.save_pretrained -> transformers 5 from_pretrained: no missing/unexpected keys."""
    model = getattr(distilbert, name)(_config(name))
    params = model.init(ptfunc.random.key(3))
    model.save_pretrained(tmp_path, params)
    reference, info = getattr(transformers, name).from_pretrained(
        tmp_path, output_loading_info=True, attn_implementation="eager"
    )
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    inputs = _inputs(name)
    with torch.no_grad():
        ref = reference.eval()(**inputs)
    for a, b in zip(_main(name, model.apply(params, **inputs)), _main(name, ref), strict=True):
        _max_err(a, b, "outputs")
    again, params2 = type(model).from_pretrained(tmp_path)
    _max_err(_main(name, again.apply(params2, **inputs))[0], _main(name, ref)[0], "reloaded")
    reference.save_pretrained(tmp_path / "hf")  # and back: transformers' files into ptfunc
    again, params3 = type(model).from_pretrained(tmp_path / "hf")
    _max_err(_main(name, again.apply(params3, **inputs))[0], _main(name, ref)[0], "from hf")


# -- torch.func and torch.compile -------------------------------------------------------------

FUNC_NAMES = [
    "DistilBertForMaskedLM",
    "DistilBertForMultipleChoice",
    "DistilBertForQuestionAnswering",
]


def _small(name: str, seed: int):
    model = getattr(distilbert, name)(_config(name, dim=16, n_heads=2, num_labels=2))
    return model, model.init(ptfunc.random.key(seed))


def _split(name: str):
    inputs = _inputs(name)
    return inputs.pop("input_ids"), inputs, _labels(name)


def _loss(model, ids, options, labels, **kw):
    return lambda params: model.apply(params, ids, **options, **labels, **kw).loss


@pytest.mark.parametrize("name", FUNC_NAMES)
def test_grad_matches_transformers_autograd(name):
    reference = _reference(name)
    model, params = _from_reference(name, reference)
    inputs, labels = _inputs(name), _labels(name)
    reference(**inputs, **labels).loss.backward()
    got = tree.to_flat_dict(grad(_loss(model, inputs.pop("input_ids"), inputs, labels))(params))
    want = dict(reference.named_parameters())
    assert set(got) == set(want)
    for n, g in got.items():
        torch.testing.assert_close(g, want[n].grad, atol=1e-5, rtol=1e-4, msg=n)


def test_vmap_over_params_and_examples():
    """An ensemble of 2 by vmap over stacked params; per-example grads by vmap(grad)."""
    name = "DistilBertForMultipleChoice"
    model, _ = _small(name, 0)
    members = [model.init(k) for k in ptfunc.random.split(ptfunc.random.key(1), 2)]
    ids, options, labels = _split(name)
    logits = lambda p: model.apply(p, ids, **options).logits  # noqa: E731
    torch.testing.assert_close(
        vmap(logits)(tree.stack(members)), torch.stack([logits(p) for p in members])
    )

    def example_loss(params, ids, options, labels):
        add = lambda t: t[None]  # noqa: E731
        return _loss(model, add(ids), tree.map(add, options), tree.map(add, labels))(params)

    params = members[1]
    per = tree.to_flat_dict(
        vmap(grad(example_loss), in_dims=(None, 0, 0, 0))(params, ids, options, labels)
    )
    for i in range(B):
        pick = lambda t, i=i: t[i]  # noqa: E731
        one = grad(example_loss)(params, ids[i], tree.map(pick, options), tree.map(pick, labels))
        for n, g in tree.to_flat_dict(one).items():
            torch.testing.assert_close(per[n][i], g, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("name", FUNC_NAMES)
def test_jvp_matches_finite_difference(name):
    model, params = _small(name, 3)
    params = tree.astype(params, torch.float64)
    f = _loss(model, *_split(name))
    g = torch.Generator().manual_seed(4)
    tangent = tree.map(lambda p: torch.randn(p.shape, generator=g, dtype=p.dtype), params)
    _, directional = jvp(f, (params,), (tangent,))
    eps = 1e-6
    plus = f(tree.map(lambda p, t: p + eps * t, params, tangent))
    minus = f(tree.map(lambda p, t: p - eps * t, params, tangent))
    torch.testing.assert_close(directional, (plus - minus) / (2 * eps), atol=1e-6, rtol=1e-5)


def test_compile_fullgraph_matches_eager():
    torch._dynamo.reset()
    model, params = _small("DistilBertForQuestionAnswering", 5)
    ids, options, labels = _split("DistilBertForQuestionAnswering")

    def run(params, key):
        return model.apply(params, ids, **options, **labels, train=True, key=key)

    key = ptfunc.random.key(7)
    got = torch.compile(run, fullgraph=True, backend="aot_eager")(params, key)
    for a, b in zip(tree.leaves(got), tree.leaves(run(params, key)), strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", FUNC_NAMES)
def test_keyed_dropout_and_remat(name):
    model, params = _small(name, 6)
    ids, options, labels = _split(name)
    k1, k2 = ptfunc.random.split(ptfunc.random.key(9), 2)
    loss = lambda k: _loss(model, ids, options, labels, train=True, key=k)(params)  # noqa: E731
    assert torch.equal(loss(k1), loss(k1)) and not torch.equal(loss(k1), loss(k2))
    with pytest.raises(ValueError):
        model.apply(params, ids, **options, train=True)
    plain = grad(_loss(model, ids, options, labels, train=True, key=k1))(params)
    remat = grad(_loss(model, ids, options, labels, train=True, key=k1, remat=True))(params)
    for a, b in zip(tree.leaves(plain), tree.leaves(remat), strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)
