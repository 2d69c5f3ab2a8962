"""Transformer-XL's word-level tokenizer, and the ordered batches of its language-model corpus.

The vocabulary is a list of symbols, id = position. It is built by counting the symbols of
files or sentences (:meth:`TransfoXLTokenizer.count_file`, :meth:`~TransfoXLTokenizer.count_sents`)
and keeping the ``special`` symbols first, then the others by decreasing count (ties in
first-seen order) while the count is at least ``min_freq``, at most ``max_size`` of them
(:meth:`~TransfoXLTokenizer.build_vocab`); or it is read from a file, one symbol per line.
A line is tokenized by stripping it, lower-casing it if asked, and splitting it on
``delimiter`` (None: any whitespace); ``add_eos`` appends ``<eos>``, ``add_double_eos``
wraps the line in ``<S>``. Encoding is one dict lookup per symbol; symbols outside the
vocabulary become ``<unk>``.

Files. :meth:`~TransfoXLTokenizer.save_pretrained` writes the vocabulary as ``vocab.txt``
(one symbol per line, the file pytorch-transformers 1.0 reads as ``vocab_file``), or as
``vocab.json`` (a JSON list) when a symbol holds whitespace or is empty (character-level
vocabularies hold ``" "``), plus ``tokenizer_config.json`` with the options. Nothing is
pickled. A 1.0 ``vocab.bin`` (``torch.save`` of the tokenizer's ``__dict__``) is read with
``torch.load(weights_only=True)``, whose unpickler builds only plain containers, strings,
numbers, ``Counter`` and ``OrderedDict``; a file that needs anything else (a class, a
function: what a malicious pickle does) is refused with a ``ValueError`` explaining how to
convert it.

Differences from pytorch-transformers 1.0 (ids are otherwise identical, see the tests):

- ``add_eos`` / ``add_double_eos`` mark the end of the *line*. 1.0 applied them to every
  piece between special tokens, so a line holding ``<unk>`` got an ``<eos>`` before each
  ``<unk>`` too, and a blank line got none (its special-token split drops empty pieces).
  This port gives what 1.0 gives without special tokens, i.e. the original
  Transformer-XL code: one ``<eos>`` per line, blank lines included.
- ``delimiter=""`` splits into characters (1.0 returned the string itself, which then
  failed to take ``<eos>``).
- A token outside the vocabulary with no ``<unk>`` raises ``ValueError`` naming the token
  (1.0 raised a ``ValueError`` without it); ids outside the vocabulary raise ``ValueError``
  (1.0: ``AssertionError``).
- No ``<sym>_idx`` attributes (``unk_idx``, ``eos_idx``); use ``convert_tokens_to_ids``.
- :class:`LMOrderedIterator` takes the random generator of its variable-length mode as an
  argument (``rng``) instead of using NumPy's global one implicitly.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from itertools import repeat
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import _unicode
from ._files import not_utf8, read_json, read_saved_config
from ._plain_pickle import load_plain_pickle
from .base import PreTrainedTokenizer

__all__ = ["LMOrderedIterator", "TransfoXLTokenizer", "batchify"]

logger = logging.getLogger(__name__)

VOCAB_FILES_NAMES = {"pretrained_vocab_file": "vocab.bin", "vocab_file": "vocab.txt"}
VOCAB_JSON_FILE = "vocab.json"
VOCAB_PKL_FILE = "vocab.pkl"  # transformers 4's name (a plain pickle)
EOS = "<eos>"
DOUBLE_EOS = "<S>"
_UNK_FALLBACKS = ("<unk>", "<UNK>")
_DEFAULT_ADDITIONAL = ("<formula>",)
# options of the tokenizer that a 1.0 vocab.bin holds (the rest of its __dict__ is ignored)
_BIN_OPTIONS = ("special", "min_freq", "max_size", "lower_case", "delimiter")


def _check_delimiter(delimiter: Any) -> None:
    if delimiter is not None and not isinstance(delimiter, str):
        raise TypeError(f"delimiter must be a str or None; got {type(delimiter).__name__}")


def _symbols_from_text_file(path: Path) -> list[str]:
    """First column of each line, as pytorch-transformers 1.0 reads ``vocab_file``."""
    symbols = []
    try:
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                fields = line.split()
                if not fields:
                    raise ValueError(
                        f"vocabulary file {path}, line {number}: empty line (expected one "
                        "symbol per line; a vocabulary with whitespace symbols is saved as "
                        "vocab.json)"
                    )
                symbols.append(fields[0])
    except UnicodeDecodeError as err:
        raise not_utf8(path, "vocabulary file", err) from None
    return symbols


def _symbols_from_json_file(path: Path) -> list[str]:
    data = read_json(path, "vocabulary file")
    if not isinstance(data, list) or not all(isinstance(s, str) for s in data):
        raise ValueError(f"vocabulary file {path} must hold a JSON list of str (id order)")
    return data


def read_vocab_bin(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a pytorch-transformers 1.0 ``vocab.bin`` without running pickled code.

    Args:
        path: the file (``torch.save`` of a ``TransfoXLTokenizer.__dict__``, new zip or
            legacy format).

    Returns:
        The saved dict; its ``idx2sym`` is checked to be a list of distinct str.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not a torch-saved dict of plain values (a class or a
            function inside is refused), or has no usable ``idx2sym``.
    """
    path = Path(os.fspath(path))
    if not path.is_file():
        raise FileNotFoundError(f"no Transformer-XL vocab.bin at {path}")
    try:
        if path.suffix == ".pkl":  # transformers' vocab.pkl: a plain pickle of __dict__
            state = load_plain_pickle(path.read_bytes())
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, AttributeError, ValueError) as err:
        raise ValueError(
            f"{path} cannot be read safely: ptfunc reads a pytorch-transformers 1.0 vocab.bin "
            "with torch.load(weights_only=True), which refuses pickles that hold anything but "
            "plain lists, dicts, strings, numbers, Counter and OrderedDict. If you trust the "
            "file, convert it once with pytorch-transformers 1.0: "
            "`tok = TransfoXLTokenizer(pretrained_vocab_file=path)` then write "
            "`'\\n'.join(tok.idx2sym)` to vocab.txt, and load that directory instead. "
            f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})"
        ) from err
    if not isinstance(state, Mapping):
        raise ValueError(f"{path} must hold a dict (a 1.0 tokenizer state); got {type(state)}")
    symbols = state.get("idx2sym")
    if not isinstance(symbols, list) or not all(isinstance(s, str) for s in symbols):
        raise ValueError(f"{path} has no idx2sym list of str: not a Transformer-XL vocabulary")
    if len(set(symbols)) != len(symbols):
        raise ValueError(f"{path}: idx2sym repeats a symbol (corrupt vocabulary)")
    return dict(state)


class TransfoXLTokenizer(PreTrainedTokenizer):
    """Transformer-XL's word-level tokenizer (pytorch-transformers 1.0 API).

    Args:
        special: symbols placed first in a vocabulary built from counts (e.g.
            ``["<unk>", "<eos>"]``).
        min_freq: keep symbols seen at least this often (counted vocabularies).
        max_size: keep at most this many counted symbols (None: no limit; the special
            symbols come on top).
        lower_case: lower-case every line before splitting.
        delimiter: split lines on this string; None splits on any whitespace run,
            ``""`` into characters.
        vocab_file: a vocabulary file, one symbol per line (first column used), or a
            ``.json`` list; it must hold ``<unk>`` or ``<UNK>``.
        pretrained_vocab_file: a pytorch-transformers 1.0 ``vocab.bin``; its vocabulary,
            counts and options replace the arguments (as in 1.0).
        never_split: accepted for 1.0 compatibility and unused (as in 1.0): added and
            special tokens are the ones kept whole.
        unk_token, eos_token, additional_special_tokens: special tokens (not split by
            ``tokenize``).
        **kwargs: ``max_len`` / ``model_max_length`` and other special tokens
            (see :class:`PreTrainedTokenizer`).

    Example:
        >>> tok = TransfoXLTokenizer(special=["<unk>", "<eos>"], lower_case=True)
        >>> _ = tok.count_sents([["a", "b", "a"], ["c", "a", "b"]])
        >>> tok.build_vocab()
        >>> tok.idx2sym
        ['<unk>', '<eos>', 'a', 'b', 'c']
        >>> tok.tokenize("A  b D", add_eos=True)
        ['a', 'b', 'd', '<eos>']
        >>> tok.encode("A  b D")
        [2, 3, 0]
    """

    vocab_files_names = VOCAB_FILES_NAMES
    optional_vocab_files = frozenset(VOCAB_FILES_NAMES.values())
    hub_files = (("vocab.bin", VOCAB_PKL_FILE, "vocab.txt", VOCAB_JSON_FILE),)
    model_input_names = ("input_ids",)

    def __init__(
        self,
        special: Sequence[str] | None = None,
        min_freq: int = 0,
        max_size: int | None = None,
        lower_case: bool = False,
        delimiter: str | None = None,
        vocab_file: str | os.PathLike[str] | None = None,
        pretrained_vocab_file: str | os.PathLike[str] | None = None,
        never_split: Iterable[str] | None = None,
        unk_token: str | None = "<unk>",
        eos_token: str | None = EOS,
        additional_special_tokens: Sequence[str] | None = _DEFAULT_ADDITIONAL,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            unk_token=unk_token,
            eos_token=eos_token,
            additional_special_tokens=additional_special_tokens,
            **kwargs,
        )
        if special is not None and (isinstance(special, str) or not isinstance(special, Iterable)):
            raise TypeError(f"special must be a list of str; got {type(special).__name__}")
        _check_delimiter(delimiter)
        self.counter: Counter[str] = Counter()
        self.special: list[str] = list(special or [])
        self.min_freq = min_freq
        self.max_size = max_size
        self.lower_case = bool(lower_case)
        self.delimiter = delimiter
        self.vocab_file = None if vocab_file is None else os.fspath(vocab_file)
        self.never_split = list(never_split) if never_split is not None else self.all_special_tokens
        self.idx2sym: list[str] = []
        self.sym2idx: dict[str, int] = {}
        if pretrained_vocab_file is not None:
            self._load_vocab_bin(pretrained_vocab_file)
        if self.vocab_file is not None:
            self.build_vocab()

    def _load_vocab_bin(self, path: str | os.PathLike[str]) -> None:
        state = read_vocab_bin(path)
        for name in _BIN_OPTIONS:
            if name in state:
                setattr(self, name, state[name])
        _check_delimiter(self.delimiter)
        self.special = list(self.special or [])
        counter = state.get("counter")
        if isinstance(counter, Mapping):
            self.counter = Counter(counter)
        self._set_symbols(state["idx2sym"])

    def _set_symbols(self, symbols: Iterable[str]) -> None:
        self.idx2sym = []
        self.sym2idx = {}
        for sym in symbols:
            self.add_symbol(sym)

    # ------------------------------------------------------------------ counting, building

    def count_file(
        self, path: str | os.PathLike[str], verbose: bool = False, add_eos: bool = False
    ) -> list[list[str]]:
        """Count the symbols of a UTF-8 text file, line by line.

        Args:
            path: the file.
            verbose: log progress every 500,000 lines.
            add_eos: count an ``<eos>`` per line.

        Returns:
            The tokenized lines (list of list of str).

        Raises:
            FileNotFoundError: no such file.
            ValueError: the file is not valid UTF-8 (nothing is counted then).
        """
        sents = list(self._tokenized_lines(path, verbose, add_eos, False))
        for symbols in sents:
            self.counter.update(symbols)
        return sents

    def count_sents(self, sents: Iterable[Sequence[str]], verbose: bool = False) -> None:
        """Count the symbols of already tokenized sentences (each a list of str)."""
        for index, symbols in enumerate(sents):
            if verbose and index > 0 and index % 500_000 == 0:
                logger.info("    line %d", index)
            self.counter.update(symbols)

    def build_vocab(self) -> None:
        """(Re)build the vocabulary, from ``vocab_file`` if set, else from the counts.

        From counts: the ``special`` symbols first, then the counted symbols by decreasing
        count (first-seen order among equal counts), stopping at the first count below
        ``min_freq`` or after ``max_size`` symbols.

        Raises:
            ValueError: ``vocab_file`` has no ``<unk>`` / ``<UNK>`` symbol, or is malformed.
            FileNotFoundError: ``vocab_file`` does not exist.
        """
        if self.vocab_file:
            path = Path(self.vocab_file)
            if not path.is_file():
                raise FileNotFoundError(f"no Transformer-XL vocabulary file at {path}")
            logger.info("building vocab from %s", path)
            reader = _symbols_from_json_file if path.suffix == ".json" else _symbols_from_text_file
            self._set_symbols(reader(path))
            if not any(s in self.sym2idx for s in _UNK_FALLBACKS):
                raise ValueError(
                    f"vocabulary file {path} has no <unk> (or <UNK>) symbol; a Transformer-XL "
                    "vocabulary read from a file must have one for unknown words"
                )
            logger.info("final vocab size %d", len(self))
            return
        logger.info("building vocab with min_freq=%s, max_size=%s", self.min_freq, self.max_size)
        self._set_symbols(self.special)
        for sym, count in self.counter.most_common(self.max_size):
            if count < self.min_freq:
                break
            self.add_symbol(sym)
        logger.info("final vocab size %d from %d unique tokens", len(self), len(self.counter))

    def add_special(self, sym: str) -> None:
        """Append a symbol to the vocabulary unless present (1.0 name for special symbols)."""
        self.add_symbol(sym)

    def add_symbol(self, sym: str) -> None:
        """Append a symbol to the vocabulary unless it is already there."""
        if not isinstance(sym, str):
            raise TypeError(f"symbols must be str; got {type(sym).__name__}: {sym!r}")
        if sym not in self.sym2idx:
            self.sym2idx[sym] = len(self.idx2sym)
            self.idx2sym.append(sym)

    # ------------------------------------------------------------------ tokenizing

    def _tokenize(self, line: str) -> list[str]:
        line = line.strip()
        if self.lower_case:
            line = line.lower()
        if self.delimiter == "":
            return list(line)
        return line.split(self.delimiter)

    def tokenize(self, text: str, add_eos: bool = False, add_double_eos: bool = False) -> list[str]:
        """Split a line into symbols.

        The line is cut around added and special tokens (kept whole); each other piece is
        stripped, lower-cased if ``lower_case``, and split on ``delimiter``. A line
        without special tokens is split as a whole, as in the original Transformer-XL.

        Args:
            text: one line.
            add_eos: append ``<eos>``.
            add_double_eos: wrap the line in ``<S>`` (1B-word style); wins over ``add_eos``.

        Returns:
            Symbols (str).
        """
        text = _unicode.text_input(text, "text")
        pattern = self._no_split_pattern()
        parts = [text] if pattern is None else pattern.split(text)
        if len(parts) == 1:
            symbols = self._tokenize(text)
        else:
            symbols = []
            for i, piece in enumerate(parts):
                if i % 2:
                    symbols.append(piece)
                elif piece.strip():
                    symbols.extend(self._tokenize(piece))
        if add_double_eos:
            return [DOUBLE_EOS, *symbols, DOUBLE_EOS]
        if add_eos:
            symbols.append(EOS)
        return symbols

    def _tokenized_lines(
        self, path: str | os.PathLike[str], verbose: bool, add_eos: bool, add_double_eos: bool
    ) -> Iterator[list[str]]:
        path = Path(os.fspath(path))
        if not path.is_file():
            raise FileNotFoundError(f"no text file at {path}")
        if verbose:
            logger.info("reading file %s ...", path)
        try:
            with open(path, encoding="utf-8") as handle:  # universal newlines, as 1.0
                for index, line in enumerate(handle):
                    if verbose and index > 0 and index % 500_000 == 0:
                        logger.info("    line %d", index)
                    yield self.tokenize(line, add_eos=add_eos, add_double_eos=add_double_eos)
        except UnicodeDecodeError as err:
            raise not_utf8(path, "text file", err) from None

    # ------------------------------------------------------------------ ids

    @property
    def vocab_size(self) -> int:
        """Number of symbols of the vocabulary (added tokens not included)."""
        return len(self.idx2sym)

    def get_vocab(self) -> dict[str, int]:
        """Symbol -> id, added tokens included."""
        return {**self.sym2idx, **self.added_tokens_encoder}

    def _convert_token_to_id(self, token: str) -> int | None:
        return self.sym2idx.get(token)

    def _convert_id_to_token(self, index: int) -> str | None:
        return self.idx2sym[index] if 0 <= index < len(self.idx2sym) else None

    def _unk_index(self) -> int | None:
        """Id used for unknown symbols: ``unk_token``'s, else ``<unk>``'s or ``<UNK>``'s."""
        unk = self.unk_token
        if unk is not None:
            index = self.added_tokens_encoder.get(unk, self.sym2idx.get(unk))
            if index is not None:
                return index
        for sym in _UNK_FALLBACKS:
            if sym in self.sym2idx:
                return self.sym2idx[sym]
        return None

    def _unknown_token_id(self, token: str) -> int:
        index = self._unk_index()
        if index is None:
            raise ValueError(
                f"symbol {token!r} is not in the vocabulary ({self.vocab_size} symbols), and the "
                f"vocabulary has no unknown symbol ({self.unk_token!r}, <unk> or <UNK>) to "
                "replace it; add one to `special` before build_vocab()"
            )
        return index

    def _tokens_to_ids(self, tokens: Iterable[str]) -> list[int]:
        if not self.added_tokens_encoder:
            unk = self._unk_index()
            if unk is not None:
                return list(map(self.sym2idx.get, tokens, repeat(unk)))
        return super()._tokens_to_ids(tokens)

    def convert_to_tensor(self, symbols: Iterable[str]) -> torch.Tensor:
        """Ids of symbols as an int64 tensor of shape (len(symbols),)."""
        return torch.tensor(self._tokens_to_ids(symbols), dtype=torch.int64)

    def encode_file(
        self,
        path: str | os.PathLike[str],
        ordered: bool = False,
        verbose: bool = False,
        add_eos: bool = True,
        add_double_eos: bool = False,
    ) -> torch.Tensor | list[torch.Tensor]:
        """Ids of every line of a UTF-8 text file.

        Args:
            path: the file.
            ordered: return one int64 tensor of shape (total,) (the lines concatenated, the
                input of :class:`LMOrderedIterator`) instead of one tensor per line.
            verbose: log progress.
            add_eos: end each line with ``<eos>``.
            add_double_eos: wrap each line in ``<S>``.

        Returns:
            A 1-D int64 tensor if ``ordered``, else a list of 1-D int64 tensors, one per line.

        Raises:
            FileNotFoundError: no such file.
            ValueError: a symbol is unknown and there is no ``<unk>``, or the file is not
                valid UTF-8.
        """
        lines = self._tokenized_lines(path, verbose, add_eos, add_double_eos)
        if ordered:
            ids: list[int] = []
            for symbols in lines:
                ids.extend(self._tokens_to_ids(symbols))
            return torch.tensor(ids, dtype=torch.int64)
        return [self.convert_to_tensor(symbols) for symbols in lines]

    def encode_sents(
        self, sents: Iterable[Sequence[str]], ordered: bool = False, verbose: bool = False
    ) -> torch.Tensor | list[torch.Tensor]:
        """Ids of tokenized sentences: one int64 tensor per sentence, or one concatenated
        tensor of shape (total,) if ``ordered``."""
        if ordered:
            ids: list[int] = []
            for symbols in sents:
                ids.extend(self._tokens_to_ids(symbols))
            return torch.tensor(ids, dtype=torch.int64)
        return [self.convert_to_tensor(symbols) for symbols in sents]

    def convert_tokens_to_string(self, tokens: list[str]) -> str:
        """Symbols joined by single spaces."""
        return " ".join(tokens).strip()

    # ------------------------------------------------------------------ files

    def _vocabulary_files(self) -> dict[str, str | bytes]:
        if not self.idx2sym:
            raise ValueError("the vocabulary is empty: count symbols and call build_vocab() first")
        if all(sym.split() == [sym] for sym in self.idx2sym):
            return {VOCAB_FILES_NAMES["vocab_file"]: "".join(s + "\n" for s in self.idx2sym)}
        return {VOCAB_JSON_FILE: json.dumps(self.idx2sym, ensure_ascii=False) + "\n"}

    def _init_config(self) -> dict[str, Any]:
        return {
            "special": self.special,
            "min_freq": self.min_freq,
            "max_size": self.max_size,
            "lower_case": self.lower_case,
            "delimiter": self.delimiter,
        }

    @classmethod
    def from_pretrained(
        cls, pretrained_path: str | os.PathLike[str], **kwargs: Any
    ) -> TransfoXLTokenizer:
        """Load a tokenizer saved by :meth:`save_pretrained` or by pytorch-transformers 1.0.

        Args:
            pretrained_path: a directory holding ``vocab.txt`` (1.0's text vocabulary or
                ours), ``vocab.json`` (ours) or ``vocab.bin`` (1.0's, read without running
                pickled code), plus the optional JSON files of :class:`PreTrainedTokenizer`;
                or the path of one such vocabulary file.
            **kwargs: constructor arguments; they override the files.

        Returns:
            The tokenizer.

        Raises:
            FileNotFoundError: no vocabulary file there.
            ValueError: a file is malformed, or ``vocab.bin`` holds more than plain data.
        """
        path = Path(os.fspath(cls._resolve_pretrained(pretrained_path, kwargs)))
        if path.is_file():
            arg = "pretrained_vocab_file" if path.suffix in (".bin", ".pkl") else "vocab_file"
            return cls(**{arg: str(path), **kwargs})
        names = [VOCAB_JSON_FILE, VOCAB_PKL_FILE, *VOCAB_FILES_NAMES.values()]
        if not path.is_dir() or not any((path / name).is_file() for name in names):
            where = "directory" if path.is_dir() else "no directory or file at"
            raise FileNotFoundError(
                f"TransfoXLTokenizer.from_pretrained: {where} {path} "
                f"{'has no vocabulary ' if path.is_dir() else ''}(expected a directory holding "
                f"one of {', '.join(names)})"
            )
        files = {arg: str(path / name) for arg, name in VOCAB_FILES_NAMES.items()}
        files = {arg: file for arg, file in files.items() if Path(file).is_file()}
        if "pretrained_vocab_file" not in files and (path / VOCAB_PKL_FILE).is_file():
            files["pretrained_vocab_file"] = str(path / VOCAB_PKL_FILE)
        if "vocab_file" not in files and (path / VOCAB_JSON_FILE).is_file():
            files["vocab_file"] = str(path / VOCAB_JSON_FILE)
        config, added = read_saved_config(path, cls._accepted_init_args())
        tokenizer = cls(**{**files, **config, **kwargs})
        # unlike the other families, special tokens missing from the vocabulary are not
        # appended (as in 1.0): Transformer-XL maps them to <unk>
        tokenizer._restore_added_tokens(added, where=str(path))
        return tokenizer


# ---------------------------------------------------------------------- LM batches


def batchify(data: torch.Tensor, bsz: int) -> torch.Tensor:
    """Cut a stream of ids into ``bsz`` contiguous streams, batch-first.

    Args:
        data: int64 tensor of shape (n,).
        bsz: number of streams.

    Returns:
        Tensor of shape (bsz, n // bsz); row b is ``data[b * n_step:(b + 1) * n_step]``
        (the last ``n % bsz`` ids are dropped).

    Example:
        >>> batchify(torch.arange(7), 2)
        tensor([[0, 1, 2],
                [3, 4, 5]])
    """
    if not isinstance(data, torch.Tensor) or data.dim() != 1:
        shape = tuple(data.shape) if isinstance(data, torch.Tensor) else type(data).__name__
        raise ValueError(f"data must be a 1-D tensor of ids; got {shape}")
    if data.dtype.is_floating_point or data.dtype.is_complex or data.dtype == torch.bool:
        raise TypeError(f"data must hold integer ids; got dtype {data.dtype}")
    if isinstance(bsz, bool) or not isinstance(bsz, int) or bsz < 1:
        raise ValueError(f"bsz must be a positive int; got {bsz!r}")
    n_step = data.size(0) // bsz
    return data[: n_step * bsz].reshape(bsz, n_step)


class LMOrderedIterator:
    """Language-model batches over an ordered stream of ids (pytorch-transformers 1.0's).

    The stream is cut into ``bsz`` contiguous rows (:func:`batchify`); a batch starting at
    column ``i`` holds ``seq_len = min(bptt, n_step - 1 - i)`` targets. Batches are
    batch-first, as 1.0 yields them:

    - ``data``: int64 (bsz, seq_len + min(i, ext_len)), columns ``i - ext_len .. i + seq_len``
      (the ``ext_len`` extra columns of context come first);
    - ``target``: int64 (bsz, seq_len), columns ``i + 1 .. i + seq_len`` (data shifted by one);
    - ``seq_len``: int.

    The iterator holds no position: each ``iter()`` starts over, and batches are views of
    the streams moved to ``device`` (contiguous copies).

    Args:
        data: int64 tensor of shape (n,) (e.g. ``encode_file(path, ordered=True)``).
        bsz: batch size (number of streams).
        bptt: targets per batch.
        device: device of the yielded tensors (default: the data's).
        ext_len: extra context columns before each batch (None: 0).

    Example:
        >>> it = LMOrderedIterator(torch.arange(10), bsz=2, bptt=2)
        >>> [(d.tolist(), t.tolist(), n) for d, t, n in it]
        [([[0, 1], [5, 6]], [[1, 2], [6, 7]], 2), ([[2, 3], [7, 8]], [[3, 4], [8, 9]], 2)]
    """

    def __init__(
        self,
        data: torch.Tensor,
        bsz: int,
        bptt: int,
        device: torch.device | str | None = None,
        ext_len: int | None = None,
    ) -> None:
        if isinstance(bptt, bool) or not isinstance(bptt, int) or bptt < 1:
            raise ValueError(f"bptt must be a positive int; got {bptt!r}")
        ext_len = 0 if ext_len is None else ext_len
        if isinstance(ext_len, bool) or not isinstance(ext_len, int) or ext_len < 0:
            raise ValueError(f"ext_len must be a non-negative int; got {ext_len!r}")
        self.bsz = bsz
        self.bptt = bptt
        self.ext_len = ext_len
        self.device = data.device if device is None else torch.device(device)
        self.streams = batchify(data, bsz)
        self.n_step = self.streams.size(1)
        # 1.0's count; the fixed-length iteration yields len(self) batches
        self.n_batch = (self.n_step + bptt - 1) // bptt

    def get_batch(self, i: int, bptt: int | None = None) -> tuple[torch.Tensor, torch.Tensor, int]:
        """The batch whose first target column is ``i + 1`` (see the class docstring)."""
        bptt = self.bptt if bptt is None else bptt
        seq_len = min(bptt, self.n_step - 1 - i)
        begin = max(0, i - self.ext_len)
        data = self.streams[:, begin : i + seq_len]
        target = self.streams[:, i + 1 : i + 1 + seq_len]
        return data.to(self.device).contiguous(), target.to(self.device).contiguous(), seq_len

    def get_fixlen_iter(self, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor, int]]:
        """Batches of ``bptt`` targets (the last may be shorter), from column ``start``."""
        for i in range(start, self.n_step - 1, self.bptt):
            yield self.get_batch(i)

    def get_varlen_iter(
        self,
        start: int = 0,
        std: float = 5,
        min_len: int = 5,
        max_deviation: int = 3,
        rng: int | np.random.RandomState | np.random.Generator | None = None,
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor, int]]:
        """Batches of random lengths, as 1.0 (and the Transformer-XL paper) draw them.

        Each length is ``bptt`` (or ``bptt / 2`` with probability 0.05) plus Gaussian noise
        of std ``std``, clipped to ``[min_len, bptt + max_deviation * std]``.

        Args:
            start: first column.
            std, min_len, max_deviation: the length distribution.
            rng: NumPy generator for the lengths; an int seeds a ``RandomState`` (the same
                draws as 1.0 after ``np.random.seed(seed)``); None uses NumPy's global
                generator, as 1.0 did.
        """
        if rng is None:
            rng = np.random  # the module's functions draw from NumPy's global generator
        elif isinstance(rng, int):
            rng = np.random.RandomState(rng)
        max_len = self.bptt + max_deviation * std
        i = start
        while True:
            bptt = self.bptt if rng.random() < 0.95 else self.bptt / 2.0
            bptt = int(min(max_len, max(min_len, int(rng.normal(bptt, std)))))
            data, target, seq_len = self.get_batch(i, bptt)
            i += seq_len
            yield data, target, seq_len
            if i >= self.n_step - 2:
                break

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, int]]:
        return self.get_fixlen_iter()

    def __len__(self) -> int:
        return max(0, -(-(self.n_step - 1) // self.bptt))
