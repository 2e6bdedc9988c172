"""What the model modules share: JSON-friendly values, customer fingerprints, sklearn params."""

from __future__ import annotations

import abc
import hashlib
import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd


def plain(v: Any) -> Any:
    """A JSON-friendly value: numpy scalars to Python, NaN/inf to None, tuples to lists."""
    if isinstance(v, dict):
        return {str(k): plain(x) for k, x in v.items()}
    if isinstance(v, list | tuple | np.ndarray):
        return [plain(x) for x in v]
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def listing(values: Iterable[Any], limit: int = 12) -> str:
    """Values for a message: the first ``limit``, then how many in all."""
    vals = [str(v) for v in values]
    shown = ", ".join(vals[:limit])
    return shown + (f" ... ({len(vals):,} in all)" if len(vals) > limit else "")


def fingerprint(ids: Any) -> str:
    """sha256 of the sorted distinct customer ids (as text, one a line)."""
    text = pd.Index(pd.unique(np.asarray(ids, dtype=object))).astype(str).sort_values()
    return "sha256:" + hashlib.sha256("\n".join(text).encode("utf-8")).hexdigest()


class ParamsMixin(abc.ABC):
    """scikit-learn's parameter protocol over the keyword arguments of ``__init__``.

    A class using it defines ``_init_names()`` (the names of those arguments).
    """

    @classmethod
    @abc.abstractmethod
    def _init_names(cls) -> list[str]:
        """The names of ``__init__``'s keyword arguments."""

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The keyword arguments of ``__init__`` (scikit-learn's protocol)."""
        return {name: getattr(self, name) for name in self._init_names()}

    def set_params(self, **params: Any) -> Any:
        """Set ``__init__`` keyword arguments; returns self."""
        names = self._init_names()
        for key, value in params.items():
            if key not in names:
                raise ValueError(f"{type(self).__name__} has no parameter {key!r}")
            setattr(self, key, value)
        return self

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"
