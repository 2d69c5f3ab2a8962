"""RoBERTa against transformers 5 (eager attention), and under torch.func / torch.compile.

References: transformers' ``Roberta*`` modules with the same weights (their state dict
loaded through ``ptfunc.io``) on the same inputs, float32 max-abs <= 1e-5; ``vmap``
against loops, ``jvp`` against a central finite difference in float64 (atol 1e-6),
``torch.compile(fullgraph=True)`` against eager (atol 1e-5).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch.func import grad, jvp, vmap

import ptfunc
from ptfunc import tree
from ptfunc.archs import roberta
from ptfunc.tokenize.roberta import RobertaTokenizer

transformers = pytest.importorskip("transformers")

ATOL = 1e-5
B, S, V, PAD = 3, 7, 99, 1
CONFIG = dict(
    vocab_size=V,
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=37,
    max_position_embeddings=20,
    type_vocab_size=2,
    layer_norm_eps=1e-5,
    num_labels=3,
)
NAMES = [
    "RobertaModel",
    "RobertaForMaskedLM",
    "RobertaForSequenceClassification",
    "RobertaForMultipleChoice",
    "RobertaForTokenClassification",
    "RobertaForQuestionAnswering",
]


def _overrides(name: str) -> dict:
    return {"num_labels": 2} if name == "RobertaForQuestionAnswering" else {}


def _inputs(name: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """Right padding in example 0, left padding in example 1, token types in the second half."""
    g = torch.Generator().manual_seed(seed)
    shape = (B, 2, S) if name == "RobertaForMultipleChoice" else (B, S)
    ids = torch.randint(3, V, shape, generator=g)
    mask = torch.ones(shape, dtype=torch.long)
    mask[..., 0, 5:] = 0
    mask[..., 1, :2] = 0
    ids = torch.where(mask == 1, ids, torch.full_like(ids, PAD))
    types = torch.zeros(shape, dtype=torch.long)
    types[..., 4:] = 1
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


def _labels(name: str) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    if name == "RobertaForMaskedLM":
        labels = torch.randint(0, V, (B, S), generator=g)
        labels[:, ::2] = -100
        return {"labels": labels}
    if name == "RobertaForSequenceClassification":
        return {"labels": torch.tensor([0, 2, 1])}
    if name == "RobertaForMultipleChoice":
        return {"labels": torch.tensor([1, 0, 1])}
    if name == "RobertaForTokenClassification":
        labels = torch.randint(0, 3, (B, S), generator=g)
        mask = _inputs(name)["attention_mask"]
        return {"labels": torch.where(mask == 1, labels, torch.full_like(labels, -100))}
    if name == "RobertaForQuestionAnswering":
        return {
            "start_positions": torch.tensor([1, 3, 9]),
            "end_positions": torch.tensor([2, 5, 0]),
        }
    return {}


def _hf_config(name: str, **overrides):
    return transformers.RobertaConfig(
        **{**CONFIG, **_overrides(name), **overrides}, attn_implementation="eager"
    )


def _hf_model(name: str, **overrides):
    torch.manual_seed(0)
    return getattr(transformers, name)(_hf_config(name, **overrides)).eval()


def _config(name: str, **overrides) -> roberta.RobertaConfig:
    return roberta.RobertaConfig(**{**CONFIG, **_overrides(name), **overrides})


def _ours(name: str, reference, **overrides):
    model = getattr(roberta, name)(_config(name, **overrides))
    return model, ptfunc.io.from_torch_state_dict(model, reference.state_dict())


def _close(a, b, what):
    assert a.shape == b.shape, f"{what}: shape {tuple(a.shape)} vs {tuple(b.shape)}"
    err = (a - b).abs().max().item()
    assert err <= ATOL, f"{what}: max abs diff {err:.3g} > {ATOL}"


def _fields(name: str, out) -> list[torch.Tensor]:
    names = {
        "RobertaModel": ["last_hidden_state", "pooler_output"],
        "RobertaForQuestionAnswering": ["start_logits", "end_logits"],
    }.get(name, ["logits"])
    return [getattr(out, f) for f in names]


@pytest.mark.parametrize("name", NAMES)
def test_matches_transformers(name):
    """Outputs, loss, hidden states and attentions, with left/right padding and token types."""
    reference = _hf_model(name)
    model, params = _ours(name, reference)
    inputs, labels = _inputs(name), _labels(name)
    with torch.no_grad():
        ref = reference(**inputs, **labels, output_hidden_states=True, output_attentions=True)
    out = model.apply(params, **labels, **inputs, output_hidden_states=True, output_attentions=True)
    if labels:
        _close(out.loss, ref.loss, "loss")
    for i, (a, b) in enumerate(zip(_fields(name, out), _fields(name, ref), strict=True)):
        _close(a, b, f"output {i}")
    for i, (a, b) in enumerate(zip(out.hidden_states, ref.hidden_states, strict=True)):
        _close(a, b, f"hidden_states[{i}]")
    for i, (a, b) in enumerate(zip(out.attentions, ref.attentions, strict=True)):
        _close(a, b, f"attentions[{i}]")
    assert len(out.hidden_states) == 3 and len(out.attentions) == 2
    plain = model.apply(params, **inputs)  # fused attention path, no extra outputs
    for i, (a, b) in enumerate(zip(_fields(name, plain), _fields(name, ref), strict=True)):
        _close(a, b, f"fused output {i}")


def test_padding_aware_positions():
    """Left and right padding give the same states for the same real tokens (and transformers'
    ``create_position_ids_from_input_ids``)."""
    reference = _hf_model("RobertaModel")
    model, params = _ours("RobertaModel", reference)
    tokens = torch.tensor([5, 9, 11, 4])
    right = torch.cat([tokens, torch.full((3,), PAD)])[None]
    left = torch.cat([torch.full((3,), PAD), tokens])[None]
    for ids in (right, left):
        want = reference.embeddings.create_position_ids_from_input_ids(ids, PAD)
        assert torch.equal(roberta.position_ids_from_input_ids(ids, PAD), want)
    ids = torch.cat([right, left])
    mask = (ids != PAD).long()
    out = model.apply(params, ids, attention_mask=mask).last_hidden_state
    _close(out[0, :4], out[1, 3:], "right vs left padding")
    with torch.no_grad():
        ref = reference(ids, attention_mask=mask).last_hidden_state
    _close(out, ref, "last_hidden_state")
    explicit = torch.arange(2, 9).expand(2, 7)
    with torch.no_grad():
        ref = reference(ids, attention_mask=mask, position_ids=explicit).last_hidden_state
    _close(model.apply(params, ids, attention_mask=mask, position_ids=explicit)[0], ref, "given")


def test_regression_head_uses_mse():
    reference = _hf_model("RobertaForSequenceClassification", num_labels=1)
    model, params = _ours("RobertaForSequenceClassification", reference, num_labels=1)
    inputs, targets = _inputs("x"), torch.tensor([0.5, -1.0, 2.0])
    with torch.no_grad():
        ref = reference(**inputs, labels=targets)
    out = model.apply(params, **inputs, labels=targets)
    _close(out.loss, ref.loss, "mse loss")


@pytest.mark.parametrize("name", ["RobertaForMaskedLM", "RobertaForSequenceClassification"])
def test_save_then_transformers_loads(name, tmp_path):
    """ptfunc.save_pretrained -> transformers 5 from_pretrained: no missing/unexpected keys."""
    model = getattr(roberta, name)(_config(name))
    params = model.init(ptfunc.random.key(3))
    model.save_pretrained(tmp_path, params)
    reference, info = getattr(transformers, name).from_pretrained(
        tmp_path, output_loading_info=True, attn_implementation="eager"
    )
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    inputs = _inputs(name)
    with torch.no_grad():
        ref = reference.eval()(**inputs)
    _close(model.apply(params, **inputs).logits, ref.logits, "logits")
    again, params2 = type(model).from_pretrained(tmp_path)
    _close(again.apply(params2, **inputs).logits, ref.logits, "reloaded logits")
    reference.save_pretrained(tmp_path / "hf")  # and back: transformers' files into ptfunc
    again, params3 = type(model).from_pretrained(tmp_path / "hf")
    _close(again.apply(params3, **inputs).logits, ref.logits, "from transformers' files")


def test_init_zeroes_padding_rows():
    params = roberta.RobertaModel(_config("RobertaModel")).init(ptfunc.random.key(0))
    emb = params["embeddings"]
    assert emb["word_embeddings"]["weight"][PAD].abs().max() == 0
    assert emb["position_embeddings"]["weight"][PAD].abs().max() == 0


# -- torch.func and torch.compile -------------------------------------------------------------

FUNC_NAMES = ["RobertaForMaskedLM", "RobertaForSequenceClassification", "RobertaForMultipleChoice"]


def _init(name: str, seed: int):
    model = getattr(roberta, name)(
        _config(name, num_labels=2, hidden_size=16, num_attention_heads=2)
    )
    return model, model.init(ptfunc.random.key(seed))


def _batch(name: str):
    inputs, labels = _inputs(name), _labels(name)
    if name == "RobertaForSequenceClassification":
        labels = {"labels": torch.tensor([0, 1, 1])}
    return inputs.pop("input_ids"), inputs, labels


def _loss_fn(model, ids, options, labels, **kw):
    return lambda params: model.apply(params, ids, **options, **labels, **kw).loss


@pytest.mark.parametrize("name", FUNC_NAMES)
def test_grad_matches_transformers_autograd(name):
    reference = _hf_model(name)
    model, params = _ours(name, reference)
    inputs, labels = _inputs(name), _labels(name)
    reference(**inputs, **labels).loss.backward()
    got = tree.to_flat_dict(grad(_loss_fn(model, inputs.pop("input_ids"), inputs, labels))(params))
    ref = dict(reference.named_parameters())
    ref_word = f"{model.base_model_prefix}.embeddings.word_embeddings.weight"
    for n, g in got.items():
        torch.testing.assert_close(g, ref[n].grad, atol=1e-5, rtol=1e-4, msg=n)
    assert ref_word in got


def test_vmap_over_params_and_examples():
    """An ensemble of 2 by vmap over stacked params; per-example grads by vmap(grad)."""
    name = "RobertaForSequenceClassification"
    model, _ = _init(name, 0)
    members = [model.init(k) for k in ptfunc.random.split(ptfunc.random.key(1), 2)]
    ids, options, labels = _batch(name)
    first = lambda p: model.apply(p, ids, **options).logits  # noqa: E731
    batched = vmap(first)(tree.stack(members))
    torch.testing.assert_close(batched, torch.stack([first(p) for p in members]))

    def example_loss(params, ids, options, labels):
        add = lambda t: t[None]  # noqa: E731
        return _loss_fn(model, add(ids), tree.map(add, options), tree.map(add, labels))(params)

    params = members[0]
    per = vmap(grad(example_loss), in_dims=(None, 0, 0, 0))(params, ids, options, labels)
    per = tree.to_flat_dict(per)
    for i in range(B):
        pick = lambda t, i=i: t[i]  # noqa: E731
        one = grad(example_loss)(params, ids[i], tree.map(pick, options), tree.map(pick, labels))
        for n, g in tree.to_flat_dict(one).items():
            torch.testing.assert_close(per[n][i], g, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("name", FUNC_NAMES)
def test_jvp_matches_finite_difference(name):
    model, params = _init(name, 3)
    params = tree.astype(params, torch.float64)
    ids, options, labels = _batch(name)
    f = _loss_fn(model, ids, options, labels)
    g = torch.Generator().manual_seed(4)
    tangent = tree.map(lambda p: torch.randn(p.shape, generator=g, dtype=p.dtype), params)
    _, directional = jvp(f, (params,), (tangent,))
    eps = 1e-6
    plus = f(tree.map(lambda p, t: p + eps * t, params, tangent))
    minus = f(tree.map(lambda p, t: p - eps * t, params, tangent))
    torch.testing.assert_close(directional, (plus - minus) / (2 * eps), atol=1e-6, rtol=1e-5)


def test_compile_fullgraph_matches_eager():
    torch._dynamo.reset()
    model, params = _init("RobertaForMaskedLM", 5)
    ids, options, labels = _batch("RobertaForMaskedLM")

    def run(params, ids, options, labels, key):
        return model.apply(params, ids, **options, **labels, train=True, key=key)

    key = ptfunc.random.key(7)
    got = torch.compile(run, fullgraph=True, backend="aot_eager")(params, ids, options, labels, key)
    want = run(params, ids, options, labels, key)
    for a, b in zip(tree.leaves(got), tree.leaves(want), strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", FUNC_NAMES)
def test_keyed_dropout_and_remat(name):
    model, params = _init(name, 6)
    ids, options, labels = _batch(name)
    run = lambda k: model.apply(params, ids, **options, **labels, train=True, key=k).loss  # noqa: E731
    k1, k2 = ptfunc.random.split(ptfunc.random.key(9), 2)
    assert torch.equal(run(k1), run(k1))
    assert not torch.equal(run(k1), run(k2))
    with pytest.raises(ValueError):
        model.apply(params, ids, **options, train=True)
    plain = grad(_loss_fn(model, ids, options, labels, train=True, key=k1))(params)
    remat = grad(_loss_fn(model, ids, options, labels, train=True, key=k1, remat=True))(params)
    for a, b in zip(tree.leaves(plain), tree.leaves(remat), strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)


# -- tokenizer ---------------------------------------------------------------------------------

FIXTURES = Path("/work/shared/fixtures")


@pytest.fixture(scope="module")
def roberta_vocab():
    """GPT-2's vocabulary with RoBERTa's specials (``<s> <pad> </s> <unk>`` first, as in
    roberta-base, ``<mask>`` last) and GPT-2's merges, from /work/shared/fixtures/gpt2."""
    if not (FIXTURES / "gpt2" / "encoder.json").exists():
        pytest.skip("/work/shared/fixtures/gpt2 is absent")
    encoder = json.loads((FIXTURES / "gpt2" / "encoder.json").read_text(encoding="utf-8"))
    vocab = {t: i for i, t in enumerate(["<s>", "<pad>", "</s>", "<unk>"])}
    vocab.update({t: i + 4 for t, i in encoder.items()})
    vocab["<mask>"] = len(vocab)
    lines = (FIXTURES / "gpt2" / "vocab.bpe").read_text(encoding="utf-8").splitlines()[1:]
    return vocab, [tuple(line.split(" ")) for line in lines if line]


def _corpus_lines(n_per_file: int = 40) -> list[str]:
    lines = []
    for path in sorted((FIXTURES / "corpora").glob("*.txt")):
        text = path.read_text(encoding="utf-8").splitlines()
        lines += [line for line in text if line.strip()][:n_per_file]
    return lines


@pytest.mark.parametrize("add_prefix_space", [False, True])
def test_tokenizer_ids_match_transformers(roberta_vocab, add_prefix_space):
    """ids of single texts and pairs (``<s> A </s></s> B </s>``), special-token masks and
    specials inside the text, against transformers' RobertaTokenizer (tokenizers backend)."""
    vocab, merges = roberta_vocab
    ref = transformers.RobertaTokenizer(
        vocab=vocab, merges=merges, add_prefix_space=add_prefix_space
    )
    ours = RobertaTokenizer(vocab, merges, add_prefix_space=add_prefix_space)
    lines = _corpus_lines() + ["a <s> b</s>c", "x <mask> y", "  two  spaces\n", "héllo 😀 日本"]
    for a, b in zip(lines, lines[1:] + lines[:1], strict=True):
        assert ours.encode(a, add_special_tokens=True) == ref(a)["input_ids"], a
        want = ref(a, b, return_special_tokens_mask=True)
        got = ours.encode_plus(a, b, add_special_tokens=True, return_special_tokens_mask=True)
        assert got["input_ids"] == want["input_ids"], (a, b)
        assert got["special_tokens_mask"] == want["special_tokens_mask"], (a, b)
        if "<" not in a:  # with specials inside, every stretch gets its own prefix space
            prefix = " " if add_prefix_space and not a.startswith(" ") else ""
            assert ours.decode(ours.encode(a), clean_up_tokenization_spaces=False) == prefix + a


def test_tokenizer_saves_and_reloads(roberta_vocab, tmp_path):
    vocab, merges = roberta_vocab
    tok = RobertaTokenizer(vocab, merges, add_prefix_space=True)
    tok.save_pretrained(tmp_path)
    again = RobertaTokenizer.from_pretrained(tmp_path)
    assert again.add_prefix_space and again.mask_token == "<mask>" and again.pad_token_id == 1
    assert again.encode("Hello there", "you") == tok.encode("Hello there", "you")
