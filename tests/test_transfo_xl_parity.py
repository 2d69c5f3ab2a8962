"""Transformer-XL parity against pytorch-transformers 1.0.0 (``TransfoXLLMHeadModel``).

Oracle: ``pytorch_transformers==1.0.0`` (the seed), its weights loaded into ptfunc
with ``ptfunc.io.from_torch_state_dict``; float32 outputs within 1e-5 max-abs.

Shim (test-only): 1.0 builds its attention mask with ``.byte()`` and passes it
to ``masked_fill``, which torch 2.x refuses for uint8 masks. The
``seed_bool_masks`` fixture wraps ``RelPartialLearnableMultiHeadAttn.forward``
to hand it ``attn_mask.bool()``; nothing else in the seed is touched.

``apply(params, ids)`` (``mems=None``) is compared with 1.0's ``model(ids)`` as is
(both attend to ``mem_len`` zero memories), ``labels=`` with 1.0's unshifted labels.
Where ptfunc decides differently from the seed (module docstring of
``ptfunc.archs.transfo_xl.model``), the test feeds the seed what reproduces the
decision: length-0 memories for ``mems=()``, ``crit(..., keep_order=True)`` for the
per-token losses in token order (1.0 groups them by cluster: compared as multisets and
sums), the same on shifted inputs for ``shift_labels=True`` (transformers 4.46.3's
labels), and an ``_update_mems`` with its arguments put back in order for ext_len > 0.
"""

from __future__ import annotations

import json
import warnings

import pytest
import torch

import ptfunc
from ptfunc import io, tree
from ptfunc.archs import transfo_xl as tx

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    pt = pytest.importorskip("pytorch_transformers")
    from pytorch_transformers import modeling_transfo_xl as pt_txl

ATOL = 1e-5
V = 30
BASE = dict(
    cutoffs=[10, 20],
    d_model=16,
    d_embed=16,
    n_head=2,
    d_head=8,
    d_inner=32,
    div_val=2,
    n_layer=2,
    tgt_len=4,
    mem_len=5,
    clamp_len=6,
    same_length=True,
)
VARIANTS = {
    "div2-same_length-clamp": {},
    "div1-proj-pre_lnorm-shared_r": dict(
        div_val=1, d_embed=12, pre_lnorm=True, untie_r=False, same_length=False, clamp_len=0
    ),
    "div2-proj-untied": dict(
        cutoffs=[10], d_embed=24, proj_share_all_but_first=False, tie_weight=False
    ),
    "no_clusters": dict(cutoffs=[], div_val=1, mem_len=3),
}


@pytest.fixture(autouse=True)
def seed_bool_masks(seed_txl_bool_masks):
    """1.0's relative attention gets a bool mask (conftest's shim)."""


def _pair(ctor="TransfoXLLMHeadModel", seed=0, **overrides):
    kw = {**BASE, **overrides}
    ref_config = pt.TransfoXLConfig(V, output_attentions=True, output_hidden_states=True, **kw)
    torch.manual_seed(seed)
    reference = getattr(pt, ctor)(ref_config).eval()
    model = getattr(tx, ctor)(tx.TransfoXLConfig(V, **kw))
    return reference, model, io.from_torch_state_dict(model, reference.state_dict())


def _close(a, b, what):
    err = (a - b).abs().max().item() if a.numel() else 0.0
    assert a.shape == b.shape and err <= ATOL, (
        f"{what}: {tuple(a.shape)} vs {tuple(b.shape)}, {err}"
    )


def _segments(n=3, b=2, s=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, V, (b, s), generator=g) for _ in range(n)]


@pytest.mark.parametrize("variant", list(VARIANTS), ids=list(VARIANTS))
def test_three_segments_from_default_mems_match_seed(variant):
    """mems=None on the first segment on both sides (1.0's zero memories), then the
    memories each returned."""
    reference, model, params = _pair(**VARIANTS[variant])
    head_mask = torch.ones(model.config.n_layer, model.config.n_head)
    head_mask[1, 0] = 0.0
    ref_mems, mems = None, None
    for step, ids in enumerate(_segments()):
        hm = head_mask if step == 1 else None
        with torch.no_grad():
            ref = reference(ids, mems=ref_mems, head_mask=hm)
        out = model.apply(
            params, ids, mems=mems, head_mask=hm, output_hidden_states=True, output_attentions=True
        )
        _close(out.prediction_scores, ref[0], f"log-probs, segment {step}")
        for a, b in zip(out.mems, ref[1], strict=True):
            _close(a, b, f"mems, segment {step}")
        for a, b in zip(out.hidden_states, ref[2], strict=True):
            _close(a, b, f"hidden_states, segment {step}")
        for a, b in zip(out.attentions, ref[3], strict=True):
            _close(a, b, f"attentions, segment {step}")
        # the fused path (no probabilities asked) gives the same log-probs
        fused = model.apply(params, ids, mems=mems, head_mask=hm).prediction_scores
        _close(fused, ref[0], f"fused log-probs, segment {step}")
        ref_mems, mems = ref[1], out.mems


def test_default_mems_are_init_mems():
    _, model, params = _pair()
    ids = _segments(1)[0]
    default = model.apply(params, ids)
    given = model.apply(params, ids, mems=model.init_mems(2))
    _close(default.prediction_scores, given.prediction_scores, "mems=None vs init_mems")
    for a, b in zip(default.mems, given.mems, strict=True):
        _close(a, b, "new mems")


def _cluster_order(labels, cutoffs):
    """1.0's order of per-token losses (keep_order=False): the flat positions whose label
    falls in cluster 0, then cluster 1, ...; ignored labels (in no cluster) last."""
    flat = labels.reshape(-1)
    cluster = torch.bucketize(flat, torch.tensor(list(cutoffs)), right=True)
    cluster = torch.where(flat < 0, len(cutoffs) + 1, cluster)
    return torch.sort(cluster, stable=True).indices


@pytest.mark.parametrize("variant", list(VARIANTS), ids=list(VARIANTS))
def test_labels_match_seed_unshifted_in_token_order(variant):
    """1.0's ``model(ids, labels=targets)``: not shifted, per-token losses first, then None
    and mems. With cutoffs 1.0 returns them grouped by cluster: the same multiset and sum,
    and exactly its crit with keep_order=True (token order)."""
    reference, model, params = _pair(**VARIANTS[variant])
    ids = _segments(1, b=2, s=6, seed=3)[0]
    targets = torch.roll(ids, -1, dims=1)
    targets[0, :3] = torch.tensor([1, 15, 25])  # one label in each cluster
    clustered = bool(model.config.cutoffs)
    if clustered:
        targets[1, 2] = -1  # 1.0's ignore index: in no cluster, loss 0 (no cutoffs: it crashes)
    with torch.no_grad():
        theirs = reference(ids, labels=targets)
        hidden = reference.transformer(ids)[0].reshape(-1, 16)
        ordered = reference.crit(hidden, targets.reshape(-1), keep_order=True).view(2, 6)
    everything = dict(output_hidden_states=True, output_attentions=True)
    out = model.apply(params, ids, labels=targets, **everything)
    assert len(out) == len(theirs) == 5 and out[1] is None and theirs[1] is None
    _close(out.losses, ordered, "losses in token order")
    _close(out.losses.flatten().sort().values, theirs[0].flatten().sort().values, "multiset")
    _close(out.losses.sum(), theirs[0].sum(), "sum")
    order = _cluster_order(targets, model.config.cutoffs)
    _close(out.losses.flatten()[order].view(2, 6), theirs[0], "regrouped as 1.0 groups them")
    if clustered:
        assert (out.losses - theirs[0]).abs().max() > 100 * ATOL  # 1.0's order really differs
    counted = 11 if clustered else 12
    _close(out.loss, ordered.sum() / counted, f"loss over the {counted} counted labels")
    for a, b in zip(out.mems, theirs[2], strict=True):
        _close(a, b, "mems")


@pytest.mark.parametrize("variant", list(VARIANTS), ids=list(VARIANTS))
def test_shift_labels_match_seed_criterion_on_shifted_inputs(variant):
    """transformers 4.46.3's labels: shifted (1.0's crit with keep_order=True on
    hidden[:, :-1] and labels[:, 1:]); loss the mean of the nonzero losses, as 4.46.3."""
    reference, model, params = _pair(**VARIANTS[variant])
    ids = _segments(1, b=3, s=6, seed=1)[0]
    with torch.no_grad():
        hidden = reference.transformer(ids)[0]
        d = hidden.shape[-1]
        want = reference.crit(
            hidden[:, :-1].reshape(-1, d), ids[:, 1:].reshape(-1), keep_order=True
        ).view(3, 5)
    out = model.apply(params, ids, labels=ids, shift_labels=True)
    _close(out.losses, want, "per-token losses")
    _close(out.loss, want[want != 0].mean(), "loss")
    assert out.prediction_scores is None and out[1] is None  # 1.0's placeholder
    assert type(out).__name__ == "TransfoXLLMHeadModelOutputWithLoss" and out[0] is out.losses
    with pytest.raises(ValueError, match="shift_labels=True needs labels"):
        model.apply(params, ids, shift_labels=True)


def test_ignored_labels_are_left_out_of_the_loss():
    _, model, params = _pair()
    ids = _segments(1, b=2, s=6, seed=2)[0]
    labels = ids.clone()
    labels[0, 2] = -100
    labels[1, 4] = -1
    full = model.apply(params, ids, labels=ids)
    out = model.apply(params, ids, labels=labels)
    keep = labels >= 0
    assert torch.equal(out.losses[~keep], torch.zeros(2))
    _close(out.losses[keep], full.losses[keep], "kept losses")
    _close(out.loss, full.losses[keep].mean(), "loss over kept labels")
    nothing = model.apply(params, ids, labels=torch.full_like(ids, -100))
    assert nothing.loss.item() == 0.0


def test_empty_mems_match_seed_given_length_zero_mems():
    """mems=(): the paper's empty memories, i.e. 1.0 fed length-0 memory tensors."""
    reference, model, params = _pair(mem_len=5)
    ref_mems = [torch.zeros(0, 2, 16)] * 2
    mems = ()
    for step, ids in enumerate(_segments()):
        with torch.no_grad():
            ref = reference(ids, mems=ref_mems)
        out = model.apply(params, ids, mems=mems)
        _close(out.prediction_scores, ref[0], f"log-probs, segment {step}")
        for a, b in zip(out.mems, ref[1], strict=True):
            _close(a, b, f"mems, segment {step}")
        ref_mems, mems = ref[1], out.mems
    assert out.mems[0].shape == (5, 2, 16)
    first = _segments()[0]
    with torch.no_grad():
        zero_start = reference(first)[2][-1]  # 1.0's default: mem_len zero memories
    hidden = dict(output_hidden_states=True)
    _close(model.apply(params, first, **hidden).hidden_states[-1], zero_start, "mems=None")
    empty = model.apply(params, first, mems=[], **hidden).hidden_states[-1]
    assert (empty - zero_start).abs().max() > 100 * ATOL  # the two starts really differ


def test_without_memory_the_mems_are_none_as_in_1_0():
    """mem_len=0: 1.0's init_mems gives None and so do the returned mems; passing them
    back, or (), is the same memory-less call."""
    reference, model, params = _pair(mem_len=0)
    ids = _segments(1)[0]
    with torch.no_grad():
        theirs = reference(ids)
        labelled = reference(ids, labels=ids)
    out = model.apply(params, ids)
    assert theirs[1] is None and out[1] is None and out.mems is None and len(out) == 2
    assert len(theirs) == 4  # the seed's config asks for hidden states and attentions
    _close(out[0], theirs[0], "log-probs")
    again = model.apply(params, ids, mems=out.mems)
    _close(again.prediction_scores, theirs[0], "mems=None again")
    assert [m.shape for m in model.apply(params, ids, mems=()).mems] == [(0, 2, 16)] * 2
    with_labels = model.apply(params, ids, labels=ids)
    assert len(with_labels) == 3 and with_labels[1] is None and with_labels[2] is None
    assert labelled[1] is None and labelled[2] is None
    _close(with_labels[0].sum(), labelled[0].sum(), "losses (sum; 1.0 groups by cluster)")


def test_ext_len_memory_update_matches_seed_with_arguments_in_order(monkeypatch):
    """1.0 swaps qlen and mlen in ``_update_mems`` (issue #2970); the patched oracle
    calls it in order, which is the paper's rule that ptfunc follows."""
    reference, model, params = _pair(ext_len=2, mem_len=3, same_length=False)
    swapped = pt_txl.TransfoXLModel._update_mems
    segments = _segments(s=5)

    def run_reference():
        ref_mems, outs = [torch.zeros(0, 2, 16)] * 2, []
        for ids in segments:
            with torch.no_grad():
                out = reference(ids, mems=ref_mems)
            ref_mems = out[1]
            outs.append(out)
        return outs

    buggy = run_reference()
    monkeypatch.setattr(
        pt_txl.TransfoXLModel,
        "_update_mems",
        lambda self, hids, mems, qlen, mlen: swapped(self, hids, mems, mlen, qlen),
    )
    fixed = run_reference()
    mems = ()  # the seed's length-0 memories
    for step, (ids, ref) in enumerate(zip(segments, fixed)):
        out = model.apply(params, ids, mems=mems)
        _close(out.prediction_scores, ref[0], f"log-probs, segment {step}")
        for a, b in zip(out.mems, ref[1], strict=True):
            _close(a, b, f"mems, segment {step}")
        mems = out.mems
    # the fix keeps positions 0..2 of the first segment (ending ext_len=2 before its end);
    # 1.0 as shipped keeps 2..4, the extended context that the next segment repeats
    assert not torch.allclose(buggy[0][1][0], fixed[0][1][0])


def test_base_model_matches_seed_and_loads_a_head_checkpoint():
    reference, _, _ = _pair("TransfoXLModel", **VARIANTS["div1-proj-pre_lnorm-shared_r"])
    head, _, _ = _pair(**VARIANTS["div1-proj-pre_lnorm-shared_r"])
    model = tx.TransfoXLModel(
        tx.TransfoXLConfig(V, **{**BASE, **VARIANTS["div1-proj-pre_lnorm-shared_r"]})
    )
    ids = _segments(1)[0]
    for ref_module in (reference, head.transformer):
        state = reference.state_dict() if ref_module is reference else head.state_dict()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the head's crit.* names are unused by the bare model
            params = io.from_torch_state_dict(model, state)
        with torch.no_grad():
            ref = ref_module(ids)  # mems=None on both sides: zero memories
        out = model.apply(params, ids)
        _close(out.last_hidden_state, ref[0], "last_hidden_state")
        for a, b in zip(out.mems, ref[1], strict=True):
            _close(a, b, "mems")


def test_state_dict_round_trip_loads_into_seed():
    reference, model, params = _pair(**VARIANTS["div1-proj-pre_lnorm-shared_r"])
    state = io.to_torch_state_dict(model, params)
    state["transformer.pos_emb.inv_freq"] = reference.transformer.pos_emb.inv_freq
    torch.manual_seed(1)
    fresh = pt.TransfoXLLMHeadModel(reference.config).eval()
    fresh.load_state_dict(state, strict=True)
    ids = _segments(1)[0]
    with torch.no_grad():
        _close(fresh(ids)[0], reference(ids)[0], "reloaded seed log-probs")


def test_save_pretrained_round_trip_and_seed_config(tmp_path):
    reference, model, params = _pair(**VARIANTS["div2-proj-untied"])
    io.save_pretrained(tmp_path / "ours", model, params)
    loaded_model, loaded = io.from_pretrained(tmp_path / "ours", tx.TransfoXLLMHeadModel)
    assert loaded_model == model
    for name, value in tree.to_flat_dict(params).items():
        assert torch.equal(tree.to_flat_dict(loaded)[name], value), name
    # a 1.0 directory: its config.json and pytorch_model.bin
    seed_dir = tmp_path / "seed"
    seed_dir.mkdir()
    reference.config.to_json_file(str(seed_dir / "config.json"))
    torch.save(reference.state_dict(), seed_dir / "pytorch_model.bin")
    seed_model, seed_params = io.from_pretrained(seed_dir, tx.TransfoXLLMHeadModel)
    assert (
        seed_model.config.replace(output_attentions=False, output_hidden_states=False)
        == model.config
    )
    ids = _segments(1)[0]
    _close(
        seed_model.apply(seed_params, ids).prediction_scores,
        model.apply(params, ids).prediction_scores,
        "log-probs from the 1.0 directory",
    )
    # ptfunc's config.json read back by 1.0
    back = pt.TransfoXLConfig.from_json_file(str(tmp_path / "ours" / "config.json"))
    for field in ("n_token", "cutoffs", "d_embed", "div_val", "tie_projs", "tie_weight", "mem_len"):
        assert getattr(back, field) == getattr(reference.config, field), field


# config.json written by transformers 4.46.3's save_pretrained (TransfoXLConfig(vocab_size=30,
# cutoffs=[10, 20], d_model=16, d_embed=16, n_head=2, d_head=8, d_inner=32, div_val=2,
# n_layer=2, mem_len=4, clamp_len=6, tie_word_embeddings=False))
HF_446_CONFIG = """{
  "adaptive": true, "architectures": ["TransfoXLLMHeadModel"], "attn_type": 0, "clamp_len": 6,
  "cutoffs": [10, 20], "d_embed": 16, "d_head": 8, "d_inner": 32, "d_model": 16,
  "div_val": 2, "dropatt": 0.0, "dropout": 0.1, "eos_token_id": 0, "init": "normal",
  "init_range": 0.01, "init_std": 0.02, "layer_norm_epsilon": 1e-05, "mem_len": 4,
  "model_type": "transfo-xl", "n_head": 2, "n_layer": 2, "pre_lnorm": false,
  "proj_init_std": 0.01, "same_length": true, "sample_softmax": -1,
  "tie_projs": [false, true, true], "tie_word_embeddings": false,
  "torch_dtype": "float32", "transformers_version": "4.46.3", "untie_r": true, "vocab_size": 30
}"""


def test_reads_transformers_4_config_json():
    config = tx.TransfoXLConfig.from_dict(json.loads(HF_446_CONFIG))
    assert config.vocab_size == 30 and config.n_token == 30
    assert config.tie_weight is False and config.tie_projs == (False, True, True)
    assert config.layer_norm_epsilon == 1e-5 and config.mem_len == 4
    assert config.extra["eos_token_id"] == 0
    written = config.to_dict()
    assert written["vocab_size"] == written["n_token"] == 30
    assert written["tie_word_embeddings"] is written["tie_weight"] is False
    assert tx.TransfoXLConfig.from_dict(written) == config


def test_init_matches_seed_names_shapes_and_scheme():
    reference, model, _ = _pair(**VARIANTS["div1-proj-pre_lnorm-shared_r"])
    params = tree.to_flat_dict(model.init(ptfunc.random.key(0)))
    seed_names = {
        n: t.shape
        for n, t in reference.state_dict().items()
        if n not in model.tied and not n.endswith("inv_freq")
    }
    assert {n: t.shape for n, t in params.items()} == seed_names
    ln = params["transformer.layers.0.pos_ff.layer_norm.weight"]
    assert (ln - 1).abs().max() < 0.1 and ln.std() > 0  # N(1, init_std)
    uniform = tx.TransfoXLLMHeadModel(model.config.replace(init="uniform", init_range=0.05))
    w = tree.to_flat_dict(uniform.init(ptfunc.random.key(0)))[
        "transformer.layers.0.dec_attn.qkv_net.weight"
    ]
    assert w.abs().max() <= 0.05 and w.abs().max() > 0.04


def test_generate_with_memories_equals_a_seed_loop():
    """Greedy ptfunc.generate (cached: the prompt from mems=None, then one token per step
    against the memories, as transformers 4.x's generate) equals that loop over 1.0's
    model; use_cache=False equals the loop of 1.0's run_generation.py (the whole text
    again each step, mems=None); sampling is keyed."""
    reference, model, params = _pair(same_length=False, clamp_len=0, mem_len=16)
    prompt = _segments(1, b=2, s=4)[0]
    out = ptfunc.generate(model, params, prompt, max_new_tokens=6)
    ids = prompt
    with torch.no_grad():
        scores, mems = reference(prompt)[:2]
        for _ in range(6):
            token = scores[:, -1].argmax(-1, keepdim=True)
            ids = torch.cat([ids, token], dim=1)
            scores, mems = reference(token, mems=mems)[:2]
    assert torch.equal(out, ids)
    again = prompt
    with torch.no_grad():
        for _ in range(6):
            token = reference(again)[0][:, -1].argmax(-1, keepdim=True)
            again = torch.cat([again, token], dim=1)
    recomputed = ptfunc.generate(model, params, prompt, max_new_tokens=6, use_cache=False)
    assert torch.equal(recomputed, again)
    sample = dict(max_new_tokens=6, temperature=0.8, top_k=5)
    a = ptfunc.generate(model, params, prompt, key=ptfunc.random.key(1), **sample)
    assert torch.equal(
        a, ptfunc.generate(model, params, prompt, key=ptfunc.random.key(1), **sample)
    )
    assert not torch.equal(
        a, ptfunc.generate(model, params, prompt, key=ptfunc.random.key(2), **sample)
    )
    top1 = ptfunc.generate(
        model, params, prompt, key=ptfunc.random.key(3), max_new_tokens=6, top_k=1
    )
    assert torch.equal(top1, ids)
