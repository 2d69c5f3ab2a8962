"""Tensor-parallel plans: which leaf is cut along which dim, and the plans of the model families.

A :class:`TPPlan` is an ordered list of ``(glob pattern over the dotted param path, TPRule)``;
the first pattern that matches a path gives its rule (none: replicated). Patterns start with
``*`` so one plan serves a base model's tree and a head's (``model.layers.0...`` and
``layers.0...`` alike). The plans are Megatron-LM's: attention and MLP input projections
column-parallel (whole heads, whole MLP channels per rank), output projections row-parallel,
the token table vocab-parallel (and the tied or untied read-out column-parallel over vocab).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor

from .. import tree
from ..tree import Params

__all__ = ["TPRule", "TPPlan", "plan_for", "split_params", "merge_params"]

KINDS = ("replicate", "colwise", "rowwise", "vocab")


class TPRule(NamedTuple):
    """How one leaf is laid out over the tensor-parallel ranks.

    ``kind``: ``"replicate"`` (every rank holds all of it), ``"colwise"`` (output features:
    linear weight and bias dim 0, GPT-2 Conv1D weight dim 1), ``"rowwise"`` (input features:
    linear weight dim 1, Conv1D weight dim 0; its bias is replicated and added once after the
    all-reduce), ``"vocab"`` (embedding rows, dim 0; as a read-out ``F.linear(x, table)`` it is
    column-parallel over the vocabulary). ``dim``: the split dim (None for replicate).
    ``fused``: the split dim holds ``fused`` equal blocks (GPT-2's ``[q | k | v]``), each cut
    separately so every rank gets its share of each block. ``reduce_grad`` (replicated leaves
    only): the leaf is read inside the sharded region (Qwen3's QK-norm scales the local
    heads), so each rank's gradient is a partial sum; the runtime all-reduces it.
    """

    kind: str
    dim: int | None = None
    fused: int = 1
    reduce_grad: bool = False


REPLICATE = TPRule("replicate")


def _blocks(n: int, rule: TPRule, tp_size: int, path: str) -> int:
    """Length of one rank's piece of each fused block along the split dim of size ``n``."""
    if n % rule.fused or (n // rule.fused) % tp_size:
        what = f"{rule.fused} fused blocks of " if rule.fused > 1 else ""
        raise ValueError(
            f"tensor parallel over {tp_size} ranks: {path} has size {n} along dim {rule.dim} "
            f"({what}{rule.kind}), not divisible into {tp_size} equal pieces"
            + (" per block" if rule.fused > 1 else "")
        )
    return n // rule.fused // tp_size


class TPPlan:
    """Ordered ``(pattern, TPRule)`` rules over dotted param paths, and the head counts that
    must divide too.

    Args:
        rules: ``(fnmatch pattern, TPRule)`` pairs, the first match wins.
        counts: ``{name: value}`` of sizes that must be multiples of the tp size besides the
            leaves' split dims (``num_attention_heads``, ``num_key_value_heads``: a width
            divisible by the tp size may still cut a head in two).

    Example:
        >>> import torch
        >>> plan = TPPlan([("*q_proj.weight", TPRule("colwise", 0))])
        >>> plan.rule("model.layers.0.self_attn.q_proj.weight"), plan.rule("norm.weight").kind
        (TPRule(kind='colwise', dim=0, fused=1, reduce_grad=False), 'replicate')
        >>> w = torch.arange(8.0).reshape(4, 2)
        >>> plan.split("q_proj.weight", w, 1, 2)
        tensor([[4., 5.],
                [6., 7.]])
    """

    def __init__(
        self,
        rules: Sequence[tuple[str, TPRule]],
        *,
        counts: Mapping[str, int] | None = None,
    ) -> None:
        for pattern, rule in rules:
            if rule.kind not in KINDS:
                raise ValueError(f"TPRule kind must be one of {KINDS}, got {rule.kind!r}")
            if (rule.kind == "replicate") != (rule.dim is None):
                raise ValueError(f"{pattern}: a replicated rule has dim None, a split one a dim")
            if rule.reduce_grad and rule.kind != "replicate":
                raise ValueError(f"{pattern}: reduce_grad is for replicated leaves")
        self.rules = tuple(rules)
        self.counts = dict(counts or {})

    def __repr__(self) -> str:
        return f"TPPlan({list(self.rules)!r}, counts={self.counts!r})"

    def rule(self, path: str) -> TPRule:
        """The first rule whose pattern matches ``path`` (replicate when none does)."""
        for pattern, rule in self.rules:
            if fnmatch.fnmatchcase(path, pattern):
                return rule
        return REPLICATE

    def split(self, path: str, full: Tensor, tp_rank: int, tp_size: int) -> Tensor:
        """Rank ``tp_rank``'s contiguous piece of the full leaf at ``path`` (a copy)."""
        rule = self.rule(path)
        if rule.kind == "replicate" or tp_size == 1:
            return full.clone()
        dim = rule.dim % full.dim()
        n = _blocks(full.shape[dim], rule, tp_size, path)
        blocks = full.chunk(rule.fused, dim) if rule.fused > 1 else (full,)
        pieces = [b.narrow(dim, tp_rank * n, n) for b in blocks]
        return torch.cat(pieces, dim).contiguous() if len(pieces) > 1 else pieces[0].clone()

    def merge(self, path: str, pieces: Sequence[Tensor]) -> Tensor:
        """The full leaf from every rank's piece in rank order (replicated: the first)."""
        rule = self.rule(path)
        if rule.kind == "replicate" or len(pieces) == 1:
            return pieces[0].clone()
        dim = rule.dim % pieces[0].dim()
        if rule.fused == 1:
            return torch.cat(list(pieces), dim)
        per_rank = [p.chunk(rule.fused, dim) for p in pieces]
        return torch.cat(
            [per_rank[r][b] for b in range(rule.fused) for r in range(len(pieces))], dim
        )

    def check(self, params: Params, tp_size: int) -> None:
        """Raise ValueError naming the leaf (or the config count) and its size when a split
        dim, a fused block or a head count is not divisible by ``tp_size``."""
        for name, value in self.counts.items():
            if value % tp_size:
                raise ValueError(
                    f"tensor parallel over {tp_size} ranks: {name} = {value} is not divisible "
                    f"by {tp_size}"
                )
        for path, leaf in tree.to_flat_dict(params).items():
            rule = self.rule(path)
            if rule.kind == "replicate":
                continue
            if leaf.dim() == 0 or not -leaf.dim() <= rule.dim < leaf.dim():
                raise ValueError(f"{path}: {rule.kind} on dim {rule.dim} of a {leaf.dim()}-d leaf")
            _blocks(leaf.shape[rule.dim], rule, tp_size, path)


def split_params(params: Params, plan: TPPlan, tp_rank: int, tp_size: int) -> Params:
    """The tree of rank ``tp_rank``'s local pieces (plain tensors, copies) after
    ``plan.check(params, tp_size)``."""
    plan.check(params, tp_size)
    return tree.map_with_names(lambda p, x: plan.split(p, x, tp_rank, tp_size), params)


def merge_params(pieces: Sequence[Params], plan: TPPlan) -> Params:
    """The full tree from every tp rank's tree of pieces (rank order): the inverse of
    :func:`split_params` (replicated leaves: rank 0's)."""
    flats = [tree.to_flat_dict(p) for p in pieces]
    merged = {k: plan.merge(k, [f[k] for f in flats]) for k in flats[0]}
    return tree.map_with_names(lambda p, _: merged[p], pieces[0])


# -- the plans of the model families ---------------------------------------------------------

COL, ROW, VOCAB = TPRule("colwise", 0), TPRule("rowwise", 1), TPRule("vocab", 0)

_LLAMA = (
    ("*embed_tokens.weight", VOCAB),
    ("*self_attn.[qkv]_proj.weight", COL),
    ("*self_attn.[qkv]_proj.bias", COL),
    ("*self_attn.o_proj.weight", ROW),
    ("*mlp.gate_proj.weight", COL),
    ("*mlp.gate_proj.bias", COL),
    ("*mlp.up_proj.weight", COL),
    ("*mlp.up_proj.bias", COL),
    ("*mlp.down_proj.weight", ROW),
    ("*self_attn.[qk]_norm.weight", TPRule("replicate", reduce_grad=True)),  # Qwen3
    ("lm_head.weight", VOCAB),
)
_NEOX = (
    ("*embed_in.weight", VOCAB),
    ("*attention.query_key_value.weight", COL),  # per-head [q|k|v]: whole heads per rank
    ("*attention.query_key_value.bias", COL),
    ("*attention.dense.weight", ROW),
    ("*mlp.dense_h_to_4h.weight", COL),
    ("*mlp.dense_h_to_4h.bias", COL),
    ("*mlp.dense_4h_to_h.weight", ROW),
    ("embed_out.weight", VOCAB),
    ("lm_head.weight", VOCAB),
)
_BERT = (
    ("*embeddings.word_embeddings.weight", VOCAB),
    ("*attention.self.query.*", COL),
    ("*attention.self.key.*", COL),
    ("*attention.self.value.*", COL),
    ("*attention.output.dense.weight", ROW),
    ("*intermediate.dense.*", COL),
    ("*layer.*.output.dense.weight", ROW),
    ("cls.predictions.bias", COL),  # the tied decoder's bias follows its vocab split
)
_GPT2 = (
    ("*wte.weight", VOCAB),
    ("*attn.c_attn.weight", TPRule("colwise", 1, 3)),  # Conv1D (in, out), out = [q|k|v]
    ("*attn.c_attn.bias", TPRule("colwise", 0, 3)),
    ("*attn.c_proj.weight", TPRule("rowwise", 0)),
    ("*mlp.c_fc.weight", TPRule("colwise", 1)),
    ("*mlp.c_fc.bias", COL),
    ("*mlp.c_proj.weight", TPRule("rowwise", 0)),
)


def plan_for(model: Any) -> TPPlan:
    """The tensor-parallel plan of a Llama, Mistral, Qwen2, Qwen3, GPT-NeoX (Pythia), BERT
    or GPT-2 model: its base class or any of its heads (the patterns match both trees).

    The plan's ``counts`` hold the config's head counts (and, for the decoders, the
    intermediate and vocabulary sizes) for :meth:`TPPlan.check`.

    Raises:
        TypeError: another architecture.

    Example:
        >>> from ptfunc.archs import llama
        >>> c = llama.LlamaConfig(vocab_size=32, hidden_size=16, intermediate_size=32,
        ...                       num_hidden_layers=1, num_attention_heads=4, num_key_value_heads=2)
        >>> plan = plan_for(llama.LlamaForCausalLM(c))
        >>> plan.rule("model.layers.0.self_attn.o_proj.weight")
        TPRule(kind='rowwise', dim=1, fused=1, reduce_grad=False)
    """
    from ..archs import bert, gpt2, gpt_neox
    from ..archs.decoder.heads import _Decoder

    c = model.config
    if isinstance(model, (gpt_neox.GPTNeoXModel, gpt_neox.GPTNeoXForCausalLM,
                          gpt_neox.GPTNeoXForSequenceClassification)):  # fmt: skip
        counts = {"num_attention_heads": c.num_attention_heads,
                  "intermediate_size": c.intermediate_size, "vocab_size": c.vocab_size}  # fmt: skip
        return TPPlan(_NEOX, counts=counts)
    if isinstance(model, _Decoder):
        counts = {
            "num_attention_heads": c.num_attention_heads,
            "num_key_value_heads": c.num_key_value_heads,
            "intermediate_size": c.intermediate_size,
            "vocab_size": c.vocab_size,
        }
        return TPPlan(_LLAMA, counts=counts)
    if (
        isinstance(model, (bert.BertModel, bert.heads._BertHead))
        and model.base_model_prefix == "bert"
    ):
        counts = {"num_attention_heads": c.num_attention_heads,
                  "intermediate_size": c.intermediate_size, "vocab_size": c.vocab_size}  # fmt: skip
        return TPPlan(_BERT, counts=counts)
    if isinstance(model, (gpt2.GPT2Model, gpt2.GPT2LMHeadModel, gpt2.GPT2DoubleHeadsModel)):
        counts = {"n_head": c.n_head, "vocab_size": c.vocab_size}
        return TPPlan(_GPT2, counts=counts)
    raise TypeError(
        f"no tensor-parallel plan for {type(model).__name__}: plan_for knows Llama, Mistral, "
        "Qwen2, Qwen3, GPT-NeoX, BERT and GPT-2 (write a TPPlan for others)"
    )
