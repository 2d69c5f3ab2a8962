"""Converting the original OpenAI GPT NumPy release (tiny fixture) with ptfunc.

Oracle: the seed's own pipeline, run live (pure NumPy, no TensorFlow):
``pytorch_transformers.convert_openai_checkpoint_to_pytorch`` (which calls
``load_tf_weights_in_openai_gpt``) on the same folder, then 1.0's
``OpenAIGPTLMHeadModel.from_pretrained`` of its output. Logits within 1e-5
(max-abs, float32). No shim is needed under torch 2.13 / NumPy 2. The seed reads
``parameters_names.json``; ptfunc also converts a copy without it (fixed graph order)
to the same logits. Today's ``transformers`` loads ptfunc's output directory too.

Fixture: ``tests/data/checkpoints/openai_gpt`` from ``tests/gen_checkpoints_numpy.py``
(2 layers, n_embd 16, 4 heads, n_ctx 8).
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from ptfunc import io, tree
from ptfunc.archs import openai_gpt as og
from ptfunc.io.convert.openai_gpt import convert_openai_gpt
from ptfunc.tokenize.openai import OpenAIGPTTokenizer

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    pt = pytest.importorskip("pytorch_transformers")
    from pytorch_transformers.convert_openai_checkpoint_to_pytorch import (
        convert_openai_checkpoint_to_pytorch,
    )

FIXTURE = Path(__file__).parent / "data" / "checkpoints" / "openai_gpt"
ATOL = 1e-5
N_HEAD = 4  # the files do not record it (the release used 12)


def _close(a, b, what):
    err = (a - b).abs().max().item()
    assert a.shape == b.shape and err <= ATOL, f"{what}: {tuple(a.shape)} {tuple(b.shape)} {err}"


def _shapes():
    return json.loads((FIXTURE / "params_shapes.json").read_text())


def _seed_config_file(tmp_path) -> Path:
    """A 1.0 config.json for the fixture (the seed's converter defaults to the full-size one)."""
    shapes = _shapes()
    config = pt.OpenAIGPTConfig(
        vocab_size_or_config_json_file=shapes[1][0],
        n_positions=shapes[0][0],
        n_ctx=shapes[0][0],
        n_embd=shapes[0][1],
        n_layer=(len(shapes) - 2) // 12,
        n_head=N_HEAD,
    )
    path = tmp_path / "seed_config.json"
    config.to_json_file(str(path))
    return path


@pytest.fixture(scope="module")
def seed_model(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("seed")
    (tmp / "dump").mkdir()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        convert_openai_checkpoint_to_pytorch(
            str(FIXTURE), str(_seed_config_file(tmp)), str(tmp / "dump")
        )
        return pt.OpenAIGPTLMHeadModel.from_pretrained(str(tmp / "dump")).eval()


def _ids(vocab_size, seed=0):
    return torch.randint(0, vocab_size, (3, 8), generator=torch.Generator().manual_seed(seed))


def _check_against_seed(out_dir, seed_model):
    model, params = io.from_pretrained(out_dir, og.OpenAIGPTLMHeadModel, strict=True)
    ids = _ids(model.config.vocab_size)
    with torch.no_grad():
        reference = seed_model(ids)[0]
    _close(model.apply(params, ids).logits, reference, "logits vs the seed's converter")
    return model, params


def test_converts_with_names_to_the_seed_logits(tmp_path, seed_model):
    calls = []
    out = convert_openai_gpt(
        FIXTURE, tmp_path / "out", n_head=N_HEAD, progress=lambda *a: calls.append(a)
    )
    assert sorted(p.name for p in out.iterdir()) == [
        "config.json",
        "merges.txt",
        "model.safetensors",
        "vocab.json",
    ]
    model, _ = _check_against_seed(out, seed_model)
    shapes = _shapes()
    assert calls[-1][:2] == (len(shapes), len(shapes))
    config = model.config
    assert (config.n_layer, config.n_embd, config.n_ctx, config.n_positions) == (2, 16, 8, 8)
    assert config.vocab_size == shapes[1][0] and config.n_head == N_HEAD
    written = json.loads((out / "config.json").read_text())
    assert written["architectures"] == ["OpenAIGPTLMHeadModel"]


def test_fixed_order_without_names_gives_the_same_params(tmp_path, seed_model):
    folder = tmp_path / "release"
    shutil.copytree(FIXTURE, folder)
    (folder / "parameters_names.json").unlink()
    out = convert_openai_gpt(folder, tmp_path / "out", n_head=N_HEAD)
    _, params = _check_against_seed(out, seed_model)
    with_names = convert_openai_gpt(FIXTURE, tmp_path / "named", n_head=N_HEAD)
    _, named = io.from_pretrained(with_names, og.OpenAIGPTLMHeadModel)
    for name, value in tree.to_flat_dict(named).items():
        assert torch.equal(tree.to_flat_dict(params)[name], value), name


def test_config_file_and_default_heads(tmp_path, seed_model):
    out = convert_openai_gpt(FIXTURE, tmp_path / "out", config=_seed_config_file(tmp_path))
    _check_against_seed(out, seed_model)
    # without a config, heads default to the 1.0 config's 12 (16 is not a multiple of 12)
    with pytest.raises(ValueError, match="pass n_head"):
        convert_openai_gpt(FIXTURE, tmp_path / "default")
    assert not (tmp_path / "default").exists()


def test_tokenizer_loads_from_the_output(tmp_path):
    out = convert_openai_gpt(FIXTURE, tmp_path / "out", n_head=N_HEAD)
    assert (out / "merges.txt").read_bytes() == (FIXTURE / "vocab_40000.bpe").read_bytes()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        seed = pt.OpenAIGPTTokenizer(
            str(FIXTURE / "encoder_bpe_40000.json"), str(FIXTURE / "vocab_40000.bpe")
        )
        text = "The cat sat on the mat."
        assert OpenAIGPTTokenizer.from_pretrained(out).encode(text) == seed.encode(text)


def test_transformers_loads_the_output(tmp_path):
    transformers = pytest.importorskip("transformers")
    out = convert_openai_gpt(FIXTURE, tmp_path / "out", n_head=N_HEAD)
    model, params = io.from_pretrained(out, og.OpenAIGPTLMHeadModel)
    reference = transformers.OpenAIGPTLMHeadModel.from_pretrained(out).eval()
    ids = _ids(model.config.vocab_size, seed=1)
    with torch.no_grad():
        _close(model.apply(params, ids).logits, reference(ids).logits, "vs transformers")


# -- bad input -----------------------------------------------------------------------------------


def _broken_copy(tmp_path, edit):
    folder = tmp_path / "release"
    shutil.copytree(FIXTURE, folder)
    edit(folder)
    return folder


def _fails(tmp_path, folder, error, match, **kwargs):
    with pytest.raises(error, match=match):
        convert_openai_gpt(folder, tmp_path / "out", n_head=N_HEAD, **kwargs)
    assert not (tmp_path / "out").exists()


def test_missing_files(tmp_path):
    _fails(tmp_path, tmp_path / "nowhere", FileNotFoundError, "params_shapes.json")
    folder = _broken_copy(tmp_path, lambda f: (f / "params_0.npy").unlink())
    _fails(tmp_path, folder, FileNotFoundError, "params_0.npy")
    folder = _broken_copy(tmp_path / "b", lambda f: (f / "params_shapes.json").unlink())
    _fails(tmp_path, folder, FileNotFoundError, "params_shapes.json")
    _fails(tmp_path, FIXTURE, FileNotFoundError, "tokenizer file", vocab=tmp_path / "none.json")


def test_a_missing_part_is_a_size_mismatch(tmp_path):
    folder = _broken_copy(tmp_path, lambda f: (f / "params_9.npy").unlink())
    _fails(tmp_path, folder, ValueError, "describes")


def test_truncated_npy(tmp_path):
    def truncate(folder):
        path = folder / "params_3.npy"
        path.write_bytes(path.read_bytes()[:-40])

    _fails(tmp_path, _broken_copy(tmp_path, truncate), ValueError, "params_3.npy")


def test_pickled_npy_is_refused(tmp_path):
    def pickled(folder):
        np.save(folder / "params_2.npy", np.array([object()], dtype=object), allow_pickle=True)

    _fails(tmp_path, _broken_copy(tmp_path, pickled), ValueError, "params_2.npy")


def test_names_and_shapes_must_agree(tmp_path):
    def rename(folder):
        names = json.loads((folder / "parameters_names.json").read_text())
        names[3] = "model/h0/attn/c_q/w:0"
        (folder / "parameters_names.json").write_text(json.dumps(names))

    _fails(tmp_path, _broken_copy(tmp_path, rename), ValueError, "unexpected variable")

    def drop_layer_name(folder):
        names = json.loads((folder / "parameters_names.json").read_text())
        (folder / "parameters_names.json").write_text(json.dumps(names[:-5]))

    _fails(tmp_path / "b", _broken_copy(tmp_path / "b", drop_layer_name), ValueError, "names")

    def reshape(folder):
        shapes = json.loads((folder / "params_shapes.json").read_text())
        shapes[2] = [16, 48]  # the kernel without its leading 1
        (folder / "params_shapes.json").write_text(json.dumps(shapes))
        (folder / "parameters_names.json").unlink()

    _fails(tmp_path / "c", _broken_copy(tmp_path / "c", reshape), ValueError, "one-wide kernel")


def test_config_that_does_not_fit(tmp_path):
    config = og.OpenAIGPTConfig(
        vocab_size=99, n_positions=8, n_ctx=8, n_embd=16, n_layer=2, n_head=N_HEAD
    )
    _fails(tmp_path, FIXTURE, ValueError, "shape mismatch", config=config)
