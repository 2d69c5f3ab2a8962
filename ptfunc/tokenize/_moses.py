"""Moses-style punctuation normalisation and word splitting, as today's XLM tokenizer uses.

Today's ``transformers.XLMTokenizer`` runs, for European languages, the three Moses
scripts ``replace-unicode-punctuation.perl``, ``normalize-punctuation.perl`` and
``tokenizer.perl`` (through their Python port, sacremoses, with ``escape=False``), then
drops non-printing characters. This module states those steps as tables of
``(pattern, replacement)`` applied in order with the ``regex`` module, plus the two steps
that are not plain substitutions (runs of dots, and the nonbreaking-prefix check).

Character classes follow the Perl Unicode tables sacremoses ships: letters and digits
(``ALNUM``), letters (``ALPHA``), numbers (``NUMBER``) and lower-case letters (``LOWER``).
Those tables predate CJK ideographs and Hangul syllables being listed as letters, so the
classes here leave those ranges out too. Characters added to Unicode after those tables
(recent scripts and symbols) are letters here and not there: a known, rare difference.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Iterable

import regex

__all__ = [
    "NONBREAKING_PREFIXES",
    "moses_pipeline",
    "moses_tokenize",
    "normalize_punctuation",
    "remove_non_printing_char",
    "replace_unicode_punct",
]

Rule = tuple[str, str]

# ---------------------------------------------------------------- character classes

# CJK ideographs and Hangul syllables: absent from the Perl letter tables sacremoses uses.
_NOT_LETTERS_THERE = (
    r"\u3400-\u4dbf\u4e00-\u9fff\uab70-\uabbf\uac00-\ud7a3\uf900-\ufaff\U00020000-\U0003ffff"
)
# Indic signs (virama, nukta) that sacremoses adds to its letter classes; U+135F and
# U+25CC were letters in the older Unicode data of those tables.
_EXTRA_LETTERS = r"\u094d\u09cd\u0a4d\u0acd\u0b4d\u0bcd\u0c4d\u0ccd\u0d4d\u0dca\u0e3a\u0f84"
_EXTRA_LETTERS += r"\u093c\u09bc\u0a3c\u0abc\u0b3c\u0cbc\u135f\u25cc"
ALPHA = rf"[\p{{Alphabetic}}{_EXTRA_LETTERS}--[{_NOT_LETTERS_THERE}]]"
ALNUM = rf"[\p{{Alphabetic}}\p{{Nd}}{_EXTRA_LETTERS}--[{_NOT_LETTERS_THERE}]]"
NUMBER = r"\p{N}"
LOWER = r"\p{Lowercase}"


def _compile(rules: Iterable[Rule]) -> list[tuple[regex.Pattern[str], str]]:
    return [(regex.compile(p, regex.V1), r) for p, r in rules]


def _apply(rules: list[tuple[regex.Pattern[str], str]], text: str) -> str:
    for pattern, replacement in rules:
        text = pattern.sub(replacement, text)
    return text


# ---------------------------------------------------------------- replace-unicode-punctuation

REPLACE_UNICODE_PUNCT: list[Rule] = [
    # CJK / full-width punctuation to ASCII
    ("，", ","),
    (r"。\s*", ". "),  # ideographic full stop: a period and one space
    ("、", ","),
    ("[”“]", '"'),  # curly double quotes
    ("[∶：]", ":"),
    ("？", "?"),
    ("[《》」「]", '"'),  # CJK quotation brackets become plain quotes
    ("）", ")"),
    ("！", "!"),
    ("（", "("),
    ("；", ";"),
    (r"．\s*", ". "),  # full-width full stop
    ("～", "~"),
    ("’", "'"),
    ("…", "..."),
    ("━", "-"),
    ("〈", "<"),
    ("〉", ">"),
    ("【", "["),
    ("】", "]"),
    ("％", "%"),
]
_REPLACE_UNICODE_PUNCT = _compile(REPLACE_UNICODE_PUNCT)
# full-width digits ０..９ to ASCII
_FULLWIDTH_DIGITS = {0xFF10 + d: str(d) for d in range(10)}


def replace_unicode_punct(text: str) -> str:
    """Full-width and CJK punctuation and digits to ASCII (Moses' replace-unicode-punctuation).

    Example:
        >>> replace_unicode_punct("「１２％」。")
        '"12%". '
    """
    return _apply(_REPLACE_UNICODE_PUNCT, text.translate(_FULLWIDTH_DIGITS))


def remove_non_printing_char(text: str) -> str:
    """Drop control, format, unassigned and private-use characters (category ``C*``).

    Example:
        >>> remove_non_printing_char("a\\u200bb\\x07c")
        'abc'
    """
    return "".join(c for c in text if not unicodedata.category(c).startswith("C"))


# ---------------------------------------------------------------- normalize-punctuation

PUNCT_NORM_RULES: list[Rule] = [
    # whitespace around brackets and before some punctuation
    (r"\r", ""),
    (r"\(", " ("),
    (r"\)", ") "),
    (r" +", " "),
    (r"\) ([.!:?;,])", r")\1"),
    (r"\( ", "("),
    (r" \)", ")"),
    (r"(\d) %", r"\1%"),
    (r" :", ":"),
    (r" ;", ";"),
    # backquotes and doubled single quotes (Penn Treebank style)
    ("`", "'"),
    ("''", ' " '),
    # typographic quotes and dashes
    ("[„“”]", '"'),
    ("–", "-"),  # en dash
    ("—", " - "),  # em dash, spaced
    (" +", " "),
    ("´", "'"),
    (r"([a-zA-Z])[‘’]([a-zA-Z])", r"\1'\2"),  # curly apostrophe inside a word
    ("[‘‚’]", "'"),
    ("''", '"'),
    ("´´", '"'),
    ("…", "..."),
    # French guillemets, with the no-break spaces typeset inside them
    ("\u00a0«\u00a0", '"'),
    ("«\u00a0", '"'),
    ("«", '"'),
    ("\u00a0»\u00a0", '"'),
    ("\u00a0»", '"'),
    ("»", '"'),
    # no-break spaces before units and punctuation
    ("\u00a0%", "%"),
    ("nº\u00a0", "nº "),
    ("\u00a0:", ":"),
    ("\u00a0ºC", " ºC"),
    ("\u00a0cm", " cm"),
    ("\u00a0\\?", "?"),
    ("\u00a0!", "!"),
    ("\u00a0;", ";"),
    (",\u00a0", ", "),
    (" +", " "),
]
# a quote followed by a comma or period: English puts the punctuation inside...
QUOTE_COMMA_EN: list[Rule] = [(r'"([,.]+)', r'\1"')]
# ... German, Spanish and French outside (but a period that ends the text stays put)
QUOTE_COMMA_DE_ES_FR: list[Rule] = [(',"', '",'), (r'(\.+)"(\s*[^<])', r'"\1\2')]
# a no-break space between digits is a thousands separator: comma in de/es/fr/cs, else dot
NUMBER_SEPARATOR_COMMA: list[Rule] = [("(\\d)\u00a0(\\d)", r"\1,\2")]
NUMBER_SEPARATOR_DOT: list[Rule] = [("(\\d)\u00a0(\\d)", r"\1.\2")]

_PUNCT_NORM_CACHE: dict[str, list[tuple[regex.Pattern[str], str]]] = {}


def _punct_rules(lang: str) -> list[tuple[regex.Pattern[str], str]]:
    rules = _PUNCT_NORM_CACHE.get(lang)
    if rules is None:
        table = list(PUNCT_NORM_RULES)
        if lang == "en":
            table += QUOTE_COMMA_EN
        elif lang in ("de", "es", "fr"):
            table += QUOTE_COMMA_DE_ES_FR
        table += (
            NUMBER_SEPARATOR_COMMA
            if lang in ("de", "es", "cz", "cs", "fr")
            else NUMBER_SEPARATOR_DOT
        )
        rules = _PUNCT_NORM_CACHE[lang] = _compile(table)
    return rules


def normalize_punctuation(text: str, lang: str = "en") -> str:
    """Moses' normalize-punctuation: quotes, dashes, spaces around punctuation, by language.

    Example:
        >>> normalize_punctuation("« Bonjour » , dit-il — 10\\u00a0000 €", "fr")
        '" Bonjour " , dit-il - 10,000 €'
    """
    return _apply(_punct_rules(lang), text).strip()


# ---------------------------------------------------------------- tokenizer

# Nonbreaking prefixes: a word of this list followed by a period keeps the period (an
# abbreviation, not the end of a sentence). Written for this port after the lists
# Moses ships in scripts/share/nonbreaking_prefixes/nonbreaking_prefix.{en,fr,de,es}
# (also in sacremoses); prefixes holding a period ("z.B", "p.ex") are left out, since
# any prefix with a period and a letter is kept anyway. NUMERIC_ONLY: the period is kept
# only before a number ("No. 5").
_LETTERS = " ".join("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_TITLES_EN = (
    "Adj Adm Adv Asst Bart Bldg Brig Bros Capt Cmdr Col Comdr Con Corp Cpl DR Dr Ens Gen "
    "Gov Hon Hosp Insp Lt MM MR MRS MS Maj Messrs Mlle Mme Mr Mrs Ms Msgr Op Ord Pfc Ph "
    "Prof Pvt Rep Reps Res Rev Rt Sen Sens Sfc Sgt Sr St Supt Surg"
)
NONBREAKING_PREFIXES: dict[str, frozenset[str]] = {
    "en": frozenset(
        f"{_LETTERS} {_TITLES_EN} Drs Hr v vs rev Rs Nos Nr "
        "Jan Feb Mar Apr Jun Jul Aug Sep Oct Nov Dec".split()
    ),
    "fr": frozenset(
        # every letter but "a" (a French word: "il a.")
        f"{_LETTERS} {_LETTERS.lower()[2:]} "
        "art ann apr av auj lib boul ca cf chap contr dir éd env al etc ex fasc fém fig fr "
        "hab ibid id inf masc MM ms n/réf pl pp sec sect sing sq sqq suiv sup suppl tél vb "
        "vol vs SS".split()
    ),
    "de": frozenset(
        f"{_LETTERS} {_LETTERS.lower()} {_TITLES_EN} "
        # Roman numerals I..XX, both cases, and the numbers 1..99 (German ordinals: "3. Mai")
        "I II III IV V VI VII VIII IX X XI XII XIII XIV XV XVI XVII XVIII XIX XX "
        "i ii iii iv v vi vii viii ix x xi xii xiii xiv xv xvi xvii xviii xix xx "
        f"{' '.join(str(n) for n in range(1, 100))} "
        "Mio Mrd bzw vs usw etc MwSt ggf vgl sogen ff Buchst sog Std evtl Zt Chr Ltd spp sen "
        "SA jun dgl dergl Co zzt usf Dkr bzgl BSE No Nos Art Nr pp ca Ca".split()
    ),
    "es": frozenset(
        f"{_LETTERS} "
        "Apdo Av Bco Da Dep Dn Dr Dra Excmo Fil Gral Let Lic Prof Pts Rte Sr Sra Srta Sta Sto "
        "Tel Ud Uds Vd Vds a/c adj admón afmo apdo av c cap cm cta dcha doc ej entlo esq etc "
        "gr grs izq kg km mg mm núm p pág págs ptas s vid vol".split()
    ),
}
NUMERIC_ONLY_PREFIXES: dict[str, frozenset[str]] = {
    "en": frozenset("No Art pp".split()),
}

_SPACES = regex.compile(r"\s+")
_ASCII_CONTROL = regex.compile(r"[\x00-\x1f]")
_MULTIDOT = regex.compile(r"\.{2,}")
_MULTIDOT_MARK = regex.compile(r"(?:DOT)+MULTI")
_ENDS_WITH_PERIOD = regex.compile(r"^(\S+)\.$")
_ALPHA = regex.compile(ALPHA, regex.V1)
_LOWER = regex.compile(rf"^{LOWER}+$", regex.V1)
_ASCII_DIGITS = frozenset("0123456789")

# Every character that is not a letter, digit, space or one of . ' ` , - is set apart.
PAD_SYMBOLS: list[Rule] = [(rf"([^{ALNUM}\s.'`,\-])", r" \1 ")]
# Commas are set apart except between two digits (5,300).
COMMA_RULES: list[Rule] = [
    (rf"([^{NUMBER}]),", r"\1 , "),
    (rf",([^{NUMBER}])", r" , \1"),
    (rf"({NUMBER}),$", r"\1 , "),
]
# English: the apostrophe goes with what follows ("don't" -> "don 't", "it's" -> "it 's"),
# also after a number ("1990's" -> "1990 's").
APOSTROPHE_EN: list[Rule] = [
    (rf"([^{ALPHA}])'([^{ALPHA}])", r"\1 ' \2"),
    (rf"([^{ALPHA}{NUMBER}])'({ALPHA})", r"\1 ' \2"),
    (rf"({ALPHA})'([^{ALPHA}])", r"\1 ' \2"),
    (rf"({ALPHA})'({ALPHA})", r"\1 '\2"),
    (rf"({NUMBER})'(s)", r"\1 '\2"),
]
# French and Italian: the apostrophe goes with what precedes (l'homme -> "l' homme").
APOSTROPHE_FR_IT: list[Rule] = [
    (rf"([^{ALPHA}])'([^{ALPHA}])", r"\1 ' \2"),
    (rf"([^{ALPHA}])'({ALPHA})", r"\1 ' \2"),
    (rf"({ALPHA})'([^{ALPHA}])", r"\1 ' \2"),
    (rf"({ALPHA})'({ALPHA})", r"\1' \2"),
]
# Other languages: every apostrophe is a token.
APOSTROPHE_OTHER: list[Rule] = [("'", " ' ")]
# A period then an apostrophe at the very end are two tokens.
TRAILING_DOT_QUOTE: list[Rule] = [(r"\.' ?$", " . ' ")]

_PAD_SYMBOLS = _compile(PAD_SYMBOLS)
_COMMA = _compile(COMMA_RULES)
_APOSTROPHE = {
    "en": _compile(APOSTROPHE_EN),
    "fr": _compile(APOSTROPHE_FR_IT),
    "it": _compile(APOSTROPHE_FR_IT),
}
_APOSTROPHE_OTHER = _compile(APOSTROPHE_OTHER)
_TRAILING_DOT_QUOTE = _compile(TRAILING_DOT_QUOTE)


def _protect_dots(text: str) -> str:
    """Runs of 2+ periods become ``DOT..DOTMULTI`` words (one ``DOT`` per period)."""
    end = len(text)

    def mark(m: regex.Match[str]) -> str:
        return " " + "DOT" * len(m.group()) + "MULTI" + (" " if m.end() < end else "")

    return _MULTIDOT.sub(mark, text)


def _restore_dots(text: str) -> str:
    return _MULTIDOT_MARK.sub(lambda m: "." * ((len(m.group()) - 5) // 3), text)


def _split_periods(text: str, lang: str) -> str:
    """Set a word's final period apart unless the word is an abbreviation.

    Kept: a prefix with a period and a letter ("z.B."), a listed nonbreaking prefix, a
    word followed by a lower-case word, a numeric-only prefix followed by a number.
    """
    prefixes = NONBREAKING_PREFIXES.get(lang, frozenset())
    numeric = NUMERIC_ONLY_PREFIXES.get(lang, frozenset())
    words = text.split()
    last = len(words) - 1
    for i, word in enumerate(words):
        m = _ENDS_WITH_PERIOD.match(word)
        if m is None:
            continue
        prefix = m.group(1)
        if (
            ("." in prefix and _ALPHA.search(prefix))
            or (prefix in prefixes and prefix not in numeric)
            or (i < last and _LOWER.match(words[i + 1][0]))
            or (prefix in numeric and i < last and words[i + 1][0] in _ASCII_DIGITS)
        ):
            continue
        words[i] = prefix + " ."
    return " ".join(words)


def moses_tokenize(text: str, lang: str = "en") -> list[str]:
    """Split ``text`` into words as Moses' tokenizer.perl does (no XML escaping).

    Example:
        >>> moses_tokenize("Mr. Smith doesn't pay $1,000.50... (yet).")
        ['Mr.', 'Smith', 'doesn', "'t", 'pay', '$', '1,000.50', '...', '(', 'yet', ')', '.']
        >>> moses_tokenize("L'homme l'a dit, p.ex. hier.", "fr")
        ["L'", 'homme', "l'", 'a', 'dit', ',', 'p.ex.', 'hier', '.']
    """
    text = _ASCII_CONTROL.sub("", _SPACES.sub(" ", text)).strip()
    text = _apply(_PAD_SYMBOLS, text)
    text = _protect_dots(text)
    text = _apply(_COMMA, text)
    text = _apply(_APOSTROPHE.get(lang, _APOSTROPHE_OTHER), text)
    text = _split_periods(text, lang)
    text = _SPACES.sub(" ", text).strip()
    text = _apply(_TRAILING_DOT_QUOTE, text)
    return _restore_dots(text).split()


def moses_pipeline(
    text: str, lang: str = "en", before_tokenize: Callable[[str], str] | None = None
) -> list[str]:
    """Today's XLM pre-tokenisation for a European language: the three steps, then split.

    ``replace_unicode_punct``, ``normalize_punctuation(lang)``, ``remove_non_printing_char``,
    ``before_tokenize`` if given (Romanian's diacritic removal), then ``moses_tokenize(lang)``.

    Example:
        >>> moses_pipeline("« L’homme », dit-il…", "fr")
        ['"', "L'", 'homme', '"', ',', 'dit-il', '...']
    """
    text = remove_non_printing_char(normalize_punctuation(replace_unicode_punct(text), lang))
    if before_tokenize is not None:
        text = before_tokenize(text)
    return moses_tokenize(text, lang)
