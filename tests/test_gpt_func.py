"""torch.func and torch.compile over the six GPT / GPT-2 models.

References: Python loops for ``vmap`` (ensembles and per-example gradients), a central
finite difference in float64 for ``jvp``, eager for ``torch.compile(fullgraph=True)``,
and autograd on today's ``transformers`` for ``grad`` of the double-heads losses.
"""

from __future__ import annotations

import pytest
import torch
from torch.func import grad, jvp, vmap

import ptfunc
from ptfunc import io, tree
from ptfunc.archs import gpt2, openai_gpt

SMALL = dict(vocab_size=40, n_positions=16, n_embd=16, n_layer=2, n_head=2)
MODELS = [
    (gpt2, "GPT2Model"),
    (gpt2, "GPT2LMHeadModel"),
    (gpt2, "GPT2DoubleHeadsModel"),
    (openai_gpt, "OpenAIGPTModel"),
    (openai_gpt, "OpenAIGPTLMHeadModel"),
    (openai_gpt, "OpenAIGPTDoubleHeadsModel"),
]
IDS = {"ids": torch.randint(0, 40, (3, 6), generator=torch.Generator().manual_seed(0))}
IDS["mc"] = IDS["ids"].reshape(3, 2, 3)


def _model(module, name):
    config = (module.GPT2Config if module is gpt2 else module.OpenAIGPTConfig)(**SMALL)
    return getattr(module, name)(config)


def _batch(name):
    if "DoubleHeads" in name:
        return IDS["mc"], {
            "mc_token_ids": torch.tensor([[2, 1], [0, 2], [2, 2]]),
            "labels": IDS["mc"],
            "mc_labels": torch.tensor([0, 1, 1]),
        }
    if "LMHead" in name:
        return IDS["ids"], {"labels": IDS["ids"]}
    return IDS["ids"], {}


def _loss(model, name, params, ids, extra):
    out = model.apply(params, ids, **extra)
    return out.loss if extra else out.last_hidden_state.pow(2).mean()


@pytest.mark.parametrize("module,name", MODELS, ids=[n for _, n in MODELS])
def test_vmap_ensemble_per_example_grads_jvp_compile(module, name):
    model = _model(module, name)
    ids, extra = _batch(name)
    members = [model.init(k) for k in ptfunc.random.split(ptfunc.random.key(0), 3)]
    params = members[0]

    # ensemble of 3 by vmap over stacked params == loop
    first = lambda p: model.apply(p, ids)[0]  # noqa: E731
    batched = vmap(first)(tree.stack(members))
    for i, p in enumerate(members):
        torch.testing.assert_close(batched[i], first(p), atol=1e-6, rtol=1e-5)

    # per-example gradients: vmap(grad) over examples (batch axis re-added) == loop
    def example_loss(p, x, e):
        add = lambda t: t[None]  # noqa: E731
        return _loss(model, name, p, add(x), tree.map(add, e))

    per_example = vmap(grad(example_loss), in_dims=(None, 0, 0))(params, ids, extra)
    flat = tree.to_flat_dict(per_example)
    for i in range(ids.shape[0]):
        pick = lambda t, i=i: t[i]  # noqa: E731
        one = tree.to_flat_dict(grad(example_loss)(params, ids[i], tree.map(pick, extra)))
        for n, g in one.items():
            torch.testing.assert_close(flat[n][i], g, atol=1e-6, rtol=1e-5)

    # jvp == central finite difference (float64)
    p64 = tree.astype(params, torch.float64)
    f = lambda p: _loss(model, name, p, ids, extra)  # noqa: E731
    gen = torch.Generator().manual_seed(1)
    tangent = tree.map(lambda p: torch.randn(p.shape, generator=gen, dtype=p.dtype), p64)
    _, directional = jvp(f, (p64,), (tangent,))
    eps = 1e-6
    fd = (
        f(tree.map(lambda p, t: p + eps * t, p64, tangent))
        - f(tree.map(lambda p, t: p - eps * t, p64, tangent))
    ) / (2 * eps)
    torch.testing.assert_close(directional, fd, atol=1e-6, rtol=1e-5)

    # torch.compile(fullgraph=True) with dropout keys == eager
    torch._dynamo.reset()
    key = ptfunc.random.key(5)
    run = lambda p, x, k: model.apply(p, x, **extra, train=True, key=k)  # noqa: E731
    compiled = torch.compile(run, fullgraph=True, backend="aot_eager")
    for a, b in zip(
        tree.leaves(compiled(params, ids, key)), tree.leaves(run(params, ids, key)), strict=True
    ):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)


transformers = pytest.importorskip("transformers")


@pytest.mark.parametrize("module,name", [MODELS[2], MODELS[5]], ids=["GPT2", "OpenAIGPT"])
def test_double_heads_grad_matches_transformers(module, name):
    config_cls = transformers.GPT2Config if module is gpt2 else transformers.OpenAIGPTConfig
    torch.manual_seed(0)
    reference = getattr(transformers, name)(config_cls(**SMALL)).eval()
    model = _model(module, name)
    params = io.from_torch_state_dict(model, reference.state_dict())
    ids, extra = _batch(name)
    grads = tree.to_flat_dict(grad(lambda p: sum(model.apply(p, ids, **extra)[:2]))(params))
    out = reference(ids, **extra)
    (out.loss + out.mc_loss).backward()
    for n, p in reference.named_parameters():
        torch.testing.assert_close(grads[n], p.grad, atol=1e-5, rtol=1e-4)
