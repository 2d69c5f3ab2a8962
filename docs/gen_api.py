"""Write the API reference pages (``docs/api/**.md``) from the package itself.

Every public module of ptfunc (no component of its dotted name starts with ``_``) gets
a ``::: module`` directive on the page of its area (``ptfunc.archs.bert.*`` on
``api/archs/bert.md``, ``ptfunc.layers.*`` on ``api/layers.md``, ...). Each object is
rendered once, at its home: the public module that defines it, or, for an object
defined in a private module, the public module that re-exports it (the closest one).
A module's other exported names are listed as links to their homes.

Run ``python docs/gen_api.py`` after adding a module or changing an ``__all__``;
``tests/test_docs_site.py`` fails while the committed pages are stale
(``python docs/gen_api.py --check`` says the same).
"""

from __future__ import annotations

import argparse
import ast
import importlib
import inspect
import pkgutil
import sys
import types
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
API = ROOT / "docs" / "api"
sys.path.insert(0, str(ROOT))

import ptfunc  # noqa: E402

# Areas whose submodules share one page (any deeper module lands on its area's page).
GROUPED = (
    "ptfunc.layers",
    "ptfunc.optim",
    "ptfunc.io.convert",
    "ptfunc.io",
    "ptfunc.tokenize",
    "ptfunc.research",
    "ptfunc.distributed",
    "ptfunc.cli",
)

TITLES = {
    "ptfunc": "ptfunc",
    "ptfunc.archs": "ptfunc.archs (shared machinery)",
}


def is_public(name: str) -> bool:
    """True when no component of the dotted ``name`` starts with an underscore."""
    return not any(part.startswith("_") for part in name.split("."))


def public_modules() -> list[str]:
    """``ptfunc`` and every public module under it, sorted (a package before its children)."""
    names = [m.name for m in pkgutil.walk_packages(ptfunc.__path__, "ptfunc.")]
    return ["ptfunc"] + sorted(n for n in names if is_public(n))


def page_of(module: str) -> str:
    """The page (relative to ``docs/api``, without ``.md``) that documents ``module``."""
    if module == "ptfunc":
        return "index"
    for area in GROUPED:
        if module == area or module.startswith(area + "."):
            return area.removeprefix("ptfunc.").replace(".", "/")
    parts = module.split(".")
    if parts[1] == "archs":
        if len(parts) >= 3 and _is_package(".".join(parts[:3])):
            return "archs/" + parts[2]
        return "archs/index"
    return module.removeprefix("ptfunc.").replace(".", "/")


def _is_package(module: str) -> bool:
    return hasattr(importlib.import_module(module), "__path__")


@cache
def _tree(module: str) -> ast.Module:
    path = inspect.getsourcefile(importlib.import_module(module))
    return ast.parse(Path(path).read_text(encoding="utf-8"))


def _resolve_relative(module: str, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".")
    if not _is_package(module):
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def defined_here(module: str) -> dict[str, ast.stmt]:
    """Top-level names bound in ``module`` by def, class or assignment (not by import)."""
    out: dict[str, ast.stmt] = {}
    for node in _tree(module).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            out[node.name] = node
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    out[target.id] = node
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            out[node.target.id] = node
    return out


def imported_here(module: str) -> dict[str, tuple[str, str]]:
    """Names bound in ``module`` by ``from x import y [as z]``: ``z -> (x, y)``."""
    out: dict[str, tuple[str, str]] = {}
    for node in _tree(module).body:
        if isinstance(node, ast.ImportFrom):
            source = _resolve_relative(module, node)
            for alias in node.names:
                out[alias.asname or alias.name] = (source, alias.name)
    return out


def defining_module(module: str, name: str) -> str | None:
    """The ptfunc module whose source binds ``name`` that ``module`` exports; None for
    objects from outside ptfunc and for submodules."""
    seen = set()
    while (module, name) not in seen:
        seen.add((module, name))
        if name in defined_here(module):
            return module
        source = imported_here(module).get(name)
        if source is None or not source[0].startswith("ptfunc"):
            return None
        if f"{source[0]}.{source[1]}" in sys.modules and isinstance(
            getattr(importlib.import_module(source[0]), source[1], None), types.ModuleType
        ):
            return None
        module, name = source
    return None


def exported(module: str) -> list[str]:
    """``module.__all__``, or else its public top-level definitions, in source order."""
    mod = importlib.import_module(module)
    names = getattr(mod, "__all__", None)
    if names is None:
        names = [n for n in defined_here(module) if not n.startswith("_")]
    return [n for n in names if not n.startswith("__")]


@cache
def homes() -> dict[tuple[str, str], str]:
    """``(defining module, name) -> the public module where that object is rendered``."""
    exporters: dict[tuple[str, str], list[str]] = {}
    for module in public_modules():
        for name in exported(module):
            if isinstance(getattr(importlib.import_module(module), name, None), types.ModuleType):
                continue
            origin = defining_module(module, name) or module
            exporters.setdefault((origin, name), []).append(module)
    out = {}
    for (origin, name), modules in exporters.items():
        if is_public(origin):
            out[(origin, name)] = origin
        else:
            # The re-exporting module closest to the private definition, then the shortest.
            def closeness(m: str, origin: str = origin) -> tuple[int, int]:
                common = 0
                for a, b in zip(m.split("."), origin.split(".")):
                    if a != b:
                        break
                    common += 1
                return (-common, len(m))

            out[(origin, name)] = min(modules, key=closeness)
    return out


def anchor(module: str, name: str) -> str | None:
    """The identifier of ``module.name``'s rendered heading (its home), for a link."""
    obj = getattr(importlib.import_module(module), name, None)
    if isinstance(obj, types.ModuleType):
        return obj.__name__ if is_public(obj.__name__) else None
    origin = defining_module(module, name) or module
    home = homes().get((origin, name))
    return f"{home}.{name}" if home else None


def members(module: str) -> list[str]:
    """The names ``module``'s directive renders: its exports whose home it is."""
    mod = importlib.import_module(module)
    return [
        n
        for n in exported(module)
        if not isinstance(getattr(mod, n, None), types.ModuleType)
        and anchor(module, n) == f"{module}.{n}"
    ]


def module_block(module: str) -> str:
    """The markdown for one module: its directive and links to its re-exports."""
    rendered = members(module)
    lines = [f"::: {module}", "    options:", "      heading_level: 2"]
    if rendered:
        lines.append("      members:")
        lines += [f"        - {n}" for n in rendered]
    else:
        lines.append("      members: false")
    others = [n for n in exported(module) if n not in rendered and anchor(module, n)]
    if others:
        links = ", ".join(f"[`{n}`][{anchor(module, n)}]" for n in others)
        lines += ["", f"Also exported by `{module}`: {links}."]
    return "\n".join(lines) + "\n"


def pages() -> dict[str, str]:
    """``page path (relative to docs/api) -> markdown``, for every public module."""
    grouped: dict[str, list[str]] = {}
    for module in public_modules():
        grouped.setdefault(page_of(module), []).append(module)
    out = {}
    for page, modules in sorted(grouped.items()):
        head = modules[0]
        title = TITLES.get(head, head)
        body = [
            f"# {title}",
            "",
            "<!-- Generated by docs/gen_api.py; edit the docstrings, then rerun it. -->",
            "",
        ]
        body += [module_block(m) for m in modules]
        out[page + ".md"] = "\n".join(body)
    return out


def nav() -> list[str]:
    """The API pages, for ``mkdocs.yml``'s nav (relative to ``docs/``)."""
    return ["api/" + p for p in pages()]


def main(argv: list[str] | None = None) -> int:
    """Write the pages (or, with ``--check``, exit 1 when a committed page differs)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare, do not write")
    args = parser.parse_args(argv)
    wanted = pages()
    stale = []
    for rel, text in wanted.items():
        path = API / rel
        if path.exists() and path.read_text(encoding="utf-8") == text:
            continue
        stale.append(rel)
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    extra = sorted(
        str(p.relative_to(API)) for p in API.rglob("*.md") if str(p.relative_to(API)) not in wanted
    )
    if args.check:
        for rel in stale + extra:
            print(f"stale: docs/api/{rel}")
        return 1 if stale or extra else 0
    for rel in extra:
        (API / rel).unlink()
    print(f"{len(wanted)} pages, {len(stale)} written, {len(extra)} removed")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
