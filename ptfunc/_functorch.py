"""Which torch.func transforms are active around the current call (eager mode only)."""

from __future__ import annotations

import torch

__all__ = ["under_transform"]


def under_transform(*kinds: str) -> bool:
    """True when a ``torch.func`` transform of one of ``kinds`` is active.

    ``kinds`` are names of ``torch._C._functorch.TransformType`` members
    (``"Vmap"``, ``"Jvp"``, ``"Grad"``...); none given means any transform.
    Always False while ``torch.compile`` traces (the check is not traceable,
    and compiled code does not need it).
    """
    if torch.compiler.is_compiling():
        return False
    try:
        from torch._C._functorch import TransformType
        from torch._functorch.pyfunctorch import retrieve_all_functorch_interpreters
    except ImportError:  # pragma: no cover - other torch layouts
        return False
    wanted = {getattr(TransformType, k) for k in kinds} if kinds else None
    return any(wanted is None or i.key() in wanted for i in retrieve_all_functorch_interpreters())
