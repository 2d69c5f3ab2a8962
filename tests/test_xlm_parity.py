"""XLM parity: XLMModel, XLMWithLMHeadModel, XLMForSequenceClassification and
XLMForQuestionAnswering against today's ``transformers`` (5.23, eager, the same
weights loaded through ``ptfunc.io.from_torch_state_dict``), and the base and LM
models against pytorch-transformers 1.0.0 (head_mask, which today's XLM lacks,
and its mutable-dict cache path); float32, within 1e-5 max-abs.
"""

from __future__ import annotations

import warnings

import pytest
import torch

from ptfunc import io
from ptfunc.archs import xlm

transformers = pytest.importorskip("transformers")

ATOL = 1e-5
V = 40
TINY = dict(vocab_size=V, emb_dim=16, n_layers=2, n_heads=4, max_position_embeddings=24)
CONFIGS = {
    "langs-learned-bi": dict(n_langs=3, use_lang_emb=True),
    "sinusoidal-causal": dict(sinusoidal_embeddings=True, causal=True),
    "relu-causal-langs": dict(gelu_activation=False, causal=True, n_langs=2),
}
GEN = torch.Generator().manual_seed(0)
IDS = torch.randint(4, V, (3, 7), generator=GEN)
LANGS = torch.randint(0, 2, (3, 7), generator=GEN)
LENGTHS = torch.tensor([7, 5, 3])
MASK = torch.ones(3, 7, dtype=torch.long)
MASK[1, 4:] = 0
MASK[2, :2] = 0  # not a prefix: only attention_mask can say this


def _perturb(reference):
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in reference.named_parameters():
            if "position_embeddings" not in name:  # sinusoid tables stay sinusoids
                p.add_(0.05 * torch.randn(p.shape, generator=gen))
    return reference


def _pair(name, **overrides):
    """(reference, model, params) with the same (perturbed) weights."""
    cfg = {**TINY, **overrides}
    torch.manual_seed(0)
    reference = _perturb(getattr(transformers, name)(transformers.XLMConfig(**cfg)).eval())
    model = getattr(xlm, name)(xlm.XLMConfig(**cfg))
    return reference, model, io.from_torch_state_dict(model, reference.state_dict())


def _close(a, b, what):
    if isinstance(b, (tuple, list)):
        assert len(a) == len(b), f"{what}: {len(a)} vs {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            _close(x, y, f"{what}[{i}]")
        return
    assert a.shape == b.shape, f"{what}: {tuple(a.shape)} vs {tuple(b.shape)}"
    if not a.is_floating_point():
        assert torch.equal(a, b), what
        return
    err = (a.double() - b.double()).abs().max().item()
    assert err <= ATOL, f"{what}: max abs error {err}"


@pytest.mark.parametrize("cfg", list(CONFIGS))
@pytest.mark.parametrize("padding", ["lengths", "attention_mask"])
def test_base_model_matches_transformers(cfg, padding):
    reference, model, params = _pair("XLMModel", **CONFIGS[cfg])
    options = dict(langs=LANGS % model.config.n_langs, token_type_ids=LANGS + 5)
    options[padding] = LENGTHS if padding == "lengths" else MASK
    with torch.no_grad():
        want = reference(IDS, output_hidden_states=True, output_attentions=True, **options)
    got = model.apply(params, IDS, output_hidden_states=True, output_attentions=True, **options)
    _close(got.last_hidden_state, want.last_hidden_state, "last_hidden_state")
    _close(got.hidden_states, want.hidden_states, "hidden_states")
    _close(got.attentions, want.attentions, "attentions")
    assert got.cache == ()


@pytest.mark.parametrize("cfg", list(CONFIGS))
def test_lm_head_logits_and_loss(cfg):
    reference, model, params = _pair("XLMWithLMHeadModel", **CONFIGS[cfg])
    langs = LANGS % model.config.n_langs
    labels = torch.randint(0, V, IDS.shape, generator=torch.Generator().manual_seed(3))
    labels[0, :2] = -100
    with torch.no_grad():
        want = reference(IDS, langs=langs, labels=labels)
    got = model.apply(params, IDS, langs=langs, labels=labels)
    _close(got.logits, want.logits, "logits")
    _close(got.loss, want.loss, "loss")
    # stored once: the head reads the word embeddings
    assert "proj" in params["pred_layer"] and "weight" not in params["pred_layer"]["proj"]


@pytest.mark.parametrize("num_labels", [3, 1])
def test_sequence_classification_logits_and_loss(num_labels):
    reference, model, params = _pair(
        "XLMForSequenceClassification", n_langs=3, num_labels=num_labels
    )
    labels = torch.tensor([0, 2, 1]) if num_labels > 1 else torch.tensor([0.5, -1.0, 2.0])
    with torch.no_grad():
        want = reference(IDS, langs=LANGS, lengths=LENGTHS, labels=labels)
    got = model.apply(params, IDS, langs=LANGS, lengths=LENGTHS, labels=labels)
    _close(got.logits, want.logits, "logits")
    _close(got.loss, want.loss, "loss")


@pytest.mark.parametrize("cfg", ["langs-learned-bi", "sinusoidal-causal"])
def test_question_answering_beam_and_losses(cfg):
    reference, model, params = _pair(
        "XLMForQuestionAnswering", **CONFIGS[cfg], start_n_top=3, end_n_top=2
    )
    langs = LANGS % model.config.n_langs
    p_mask = torch.zeros(3, 7)
    p_mask[:, 0] = 1.0
    with torch.no_grad():
        want = reference(IDS, langs=langs, attention_mask=MASK, p_mask=p_mask)
    got = model.apply(params, IDS, langs=langs, attention_mask=MASK, p_mask=p_mask)
    for field in (
        "start_top_log_probs",
        "start_top_index",
        "end_top_log_probs",
        "end_top_index",
        "cls_logits",
    ):
        _close(getattr(got, field), getattr(want, field), field)
    labels = dict(
        start_positions=torch.tensor([1, 2, 3]),
        end_positions=torch.tensor([3, 4, 5]),
        cls_index=torch.tensor([0, 0, 0]),
        is_impossible=torch.tensor([0.0, 1.0, 0.0]),
    )
    for subset in (("start_positions", "end_positions"), tuple(labels)):
        kw = {k: labels[k] for k in subset}
        with torch.no_grad():
            want = reference(IDS, langs=langs, **kw)
        _close(model.apply(params, IDS, langs=langs, **kw).loss, want.loss, f"loss {subset}")


def _seed_pair(name, **overrides):
    """(pytorch-transformers 1.0 model, ptfunc model, params) with the same weights."""
    pt = pytest.importorskip("pytorch_transformers")
    cfg = {**TINY, **overrides}
    vocab = cfg.pop("vocab_size")
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = _perturb(getattr(pt, name)(pt.XLMConfig(vocab, **cfg)).eval())
    model = getattr(xlm, name)(xlm.XLMConfig(vocab, **cfg))
    return pt, reference, model, io.from_torch_state_dict(model, reference.state_dict())


@pytest.mark.parametrize("cfg", ["langs-learned-bi", "relu-causal-langs"])
def test_base_model_and_head_mask_match_pytorch_transformers_1_0(cfg):
    # (1.0's sinusoidal init writes in place into a leaf: current torch refuses to build it)
    pt, reference, model, params = _seed_pair(
        "XLMModel", **CONFIGS[cfg], output_hidden_states=True, output_attentions=True
    )
    head_mask = torch.tensor([[1.0, 0.0, 1.0, 1.0], [0.0, 1.0, 1.0, 0.5]])
    langs = LANGS if CONFIGS[cfg].get("n_langs", 1) > 1 else None
    for hm in (None, head_mask, head_mask[1]):
        with torch.no_grad():
            want = reference(IDS, lengths=LENGTHS, langs=langs, head_mask=hm)
        got = model.apply(params, IDS, lengths=LENGTHS, langs=langs, head_mask=hm)
        _close(got.last_hidden_state, want[0], "last_hidden_state")
        _close(got.hidden_states, want[1], "hidden_states")
        _close(got.attentions, want[2], "attentions")


def test_incremental_cache_matches_full_run_and_the_seed_cache_path():
    """Causal LM: tokens fed one at a time with the returned cache == one causal run,
    and == pytorch-transformers 1.0 fed the growing sequence with its mutable dict cache."""
    pt, reference, model, params = _seed_pair("XLMWithLMHeadModel", causal=True, n_langs=2)
    ids, langs = IDS[:2], LANGS[:2]
    full = model.apply(params, ids, langs=langs)
    cache, seed_cache, steps = None, {"slen": 0}, []
    for t in range(ids.shape[1]):
        opts = {"cache": cache} if cache is not None else {"use_cache": True}
        out = model.apply(params, ids[:, t : t + 1], langs=langs[:, t : t + 1], **opts)
        assert out.cache[0].shape == (2, 2, 4, t + 1, 4)
        if cache is not None:
            assert cache[0].shape[3] == t  # the input cache is not mutated
        cache = out.cache
        steps.append(out.logits)
        with torch.no_grad():
            seed = reference(ids[:, : t + 1], langs=langs[:, : t + 1], cache=seed_cache)[0]
        _close(out.logits[:, 0], seed.view(2, -1, V)[:, -1], f"step {t} vs 1.0 cache")
    _close(torch.cat(steps, dim=1), full.logits, "incremental vs full")


def test_sinusoidal_checkpoint_table_is_ignored_not_loaded():
    reference, model, params = _pair("XLMModel", sinusoidal_embeddings=True)
    assert "position_embeddings" not in params
    _, info = io.from_torch_state_dict(model, reference.state_dict(), output_loading_info=True)
    assert info.missing_keys == [] and info.unexpected_keys == []


@pytest.mark.parametrize("layout", ["transformers", "pytorch_transformers-1.0"])
def test_from_pretrained_reads_both_layouts(tmp_path, layout):
    if layout == "transformers":
        reference, model, params = _pair("XLMWithLMHeadModel", n_langs=2)
        reference.save_pretrained(tmp_path)
        assert (tmp_path / "model.safetensors").exists()
    else:
        _, reference, model, params = _seed_pair("XLMWithLMHeadModel", n_langs=2)
        reference.save_pretrained(str(tmp_path))
        assert (tmp_path / "pytorch_model.bin").exists()
    loaded_model, loaded = io.from_pretrained(tmp_path, xlm.XLMWithLMHeadModel, strict=True)
    assert loaded_model.config.n_langs == 2 and loaded_model.config.vocab_size == V
    _close(
        loaded_model.apply(loaded, IDS, langs=LANGS).logits,
        model.apply(params, IDS, langs=LANGS).logits,
        "logits",
    )
