"""ELECTRA against transformers 5 (eager attention), and under torch.func / torch.compile.

References: every head's outputs, losses, hidden states and attentions vs transformers'
module with the same weights (its state dict loaded through ``ptfunc.io``), float32
max-abs <= 1e-5; ``save_pretrained`` read back by transformers' ``from_pretrained``;
``grad`` vs transformers' autograd; ``vmap`` vs loops; ``jvp`` vs a float64 central
finite difference; ``torch.compile(fullgraph=True)`` vs eager; the tokenizer vs
``ElectraTokenizerFast`` on the shared corpora.
"""

from __future__ import annotations

import warnings

import pytest
import torch
from torch.func import grad, jvp, vmap

import ptfunc
from ptfunc import tree
from ptfunc.archs import electra

transformers = pytest.importorskip("transformers")

ATOL = 1e-5
B, S, V = 3, 7, 99
CONFIG = dict(
    vocab_size=V,
    embedding_size=16,
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=37,
    max_position_embeddings=64,
    type_vocab_size=2,
    num_labels=3,
)
NAMES = [
    "ElectraModel",
    "ElectraForPreTraining",
    "ElectraForMaskedLM",
    "ElectraForSequenceClassification",
    "ElectraForMultipleChoice",
    "ElectraForTokenClassification",
    "ElectraForQuestionAnswering",
]


def _overrides(name: str) -> dict:
    return {"num_labels": 2} if name == "ElectraForQuestionAnswering" else {}


def _inputs(name: str, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    shape = (B, 2, S) if name == "ElectraForMultipleChoice" else (B, S)
    ids = torch.randint(1, V, shape, generator=g)
    mask = torch.ones(shape, dtype=torch.long)
    mask[..., 0, 5:] = 0  # first example padded
    types = torch.zeros(shape, dtype=torch.long)
    types[..., 4:] = 1
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


def _labels(name: str) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    if name == "ElectraForPreTraining":
        return {"labels": torch.randint(0, 2, (B, S), generator=g)}
    if name == "ElectraForMaskedLM":
        mlm = torch.randint(0, V, (B, S), generator=g)
        mlm[:, ::2] = -100
        return {"labels": mlm}
    if name in ("ElectraForSequenceClassification", "ElectraForMultipleChoice"):
        return {"labels": torch.tensor([0, 1, 1])}
    if name == "ElectraForTokenClassification":
        return {"labels": torch.randint(0, 3, (B, S), generator=g)}
    if name == "ElectraForQuestionAnswering":
        return {
            "start_positions": torch.tensor([1, 3, 9]),
            "end_positions": torch.tensor([2, 5, 0]),
        }
    return {}


def _hf_model(name: str, **overrides):
    config = transformers.ElectraConfig(
        **{**CONFIG, **_overrides(name), **overrides}, attn_implementation="eager"
    )
    torch.manual_seed(0)
    return getattr(transformers, name)(config).eval()


def _ours(name: str, reference, **overrides):
    config = electra.ElectraConfig(**{**CONFIG, **_overrides(name), **overrides})
    model = getattr(electra, name)(config)
    return model, ptfunc.io.from_torch_state_dict(model, reference.state_dict())


def _assert_close(a, b, what):
    assert a.shape == b.shape, f"{what}: shape {tuple(a.shape)} vs {tuple(b.shape)}"
    err = (a - b).abs().max().item()
    assert err <= ATOL, f"{what}: max abs diff {err:.3g} > {ATOL}"


def _fields(name: str) -> list[str]:
    return {
        "ElectraModel": ["last_hidden_state"],
        "ElectraForQuestionAnswering": ["start_logits", "end_logits"],
    }.get(name, ["logits"])


def _run(model, params, name, inputs, **kw):
    inputs = dict(inputs)
    return model.apply(params, inputs.pop("input_ids"), **inputs, **kw)


@pytest.mark.parametrize("with_labels", [False, True], ids=["nolabels", "labels"])
@pytest.mark.parametrize("name", NAMES)
def test_matches_transformers(name, with_labels):
    """Outputs, loss, hidden states and attentions, with padding and token types."""
    reference = _hf_model(name)
    model, params = _ours(name, reference)
    inputs = _inputs(name)
    labels = _labels(name) if with_labels and name != "ElectraModel" else {}
    with torch.no_grad():
        ref = reference(**inputs, **labels, output_hidden_states=True, output_attentions=True)
    out = _run(
        model, params, name, inputs, **labels, output_hidden_states=True, output_attentions=True
    )
    if labels:
        _assert_close(out.loss, ref.loss, "loss")
    for field in _fields(name):
        _assert_close(getattr(out, field), getattr(ref, field), field)
    assert len(out.hidden_states) == CONFIG["num_hidden_layers"] + 1
    for i, (a, b) in enumerate(zip(out.hidden_states, ref.hidden_states, strict=True)):
        _assert_close(a, b, f"hidden_states[{i}]")
    for i, (a, b) in enumerate(zip(out.attentions, ref.attentions, strict=True)):
        _assert_close(a, b, f"attentions[{i}]")


def test_equal_widths_have_no_projection():
    """embedding_size == hidden_size: no ``embeddings_project``, in either library."""
    reference = _hf_model("ElectraModel", embedding_size=32)
    assert not any("embeddings_project" in n for n in reference.state_dict())
    model, params = _ours("ElectraModel", reference, embedding_size=32)
    assert "embeddings_project" not in params
    inputs = _inputs("ElectraModel")
    with torch.no_grad():
        ref = reference(**inputs)
    _assert_close(_run(model, params, "", inputs).last_hidden_state, ref.last_hidden_state, "out")


def test_pretraining_loss_without_mask_and_regression():
    """Discriminator BCE over every token without a mask; MSE when num_labels == 1."""
    reference = _hf_model("ElectraForPreTraining")
    model, params = _ours("ElectraForPreTraining", reference)
    ids, labels = _inputs("")["input_ids"], _labels("ElectraForPreTraining")["labels"]
    with torch.no_grad():
        ref = reference(ids, labels=labels)
    _assert_close(model.apply(params, ids, labels=labels).loss, ref.loss, "bce loss")
    reference = _hf_model("ElectraForSequenceClassification", num_labels=1)
    model, params = _ours("ElectraForSequenceClassification", reference, num_labels=1)
    targets = torch.tensor([0.5, -1.0, 2.0])
    with torch.no_grad():
        ref = reference(ids, labels=targets)
    _assert_close(model.apply(params, ids, labels=targets).loss, ref.loss, "mse loss")


@pytest.mark.parametrize("name", ["ElectraForMaskedLM", "ElectraForMultipleChoice"])
def test_save_pretrained_loads_in_transformers(tmp_path, name):
    """ptfunc writes, transformers 5 reads: no missing or unexpected keys, same outputs."""
    model = getattr(electra, name)(electra.ElectraConfig(**CONFIG))
    params = model.init(ptfunc.random.key(3))
    model.save_pretrained(tmp_path, params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference, info = getattr(transformers, name).from_pretrained(
            tmp_path, output_loading_info=True, attn_implementation="eager"
        )
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    inputs = _inputs(name)
    with torch.no_grad():
        ref = reference.eval()(**inputs)
    _assert_close(_run(model, params, name, inputs).logits, ref.logits, "logits")
    again, params2 = ptfunc.io.from_pretrained(tmp_path, type(model))
    assert again == model
    for a, b in zip(tree.leaves(params), tree.leaves(params2), strict=True):
        assert torch.equal(a, b)


# -- torch.func and torch.compile ---------------------------------------------------------------

SMALL = electra.ElectraConfig(**{**CONFIG, "num_labels": 2})


def _scalar(name, out):
    return out.last_hidden_state.pow(2).mean() if name == "ElectraModel" else out.loss


def _loss_fn(model, name, inputs, labels):
    def loss(params):
        return _scalar(name, _run(model, params, name, inputs, **labels))

    return loss


@pytest.mark.parametrize(
    "name", ["ElectraForPreTraining", "ElectraForMaskedLM", "ElectraForMultipleChoice"]
)
def test_grad_matches_transformers_autograd(name):
    reference = _hf_model(name, num_labels=2)
    model, params = _ours(name, reference, num_labels=2)
    inputs, labels = _inputs(name), _labels(name)
    grads = tree.to_flat_dict(grad(_loss_fn(model, name, inputs, labels))(params))
    reference(**inputs, **labels).loss.backward()
    ref = {n: p.grad for n, p in reference.named_parameters()}
    for n, g in grads.items():
        r = ref[n] if ref[n] is not None else torch.zeros_like(g)
        torch.testing.assert_close(g, r, atol=1e-5, rtol=1e-4, msg=lambda m, n=n: f"{n}: {m}")


@pytest.mark.parametrize("name", ["ElectraModel", "ElectraForSequenceClassification"])
def test_vmap_over_params_and_per_example_grads(name):
    model = getattr(electra, name)(SMALL)
    members = [model.init(k) for k in ptfunc.random.split(ptfunc.random.key(1), 3)]
    inputs = _inputs(name)
    first = lambda p: _run(model, p, name, inputs)[0]  # noqa: E731
    batched = vmap(first)(tree.stack(members))
    torch.testing.assert_close(batched, torch.stack([first(p) for p in members]))

    params = members[0]
    labels = _labels(name) if name != "ElectraModel" else {}

    def example_loss(params, inputs, labels):
        one = lambda t: t[None]  # noqa: E731
        return _loss_fn(model, name, tree.map(one, inputs), tree.map(one, labels))(params)

    per = tree.to_flat_dict(vmap(grad(example_loss), in_dims=(None, 0, 0))(params, inputs, labels))
    for i in range(B):
        pick = lambda t, i=i: t[i]  # noqa: E731
        g = grad(example_loss)(params, tree.map(pick, inputs), tree.map(pick, labels))
        for n, v in tree.to_flat_dict(g).items():
            torch.testing.assert_close(per[n][i], v, atol=1e-6, rtol=1e-5)


def test_jvp_matches_finite_difference():
    name = "ElectraForPreTraining"
    model = electra.ElectraForPreTraining(SMALL)
    params = tree.astype(model.init(ptfunc.random.key(3)), torch.float64)
    f = _loss_fn(model, name, _inputs(name), _labels(name))
    g = torch.Generator().manual_seed(4)
    tangent = tree.map(lambda p: torch.randn(p.shape, generator=g, dtype=p.dtype), params)
    _, directional = jvp(f, (params,), (tangent,))
    eps = 1e-6
    plus = f(tree.map(lambda p, t: p + eps * t, params, tangent))
    minus = f(tree.map(lambda p, t: p - eps * t, params, tangent))
    torch.testing.assert_close(directional, (plus - minus) / (2 * eps), atol=1e-6, rtol=1e-5)


def test_compile_fullgraph_keyed_dropout_and_remat():
    """compile(fullgraph) == eager with dropout keys; keys decide dropout; remat same grads."""
    name = "ElectraForMultipleChoice"
    model = electra.ElectraForMultipleChoice(SMALL)
    params = model.init(ptfunc.random.key(5))
    inputs, labels = _inputs(name), _labels(name)

    def run(params, inputs, key, remat=False):
        return _run(model, params, name, inputs, **labels, train=True, key=key, remat=remat)

    torch._dynamo.reset()
    key = ptfunc.random.key(7)
    got = torch.compile(run, fullgraph=True, backend="aot_eager")(params, inputs, key)
    want = run(params, inputs, key)
    for a, b in zip(tree.leaves(got), tree.leaves(want), strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    assert torch.equal(run(params, inputs, key).logits, want.logits)
    assert not torch.equal(run(params, inputs, ptfunc.random.key(8)).logits, want.logits)
    with pytest.raises(Exception, match="key"):
        _run(model, params, name, inputs, train=True)

    plain = grad(lambda p: run(p, inputs, key).loss)(params)
    remat = grad(lambda p: run(p, inputs, key, remat=True).loss)(params)
    for a, b in zip(tree.leaves(plain), tree.leaves(remat), strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)


def test_head_mask_zeroes_heads():
    model = electra.ElectraModel(SMALL)
    params = model.init(ptfunc.random.key(9))
    head_mask = torch.ones(2, 4)
    head_mask[1, 2] = 0
    out = _run(model, params, "", _inputs(""), head_mask=head_mask, output_attentions=True)
    assert out.attentions[1][:, 2].abs().max() == 0 and out.attentions[0].abs().max() > 0


# -- tokenizer: BERT's WordPiece ---------------------------------------------------------------


def test_tokenizer_ids_equal_electra_fast(shared_fixtures):
    """ptfunc's BertTokenizer gives ElectraTokenizerFast's ids, line by line (exact)."""
    from ptfunc.tokenize.bert import BertTokenizer

    vocab = str(shared_fixtures / "bert-base-uncased" / "vocab.txt")
    ours = BertTokenizer(vocab, do_lower_case=True)
    fast = transformers.ElectraTokenizerFast(vocab=vocab, do_lower_case=True)
    for corpus in sorted((shared_fixtures / "corpora").glob("*.txt")):
        lines = corpus.read_text(encoding="utf-8")[:20_000].split("\n")
        for line in lines:
            assert ours.encode(line, add_special_tokens=True) == fast.encode(line), (
                corpus.name,
                line,
            )
    pair = ours.encode("a first one", "and a second", add_special_tokens=True)
    assert pair == fast.encode("a first one", "and a second")
