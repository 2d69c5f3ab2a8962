"""One regex that finds any of many strings, longest first, in a single pass over the text.

An alternation ``tok1|tok2|...`` sorted longest first is the obvious way to cut a text
around its added tokens, but Python's ``re`` tries every alternative at every position of
the text: with 10,000 added tokens that is 10,000 attempts per character. The pattern
built here is the same set of strings written as a prefix tree (``a(?:b(?:c)?|x)`` for
``a``, ``abc``, ``ab``, ``ax``...): at a position only the branch whose first character
matches is followed, so the cost per character is the depth of the match, not the number
of strings. The match at a position is the longest string that starts there, exactly as
with the sorted alternation.

Chains without a branch are written as one literal; past :data:`MAX_NESTING` branch
points the rest of a subtree is written as a sorted alternation, so that ``re``'s
recursive parser never sees a deeply nested pattern (``a``, ``aa``, ``aaa``, ... would
otherwise nest one group per string).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["MAX_NESTING", "longest_first_pattern"]

MAX_NESTING = 48
_END = ""  # marks a node where a string ends (children are keyed by one character)

_Node = dict[str, "_Node"]


def longest_first_pattern(strings: Iterable[str]) -> re.Pattern[str] | None:
    """A compiled regex, one capturing group, matching any of ``strings``, longest first.

    Args:
        strings: non-empty strings (empty ones and repeats are ignored).

    Returns:
        The pattern (``pattern.split(text)`` alternates text and matched strings), or
        None when there is no string.

    Example:
        >>> longest_first_pattern(["ab", "abc", "b"]).split("xabcabx")
        ['x', 'abc', '', 'ab', 'x']
    """
    root: _Node = {}
    for string in strings:
        if not string:
            continue
        node = root
        for char in string:
            node = node.setdefault(char, {})
        node[_END] = {}
    if not root:
        return None
    return re.compile("(" + _subtree(root, 0) + ")")


def _subtree(node: _Node, nesting: int) -> str:
    """Regex body for the suffixes below ``node`` (its own end, if any, made optional)."""
    children = sorted(key for key in node if key != _END)
    if not children:
        return ""
    if nesting >= MAX_NESTING:
        suffixes = sorted((s for s in _suffixes(node) if s), key=lambda s: (-len(s), s))
        body = "(?:" + "|".join(map(re.escape, suffixes)) + ")"
    else:
        branches = []
        for first in children:
            literal, child = first, node[first]
            while len(child) == 1 and _END not in child:  # a chain: one literal
                ((char, child),) = child.items()
                literal += char
            branches.append(re.escape(literal) + _subtree(child, nesting + 1))
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
    if _END in node:
        body = "(?:" + body + ")?"  # greedy: the longer strings are tried first
    return body


def _suffixes(node: _Node) -> list[str]:
    """Every string below ``node`` (``""`` for the node itself), without recursion."""
    out = []
    stack = [("", node)]
    while stack:
        prefix, current = stack.pop()
        for key, child in current.items():
            if key == _END:
                out.append(prefix)
            else:
                stack.append((prefix + key, child))
    return out
