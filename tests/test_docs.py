"""The README's code and every docstring example run (doctest)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil
import re
from pathlib import Path

import pytest

import ptfunc

README = Path(__file__).resolve().parents[1] / "README.md"
MODULES = sorted(
    m.name
    for m in pkgutil.walk_packages(ptfunc.__path__, "ptfunc.")
    if not m.name.endswith("__main__")
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0


EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
EXAMPLE_MODULES = sorted(
    p.name for p in EXAMPLES.glob("*.py") if p.name.startswith(("_", "utils_"))
)


@pytest.mark.parametrize("name", EXAMPLE_MODULES)
def test_example_helpers_docstring_examples(name, monkeypatch):
    # The examples' shared modules are imported as siblings by the scripts.
    monkeypatch.syspath_prepend(str(EXAMPLES))
    module = importlib.import_module(name.removesuffix(".py"))
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0


def test_readme_python_blocks_run():
    """Every ```python block runs offline; ```py blocks (downloads by name) are not run here
    (tests/test_hub.py covers loading by name against a local fake Hub)."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)
    assert blocks
    for block in blocks:
        exec(compile(block, str(README), "exec"), {})


DOCS = Path(__file__).resolve().parents[1] / "docs"


@pytest.mark.parametrize("page", ["migrating-from-pytorch-transformers.md"])
def test_docs_pages_doctests(page):
    result = doctest.testfile(
        str(DOCS / page),
        module_relative=False,
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
    )
    assert result.attempted > 0 and result.failed == 0


def test_readme_starts_with_the_two_setup_commands():
    first, second = README.read_text(encoding="utf-8").splitlines()[:2]
    assert first.startswith("Set up and run the main job: `pip install torch==2.13.0")
    assert second.startswith("Run the tests: `") and "pytest" in second
