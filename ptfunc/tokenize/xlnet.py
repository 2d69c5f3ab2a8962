"""XLNet's SentencePiece tokenizer.

The text is prepared as the original XLNet code does (``prepro_utils.py``): whitespace
runs collapse to one space and the ends are stripped (``remove_space``), LaTeX-style
quotes (two backquotes, two apostrophes) become ``"``, accents are removed by NFKD
decomposition and dropping the
combining marks (unless ``keep_accents``), and the text is lower-cased
(``do_lower_case``). The ``sentencepiece`` library then cuts it into pieces; a piece that
ends in a comma after a digit (``"▁9,"``) is re-encoded without the comma and the comma
kept apart, so numbers like ``1,000`` split as in XLNet's pretraining data. Model inputs
put the special tokens at the end: ``A <sep> <cls>`` or ``A <sep> B <sep> <cls>``, with
token types 0 for ``A <sep>``, 1 for ``B <sep>`` and 2 (``SEG_ID_CLS``) for ``<cls>``;
batches are padded on the left (``padding_side = "left"``), as XLNet expects.

Sampling (subword regularisation): ``tokenize(text, sample=True)`` (or
``enable_sampling=True`` at construction) draws a segmentation with sentencepiece's
sampler among the ``nbest_size`` best ones with temperature ``alpha`` (1.0's fixed 64 and
0.1 by default; ``nbest_size=-1`` samples from the whole lattice). sentencepiece's random
generator is process-wide; ``seed=`` reseeds it before the call, which makes a call
reproducible (``sentencepiece.set_random_generator_seed``).

Ids equal pytorch-transformers 1.0's (the sentencepiece library itself) on real text, and
those of today's ``transformers`` ``XLNetTokenizer`` (Rust ``tokenizers`` only, no Python
version in transformers 5) loaded from the hub's ``tokenizer.json``. Where the
references disagree, this module follows 1.0 and the original XLNet code:

- transformers 5 built from ``spiece.model`` alone treats the model's user-defined
  pieces (``.``, ``-``, ``(``, ``)``, ``"``, ... in xlnet-base-cased) as added tokens,
  so the word after a hyphen restarts with ``▁`` (``one-sentence`` -> ``▁one - ▁sentence``
  instead of ``▁one - s ent ence``), and it does not separate the digit-comma pieces
  (``▁9,``); its hub ``tokenizer.json`` agrees with 1.0 on both;
- transformers 5 ignores ``keep_accents=True`` (it always strips accents); 1.0 honours it;
- on segmentations of equal score (``......`` + ``.`` vs ``.`` + ``......``) sentencepiece
  and the ``tokenizers`` Unigram model may pick different ones; we are sentencepiece;
- ``decode`` cleans up tokenization spaces by default, as 1.0 (transformers 5 does not:
  pass ``clean_up_tokenization_spaces=False``), and strips both ends of the text, as 1.0
  (transformers 5 keeps the spaces of skipped tokens at the end: ``"emoji "``);
- ``token_type_ids`` are returned by default (XLNet's model uses them; transformers 5
  returns them only when asked); padded positions get token type 0, as transformers 5
  (1.0's GLUE example used 4, ``SEG_ID_PAD``);
- an empty ``text_pair`` is a pair (``A <sep> <sep> <cls>``); transformers 5 drops it.

:meth:`~XLNetTokenizer.save_pretrained` writes the ``spiece.model`` bytes read at
construction (atomically, with the other files); 1.0's and transformers 5's directories
load with :meth:`~XLNetTokenizer.from_pretrained` as long as they hold ``spiece.model``
(transformers 5 saves only ``tokenizer.json``, which is not read).
"""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from itertools import repeat
from pathlib import Path
from typing import Any

import sentencepiece as spm

from . import _unicode
from .base import PreTrainedTokenizer

__all__ = [
    "SEG_ID_A",
    "SEG_ID_B",
    "SEG_ID_CLS",
    "SEG_ID_PAD",
    "SEG_ID_SEP",
    "SPIECE_UNDERLINE",
    "XLNetTokenizer",
    "split_digit_commas",
]

VOCAB_FILES_NAMES = {"vocab_file": "spiece.model"}
SPIECE_UNDERLINE = "\u2581"  # "▁", sentencepiece's word-start mark
"""Sentencepiece's word-start mark, ``"▁"`` (U+2581)."""

# segment ids of the original XLNet code
SEG_ID_A = 0
"""Segment id of the first sequence's tokens (``token_type_ids``)."""
SEG_ID_B = 1
"""Segment id of the second sequence's tokens."""
SEG_ID_CLS = 2
"""Segment id of ``<cls>`` (at the end, in XLNet)."""
SEG_ID_SEP = 3
"""Segment id of ``<sep>`` in the original XLNet code."""
SEG_ID_PAD = 4
"""Segment id of padding."""


def _load_processor(model: bytes, where: str) -> spm.SentencePieceProcessor:
    processor = spm.SentencePieceProcessor()
    try:
        processor.LoadFromSerializedProto(model)
    except (RuntimeError, OSError) as err:
        raise ValueError(f"{where} is not a sentencepiece model: {err}") from err
    if processor.get_piece_size() == 0:
        raise ValueError(f"{where} is not a sentencepiece model (no pieces)")
    return processor


def split_digit_commas(pieces: Sequence[str], encode: Callable[[str], list[str]]) -> list[str]:
    """Separate the comma of pieces that end in ``<digit>,`` (the original XLNet rule).

    Such a piece is re-encoded without its comma (and without ``▁``), its first piece loses
    the ``▁`` that sentencepiece adds if the original piece did not start a word, and the
    comma follows as its own piece.

    Args:
        pieces: sentencepiece pieces.
        encode: str -> list of pieces (the model's plain encoder).

    Returns:
        The pieces, with digit-comma pieces split.

    Example:
        >>> split_digit_commas(["▁a", "▁9,", "000"], lambda s: ["▁" + s])
        ['▁a', '▁9', ',', '000']
    """
    out: list[str] = []
    for piece in pieces:
        if len(piece) > 1 and piece[-1] == "," and piece[-2].isdigit():
            sub = list(encode(piece[:-1].replace(SPIECE_UNDERLINE, "")))
            if sub and piece[0] != SPIECE_UNDERLINE and sub[0][0] == SPIECE_UNDERLINE:
                sub = sub[1:] if len(sub[0]) == 1 else [sub[0][1:], *sub[1:]]
            out.extend(sub)
            out.append(",")
        else:
            out.append(piece)
    return out


def _check_flag(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool; got {type(value).__name__}: {value!r}")


class XLNetTokenizer(PreTrainedTokenizer):
    """XLNet's SentencePiece tokenizer (see the module docstring for the algorithm).

    Args:
        vocab_file: path of the sentencepiece model (``spiece.model``).
        do_lower_case: lower-case the text (False for the cased XLNet models).
        remove_space: collapse whitespace runs and strip the ends.
        keep_accents: keep accents (by default they are removed).
        bos_token, eos_token, unk_token, sep_token, pad_token, cls_token, mask_token: the
            special tokens (XLNet's by default).
        additional_special_tokens: more special tokens, kept whole by the tokenizer.
        enable_sampling: sample segmentations in :meth:`tokenize` by default.
        nbest_size: sampling among this many best segmentations (-1: all).
        alpha: sampling temperature (smoothing of the segmentation scores).
        **kwargs: ``max_len`` / ``model_max_length`` (see :class:`PreTrainedTokenizer`).

    Example:
        >>> tok = XLNetTokenizer("xlnet-base-cased/spiece.model")  # doctest: +SKIP
        >>> tok.tokenize("Hello, 1,000 worlds")  # doctest: +SKIP
        ['▁Hello', ',', '▁1', ',', '000', '▁worlds']
        >>> tok.encode("Hello", "world", add_special_tokens=True)  # doctest: +SKIP
        [17, 11368, 4, 185, 4, 3]

    (``A <sep> B <sep> <cls>`` with the special tokens.)
    """

    vocab_files_names = VOCAB_FILES_NAMES
    padding_side = "left"
    splits_digit_commas: bool = True
    """Apply :func:`split_digit_commas` to the pieces (XLNet's rule; ALBERT's option)."""

    def __init__(
        self,
        vocab_file: str | os.PathLike[str],
        do_lower_case: bool = False,
        remove_space: bool = True,
        keep_accents: bool = False,
        bos_token: str | None = "<s>",
        eos_token: str | None = "</s>",
        unk_token: str | None = "<unk>",
        sep_token: str | None = "<sep>",
        pad_token: str | None = "<pad>",
        cls_token: str | None = "<cls>",
        mask_token: str | None = "<mask>",
        additional_special_tokens: Sequence[str] | None = ("<eop>", "<eod>"),
        enable_sampling: bool = False,
        nbest_size: int = 64,
        alpha: float = 0.1,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            bos_token=bos_token,
            eos_token=eos_token,
            unk_token=unk_token,
            sep_token=sep_token,
            pad_token=pad_token,
            cls_token=cls_token,
            mask_token=mask_token,
            additional_special_tokens=additional_special_tokens,
            **kwargs,
        )
        for name, value in [
            ("do_lower_case", do_lower_case),
            ("remove_space", remove_space),
            ("keep_accents", keep_accents),
            ("enable_sampling", enable_sampling),
        ]:
            _check_flag(name, value)
        if isinstance(nbest_size, bool) or not isinstance(nbest_size, int):
            raise TypeError(f"nbest_size must be an int; got {nbest_size!r}")
        self.do_lower_case = do_lower_case
        self.remove_space = remove_space
        self.keep_accents = keep_accents
        self.enable_sampling = enable_sampling
        self.nbest_size = nbest_size
        self.alpha = float(alpha)
        path = Path(os.fspath(vocab_file))
        if not path.is_file():
            raise FileNotFoundError(f"no sentencepiece model at {path} (expected spiece.model)")
        self.vocab_file = str(path)
        self._model = path.read_bytes()
        self._setup()

    def _setup(self) -> None:
        self.sp_model = _load_processor(self._model, self.vocab_file)
        try:
            self._pieces = [
                self.sp_model.id_to_piece(i) for i in range(self.sp_model.get_piece_size())
            ]
        except UnicodeDecodeError as err:
            raise ValueError(
                f"sentencepiece model {self.vocab_file} holds a piece that is not valid UTF-8 "
                f"({err.reason}): a corrupt model"
            ) from None
        self._piece_ids = {piece: index for index, piece in enumerate(self._pieces)}
        # pieces that end in <digit>, : the only ones split_digit_commas changes
        self._digit_comma_ids = frozenset(
            i
            for i, p in enumerate(self._pieces)
            if self.splits_digit_commas and len(p) > 1 and p[-1] == "," and p[-2].isdigit()
        )

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        for name in ("sp_model", "_pieces", "_piece_ids", "_digit_comma_ids"):
            state.pop(name, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._setup()

    # ------------------------------------------------------------------ vocabulary

    @property
    def vocab_size(self) -> int:
        """Number of pieces of the sentencepiece model."""
        return len(self._pieces)

    def get_vocab(self) -> dict[str, int]:
        """Piece -> id, added tokens included."""
        return {**self._piece_ids, **self.added_tokens_encoder}

    def _convert_token_to_id(self, token: str) -> int | None:
        return self._piece_ids.get(token)

    def _convert_id_to_token(self, index: int) -> str | None:
        return self._pieces[index] if 0 <= index < len(self._pieces) else None

    def _tokens_to_ids(self, tokens: Iterable[str]) -> list[int]:
        if not self.added_tokens_encoder:
            unk = self.unk_token_id
            if unk is not None:
                return list(map(self._piece_ids.get, tokens, repeat(unk)))
        return super()._tokens_to_ids(tokens)

    # ------------------------------------------------------------------ tokenizing

    def preprocess_text(self, inputs: str) -> str:
        """Whitespace, quotes, accents and case, as the original XLNet prepares a text."""
        outputs = " ".join(inputs.strip().split()) if self.remove_space else inputs
        outputs = outputs.replace("``", '"').replace("''", '"')
        if not self.keep_accents and not outputs.isascii():
            outputs = unicodedata.normalize("NFKD", outputs)
            outputs = "".join(c for c in outputs if not unicodedata.combining(c))
        if self.do_lower_case:
            outputs = outputs.lower()
        return outputs

    def tokenize(self, text: str, sample: bool | None = None, seed: int | None = None) -> list[str]:
        """Split a text into sentencepiece pieces; special and added tokens are kept whole.

        Args:
            text: the text.
            sample: draw a segmentation (subword regularisation) instead of the best one;
                None follows ``enable_sampling``.
            seed: reseed sentencepiece's (process-wide) random generator first, so that a
                sampled call is reproducible.

        Returns:
            Pieces (str); word starts carry ``▁``.
        """
        if seed is not None:
            spm.set_random_generator_seed(seed)
        return super().tokenize(text, sample=self.enable_sampling if sample is None else sample)

    def _tokenize(self, text: str, sample: bool = False) -> list[str]:
        text = self.preprocess_text(text)
        sp = self.sp_model
        if sample:
            pieces = sp.encode(
                text,
                out_type=str,
                enable_sampling=True,
                nbest_size=self.nbest_size,
                alpha=self.alpha,
            )
        else:
            pieces = sp.encode(text, out_type=str)
        if not self.splits_digit_commas:
            return pieces
        return split_digit_commas(pieces, self._encode_plain)

    def _text_ids(self, text: Any, name: str) -> list[int]:
        """Ids straight from sentencepiece when nothing else can apply.

        That is: no sampling, no added token, no special token in the text, and no piece
        that the digit-comma rule splits. The ids are those of the pieces' path (the
        vocabulary is the model's, unknown pieces are its unk id), without building the
        piece strings and looking each one up. Like every path, it takes the text through
        :func:`._unicode.text_input` first, so sentencepiece never sees a surrogate
        (which its pybind11 binding rejects with ``RuntimeError: Unable to cast``).
        """
        text = _unicode.text_input(text, name)
        pattern = self._no_split_pattern()
        if (
            self.enable_sampling
            or self.added_tokens_encoder
            or (pattern is not None and pattern.search(text))
        ):
            return super()._text_ids(text, name)
        if pattern is not None and self.strip_around_added_tokens:
            text = text.strip()  # as tokenize() strips the one piece between no tokens
        if not text:
            return []
        ids = self.sp_model.encode(self.preprocess_text(text), out_type=int)
        if self._digit_comma_ids.isdisjoint(ids):
            return ids
        return super()._text_ids(text, name)

    def _encode_plain(self, text: str) -> list[str]:
        return self.sp_model.encode(text, out_type=str)

    def convert_tokens_to_string(self, tokens: list[str]) -> str:
        """Join pieces, ``▁`` becoming a space; the ends are stripped."""
        return "".join(tokens).replace(SPIECE_UNDERLINE, " ").strip()

    # ------------------------------------------------------------------ special tokens

    def _special_id(self, name: str) -> int:
        index = getattr(self, f"{name}_id")
        if index is None:
            raise ValueError(f"XLNet inputs need a {name}, but it is not set")
        return index

    def build_inputs_with_special_tokens(
        self, ids_a: list[int], ids_b: list[int] | None = None
    ) -> list[int]:
        """``A <sep> <cls>`` or ``A <sep> B <sep> <cls>`` (XLNet's special tokens come last)."""
        sep, cls = self._special_id("sep_token"), self._special_id("cls_token")
        if ids_b is None:
            return [*ids_a, sep, cls]
        return [*ids_a, sep, *ids_b, sep, cls]

    def create_token_type_ids(self, ids_a: list[int], ids_b: list[int] | None = None) -> list[int]:
        """0 (``SEG_ID_A``) for ``A <sep>``, 1 for ``B <sep>``, 2 (``SEG_ID_CLS``) for ``<cls>``."""
        types = [SEG_ID_A] * (len(ids_a) + 1)
        if ids_b is not None:
            types += [SEG_ID_B] * (len(ids_b) + 1)
        return [*types, SEG_ID_CLS]

    create_token_type_ids_from_sequences = create_token_type_ids

    def get_special_tokens_mask(
        self,
        ids_a: list[int],
        ids_b: list[int] | None = None,
        already_has_special_tokens: bool = False,
    ) -> list[int]:
        """1 at the positions of ``<sep>`` and ``<cls>`` in the built input, else 0."""
        if already_has_special_tokens:
            return super().get_special_tokens_mask(ids_a, ids_b, True)
        mask = [0] * len(ids_a) + [1]
        if ids_b is not None:
            mask += [0] * len(ids_b) + [1]
        return [*mask, 1]

    def num_special_tokens_to_add(self, pair: bool = False) -> int:
        """2 for one sequence, 3 for a pair."""
        return 3 if pair else 2

    # ------------------------------------------------------------------ files

    def _vocabulary_files(self) -> dict[str, str | bytes]:
        return {VOCAB_FILES_NAMES["vocab_file"]: self._model}

    def _init_config(self) -> dict[str, Any]:
        return {
            "do_lower_case": self.do_lower_case,
            "remove_space": self.remove_space,
            "keep_accents": self.keep_accents,
            "enable_sampling": self.enable_sampling,
            "nbest_size": self.nbest_size,
            "alpha": self.alpha,
        }
