"""MkDocs hooks (``hooks:`` in ``mkdocs.yml``).

* ``on_pre_build``: the API pages must match the package (``docs/gen_api.py --check``);
  a stale page stops the build with the command that refreshes it.
* ``on_files``: the figures (``docs/gen_figures.py``) are drawn into a temporary folder
  once per process and added to the site as ``figures/*.png``, so nothing generated is
  written into ``docs/`` (and ``mkdocs serve`` does not rebuild in a loop).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS))

import gen_api  # noqa: E402
import gen_figures  # noqa: E402

_FIGURES: list[Path] = []
_TMP = tempfile.TemporaryDirectory(prefix="ptfunc-figures-")


def on_pre_build(config, **kwargs) -> None:
    """Refuse to build from API pages that no longer match the package."""
    if gen_api.main(["--check"]) != 0:
        raise PluginError("docs/api is stale: run `python docs/gen_api.py`")


def on_files(files, config, **kwargs):
    """Add the generated figures to the site's files."""
    if not _FIGURES:
        _FIGURES.extend(gen_figures.generate(Path(_TMP.name) / "figures"))
    for path in _FIGURES:
        uri = f"figures/{path.name}"
        if files.get_file_from_path(uri) is None:
            files.append(File.generated(config, uri, abs_src_path=str(path)))
    return files
