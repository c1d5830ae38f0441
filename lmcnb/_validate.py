"""Shared argument validators (private): scalar ints, reals, bools, string choices and ``torch.Generator``.

Every validator takes the argument's ``name`` first, returns the value normalised to a plain Python type (or the
generator itself), and raises ``TypeError`` for a wrong type or ``ValueError`` for a value out of range, with a
message that starts with ``name``. Nothing is coerced silently:

- ``bool`` is rejected where a number is expected (``isinstance(True, int)`` is true in Python);
- integers are any :class:`numbers.Integral` (``int`` and NumPy integers); reals are any :class:`numbers.Real`
  (``int``, ``float`` and NumPy integers and floats);
- reals must be finite (NaN and ±inf are rejected).

Module-specific checks (tensors, shapes, λ grids, teachers, ...) stay in their modules. :func:`moved_keywords`
makes a keyword that moved into a configuration object fail with a message naming its new home.
"""
from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from numbers import Integral, Real
from typing import TypeVar

import torch

_F = TypeVar("_F", bound=Callable[..., object])

__all__ = ["check_bool", "check_choice", "check_generator", "check_int", "check_real"]


def check_int(name: str, value: object, minimum: int | None = None, *, allow_none: bool = False) -> int | None:
    """``value`` as an ``int`` if it is an integer (not a bool) ``>= minimum``.

    Args:
        name: the argument's name, used in error messages.
        value: the value to check: an ``int`` or a NumPy integer.
        minimum: smallest allowed value (``None``: no lower bound).
        allow_none: accept ``None`` and return it unchanged.

    Raises:
        TypeError: ``"{name} must be an int, got {type}"`` (``"an int or None"`` with ``allow_none``).
        ValueError: ``"{name} must be >= {minimum}, got {value}"``.
    """
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, Integral):
        kind = "an int or None" if allow_none else "an int"
        raise TypeError(f"{name} must be {kind}, got {type(value).__name__}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_real(name: str, value: object, low: float = -math.inf, high: float = math.inf, *,
               low_open: bool = False, high_open: bool = False) -> float:
    """``value`` as a ``float`` if it is a finite real number (not a bool) between ``low`` and ``high``.

    The bounds are inclusive unless ``low_open`` / ``high_open``; an infinite bound means no bound on that side.

    Raises:
        TypeError: ``"{name} must be a real number, got {type}"``.
        ValueError: ``"{name} must be finite and >= {low}, got {value}"`` (``> {low}`` if ``low_open``), likewise
            ``<= {high}``, or ``"... finite and in [{low}, {high}], ..."`` with both bounds (round brackets for
            open ends), or ``"{name} must be finite, got {value}"`` with none. Bounds print as passed.
    """
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    v = float(value)
    below = v < low or (low_open and v == low)
    above = v > high or (high_open and v == high)
    if not math.isfinite(v) or below or above:
        raise ValueError(f"{name} must be finite{_range(low, high, low_open, high_open)}, got {value}")
    return v


def _range(low: float, high: float, low_open: bool, high_open: bool) -> str:
    """The bound phrase of :func:`check_real`'s message: ``""``, ``" and >= 0"``, ``" and in (0, 1]"``, ..."""
    has_low, has_high = low != -math.inf, high != math.inf
    if has_low and has_high:
        return f" and in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
    if has_low:
        return f" and {'>' if low_open else '>='} {low}"
    if has_high:
        return f" and {'<' if high_open else '<='} {high}"
    return ""


def check_bool(name: str, value: object) -> bool:
    """``value`` itself if it is a ``bool`` (``0``, ``1`` and NumPy bools are rejected).

    Raises:
        TypeError: ``"{name} must be a bool, got {type}"``.
    """
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
    return value


def check_choice(name: str, value: object, choices: Sequence[str]) -> str:
    """``value`` as a ``str`` if it is a string equal to one of ``choices``.

    Raises:
        ValueError: ``"{name} must be one of {choices}, got {value!r}"`` (also for a value that is not a string).
    """
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    return str(value)


def check_generator(name: str, value: object) -> torch.Generator:
    """``value`` itself if it is a ``torch.Generator``.

    Raises:
        TypeError: ``"{name} must be a torch.Generator, got {type}"``.
    """
    if not isinstance(value, torch.Generator):
        raise TypeError(f"{name} must be a torch.Generator, got {type(value).__name__}")
    return value


def check_tensor(name: str, x: object, *, ndim: int | Sequence[int] | None = None, min_ndim: int = 0,
                 dtype: torch.dtype | None = None, why: str = "") -> torch.Tensor:
    """``x`` itself if it is a non-empty, finite tensor of a real floating dtype (exactly ``dtype`` if given).

    Args:
        ndim: the allowed rank(s); ``min_ndim``: the least rank. ``why``: appended to the dtype error, e.g.
            ``" (the closed forms are float64)"``.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if dtype is not None and x.dtype != dtype:
        raise TypeError(f"{name} must be {str(dtype).removeprefix('torch.')}{why}, got {x.dtype}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must have a real floating dtype{why}, got {x.dtype}")
    if ndim is not None:
        ndims = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if x.ndim not in ndims:
            raise ValueError(f"{name} must have {' or '.join(map(str, ndims))} dimension(s) "
                             f"({' or '.join(f'{n}-D' for n in ndims)}), got shape {tuple(x.shape)}")
    if x.ndim < min_ndim:
        raise ValueError(f"{name} must have at least {min_ndim} dimensions, got shape {tuple(x.shape)}")
    if x.numel() == 0:
        raise ValueError(f"{name} must be non-empty, got shape {tuple(x.shape)}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} contains NaN or inf")
    return x


def moved_message(name: str, found: Sequence[str], moved: Mapping[str, str], hint: str = "") -> str:
    """The one message for keywords that moved: ``f() no longer takes `k=`: it moved to `home``` (several:
    ``f() no longer takes `a=`, `b=`: `a=` moved to `A`; `b=` moved to `B```), then `` (hint)`` if given."""
    if len(found) == 1:
        text = f"{name}() no longer takes `{found[0]}=`: it moved to `{moved[found[0]]}`"
    else:
        text = (f"{name}() no longer takes {', '.join(f'`{k}=`' for k in found)}: "
                + "; ".join(f"`{k}=` moved to `{moved[k]}`" for k in found))
    return f"{text} ({hint})" if hint else text


def moved_keywords(moved: Mapping[str, str], *, hint: str = "") -> Callable[[_F], _F]:
    """Decorator for a function whose keyword arguments were grouped into a configuration object: a call that
    passes keywords in ``moved`` (``{keyword: its new home}``, e.g. ``{"steps": "GD(steps=…)"}``) raises
    ``TypeError: f() no longer takes `steps=`: it moved to `GD(steps=…)``` (:func:`moved_message`, with ``hint``)
    before anything else runs. The wrapped function keeps its signature (``inspect.signature`` follows
    ``__wrapped__``)."""
    def decorate(fn: _F) -> _F:
        @functools.wraps(fn)
        def wrapper(*args: object, **kwargs: object) -> object:
            found = [key for key in kwargs if key in moved]
            if found:
                raise TypeError(moved_message(fn.__name__, found, moved, hint))
            return fn(*args, **kwargs)
        return wrapper  # type: ignore[return-value]
    return decorate


class RenamedKeys(dict):
    """A result ``dict`` some of whose keys were renamed: reading an old key raises a ``KeyError`` that names the
    new one (``renamed``: ``{old: new}``), e.g. ``'naive' was renamed 'euclidean'``; everything else is a dict."""

    def __init__(self, data: Mapping[str, object], renamed: Mapping[str, str]) -> None:
        super().__init__(data)
        self.renamed = dict(renamed)

    def __missing__(self, key: object) -> object:
        if key in self.renamed:
            raise KeyError(f"{key!r} was renamed {self.renamed[key]!r}")
        raise KeyError(key)
