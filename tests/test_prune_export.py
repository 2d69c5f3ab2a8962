"""Saves of models with pruned heads load in ``transformers`` 5 and in pytorch-transformers 1.0.

Neither library can build pruned attention layers, so ptfunc writes the full-size
model with each pruned head's tensors zero (``ptfunc.archs.prune.unprune``) and
``pruned_heads`` in config.json. References and tolerances:

- ``transformers`` 5 loads the default save (and ``export_directory(to="transformers")``)
  with its head class and its base class: logits and last hidden state equal ptfunc's
  pruned ``apply`` within 1e-5 (max-abs, float32);
- pytorch-transformers 1.0 loads ``format="pt1"`` (and ``to="pytorch-transformers"``)
  the same way, within 1e-5; 1.0's own ``prune_heads`` of the loaded model then gives
  bitwise ptfunc's pruned params (the kept heads sit at their original indices), and
  every other entry of the file is zero (the files hold no more nonzeros than the
  pruned params);
- ptfunc reads every one of these directories, and the references' own re-saves, back
  to the pruned model with bitwise the same params; directories of the old layout
  (pruned shapes) still load, and shapes that fit neither are a ``CheckpointError``.
"""

from __future__ import annotations

import json
import warnings

import pytest
import torch

import ptfunc
from ptfunc import io, tree
from ptfunc.archs import bert, gpt2, openai_gpt, xlm
from ptfunc.errors import CheckpointError
from ptfunc.io.convert.export import export_directory
from ptfunc.io.pretrained import config_text, model_config_dict
from ptfunc.io.safetensors_io import load_flat, to_safetensors_bytes
from ptfunc.io.state_dict import to_torch_state_dict

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    transformers = pytest.importorskip("transformers")
    pt = pytest.importorskip("pytorch_transformers")
    from test_convert_export import CASES, IDS, _assert_same_params, _close

L, H = 3, 4
# layer 1 untouched, layer 2 keeps one head of four
HEADS = {0: [0, 2], 2: [1, 2, 3]}
RECORDED = {0: (0, 2), 2: (1, 2, 3)}
# every architecture with head pruning: (case of test_convert_export, base class)
ARCHS = {
    "bert": ("bert-classification-3", "BertModel"),
    "gpt2": ("gpt2-lm", "GPT2Model"),
    "openai_gpt": ("openai-gpt-lm", "OpenAIGPTModel"),
    "xlm": ("xlm-lm", "XLMModel"),
}
MODULES = {"bert": bert, "gpt2": gpt2, "openai_gpt": openai_gpt, "xlm": xlm}
# a query (or fused qkv) weight of a pruned layer, as named in the files
QUERY = {
    "bert": "bert.encoder.layer.0.attention.self.query.weight",
    "gpt2": "transformer.h.0.attn.c_attn.weight",
    "openai_gpt": "transformer.h.0.attn.c_attn.weight",
    "xlm": "transformer.attentions.0.q_lin.weight",
}
ROUTES = ("save", "export")


def _pruned(arch):
    """A random 3-layer head model (noise on every leaf, so no entry is 0), pruned."""
    module, name, config, _, _ = CASES[ARCHS[arch][0]]
    cls = getattr(module, name)
    model = cls(cls.config_class.from_dict({**config, "num_hidden_layers": L}))
    assert model.config.num_attention_heads == H
    g = torch.Generator().manual_seed(1)
    params = tree.map(
        lambda x: x + 0.1 * torch.randn(x.shape, generator=g), model.init(ptfunc.random.key(0))
    )
    return model.prune_heads(params, HEADS)


def _outputs(arch, model, params):
    """ptfunc's pruned apply: ``(head output [0], base model's last hidden state)``."""
    inputs = CASES[ARCHS[arch][0]][3]
    base = getattr(MODULES[arch], ARCHS[arch][1])(model.config)
    return (
        model.apply(params, IDS, **inputs)[0],
        base.apply(params[model.params_prefix], IDS, **inputs)[0],
    )


def _write(arch, tmp_path, route, fmt):
    """The pruned model written by ``save_pretrained(format=fmt)`` or exported from a
    default save (``route="export"``) to that format's layout."""
    model, params = _pruned(arch)
    if route == "save":
        io.save_pretrained(tmp_path / fmt, model, params, format=fmt)
        return model, params, tmp_path / fmt
    io.save_pretrained(tmp_path / "src", model, params)
    to = "transformers" if fmt == "safetensors" else "pytorch-transformers"
    return model, params, export_directory(tmp_path / "src", tmp_path / fmt, to=to)


def _load_reference(library, name, directory):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference, info = getattr(library, name).from_pretrained(
            str(directory), output_loading_info=True
        )
    return reference.eval(), info


def _check_reference(arch, library, model, params, directory):
    """The reference's head and base classes give ptfunc's pruned outputs; returns the
    head model."""
    case, base_name = ARCHS[arch]
    inputs = CASES[case][3]
    head_out, hidden = _outputs(arch, model, params)
    reference, info = _load_reference(library, CASES[case][1], directory)
    assert not info["unexpected_keys"], info
    assert all(k.endswith("attn.bias") for k in info["missing_keys"]), info  # 1.0's masks
    base, _ = _load_reference(library, base_name, directory)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 1.0's XLM: torch.arange(out=) resize
        want = reference(IDS, **inputs)[0]
        want_hidden = base(IDS, **inputs)[0]
    _close(head_out, want.reshape(head_out.shape), f"{arch}: head output")
    _close(hidden, want_hidden, f"{arch}: last hidden state")
    return reference


def _check_reload(model, params, directory, what):
    """ptfunc reads ``directory`` back to the same pruned model, bit for bit."""
    back_model, back = io.from_pretrained(directory, type(model), strict=True)
    assert back_model == model and back_model.config.pruned_heads == RECORDED, what
    _assert_same_params(params, back, what)


def _resave(reference, model, params, tmp_path):
    (tmp_path / "resaved").mkdir()
    reference.save_pretrained(str(tmp_path / "resaved"))
    _check_reload(model, params, tmp_path / "resaved", "the reference's re-save")


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("arch", list(ARCHS))
def test_transformers_loads_the_pruned_save(arch, route, tmp_path):
    model, params, directory = _write(arch, tmp_path, route, "safetensors")
    config = json.loads((directory / "config.json").read_text())
    assert config["pruned_heads"] == {"0": [0, 2], "2": [1, 2, 3]}
    files = load_flat(directory / "model.safetensors")
    full = tree.to_flat_dict(model.unprune_heads(params)[1])
    assert {n: files[n].shape for n in files} == {n: full[n].shape for n in files}
    assert files[QUERY[arch]].shape != tree.to_flat_dict(params)[QUERY[arch]].shape
    reference = _check_reference(arch, transformers, model, params, directory)
    _check_reload(model, params, directory, f"{arch}: default save")
    _resave(reference, model, params, tmp_path)


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("arch", list(ARCHS))
def test_pytorch_transformers_loads_the_pruned_save(arch, route, tmp_path):
    model, params, directory = _write(arch, tmp_path, route, "pt1")
    assert sorted(p.name for p in directory.iterdir()) == ["config.json", "pytorch_model.bin"]
    reference = _check_reference(arch, pt, model, params, directory)
    _check_reload(model, params, directory, f"{arch}: pt1 save")
    _resave(reference, model, params, tmp_path)
    # the pruned heads are zero and the kept ones in place: 1.0's own prune_heads of the
    # full-size model is ptfunc's pruned model
    state = torch.load(directory / "pytorch_model.bin", weights_only=True)
    nonzero = sum(int(torch.count_nonzero(t)) for t in state.values())
    flat = io.to_torch_state_dict(model, params)
    assert nonzero == sum(int(torch.count_nonzero(t)) for t in flat.values())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference.prune_heads(HEADS)
        repruned = io.from_torch_state_dict(model, reference.state_dict(), strict=False)
    _assert_same_params(params, repruned, "1.0's prune_heads of the full-size model")


@pytest.mark.parametrize("arch", list(ARCHS))
def test_the_old_layout_still_loads(arch, tmp_path):
    """Directories written before: the pruned shapes, with pruned_heads in config.json."""
    model, params = _pruned(arch)
    old = tmp_path / "old"
    old.mkdir()
    (old / "config.json").write_text(config_text(model_config_dict(model)))
    flat = to_torch_state_dict(model, params, include_tied=False)
    (old / "model.safetensors").write_bytes(to_safetensors_bytes(flat))
    _check_reload(model, params, old, f"{arch}: old layout")
    assert model.from_pretrained(old)[0] == model  # the 1.0 spelling too


def _tampered(arch, tmp_path, change):
    """A default save of the pruned model whose weights ``change`` edits in place."""
    model, params = _pruned(arch)
    io.save_pretrained(tmp_path / "bad", model, params)
    weights = tmp_path / "bad" / "model.safetensors"
    state = dict(load_flat(weights))
    change(state, tree.to_flat_dict(params))
    data = to_safetensors_bytes(state)  # before the file (which load_flat may map) is rewritten
    weights.write_bytes(data)
    return model, tmp_path / "bad"


@pytest.mark.parametrize("arch", list(ARCHS))
def test_shapes_of_neither_layout_are_a_clear_error(arch, tmp_path):
    def neither(state, _):
        state[QUERY[arch]] = state[QUERY[arch]][:-1].contiguous()

    model, bad = _tampered(arch, tmp_path / "neither", neither)
    with pytest.raises(CheckpointError, match=r"model\.safetensors: .*" + QUERY[arch]) as error:
        io.from_pretrained(bad, type(model))
    assert "pruned_heads" in str(error.value) and "full-size" in str(error.value)

    def mixed(state, pruned):
        state[QUERY[arch]] = pruned[QUERY[arch]]  # one tensor of the old layout

    model, bad = _tampered(arch, tmp_path / "mixed", mixed)
    with pytest.raises(CheckpointError, match="all pruned or all full-size") as error:
        io.from_pretrained(bad, type(model))
    assert QUERY[arch] in str(error.value) and "model.safetensors" in str(error.value)
