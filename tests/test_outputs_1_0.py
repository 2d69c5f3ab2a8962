"""Outputs index as pytorch-transformers 1.0's tuples, for every model and option set.

Oracle: ``pytorch_transformers==1.0.0`` itself, on the same weights and inputs. For each
of the 24 models, with and without ``output_attentions`` / ``output_hidden_states``
(1.0's config flags; here also the config fields) and with and without each label,
``out[i]`` must be 1.0's ``outputs[i]`` at every index, ``len(out)``, ``out[-1]`` and
``out.to_tuple()`` included; the left-out fields still read by name.

Transformer-XL: its 1.0 attention needs bool masks on torch 2.x (shim below, as in
test_transfo_xl_parity); ``mems=None`` is 1.0's zero memories on both sides, and with
labels 1.0's tuple is ``(losses, None, mems, ...)``. 1.0 groups the per-token losses by
cluster, ptfunc keeps token order (a deliberate difference of the migration guide): 1.0's
losses are put back in token order before the comparison.
"""

from __future__ import annotations

import itertools
import warnings

import pytest
import torch

from ptfunc import io
from ptfunc.archs import bert, gpt2, openai_gpt, transfo_xl, xlm, xlnet
from ptfunc.archs.outputs import BaseModelOutputWithPooling

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    pt = pytest.importorskip("pytorch_transformers")

ATOL = 1e-5
V, B, S = 50, 2, 5

ARCHS = {
    "bert": (
        bert,
        "BertConfig",
        dict(
            hidden_size=16,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=20,
            max_position_embeddings=32,
        ),
    ),
    "openai_gpt": (
        openai_gpt,
        "OpenAIGPTConfig",
        dict(n_embd=16, n_layer=2, n_head=2, n_positions=32, n_ctx=32),
    ),
    "gpt2": (gpt2, "GPT2Config", dict(n_embd=16, n_layer=2, n_head=2, n_positions=32, n_ctx=32)),
    "transfo_xl": (
        transfo_xl,
        "TransfoXLConfig",
        dict(
            cutoffs=[20, 30],
            d_model=16,
            d_embed=16,
            n_head=2,
            d_head=8,
            d_inner=32,
            n_layer=2,
            mem_len=4,
            tgt_len=4,
            div_val=2,
        ),
    ),
    "xlnet": (xlnet, "XLNetConfig", dict(d_model=16, n_layer=2, n_head=2, d_inner=32, mem_len=4)),
    "xlnet-no-mem": (xlnet, "XLNetConfig", dict(d_model=16, n_layer=2, n_head=2, d_inner=32)),
    "xlm": (
        xlm,
        "XLMConfig",
        dict(emb_dim=16, n_layers=2, n_heads=2, max_position_embeddings=32, n_langs=1),
    ),
}

_g = torch.Generator().manual_seed(0)
LM = torch.randint(0, V, (B, S), generator=_g)
CHOICE_LM = torch.randint(0, V, (B, 2, S), generator=_g)
LABELS = {  # model -> the label sets 1.0 takes (by its own keyword names)
    "BertForPreTraining": [
        {"masked_lm_labels": LM, "next_sentence_label": torch.tensor([0, 1])},
        {"masked_lm_labels": LM},  # 1.0 returns no loss unless both are given
    ],
    "BertForMaskedLM": [{"masked_lm_labels": LM}],
    "BertForNextSentencePrediction": [{"next_sentence_label": torch.tensor([0, 1])}],
    "BertForSequenceClassification": [{"labels": torch.tensor([0, 1])}],
    "BertForMultipleChoice": [{"labels": torch.tensor([0, 1])}],
    "BertForTokenClassification": [{"labels": torch.randint(0, 2, (B, S), generator=_g)}],
    "BertForQuestionAnswering": [
        {"start_positions": torch.tensor([1, 2]), "end_positions": torch.tensor([2, 3])}
    ],
    "OpenAIGPTLMHeadModel": [{"labels": LM}],
    "GPT2LMHeadModel": [{"labels": LM}],
    "OpenAIGPTDoubleHeadsModel": [
        {"lm_labels": CHOICE_LM, "mc_labels": torch.tensor([0, 1])},
        {"lm_labels": CHOICE_LM},
        {"mc_labels": torch.tensor([0, 1])},
    ],
    "XLNetLMHeadModel": [{"labels": LM}],
    "XLNetForSequenceClassification": [{"labels": torch.tensor([0, 1])}],
    "XLMForSequenceClassification": [{"labels": torch.tensor([0, 1])}],
    "XLNetForQuestionAnswering": [
        {"start_positions": torch.tensor([1, 2]), "end_positions": torch.tensor([2, 3])}
    ],
}
LABELS["GPT2DoubleHeadsModel"] = LABELS["OpenAIGPTDoubleHeadsModel"]
LABELS["XLMForQuestionAnswering"] = LABELS["XLNetForQuestionAnswering"]
LABELS["XLMWithLMHeadModel"] = [{"labels": LM.reshape(-1)}]  # 1.0 takes them flat
LABELS["TransfoXLLMHeadModel"] = [{"labels": LM}]  # not shifted: the token at each position


def _models():
    for arch, (module, _, _) in ARCHS.items():
        for name in module.__all__:
            ctor = getattr(module, name)
            if (
                isinstance(ctor, type)
                and name.endswith(("Model", "LMHeadModel"))
                or (isinstance(ctor, type) and "For" in name)
            ):
                if hasattr(pt, name) and not name.endswith("Output"):
                    yield arch, name


MODELS = sorted(set(_models()))


def test_every_1_0_model_is_covered():
    names = {name for _, name in MODELS}
    assert len(names) == 24, sorted(names)


@pytest.fixture(autouse=True)
def seed_bool_masks(seed_txl_bool_masks):
    """1.0's Transformer-XL attention gets a bool mask (conftest's shim)."""


def _same(ours, theirs, where):
    if theirs is None:
        assert ours is None, f"{where}: 1.0 has None, ptfunc {type(ours).__name__}"
    elif isinstance(theirs, torch.Tensor):
        assert isinstance(ours, torch.Tensor), f"{where}: ptfunc gives {type(ours).__name__}"
        assert ours.shape == theirs.shape, f"{where}: {tuple(ours.shape)} vs {tuple(theirs.shape)}"
        if theirs.is_floating_point():
            err = (ours - theirs).abs().max().item() if theirs.numel() else 0.0
            assert err <= ATOL, f"{where}: max-abs {err}"
        else:
            assert torch.equal(ours, theirs), where
    else:
        assert isinstance(ours, (tuple, list)), f"{where}: ptfunc gives {type(ours).__name__}"
        assert len(ours) == len(theirs), f"{where}: {len(ours)} elements vs 1.0's {len(theirs)}"
        for i, (a, b) in enumerate(zip(ours, theirs)):
            _same(a, b, f"{where}[{i}]")


def _case(arch, name, attentions, hidden):
    module, config_name, fields = ARCHS[arch]
    flags = dict(output_attentions=attentions, output_hidden_states=hidden)
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = getattr(pt, name)(getattr(pt, config_name)(V, **flags, **fields)).eval()
        if hasattr(reference, "tie_weights"):
            reference.tie_weights()
    model = getattr(module, name)(getattr(module, config_name)(vocab_size=V, **flags, **fields))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # unused pooler weights of the heads without pooler
        params = io.from_torch_state_dict(model, reference.state_dict())
    choices = "MultipleChoice" in name or "DoubleHeads" in name
    ids = torch.randint(1, V, (B, 2, S) if choices else (B, S), generator=torch.Generator())
    extra = {"mc_token_ids": torch.full((B, 2), S - 1)} if "DoubleHeads" in name else {}
    return reference, model, params, ids, extra


def _in_token_order(grouped, labels, cutoffs):
    """1.0's per-token losses (grouped by cluster: the positions whose label is in cluster
    0, then 1, ...; ignored labels last) put back at their tokens' positions."""
    flat = labels.reshape(-1)
    cluster = torch.bucketize(flat, torch.tensor(list(cutoffs)), right=True)
    order = torch.sort(torch.where(flat < 0, len(cutoffs) + 1, cluster), stable=True).indices
    ordered = torch.empty_like(grouped.reshape(-1))
    ordered[order] = grouped.reshape(-1)
    return ordered.view(labels.shape)


def _documented_differences(arch, name, theirs, labels=None):
    """1.0's tuple with the deliberate differences of docs/migrating (same positions):
    XLM's LM logits are (b, s, V), not flattened to (b * s, V); XLNet without ``mem_len``
    returns every state as memory (as today's transformers), where 1.0 returned None;
    Transformer-XL's per-token losses are in token order, not grouped by cluster."""
    theirs = list(theirs)
    logits_at = 1 if len(theirs) and theirs[0].dim() == 0 else 0
    if name == "XLMWithLMHeadModel":
        theirs[logits_at] = theirs[logits_at].reshape(B, S, V)
    if name == "TransfoXLLMHeadModel" and labels is not None:
        theirs[0] = _in_token_order(theirs[0], labels, ARCHS[arch][2]["cutoffs"])
    if arch == "xlnet-no-mem":
        mems_at = next(i for i, t in enumerate(theirs) if isinstance(t, tuple))
        assert all(m is None for m in theirs[mems_at])
        theirs[mems_at] = None  # compared in the test below
    return tuple(theirs)


def test_xlnet_without_mem_len_returns_every_state_as_memory():
    reference, model, params, ids, _ = _case("xlnet-no-mem", "XLNetModel", False, False)
    with torch.no_grad():
        theirs = reference(ids)
    out = model.apply(params, ids)
    assert len(out) == len(theirs) == 2 and all(m is None for m in theirs[1])
    assert [tuple(m.shape) for m in out[1]] == [(S, B, 16)] * 2


@pytest.mark.parametrize(
    "attentions,hidden", list(itertools.product([False, True], repeat=2)), ids=str
)
@pytest.mark.parametrize("arch,name", MODELS, ids=[f"{a}-{n}" for a, n in MODELS])
def test_positions_match_1_0(arch, name, attentions, hidden):
    reference, model, params, ids, extra = _case(arch, name, attentions, hidden)
    for labels in [{}, *LABELS.get(name, [])]:
        with torch.no_grad():
            theirs = reference(ids, **extra, **labels)
        theirs = _documented_differences(arch, name, theirs, labels.get("labels"))
        out = model.apply(params, ids, **extra, **labels)
        where = f"{name} {sorted(labels)}"
        assert len(out) == len(theirs), (
            f"{where}: {len(out)} elements ({type(out)._fields}) vs 1.0's {len(theirs)}"
        )
        ours = tuple(None if t is None else o for o, t in zip(out, theirs))
        _same(ours, theirs, where)
        plain = out.to_tuple()
        assert type(plain) is tuple and len(plain) == len(out)
        _same(tuple(None if t is None else o for o, t in zip(plain, theirs)), theirs, where)
        if theirs[-1] is not None:
            _same(out[-1], theirs[-1], where + " [-1]")
        # left-out fields still read by name
        if not hidden:
            assert out.hidden_states == ()
        if not attentions:
            assert out.attentions == ()


TXL_CASES = [
    (name, *flags)
    for name in ("TransfoXLModel", "TransfoXLLMHeadModel")
    for flags in itertools.product([False, True], repeat=4)
    if name == "TransfoXLLMHeadModel" or not flags[2]  # the base model takes no labels
]


@pytest.mark.parametrize(
    "name,attentions,hidden,labels,second",
    TXL_CASES,
    ids=["-".join([c[0], *("TF"[not f] for f in c[1:])]) for c in TXL_CASES],
)
def test_transfo_xl_tuples_match_1_0_with_and_without_mems(
    name, attentions, hidden, labels, second
):
    """Every index of 1.0's Transformer-XL tuple, on a first segment (mems=None: zero
    memories) or a second one (the memories each side returned), with labels or not."""
    reference, model, params, ids, _ = _case("transfo_xl", name, attentions, hidden)
    kw = {"labels": torch.roll(ids, -1, dims=1)} if labels else {}
    with torch.no_grad():
        ref_mems = reference(ids)[1] if second else None
        theirs = reference(ids, mems=ref_mems, **kw)
    mems = model.apply(params, ids).mems if second else None
    out = model.apply(params, ids, mems=mems, **kw)
    theirs = _documented_differences("transfo_xl", name, theirs, kw.get("labels"))
    assert len(out) == len(theirs), f"{type(out)._fields} vs 1.0's {len(theirs)} elements"
    _same(tuple(out), theirs, f"{name} attentions={attentions} hidden={hidden}")
    _same(out.to_tuple(), theirs, "to_tuple()")
    if labels:
        assert out[1] is None and out.prediction_scores is None and out[0] is out.losses
        _same(out.loss, theirs[0].mean(), "loss (by name): the mean of 1.0's losses")
        losses, _, new_mems, *_rest = out  # 1.0's unpacking
        assert new_mems is out.mems
    else:
        assert out.loss is None if name == "TransfoXLLMHeadModel" else not hasattr(out, "loss")


def test_placeholders_and_computed_names_survive_vmap_compile_and_optree():
    """A field that is not optional stays in the tuple as None (1.0's placeholder); a
    computed name reads by name only. Oracle: the same function run eagerly, per example."""
    import optree

    from ptfunc.archs.output_tuple import output_family

    family = output_family(
        "ToyOutput",
        "losses? scores mems hidden_states?",
        "toy",
        loss_fields=("losses",),
        loss_name="ToyOutputWithLoss",
        computed={"total": lambda out: None if out.losses is None else out.losses.sum()},
    )

    def run(x):
        return family.make(x * 2.0, None, (x + 1.0,), ())

    x = torch.arange(6.0).reshape(2, 3)
    out = run(x)
    assert type(out).__name__ == "ToyOutputWithLoss" and type(out)._fields == (
        "losses", "scores", "mems",
    )  # fmt: skip
    assert len(out) == 3 and out[1] is None and out.to_tuple()[1] is None
    assert out.hidden_states == () and "total" not in type(out)._fields
    _same(out.total, (x * 2.0).sum(), "computed name")
    plain = family.make(None, x, (x,), ())
    assert type(plain)._fields == ("scores", "mems") and plain.total is None
    assert len(optree.tree_leaves(out)) == 2  # the None placeholder is no leaf for optree
    batched = torch.stack([x, x + 1.0])
    _same(torch.func.vmap(lambda t: run(t).total)(batched), torch.stack(
        [run(x).total, run(x + 1.0).total]
    ), "vmap of a computed name")  # fmt: skip
    dims = type(out)(0, None, (0,))  # vmap needs None at the placeholder
    whole = torch.func.vmap(run, out_dims=dims)(batched)
    assert whole[1] is None and whole.losses.shape == (2, 2, 3)
    grads = torch.func.grad(lambda t: run(t).total)(x)
    _same(grads, torch.full_like(x, 2.0), "grad through a computed name")
    torch._dynamo.reset()
    compiled = torch.compile(run, fullgraph=True, backend="eager")(x)
    assert type(compiled) is type(out) and compiled[1] is None
    total = torch.compile(lambda t: run(t).total, fullgraph=True, backend="eager")(x)
    _same(total, out.total, "computed name under compile")
    with pytest.raises(ValueError, match=r"\['scores'\] are also fields"):
        output_family("Bad", "scores", "doc", computed={"scores": lambda out: None})


def test_double_heads_recipe_of_the_seed():
    """1.0's README: ``lm_loss, mc_loss = model(...)[:2]; loss = lm_coef * lm_loss + mc_loss``."""
    reference, model, params, ids, extra = _case("gpt2", "GPT2DoubleHeadsModel", False, False)
    labels = LABELS["GPT2DoubleHeadsModel"][0]
    with torch.no_grad():
        theirs = reference(ids, **extra, **labels)
    out = model.apply(params, ids, **extra, **labels)
    lm_loss, mc_loss = out[:2]
    _same(2.0 * lm_loss + mc_loss, 2.0 * theirs[0] + theirs[1], "recipe")
    _same(out.loss, theirs[0], "loss is the LM loss")
    _same(out.lm_loss, theirs[0], "lm_loss alias")
    only_mc = model.apply(params, ids, **extra, mc_labels=labels["mc_labels"])
    assert only_mc.loss is None and only_mc._fields[0] == "mc_loss"


def test_left_out_fields_survive_vmap_and_compile():
    model = bert.BertModel(bert.BertConfig(vocab_size=V, **ARCHS["bert"][2]))
    params = model.init(__import__("ptfunc").random.key(0))
    ids = torch.randint(0, V, (3, B, S))

    def run(x):
        return model.apply(params, x, output_attentions=True)

    batched = torch.func.vmap(run)(ids)
    assert type(batched)._fields == ("last_hidden_state", "pooler_output", "attentions")
    assert batched.hidden_states == () and batched[2][0].shape == (3, B, 2, S, S)
    compiled = torch.compile(run, fullgraph=True, backend="eager")(ids[0])
    assert type(compiled) is type(run(ids[0]))
    assert isinstance(compiled, BaseModelOutputWithPooling)


def test_xlm_flat_labels_of_1_0_give_its_loss():
    reference, model, params, ids, _ = _case("xlm", "XLMWithLMHeadModel", False, False)
    flat = LABELS["XLMWithLMHeadModel"][0]["labels"]
    with torch.no_grad():
        theirs = reference(ids, labels=flat)
    out = model.apply(params, ids, labels=flat)
    _same(out[0], theirs[0], "loss with 1.0's flat labels")
    _same(model.apply(params, ids, labels=flat.reshape(B, S)).loss, theirs[0], "(b, s) labels")
    _same(out.logits.reshape(-1, V), theirs[1], "logits, flattened as 1.0's")
