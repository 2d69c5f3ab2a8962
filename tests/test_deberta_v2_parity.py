"""DeBERTa-v2 parity: every head against transformers 5 (eager attention), plus torch.func.

Same weights (the reference module's state dict, randomised at std 0.3 so that attention
is far from uniform, loaded through ``ptfunc.io``), same inputs (a padded example, token
types when ``type_vocab_size > 0``); float32 outputs, hidden states, attentions and losses
must agree within 1e-5 max-abs. Configurations cover log buckets (8) and none (-1),
``max_relative_positions`` -1 and small, ``share_att_key`` on and off, both and single
``pos_att_type``, ``position_biased_input`` on and off, and no relative attention.
"""

from __future__ import annotations

import warnings

import pytest
import torch

import ptfunc
from ptfunc.archs import deberta_v2 as deberta
from ptfunc.errors import ConfigError

transformers = pytest.importorskip("transformers")

ATOL = 1e-5
B, S, V = 3, 9, 99
BASE = dict(
    vocab_size=V,
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=37,
    max_position_embeddings=64,
    num_labels=3,
)
VARIANTS = {
    "v3": dict(  # DeBERTa-v3's shape: buckets, shared keys, normalised table, no abs positions
        relative_attention=True,
        position_buckets=8,
        max_relative_positions=64,
        pos_att_type=["p2c", "c2p"],
        share_att_key=True,
        norm_rel_ebd="layer_norm",
        position_biased_input=False,
        type_vocab_size=0,
    ),
    "c2p-own-keys": dict(
        relative_attention=True,
        max_relative_positions=-1,
        pos_att_type=["c2p"],
        type_vocab_size=2,
    ),
    "p2c-short-span": dict(
        relative_attention=True,
        max_relative_positions=4,
        pos_att_type=["p2c"],
        type_vocab_size=2,
    ),
    "both-buckets-unshared": dict(
        relative_attention=True,
        position_buckets=8,
        max_relative_positions=-1,
        pos_att_type="p2c|c2p",
        norm_rel_ebd="layer_norm",
        type_vocab_size=2,
    ),
    "absolute-only": dict(relative_attention=False, type_vocab_size=2),
}
HEADS = [
    deberta.DebertaV2Model,
    deberta.DebertaV2ForMaskedLM,
    deberta.DebertaV2ForSequenceClassification,
    deberta.DebertaV2ForTokenClassification,
    deberta.DebertaV2ForQuestionAnswering,
    deberta.DebertaV2ForMultipleChoice,
]


def _config(variant: str, **changes) -> dict:
    return {**BASE, **VARIANTS[variant], **changes}


def _reference(name: str, cfg: dict, seed: int = 0):
    """A transformers 5 model in eval mode with weights ~ N(0, 0.3) (LayerNorms around 1)."""
    torch.manual_seed(seed)
    num_labels = 2 if name == "DebertaV2ForQuestionAnswering" else cfg["num_labels"]
    config = transformers.DebertaV2Config(
        **{**cfg, "num_labels": num_labels}, attn_implementation="eager"
    )
    ref = getattr(transformers, name)(config).eval()
    with torch.no_grad():
        for pname, p in ref.named_parameters():
            p.copy_(torch.randn_like(p) * 0.3 + (1.0 if "LayerNorm.weight" in pname else 0.0))
    return ref


def _ours(cls, cfg: dict, ref):
    num_labels = 2 if cls is deberta.DebertaV2ForQuestionAnswering else cfg["num_labels"]
    model = cls(deberta.DebertaV2Config(**{**cfg, "num_labels": num_labels}))
    params, info = ptfunc.io.from_torch_state_dict(
        model, ref.state_dict(), output_loading_info=True
    )
    assert info.missing_keys == [] and info.unexpected_keys == []
    return model, params


def _inputs(cfg: dict, multiple_choice: bool = False) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    shape = (B, 2, S) if multiple_choice else (B, S)
    ids = torch.randint(1, V, shape, generator=g)
    mask = torch.ones(shape, dtype=torch.long)
    mask[0, ..., 6:] = 0  # first example padded
    out = {"input_ids": ids, "attention_mask": mask}
    if cfg.get("type_vocab_size", 0) > 0:
        types = torch.zeros(shape, dtype=torch.long)
        types[..., 4:] = 1
        out["token_type_ids"] = types
    return out


def _labels(name: str) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    if name == "DebertaV2ForMaskedLM":
        labels = torch.randint(0, V, (B, S), generator=g)
        labels[:, ::2] = -100
        return {"labels": labels}
    if name == "DebertaV2ForSequenceClassification":
        return {"labels": torch.tensor([0, 2, 1])}
    if name == "DebertaV2ForTokenClassification":
        return {"labels": torch.randint(0, 3, (B, S), generator=g)}
    if name == "DebertaV2ForQuestionAnswering":
        return {
            "start_positions": torch.tensor([1, 3, 20]),
            "end_positions": torch.tensor([2, 5, 0]),
        }
    if name == "DebertaV2ForMultipleChoice":
        return {"labels": torch.tensor([1, 0, 1])}
    return {}


def _close(a: torch.Tensor, b: torch.Tensor, what: str) -> None:
    assert a.shape == b.shape, (what, a.shape, b.shape)
    err = (a - b).abs().max().item()
    assert err <= ATOL, f"{what}: max-abs {err:.3g} > {ATOL}"


def _compare(ours, ref, what: str) -> None:
    names = [n for n in ("loss", "logits", "start_logits", "end_logits") if n in ref]
    names = names or ["last_hidden_state"]
    for n in names:
        _close(getattr(ours, n), ref[n], f"{what} {n}")
    assert len(ours.hidden_states) == len(ref.hidden_states) == BASE["num_hidden_layers"] + 1
    for i, (a, b) in enumerate(zip(ours.hidden_states, ref.hidden_states)):
        _close(a, b, f"{what} hidden_states[{i}]")
    assert len(ours.attentions) == len(ref.attentions) == BASE["num_hidden_layers"]
    for i, (a, b) in enumerate(zip(ours.attentions, ref.attentions)):
        _close(a, b, f"{what} attentions[{i}]")


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("cls", HEADS, ids=lambda c: c.__name__)
def test_parity_with_transformers(cls, variant):
    cfg = _config(variant)
    name = cls.__name__
    ref = _reference(name, cfg)
    model, params = _ours(cls, cfg, ref)
    x = _inputs(cfg, multiple_choice=name == "DebertaV2ForMultipleChoice")
    labels = _labels(name)
    with torch.no_grad():
        want = ref(**x, **labels, output_hidden_states=True, output_attentions=True)
    got = model.apply(params, **x, **labels, output_hidden_states=True, output_attentions=True)
    _compare(got, want, f"{name}[{variant}]")


@pytest.mark.parametrize(
    ("name", "variant", "changes", "drop"),
    [
        ("DebertaV2Model", "both-buckets-unshared", {}, ("attention_mask",)),
        ("DebertaV2ForMaskedLM", "c2p-own-keys", {"embedding_size": 24}, ()),
        ("DebertaV2ForSequenceClassification", "v3", {"num_labels": 1}, ()),
        ("DebertaV2ForSequenceClassification", "p2c-short-span", {"cls_dropout": 0.3}, ()),
    ],
    ids=["no-mask-position-ids", "embed-proj", "regression", "cls-dropout"],
)
def test_parity_options(name, variant, changes, drop):
    """No attention mask with explicit position ids, an embedding projection
    (``embedding_size``), regression (``num_labels=1``)."""
    cfg = _config(variant, **changes)
    ref = _reference(name, cfg)
    model, params = _ours(getattr(deberta, name), cfg, ref)
    x = {k: v for k, v in _inputs(cfg).items() if k not in drop}
    if "attention_mask" in drop:
        x["position_ids"] = torch.tensor([[3, 1, 4, 1, 5, 9, 2, 6, 5]])
    labels = {"labels": torch.tensor([0.5, -1.0, 2.0])} if cfg["num_labels"] == 1 else {}
    with torch.no_grad():
        want = ref(**x, **labels, output_hidden_states=True, output_attentions=True)
    if labels:  # transformers flattens regression logits to (b,) when given labels
        want["logits"] = want["logits"].reshape(-1, 1)
    got = model.apply(params, **x, **labels, output_hidden_states=True, output_attentions=True)
    _compare(got, want, name)


@pytest.mark.parametrize(
    ("name", "variant"),
    [
        ("DebertaV2ForMaskedLM", "v3"),
        ("DebertaV2ForSequenceClassification", "both-buckets-unshared"),
    ],
)
def test_grad_matches_transformers(name, variant):
    """torch.func.grad of ptfunc's loss against transformers' backward, leaf by leaf."""
    cfg = _config(variant)
    ref = _reference(name, cfg)
    model, params = _ours(getattr(deberta, name), cfg, ref)
    x, labels = _inputs(cfg), _labels(name)
    ref(**x, **labels).loss.backward()
    grads = ptfunc.tree.to_flat_dict(
        torch.func.grad(lambda p: model.apply(p, **x, **labels).loss)(params)
    )
    for pname, p in ref.named_parameters():
        torch.testing.assert_close(grads[pname], p.grad, rtol=1e-4, atol=1e-5, msg=pname)


@pytest.mark.parametrize("legacy", [True, False])
def test_masked_lm_head_names(legacy):
    """legacy=True keeps transformers' ``cls.predictions``, legacy=False the Hub files'
    ``lm_predictions.lm_head``; each loads the other's state dict to the same logits."""
    cfg = _config("v3", legacy=legacy)
    ref = _reference("DebertaV2ForMaskedLM", cfg)
    model, params = _ours(deberta.DebertaV2ForMaskedLM, cfg, ref)
    head = "cls" if legacy else "lm_predictions"
    assert head in params and ("lm_predictions" if legacy else "cls") not in params
    x = _inputs(cfg)
    with torch.no_grad():
        want = ref(**x).logits
    _close(model.apply(params, **x).logits, want, "logits")
    other = deberta.DebertaV2ForMaskedLM(deberta.DebertaV2Config(**{**cfg, "legacy": not legacy}))
    state = dict(ref.state_dict())
    state["mask_predictions.dense.weight"] = torch.zeros(32, 32)  # Hub RTD head: not a param
    loaded, info = ptfunc.io.from_torch_state_dict(other, state, output_loading_info=True)
    assert info == ([], [])
    _close(other.apply(loaded, **x).logits, want, "logits through the other names")


@pytest.mark.parametrize(
    ("cls", "variant"),
    [
        (deberta.DebertaV2ForMaskedLM, "v3"),
        (deberta.DebertaV2ForMaskedLM, "both-buckets-unshared"),
        (deberta.DebertaV2ForSequenceClassification, "c2p-own-keys"),
        (deberta.DebertaV2Model, "p2c-short-span"),
    ],
    ids=lambda v: getattr(v, "__name__", v),
)
def test_save_pretrained_loads_in_transformers(tmp_path, cls, variant):
    cfg = _config(variant)
    model = cls(deberta.DebertaV2Config(**cfg))
    params = model.init(ptfunc.random.key(3))
    model.save_pretrained(tmp_path, params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref, info = getattr(transformers, cls.__name__).from_pretrained(
            tmp_path, output_loading_info=True, attn_implementation="eager"
        )
    assert not info["missing_keys"], info
    assert not info["unexpected_keys"] and not info["mismatched_keys"], info
    ref.eval()
    x = _inputs(cfg)
    with torch.no_grad():
        want = ref(**x, output_hidden_states=True, output_attentions=True)
    _compare(model.apply(params, **x, output_hidden_states=True, output_attentions=True), want, "")
    again, again_params = cls.from_pretrained(tmp_path)
    assert again == model
    torch.testing.assert_close(again_params, params, rtol=0, atol=0)


@pytest.mark.parametrize("legacy", [True, False])
def test_loads_transformers_save_pretrained(tmp_path, legacy):
    """A directory written by transformers 5 (tied decoder left out) loads with no
    missing or unexpected names, to the same logits."""
    cfg = _config("v3", legacy=legacy)
    ref = _reference("DebertaV2ForMaskedLM", cfg)
    ref.save_pretrained(tmp_path)
    model, params, info = deberta.DebertaV2ForMaskedLM.from_pretrained(
        tmp_path, output_loading_info=True
    )
    assert info == ([], [])
    assert model.config.legacy is legacy and model.config.pos_att_type == ("p2c", "c2p")
    x = _inputs(cfg)
    with torch.no_grad():
        want = ref(**x).logits
    _close(model.apply(params, **x).logits, want, "logits")


def test_hub_v3_config_reads():
    """microsoft/deberta-v3-base's config.json, as the Hub has it."""
    hub = {
        "model_type": "deberta-v2",
        "attention_probs_dropout_prob": 0.1,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "hidden_size": 768,
        "initializer_range": 0.02,
        "intermediate_size": 3072,
        "max_position_embeddings": 512,
        "relative_attention": True,
        "position_buckets": 256,
        "norm_rel_ebd": "layer_norm",
        "share_att_key": True,
        "pos_att_type": "p2c|c2p",
        "layer_norm_eps": 1e-7,
        "max_relative_positions": -1,
        "position_biased_input": False,
        "num_attention_heads": 12,
        "num_hidden_layers": 12,
        "type_vocab_size": 0,
        "vocab_size": 128100,
    }
    c = deberta.DebertaV2Config.from_dict(hub)
    assert (c.pos_att_type, c.span, c.max_relative, c.head_dim) == (("p2c", "c2p"), 256, 512, 64)
    shapes = ptfunc.io.state_dict.expected_shapes(deberta.DebertaV2Model(c))
    assert shapes["encoder.rel_embeddings.weight"] == (512, 768)
    assert "embeddings.position_embeddings.weight" not in shapes
    assert "encoder.layer.0.attention.self.pos_key_proj.weight" not in shapes


def test_config_reads_transformers_spellings_and_refuses_conv():
    c = deberta.DebertaV2Config(**BASE, relative_attention=True, pos_att_type="P2C|c2p")
    assert c.pos_att_type == ("p2c", "c2p")
    assert deberta.DebertaV2Config.from_dict(c.to_dict()) == c
    hf = transformers.DebertaV2Config(**BASE, relative_attention=True, pos_att_type="p2c|c2p")
    assert deberta.DebertaV2Config.from_dict(hf.to_dict()).pos_att_type == ("p2c", "c2p")
    with pytest.raises(ConfigError, match="conv_kernel_size"):
        deberta.DebertaV2Config(**BASE, conv_kernel_size=3)
    with pytest.raises(ConfigError, match="pos_att_type"):
        deberta.DebertaV2Config(**BASE, pos_att_type=("c2p", "p2p"))
    with pytest.raises(ConfigError, match="position_buckets"):
        deberta.DebertaV2Config(**BASE, relative_attention=True, position_buckets=256)
    with pytest.raises(ConfigError, match="multiple"):
        deberta.DebertaV2Config(**{**BASE, "hidden_size": 30})


# -- torch.func ----------------------------------------------------------------------------------

FUNC_CFG = {**BASE, **VARIANTS["v3"], "hidden_dropout_prob": 0.1}


@pytest.fixture(scope="module")
def mlm():
    model = deberta.DebertaV2ForMaskedLM(deberta.DebertaV2Config(**FUNC_CFG))
    return model, model.init(ptfunc.random.key(0))


def _loss(model, ids, mask, labels):
    def loss(params, **kw):
        return model.apply(params, ids, attention_mask=mask, labels=labels, **kw).loss

    return loss


def test_grad_matches_autograd_and_remat(mlm):
    model, params = mlm
    x = _inputs(FUNC_CFG)
    labels = _labels("DebertaV2ForMaskedLM")["labels"]
    loss = _loss(model, x["input_ids"], x["attention_mask"], labels)
    g = torch.func.grad(loss)(params)
    leaves = {k: v.detach().requires_grad_() for k, v in ptfunc.tree.to_flat_dict(params).items()}
    loss(ptfunc.tree.from_flat_dict(leaves)).backward()
    flat = ptfunc.tree.to_flat_dict(g)
    for name, leaf in leaves.items():
        torch.testing.assert_close(flat[name], leaf.grad, rtol=1e-5, atol=1e-6)
    key = ptfunc.random.key(7)
    g_train = torch.func.grad(loss)(params, train=True, key=key)
    g_remat = torch.func.grad(loss)(params, train=True, key=key, remat=True)
    torch.testing.assert_close(g_remat, g_train, rtol=1e-5, atol=1e-6)


def test_per_example_grads_with_remat(mlm):
    """vmap(grad) over examples, with dropout and remat, equals a loop of single grads."""
    model, params = mlm
    x = _inputs(FUNC_CFG)
    labels = _labels("DebertaV2ForMaskedLM")["labels"]
    keys = ptfunc.random.split(ptfunc.random.key(3), B)

    def one(p, ids, mask, lab, k):
        kw = {"attention_mask": mask[None], "labels": lab[None], "remat": True}
        return model.apply(p, ids[None], train=True, key=k, **kw).loss

    per = torch.func.vmap(torch.func.grad(one), in_dims=(None, 0, 0, 0, 0))(
        params, x["input_ids"], x["attention_mask"], labels, keys
    )
    for i, got in enumerate(ptfunc.tree.unstack(per)):
        args = (x["input_ids"][i], x["attention_mask"][i], labels[i], keys[i])
        torch.testing.assert_close(got, torch.func.grad(one)(params, *args), rtol=1e-4, atol=1e-6)


def test_vmap_over_examples_and_params(mlm):
    model, params = mlm
    x = _inputs(FUNC_CFG)
    ids, mask = x["input_ids"], x["attention_mask"]
    full = model.apply(params, ids, attention_mask=mask).logits
    per = torch.func.vmap(
        lambda i, m: model.apply(params, i[None], attention_mask=m[None]).logits[0]
    )(ids, mask)
    torch.testing.assert_close(per, full, rtol=1e-5, atol=1e-5)
    other = model.init(ptfunc.random.key(1))
    both = ptfunc.tree.stack([params, other])
    out = torch.func.vmap(lambda p: model.apply(p, ids, attention_mask=mask).logits)(both)
    torch.testing.assert_close(out[0], full, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(
        out[1], model.apply(other, ids, attention_mask=mask).logits, rtol=1e-5, atol=1e-5
    )


def test_jvp_matches_finite_difference(mlm):
    model, params = mlm
    p64 = ptfunc.tree.map(lambda t: t.double(), params)
    x = _inputs(FUNC_CFG)
    labels = _labels("DebertaV2ForMaskedLM")["labels"]
    loss = _loss(model, x["input_ids"], x["attention_mask"], labels)
    g = torch.Generator().manual_seed(2)
    tangent = ptfunc.tree.map(lambda t: torch.randn(t.shape, generator=g, dtype=t.dtype), p64)
    _, jvp = torch.func.jvp(loss, (p64,), (tangent,))
    eps = 1e-6
    plus = loss(ptfunc.tree.map(lambda p, t: p + eps * t, p64, tangent))
    minus = loss(ptfunc.tree.map(lambda p, t: p - eps * t, p64, tangent))
    torch.testing.assert_close(jvp, (plus - minus) / (2 * eps), rtol=1e-6, atol=1e-8)


def test_compile_fullgraph_equals_eager(mlm):
    model, params = mlm
    x = _inputs(FUNC_CFG)

    def run(p, ids, mask, key):
        out = model.apply(p, ids, attention_mask=mask, output_attentions=True)
        train = model.apply(p, ids, attention_mask=mask, train=True, key=key)
        return (*out.to_tuple(), train.logits)

    args = (params, x["input_ids"], x["attention_mask"], ptfunc.random.key(5))
    eager = run(*args)
    torch._dynamo.reset()
    compiled = torch.compile(run, fullgraph=True, backend="aot_eager")(*args)
    torch.testing.assert_close(compiled, eager, rtol=1e-5, atol=1e-5)


def test_keyed_dropout(mlm):
    model, params = mlm
    x = _inputs(FUNC_CFG)
    run = lambda **kw: model.apply(params, **x, **kw).logits  # noqa: E731
    with pytest.raises(ValueError, match="key"):
        run(train=True)
    a = run(train=True, key=ptfunc.random.key(1))
    torch.testing.assert_close(run(train=True, key=ptfunc.random.key(1)), a, rtol=0, atol=0)
    assert not torch.allclose(run(train=True, key=ptfunc.random.key(2)), a)
    assert not torch.allclose(run(), a)
    torch.testing.assert_close(run(), run(train=False), rtol=0, atol=0)


def test_input_errors_and_ignored_token_types(mlm):
    model, params = mlm
    ids = torch.tensor([[1, 2, 3, 4], [5, 6, 0, 0]])
    plain = model.apply(params, ids).logits
    # type_vocab_size 0: token types are accepted and ignored, as transformers does
    ignored = model.apply(params, ids, token_type_ids=torch.ones_like(ids)).logits
    torch.testing.assert_close(ignored, plain, rtol=0, atol=0)
    with pytest.raises(TypeError, match="atention_mask"):
        model.apply(params, ids, atention_mask=ids)
    with pytest.raises(ValueError, match="vocabulary"):
        model.apply(params, torch.tensor([[1, V]]))
    with pytest.raises(ValueError, match="attention_mask"):
        model.apply(params, ids, attention_mask=ids[:, :2])
    mc = deberta.DebertaV2ForMultipleChoice(model.config)
    with pytest.raises(ValueError, match="num_choices"):
        mc.apply(mc.init(ptfunc.random.key(0)), ids)
    # no learned positions: longer than max_position_embeddings is fine
    assert model.apply(params, torch.ones(1, 80, dtype=torch.long)).logits.shape == (1, 80, V)


# -- tokenizer -----------------------------------------------------------------------------------

SPM_MODELS = ["test_model.model", "hf_test_sentencepiece.model"]


def _reference_tokenizer(path):
    """transformers 5's DebertaV2Tokenizer as its conversion of ``spm.model`` builds it
    (pieces and scores, the model's unk id, control pieces as special tokens, the
    normaliser's precompiled charsmap), without the ``protobuf`` package it needs for that:
    the charsmap is read with ptfunc's wire-format reader."""
    spm = pytest.importorskip("sentencepiece")
    from ptfunc.io import _protowire

    sp = spm.SentencePieceProcessor(model_file=str(path))
    proto = _protowire.parse(path.read_bytes())
    charsmap = _protowire.parse(proto[3][0]).get(2, [None])[0]  # normalizer_spec.charsmap
    n = sp.get_piece_size()
    return transformers.DebertaV2Tokenizer(
        vocab=[(sp.id_to_piece(i), sp.get_score(i)) for i in range(n)],
        unk_id=sp.unk_id(),
        _spm_precompiled_charsmap=charsmap,
        additional_special_tokens=[sp.id_to_piece(i) for i in range(n) if sp.is_control(i)],
    )


def _corpus_lines(fixtures, limit: int = 300) -> list[str]:
    lines = []
    for corpus in sorted((fixtures / "corpora").glob("*.txt")):
        text = corpus.read_text(encoding="utf-8").splitlines()[:limit]
        # transformers 5's Unigram matches a literal "<unk>" as the unknown piece;
        # sentencepiece (and ptfunc) do not: documented in ptfunc.tokenize.deberta_v2
        lines += [line for line in text if line.strip() and "<unk>" not in line]
    return lines


@pytest.mark.parametrize("name", SPM_MODELS)
def test_tokenizer_ids_equal_transformers(shared_fixtures, name):
    from ptfunc.tokenize.deberta_v2 import DebertaV2Tokenizer

    path = shared_fixtures / "sentencepiece" / name
    if not path.is_file():
        pytest.skip(f"{path} not found")
    ref, tok = _reference_tokenizer(path), DebertaV2Tokenizer(path)
    specials = ["[CLS]", "[SEP]", "[UNK]", "[PAD]", "[MASK]", "<s>", "</s>"]
    assert tok.convert_tokens_to_ids(specials) == ref.convert_tokens_to_ids(specials)
    assert len(tok) == len(ref)
    lines = _corpus_lines(shared_fixtures)
    assert len(lines) > 500
    for a, b in zip(lines[::2], lines[1::2]):
        for args in ((a,), (a, b)):
            want, got = ref(*args), tok(*args)
            assert got["input_ids"] == want["input_ids"], args
            assert got["token_type_ids"] == want["token_type_ids"], args
    text = "Hello [MASK] world <s> and [SEP] x"
    assert tok(text)["input_ids"] == ref(text)["input_ids"]
    batch = ["a b", "hello there world"]
    assert dict(tok(batch, padding=True)) == {k: v for k, v in ref(batch, padding=True).items()}


def test_tokenizer_saves_and_reloads(shared_fixtures, tmp_path):
    from ptfunc.tokenize.deberta_v2 import DebertaV2Tokenizer

    path = shared_fixtures / "sentencepiece" / "test_model.model"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    tok = DebertaV2Tokenizer(path, do_lower_case=True)
    tok.save_pretrained(tmp_path)
    assert (tmp_path / "spm.model").read_bytes() == path.read_bytes()
    again = DebertaV2Tokenizer.from_pretrained(tmp_path)
    text = "Hello [MASK] World, the SECOND one"
    assert again(text, "pair") == tok(text, "pair")
    assert again.do_lower_case and len(again) == len(tok)
    assert tok.get_special_tokens_mask([5, 6], [7]) == [1, 0, 0, 1, 0, 1]
    with pytest.raises(ValueError, match="split_by_punct"):
        DebertaV2Tokenizer(path, split_by_punct=True)
