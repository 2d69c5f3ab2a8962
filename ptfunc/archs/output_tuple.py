"""Model outputs that index like pytorch-transformers 1.0's tuples and read by name.

pytorch-transformers 1.0 returned plain tuples whose length depends on the call: the
loss comes first only when labels are given, ``hidden_states`` only with
``output_hidden_states``, ``attentions`` only with ``output_attentions``. 1.0 code
indexes them (``outputs[0]``, ``outputs[-1]``, ``loss, logits = outputs[:2]``).
Today's ``transformers`` keeps the same positions: ``ModelOutput.to_tuple()`` and
``output[i]`` skip the fields that are ``None``.

An :class:`OutputFamily` lists every field a model can return, in 1.0's order, and
marks the optional ones. Building an output keeps only the optional fields that hold
something (not ``None``, not an empty tuple), so the result is a NamedTuple whose
positions, length and unpacking are 1.0's tuple, while every field of the family,
present or not, is readable by name: a left-out field reads as ``()`` (tuple-valued
fields such as ``hidden_states``) or ``None``.

Two more shapes of 1.0's tuples:

* a **placeholder**: a field that is not optional stays in the tuple whatever it holds,
  ``None`` included (1.0's Transformer-XL LM head returns ``(losses, None, mems)`` with
  labels: the ``None`` stands where ``prediction_scores`` would be);
* a **computed** name (``computed={"loss": fn}``): read-only, ``fn(output)`` when read,
  never in the tuple (Transformer-XL's mean ``loss``, which 1.0's tuple does not carry).
  It is computed from the fields, so it follows the output through ``torch.compile``
  and ``torch.func`` transforms as any expression of the fields does.

A ``None`` placeholder is a leaf for ``torch.utils._pytree`` (optree sees no leaf), and
``torch.func`` refuses non-tensor leaves in what a transformed function returns: return
the tensor fields you need (``out.losses``, ``out.loss``) from under ``vmap`` or as
``grad``'s aux, or give ``vmap`` an ``out_dims`` of the output's type with ``None`` at
the placeholder.

The NamedTuple types (one per set of present fields) are made when the family is
defined, not during a call, so building an output under ``torch.compile(fullgraph=True)``
or ``torch.func.vmap`` is an ordinary NamedTuple construction, and pytrees (optree,
``torch.utils._pytree``) see a NamedTuple of the present fields.
"""

from __future__ import annotations

import abc
import collections
import itertools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["OutputFamily", "output_family", "TUPLE_FIELDS"]

# Fields whose value is a tuple (of tensors, or of per-layer tuples); empty when absent.
TUPLE_FIELDS = frozenset(
    {"hidden_states", "attentions", "mems", "presents", "cache", "past_key_values"}
)
"""Fields that hold a tuple of per-layer tensors (left out of the tuple when empty)."""


def _absent(value: Any) -> bool:
    return value is None or (isinstance(value, tuple) and len(value) == 0)


class OutputFamily(abc.ABC):  # noqa: B024 (a registry of NamedTuple types, no abstract method)
    """The type of every output of one kind (``isinstance(out, BertModelOutput)``).

    Class attributes set by :func:`output_family`:

    * ``fields``: every field, in 1.0's order;
    * ``optional``: groups of optional fields (a group is present or absent as a whole);
    * ``doc``: the shapes of the fields.
    """

    fields: tuple[str, ...] = ()
    optional: tuple[tuple[str, ...], ...] = ()
    _variants: dict[tuple[bool, ...], type] = {}
    _group_of: tuple[int, ...] = ()

    @classmethod
    def make(cls, *values: Any, **named: Any) -> Any:
        """The output holding ``values`` (one per field, in order; or by name).

        Optional fields given as ``None`` or ``()`` are left out of the tuple.

        Raises:
            TypeError: a field is missing or unknown, or a group is partly given.
        """
        if named:
            values = cls._by_name(values, named)
        if len(values) != len(cls.fields):
            raise TypeError(
                f"{cls.__name__} takes {len(cls.fields)} values ({', '.join(cls.fields)}); "
                f"got {len(values)}"
            )
        present = [True] * len(cls.optional)
        for value, group in zip(values, cls._group_of):
            if group >= 0 and _absent(value):
                present[group] = False
        variant = cls._variants[tuple(present)]
        keep = [value for value, group in zip(values, cls._group_of) if group < 0 or present[group]]
        return variant(*keep)

    @classmethod
    def _by_name(cls, values: tuple, named: dict[str, Any]) -> tuple:
        unknown = set(named) - set(cls.fields[len(values) :])
        if unknown:
            raise TypeError(f"{cls.__name__} got unknown or repeated fields {sorted(unknown)}")
        out = list(values)
        for name, group in zip(cls.fields[len(values) :], cls._group_of[len(values) :]):
            if name in named:
                out.append(named[name])
            elif group >= 0:
                out.append(() if name in TUPLE_FIELDS else None)
            else:
                raise TypeError(f"{cls.__name__} needs the field {name!r}")
        return tuple(out)


def _to_tuple(self: tuple) -> tuple:
    """The output as a plain tuple: pytorch-transformers 1.0's tuple for the same call."""
    return tuple(self)


def _default_property(name: str) -> property:
    default: Any = () if name in TUPLE_FIELDS else None
    return property(lambda self: default, doc=f"{name}: not returned by this call")


def output_family(
    name: str,
    fields: str | Sequence[str],
    doc: str,
    *,
    loss_name: str | None = None,
    loss_fields: Sequence[str] = ("loss",),
    aliases: Mapping[str, str] | None = None,
    computed: Mapping[str, Callable[[Any], Any]] | None = None,
) -> type[OutputFamily]:
    """Define an output family.

    Args:
        name: the type name (``"MaskedLMOutput"``).
        fields: every field in 1.0's order, space-separated; a trailing ``?`` marks an
            optional field, and ``a,b,c?`` an optional group (present together).
        doc: shapes of the fields.
        loss_name: type name when one of ``loss_fields`` is present (default: ``name``).
        loss_fields: the fields whose presence selects ``loss_name``.
        aliases: ``{other name: field}``, read-only names of fields (``lm_loss`` for
            ``loss``), on every variant.
        computed: ``{name: fn}``, read-only names on every variant whose value is
            ``fn(output)``, computed when read and never in the tuple.

    Returns:
        The family class; ``family.make(*values)`` builds an output.
    """
    tokens = fields.split() if isinstance(fields, str) else list(fields)
    all_fields: list[str] = []
    groups: list[tuple[str, ...]] = []
    group_of: list[int] = []
    for token in tokens:
        optional = token.endswith("?")
        names = tuple(token.rstrip("?").split(","))
        if optional:
            groups.append(names)
        for field in names:
            all_fields.append(field)
            group_of.append(len(groups) - 1 if optional else -1)
    clash = set(all_fields) & (set(aliases or {}) | set(computed or {}))
    if clash:
        raise ValueError(f"{name}: aliases and computed names {sorted(clash)} are also fields")
    variants: dict[tuple[bool, ...], type] = {}
    for present in itertools.product((True, False), repeat=len(groups)):
        kept = [f for f, g in zip(all_fields, group_of) if g < 0 or present[g]]
        has_loss = any(f in kept for f in loss_fields)
        type_name = loss_name if (has_loss and loss_name) else name
        variant = collections.namedtuple(type_name, kept)
        variant.__doc__ = doc
        variant.__module__ = __name__
        variant.to_tuple = _to_tuple  # type: ignore[attr-defined]
        variant.all_fields = tuple(all_fields)  # type: ignore[attr-defined]
        for f in all_fields:
            if f not in kept:
                setattr(variant, f, _default_property(f))
        for alias, target in (aliases or {}).items():
            setattr(variant, alias, property(lambda self, t=target: getattr(self, t)))
        for attr, fn in (computed or {}).items():
            setattr(variant, attr, property(fn, doc=f"{attr}: computed from the fields"))
        variants[present] = variant
    family = type(
        name,
        (OutputFamily,),
        {
            "__doc__": doc,
            "__module__": __name__,
            "fields": tuple(all_fields),
            "optional": tuple(groups),
            "_variants": variants,
            "_group_of": tuple(group_of),
        },
    )
    for variant in variants.values():
        family.register(variant)
    return family
