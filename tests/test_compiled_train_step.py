"""A whole training step (forward, backward, AdamW update) compiles as one graph for every
architecture, and runs again without recompiling.

``torch.compile(step, fullgraph=True)`` fails on any graph break, so this is the check that
the step has none. The oracle is the same step run eagerly: after two steps (dropout on,
a new key each step, the warmup schedule moving the learning rate) the compiled
params equal the eager ones. Backend ``aot_eager``: it traces forward and backward like
Inductor does, without the minutes of C++ compilation Inductor costs on 2 cores (the
Inductor path is covered by the benchmark suite's ``compile:`` rows).
"""

from __future__ import annotations

import pytest
import torch
from _tiny_configs import tiny_config

import ptfunc
from ptfunc import optim, tree
from ptfunc.archs import bert, gpt2, openai_gpt, transfo_xl, xlm, xlnet

VOCAB = 64
IDS = torch.randint(1, VOCAB, (2, 8), generator=torch.Generator().manual_seed(0))


def _bert():
    config = bert.BertConfig(
        vocab_size=VOCAB, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=16, num_labels=3,
    )  # fmt: skip
    return bert.BertForSequenceClassification(config), dict(labels=torch.tensor([0, 2]))


def _lm(cls, arch, **overrides):
    def build():
        return cls(tiny_config(arch, VOCAB, **overrides)), dict(labels=IDS)

    return build


MODELS = {
    "bert": _bert,
    "gpt2": _lm(gpt2.GPT2LMHeadModel, "gpt2"),
    "openai-gpt": _lm(openai_gpt.OpenAIGPTLMHeadModel, "openai-gpt"),
    "transfo-xl": _lm(transfo_xl.TransfoXLLMHeadModel, "transfo-xl", cutoffs=[20, 40]),
    "xlnet": _lm(xlnet.XLNetLMHeadModel, "xlnet"),
    "xlm": _lm(xlm.XLMWithLMHeadModel, "xlm"),
}


@pytest.mark.parametrize("arch", sorted(MODELS))
def test_compiled_train_step_has_no_graph_break_and_matches_eager(arch):
    model, inputs = MODELS[arch]()
    opt = optim.adamw(
        lr=1e-2,
        weight_decay=0.01,
        mask=optim.no_decay_mask,
        schedule=optim.schedules.warmup_linear(2, 10),
    )

    def step(params, state, ids, key):
        def loss(p):
            return model.apply(p, ids, train=True, key=key, **inputs).loss

        grads, value = ptfunc.func.grad_and_value(loss)(params)
        updates, state = opt.update(grads, state, params)
        return optim.apply_updates(params, updates), state, value

    params = model.init(ptfunc.random.key(1))
    state = opt.init(params)
    torch._dynamo.reset()
    compiled = torch.compile(step, fullgraph=True, backend="aot_eager")
    eager = (params, state)
    for i in range(2):
        key = ptfunc.random.fold_in(ptfunc.random.key(2), i)
        # the step count and learning rate are tensors: the second step must not recompile
        with torch.compiler.set_stance("fail_on_recompile" if i else "default"):
            params, state, value = compiled(params, state, IDS, key)
        *eager, eager_value = step(*eager, IDS, key)
        torch.testing.assert_close(value, eager_value, rtol=1e-5, atol=1e-6)
    for a, b in zip(tree.leaves((params, state)), tree.leaves(tuple(eager)), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert not torch.equal(tree.leaves(params)[0], tree.leaves(model.init(ptfunc.random.key(1)))[0])
