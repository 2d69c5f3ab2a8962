"""Write the tiny OpenAI GPT (NumPy) and XLM (PyTorch) checkpoints in their original formats.

Environment: the main one (numpy and torch only; no TensorFlow, no reference
library). Run from the repository root::

    python tests/gen_checkpoints_numpy.py

Outputs (random weights, fixed seeds, a few tens of KB each):

* ``tests/data/checkpoints/openai_gpt/``: the layout of the
  ``openai/finetune-transformer-lm`` release (``params_shapes.json``,
  ``params_0.npy`` .. ``params_9.npy``, ``encoder_bpe_40000.json``,
  ``vocab_40000.bpe``) plus ``parameters_names.json`` as in the copy Hugging Face
  hosted (``model/we:0`` first, the classifier ``model/clf/*`` last, without values).
  2 layers, ``n_embd`` 16, 4 heads (not recorded in the files), ``n_ctx`` 8.
* ``tests/data/checkpoints/xlm/``: ``mlm_enfr_tiny.pth``, a dict shaped like the
  checkpoints of ``facebookresearch/XLM`` (``model`` state dict with the input and
  output embeddings sharing storage, ``params`` with training options, a NumPy
  array, a NumPy scalar and a tensor among them, ``dico_word2id``, ``dico_id2word``,
  ``dico_counts``), and ``codes`` (fastBPE merges ``a b count``). 2 layers,
  ``emb_dim`` 16, 4 heads, 2 languages, 32 positions (the original has 512; the
  ``max_position_embeddings`` entry of ``params`` tells the seed's converter).

The tests compute their references live (the seed's NumPy loader and XLM converter).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent / "data" / "checkpoints"

# -- OpenAI GPT ---------------------------------------------------------------------------------

GPT_LAYERS = 2
GPT_EMBD = 16
GPT_CTX = 8
GPT_HEADS = 4  # for the tests; the release's files do not record it

# A tiny BPE over "the cat sat on the mat ." in the release's format: ``</w>`` ends a word,
# the merges file starts with a version line.
GPT_SYMBOLS = ["t", "h", "e", "c", "a", "s", "o", "n", "m", "."]
GPT_MERGES = [("t", "h"), ("th", "e</w>"), ("a", "t</w>"), ("c", "at</w>"), ("s", "at</w>"),
              ("o", "n</w>"), ("m", "at</w>")]  # fmt: skip

LAYER_VARIABLES = ("attn/c_attn/w", "attn/c_attn/b", "attn/c_proj/w", "attn/c_proj/b",
                   "ln_1/g", "ln_1/b", "mlp/c_fc/w", "mlp/c_fc/b", "mlp/c_proj/w",
                   "mlp/c_proj/b", "ln_2/g", "ln_2/b")  # fmt: skip


def _gpt_vocab() -> dict[str, int]:
    tokens = GPT_SYMBOLS + [s + "</w>" for s in GPT_SYMBOLS] + [a + b for a, b in GPT_MERGES]
    return {token: i for i, token in enumerate(tokens)}


def _layer_shapes(n: int) -> dict[str, tuple[int, ...]]:
    return {
        "attn/c_attn/w": (1, n, 3 * n),
        "attn/c_attn/b": (3 * n,),
        "attn/c_proj/w": (1, n, n),
        "attn/c_proj/b": (n,),
        "ln_1/g": (n,),
        "ln_1/b": (n,),
        "mlp/c_fc/w": (1, n, 4 * n),
        "mlp/c_fc/b": (4 * n,),
        "mlp/c_proj/w": (1, 4 * n, n),
        "mlp/c_proj/b": (n,),
        "ln_2/g": (n,),
        "ln_2/b": (n,),
    }


def write_openai_gpt(folder: Path = ROOT / "openai_gpt") -> None:
    """The NumPy release layout with random weights (LayerNorm scales around 1)."""
    rng = np.random.default_rng(7)
    vocab = _gpt_vocab()
    shapes = [(GPT_CTX, GPT_EMBD), (len(vocab), GPT_EMBD)]
    names = ["model/we:0"]
    arrays = [rng.normal(0, 0.3, s) for s in shapes]
    layer = _layer_shapes(GPT_EMBD)
    for i in range(GPT_LAYERS):
        for var in LAYER_VARIABLES:
            names.append(f"model/h{i}/{var}:0")
            shapes.append(layer[var])
            centre = 1.0 if var.endswith("/g") else 0.0
            arrays.append(centre + rng.normal(0, 0.3, layer[var]))
    names += ["model/clf/w:0", "model/clf/b:0"]
    flat = np.concatenate([a.reshape(-1) for a in arrays]).astype(np.float32)
    folder.mkdir(parents=True, exist_ok=True)
    for i, part in enumerate(np.array_split(flat, 10)):
        np.save(folder / f"params_{i}.npy", part)
    (folder / "params_shapes.json").write_text(json.dumps([list(s) for s in shapes]))
    (folder / "parameters_names.json").write_text(json.dumps(names))
    (folder / "encoder_bpe_40000.json").write_text(json.dumps(vocab))
    (folder / "vocab_40000.bpe").write_text(
        "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in GPT_MERGES)
    )


# -- XLM ----------------------------------------------------------------------------------------

XLM_LAYERS = 2
XLM_DIM = 16
XLM_HEADS = 4
XLM_POSITIONS = 32
XLM_SPECIALS = ["<s>", "</s>", "<pad>", "<unk>"] + [f"<special{i}>" for i in range(10)]
XLM_WORDS = ["the", "cat", "s@@", "at", "on", "le", "chat", "m@@", "a", "t",
             "sur", "la", "c@@", "ch@@", "e", "."]  # fmt: skip
XLM_CODES = [("t", "h", 9), ("th", "e</w>", 8), ("c", "a", 7), ("ca", "t</w>", 6),
             ("a", "t</w>", 5), ("o", "n</w>", 4), ("l", "e</w>", 3)]  # fmt: skip


def xlm_state_dict(rng: np.random.Generator) -> dict[str, torch.Tensor]:
    """An original ``TransformerModel`` state dict (names of ``XLM/src/model/transformer.py``)."""
    d, n_words = XLM_DIM, len(XLM_SPECIALS) + len(XLM_WORDS)

    def t(*shape: int, centre: float = 0.0) -> torch.Tensor:
        return torch.from_numpy(centre + rng.normal(0, 0.3, shape).astype(np.float32))

    state = {
        "position_embeddings.weight": t(XLM_POSITIONS, d),
        "lang_embeddings.weight": t(2, d),
        "embeddings.weight": t(n_words, d),
        "layer_norm_emb.weight": t(d, centre=1.0),
        "layer_norm_emb.bias": t(d),
    }
    for i in range(XLM_LAYERS):
        for lin in ("q_lin", "k_lin", "v_lin", "out_lin"):
            state[f"attentions.{i}.{lin}.weight"] = t(d, d)
            state[f"attentions.{i}.{lin}.bias"] = t(d)
        state[f"layer_norm1.{i}.weight"] = t(d, centre=1.0)
        state[f"layer_norm1.{i}.bias"] = t(d)
        state[f"ffns.{i}.lin1.weight"] = t(4 * d, d)
        state[f"ffns.{i}.lin1.bias"] = t(4 * d)
        state[f"ffns.{i}.lin2.weight"] = t(d, 4 * d)
        state[f"ffns.{i}.lin2.bias"] = t(d)
        state[f"layer_norm2.{i}.weight"] = t(d, centre=1.0)
        state[f"layer_norm2.{i}.bias"] = t(d)
    # share_inout_emb: the output projection is the input embedding (one storage)
    state["pred_layer.proj.weight"] = state["embeddings.weight"]
    state["pred_layer.proj.bias"] = t(n_words)
    return state


def xlm_checkpoint() -> dict:
    """The dict ``XLM/src/trainer.py`` saves, with a representative subset of ``params``."""
    rng = np.random.default_rng(11)
    words = XLM_SPECIALS + XLM_WORDS
    params = {
        # model hyper-parameters (names of XLM's train.py)
        "emb_dim": XLM_DIM,
        "n_layers": XLM_LAYERS,
        "n_heads": XLM_HEADS,
        "dropout": 0.1,
        "attention_dropout": 0.1,
        "gelu_activation": True,
        "sinusoidal_embeddings": False,
        "use_lang_emb": True,
        "share_inout_emb": True,
        "asm": False,
        "n_langs": 2,
        "langs": ["en", "fr"],
        "lang2id": {"en": 0, "fr": 1},
        "id2lang": {0: "en", 1: "fr"},
        "n_words": len(words),
        "bos_index": 0,
        "eos_index": 1,
        "pad_index": 2,
        "unk_index": 3,
        "mask_index": 5,
        "max_position_embeddings": XLM_POSITIONS,
        # training options the seed's converter copies into config.json
        "exp_name": "tiny",
        "dump_path": "./dumped/",
        "lgs": "en-fr",
        "mlm_steps": [("en", None), ("fr", None)],
        "batch_size": 32,
        "bptt": 256,
        "word_pred": 0.15,
        "word_keep": np.float64(0.1),  # a NumPy scalar
        # objects the seed's converter filters out (a NumPy array and a tensor)
        "mask_scores": rng.random(len(words)),
        "pred_probs": torch.tensor([0.8, 0.1, 0.1]),
    }
    return {
        "model": xlm_state_dict(rng),
        "params": params,
        "dico_word2id": {w: i for i, w in enumerate(words)},
        "dico_id2word": dict(enumerate(words)),
        "dico_counts": {w: 100 - i for i, w in enumerate(words)},
    }


def write_xlm(folder: Path = ROOT / "xlm") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(xlm_checkpoint(), folder / "mlm_enfr_tiny.pth")
    (folder / "codes").write_text("".join(f"{a} {b} {n}\n" for a, b, n in XLM_CODES))


if __name__ == "__main__":
    write_openai_gpt()
    write_xlm()
    for path in sorted(ROOT.glob("*/*")):
        if path.parent.name in ("openai_gpt", "xlm"):
            print(f"{path.relative_to(ROOT.parents[2])}: {path.stat().st_size} bytes")
