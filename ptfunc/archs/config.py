"""The shared config base: a frozen dataclass that reads and writes config.json.

Every architecture's config subclasses :class:`PretrainedConfig`. A config reads
the keys of pytorch-transformers 1.0 (``vocab_size_or_config_json_file``, its
per-model names such as ``n_embd``) and of today's ``transformers`` (through
each subclass's ``aliases``), keeps keys that do not concern the model (such
as ``architectures``) aside in :attr:`extra`, and writes back what today's
``transformers`` reads.

Validation (one place, here, driven by what each subclass declares):

* **Types** come from the field annotations. A wrong type is a :class:`ConfigTypeError`
  (a :class:`~ptfunc.errors.ConfigError` and a ``TypeError``) naming the field. Ints are
  accepted where floats are expected (``"dropout": 0`` reads as 0.0); floats are refused
  where ints are expected, even integral ones (``"n_embd": 768.0`` is an error, not a
  silent cast), and so are bools (``true`` is not 1). ``None`` only where the annotation
  allows it.
* **Ranges** come from the class attribute ``constraints`` (``{field: constraint}``,
  merged along the class hierarchy): :data:`SIZE` (an int in ``[1, MAX_DIM]``),
  :data:`COUNT` (``[0, MAX_DIM]``), :data:`LABELS` (``num_labels``: ``[1, 2**17]``),
  :data:`DROPOUT` (``[0, 1)``), :data:`NON_NEGATIVE` (a finite float ``>= 0``),
  :class:`OneOf` a set of names, :data:`ACTIVATION` (a name
  ``ptfunc.layers.activations.get`` knows, or a callable). A constraint on a tuple field
  applies to each item.
* **Relations**: ``multiples`` (``(field, field or int)``: ``hidden_size`` a multiple of
  ``num_attention_heads``) and ``indices`` (``(field, size field)``: ``pad_token_id`` in
  ``[0, vocab_size)``).
* **Size**: ``param_terms`` estimate the parameter count (a sum of products of fields);
  above :data:`MAX_PARAMS` (2**34, 64 GiB in float32) the config is refused, so that a
  hostile or mistyped config.json cannot make ``init`` allocate more than the user meant.
  ``allow_large=True`` (a constructor or ``from_dict``/``from_json_file``/
  ``from_pretrained`` override; never read from the file itself) lifts this cap and the
  ``MAX_DIM`` bound of every size.

Every violation raises :class:`~ptfunc.errors.ConfigError` (a ``ValueError``) whose message
names the class, the field, its value and what is allowed, checked in that order (types,
ranges, relations, size), so that no arithmetic ever runs on an unchecked value (no
``ZeroDivisionError`` for ``n_head: 0``).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import typing
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from .._atomic import write_text
from ..errors import ConfigError
from ..layers import activations
from ..layers.sequence_summary import SUMMARY_TYPES

__all__ = [
    "PretrainedConfig",
    "ConfigError",
    "ConfigTypeError",
    "ConfigFrozenError",
    "Ints",
    "Floats",
    "OneOf",
    "Activation",
    "SIZE",
    "COUNT",
    "LABELS",
    "DROPOUT",
    "NON_NEGATIVE",
    "ACTIVATION",
    "MAX_DIM",
    "MAX_PARAMS",
    "read_config_file",
]

C = TypeVar("C", bound="PretrainedConfig")

# Keys of today's config.json that concern no ptfunc model and are dropped on read.
_DROP_ON_READ = frozenset({"transformers_version", "_name_or_path"})

MAX_DIM = 2**24
"""The largest value of a size field (vocabulary, width, layers, positions...) unless
``allow_large=True``."""

MAX_PARAMS = 2**34
"""The largest estimated parameter count (64 GiB of float32) unless ``allow_large=True``."""


class ConfigTypeError(ConfigError, TypeError):
    """A config value (or a whole config file) of the wrong type: both a
    :class:`~ptfunc.errors.ConfigError` and a ``TypeError``."""


# -- declared constraints ------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Ints:
    """An int in ``[lo, hi]`` (``hi`` None: no upper bound).

    ``large=True`` marks ``hi`` as the size cap that ``allow_large=True`` lifts.
    """

    lo: int
    hi: int | None = None
    large: bool = False

    def allows(self, value: Any, allow_large: bool) -> bool:
        hi = None if self.large and allow_large else self.hi
        return value >= self.lo and (hi is None or value <= hi)

    def requirement(self, value: Any, optional: bool, allow_large: bool) -> str:
        hi = None if self.large and allow_large else self.hi
        bound = f">= {self.lo}" if hi is None else f">= {self.lo} and <= {hi}"
        above = self.large and hi is not None and value > hi
        hint = " (allow_large=True lifts the upper bound)" if above else ""
        return f"must be {'None or ' if optional else ''}{bound}{hint}"


@dataclasses.dataclass(frozen=True)
class Floats:
    """A finite number in the interval from ``lo`` to ``hi`` (None: unbounded on that side),
    each end closed unless ``lo_open``/``hi_open``."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False

    def allows(self, value: Any, allow_large: bool) -> bool:
        try:
            v = float(value)
        except OverflowError:
            return False
        if not math.isfinite(v):
            return False
        if self.lo is not None and (v <= self.lo if self.lo_open else v < self.lo):
            return False
        return self.hi is None or (v < self.hi if self.hi_open else v <= self.hi)

    def requirement(self, value: Any, optional: bool, allow_large: bool) -> str:
        none = "be None or " if optional else ""
        if self.lo is not None and self.hi is not None:
            left, right = "(" if self.lo_open else "[", ")" if self.hi_open else "]"
            return f"must {none}lie in {left}{self.lo}, {self.hi}{right}"
        if self.lo is not None:
            return f"must {none or 'be '}finite and {'>' if self.lo_open else '>='} {self.lo}"
        if self.hi is not None:
            return f"must {none or 'be '}finite and {'<' if self.hi_open else '<='} {self.hi}"
        return f"must {none or 'be '}finite"


@dataclasses.dataclass(frozen=True)
class OneOf:
    """One of a few values (names, or ints such as Transformer-XL's ``attn_type``)."""

    choices: tuple[Any, ...]

    def allows(self, value: Any, allow_large: bool) -> bool:
        return value in self.choices

    def requirement(self, value: Any, optional: bool, allow_large: bool) -> str:
        names = [repr(c) for c in self.choices]
        listed = (
            " or ".join(names) if len(names) < 3 else ", ".join(names[:-1]) + " or " + names[-1]
        )
        return f"must be {'None or ' if optional else ''}{listed}"


@dataclasses.dataclass(frozen=True)
class Activation:
    """An activation: a name :func:`ptfunc.layers.activations.get` knows, or a callable."""

    def allows(self, value: Any, allow_large: bool) -> bool:
        if callable(value):
            return True
        try:
            activations.get(value)
        except (ValueError, TypeError):
            return False
        return True

    def requirement(self, value: Any, optional: bool, allow_large: bool) -> str:
        known = ", ".join(sorted(activations._BY_NAME))
        return f"must be {'None or ' if optional else ''}an activation name ({known}) or a callable"


Constraint = Ints | Floats | OneOf | Activation

SIZE = Ints(1, MAX_DIM, large=True)
"""A size (vocabulary, width, layers, heads, positions): an int in [1, MAX_DIM]."""
COUNT = Ints(0, MAX_DIM, large=True)
"""A count or an index that may be 0: an int in [0, MAX_DIM]."""
LABELS = Ints(1, 2**17, large=True)
"""A number of classes: to_dict writes one ``id2label`` entry per class, so it is capped
lower than a size."""
DROPOUT = Floats(0, 1, hi_open=True)
"""A dropout probability in [0, 1)."""
NON_NEGATIVE = Floats(0)
"""A finite float >= 0 (init std, LayerNorm epsilon)."""
ACTIVATION = Activation()
"""An activation name (or a callable)."""

GPT_FAMILY_CONSTRAINTS: Mapping[str, Any] = {
    **{
        name: SIZE for name in ("vocab_size", "n_positions", "n_ctx", "n_embd", "n_layer", "n_head")
    },
    **{name: DROPOUT for name in ("resid_pdrop", "embd_pdrop", "attn_pdrop")},
    "layer_norm_epsilon": NON_NEGATIVE,
    "initializer_range": NON_NEGATIVE,
    "summary_type": OneOf(SUMMARY_TYPES),
    "summary_activation": ACTIVATION,
    "summary_first_dropout": DROPOUT,
}
"""The fields OpenAI GPT and GPT-2 share, with their constraints."""


class _ConfigMeta(type):
    """Gives config constructors pytorch-transformers 1.0's spellings.

    ``BertConfig(path)`` and ``BertConfig(vocab_size_or_config_json_file=...)`` (an int
    or the path of a config.json) build the config as 1.0 did; and assigning to a field
    after construction raises :class:`ConfigFrozenError` with the ptfunc spelling.
    """

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        if "__setattr__" not in cls.__dict__ or cls.__dict__["__setattr__"] is not _refuse_set:
            cls.__setattr__ = _refuse_set  # replaces the dataclass's own, once per class
        if "vocab_size_or_config_json_file" in kwargs:
            if args:
                raise ConfigTypeError(
                    f"{cls.__name__}: pass the vocabulary size (or config file) once, "
                    "positionally or as vocab_size_or_config_json_file"
                )
            args = (kwargs.pop("vocab_size_or_config_json_file"),)
        if args and isinstance(args[0], (str, os.PathLike)):
            if len(args) > 1:
                raise ConfigTypeError(
                    f"{cls.__name__}({args[0]!r}, ...): with a config file path, give the "
                    "other fields by keyword"
                )
            return cls.from_json_file(args[0], **kwargs)  # type: ignore[attr-defined]
        return super().__call__(*args, **kwargs)


class ConfigFrozenError(dataclasses.FrozenInstanceError):
    """Assignment to a config field: configs are immutable (also an ``AttributeError``)."""


def _refuse_set(self: Any, name: str, value: Any) -> None:
    owner = type(self).__name__
    how = f"config = config.replace({name}={value!r})"
    if name in ("output_attentions", "output_hidden_states"):
        how += f", or pass {name}={value!r} to model.apply for one call"
    raise ConfigFrozenError(
        f"{owner}.{name} cannot be assigned: ptfunc configs are immutable (a model is a "
        f"static object hashed by its config, as in JAX). Write {how}; build the model "
        "again from the new config (the params are unchanged)."
    )


@dataclasses.dataclass(frozen=True)
class PretrainedConfig(metaclass=_ConfigMeta):
    """Fields shared by every config (keyword-only, after each model's own fields).

    Attributes:
        num_labels: classes of a classification head (1 = regression).
        output_attentions: default for the ``output_attentions`` call option.
        output_hidden_states: default for the ``output_hidden_states`` call option.
        torchscript: must be False. 1.0's ``torchscript=True`` untied the weights and
            returned tuples so that ``torch.jit.trace`` could run; ptfunc's ``apply`` is a
            pure function whose outputs are tuples already: trace or export it directly
            (``torch.jit.trace`` / ``torch.export.export``, see
            docs/migrating-from-pytorch-transformers.md).
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
    allow_large: bool = dataclasses.field(default=False, compare=False, hash=False, repr=False)
    """Lift the :data:`MAX_DIM` and :data:`MAX_PARAMS` caps (an explicit choice of the
    caller: never read from, nor written to, config.json)."""

    model_type: ClassVar[str] = ""
    aliases: ClassVar[Mapping[str, str]] = {}
    """Other names of fields: ``{other name: field name}``. Config files may use
    them, and they read as attributes (``GPT2Config().hidden_size`` is ``n_embd``)."""
    constraints: ClassVar[Mapping[str, Constraint]] = {"num_labels": LABELS}
    """``{field: constraint}``; merged with the parents' (a subclass's entry wins)."""
    multiples: ClassVar[Sequence[tuple[str, str | int]]] = ()
    """``(field, divisor field or int)``: the first must be a multiple of the second."""
    indices: ClassVar[Sequence[tuple[str, str]]] = ()
    """``(field, size field)``: the first (when not None) must lie in ``[0, size)``."""
    param_terms: ClassVar[Sequence[tuple[str | int, ...]]] = ()
    """The parameter-count estimate: a sum of products of fields (or ints), e.g.
    ``(("vocab_size", "hidden_size"), (12, "num_hidden_layers", "hidden_size", "hidden_size"))``."""

    def __getattr__(self, name: str) -> Any:
        """Read an alias (``hidden_size`` for ``n_embd``...) as the field it names, or a
        key of the config file kept in :attr:`extra` (1.0 made every key an attribute)."""
        if name.startswith("_") or name == "extra":
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        target = type(self).aliases.get(name)
        if target is not None:
            return getattr(self, target)
        extra = self.__dict__.get("extra", {})
        if name in extra:
            return extra[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __post_init__(self) -> None:
        owner = type(self).__name__
        if self.torchscript is True:
            raise ConfigError(
                f"{owner}(torchscript=True): pytorch-transformers 1.0's switch for "
                "torch.jit.trace is not needed in ptfunc: model.apply is a pure function "
                "with tuple outputs, so trace it (torch.jit.trace(lambda ids: "
                "model.apply(params, ids).to_tuple(), (ids,))) or export it "
                "(torch.export.export); for a config file that says so, pass "
                "torchscript=False"
            )
        hints = typing.get_type_hints(type(self))
        fields = [f for f in dataclasses.fields(self) if f.name != "extra"]
        for f in fields:
            _check_type(owner, f.name, getattr(self, f.name), hints[f.name])
        object.__setattr__(self, "pruned_heads", _pruned_heads(owner, self.pruned_heads))
        object.__setattr__(self, "extra", dict(self.extra))
        constraints = self._all_constraints()
        for f in fields:
            if f.name in constraints:
                optional = _fits(None, hints[f.name])
                _check_value(self, f.name, constraints[f.name], optional)
        for name, divisor in type(self).multiples:
            value = getattr(self, name)
            by = divisor if isinstance(divisor, int) else getattr(self, divisor)
            if value % by:
                of = str(divisor) if isinstance(divisor, int) else f"{divisor} ({by})"
                raise ConfigError(f"{owner}.{name} ({value}) must be a multiple of {of}")
        for name, size in type(self).indices:
            value, n = getattr(self, name), getattr(self, size)
            if value is not None and not 0 <= value < n:
                raise ConfigError(
                    f"{owner}.{name} must lie in [0, {size}) = [0, {n}) (it indexes that "
                    f"table), got {value!r}"
                )
        self._check_pruned_heads()
        n_params = self.estimated_num_params()
        if n_params > MAX_PARAMS and not self.allow_large:
            raise ConfigError(
                f"{owner} describes about {n_params:.3g} parameters, more than the "
                f"{MAX_PARAMS} (2**34) allowed without allow_large=True "
                f"({', '.join(f'{n}={getattr(self, n)}' for n in self._size_fields())})"
            )

    @classmethod
    def _all_constraints(cls) -> dict[str, Constraint]:
        merged: dict[str, Constraint] = {}
        for klass in reversed(cls.__mro__):
            merged.update(vars(klass).get("constraints", {}))
        return merged

    @classmethod
    def _size_fields(cls) -> list[str]:
        seen: dict[str, None] = {}
        for term in cls.param_terms:
            seen.update((f, None) for f in term if isinstance(f, str))
        return list(seen)

    def estimated_num_params(self) -> int:
        """A rough parameter count from ``param_terms`` (the tables and the layers' dense
        weights; biases and LayerNorms left out), compared with :data:`MAX_PARAMS`."""
        total = 0
        for term in type(self).param_terms:
            product = 1
            for factor in term:
                product *= factor if isinstance(factor, int) else getattr(self, factor)
            total += product
        return total

    def _check_pruned_heads(self) -> None:
        """Recorded pruned heads index real layers and heads (when the config has both)."""
        n_layers = getattr(self, "num_hidden_layers", None)
        n_heads = getattr(self, "num_attention_heads", None)
        if not self.pruned_heads or n_layers is None or n_heads is None:
            return
        for layer, heads in self.pruned_heads.items():
            bad = [h for h in heads if not 0 <= h < n_heads]
            if not 0 <= layer < n_layers or bad:
                raise ConfigError(
                    f"{type(self).__name__}.pruned_heads must map layers in [0, {n_layers}) "
                    f"to heads in [0, {n_heads}), got layer {layer}: {list(heads)}"
                )

    # -- reading -------------------------------------------------------------------------------

    @classmethod
    def from_dict(cls: type[C], d: Mapping[str, Any], **overrides: Any) -> C:
        """Build a config from a config.json dict (1.0 or today's keys); ``overrides`` win.

        ``allow_large=True`` among the overrides lifts the size caps (see the module doc);
        an ``allow_large`` key of ``d`` itself is kept in :attr:`extra` and has no effect.

        Raises:
            ConfigError: ``d`` is not a mapping (also a ``TypeError``), or a value is out
                of range; ``ConfigTypeError`` for a value of the wrong type.
        """
        cls._check_mapping(d)
        names = {f.name for f in dataclasses.fields(cls)} - {"extra", "allow_large"}
        kwargs: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        if "allow_large" in overrides:  # the caller's choice; a file's "allow_large" is extra
            kwargs["allow_large"] = overrides.pop("allow_large")
        for key, value in {**d, **overrides}.items():
            if not isinstance(key, str):
                raise ConfigTypeError(f"{cls.__name__}: config keys must be strings, got {key!r}")
            name = cls.aliases.get(key, key)
            if name == "vocab_size_or_config_json_file":
                name = cls._vocab_field()
            if name in names:
                kwargs[name] = value
            elif key == "model_type":
                if value and cls.model_type and value != cls.model_type:
                    raise ConfigError(
                        f"{cls.__name__} expects model_type {cls.model_type!r}, "
                        f"the file says {value!r}"
                    )
            elif key not in _DROP_ON_READ:
                extra[key] = value
        if "num_labels" not in kwargs and isinstance(extra.get("id2label"), Mapping):
            kwargs["num_labels"] = len(extra["id2label"])
        return cls(**kwargs, extra=extra)

    @classmethod
    def _check_mapping(cls, d: Any) -> None:
        """``from_dict``'s argument must be a mapping (overrides that rewrite it call this)."""
        if not isinstance(d, Mapping):
            raise ConfigTypeError(
                f"{cls.__name__}.from_dict expects a mapping (a JSON object), "
                f"got {type(d).__name__}"
            )

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
            if f.name in ("extra", "pruned_heads", "allow_large"):
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
    """Raise ConfigTypeError when ``value`` does not fit the simple annotation ``hint``."""
    if _fits(value, hint):
        return
    shown = repr(value)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    raise ConfigTypeError(
        f"{owner}.{name} expects {_describe(hint)}, got {shown} ({type(value).__name__})"
    )


def _check_value(config: PretrainedConfig, name: str, rule: Constraint, optional: bool) -> None:
    """Raise ConfigError when the field (each item of a tuple field) breaks ``rule``."""
    value = getattr(config, name)
    if value is None:
        return
    items = enumerate(value) if isinstance(value, (tuple, list)) else [(None, value)]
    for i, item in items:
        if not rule.allows(item, config.allow_large):
            where = name if i is None else f"{name}[{i}]"
            requirement = rule.requirement(item, optional and i is None, config.allow_large)
            raise ConfigError(f"{type(config).__name__}.{where} {requirement}, got {item!r}")


def _pruned_heads(owner: str, pruned: Mapping[Any, Any]) -> dict[int, tuple[int, ...]]:
    """``{layer: sorted heads}`` with int keys (config.json writes them as strings)."""

    def is_int(x: Any) -> bool:
        return isinstance(x, int) and not isinstance(x, bool)

    out: dict[int, tuple[int, ...]] = {}
    for k, v in pruned.items():
        layer = int(k) if isinstance(k, str) and k.strip().lstrip("-").isdigit() else k
        if not (is_int(layer) and isinstance(v, (list, tuple, set, frozenset))) or not all(
            is_int(h) for h in v
        ):
            raise ConfigTypeError(
                f"{owner}.pruned_heads expects {{layer index: [head indices]}}, got {k!r}: {v!r}"
            )
        out[layer] = tuple(sorted(set(v)))
    return out


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
        ConfigError: not UTF-8 JSON, or not a JSON object (a ``ValueError``).
    """
    path = Path(path)
    if path.is_dir():
        path = path / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"expected a config.json file at {path}")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise ConfigError(f"{path} is not valid JSON: {error}") from None
    if not isinstance(config, dict):
        raise ConfigError(f"{path} must hold a JSON object; got {type(config).__name__}")
    return config
