"""Rotary position embeddings (RoPE) and their context-extension scalings, as pure functions.

A :class:`Rope` is a frozen, hashable description read from a config.json by
:func:`from_config`; :func:`frequencies` turns it into the inverse frequencies,
:func:`cos_sin` into the cos/sin tables for given positions, and :func:`apply`
rotates queries and keys with the rotate-half convention of Llama and GPT-NeoX
(feature ``i`` is paired with feature ``i + rotary_dim // 2``; features past
``rotary_dim`` pass through, as in GPT-NeoX's ``rotary_pct``).

Supported ``rope_type`` values, each matching transformers 5 in float32:

* ``"default"``: ``inv_freq[k] = theta ** (-2k / rotary_dim)``.
* ``"linear"``: the default frequencies divided by ``factor``.
* ``"dynamic"``: NTK-aware base ``theta * (factor * L / max_pos - factor + 1) ** (d / (d - 2))``
  once the sequence length ``L`` exceeds ``max_position_embeddings``; the default below.
* ``"llama3"``: Llama 3.1's banded rescaling (``low_freq_factor``, ``high_freq_factor``,
  ``original_max_position_embeddings``).
* ``"yarn"``: YaRN's ramp between interpolated and extrapolated frequencies, plus
  ``attention_factor`` applied to cos and sin (derived from ``mscale``/``mscale_all_dim``
  when not given).
* ``"longrope"``: Phi-3's per-frequency ``short_factor``/``long_factor``, the long set
  chosen when the sequence is longer than ``original_max_position_embeddings``.

transformers' rotary modules keep state for ``"dynamic"``: they cache the longest
sequence seen and keep its frequencies for later, shorter calls. Here the frequencies
depend only on the positions of the current call (``position_ids.max() + 1``), which
is what a freshly built transformers module computes. The choice between the two sets
of frequencies is a ``torch.where`` on a 0-d tensor, so the functions trace under
``torch.compile(fullgraph=True)`` and ``vmap`` with no data-dependent Python branch.
Nothing is cached: the frequencies are a handful of small tensor ops per call.

>>> rope = from_config({"rope_type": "linear", "factor": 2.0}, head_dim=4,
...                    max_position_embeddings=16)
>>> frequencies(rope)[0].tolist()
[0.5, 0.004999999888241291]
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from ..errors import ConfigError

__all__ = [
    "ROPE_TYPES",
    "Rope",
    "from_config",
    "frequencies",
    "cos_sin",
    "apply",
    "softmax_scale",
]

ROPE_TYPES = ("default", "linear", "dynamic", "llama3", "yarn", "longrope")
"""The ``rope_type`` values this module implements."""

_ALIASES = {"su": "longrope"}
"""Old ``rope_scaling["type"]`` spellings (early Phi-3 configs wrote ``"su"``)."""

_REQUIRED = {
    "default": (),
    "linear": ("factor",),
    "dynamic": ("factor",),
    "llama3": ("factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings"),
    "yarn": ("factor",),
    "longrope": ("short_factor", "long_factor"),
}
"""Keys a rope dict must hold for each type (checked by :func:`from_config`)."""


def _number(value: Any, key: str, rope_type: str, *, positive: bool = True) -> float:
    """``value`` as a float, or a ConfigError naming ``key``, the value and what is expected."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok or (positive and not value > 0) or math.isnan(value):
        expected = "a positive number" if positive else "a number"
        raise ConfigError(
            f"rope_parameters[{key!r}] must be {expected} for rope_type {rope_type!r}, "
            f"got {value!r}"
        )
    return float(value)


def _whole(value: Any, key: str, rope_type: str) -> int:
    """``value`` as a positive int (floats with an integral value are accepted)."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok or not value > 0 or int(value) != value:
        raise ConfigError(
            f"rope_parameters[{key!r}] must be a positive integer for rope_type {rope_type!r}, "
            f"got {value!r}"
        )
    return int(value)


@dataclasses.dataclass(frozen=True)
class Rope:
    """Static (hashable) description of a rotary embedding.

    Build it with :func:`from_config`, or directly. Only the fields of ``rope_type``
    are read; the others keep their defaults. Lists given for ``short_factor`` /
    ``long_factor`` are stored as tuples so that the object stays hashable.

    Attributes:
        head_dim: width of one attention head.
        rotary_dim: leading features of a head that are rotated (even, ``<= head_dim``);
            ``int(head_dim * partial_rotary_factor)``.
        theta: ``rope_theta``, the base wavelength.
        rope_type: one of :data:`ROPE_TYPES`.
        max_position_embeddings: the model's context length (``"dynamic"`` rescales past
            it; ``"yarn"`` and ``"longrope"`` derive a missing ``factor`` from it).
        factor: context-extension factor (all types but ``"default"``).
        original_max_position_embeddings: pre-training context length
            (``"llama3"``, ``"yarn"``, ``"longrope"``).
        low_freq_factor, high_freq_factor: ``"llama3"`` band edges.
        beta_fast, beta_slow: ``"yarn"`` ramp bounds, in rotations (defaults 32 and 1).
        mscale, mscale_all_dim: ``"yarn"`` (DeepSeek) attention-factor numerator and
            denominator; used only when both are non-zero and ``attention_factor`` is None.
        attention_factor: multiplier of cos and sin (``"yarn"``, ``"longrope"``); None
            derives it from ``factor``.
        truncate: ``"yarn"``: round the ramp bounds outwards to whole dimensions.
        short_factor, long_factor: ``"longrope"`` per-frequency divisors,
            ``rotary_dim // 2`` each.
    """

    head_dim: int
    rotary_dim: int
    theta: float
    rope_type: str = "default"
    max_position_embeddings: int = 2048
    factor: float = 1.0
    original_max_position_embeddings: int | None = None
    low_freq_factor: float | None = None
    high_freq_factor: float | None = None
    beta_fast: float = 32.0
    beta_slow: float = 1.0
    mscale: float | None = None
    mscale_all_dim: float | None = None
    attention_factor: float | None = None
    truncate: bool = True
    short_factor: tuple[float, ...] | None = None
    long_factor: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        kind = self.rope_type
        if kind not in ROPE_TYPES:
            raise ConfigError(
                f"rope_parameters['rope_type'] = {kind!r} is not supported; "
                f"expected one of {', '.join(ROPE_TYPES)}"
            )
        if not isinstance(self.head_dim, int) or self.head_dim <= 0:
            raise ConfigError(f"head_dim must be a positive integer, got {self.head_dim!r}")
        if (
            not isinstance(self.rotary_dim, int)
            or self.rotary_dim <= 0
            or self.rotary_dim % 2
            or self.rotary_dim > self.head_dim
        ):
            raise ConfigError(
                f"rotary_dim must be a positive even integer <= head_dim={self.head_dim}, "
                f"got {self.rotary_dim!r}"
            )
        _number(self.theta, "rope_theta", kind)
        _whole(self.max_position_embeddings, "max_position_embeddings", kind)
        if kind != "default":
            _number(self.factor, "factor", kind)
        if kind == "dynamic" and self.rotary_dim == 2:
            raise ConfigError(
                "rope_type 'dynamic' needs rotary_dim > 2 (its exponent is d / (d - 2)), got 2"
            )
        if kind in ("llama3", "yarn", "longrope"):
            _whole(self.original_max_position_embeddings, "original_max_position_embeddings", kind)
        if kind == "llama3":
            low = _number(self.low_freq_factor, "low_freq_factor", kind)
            high = _number(self.high_freq_factor, "high_freq_factor", kind)
            if high <= low:
                raise ConfigError(
                    f"rope_parameters['high_freq_factor'] must be greater than low_freq_factor="
                    f"{low!r} for rope_type 'llama3', got {high!r}"
                )
        if kind == "yarn":
            _number(self.beta_fast, "beta_fast", kind)
            _number(self.beta_slow, "beta_slow", kind)
        if kind in ("yarn", "longrope") and self.attention_factor is not None:
            _number(self.attention_factor, "attention_factor", kind, positive=False)
        if kind == "longrope":
            for key in ("short_factor", "long_factor"):
                value = getattr(self, key)
                if not isinstance(value, Sequence) or isinstance(value, str):
                    raise ConfigError(
                        f"rope_parameters[{key!r}] must be a list of {self.rotary_dim // 2} "
                        f"numbers for rope_type 'longrope', got {value!r}"
                    )
                values = tuple(_number(v, key, kind) for v in value)
                if len(values) != self.rotary_dim // 2:
                    raise ConfigError(
                        f"rope_parameters[{key!r}] must hold rotary_dim // 2 = "
                        f"{self.rotary_dim // 2} numbers for rope_type 'longrope', "
                        f"got {len(values)}"
                    )
                object.__setattr__(self, key, values)


def from_config(
    rope_parameters: Mapping[str, Any] | None,
    *,
    head_dim: int,
    max_position_embeddings: int,
    rope_theta: float = 10000.0,
    partial_rotary_factor: float = 1.0,
    original_max_position_embeddings: int | None = None,
) -> Rope:
    """Read a config.json's rope dict into a :class:`Rope`.

    Args:
        rope_parameters: either transformers 5's ``rope_parameters`` (``rope_type``,
            ``rope_theta`` and possibly ``partial_rotary_factor`` inside) or the older
            ``rope_scaling`` (``type`` or ``rope_type``, ``factor``, ...; theta given
            separately). None or ``{}`` is the default rope.
        head_dim: width of one attention head.
        max_position_embeddings: the config's ``max_position_embeddings``.
        rope_theta: used when the dict holds no ``rope_theta``.
        partial_rotary_factor: used when the dict holds no ``partial_rotary_factor``.
        original_max_position_embeddings: a top-level config field of that name
            (Phi-3 writes it outside ``rope_scaling``); when given it overrides the dict's
            value for ``"llama3"``, ``"yarn"`` and ``"longrope"``, as transformers does.

    Returns:
        The :class:`Rope`. ``"yarn"`` and ``"longrope"`` without an
        ``original_max_position_embeddings`` use ``max_position_embeddings``; a ``"yarn"``
        ``factor`` of None becomes ``max_position_embeddings / original_max_position_embeddings``;
        ``"yarn"``'s ``beta_fast``/``beta_slow`` of None (or 0) become 32 and 1.

    Raises:
        ConfigError: (a ValueError) unknown ``rope_type``, a missing required key, a
            non-positive or non-numeric value, or an odd or empty ``rotary_dim``.

    >>> rope = from_config({"type": "dynamic", "factor": 2.0}, head_dim=64,
    ...                    max_position_embeddings=2048, partial_rotary_factor=0.25)
    >>> rope.rope_type, rope.rotary_dim, rope.theta
    ('dynamic', 16, 10000.0)
    >>> from_config({"rope_type": "linear"}, head_dim=64, max_position_embeddings=2048)
    Traceback (most recent call last):
    ...
    ptfunc.errors.ConfigError: rope_parameters is missing 'factor', required for rope_type 'linear'
    """
    params = dict(rope_parameters or {})
    kind = params.get("rope_type") or params.get("type") or "default"
    kind = _ALIASES.get(kind, kind)
    if kind not in ROPE_TYPES:
        raise ConfigError(
            f"rope_parameters['rope_type'] = {kind!r} is not supported; "
            f"expected one of {', '.join(ROPE_TYPES)}"
        )
    if original_max_position_embeddings is not None and kind in ("llama3", "yarn", "longrope"):
        params["original_max_position_embeddings"] = original_max_position_embeddings
    for key in _REQUIRED[kind]:
        if key not in params:
            raise ConfigError(
                f"rope_parameters is missing {key!r}, required for rope_type {kind!r}"
            )

    theta = params.get("rope_theta")
    theta = _number(rope_theta if theta is None else theta, "rope_theta", kind)
    partial = params.get("partial_rotary_factor")
    partial = partial_rotary_factor if partial is None else partial
    if _number(partial, "partial_rotary_factor", kind) > 1.0:
        raise ConfigError(
            f"rope_parameters['partial_rotary_factor'] must be in (0, 1], got {partial!r}"
        )
    rotary_dim = int(head_dim * partial)
    if rotary_dim <= 0 or rotary_dim % 2:
        raise ConfigError(
            f"rope_parameters['partial_rotary_factor'] = {partial!r} with head_dim={head_dim} "
            f"gives rotary_dim={rotary_dim}; expected a positive even rotary_dim"
        )

    fields: dict[str, Any] = {}
    if kind in ("llama3", "yarn", "longrope"):
        original = params.get("original_max_position_embeddings")
        if original is None and kind != "llama3":
            original = max_position_embeddings  # transformers' fallback (llama3 must say)
        fields["original_max_position_embeddings"] = _whole(
            original, "original_max_position_embeddings", kind
        )
    factor = params.get("factor")
    if factor is None and kind in ("yarn", "longrope"):
        factor = max_position_embeddings / fields["original_max_position_embeddings"]
    if kind != "default":
        fields["factor"] = _number(factor, "factor", kind)
    if kind == "llama3":
        fields["low_freq_factor"] = params["low_freq_factor"]
        fields["high_freq_factor"] = params["high_freq_factor"]
    if kind == "yarn":
        fields["beta_fast"] = params.get("beta_fast") or 32.0
        fields["beta_slow"] = params.get("beta_slow") or 1.0
        fields["mscale"] = params.get("mscale")
        fields["mscale_all_dim"] = params.get("mscale_all_dim")
        # An explicit None disables truncation, as in transformers (only a missing key means True).
        fields["truncate"] = bool(params.get("truncate", True))
    if kind in ("yarn", "longrope"):
        fields["attention_factor"] = params.get("attention_factor")
    if kind == "longrope":
        fields["short_factor"] = params["short_factor"]
        fields["long_factor"] = params["long_factor"]
    return Rope(
        head_dim=head_dim,
        rotary_dim=rotary_dim,
        theta=theta,
        rope_type=kind,
        max_position_embeddings=max_position_embeddings,
        **fields,
    )


def _exponents(rope: Rope, device: torch.device | str | None) -> Tensor:
    """``2k / rotary_dim`` for ``k < rotary_dim // 2``, float32 (rotary_dim // 2,)."""
    even = torch.arange(0, rope.rotary_dim, 2, dtype=torch.int64, device=device)
    return even.to(torch.float32) / rope.rotary_dim


def _default_inv_freq(rope: Rope, device: torch.device | str | None) -> Tensor:
    return 1.0 / (rope.theta ** _exponents(rope, device))


def _dynamic_inv_freq(rope: Rope, seq_len: Tensor, device: torch.device | str | None) -> Tensor:
    """NTK-rescaled frequencies for a 0-d ``seq_len``, in float32 tensor arithmetic only."""
    limit = rope.max_position_embeddings
    length = seq_len.clamp(min=limit).to(device=device, dtype=torch.float32)
    d = rope.rotary_dim
    base = rope.theta * ((rope.factor * length / limit) - (rope.factor - 1)) ** (d / (d - 2))
    return 1.0 / (base ** _exponents(rope, device))


def _llama3_inv_freq(rope: Rope, device: torch.device | str | None) -> Tensor:
    inv_freq = _default_inv_freq(rope, device)
    context = rope.original_max_position_embeddings
    low, high = rope.low_freq_factor, rope.high_freq_factor
    wavelength = 2 * math.pi / inv_freq
    # Long wavelengths are divided by factor, short ones kept, the band between blended.
    scaled = torch.where(wavelength > context / low, inv_freq / rope.factor, inv_freq)
    smooth = (context / wavelength - low) / (high - low)
    blended = (1 - smooth) * scaled / rope.factor + smooth * scaled
    in_band = ~(wavelength < context / high) * ~(wavelength > context / low)
    return torch.where(in_band, blended, scaled)


def _yarn_mscale(factor: float, mscale: float = 1.0) -> float:
    """YaRN's ``0.1 * mscale * ln(factor) + 1`` (1 for factor <= 1)."""
    return 1.0 if factor <= 1 else 0.1 * mscale * math.log(factor) + 1.0


def _yarn_attention_factor(rope: Rope) -> float:
    if rope.attention_factor is not None:
        return rope.attention_factor
    if rope.mscale and rope.mscale_all_dim:
        return float(
            _yarn_mscale(rope.factor, rope.mscale) / _yarn_mscale(rope.factor, rope.mscale_all_dim)
        )
    return _yarn_mscale(rope.factor)


def _yarn_inv_freq(rope: Rope, device: torch.device | str | None) -> Tensor:
    d = rope.rotary_dim
    context = rope.original_max_position_embeddings

    def dimension_of(rotations: float) -> float:
        # The (fractional) dimension whose wavelength fits `rotations` times into the context.
        return (d * math.log(context / (rotations * 2 * math.pi))) / (2 * math.log(rope.theta))

    low, high = dimension_of(rope.beta_fast), dimension_of(rope.beta_slow)
    if rope.truncate:
        low, high = math.floor(low), math.ceil(high)
    low, high = max(low, 0), min(high, d - 1)
    if low == high:
        high += 0.001

    wavelengths = rope.theta ** _exponents(rope, device)
    extrapolated = 1.0 / wavelengths
    interpolated = 1.0 / (rope.factor * wavelengths)
    index = torch.arange(d // 2, dtype=torch.float32, device=device)
    keep = 1 - torch.clamp((index - low) / (high - low), 0, 1)
    return interpolated * (1 - keep) + extrapolated * keep


def _longrope_attention_factor(rope: Rope) -> float:
    if rope.attention_factor is not None:
        return rope.attention_factor
    if rope.factor <= 1.0:
        return 1.0
    return math.sqrt(1 + math.log(rope.factor) / math.log(rope.original_max_position_embeddings))


def _longrope_inv_freq(
    rope: Rope, divisors: tuple[float, ...], device: torch.device | str | None
) -> Tensor:
    divisors_t = torch.tensor(divisors, dtype=torch.float32, device=device)
    return 1.0 / (divisors_t * rope.theta ** _exponents(rope, device))


def frequencies(
    rope: Rope, *, seq_len: Tensor | int | None = None, device: torch.device | str | None = None
) -> tuple[Tensor, float]:
    """Inverse frequencies and the cos/sin multiplier, as transformers 5 computes them.

    Args:
        rope: the description.
        seq_len: 0-d integer tensor, the largest position + 1 (read by ``"dynamic"`` and
            ``"longrope"``, ignored by the others). ``"dynamic"`` uses the rescaled base when
            ``seq_len > max_position_embeddings`` and ``"longrope"`` the long factors when
            ``seq_len > original_max_position_embeddings``; the choice is a ``torch.where``,
            so no value leaves the graph. None selects the default / short set, as at
            transformers' initialisation.
        device: where to build the tensor (``seq_len``'s device wins when it is given).

    Returns:
        ``(inv_freq, attention_scaling)``: float32 (rotary_dim // 2,) and a Python float
        (1.0 except for ``"yarn"`` and ``"longrope"``).

    >>> inv_freq, scale = frequencies(Rope(head_dim=4, rotary_dim=4, theta=100.0))
    >>> inv_freq.tolist(), scale
    ([1.0, 0.10000000149011612], 1.0)
    """
    if isinstance(seq_len, Tensor):
        device = seq_len.device
    elif seq_len is not None:
        seq_len = torch.tensor(seq_len, dtype=torch.int64, device=device)
    kind = rope.rope_type
    if kind == "default":
        return _default_inv_freq(rope, device), 1.0
    if kind == "linear":
        return _default_inv_freq(rope, device) / rope.factor, 1.0
    if kind == "dynamic":
        short = _default_inv_freq(rope, device)
        if seq_len is None:
            return short, 1.0
        longer = seq_len > rope.max_position_embeddings
        return torch.where(longer, _dynamic_inv_freq(rope, seq_len, device), short), 1.0
    if kind == "llama3":
        return _llama3_inv_freq(rope, device), 1.0
    if kind == "yarn":
        return _yarn_inv_freq(rope, device), _yarn_attention_factor(rope)
    # longrope
    short = _longrope_inv_freq(rope, rope.short_factor, device)
    scale = _longrope_attention_factor(rope)
    if seq_len is None:
        return short, scale
    long = _longrope_inv_freq(rope, rope.long_factor, device)
    return torch.where(seq_len > rope.original_max_position_embeddings, long, short), scale


def cos_sin(rope: Rope, position_ids: Tensor, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """Cos and sin tables for integer positions.

    Args:
        rope: the description.
        position_ids: integer tensor (batch, seq) (batch may be 1; any leading shape works).
        dtype: dtype of the results.

    Returns:
        ``(cos, sin)``, each (batch, seq, rotary_dim) in ``dtype``: the angles
        ``position * inv_freq`` are formed in float32, repeated for both halves, and
        cos/sin multiplied by ``attention_scaling`` before the cast, as in transformers.
        ``"dynamic"`` and ``"longrope"`` read ``seq_len = position_ids.max() + 1`` (over the
        whole batch; per example under ``vmap``). transformers' ``"dynamic"`` module also
        remembers the longest length it has seen; that state is not reproduced: the result
        equals a freshly built module's.

    >>> cos, sin = cos_sin(Rope(head_dim=4, rotary_dim=4, theta=100.0),
    ...                    torch.tensor([[0, 1]]), torch.float32)
    >>> cos.shape
    torch.Size([1, 2, 4])
    >>> sin[0, 1].tolist()
    [0.8414709568023682, 0.0998334214091301, 0.8414709568023682, 0.0998334214091301]
    """
    seq_len = position_ids.max() + 1 if rope.rope_type in ("dynamic", "longrope") else None
    inv_freq, scaling = frequencies(rope, seq_len=seq_len, device=position_ids.device)
    angles = position_ids[..., None].to(torch.float32) * inv_freq
    angles = torch.cat((angles, angles), dim=-1)
    cos = angles.cos() * scaling
    sin = angles.sin() * scaling
    return cos.to(dtype), sin.to(dtype)


def _rotate_half(x: Tensor) -> Tensor:
    """(..., 2h) -> (..., 2h): ``[x1, x2] -> [-x2, x1]``."""
    first, second = x.chunk(2, dim=-1)
    return torch.cat((-second, first), dim=-1)


def apply(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate queries or keys by their positions.

    Args:
        x: (batch, heads, seq, head_dim).
        cos, sin: (batch, seq, rotary_dim) from :func:`cos_sin` (batch may be 1).

    Returns:
        Tensor of ``x``'s shape and dtype: the first ``rotary_dim`` features rotated with
        the rotate-half convention, ``x * cos + rotate_half(x) * sin``; the rest passed
        through unchanged (partial rotary, GPT-NeoX's ``rotary_pct``).

    >>> rope = Rope(head_dim=4, rotary_dim=2, theta=100.0)
    >>> cos, sin = cos_sin(rope, torch.tensor([[1]]), torch.float32)
    >>> apply(torch.tensor([[[[1.0, 0.0, 5.0, 6.0]]]]), cos, sin).tolist()
    [[[[0.5403023362159729, 0.8414709568023682, 5.0, 6.0]]]]
    """
    rotary_dim = cos.shape[-1]
    if rotary_dim % 2 or rotary_dim > x.shape[-1] or sin.shape != cos.shape:
        raise ValueError(
            f"cos/sin must share an even last dimension <= head_dim={x.shape[-1]}, "
            f"got cos {tuple(cos.shape)} and sin {tuple(sin.shape)}"
        )
    cos, sin = cos.unsqueeze(-3), sin.unsqueeze(-3)
    if rotary_dim == x.shape[-1]:
        return (x * cos + _rotate_half(x) * sin).to(x.dtype)
    rotated, passed = x[..., :rotary_dim], x[..., rotary_dim:]
    rotated = rotated * cos + _rotate_half(rotated) * sin
    return torch.cat((rotated.to(x.dtype), passed), dim=-1)


def softmax_scale(rope: Rope, scale: float) -> float:
    """The attention softmax scale with YaRN's ``mscale_all_dim`` folded in.

    DeepSeek-style (MLA) models scale ``q @ k^T`` by ``mscale ** 2`` as well, where
    ``mscale = 0.1 * mscale_all_dim * ln(factor) + 1``; every other rope returns ``scale``.

    >>> softmax_scale(Rope(16, 16, 1e4, "yarn", factor=math.e, original_max_position_embeddings=8,
    ...                    mscale_all_dim=1.0), 1.0)
    1.2100000000000002
    """
    if rope.rope_type == "yarn" and rope.mscale_all_dim:
        mscale = _yarn_mscale(rope.factor, rope.mscale_all_dim)
        return scale * mscale * mscale
    return scale
