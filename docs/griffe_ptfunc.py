"""A griffe extension for ptfunc's docstrings (``extensions:`` in ``mkdocs.yml``).

ptfunc's docstrings are Google style with two habits griffe does not read as meant:

* ``Example:`` (singular, or ``Example (what it shows):``) heads the doctest examples;
  griffe takes it for an admonition and renders the ``>>>`` lines as quoted prose. It
  becomes ``Examples:`` (the parenthesis its first line). A doctest that stands under no
  header at all gets one too.
* Sphinx roles (``:func:`warmup_linear```, ``:data:`LEGACY_SCHEDULES```) would show
  their role prefix; the name is kept as inline code.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_EXAMPLE = re.compile(r"^(\s*)Example:[ \t]*$", re.M)
_EXAMPLE_TITLED = re.compile(r"^(\s*)Examples? \((.*)\):[ \t]*$", re.M)
_ROLE = re.compile(r":(?:func|class|data|meth|attr|mod|exc|obj|py:\w+):(`[^`]+`)")


def rewrite(text: str) -> str:
    """The docstring ``text`` with the two habits above translated.

    Examples:
        >>> rewrite("See :func:`f`.\\n\\nExample:\\n    >>> 1\\n    1")
        'See `f`.\\n\\nExamples:\\n    >>> 1\\n    1'
    """
    text = _EXAMPLE_TITLED.sub(lambda m: f"{m[1]}Examples:\n{m[1]}    {m[2]}:", text)
    text = _EXAMPLE.sub(r"\1Examples:", text)
    return _ROLE.sub(r"\1", _headed_doctests(text))


def _headed_doctests(text: str) -> str:
    """Put an ``Examples:`` header over each run of unindented doctest paragraphs.

    Examples:
        >>> _headed_doctests("Text.\\n\\n>>> 1\\n1")
        'Text.\\n\\nExamples:\\n    >>> 1\\n    1'
    """
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        starts = lines[i].startswith(">>>") and (i == 0 or not lines[i - 1].strip())
        if not starts:
            out.append(lines[i])
            i += 1
            continue
        out.append("Examples:")
        # The run: doctest paragraphs and the blank lines between them.
        while i < len(lines):
            j = i
            while j < len(lines) and lines[j].strip():
                j += 1
            out += ["    " + line for line in lines[i:j]]
            k = j
            while k < len(lines) and not lines[k].strip():
                k += 1
            if k < len(lines) and lines[k].startswith(">>>"):
                out += [""] * (k - j)
                i = k
            else:
                i = j
                break
    return "\n".join(out)


class PtfuncDocstrings(griffe.Extension):
    """Rewrites every docstring of the loaded package with :func:`rewrite`."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        """Walk the package once it is loaded (aliases are left to their targets)."""
        stack: list[griffe.Object] = [pkg]
        while stack:
            obj = stack.pop()
            if obj.docstring is not None:
                obj.docstring.value = rewrite(obj.docstring.value)
            stack.extend(m for m in obj.members.values() if not m.is_alias)
