"""The shared config base: a frozen dataclass that reads and writes config.json.

Every architecture's config subclasses :class:`PretrainedConfig`. A config reads
the keys of pytorch-transformers 1.0 (``vocab_size_or_config_json_file``, its
per-model names such as ``n_embd``) and of today's ``transformers`` (through
each subclass's ``aliases``), keeps keys that do not concern the model (such
as ``architectures``) aside in :attr:`extra`, and writes back what today's
``transformers`` reads.
"""

from __future__ import annotations

import dataclasses
import json
import os
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from .._atomic import write_text

__all__ = ["PretrainedConfig"]

C = TypeVar("C", bound="PretrainedConfig")

# Keys of today's config.json that concern no ptfunc model and are dropped on read.
_DROP_ON_READ = frozenset({"transformers_version", "_name_or_path"})


@dataclasses.dataclass(frozen=True)
class PretrainedConfig:
    """Fields shared by every config (keyword-only, after each model's own fields).

    Attributes:
        num_labels: classes of a classification head (1 = regression).
        output_attentions: default for the ``output_attentions`` call option.
        output_hidden_states: default for the ``output_hidden_states`` call option.
        torchscript: kept for compatibility with 1.0 config files; unused.
        finetuning_task: name of the task a checkpoint was fine-tuned on.
        pruned_heads: ``{layer: [original head indices]}`` removed by ``prune_heads``.
        extra: keys of the file that do not concern the model, written back unchanged.
    """

    _: dataclasses.KW_ONLY
    num_labels: int = 2
    output_attentions: bool = False
    output_hidden_states: bool = False
    torchscript: bool = False
    finetuning_task: str | None = None
    pruned_heads: Mapping[int, tuple[int, ...]] = dataclasses.field(
        default_factory=dict, hash=False
    )
    extra: Mapping[str, Any] = dataclasses.field(
        default_factory=dict, compare=False, hash=False, repr=False
    )

    model_type: ClassVar[str] = ""
    aliases: ClassVar[Mapping[str, str]] = {}
    """Other names of fields: ``{other name: field name}``. Config files may use
    them, and they read as attributes (``GPT2Config().hidden_size`` is ``n_embd``)."""

    def __getattr__(self, name: str) -> Any:
        """Read an alias (``hidden_size`` for ``n_embd``...) as the field it names."""
        target = type(self).aliases.get(name) if not name.startswith("_") else None
        if target is None:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        return getattr(self, target)

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            if f.name == "extra":
                continue
            _check_type(type(self).__name__, f.name, getattr(self, f.name), hints[f.name])
        pruned = {int(k): tuple(sorted(int(h) for h in v)) for k, v in self.pruned_heads.items()}
        object.__setattr__(self, "pruned_heads", pruned)
        object.__setattr__(self, "extra", dict(self.extra))

    # -- reading -------------------------------------------------------------------------------

    @classmethod
    def from_dict(cls: type[C], d: Mapping[str, Any], **overrides: Any) -> C:
        """Build a config from a config.json dict (1.0 or today's keys); ``overrides`` win."""
        if not isinstance(d, Mapping):
            raise TypeError(f"{cls.__name__}.from_dict expects a mapping, got {type(d).__name__}")
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        kwargs: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        for key, value in {**d, **overrides}.items():
            name = cls.aliases.get(key, key)
            if name == "vocab_size_or_config_json_file":
                name = cls._vocab_field()
            if name in names:
                kwargs[name] = value
            elif key == "model_type":
                if value and cls.model_type and value != cls.model_type:
                    raise ValueError(
                        f"{cls.__name__} expects model_type {cls.model_type!r}, "
                        f"the file says {value!r}"
                    )
            elif key not in _DROP_ON_READ:
                extra[key] = value
        if "num_labels" not in kwargs and isinstance(extra.get("id2label"), Mapping):
            kwargs["num_labels"] = len(extra["id2label"])
        return cls(**kwargs, extra=extra)

    @classmethod
    def from_json_file(cls: type[C], path: str | os.PathLike[str], **overrides: Any) -> C:
        """Read a config.json file."""
        return cls.from_dict(read_config_file(path), **overrides)

    @classmethod
    def from_pretrained(
        cls: type[C],
        name_or_path: str | os.PathLike[str],
        *,
        revision: str | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        force_download: bool = False,
        local_files_only: bool = False,
        token: str | bool | None = None,
        **overrides: Any,
    ) -> C:
        """Read the config.json of a directory, a config.json file, a 1.0 shortcut name or
        a Hub repo id (only config.json is fetched); ``overrides`` win.

        Example:
            >>> from ptfunc.archs.gpt2 import GPT2Config
            >>> GPT2Config.from_pretrained("gpt2").n_layer  # doctest: +SKIP
            12
        """
        from ..hub import HubOptions, fetch

        options = HubOptions(revision, cache_dir, force_download, local_files_only, token)
        return cls.from_json_file(
            fetch(name_or_path, ["config.json"], options=options), **overrides
        )

    def save_pretrained(self, save_directory: str | os.PathLike[str]) -> None:
        """Write ``config.json`` into a directory (created if missing), atomically."""
        directory = Path(save_directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.to_json_file(directory / "config.json")

    @classmethod
    def _vocab_field(cls) -> str:
        """The field that 1.0's ``vocab_size_or_config_json_file`` fills."""
        return next(f.name for f in dataclasses.fields(cls) if not f.kw_only)

    # -- writing -------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """A config.json dict that today's ``transformers`` reads (and ptfunc reads back)."""
        d: dict[str, Any] = dict(self.extra)
        for f in dataclasses.fields(self):
            if f.name in ("extra", "pruned_heads"):
                continue
            value = getattr(self, f.name)
            if callable(value):
                raise ValueError(f"{f.name} is a callable and cannot be written to config.json")
            d[f.name] = list(value) if isinstance(value, tuple) else value
        d["pruned_heads"] = {str(k): list(v) for k, v in self.pruned_heads.items()}
        if self.model_type:
            d["model_type"] = self.model_type
        if "id2label" not in d or len(d["id2label"]) != self.num_labels:
            d["id2label"] = {str(i): f"LABEL_{i}" for i in range(self.num_labels)}
            d["label2id"] = {f"LABEL_{i}": i for i in range(self.num_labels)}
        return d

    def to_json_string(self) -> str:
        """JSON text of :meth:`to_dict` (indent 2, sorted keys, trailing newline)."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    def to_json_file(self, path: str | os.PathLike[str]) -> None:
        """Write config.json atomically (a failed write leaves the old file intact)."""
        write_text(path, self.to_json_string())

    def replace(self: C, **changes: Any) -> C:
        """A copy with some fields changed (configs are immutable)."""
        return dataclasses.replace(self, **changes)


def _check_type(owner: str, name: str, value: Any, hint: Any) -> None:
    """Raise TypeError when ``value`` does not fit the simple annotation ``hint``."""
    if _fits(value, hint):
        return
    raise TypeError(
        f"{owner}.{name} expects {_describe(hint)}, got {value!r} ({type(value).__name__})"
    )


def _fits(value: Any, hint: Any) -> bool:
    origin = typing.get_origin(hint)
    if hint is Any:
        return True
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        return any(_fits(value, h) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if origin in (tuple, list) or hint in (tuple, list):
        if not isinstance(value, (tuple, list)):
            return False
        args = typing.get_args(hint)
        return not args or all(_fits(v, args[0]) for v in value)
    if origin in (Mapping, dict) or hint in (Mapping, dict):
        return isinstance(value, Mapping)
    if origin is Callable or hint is Callable or str(origin) == "collections.abc.Callable":
        return callable(value)
    return True


def _describe(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def read_config_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The JSON object of a config.json file (or of ``path/config.json`` for a directory).

    Raises:
        FileNotFoundError: no such file.
        ValueError: not UTF-8 JSON, or not a JSON object.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"expected a config.json file at {path}")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from None
    if not isinstance(config, dict):
        raise ValueError(f"{path} must hold a JSON object; got {type(config).__name__}")
    return config
