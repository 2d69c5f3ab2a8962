"""torch.func and torch.compile over every BERT model.

References: ``grad`` against autograd on today's ``transformers`` module with
the same weights; ``vmap`` against Python loops; ``jvp`` against a central
finite difference in float64; ``torch.compile(fullgraph=True)`` against eager.
"""

from __future__ import annotations

import warnings

import pytest
import torch
from torch.func import grad, jvp, vmap

import ptfunc
from ptfunc import tree
from ptfunc.archs import bert

transformers = pytest.importorskip("transformers")

B, S, V = 3, 6, 50
CONFIG = bert.BertConfig(
    vocab_size=V,
    hidden_size=16,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=24,
    max_position_embeddings=32,
    num_labels=2,
)


def _batch(name: str, seed: int = 0) -> tuple[torch.Tensor, dict, dict]:
    """input_ids, encoder options and labels for one head."""
    g = torch.Generator().manual_seed(seed)
    shape = (B, 2, S) if name == "BertForMultipleChoice" else (B, S)
    ids = torch.randint(1, V, shape, generator=g)
    mask = torch.ones(shape, dtype=torch.long)
    mask[..., 0, 4:] = 0
    labels = {
        "BertModel": {},
        "BertForPreTraining": {
            "labels": torch.randint(0, V, (B, S), generator=g),
            "next_sentence_label": torch.tensor([0, 1, 0]),
        },
        "BertForMaskedLM": {"labels": torch.randint(0, V, (B, S), generator=g)},
        "BertForNextSentencePrediction": {"labels": torch.tensor([1, 0, 1])},
        "BertForSequenceClassification": {"labels": torch.tensor([1, 0, 1])},
        "BertForMultipleChoice": {"labels": torch.tensor([1, 0, 1])},
        "BertForTokenClassification": {"labels": torch.randint(0, 2, (B, S), generator=g)},
        "BertForQuestionAnswering": {
            "start_positions": torch.tensor([0, 2, 3]),
            "end_positions": torch.tensor([1, 4, 5]),
        },
    }[name]
    if name == "BertForTokenClassification":
        # transformers scores padded positions too; 1.0 and ptfunc skip them. Ignore them here.
        labels["labels"][0, 4:] = -100
    return ids, {"attention_mask": mask}, labels


NAMES = [
    "BertModel",
    "BertForPreTraining",
    "BertForMaskedLM",
    "BertForNextSentencePrediction",
    "BertForSequenceClassification",
    "BertForMultipleChoice",
    "BertForTokenClassification",
    "BertForQuestionAnswering",
]


def _scalar(model, out) -> torch.Tensor:
    """The loss, or a fixed reduction of the base model's outputs."""
    if isinstance(model, bert.BertModel):
        return out.last_hidden_state.pow(2).mean() + out.pooler_output.sum()
    return out.loss


def _loss_fn(model, ids, options, labels):
    def loss(params):
        return _scalar(model, model.apply(params, ids, **options, **labels))

    return loss


@pytest.mark.parametrize("name", NAMES)
def test_grad_matches_transformers_autograd(name):
    hf_config = transformers.BertConfig(**CONFIG.to_dict(), attn_implementation="eager")
    torch.manual_seed(0)
    reference = getattr(transformers, name)(hf_config).eval()
    model = getattr(bert, name)(CONFIG)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        params = ptfunc.io.from_torch_state_dict(model, reference.state_dict())
    ids, options, labels = _batch(name)

    grads = tree.to_flat_dict(grad(_loss_fn(model, ids, options, labels))(params))
    ref_out = reference(ids, **options, **labels)
    if name == "BertModel":
        ref_loss = ref_out.last_hidden_state.pow(2).mean() + ref_out.pooler_output.sum()
    else:
        ref_loss = ref_out.loss
    ref_loss.backward()
    ref_grads = {n: p.grad for n, p in reference.named_parameters()}
    for n, g in grads.items():
        r = ref_grads[n] if ref_grads[n] is not None else torch.zeros_like(g)
        torch.testing.assert_close(g, r, atol=1e-5, rtol=1e-4, msg=lambda m, n=n: f"{n}: {m}")


def _init(name: str, seed: int):
    model = getattr(bert, name)(CONFIG)
    return model, model.init(ptfunc.random.key(seed))


@pytest.mark.parametrize("name", NAMES)
def test_vmap_over_stacked_params_equals_loop(name):
    """An ensemble of 4 members evaluated by one vmap."""
    model = getattr(bert, name)(CONFIG)
    members = [model.init(k) for k in ptfunc.random.split(ptfunc.random.key(1), 4)]
    ensemble = tree.stack(members)
    ids, options, _ = _batch(name)

    def first_output(params):
        return model.apply(params, ids, **options)[0]

    batched = vmap(first_output)(ensemble)
    looped = torch.stack([first_output(p) for p in members])
    torch.testing.assert_close(batched, looped, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_per_example_grads_equal_loop(name):
    """vmap(grad) over examples (each given a batch axis of 1) equals a loop of grads."""
    model, params = _init(name, 2)
    ids, options, labels = _batch(name)

    def example_loss(params, ids, options, labels):
        add_axis = lambda t: t[None]  # noqa: E731
        return _loss_fn(
            model, add_axis(ids), tree.map(add_axis, options), tree.map(add_axis, labels)
        )(params)

    per_example = vmap(grad(example_loss), in_dims=(None, 0, 0, 0))(params, ids, options, labels)
    for i in range(B):
        pick = lambda t, i=i: t[i]  # noqa: E731
        one = grad(example_loss)(params, ids[i], tree.map(pick, options), tree.map(pick, labels))
        for n, g in tree.to_flat_dict(one).items():
            torch.testing.assert_close(
                tree.to_flat_dict(per_example)[n][i], g, atol=1e-6, rtol=1e-5
            )


@pytest.mark.parametrize("name", NAMES)
def test_jvp_matches_finite_difference(name):
    model, params = _init(name, 3)
    params = tree.astype(params, torch.float64)
    ids, options, labels = _batch(name)
    labels = tree.map(lambda t: t.double() if t.is_floating_point() else t, labels)
    f = _loss_fn(model, ids, options, labels)
    g = torch.Generator().manual_seed(4)
    tangent = tree.map(lambda p: torch.randn(p.shape, generator=g, dtype=p.dtype), params)
    _, directional = jvp(f, (params,), (tangent,))
    eps = 1e-6
    plus = f(tree.map(lambda p, t: p + eps * t, params, tangent))
    minus = f(tree.map(lambda p, t: p - eps * t, params, tangent))
    torch.testing.assert_close(directional, (plus - minus) / (2 * eps), atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_compile_fullgraph_matches_eager(name):
    """Whole-graph capture for every head (with dropout keys); Inductor codegen for the base
    model, the AOT-autograd backend for the heads to keep the suite's compile time low."""
    torch._dynamo.reset()
    backend = "inductor" if name == "BertModel" else "aot_eager"
    model, params = _init(name, 5)
    ids, options, labels = _batch(name)
    key = ptfunc.random.key(7)

    def run(params, ids, options, labels, key):
        return model.apply(params, ids, **options, **labels, train=True, key=key)

    compiled = torch.compile(run, fullgraph=True, backend=backend)
    got = compiled(params, ids, options, labels, key)
    want = run(params, ids, options, labels, key)
    for a, b in zip(tree.leaves(got), tree.leaves(want), strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_compiled_grad_step_matches_eager():
    """torch.compile around grad of a training loss with dropout keys (the usual step).

    Whole-graph capture through ``grad`` with the AOT-autograd backend; Inductor's CPU
    codegen of this graph takes minutes on 2 cores, too long for the suite."""
    torch._dynamo.reset()
    model, params = _init("BertForSequenceClassification", 6)
    ids, options, labels = _batch("BertForSequenceClassification")

    def step(params, key):
        def loss(p):
            return model.apply(p, ids, **options, **labels, train=True, key=key).loss

        return grad(loss)(params)

    key = ptfunc.random.key(8)
    got = torch.compile(step, fullgraph=True, backend="aot_eager")(params, key)
    want = step(params, key)
    for a, b in zip(tree.leaves(got), tree.leaves(want), strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
