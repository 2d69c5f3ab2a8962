"""Explicit, stateless random keys, JAX-style.

A key is an ``int64`` tensor of shape ``(2,)`` holding two 32-bit words. Every
draw is a pure function of ``(key, shape)``: the same key gives bit-identical
numbers on every call, device and batch size, and nothing touches PyTorch's
global generator. Because keys are ordinary tensors they are pytree leaves,
save with the params, and pass through ``torch.func.vmap`` (a batch of keys
gives independent draws, an unbatched key the same draw for every member),
``torch.func.grad`` and ``torch.compile`` without ``randomness=`` flags.

The generator is a counter-based hash: element ``i`` of a draw is two rounds of
the SplitMix64 finaliser over ``seed(key) xor i``, computed with plain
``int64`` tensor ops (wrapping multiplication, masked shifts). Those
ops vectorise, have ``vmap`` batching rules and fuse under Inductor, and give
the same bits on CPU, CUDA and compiled code (the tests hold eager to compiled).
``torch.func._random`` (a private Philox API) is not present in torch 2.13; its
stream would differ anyway, so this module is the one reproducible backend.

Example:
    >>> import ptfunc
    >>> k = ptfunc.random.key(0)
    >>> a, b = ptfunc.random.split(k)
    >>> u = ptfunc.random.uniform(a, (3,))
    >>> bool(((0 <= u) & (u < 1)).all())
    True
    >>> torch.equal(u, ptfunc.random.uniform(a, (3,)))
    True
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = [
    "Key",
    "key",
    "split",
    "split_for_dropout",
    "fold_in",
    "bits",
    "uniform",
    "normal",
    "bernoulli",
]

Key = Tensor
"""A random key: ``int64`` tensor of shape ``(2,)`` (or ``(n, 2)`` for a batch from ``split``)."""

_MASK32 = 0xFFFFFFFF
_GOLDEN64 = 0x9E3779B97F4A7C15 - (1 << 64)  # as a signed int64
_MIX1 = 0xBF58476D1CE4E5B9 - (1 << 64)
_MIX2 = 0x94D049BB133111EB - (1 << 64)


def _lsr(x: Tensor, n: int) -> Tensor:
    """Logical right shift of int64 lanes (torch's ``>>`` is arithmetic)."""
    return (x >> n) & ((1 << (64 - n)) - 1)


def _mix64(z: Tensor) -> Tensor:
    """SplitMix64 finaliser: a bijective avalanche mix of 64-bit words (int64 lanes)."""
    z = (z ^ _lsr(z, 30)) * _MIX1
    z = (z ^ _lsr(z, 27)) * _MIX2
    return z ^ _lsr(z, 31)


def _seed(k: Tensor) -> Tensor:
    """One 64-bit stream seed from the two 32-bit key words (last axis)."""
    return _mix64(k[..., 0] ^ _mix64(k[..., 1] + _GOLDEN64))


def _words(z: Tensor) -> Tensor:
    """A new key (two 32-bit words on a trailing axis) from 64-bit words."""
    return torch.stack([z & _MASK32, _lsr(z, 32)], dim=-1)


def _check_key(k: Tensor) -> None:
    if not isinstance(k, Tensor) or k.dtype != torch.int64 or k.shape[-1:] != (2,):
        got = f"{k.dtype} tensor of shape {tuple(k.shape)}" if isinstance(k, Tensor) else type(k)
        raise TypeError(f"expected a random key (int64 tensor of shape (2,)), got {got}")


def key(seed: int, *, device: torch.device | str | None = None) -> Key:
    """Make a key from an integer seed.

    Args:
        seed: any Python integer (negative and > 2**32 seeds are fine).
        device: where the key lives; draws happen on the key's device.

    Returns:
        ``int64`` tensor of shape ``(2,)``.
    """
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    seed %= 1 << 64
    z = torch.tensor(
        seed - (1 << 64) if seed >= 1 << 63 else seed, dtype=torch.int64, device=device
    )
    return _words(_mix64(z + _GOLDEN64))


def fold_in(k: Key, data: int | Tensor) -> Key:
    """Derive a new key from ``k`` and an integer (or int tensor under ``vmap``).

    ``fold_in(k, i)`` for different ``i`` gives independent keys; this is how a
    model derives one key per layer and per dropout site.
    """
    _check_key(k)
    d = torch.as_tensor(data, dtype=torch.int64, device=k.device)
    return _words(_mix64(_seed(k) ^ _mix64(d * _GOLDEN64 + _MIX2)))


def split(k: Key, num: int = 2) -> Key:
    """Split a key into ``num`` independent keys, stacked as ``(num, 2)``.

    ``a, b = split(k)`` unpacks along the first axis.
    """
    _check_key(k)
    if num < 1:
        raise ValueError(f"split needs num >= 1, got {num}")
    counter = torch.arange(1, num + 1, dtype=torch.int64, device=k.device)
    return _words(_mix64(_seed(k).unsqueeze(-1) + counter * _MIX1))


def split_for_dropout(k: Key | None, num: int, train: bool) -> list[Key | None]:
    """``num`` independent keys for dropout sites, or ``num`` Nones when not training
    (or when no key was given; callers check that ``train=True`` has one)."""
    if not train or k is None:
        return [None] * num
    return list(split(k, num))


def bits(k: Key, shape: Sequence[int]) -> Tensor:
    """Uniform random 32-bit words (``int64`` values in ``[0, 2**32)``) of ``shape``.

    Each 64-bit mix yields two words, so a draw costs half a mix per element.
    """
    _check_key(k)
    shape = tuple(int(s) for s in shape)
    n = math.prod(shape)
    counter = torch.arange((n + 1) // 2, dtype=torch.int64, device=k.device)
    # The counter enters through xor with a loaded value, never as ``arange * constant``:
    # Inductor would treat that as an index expression and overflow its int64 printer.
    z = _mix64(_mix64(counter ^ _seed(k).unsqueeze(-1)) + _GOLDEN64)
    words = torch.stack([z & _MASK32, _lsr(z, 32)], dim=-1).flatten(-2)[..., :n]
    return words.reshape((*k.shape[:-1], *shape))


def uniform(
    k: Key,
    shape: Sequence[int],
    *,
    dtype: torch.dtype = torch.float32,
    minval: float = 0.0,
    maxval: float = 1.0,
) -> Tensor:
    """Uniform floats in ``[minval, maxval)`` of ``shape`` (24 random bits each)."""
    u = (bits(k, shape) >> 8).to(torch.float32) * (1.0 / (1 << 24))
    if minval != 0.0 or maxval != 1.0:
        u = u * (maxval - minval) + minval
    return u.to(dtype)


def normal(k: Key, shape: Sequence[int], *, dtype: torch.dtype = torch.float32) -> Tensor:
    """Standard normal samples of ``shape`` (Box-Muller over two uniform streams)."""
    k1, k2 = split(k)
    u1 = uniform(k1, shape)
    u2 = uniform(k2, shape)
    r = torch.sqrt(-2.0 * torch.log1p(-u1))  # 1 - u1 lies in (0, 1]
    return (r * torch.cos((2.0 * math.pi) * u2)).to(dtype)


def bernoulli(k: Key, p: float | Tensor, shape: Sequence[int]) -> Tensor:
    """Boolean tensor of ``shape`` whose entries are True with probability ``p``.

    A Python-number ``p`` is compared with the raw 32-bit words (no float
    conversion); a tensor ``p`` with 24-bit uniforms.
    """
    if isinstance(p, Tensor):
        return uniform(k, shape) < p
    return bits(k, shape) < round(float(p) * (1 << 32))
