"""Read a plain ``pickle`` of data (a vocabulary) without running anything it names.

``transformers`` saves Transformer-XL's vocabulary as ``vocab.pkl``: ``pickle.dump`` of the
tokenizer's ``__dict__``. Only data types are rebuilt (dict, list, tuple, set, str,
numbers, ``OrderedDict``, ``Counter``); any other class or function the file names is
replaced by an inert placeholder that is never called, so a hostile file cannot run code.
"""

from __future__ import annotations

import collections
import io
import pickle
from typing import Any

__all__ = ["load_plain_pickle", "Placeholder"]

_DATA = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("collections", "Counter"): collections.Counter,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "dict"): dict,
    ("builtins", "list"): list,
    ("builtins", "tuple"): tuple,
    ("__builtin__", "set"): set,
}


class Placeholder:
    """Stands for an object of a class the pickle named and ptfunc refused to rebuild."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass


class _DataUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        found = _DATA.get((module, name))
        if found is not None:
            return found
        return type(f"Placeholder[{module}.{name}]", (Placeholder,), {})


def load_plain_pickle(data: bytes) -> Any:
    """Unpickle ``data``, rebuilding data types only (see the module docstring).

    Example:
        >>> import os
        >>> evil = pickle.dumps(os.system)
        >>> isinstance(load_plain_pickle(evil), type)
        True
        >>> load_plain_pickle(pickle.dumps({"idx2sym": ["<unk>", "a"]}))
        {'idx2sym': ['<unk>', 'a']}
    """
    return _DataUnpickler(io.BytesIO(data)).load()
