"""Text checks shared by every tokenizer, and BERT's character classes as whole-text operations.

:func:`text_input` is the one gate every tokenizer entry point passes its text through:
the text must be a ``str`` (``bytes`` raise a ``TypeError`` that says how to decode them),
and code points that UTF-8 cannot encode (the surrogates U+D800..U+DFFF, which a ``str``
can hold alone, e.g. from ``surrogateescape`` decoding or sliced UTF-16) become U+FFFD.

The original BERT code (and pytorch-transformers 1.0) tests every character with
``unicodedata.category``. Here the same predicates are evaluated once over the Basic
Multilingual Plane and compiled into regex character classes (which ``re`` turns into
bitmaps), so that cleaning, accent stripping and punctuation splitting each run as one
C-level pass over the text. The rare characters beyond U+FFFF are handled one by one
with ``unicodedata``, after a quick search shows that a text holds any.

:data:`ASCII` serves pure-ASCII text with small precompiled patterns;
:func:`unicode_classes` builds the general one on first use (about 20 ms).
"""

from __future__ import annotations

import functools
import re
import unicodedata

__all__ = [
    "ASCII",
    "REPLACEMENT_CHARACTER",
    "CJK_RANGES",
    "CharClasses",
    "is_chinese_char",
    "is_control",
    "is_punctuation",
    "is_whitespace",
    "text_input",
    "unicode_classes",
]

# CJK Unified Ideographs blocks that BERT surrounds with spaces (inclusive ranges).
CJK_RANGES: tuple[tuple[int, int], ...] = (
    (0x4E00, 0x9FFF),
    (0x3400, 0x4DBF),
    (0x20000, 0x2A6DF),
    (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F),
    (0x2B820, 0x2CEAF),
    (0xF900, 0xFAFF),
    (0x2F800, 0x2FA1F),
)

REPLACEMENT_CHARACTER = "\ufffd"
_SURROGATES = re.compile("[\ud800-\udfff]")
_BYTES_LIKE = (bytes, bytearray, memoryview)


def text_input(text: object, name: str = "text") -> str:
    """Check that ``text`` is a str and make it encodable: each surrogate becomes U+FFFD.

    Every tokenizer calls this on its input text before anything else, so that a lone
    surrogate gives exactly the ids of U+FFFD in its place (whatever each tokenizer
    then does with U+FFFD: BERT's cleaning drops it, GPT-2 encodes its three UTF-8
    bytes, sentencepiece maps it to its piece or ``<unk>``). A surrogate pair held as
    two code points (``"\\ud83d\\ude00"``) becomes two U+FFFD, as each half is
    invalid on its own in UTF-8.

    Args:
        text: the value to check.
        name: the argument's name, for the error message.

    Returns:
        ``text`` itself when it has no surrogate (the usual case, checked at C speed),
        else a copy with U+FFFD in place of each surrogate.

    Raises:
        TypeError: ``text`` is not a str; for bytes the message suggests
            ``.decode("utf-8", errors="replace")``.

    Example:
        >>> text_input("caf\\udce9")
        'caf\ufffd'
        >>> text_input(b"abc")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        TypeError: text must be a str; got bytes: decode it first, e.g. text.decode("utf-8", ...)
    """
    if not isinstance(text, str):
        if isinstance(text, _BYTES_LIKE):
            raise TypeError(
                f"{name} must be a str; got {type(text).__name__}: decode it first, e.g. "
                f'{name}.decode("utf-8", errors="replace")'
            )
        raise TypeError(f"{name} must be a str; got {type(text).__name__}")
    if text.isascii() or _SURROGATES.search(text) is None:
        return text
    return _SURROGATES.sub(REPLACEMENT_CHARACTER, text)


_ASCII_PUNCT = "!-/:-@\\[-`{-~"  # code points 33-47, 58-64, 91-96, 123-126
_ASTRAL = re.compile("[\U00010000-\U0010ffff]")


def is_whitespace(char: str) -> bool:
    """BERT's whitespace: space, tab, newline, carriage return and category Zs."""
    return char in " \t\n\r" or unicodedata.category(char) == "Zs"


def is_control(char: str) -> bool:
    """BERT's control characters: any category C*, except tab, newline, carriage return."""
    return char not in "\t\n\r" and unicodedata.category(char).startswith("C")


def is_punctuation(char: str) -> bool:
    """BERT's punctuation: all non-alphanumeric printable ASCII, and Unicode category P*."""
    cp = ord(char)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(char).startswith("P")


def is_chinese_char(cp: int) -> bool:
    """Whether code point ``cp`` lies in one of the CJK ideograph blocks of :data:`CJK_RANGES`."""
    return any(lo <= cp <= hi for lo, hi in CJK_RANGES)


def _dropped(char: str) -> bool:
    return ord(char) in (0, 0xFFFD) or is_control(char)


def _char_class(codepoints: list[int]) -> str:
    """Regex character-class body for a sorted list of code points, written as ranges."""
    parts: list[str] = []
    start = prev = -2
    for cp in [*codepoints, -2]:
        if cp == prev + 1:
            prev = cp
            continue
        if start >= 0:
            parts.append(f"\\U{start:08x}" if start == prev else f"\\U{start:08x}-\\U{prev:08x}")
        start = prev = cp
    return "".join(parts)


class CharClasses:
    """BERT's character-class operations for one repertoire of text.

    Args:
        drop: pattern of runs of characters removed by cleaning.
        marks: pattern of runs of non-spacing marks (category Mn), or None (ASCII).
        cjk: pattern of one CJK ideograph, or None (ASCII).
        words: pattern whose ``findall`` gives the basic tokens: one punctuation
            character, or a run of characters that are neither punctuation nor whitespace.
        astral: also handle characters beyond U+FFFF (the patterns cover only the BMP).
    """

    def __init__(
        self,
        drop: re.Pattern[str],
        marks: re.Pattern[str] | None,
        cjk: re.Pattern[str] | None,
        words: re.Pattern[str],
        astral: bool,
    ) -> None:
        self._drop = drop
        self._marks = marks
        self._cjk = cjk
        self._words = words
        self._astral = astral

    def clean(self, text: str) -> str:
        """Remove NUL, U+FFFD and control characters (tab, newline, return are kept)."""
        text = self._drop.sub("", text)
        if self._astral and _ASTRAL.search(text):
            text = _ASTRAL.sub(lambda m: "" if _dropped(m.group()) else m.group(), text)
        return text

    def space_cjk(self, text: str) -> str:
        """Surround every CJK ideograph with spaces."""
        return text if self._cjk is None else self._cjk.sub(r" \g<0> ", text)

    def strip_accents(self, text: str) -> str:
        """NFD-decompose, then remove the non-spacing marks (category Mn)."""
        if self._marks is None:
            return text
        text = self._marks.sub("", unicodedata.normalize("NFD", text))
        if self._astral and _ASTRAL.search(text):
            text = _ASTRAL.sub(
                lambda m: "" if unicodedata.category(m.group()) == "Mn" else m.group(), text
            )
        return text

    def split_words(self, text: str) -> list[str]:
        """Split on whitespace, and around every punctuation character."""
        if self._astral and _ASTRAL.search(text):
            text = _ASTRAL.sub(
                lambda m: f" {m.group()} " if is_punctuation(m.group()) else m.group(), text
            )
        return self._words.findall(text)


ASCII = CharClasses(
    drop=re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]+"),
    marks=None,
    cjk=None,
    words=re.compile(f"[{_ASCII_PUNCT}]|[^{_ASCII_PUNCT}\\s]+"),
    astral=False,
)


@functools.cache
def unicode_classes() -> CharClasses:
    """The :class:`CharClasses` for any text, built from ``unicodedata`` on first use.

    Returns:
        Operations equal to BERT's per-character predicates for every code point of this
        Python's Unicode database (tested against the character-by-character definitions).
    """
    drop: list[int] = []
    marks: list[int] = []
    punct: list[int] = []
    space: list[int] = []
    for cp in range(0x10000):
        char = chr(cp)
        if _dropped(char):
            drop.append(cp)
        elif unicodedata.category(char) == "Mn":
            marks.append(cp)
        if is_punctuation(char):
            punct.append(cp)
        if char.isspace():  # str.split() separates on isspace(); BERT's whitespace is a subset
            space.append(cp)
    punct_class = _char_class(punct)
    cjk_class = "".join(f"\\U{lo:08x}-\\U{hi:08x}" for lo, hi in sorted(CJK_RANGES))
    return CharClasses(
        drop=re.compile(f"[{_char_class(drop)}]+"),
        marks=re.compile(f"[{_char_class(marks)}]+"),
        cjk=re.compile(f"[{cjk_class}]"),
        words=re.compile(f"[{punct_class}]|[^{punct_class}{_char_class(space)}]+"),
        astral=True,
    )
