"""``HeadModel``: a base model's params under ``base_model_prefix`` plus a head beside them.

BERT's, XLNet's and XLM's head models share this shape: ``init`` builds the base
model's tree and the head's own params, and ``apply`` first runs the base model
(:meth:`HeadModel._encode`), refusing options the base model does not take and
splitting the key between the base model's dropout and the head's.
"""

from __future__ import annotations

from typing import Any, ClassVar

from torch import Tensor

from ..layers import dropout
from ..random import Key, split, split_for_dropout
from ..tree import Params
from .model import Model, check_options

__all__ = ["HeadModel"]


class HeadModel(Model):
    """A head over a base model; subclasses supply the three hooks below.

    Attributes:
        base_options: the call options passed on to the base model.
    """

    base_options: ClassVar[frozenset[str]] = frozenset()

    def init_base(self, key: Key) -> Params:
        """The base model's params (under ``base_model_prefix``)."""
        raise NotImplementedError

    def init_head(self, key: Key) -> Params:
        """The head's own params (beside the base model's)."""
        raise NotImplementedError

    def run_base(
        self, params: Params, input_ids: Tensor, *, key: Key | None, train: bool, **options: Any
    ) -> Any:
        """Run the base model on its own params; ``options`` are among ``base_options``."""
        raise NotImplementedError

    def init(self, key: Key) -> Params:
        kb, kh = split(key)
        return {self.base_model_prefix: self.init_base(kb), **self.init_head(kh)}

    def _encode(
        self,
        params: Params,
        input_ids: Tensor,
        options: dict[str, Any],
        key: Key | None,
        train: bool,
    ) -> tuple[Any, Key | None]:
        """Run the base model; returns its output and a key for the head's own dropout."""
        owner = f"{type(self).__name__}.apply"
        check_options(owner, options, self.base_options)
        dropout.require_key(train, key, owner)
        k_base, k_head = split_for_dropout(key, 2, train)
        base = params[self.base_model_prefix]
        return self.run_base(base, input_ids, key=k_base, train=train, **options), k_head
