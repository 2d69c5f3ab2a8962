"""Converting an original XLM checkpoint (tiny fixture) with ptfunc.

Oracle: the seed's ``convert_xlm_checkpoint_to_pytorch``, run live, then
pytorch-transformers 1.0's ``from_pretrained`` of its output; float32 outputs within
1e-5 (max-abs). Test-only shim: the seed calls plain ``torch.load``, which under
torch 2.13 means ``weights_only=True`` and refuses the NumPy array in ``params``;
the test runs it inside ``torch.serialization.safe_globals`` with the NumPy
globals ptfunc allows (still weights-only).

The seed saved ``model`` unrenamed, so 1.0's ``XLMWithLMHeadModel`` loads only the
base model from it and leaves ``pred_layer.proj.bias`` at zero. ptfunc keeps the
bias (the later ``transformers`` converter's renaming); the tests check that the
base model equals the seed's output as it is, that the LM logits equal 1.0's
model given the seed's weights with that renaming, and that the seed's own LM
logits differ from ptfunc's by exactly the bias. Today's ``transformers`` loads
ptfunc's output directory too.

Fixture: ``tests/data/checkpoints/xlm`` from ``tests/gen_checkpoints_numpy.py``.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from ptfunc import io, tree
from ptfunc.archs import xlm
from ptfunc.io._torch_load import _numpy_globals
from ptfunc.io.convert.xlm import convert_xlm, load_xlm_checkpoint, xlm_vocab

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    pt = pytest.importorskip("pytorch_transformers")
    from pytorch_transformers import convert_xlm_checkpoint_to_pytorch as seed_converter

FIXTURE = Path(__file__).parent / "data" / "checkpoints" / "xlm"
CHECKPOINT = FIXTURE / "mlm_enfr_tiny.pth"
CODES = FIXTURE / "codes"
ATOL = 1e-5
V = 30
IDS = torch.randint(0, V, (3, 7), generator=torch.Generator().manual_seed(0))
LANGS = torch.randint(0, 2, (3, 7), generator=torch.Generator().manual_seed(1))


def _close(a, b, what):
    err = (a - b).abs().max().item()
    assert a.shape == b.shape and err <= ATOL, f"{what}: {tuple(a.shape)} {tuple(b.shape)} {err}"


def _original():
    with torch.serialization.safe_globals(_numpy_globals()):
        return torch.load(CHECKPOINT, weights_only=True)


@pytest.fixture(scope="module")
def seed_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("seed")
    level = logging.getLogger().level
    try:
        with torch.serialization.safe_globals(_numpy_globals()):
            seed_converter.convert_xlm_checkpoint_to_pytorch(str(CHECKPOINT), str(out))
    finally:
        logging.getLogger().setLevel(level)  # the seed's module sets INFO on import
    return out


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    out = convert_xlm(CHECKPOINT, tmp_path_factory.mktemp("ours") / "out", merges=CODES)
    return out, *io.from_pretrained(out, xlm.XLMWithLMHeadModel, strict=True)


def _seed(cls, seed_dir, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return getattr(pt, cls).from_pretrained(str(seed_dir), **kwargs).eval()


def test_output_files_and_progress(tmp_path):
    calls = []
    out = convert_xlm(CHECKPOINT, tmp_path / "out", progress=lambda *a: calls.append(a))
    assert sorted(p.name for p in out.iterdir()) == [
        "config.json",
        "model.safetensors",
        "vocab.json",
    ]
    n = len(_original()["model"])
    assert [c[:2] for c in calls] == [(i, n) for i in range(1, n + 1)]


def test_base_model_equals_the_seed_output(seed_dir, converted):
    out, _, _ = converted
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the LM head's bias is not used by the base model
        model, params = io.from_pretrained(out, xlm.XLMModel)
    reference = _seed("XLMModel", seed_dir)
    with torch.no_grad():
        want = reference(IDS, langs=LANGS)[0]
    _close(model.apply(params, IDS, langs=LANGS).last_hidden_state, want, "base model")


def test_lm_logits_equal_the_seed_weights_with_the_head_kept(seed_dir, converted):
    _, model, params = converted
    state = torch.load(seed_dir / "pytorch_model.bin", weights_only=True)
    renamed = {
        k if k.startswith("pred_layer.") else "transformer." + k: v for k, v in state.items()
    }
    reference = _seed("XLMWithLMHeadModel", seed_dir, state_dict=renamed)
    ours = model.apply(params, IDS, langs=LANGS).logits
    with torch.no_grad():
        _close(ours, reference(IDS, langs=LANGS)[0].view(3, 7, V), "LM logits")
        # the seed's own directory loads without the LM bias
        as_is = _seed("XLMWithLMHeadModel", seed_dir)(IDS, langs=LANGS)[0].view(3, 7, V)
    bias = params["pred_layer"]["proj"]["bias"]
    _close(ours - as_is, bias.expand_as(ours), "seed output = ptfunc - bias")


def test_config_and_vocab_agree_with_the_seed(seed_dir, converted):
    out, model, _ = converted
    seed_config = json.loads((seed_dir / "config.json").read_text())
    ours = json.loads((out / "config.json").read_text())
    for key in ("emb_dim", "n_layers", "n_heads", "n_words", "n_langs", "gelu_activation",
                "sinusoidal_embeddings", "dropout", "attention_dropout", "bos_index",
                "eos_index", "pad_index", "unk_index", "mask_index", "lang2id", "id2lang",
                "max_position_embeddings"):  # fmt: skip
        assert ours[key] == seed_config[key], key
    assert "lgs" not in ours and "mask_scores" not in ours  # training options left out
    assert ours["architectures"] == ["XLMWithLMHeadModel"]
    seed_vocab = json.loads((seed_dir / "vocab.json").read_text())
    assert json.loads((out / "vocab.json").read_text()) == seed_vocab
    assert seed_vocab["s"] == 16 and seed_vocab["the</w>"] == 14 and seed_vocab["<s>"] == 0
    assert (out / "merges.txt").read_bytes() == CODES.read_bytes()


def test_transformers_loads_the_output_and_the_tokenizer(converted):
    transformers = pytest.importorskip("transformers")
    out, model, params = converted
    reference = transformers.XLMWithLMHeadModel.from_pretrained(out).eval()
    with torch.no_grad():
        want = reference(IDS, langs=LANGS).logits
    _close(model.apply(params, IDS, langs=LANGS).logits, want, "vs transformers")
    pytest.importorskip("sacremoses")
    from ptfunc.tokenize.xlm import XLMTokenizer

    theirs = transformers.XLMTokenizer(str(out / "vocab.json"), str(out / "merges.txt"))
    text = "the cat sat on the mat."
    assert XLMTokenizer.from_pretrained(out).encode(text, add_special_tokens=True) == theirs.encode(
        text
    )


def test_module_prefix_is_removed(tmp_path, converted):
    _, _, params = converted
    chkpt = _original()
    chkpt["model"] = {"module." + k: v for k, v in chkpt["model"].items()}
    torch.save(chkpt, tmp_path / "ddp.pth")
    _, loaded = io.from_pretrained(
        convert_xlm(tmp_path / "ddp.pth", tmp_path / "out"), xlm.XLMWithLMHeadModel
    )
    for name, value in tree.to_flat_dict(params).items():
        assert torch.equal(tree.to_flat_dict(loaded)[name], value), name


def test_sinusoidal_positions_ignore_the_table(tmp_path):
    transformers = pytest.importorskip("transformers")
    chkpt = _original()
    chkpt["params"]["sinusoidal_embeddings"] = True
    torch.save(chkpt, tmp_path / "sin.pth")
    out = convert_xlm(tmp_path / "sin.pth", tmp_path / "out")
    model, params = io.from_pretrained(out, xlm.XLMWithLMHeadModel, strict=True)
    assert model.config.sinusoidal_embeddings and "position_embeddings" not in params["transformer"]
    reference = transformers.XLMWithLMHeadModel.from_pretrained(out).eval()
    with torch.no_grad():
        want = reference(IDS, langs=LANGS).logits
    _close(model.apply(params, IDS, langs=LANGS).logits, want, "sinusoidal vs transformers")


def test_numpy_is_allowed_only_during_the_conversion():
    before = set(torch.serialization.get_safe_globals())
    chkpt = load_xlm_checkpoint(CHECKPOINT)
    assert isinstance(chkpt["params"]["mask_scores"], np.ndarray)
    assert set(torch.serialization.get_safe_globals()) == before
    with pytest.raises(Exception, match="numpy"):
        torch.load(CHECKPOINT, weights_only=True)


def test_vocab_rule():
    assert xlm_vocab({"<s>": 0, "<special9>": 13, "ab@@": 14, "c": 15}) == {
        "<s>": 0,
        "<special9>": 13,
        "ab": 14,
        "c</w>": 15,
    }


# -- refused input -------------------------------------------------------------------------------


class _RunsCode:
    """Pickles as a call to os.system: what a malicious checkpoint does."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _Options:
    """A class of the user's (as an argparse.Namespace of params would be)."""


@pytest.mark.parametrize("zipped", [True, False])
def test_code_in_the_pickle_is_refused(tmp_path, zipped):
    marker = tmp_path / "pwned"
    chkpt = _original()
    chkpt["params"]["exp_name"] = _RunsCode(marker)
    torch.save(chkpt, tmp_path / "evil.pth", _use_new_zipfile_serialization=zipped)
    with pytest.raises(ValueError, match=r"refused to load .*evil\.pth.*system"):
        convert_xlm(tmp_path / "evil.pth", tmp_path / "out")
    assert not marker.exists() and not (tmp_path / "out").exists()


def test_other_objects_are_refused_by_name(tmp_path):
    chkpt = _original()
    chkpt["params"] = _Options()
    torch.save(chkpt, tmp_path / "obj.pth")
    with pytest.raises(ValueError, match="_Options"):
        convert_xlm(tmp_path / "obj.pth", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def _save_edit(tmp_path, edit):
    chkpt = _original()
    edit(chkpt)
    torch.save(chkpt, tmp_path / "edited.pth")
    return tmp_path / "edited.pth"


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda c: c.update(encoder=c.pop("model"), decoder={}), "translation checkpoint"),
        (lambda c: c["params"].update(asm=True), "adaptive-softmax"),
        (lambda c: c["params"].update(share_inout_emb=False), "share_inout_emb"),
        (
            lambda c: c["model"].update({"pred_layer.proj.weight": torch.zeros(V, 16)}),
            "differs from embeddings",
        ),
        (lambda c: c["params"].update(n_words=31), "shape mismatch"),
        (lambda c: c["params"].update(n_heads=5), "multiple of n_heads"),
        (lambda c: c["model"].pop("ffns.1.lin2.bias"), "missing"),
    ],
)
def test_inconsistent_checkpoints(tmp_path, edit, match):
    path = _save_edit(tmp_path, edit)
    with pytest.raises(ValueError, match=match):
        convert_xlm(path, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_missing_and_truncated_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="XLM checkpoint"):
        convert_xlm(tmp_path / "none.pth", tmp_path / "out")
    (tmp_path / "cut.pth").write_bytes(CHECKPOINT.read_bytes()[:5000])
    with pytest.raises(ValueError, match="cut.pth"):
        convert_xlm(tmp_path / "cut.pth", tmp_path / "out")
    with pytest.raises(FileNotFoundError, match="BPE codes"):
        convert_xlm(CHECKPOINT, tmp_path / "out", merges=tmp_path / "codes")
    assert not (tmp_path / "out").exists()
