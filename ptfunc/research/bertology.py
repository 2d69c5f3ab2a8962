"""Bertology: which attention heads matter (Michel et al. 2019, "Are Sixteen Heads Really
Better than One?"), as pure functions of a model and its params.

- **Head importance**: ``|d loss / d head_mask|`` with ``head_mask`` a ``(n_layers, n_heads)``
  tensor of ones, summed over batches (:func:`head_mask_grad`, :func:`compute_head_stats`).
- **Attention entropy** of each head, averaged over (non-padding) query tokens
  (:func:`attention_entropy`).
- **Masking** a head: ``apply(..., head_mask=m)`` with a binary ``m`` (1 keeps a head), or,
  as a params transform, :func:`mask_heads`, which zeroes the head's value projection so
  the model computes the same thing without a ``head_mask``.
- **Pruning** a head: :func:`prune_heads` removes its weights, returning a new
  ``(model, params)`` whose config records the pruned heads.
- :func:`mask_heads_by_importance`: the seed's greedy loop (mask the least important
  heads step by step while the metric stays above a fraction of the original), with the
  evaluation passed in as a function.
- :func:`plot_head_importance`: a heat map, when matplotlib is installed (not a dependency).

Support by architecture:

- ``head_mask`` (hence importance and entropy): BERT, RoBERTa, ELECTRA, DistilBERT,
  ALBERT, DeBERTa-v2, OpenAI GPT, GPT-2, XLM, Transformer-XL and XLNet;
- :func:`mask_heads` and :func:`prune_heads`: BERT, RoBERTa, ELECTRA, OpenAI GPT, GPT-2,
  XLM, DistilBERT and DeBERTa-v2;
- ALBERT, Transformer-XL and XLNet: :func:`prune_heads` and :func:`mask_heads` raise
  ``NotImplementedError`` naming the way out, ``head_mask``. ALBERT's layer groups share
  their weights across layers, so a head cannot be removed from one layer alone; its
  ``head_mask`` row ``l`` masks step ``l`` (every inner layer call of it), and with
  ``inner_group_num > 1`` the entropy of a step is the mean over its calls.

Normalisation of importance (:func:`normalize_importance`), as the seed's
``run_bertology.py`` (1.0) does by default:

1. divide by the number of (non-padding) tokens seen (:func:`compute_head_stats`);
2. per layer, divide by the layer's L-``exponent`` norm (``exponent=2``; the seed's
   ``--dont_normalize_importance_by_layer`` turns it off);
3. globally, min-max scale to [0, 1] (``--dont_normalize_global_importance`` turns it off).

One deliberate difference from the seed: 1.0 never zeroed ``head_mask.grad`` between
batches, so it summed running totals of gradients (batch 1 counted n times, batch 2
n - 1 times...). Here each batch's ``|gradient|`` is added once, as the paper intends.

Example:
    >>> import torch, ptfunc
    >>> from ptfunc.archs import bert
    >>> from ptfunc.research import bertology
    >>> c = bert.BertConfig(vocab_size=30, hidden_size=8, num_hidden_layers=2,
    ...                     num_attention_heads=2, intermediate_size=16)
    >>> model = bert.BertForSequenceClassification(c)
    >>> params = model.init(ptfunc.random.key(0))
    >>> batch = {"input_ids": torch.randint(1, 30, (4, 6)), "labels": torch.tensor([0, 1, 1, 0])}
    >>> stats = bertology.compute_head_stats(model, params, [batch])
    >>> stats.importance.shape, stats.entropy.shape
    (torch.Size([2, 2]), torch.Size([2, 2]))
    >>> new_model, pruned = bertology.prune_heads(model, params, {0: [1]})
    >>> new_model.config.pruned_heads
    {0: (1,)}
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import Tensor

from .. import func
from ..tree import Params

__all__ = [
    "head_shape",
    "entropy",
    "attention_entropy",
    "head_mask_grad",
    "normalize_importance",
    "HeadStats",
    "compute_head_stats",
    "head_ranks",
    "heads_from_mask",
    "mask_from_heads",
    "mask_heads",
    "prune_heads",
    "MaskingResult",
    "mask_heads_by_importance",
    "plot_head_importance",
]


def head_shape(model: Any) -> tuple[int, int]:
    """``(n_layers, n_heads)`` of a model, from its config (every ptfunc config has both)."""
    c = model.config
    return int(c.num_hidden_layers), int(c.num_attention_heads)


def entropy(p: Tensor) -> Tensor:
    """Entropy (nats) of distributions on the last axis: ``-sum p log p``, with 0 log 0 = 0.

    p (..., k) -> (...); computed in float32 or wider.
    """
    p = p.to(torch.promote_types(p.dtype, torch.float32))
    plogp = torch.where(p > 0, p * torch.log(torch.where(p > 0, p, 1.0)), 0.0)
    return -plogp.sum(-1)


def attention_entropy(attentions: Iterable[Tensor], attention_mask: Tensor | None = None) -> Tensor:
    """Sum over the batch and the (non-padding) query tokens of each head's entropy.

    Args:
        attentions: per layer, probabilities (b, heads, q_len, k_len), as models return
            them with ``output_attentions=True``.
        attention_mask: (b, q_len), 1 = real token; None counts every query.

    Returns:
        float32 (n_layers, n_heads): sums (divide by the token count for a mean).
    """
    rows = []
    for probs in attentions:
        h = entropy(probs.detach())  # (b, heads, q)
        if attention_mask is not None:
            h = h * attention_mask[:, None, :].to(h.dtype)
        rows.append(h.sum(dim=(0, 2)))
    return torch.stack(rows)


def head_mask_grad(
    model: Any,
    params: Params,
    batch: Mapping[str, Any],
    head_mask: Tensor | None = None,
    *,
    loss_fn: Callable[[Any], Tensor] | None = None,
    **options: Any,
) -> tuple[Tensor, Any]:
    """Gradient of the loss w.r.t. ``head_mask`` on one batch, and the model's output.

    Args:
        model, params: any ptfunc model whose ``apply`` takes ``head_mask`` and returns
            a ``loss`` given labels (the heads of every architecture in the module's table).
        batch: keyword arguments of ``model.apply`` (``input_ids``, ``labels``,
            ``attention_mask``, ...).
        head_mask: (n_layers, n_heads) float; default all ones.
        loss_fn: turns the output into a scalar (default ``out.loss``, or its mean when
            the model returns per-token losses, as Transformer-XL does).
        **options: more ``apply`` options (``train``/``key`` for dropout, ``remat``).

    Returns:
        ``(grad (n_layers, n_heads) float32, output with attentions)``.
    """
    if head_mask is None:
        head_mask = torch.ones(head_shape(model))
    kwargs = {"output_attentions": True, **options, **batch}

    def loss(hm: Tensor) -> tuple[Tensor, Any]:
        out = model.apply(params, head_mask=hm, **kwargs)
        value = loss_fn(out) if loss_fn is not None else out.loss
        return value.mean() if value.dim() else value, out

    grad, out = func.grad(loss, has_aux=True)(head_mask.to(torch.float32))
    return grad, out


def normalize_importance(
    importance: Tensor,
    *,
    by_layer: bool = True,
    exponent: float = 2.0,
    global_minmax: bool = True,
) -> Tensor:
    """The seed's normalisations of raw importance (n_layers, n_heads).

    Args:
        by_layer: divide each layer's row by its L-``exponent`` norm (+1e-20).
        exponent: the norm's exponent (2 in the seed).
        global_minmax: then scale all scores to [0, 1] by the global min and max
            (a constant matrix is left at 0).
    """
    x = importance.to(torch.float32)
    if by_layer:
        norm = x.pow(exponent).sum(-1).pow(1.0 / exponent)
        x = x / (norm[:, None] + 1e-20)
    if global_minmax:
        span = x.max() - x.min()
        x = (x - x.min()) / torch.where(span > 0, span, 1.0)
    return x


class HeadStats(NamedTuple):
    """What :func:`compute_head_stats` returns.

    importance: float32 (n_layers, n_heads), normalised as asked (None if not computed).
    entropy: float32 (n_layers, n_heads), mean entropy per token (None if not computed).
    logits: the model's logits over all batches, concatenated on the first axis.
    labels: the batches' labels, concatenated (None when batches had none).
    n_tokens: the number of (non-padding) tokens seen.
    """

    importance: Tensor | None
    entropy: Tensor | None
    logits: Tensor
    labels: Tensor | None
    n_tokens: int


def compute_head_stats(
    model: Any,
    params: Params,
    batches: Iterable[Mapping[str, Any]],
    *,
    head_mask: Tensor | None = None,
    compute_importance: bool = True,
    compute_entropy: bool = True,
    normalize_by_layer: bool = True,
    normalize_global: bool = True,
    exponent: float = 2.0,
    loss_fn: Callable[[Any], Tensor] | None = None,
    progress: Callable[[int], None] | None = None,
    **options: Any,
) -> HeadStats:
    """Head importance and attention entropy over ``batches`` (the seed's
    ``compute_heads_importance``).

    Importance: sum over batches of ``|d loss / d head_mask|``, divided by the token count,
    then :func:`normalize_importance`. Entropy: :func:`attention_entropy` summed over
    batches, divided by the token count. Tokens are counted by ``attention_mask`` (every
    position when a batch has none).

    Args:
        batches: keyword arguments of ``model.apply`` per batch (with ``labels`` for the
            importance).
        head_mask: the mask the model runs with (default all ones); importance is the
            gradient at this point.
        progress: called with the number of batches done.
        **options: more ``apply`` options (``remat=True`` for long sequences).
    """
    n_layers, n_heads = head_shape(model)
    importance = torch.zeros(n_layers, n_heads)
    ent = torch.zeros(n_layers, n_heads)
    logits, labels, n_tokens = [], [], 0
    for i, batch in enumerate(batches):
        mask = batch.get("attention_mask")
        ids = batch["input_ids"]
        n_tokens += int(mask.sum()) if mask is not None else ids.numel()
        if compute_importance:
            grad, out = head_mask_grad(model, params, batch, head_mask, loss_fn=loss_fn, **options)
            importance += grad.abs()
        else:
            kw = {"output_attentions": compute_entropy, **options, **batch}
            with torch.no_grad():
                out = model.apply(params, head_mask=head_mask, **kw)
        if compute_entropy:
            ent += _per_layer(attention_entropy(out.attentions, mask), n_layers)
        logits.append(out.logits.detach())
        if batch.get("labels") is not None:
            labels.append(batch["labels"])
        if progress is not None:
            progress(i + 1)
    n = max(n_tokens, 1)
    imp = None
    if compute_importance:
        imp = normalize_importance(
            importance / n,
            by_layer=normalize_by_layer,
            exponent=exponent,
            global_minmax=normalize_global,
        )
    return HeadStats(
        imp,
        ent / n if compute_entropy else None,
        torch.cat(logits),
        torch.cat(labels) if labels else None,
        n_tokens,
    )


def _per_layer(rows: Tensor, n_layers: int) -> Tensor:
    """(n_calls, heads) per attention call -> (n_layers, heads): the mean over each layer's
    calls when a layer makes several (ALBERT's ``inner_group_num``), else ``rows``."""
    if rows.shape[0] == n_layers:
        return rows
    return rows.reshape(n_layers, -1, rows.shape[-1]).mean(1)


def head_ranks(importance: Tensor) -> Tensor:
    """int64 (n_layers, n_heads): 0 for the most important head, 1 for the next..."""
    flat = importance.reshape(-1)
    ranks = torch.empty_like(flat, dtype=torch.int64)
    ranks[flat.argsort(descending=True, stable=True)] = torch.arange(flat.numel())
    return ranks.reshape(importance.shape)


def heads_from_mask(head_mask: Tensor) -> dict[int, list[int]]:
    """``{layer: [heads whose mask is 0]}`` (layers with none left out), for pruning."""
    out = {}
    for layer, row in enumerate(head_mask):
        heads = [int(h) for h in (row == 0).nonzero().flatten()]
        if heads:
            out[layer] = heads
    return out


def mask_from_heads(shape: tuple[int, int], heads: Mapping[int, Iterable[int]]) -> Tensor:
    """float32 mask of ``shape`` with zeros at ``{layer: [heads]}``, ones elsewhere."""
    m = torch.ones(shape)
    for layer, hs in heads.items():
        for h in hs:
            m[layer, h] = 0.0
    return m


def _arch_transforms(model: Any) -> Any:
    """The module with ``prune_heads``/``mask_heads`` for ``model``'s architecture, or None."""
    from ..archs import albert, bert, deberta_v2, distilbert, gpt2, openai_gpt, xlm
    from ..archs.bert import transforms as bert_t
    from ..archs.deberta_v2 import model as deberta_v2_t
    from ..archs.distilbert import model as distilbert_t
    from ..archs.gpt2 import prune as gpt2_t
    from ..archs.openai_gpt import prune as openai_gpt_t
    from ..archs.xlm import prune as xlm_t

    table = (
        (bert.BertConfig, bert_t),
        (gpt2.GPT2Config, gpt2_t),
        (openai_gpt.OpenAIGPTConfig, openai_gpt_t),
        (xlm.XLMConfig, xlm_t),
        (distilbert.DistilBertConfig, distilbert_t.HEAD_PRUNING),
        (deberta_v2.DebertaV2Config, deberta_v2_t.HEAD_PRUNING),
    )
    if isinstance(model.config, albert.AlbertConfig):  # a BertConfig whose layers are shared
        return None
    return next((t for cls, t in table if isinstance(model.config, cls)), None)


_SUPPORTED = "BERT (RoBERTa, ELECTRA), OpenAI GPT, GPT-2, XLM, DistilBERT and DeBERTa-v2 models"


def _unsupported(what: str, model: Any) -> NotImplementedError:
    from ..archs import albert

    why = ""
    if isinstance(model.config, albert.AlbertConfig):
        why = " (ALBERT shares each layer group's weights across its layers)"
    return NotImplementedError(
        f"{what} is implemented for {_SUPPORTED}, not {type(model).__name__}{why}; "
        "silence heads with head_mask=... (apply) instead"
    )


def mask_heads(model: Any, params: Params, heads: Mapping[int, Iterable[int]]) -> Params:
    """Params in which heads ``{layer: [heads]}`` contribute nothing (the architectures with
    pruning, see the module's table).

    The value projection (weight and bias) of each head becomes 0, so the head's
    context vectors are exactly 0, as with ``head_mask`` 0 for that head: the new params
    without a head mask give bit for bit the old params' output with it. Shapes are kept
    (contrast :func:`prune_heads`). Head indices refer to the layer's current heads.

    Raises:
        ValueError: a layer or head index out of range.
        NotImplementedError: another architecture (pass ``head_mask=`` to ``apply``).
    """
    transforms = _arch_transforms(model)
    if transforms is None:
        raise _unsupported("mask_heads", model)
    return transforms.mask_heads(model, params, heads)


def prune_heads(
    model: Any, params: Params, heads_to_prune: Mapping[int, Iterable[int]]
) -> tuple[Any, Params]:
    """Remove heads ``{layer: [head indices of the unpruned model]}``: ``(model, params)``.

    Dispatches to the architecture's own pruning (BERT, RoBERTa, ELECTRA, OpenAI GPT,
    GPT-2, XLM, DistilBERT, DeBERTa-v2: their models' ``prune_heads`` method); the new
    model's config records ``pruned_heads`` so it reloads.

    Raises:
        ValueError: a layer or head index out of range.
        NotImplementedError: for architectures without head pruning (ALBERT,
            Transformer-XL, XLNet today): mask with ``head_mask`` instead.
    """
    if _arch_transforms(model) is None or getattr(model, "prune_heads", None) is None:
        raise _unsupported("head pruning", model)
    return model.prune_heads(params, heads_to_prune)


class MaskingResult(NamedTuple):
    """What :func:`mask_heads_by_importance` returns.

    head_mask: float32 (n_layers, n_heads), the last mask whose score stayed at or above
        ``threshold * original_score``.
    score: that mask's score.
    original_score: the score with every head.
    history: ``(heads kept, score)`` of each evaluated mask, in order.
    """

    head_mask: Tensor
    score: float
    original_score: float
    history: list[tuple[int, float]]


def mask_heads_by_importance(
    evaluate: Callable[[Tensor], tuple[float, Tensor]],
    shape: tuple[int, int],
    *,
    threshold: float = 0.9,
    amount: float = 0.1,
) -> MaskingResult:
    """Greedy head masking (the seed's ``mask_heads``), functional.

    Starting from all heads, repeatedly mask the ``max(1, int(amount * n_heads_total))``
    least important heads still kept, re-evaluating after each step, while the score stays
    at or above ``threshold * original_score``; stop also when no more than that many heads
    are left.

    Args:
        evaluate: ``head_mask -> (score, importance (n_layers, n_heads))``, e.g. accuracy
            and :func:`compute_head_stats` importance under that mask.
        shape: ``(n_layers, n_heads)``.
    """
    mask = torch.ones(shape)
    original, importance = evaluate(mask)
    history = [(int(mask.sum()), float(original))]
    n_step = max(1, int(mask.numel() * amount))
    kept, kept_score = mask, float(original)
    score = float(original)
    while score >= original * threshold:
        kept, kept_score = mask, score
        ranked = torch.where(kept == 0, float("inf"), importance.to(torch.float32))
        order = ranked.reshape(-1).argsort(stable=True)
        if int(kept.sum()) <= n_step:
            break
        mask = kept.reshape(-1).clone()
        mask[order[:n_step]] = 0.0
        mask = mask.reshape(shape)
        score, importance = evaluate(mask)
        score = float(score)
        history.append((int(mask.sum()), score))
    return MaskingResult(kept, kept_score, float(original), history)


def plot_head_importance(
    scores: Tensor, path: str | Path, *, title: str = "head importance"
) -> Path:
    """Save a heat map of ``scores`` (n_layers, n_heads) to ``path`` (png, pdf, svg...).

    Raises:
        ImportError: matplotlib is not installed (it is not a ptfunc dependency).
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise ImportError(
            "plot_head_importance needs matplotlib, which ptfunc does not depend on: "
            "pip install matplotlib (or save the scores with numpy and plot elsewhere)"
        ) from e
    data = scores.detach().to(torch.float32).cpu().numpy()
    fig, ax = plt.subplots(figsize=(1 + 0.5 * data.shape[1], 1 + 0.4 * data.shape[0]))
    im = ax.imshow(data, cmap="viridis", aspect="auto")
    ax.set_xlabel("head")
    ax.set_ylabel("layer")
    ax.set_title(title)
    fig.colorbar(im, ax=ax)
    path = Path(path)
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return path
