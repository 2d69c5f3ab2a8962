"""ALBERT against transformers 5 (eager attention), and under torch.func / torch.compile.

References: every head's outputs, losses, hidden states and attentions vs transformers'
module with the same weights (its state dict loaded through ``ptfunc.io``), float32
max-abs <= 1e-5, with num_hidden_groups 1 and 2 and inner_group_num 1 and 2;
``save_pretrained`` read back by transformers' ``from_pretrained``; ``grad`` vs
transformers' autograd (the shared layers' gradients summed over their uses); ``vmap`` vs
loops, with ``remat=True`` too; ``jvp`` vs a float64 central finite difference;
``torch.compile(fullgraph=True)`` vs eager.
"""

from __future__ import annotations

import warnings

import pytest
import torch
from torch.func import grad, jvp, vmap

import ptfunc
from ptfunc import tree
from ptfunc.archs import albert

transformers = pytest.importorskip("transformers")

ATOL = 1e-5
B, S, V = 3, 7, 99
CONFIG = dict(
    vocab_size=V,
    embedding_size=16,
    hidden_size=32,
    num_hidden_layers=3,
    num_hidden_groups=2,
    inner_group_num=2,
    num_attention_heads=4,
    intermediate_size=37,
    max_position_embeddings=64,
    num_labels=3,
)
NAMES = [
    "AlbertModel",
    "AlbertForPreTraining",
    "AlbertForMaskedLM",
    "AlbertForSequenceClassification",
    "AlbertForMultipleChoice",
    "AlbertForTokenClassification",
    "AlbertForQuestionAnswering",
]
SHARING = [(1, 1), (1, 2), (2, 1), (2, 2)]  # (num_hidden_groups, inner_group_num)


def _overrides(name: str) -> dict:
    return (
        {"num_labels": 2} if name in ("AlbertForQuestionAnswering", "AlbertForPreTraining") else {}
    )


def _inputs(name: str, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    shape = (B, 2, S) if name == "AlbertForMultipleChoice" else (B, S)
    ids = torch.randint(1, V, shape, generator=g)
    mask = torch.ones(shape, dtype=torch.long)
    mask[..., 0, 5:] = 0  # first example padded
    types = torch.zeros(shape, dtype=torch.long)
    types[..., 4:] = 1
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


def _labels(name: str) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    if name in ("AlbertForPreTraining", "AlbertForMaskedLM"):
        mlm = torch.randint(0, V, (B, S), generator=g)
        mlm[:, ::2] = -100
        out = {"labels": mlm}
        if name == "AlbertForPreTraining":
            out["sentence_order_label"] = torch.tensor([0, 1, 1])
        return out
    if name in ("AlbertForSequenceClassification", "AlbertForMultipleChoice"):
        return {"labels": torch.tensor([0, 1, 1])}
    if name == "AlbertForTokenClassification":
        return {"labels": torch.randint(0, 3, (B, S), generator=g)}
    if name == "AlbertForQuestionAnswering":
        return {
            "start_positions": torch.tensor([1, 3, 9]),
            "end_positions": torch.tensor([2, 5, 0]),
        }
    return {}


def _hf_model(name: str, **overrides):
    config = transformers.AlbertConfig(
        **{**CONFIG, **_overrides(name), **overrides}, attn_implementation="eager"
    )
    torch.manual_seed(0)
    return getattr(transformers, name)(config).eval()


def _ours(name: str, reference, **overrides):
    config = albert.AlbertConfig(**{**CONFIG, **_overrides(name), **overrides})
    model = getattr(albert, name)(config)
    return model, ptfunc.io.from_torch_state_dict(model, reference.state_dict())


def _assert_close(a, b, what):
    assert a.shape == b.shape, f"{what}: shape {tuple(a.shape)} vs {tuple(b.shape)}"
    err = (a - b).abs().max().item()
    assert err <= ATOL, f"{what}: max abs diff {err:.3g} > {ATOL}"


def _fields(name: str) -> list[str]:
    return {
        "AlbertModel": ["last_hidden_state", "pooler_output"],
        "AlbertForPreTraining": ["prediction_logits", "sop_logits"],
        "AlbertForQuestionAnswering": ["start_logits", "end_logits"],
    }.get(name, ["logits"])


def _run(model, params, inputs, **kw):
    inputs = dict(inputs)
    return model.apply(params, inputs.pop("input_ids"), **inputs, **kw)


def _compare(name, sharing, with_labels):
    groups, inner = sharing
    kw = dict(num_hidden_groups=groups, inner_group_num=inner)
    reference = _hf_model(name, **kw)
    model, params = _ours(name, reference, **kw)
    assert len(params.get("albert", params)["encoder"]["albert_layer_groups"]) == groups
    inputs = _inputs(name)
    labels = _labels(name) if with_labels else {}
    with torch.no_grad():
        ref = reference(**inputs, **labels, output_hidden_states=True, output_attentions=True)
    out = _run(model, params, inputs, **labels, output_hidden_states=True, output_attentions=True)
    if labels:
        _assert_close(out.loss, ref.loss, "loss")
    for field in _fields(name):
        _assert_close(getattr(out, field), getattr(ref, field), field)
    calls = CONFIG["num_hidden_layers"] * inner
    assert len(out.hidden_states) == calls + 1 and len(out.attentions) == calls
    for i, (a, b) in enumerate(zip(out.hidden_states, ref.hidden_states, strict=True)):
        _assert_close(a, b, f"hidden_states[{i}]")
    for i, (a, b) in enumerate(zip(out.attentions, ref.attentions, strict=True)):
        _assert_close(a, b, f"attentions[{i}]")


@pytest.mark.parametrize("sharing", SHARING, ids=[f"g{g}i{i}" for g, i in SHARING])
def test_base_model_matches_transformers_for_each_sharing(sharing):
    _compare("AlbertModel", sharing, False)


@pytest.mark.parametrize("with_labels", [False, True], ids=["nolabels", "labels"])
@pytest.mark.parametrize("name", NAMES[1:])
def test_heads_match_transformers(name, with_labels):
    """Outputs, loss, hidden states and attentions, with padding and token types."""
    _compare(name, (2, 2), with_labels)


def test_regression_and_sop_heads():
    """num_labels == 1: MSE, as transformers; the single-group default model too."""
    reference = _hf_model("AlbertForSequenceClassification", num_labels=1, num_hidden_groups=1)
    model, params = _ours(
        "AlbertForSequenceClassification", reference, num_labels=1, num_hidden_groups=1
    )
    inputs, targets = _inputs(""), torch.tensor([0.5, -1.0, 2.0])
    with torch.no_grad():
        ref = reference(**inputs, labels=targets)
    _assert_close(_run(model, params, inputs, labels=targets).loss, ref.loss, "mse loss")


def test_head_mask_of_ones_changes_nothing_and_a_bad_shape_is_refused():
    """transformers 5 has no head_mask for ALBERT: ones give its output (the mask's values
    are checked against transformers in tests/test_research_bertology_new_encoders.py)."""
    reference = _hf_model("AlbertModel", num_hidden_groups=2, inner_group_num=2)
    model, params = _ours("AlbertModel", reference, num_hidden_groups=2, inner_group_num=2)
    inputs = _inputs("AlbertModel")
    heads = (model.config.num_hidden_layers, model.config.num_attention_heads)
    with torch.no_grad():
        ref = reference(**inputs)
    out = _run(model, params, inputs, head_mask=torch.ones(heads))
    _assert_close(out.last_hidden_state, ref.last_hidden_state, "head_mask of ones")
    with pytest.raises(ValueError, match="head_mask"):
        _run(model, params, inputs, head_mask=torch.ones(heads[0] + 1, heads[1]))


@pytest.mark.parametrize("name", ["AlbertForPreTraining", "AlbertForSequenceClassification"])
def test_save_pretrained_loads_in_transformers(tmp_path, name):
    """ptfunc writes, transformers 5 reads: no missing or unexpected keys, same outputs."""
    model = getattr(albert, name)(albert.AlbertConfig(**{**CONFIG, **_overrides(name)}))
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
    out = _run(model, params, inputs)
    for field in _fields(name):
        _assert_close(getattr(out, field), getattr(ref, field), field)
    again, params2 = ptfunc.io.from_pretrained(tmp_path, type(model))
    assert again == model
    for a, b in zip(tree.leaves(params), tree.leaves(params2), strict=True):
        assert torch.equal(a, b)


# -- torch.func and torch.compile ---------------------------------------------------------------

SMALL = albert.AlbertConfig(**{**CONFIG, "num_labels": 2, "hidden_dropout_prob": 0.1})


def _loss_fn(model, name, inputs, labels, **kw):
    def loss(params):
        out = _run(model, params, inputs, **labels, **kw)
        return out.last_hidden_state.pow(2).mean() if name == "AlbertModel" else out.loss

    return loss


@pytest.mark.parametrize("name", ["AlbertForPreTraining", "AlbertForMultipleChoice"])
def test_grad_matches_transformers_autograd(name):
    """Shared layers: each subtree's gradient sums its uses, as autograd on the module."""
    reference = _hf_model(name, num_labels=2)
    model, params = _ours(name, reference, num_labels=2)
    inputs, labels = _inputs(name), _labels(name)
    grads = tree.to_flat_dict(grad(_loss_fn(model, name, inputs, labels))(params))
    reference(**inputs, **labels).loss.backward()
    ref = {n: p.grad for n, p in reference.named_parameters()}
    assert set(grads) == set(ref) - {"predictions.decoder.weight", "predictions.decoder.bias"}
    for n, g in grads.items():
        r = ref[n] if ref[n] is not None else torch.zeros_like(g)
        torch.testing.assert_close(g, r, atol=1e-5, rtol=1e-4, msg=lambda m, n=n: f"{n}: {m}")


@pytest.mark.parametrize("remat", [False, True], ids=["plain", "remat"])
def test_vmap_over_params_and_per_example_grads(remat):
    """vmap over stacked params and vmap(grad) over examples, the shared layer under remat."""
    name = "AlbertForSequenceClassification"
    model = albert.AlbertForSequenceClassification(SMALL)
    members = [model.init(k) for k in ptfunc.random.split(ptfunc.random.key(1), 3)]
    inputs, labels = _inputs(name), _labels(name)
    first = lambda p: _run(model, p, inputs, remat=remat)[0]  # noqa: E731
    batched = vmap(first)(tree.stack(members))
    torch.testing.assert_close(batched, torch.stack([first(p) for p in members]))

    params = members[0]

    def example_loss(params, inputs, labels, remat):
        one = lambda t: t[None]  # noqa: E731
        f = _loss_fn(model, name, tree.map(one, inputs), tree.map(one, labels), remat=remat)
        return f(params)

    per = vmap(grad(example_loss), in_dims=(None, 0, 0, None))(params, inputs, labels, remat)
    per = tree.to_flat_dict(per)
    for i in range(B):
        pick = lambda t, i=i: t[i]  # noqa: E731
        g = grad(example_loss)(params, tree.map(pick, inputs), tree.map(pick, labels), False)
        for n, v in tree.to_flat_dict(g).items():
            torch.testing.assert_close(per[n][i], v, atol=1e-6, rtol=1e-5)


def test_jvp_matches_finite_difference():
    name = "AlbertForPreTraining"
    model = albert.AlbertForPreTraining(SMALL)
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
    """compile(fullgraph) == eager with dropout keys; keys decide dropout; remat same grads
    (the shared layers recomputed at each of their uses)."""
    name = "AlbertForMultipleChoice"
    model = albert.AlbertForMultipleChoice(SMALL)
    params = model.init(ptfunc.random.key(5))
    inputs, labels = _inputs(name), _labels(name)

    def run(params, inputs, key, remat=False):
        return _run(model, params, inputs, **labels, train=True, key=key, remat=remat)

    torch._dynamo.reset()
    key = ptfunc.random.key(7)
    got = torch.compile(run, fullgraph=True, backend="aot_eager")(params, inputs, key)
    want = run(params, inputs, key)
    for a, b in zip(tree.leaves(got), tree.leaves(want), strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    assert torch.equal(run(params, inputs, key).logits, want.logits)
    assert not torch.equal(run(params, inputs, ptfunc.random.key(8)).logits, want.logits)
    with pytest.raises(Exception, match="key"):
        _run(model, params, inputs, train=True)

    plain = grad(lambda p: run(p, inputs, key).loss)(params)
    remat = grad(lambda p: run(p, inputs, key, remat=True).loss)(params)
    for a, b in zip(tree.leaves(plain), tree.leaves(remat), strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)


# -- tokenizer: SentencePiece with ALBERT's special tokens --------------------------------------


def _hf_albert_tokenizer(model_file):
    """transformers 5's AlbertTokenizer from a spiece.model's vocabulary and normalisation map
    (read with ptfunc's protobuf wire reader: ``from_pretrained`` would need ``protobuf``)."""
    import struct

    from ptfunc.io import _protowire as wire

    fields = wire.parse(model_file.read_bytes())
    vocab = []
    for raw in fields[1]:  # ModelProto.pieces: piece = 1, score = 2 (fixed32)
        piece = wire.parse(raw)
        score = struct.unpack("<f", struct.pack("<I", piece[2][0]))[0] if 2 in piece else 0.0
        vocab.append((piece[1][0].decode(), score))
    charsmap = wire.parse(fields[3][0]).get(2, [None])[0] if 3 in fields else None
    return transformers.AlbertTokenizer(vocab=vocab, _spm_precompiled_charsmap=charsmap)


def test_tokenizer_ids_equal_transformers(shared_fixtures):
    """Exact ids on every line of the corpora (first 100k characters each) vs transformers 5,
    digit-comma pieces (``▁14,``) kept whole as it does."""
    from ptfunc.tokenize.albert import AlbertTokenizer

    model_file = shared_fixtures / "albert" / "spiece.model"
    ours, ref = AlbertTokenizer(model_file), _hf_albert_tokenizer(model_file)
    assert ours.encode("this is a test") == [48, 25, 21, 1289]  # transformers' own test
    whole = 0
    for corpus in sorted((shared_fixtures / "corpora").glob("*.txt")):
        for line in corpus.read_text(encoding="utf-8")[:100_000].split("\n"):
            want = ref.encode(line, add_special_tokens=False)
            assert ours.encode(line) == want, (corpus.name, line)
            whole += any(p[-1:] == "," and p[-2:-1].isdigit() for p in ours.tokenize(line))
    assert whole > 0  # lines with a digit-comma piece were among them
    a, b = "Hello, World!", "ALBERT's Tokenizer: déjà vu"
    want = ref(a, b, return_token_type_ids=True)
    got = ours(a, b)
    assert got["input_ids"] == want["input_ids"] == ours.encode(a, b, add_special_tokens=True)
    assert got["token_type_ids"] == want["token_type_ids"]
    assert ours.get_special_tokens_mask([5, 6], [7]) == [1, 0, 0, 1, 0, 1]


def test_tokenizer_split_digit_commas_equals_the_original_rule(shared_fixtures, tmp_path):
    """``split_digit_commas=True``: the original ALBERT/XLNet preparation and digit-comma
    rule, as pytorch-transformers 1.0's XLNetTokenizer runs it on the same spiece.model."""
    pytorch_transformers = pytest.importorskip("pytorch_transformers")
    from ptfunc.tokenize.albert import AlbertTokenizer

    model_file = shared_fixtures / "albert" / "spiece.model"
    ours = AlbertTokenizer(model_file, split_digit_commas=True)
    plain = AlbertTokenizer(model_file)
    ref = pytorch_transformers.XLNetTokenizer(str(model_file), do_lower_case=True)
    split = 0
    for corpus in sorted((shared_fixtures / "corpora").glob("*.txt")):
        for line in corpus.read_text(encoding="utf-8")[:100_000].split("\n"):
            want = ref.tokenize(line)
            assert ours.tokenize(line) == want, (corpus.name, line)
            assert ours.encode(line) == ref.convert_tokens_to_ids(want), (corpus.name, line)
            split += want != plain.tokenize(line)
    assert split > 0  # the rule was exercised
    ours.save_pretrained(tmp_path)
    assert AlbertTokenizer.from_pretrained(tmp_path).splits_digit_commas is True
    with pytest.raises(TypeError, match="split_digit_commas"):
        AlbertTokenizer(model_file, split_digit_commas="yes")
