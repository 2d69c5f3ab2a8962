"""XLNet and Transformer-XL: ptfunc against the references on the same weights, in one run.

    python benchmarks/memories.py [--repeats 3] [--threads N] [--quick]

Rows (ratios of interleaved medians, ptfunc / reference; < 1 means ptfunc is faster):

* XLNet-base forward (eval, no_grad), batch 2 x 256, against ``transformers``
  (``ff_activation="gelu_new"``, the tanh form both sides compute alike);
* XLNet-base permutation-LM forward with ``perm_mask`` and ``target_mapping`` (both streams);
* Transformer-XL (6 layers, d_model 512, vocab 32k with cutoffs) forward over two
  segments of 2 x 128 with ``mem_len`` 128, against pytorch-transformers 1.0.0 (its uint8
  masks patched to bool, as in the tests);
* tokenizers on wikitext-2 (when ``../shared/fixtures`` is present): ``XLNetTokenizer``
  against transformers' Rust tokenizer (hub ``tokenizer.json``) and 1.0's Python one;
  ``TransfoXLTokenizer.encode_file`` against 1.0's.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings
from pathlib import Path

import torch

sys.path.insert(0, os.path.dirname(__file__))
from _models import xlnet_pair  # noqa: E402
from _timing import Row, format_table, time_interleaved  # noqa: E402

import ptfunc  # noqa: E402
from ptfunc.archs import transfo_xl  # noqa: E402

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures"


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> str:
    return f"max|d|={(a - b).abs().max().item():.1e}"


def xlnet_rows(args: argparse.Namespace, transformers) -> list[Row]:
    b, s = (2, 16) if args.quick else (2, 256)
    pair = xlnet_pair(args.quick)
    reference, model, params = pair.ref, pair.model, pair.params
    ids = torch.randint(0, pair.vocab, (b, s), generator=torch.Generator().manual_seed(1))
    perm = torch.zeros(b, s, s)
    perm[:, :, s // 2 :] = 1.0  # the second half is predicted and hidden from everyone
    target = torch.zeros(b, s - s // 2, s)
    target[:, torch.arange(s - s // 2), torch.arange(s // 2, s)] = 1.0
    rows = []
    with torch.no_grad():
        for name, kw in (
            (f"XLNet forward {b}x{s}", {}),
            (f"XLNet perm-LM forward {b}x{s}", dict(perm_mask=perm, target_mapping=target)),
        ):
            check = _max_diff(
                model.apply(params, ids, use_mems=False, **kw).logits,
                reference(ids, use_mems=False, **kw).logits,
            )
            stats = time_interleaved(
                [
                    lambda kw=kw: model.apply(params, ids, use_mems=False, **kw),
                    lambda kw=kw: reference(ids, use_mems=False, **kw),
                ],
                repeats=args.repeats,
                warmup=1,
            )
            rows.append(Row(name + " / transformers", *stats, check))
    return rows


def transfo_xl_rows(args: argparse.Namespace) -> list[Row]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pytorch_transformers as pt
        from pytorch_transformers import modeling_transfo_xl as pt_txl
    logging.getLogger("pytorch_transformers").setLevel(logging.ERROR)
    original = pt_txl.RelPartialLearnableMultiHeadAttn.forward

    def forward(self, w, r, attn_mask=None, mems=None, head_mask=None):
        mask = None if attn_mask is None else attn_mask.bool()
        return original(self, w, r, attn_mask=mask, mems=mems, head_mask=head_mask)

    pt_txl.RelPartialLearnableMultiHeadAttn.forward = forward
    sizes = (
        dict(cutoffs=[100, 400], d_model=64, d_embed=64, n_head=4, d_head=16, d_inner=128)
        if args.quick
        else dict(cutoffs=[2000, 10000], d_model=512, d_embed=512, n_head=8, d_head=64)
    )
    vocab = 1000 if args.quick else 32000
    b, s = (2, 16) if args.quick else (2, 128)
    kw = dict(**sizes, n_layer=2 if args.quick else 6, div_val=4, mem_len=s, same_length=True)
    if not args.quick:
        kw["d_inner"] = 2048
    torch.manual_seed(0)
    reference = pt.TransfoXLLMHeadModel(pt.TransfoXLConfig(vocab, **kw)).eval()
    model = transfo_xl.TransfoXLLMHeadModel(transfo_xl.TransfoXLConfig(vocab, **kw))
    params = ptfunc.io.from_torch_state_dict(model, reference.state_dict())
    segments = torch.randint(0, vocab, (2, b, s), generator=torch.Generator().manual_seed(1))

    def ours():
        mems = model.init_mems(b)  # the seed's zero memories, so both compute the same
        for seg in segments:
            out = model.apply(params, seg, mems=mems)
            mems = out.mems
        return out.prediction_scores

    def theirs():
        mems = None
        for seg in segments:
            scores, mems = reference(seg, mems=mems)[:2]
        return scores

    with torch.no_grad():
        check = _max_diff(ours(), theirs())
        stats = time_interleaved([ours, theirs], repeats=args.repeats, warmup=1)
    return [Row(f"Transformer-XL 2 segments {b}x{s} / 1.0", *stats, check)]


def tokenizer_rows(args: argparse.Namespace, transformers) -> list[Row]:
    corpus = FIXTURES / "corpora" / "wikitext-2.test.txt"
    spiece = FIXTURES / "xlnet-base-cased" / "spiece.model"
    if not corpus.is_file() or not spiece.is_file():
        return []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pytorch_transformers as pt
    from ptfunc.tokenize import TransfoXLTokenizer, XLNetTokenizer

    lines = corpus.read_text(encoding="utf-8").splitlines()
    lines = [line for line in lines if line.strip()][: 200 if args.quick else 2000]
    rows = []
    ours_tok = XLNetTokenizer(spiece)
    rust = transformers.XLNetTokenizerFast(
        tokenizer_file=str(FIXTURES / "xlnet-base-cased" / "tokenizer.json")
    )
    slow = pt.XLNetTokenizer(str(spiece))

    def ours():
        return [ours_tok.encode(t, add_special_tokens=False) for t in lines]

    def fast():
        return [rust.encode(t, add_special_tokens=False) for t in lines]

    def python():
        return [slow.encode(t) for t in lines]

    same = ours() == fast() == python()
    rows.append(
        Row(
            f"XLNetTokenizer {len(lines)} lines / Rust, per text",
            *time_interleaved([ours, fast], repeats=args.repeats, warmup=1),
            f"same ids: {same}",
        )
    )
    rows.append(
        Row(
            f"XLNetTokenizer {len(lines)} lines / 1.0 Python",
            *time_interleaved([ours, python], repeats=args.repeats, warmup=1),
            f"same ids: {same}",
        )
    )

    def ours_txl():
        tok = TransfoXLTokenizer(special=["<unk>", "<eos>"], lower_case=False)
        tok.count_file(str(corpus))
        tok.build_vocab()
        return tok.encode_file(str(corpus), ordered=True)

    def seed_txl():
        tok = pt.TransfoXLTokenizer(special=["<unk>", "<eos>"], lower_case=False)
        tok.count_file(str(corpus))
        tok.build_vocab()
        return tok.encode_file(str(corpus), ordered=True)

    rows.append(
        Row(
            "TransfoXLTokenizer count + encode_file / 1.0",
            *time_interleaved([ours_txl, seed_txl], repeats=args.repeats, warmup=0),
            "",
        )
    )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--quick", action="store_true", help="tiny configs: a smoke test")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    import transformers

    print(
        f"torch {torch.__version__}, transformers {transformers.__version__}, "
        f"{torch.get_num_threads()} threads; {'tiny' if args.quick else 'base-size'} configs, fp32"
    )
    rows = xlnet_rows(args, transformers) + transfo_xl_rows(args)
    rows += tokenizer_rows(args, transformers)
    print()
    print(format_table(rows, peer="reference"))
    print("\nratio = ptfunc / reference time (< 1: ptfunc faster)")


if __name__ == "__main__":
    main()
