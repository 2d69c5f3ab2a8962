"""Transformer-XL under torch.func and torch.compile, with memories carried across segments;
bad input; vocabulary resize; generation; half precision.

References: pytorch-transformers 1.0.0 autograd for ``grad`` (the mean of its
per-token losses ``model(ids, labels=targets)[0]``, mems=None on both sides; shim as
in test_transfo_xl_parity), Python loops
for ``vmap`` (ensembles, per-example gradients), a central finite difference in
float64 for ``jvp``, eager for ``torch.compile(fullgraph=True, backend="aot_eager")``.
Tolerances are stated at each check.
"""

from __future__ import annotations

import warnings

import pytest
import torch
from torch.func import grad, jvp, vmap

import ptfunc
from ptfunc import io, tree
from ptfunc.archs import transfo_xl as tx

V = 30
SMALL = dict(
    vocab_size=V,
    cutoffs=[10, 20],
    d_model=16,
    d_embed=16,
    n_head=2,
    d_head=8,
    d_inner=32,
    div_val=2,
    n_layer=2,
    mem_len=4,
    clamp_len=6,
)
MODEL = tx.TransfoXLLMHeadModel(tx.TransfoXLConfig(**SMALL))
PARAMS = MODEL.init(ptfunc.random.key(0))
GEN = torch.Generator().manual_seed(0)
SEG1, SEG2 = (torch.randint(0, V, (3, 5), generator=GEN) for _ in range(2))


def _two_segments(p, x1, x2, **kw):
    first = MODEL.apply(p, x1, **kw)
    return MODEL.apply(p, x2, mems=first.mems, **kw)


def test_grad_matches_seed_autograd(monkeypatch):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pt = pytest.importorskip("pytorch_transformers")
        from pytorch_transformers import modeling_transfo_xl as pt_txl
    original = pt_txl.RelPartialLearnableMultiHeadAttn.forward

    def forward(self, w, r, attn_mask=None, mems=None, head_mask=None):  # uint8 -> bool shim
        mask = None if attn_mask is None else attn_mask.bool()
        return original(self, w, r, attn_mask=mask, mems=mems, head_mask=head_mask)

    monkeypatch.setattr(pt_txl.RelPartialLearnableMultiHeadAttn, "forward", forward)
    kw = {k: v for k, v in SMALL.items() if k != "vocab_size"}
    torch.manual_seed(0)
    reference = pt.TransfoXLLMHeadModel(pt.TransfoXLConfig(V, untie_r=False, **kw)).eval()
    model = tx.TransfoXLLMHeadModel(tx.TransfoXLConfig(untie_r=False, **SMALL))
    params = io.from_torch_state_dict(model, reference.state_dict())
    targets = torch.roll(SEG1, -1, dims=1)
    grads = grad(lambda p: model.apply(p, SEG1, labels=targets).loss)(params)
    reference(SEG1, labels=targets)[0].mean().backward()
    flat = tree.to_flat_dict(grads)
    assert set(flat) == {n for n, _ in reference.named_parameters()}
    for name, p in reference.named_parameters():  # shared (tied) params: one name each
        torch.testing.assert_close(flat[name], p.grad, atol=1e-6, rtol=1e-4, msg=name)


def test_vmap_ensemble_over_two_segments_equals_loop():
    members = [MODEL.init(k) for k in ptfunc.random.split(ptfunc.random.key(1), 3)]

    def scores(p):
        out = _two_segments(p, SEG1, SEG2)
        return out.prediction_scores, out.mems

    batched = vmap(scores)(tree.stack(members))
    for i, p in enumerate(members):
        want = scores(p)
        torch.testing.assert_close(batched[0][i], want[0], atol=1e-6, rtol=1e-5)
        for a, b in zip(batched[1], want[1], strict=True):
            torch.testing.assert_close(a[i], b, atol=1e-6, rtol=1e-5)


def test_per_example_grads_with_time_major_memories_equal_loop():
    mems = MODEL.apply(PARAMS, SEG1).mems  # (mem_len, batch, d_model): batch is axis 1

    def loss(p, x, m):
        m = tuple(t[:, None] for t in m)  # add the batch axis back, time-major
        return MODEL.apply(p, x[None], labels=x[None], mems=m).loss

    per_example = tree.to_flat_dict(vmap(grad(loss), in_dims=(None, 0, 1))(PARAMS, SEG2, mems))
    for i in range(SEG2.shape[0]):
        one = grad(loss)(PARAMS, SEG2[i], tuple(t[:, i] for t in mems))
        for name, g in tree.to_flat_dict(one).items():
            torch.testing.assert_close(per_example[name][i], g, atol=1e-6, rtol=1e-5, msg=name)


def test_jvp_through_memories_matches_finite_difference_float64():
    p64 = tree.astype(PARAMS, torch.float64)

    def f(p):  # memories keep their gradient into the second segment
        return _two_segments(p, SEG1, SEG2, detach_mems=False).prediction_scores.sum()

    g = torch.Generator().manual_seed(1)
    tangent = tree.map(lambda t: torch.randn(t.shape, generator=g, dtype=t.dtype), p64)
    _, directional = jvp(f, (p64,), (tangent,))
    eps = 1e-6
    plus = f(tree.map(lambda p, t: p + eps * t, p64, tangent))
    minus = f(tree.map(lambda p, t: p - eps * t, p64, tangent))
    torch.testing.assert_close(directional, (plus - minus) / (2 * eps), atol=1e-6, rtol=1e-5)


def test_detached_memories_stop_the_gradient_unless_asked():
    rows = sorted(set(SEG1[SEG1 < 10].tolist()) - set(SEG2.flatten().tolist()))
    assert rows, "the test needs a shortlist token seen only in the first segment"
    model = tx.TransfoXLLMHeadModel(tx.TransfoXLConfig(**SMALL, tie_weight=False))
    params = model.init(ptfunc.random.key(0))  # untied: the softmax does not read the table

    def row_grad(detach):
        def loss(p):
            first = model.apply(p, SEG1, detach_mems=detach)
            return model.apply(p, SEG2, labels=SEG2, mems=first.mems).loss

        return grad(loss)(params)["transformer"]["word_emb"]["emb_layers"][0]["weight"][rows]

    assert torch.equal(row_grad(True), torch.zeros(len(rows), 16))
    assert row_grad(False).abs().sum() > 0


def test_compiled_training_step_with_memories_equals_eager():
    torch._dynamo.reset()
    model = tx.TransfoXLLMHeadModel(tx.TransfoXLConfig(**{**SMALL, "n_layer": 1}, dropatt=0.1))
    params = model.init(ptfunc.random.key(0))
    mems = model.apply(params, SEG1).mems

    def step(p, x, m, k):
        out = model.apply(p, x, labels=x, mems=m, train=True, key=k)
        return out.loss, out.mems

    compiled = torch.compile(step, fullgraph=True, backend="aot_eager")
    key = ptfunc.random.key(5)
    for a, b in zip(
        tree.leaves(compiled(params, SEG2, mems, key)),
        tree.leaves(step(params, SEG2, mems, key)),
        strict=True,
    ):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)


def test_labelled_output_compiles_with_its_placeholder_and_loss():
    """1.0's tuple with labels, (losses, None, mems), out of torch.compile(fullgraph=True):
    same type, the None at index 1, ``loss`` read by name inside and outside the graph."""
    torch._dynamo.reset()

    def run(p, x, y):
        out = MODEL.apply(p, x, labels=y, validate=False)
        return out, out.loss

    compiled = torch.compile(run, fullgraph=True, backend="aot_eager")
    (got, loss), (want, want_loss) = compiled(PARAMS, SEG1, SEG2), run(PARAMS, SEG1, SEG2)
    assert type(got) is type(want) and len(got) == 3 and got[1] is None
    torch.testing.assert_close(got.losses, want.losses, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(loss, want_loss, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(got.loss, want.loss, atol=1e-6, rtol=1e-5)


def test_vmap_returns_a_labelled_output_given_out_dims():
    """vmap refuses the None placeholder as an output leaf unless out_dims says None there;
    the tensor fields batch as a loop over the examples gives them."""

    def run(x, y):
        return MODEL.apply(PARAMS, x[None], labels=y[None])

    sample = run(SEG1[0], SEG2[0])
    dims = type(sample)(0, None, tuple(1 for _ in sample.mems))  # mems: batch on axis 1
    batched = vmap(run, out_dims=dims)(SEG1, SEG2)
    assert batched[1] is None
    for i in range(SEG1.shape[0]):
        one = run(SEG1[i], SEG2[i])
        torch.testing.assert_close(batched.losses[i], one.losses, atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(batched.mems[0][:, i], one.mems[0], atol=1e-6, rtol=1e-5)
    with pytest.raises(ValueError):  # without out_dims: the None leaf is refused
        vmap(run)(SEG1, SEG2)


def test_dropout_is_a_function_of_the_key():
    model = tx.TransfoXLLMHeadModel(tx.TransfoXLConfig(**SMALL, dropatt=0.2))
    run = lambda k: model.apply(PARAMS, SEG1, labels=SEG1, train=True, key=k).loss  # noqa: E731
    k1, k2 = ptfunc.random.split(ptfunc.random.key(0))
    assert torch.equal(run(k1), run(k1)) and not torch.equal(run(k1), run(k2))
    with pytest.raises(ValueError, match="needs a random key"):
        model.apply(PARAMS, SEG1, train=True)


def test_bad_memories_are_refused_with_the_expected_shape():
    good = MODEL.apply(PARAMS, SEG1).mems
    expected = r"\(mem_len, batch=3, d_model=16\)"
    with pytest.raises(ValueError, match=rf"n_layer=2 tensors of shape {expected}.*got 1 items"):
        MODEL.apply(PARAMS, SEG2, mems=good[:1])
    with pytest.raises(ValueError, match=rf"mems\[0\] must have shape {expected}.*\(3, 4, 16\)"):
        MODEL.apply(PARAMS, SEG2, mems=tuple(m.transpose(0, 1) for m in good))  # batch-first
    with pytest.raises(ValueError, match=r"the same for every layer"):
        MODEL.apply(PARAMS, SEG2, mems=(good[0], good[1][:2]))
    with pytest.raises(ValueError, match=r"list of n_layer=2 tensors.*\(\) for empty memories"):
        MODEL.apply(PARAMS, SEG2, mems=good[0])


def test_bad_ids_labels_and_unsupported_options():
    with pytest.raises(ValueError, match=r"input_ids must lie in \[0, 30\).*\[0, 30\]"):
        MODEL.apply(PARAMS, torch.tensor([[0, 30]]))
    with pytest.raises(ValueError, match=r"input_ids must have shape \(batch, seq\)"):
        MODEL.apply(PARAMS, torch.tensor([1, 2]))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 30\)"):
        MODEL.apply(PARAMS, SEG1, labels=torch.full_like(SEG1, 31))
    with pytest.raises(ValueError, match=r"labels must have the shape of input_ids \(3, 5\)"):
        MODEL.apply(PARAMS, SEG1, labels=SEG1[:, :3])
    with pytest.raises(ValueError, match=r"shift_labels=True needs labels"):
        MODEL.apply(PARAMS, SEG1, shift_labels=True)
    with pytest.raises(TypeError, match=r"targets"):  # ptfunc's old spelling: now labels=
        MODEL.apply(PARAMS, SEG1, targets=SEG1)
    with pytest.raises(NotImplementedError, match=r"attn_type=1 is not supported"):
        tx.TransfoXLModel(tx.TransfoXLConfig(**SMALL, attn_type=1))
    with pytest.raises(NotImplementedError, match=r"sample_softmax=8: sampled softmax"):
        tx.TransfoXLLMHeadModel(tx.TransfoXLConfig(**SMALL, sample_softmax=8))
    with pytest.raises(NotImplementedError, match=r"head_mask"):
        MODEL.prune_heads(PARAMS, {0: [1]})
    with pytest.raises(ValueError, match=r"cutoffs must increase strictly"):
        tx.TransfoXLConfig(**{**SMALL, "cutoffs": [20, 10]})
    with pytest.raises(ValueError, match=r"tie_projs needs one flag per cluster \(3"):
        tx.TransfoXLConfig(**SMALL, tie_projs=[False, True])
    with pytest.raises(TypeError, match=r"d_model expects int"):
        tx.TransfoXLConfig(**{**SMALL, "d_model": 16.0})


def test_resize_grows_and_shrinks_the_last_cluster():
    untied = tx.TransfoXLLMHeadModel(tx.TransfoXLConfig(**SMALL, tie_weight=False))
    for model in (MODEL, untied):
        params = model.init(ptfunc.random.key(0))
        bigger, grown = model.resize_token_embeddings(params, V + 3, key=ptfunc.random.key(1))
        assert bigger.config.vocab_size == V + 3 and bigger.config.cutoffs == (10, 20)
        out = bigger.apply(grown, torch.tensor([[1, 31, 25]]), output_hidden_states=True)
        assert out.prediction_scores.shape == (1, 3, V + 3)
        torch.testing.assert_close(out.prediction_scores.exp().sum(-1), torch.ones(1, 3))
        before = model.apply(params, SEG1, output_hidden_states=True).hidden_states
        after = bigger.apply(grown, SEG1, output_hidden_states=True).hidden_states
        torch.testing.assert_close(after[-1], before[-1], atol=0, rtol=0)  # old ids unchanged
        smaller, shrunk = model.resize_token_embeddings(params, 25, key=ptfunc.random.key(1))
        assert smaller.apply(shrunk, torch.tensor([[24]])).prediction_scores.shape == (1, 1, 25)
    with pytest.raises(ValueError, match=r"above the last cutoff \(20\)"):
        MODEL.resize_token_embeddings(PARAMS, 20, key=ptfunc.random.key(1))
    base = tx.TransfoXLModel(MODEL.config)
    resized, p = base.resize_token_embeddings(PARAMS["transformer"], 40, key=ptfunc.random.key(1))
    assert p["word_emb"]["emb_layers"][-1]["weight"].shape == (20, 4)


def test_generate_with_memories_equals_a_manual_loop():
    prompt = SEG1[:1]
    out = ptfunc.generate(MODEL, PARAMS, prompt, max_new_tokens=4)
    ids, mems, scores = prompt, None, MODEL.apply(PARAMS, prompt)
    for _ in range(4):
        token = scores.prediction_scores[:, -1].argmax(-1, keepdim=True)
        mems = scores.mems
        ids = torch.cat([ids, token], dim=1)
        scores = MODEL.apply(PARAMS, token, mems=mems)
    assert torch.equal(out, ids)
    with pytest.raises(ValueError, match="no attention mask"):
        ptfunc.generate(
            MODEL, PARAMS, SEG1[:2], max_new_tokens=1, attention_mask=torch.ones(2, 5).tril()
        )


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_runs_close_to_float32(dtype):
    want = _two_segments(PARAMS, SEG1, SEG2, labels=SEG2)
    got = _two_segments(tree.astype(PARAMS, dtype), SEG1, SEG2, labels=SEG2)
    assert got.loss.dtype == torch.float32 and got.mems[0].dtype == dtype
    torch.testing.assert_close(got.loss, want.loss, atol=2e-2, rtol=1e-2)


def test_the_old_targets_argument_says_what_to_write():
    from ptfunc.archs import transfo_xl

    model = transfo_xl.TransfoXLLMHeadModel(transfo_xl.TransfoXLConfig(
        vocab_size=20, cutoffs=[], d_model=8, d_embed=8, n_head=2, d_head=4, d_inner=16,
        n_layer=1, mem_len=0, tgt_len=4,
    ))  # fmt: skip
    params = model.init(ptfunc.random.key(0))
    ids = torch.tensor([[1, 2, 3]])
    with pytest.raises(TypeError, match="write labels=targets"):
        model.apply(params, ids, targets=ids)
