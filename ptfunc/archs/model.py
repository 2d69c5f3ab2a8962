"""The ``Model`` base: a static object holding a config, with pure ``init`` and ``apply``.

A model holds no tensors. ``params = model.init(key)`` builds a params tree;
``model.apply(params, *inputs, train=False, key=None, **options)`` is a pure
function of its arguments, so ``torch.func.grad``/``vmap``/``jvp`` and
``torch.compile`` see an ordinary function.

Inputs are checked at the boundary of every ``apply``, with the same words in every
architecture (:mod:`ptfunc.archs.inputs`): shapes and dtypes always (no graph break
under ``torch.compile``), values (ids in the vocabulary, token types, positions) when
``validate=True``, the default, and the values can be read (eager mode, outside
``torch.func`` transforms). ``apply(..., validate=False)`` skips the value checks.

Outputs are NamedTuples holding tensors only, indexed as pytorch-transformers 1.0's
tuples: the fields that a call does not return (``loss`` without labels,
``hidden_states`` / ``attentions`` unless asked for) are left out of the tuple, so
``out[i]``, ``out[-1]`` and unpacking give 1.0's elements, and read by name as ``()``
or ``None`` (:mod:`ptfunc.archs.output_tuple`). ``out.to_tuple()`` is the plain tuple.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any, ClassVar

from torch import Tensor

from ..random import Key
from ..tree import Params
from .config import PretrainedConfig
from .output_tuple import OutputFamily, output_family

__all__ = ["Model", "output_types", "check_options"]


class Model:
    """Base class of every architecture's model constructors.

    Class attributes used by ``ptfunc.io`` to map checkpoints by name:

    Attributes:
        config_class: the config type this model takes.
        base_model_prefix: where head models keep the base model in params and
            checkpoints (``"bert"``), set on base models too, as in the seed.
        is_base_model: True for the bare model, whose params are not nested
            under ``base_model_prefix``.
        tied: ``{checkpoint name: param path}`` for weights stored once in the
            params and twice in checkpoints (the MLM decoder reads the word
            embeddings).
        ignored_checkpoint_keys: suffixes of checkpoint names that carry no
            parameter (buffers such as ``position_ids``).
        token_embedding_path: the token-embedding leaf, relative to the base
            model's params (used by :meth:`resize_token_embeddings`).
        vocab_biases: paths of vocabulary-sized biases in the whole params.
        checkpoint_aliases: ``{name in other files: param name}`` read on load (GPT-NeoX's
            ``lm_head.weight``, transformers 5's name for Pythia's ``embed_out.weight``).
    """

    config_class: ClassVar[type[PretrainedConfig]] = PretrainedConfig
    base_model_prefix: ClassVar[str] = ""
    is_base_model: ClassVar[bool] = False
    tied: ClassVar[Mapping[str, str]] = {}
    token_embedding_path: ClassVar[Sequence[str]] = ()
    vocab_biases: ClassVar[Sequence[Sequence[str]]] = ()
    ignored_checkpoint_keys: ClassVar[Sequence[str]] = ()
    checkpoint_aliases: ClassVar[Mapping[str, str]] = {}

    def __init__(self, config: PretrainedConfig) -> None:
        if not isinstance(config, self.config_class):
            raise TypeError(
                f"{type(self).__name__} expects a {self.config_class.__name__}, "
                f"got {type(config).__name__}"
            )
        self.config = config

    def init(self, key: Key) -> Params:
        """Initialise a params tree (as the seed initialises its modules)."""
        raise NotImplementedError

    def apply(
        self,
        params: Params,
        *inputs: Any,
        train: bool = False,
        key: Key | None = None,
        **options: Any,
    ) -> Any:
        """Run the model: a pure function of params, inputs and key.

        Every model also takes ``validate: bool = True``: False skips the value checks of
        the inputs (see :mod:`ptfunc.archs.inputs`).
        """
        raise NotImplementedError

    @property
    def params_prefix(self) -> str:
        """The prefix of the base model's names in this model's params ("" for a base model)."""
        return "" if self.is_base_model else self.base_model_prefix

    @classmethod
    def from_pretrained(cls, name_or_path: Any, **kwargs: Any) -> tuple[Any, Params]:
        """``(model, params)`` from a directory, a 1.0 shortcut name or a Hub repo id.

        The 1.0 spelling of :func:`ptfunc.io.from_pretrained` (which documents the
        options: ``revision=``, ``dtype=``, ``device=``, ``key=``, config overrides...).
        Unlike 1.0 it returns the params too, since a ptfunc model holds none.

        Example:
            >>> from ptfunc.archs import bert
            >>> name = "bert-base-uncased"
            >>> model, params = bert.BertForMaskedLM.from_pretrained(name)  # doctest: +SKIP
        """
        from ..io import from_pretrained

        return from_pretrained(name_or_path, cls, **kwargs)

    def save_pretrained(
        self, save_directory: Any, params: Params, *, format: str = "safetensors"
    ) -> None:
        """Write config.json and the weights (``format="pt1"``: 1.0's pytorch_model.bin);
        see :func:`ptfunc.io.save_pretrained`."""
        from ..io import save_pretrained

        save_pretrained(save_directory, self, params, format=format)

    def resize_token_embeddings(self, params: Params, new_num_tokens: int, *, key: Key):
        """Pure vocabulary resize: returns ``(model, params)``; see :mod:`ptfunc.archs.resize`."""
        from .resize import resize_token_embeddings

        return resize_token_embeddings(self, params, new_num_tokens, key=key)

    def __call__(self, params: Params, *inputs: Any, **options: Any) -> Any:
        return self.apply(params, *inputs, **options)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config!r})"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.config == other.config  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self), self.config))


def output_types(name: str, fields: str, doc: str) -> type[OutputFamily]:
    """Define a model's output family: ``loss`` first when labels are given (``name +
    "WithLoss"``), then ``fields``; ``hidden_states`` and ``attentions`` are optional.

    Args:
        name: type name, e.g. ``"MaskedLMOutput"``.
        fields: space-separated field names, without ``loss``; ``name?`` marks another
            optional field (see :mod:`ptfunc.archs.output_tuple`).
        doc: docstring (shapes of each field).
    """
    optional = {"hidden_states", "attentions"}
    marked = " ".join(f + "?" if f in optional else f for f in fields.split())
    doc_loss = doc + "\n\nloss: scalar float32 tensor, first, as in pytorch-transformers."
    return output_family(name, "loss? " + marked, doc_loss, loss_name=name + "WithLoss")


def make_output(family: type[OutputFamily], loss: Tensor | None, *values: Any) -> Any:
    """The output of ``family`` holding ``loss`` (left out when None) and ``values``."""
    return family.make(loss, *values)


def check_options(owner: str, options: Mapping[str, Any], accepted: Collection[str]) -> None:
    """Refuse call options a model does not take (a misspelt ``atention_mask``...).

    Raises:
        TypeError: naming the unexpected options and the accepted ones.
    """
    unknown = set(options) - set(accepted)
    if unknown:
        raise TypeError(
            f"{owner} got unexpected options {sorted(unknown)}; "
            f"expected some of {sorted(accepted)} or the head's labels"
        )
