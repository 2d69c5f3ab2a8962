"""Llama, Mistral, Qwen2, Qwen3 and GPT-NeoX against transformers 5 on tiny random configs.

Reference: ``transformers`` 5 (eager attention unless a test says sdpa), loaded from the same
weights (ptfunc reads the reference's state dict; its config from the reference config's
``to_dict``). float32 within 1e-5 max-abs for logits, hidden states, attentions, caches and
losses; bfloat16 within 2e-2. Positions that are left padding are compared only where they are
tokens (transformers' rows of a fully masked query are not defined the same way).
"""

from __future__ import annotations

import warnings

import pytest
import torch

import ptfunc
from ptfunc import io
from ptfunc.archs import gpt_neox, llama, mistral, qwen2, qwen3
from ptfunc.errors import ConfigError

transformers = pytest.importorskip("transformers")

ATOL = 1e-5
V = 64
BASE = dict(
    vocab_size=V,
    hidden_size=32,
    intermediate_size=48,
    num_hidden_layers=3,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=64,
)
ARCHS = {
    "llama": ("Llama", llama, dict(attention_bias=True, mlp_bias=True)),
    "mistral": ("Mistral", mistral, dict(sliding_window=4)),
    "qwen2": ("Qwen2", qwen2, dict(use_sliding_window=True, sliding_window=4, max_window_layers=1)),
    "qwen3": ("Qwen3", qwen3, dict(head_dim=16)),
    "gpt_neox": ("GPTNeoX", gpt_neox, dict(rotary_pct=0.5)),
}
HEADS = ("Model", "ForCausalLM", "ForSequenceClassification")
IDS = torch.randint(1, V, (2, 9), generator=torch.Generator().manual_seed(0))
LEFT_PAD = torch.ones_like(IDS)
LEFT_PAD[1, :3] = 0


def pair(arch, head="ForCausalLM", attn="eager", **overrides):
    """(reference module, ptfunc model, params) on the same random weights."""
    name, module, extra = ARCHS[arch]
    kw = {**BASE, **extra, **overrides}
    if arch == "gpt_neox":  # multi-head attention only
        del kw["num_key_value_heads"]
    hf_config = getattr(transformers, name + "Config")(**kw, attn_implementation=attn)
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = getattr(transformers, name + head)(hf_config).eval()
    config = getattr(module, name + "Config").from_dict(hf_config.to_dict())
    model = getattr(module, name + head)(config)
    return reference, model, io.from_torch_state_dict(model, reference.state_dict())


def close(a, b, what, atol=ATOL, where=None):
    assert a.shape == b.shape, f"{what}: {tuple(a.shape)} vs {tuple(b.shape)}"
    d = (a.float() - b.float()).abs()
    if where is not None:
        d = d[where]
    assert d.max().item() <= atol, f"{what}: max |d| = {d.max().item():.3g} > {atol}"


def kept(mask):
    return torch.ones_like(IDS, dtype=torch.bool) if mask is None else mask.bool()


@pytest.mark.parametrize("mask", [None, LEFT_PAD], ids=["no-mask", "left-pad"])
@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_matches_transformers(arch, head, mask):
    overrides = {"pad_token_id": 0} if head == "ForSequenceClassification" else {}
    reference, model, params = pair(arch, head, **overrides)
    ids = IDS if mask is None else IDS.masked_fill(mask == 0, 0)
    labels = {}
    if head == "ForCausalLM":
        labels = {"labels": ids.masked_fill(kept(mask) == 0, -100)}
    elif head == "ForSequenceClassification":
        labels = {"labels": torch.tensor([1, 0])}
    with torch.no_grad():
        ref = reference(
            ids, attention_mask=mask, output_hidden_states=True, output_attentions=True, **labels
        )
    out = model.apply(
        params, ids, attention_mask=mask, output_hidden_states=True, output_attentions=True,
        **labels,
    )  # fmt: skip
    where = kept(mask)
    if head == "Model":
        close(out.last_hidden_state, ref.last_hidden_state, "last_hidden_state", where=where)
    elif head == "ForCausalLM":
        close(out.logits, ref.logits, "logits", where=where)
    else:
        close(out.logits, ref.logits, "pooled logits")
    if labels:
        close(out.loss, ref.loss, "loss")
    assert len(out.hidden_states) == len(ref.hidden_states) == BASE["num_hidden_layers"] + 1
    for i, (a, b) in enumerate(zip(out.hidden_states, ref.hidden_states)):
        close(a, b, f"hidden_states[{i}]", where=where)
    rows = where[:, None, :, None] & where[:, None, None, :]
    for i, (a, b) in enumerate(zip(out.attentions, ref.attentions)):
        close(a, b, f"attentions[{i}]", where=rows.expand_as(a))


@pytest.mark.parametrize(
    "rope",
    [
        {"rope_type": "linear", "factor": 2.0},
        {"rope_type": "dynamic", "factor": 2.0},
        {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
         "original_max_position_embeddings": 4},
        {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 4},
        {"rope_type": "yarn", "factor": 4.0, "beta_fast": 16.0, "beta_slow": 2.0,
         "mscale": 0.707, "mscale_all_dim": 1.0},
        {"rope_type": "longrope", "short_factor": [1.0, 1.1, 1.2, 1.3],
         "long_factor": [2.0, 2.5, 3.0, 4.0], "original_max_position_embeddings": 4},
    ],
    ids=["linear", "dynamic", "llama3", "yarn", "yarn-mscale", "longrope"],
)  # fmt: skip
@pytest.mark.parametrize("mask", [None, LEFT_PAD], ids=["no-mask", "left-pad"])
def test_rope_scalings(rope, mask):
    # max_position_embeddings 8 < 9 tokens: dynamic NTK rescales, longrope takes its long set
    reference, model, params = pair("llama", max_position_embeddings=8, rope_scaling=rope)
    assert model.config.rope_scaling["rope_type"] == rope["rope_type"]
    with torch.no_grad():
        ref = reference(IDS, attention_mask=mask).logits
    close(model.apply(params, IDS, attention_mask=mask).logits, ref, "logits", where=kept(mask))


def test_sdpa_reference():
    reference, model, params = pair("llama", attn="sdpa")
    with torch.no_grad():
        ref = reference(IDS, attention_mask=LEFT_PAD).logits
    out = model.apply(params, IDS, attention_mask=LEFT_PAD).logits
    close(out, ref, "logits", where=kept(LEFT_PAD))


def test_sliding_window_changes_the_output():
    """The window is really applied: Mistral with and without it differ (9 tokens > 4)."""
    _, model, params = pair("mistral")
    wide = mistral.MistralForCausalLM(model.config.replace(sliding_window=None))
    a, b = model.apply(params, IDS).logits, wide.apply(params, IDS).logits
    assert (a[:, :4] - b[:, :4]).abs().max() < 1e-6 < (a[:, 4:] - b[:, 4:]).abs().max()


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_cache_matches_transformers(arch):
    """A prompt, then 3 tokens with the cache: logits and the cached keys/values as
    transformers' DynamicCache (a sliding layer keeps the last window - 1 positions there;
    ptfunc keeps them all and masks the rest)."""
    reference, model, params = pair(arch)
    prompt, more = IDS[:, :6], IDS[:, 6:]
    with torch.no_grad():
        first = reference(prompt, use_cache=True)
        second = reference(more, cache=first.cache, use_cache=True)
    ours = model.apply(params, prompt)
    step = model.apply(params, more, past=ours.presents)
    close(step.logits, second.logits, "logits with cache")
    close(step.logits, model.apply(params, IDS).logits[:, 6:], "cache vs whole sequence")
    for i, layer in enumerate(second.cache.layers):
        n = layer.keys.shape[-2]
        close(step.presents[i][0][..., -n:, :], layer.keys, f"keys[{i}]")
        close(step.presents[i][1][..., -n:, :], layer.values, f"values[{i}]")


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_static_cache_equals_growing(arch):
    _, model, params = pair(arch)
    mask = LEFT_PAD
    grown = model.apply(params, IDS[:, :6], attention_mask=mask[:, :6])
    buffers = tuple(
        torch.cat([p, p.new_zeros(*p.shape[:3], 5, p.shape[-1])], dim=-2) for p in grown.presents
    )
    full = torch.cat([mask, mask.new_zeros(2, 2)], dim=1)
    at = torch.arange(6, 9)
    out = model.apply(
        params, IDS[:, 6:], past=buffers, cache_position=at, attention_mask=full,
        position_ids=at[None],
    )  # fmt: skip
    ref = model.apply(params, IDS, attention_mask=mask).logits[:, 6:]
    close(out.logits, ref, "static cache logits")
    assert out.presents[0].shape[-2] == 11


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_greedy_generation_equals_transformers(arch):
    reference, model, params = pair(arch, pad_token_id=0, eos_token_id=None, bos_token_id=None)
    ids = IDS[:, :6].masked_fill(LEFT_PAD[:, :6] == 0, 0)
    mask = LEFT_PAD[:, :6]
    with torch.no_grad():
        ref = reference.generate(ids, attention_mask=mask, max_new_tokens=10, do_sample=False)
    ours = ptfunc.generate(model, params, ids, attention_mask=mask, max_new_tokens=10)
    assert torch.equal(ours, ref)


@pytest.mark.parametrize("arch", ["llama", "mistral"])
def test_compiled_generation_equals_transformers(arch):
    reference, model, params = pair(arch, pad_token_id=0, eos_token_id=None, bos_token_id=None)
    ids = IDS[:, :6].masked_fill(LEFT_PAD[:, :6] == 0, 0)
    mask = LEFT_PAD[:, :6]
    with torch.no_grad():
        ref = reference.generate(ids, attention_mask=mask, max_new_tokens=10, do_sample=False)
    ours = ptfunc.generate(model, params, ids, attention_mask=mask, max_new_tokens=10, compile=True)
    assert torch.equal(ours, ref)


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_bfloat16(arch):
    reference, model, params = pair(arch)
    reference = reference.to(torch.bfloat16)
    params = ptfunc.tree.map(lambda t: t.to(torch.bfloat16), params)
    with torch.no_grad():
        ref = reference(IDS, attention_mask=LEFT_PAD).logits
    out = model.apply(params, IDS, attention_mask=LEFT_PAD).logits
    assert out.dtype == torch.bfloat16
    close(out, ref, "bf16 logits", atol=2e-2, where=kept(LEFT_PAD))


@pytest.mark.parametrize("tied", [False, True])
@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_save_loads_in_transformers(arch, tied, tmp_path):
    reference, model, params = pair(arch, tie_word_embeddings=tied)
    model.save_pretrained(tmp_path, params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded, info = getattr(transformers, ARCHS[arch][0] + "ForCausalLM").from_pretrained(
            tmp_path, output_loading_info=True, attn_implementation="eager"
        )
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    with torch.no_grad():
        ref = loaded.eval()(IDS).logits
    close(model.apply(params, IDS).logits, ref, "logits after save")
    again, params2 = type(model).from_pretrained(tmp_path)
    assert again.config.torch_dtype == "float32"  # the dtype saved is recorded
    assert again.config.replace(torch_dtype=model.config.torch_dtype) == model.config
    close(again.apply(params2, IDS).logits, ref, "ptfunc reload")


def test_sequence_classification_needs_a_pad_id_for_batches():
    _, model, params = pair("llama", head="ForSequenceClassification")
    with pytest.raises(ValueError, match="pad_token_id"):
        model.apply(params, IDS)
    assert model.apply(params, IDS[:1]).logits.shape == (1, 2)


def test_config_reads_both_rope_spellings():
    new = llama.LlamaConfig.from_dict(
        {**BASE, "rope_parameters": {"rope_type": "linear", "factor": 2.0, "rope_theta": 500.0}}
    )
    old = llama.LlamaConfig.from_dict(
        {**BASE, "rope_theta": 500.0, "rope_scaling": {"type": "linear", "factor": 2.0}}
    )
    assert new.rope_theta == old.rope_theta == 500.0
    assert new.rotary() == old.rotary()
    plain = llama.LlamaConfig.from_dict({**BASE, "rope_parameters": {"rope_type": "default"}})
    assert plain.rope_scaling is None
    hf = transformers.LlamaConfig(**new.to_dict())
    assert hf.rope_parameters["rope_type"] == "linear" and hf.rope_parameters["factor"] == 2.0
    assert hf.rope_parameters["rope_theta"] == 500.0
    typed = llama.LlamaConfig.from_dict({**BASE, "torch_dtype": "bfloat16"})
    assert typed.torch_dtype == "bfloat16"
    assert llama.LlamaConfig.from_dict({**BASE, "dtype": "float16"}).torch_dtype == "float16"


@pytest.mark.parametrize(
    "bad, match",
    [
        (dict(num_key_value_heads=3), "num_key_value_heads"),
        (dict(rope_scaling={"rope_type": "nope"}), "rope_type"),
        (dict(rope_scaling={"rope_type": "linear"}), "factor"),
        (dict(hidden_size=30), "hidden_size"),
        (dict(torch_dtype="int8"), "torch_dtype"),
        (dict(rope_scaling={"rope_type": "default", "partial_rotary_factor": 0.5}), "partial"),
    ],
)
def test_config_errors(bad, match):
    with pytest.raises(ConfigError, match=match):
        llama.LlamaConfig(**{**BASE, **bad})


def test_qwen_layer_types_are_checked():
    with pytest.raises(ConfigError, match="layer_types"):
        qwen2.Qwen2Config(**BASE, layer_types=["full_attention"])
    c = qwen2.Qwen2Config(
        **BASE, use_sliding_window=True, sliding_window=4,
        layer_types=["sliding_attention", "full_attention", "sliding_attention"],
    )  # fmt: skip
    assert c.sliding_windows() == (4, None, 4)
    reference, model, params = pair(
        "qwen2", layer_types=["sliding_attention", "full_attention", "sliding_attention"]
    )
    with torch.no_grad():
        ref = reference(IDS).logits
    close(model.apply(params, IDS).logits, ref, "logits with layer_types")


def test_gpt_neox_sequential_residual_and_pythia_names(tmp_path):
    reference, model, params = pair("gpt_neox", use_parallel_residual=False)
    with torch.no_grad():
        ref = reference(IDS, attention_mask=LEFT_PAD).logits
    close(
        model.apply(params, IDS, attention_mask=LEFT_PAD).logits,
        ref,
        "logits",
        where=kept(LEFT_PAD),
    )
    # Pythia's hub files (and transformers 4.x) name the LM head embed_out
    state = {("embed_out.weight" if k == "lm_head.weight" else k): v
             for k, v in reference.state_dict().items()}  # fmt: skip
    assert ptfunc.tree.map(torch.equal, io.from_torch_state_dict(model, state), params)
    model.save_pretrained(tmp_path, params)
    from safetensors import safe_open

    with safe_open(tmp_path / "model.safetensors", "pt") as f:
        assert "embed_out.weight" in f.keys() and "lm_head.weight" not in f.keys()
