"""XLM refuses bad input with clear errors (ValueError/TypeError/NotImplementedError)."""

from __future__ import annotations

import pytest
import torch

import ptfunc
from ptfunc.archs import xlm

CONFIG = xlm.XLMConfig(
    vocab_size=30,
    emb_dim=8,
    n_layers=2,
    n_heads=2,
    n_langs=2,
    causal=True,
    max_position_embeddings=10,
)
MODEL = xlm.XLMModel(CONFIG)
PARAMS = MODEL.init(ptfunc.random.key(0))
IDS = torch.tensor([[5, 6, 7], [8, 9, 10]])


@pytest.mark.parametrize(
    "options, match",
    [
        ({"langs": torch.tensor([[0, 1, 2], [0, 0, 0]])}, r"langs must lie in \[0, 2\)"),
        ({"lengths": torch.tensor([3, 4])}, r"lengths must lie in \[0, 3\]"),
        ({"lengths": torch.tensor([3, -1])}, r"lengths must lie in \[0, 3\]"),
        ({"lengths": torch.tensor([3])}, r"lengths must have shape \(2,\)"),
        ({"position_ids": torch.tensor([[0, 1, 10]] * 2)}, "position_ids must lie"),
        ({"cache": (torch.zeros(2, 2, 2, 1, 4),)}, "cache must be a tuple of 2 tensors"),
        (
            {"cache": (torch.zeros(2, 2, 2, 1, 4), torch.zeros(2, 2, 2, 2, 4))},
            r"cache\[1\] must have shape",
        ),
        ({"cache": [torch.zeros(2, 2, 3, 1, 4)] * 2}, r"cache\[0\] must have shape"),
        ({"cache": {"slen": 0}}, "cache must be a tuple"),
        (
            {"attention_mask": torch.ones(2, 4)},
            r"attention_mask must have shape \(batch, seq\) = \(2, 3\)",
        ),
    ],
)
def test_bad_options(options, match):
    with pytest.raises(ValueError, match=match):
        MODEL.apply(PARAMS, IDS, **options)


def test_bad_ids_and_training_without_key():
    with pytest.raises(ValueError, match=r"input_ids must lie in \[0, 30\)"):
        MODEL.apply(PARAMS, IDS + 25)
    with pytest.raises(ValueError, match="input_ids must have shape"):
        MODEL.apply(PARAMS, IDS[0])
    with pytest.raises(TypeError, match="integer tensor"):
        MODEL.apply(PARAMS, IDS.float())
    with pytest.raises(ValueError, match="exceeds max_position_embeddings"):
        MODEL.apply(PARAMS, torch.full((1, 11), 5))
    with pytest.raises(ValueError, match="needs a random key"):
        MODEL.apply(PARAMS, IDS, train=True)
    with pytest.raises(TypeError, match="unexpected options"):
        MODEL.apply(PARAMS, IDS, lenghts=torch.tensor([3, 3]))


def test_cache_needs_a_causal_model_and_asm_and_decoders_are_refused():
    bi = xlm.XLMModel(CONFIG.replace(causal=False))
    with pytest.raises(ValueError, match="cache needs a causal XLM"):
        bi.apply(PARAMS, IDS, use_cache=True)
    with pytest.raises(NotImplementedError, match="adaptive softmax"):
        xlm.XLMWithLMHeadModel(CONFIG.replace(asm=True))
    with pytest.raises(NotImplementedError, match="encoder"):
        xlm.XLMForQuestionAnswering(CONFIG.replace(is_encoder=False))
    with pytest.raises(ValueError, match="multiple of n_heads"):
        xlm.XLMConfig(emb_dim=10, n_heads=3)
    with pytest.raises(TypeError, match="n_langs"):
        xlm.XLMConfig(n_langs="2")
