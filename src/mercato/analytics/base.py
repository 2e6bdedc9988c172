"""What every analysis returns: a small table, a summary and notes that say how data was handled."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import numpy as np
import pandas as pd


def _plain(v: Any) -> Any:
    """A JSON-friendly Python value (numpy and pandas scalars, NaN and NaT become plain/None)."""
    if v is None:
        return None
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and (math.isnan(v) or math.isinf(v)):
        return None
    if isinstance(v, pd.Timestamp):
        return None if pd.isna(v) else v.isoformat()
    if isinstance(v, datetime | date):
        return v.isoformat()
    if v is pd.NaT:
        return None
    return v


@dataclass
class AnalysisResult:
    """The outcome of one analysis.

    ``table`` is small (already aggregated by the engine); ``summary`` holds headline numbers;
    ``notes`` say, in words, what was excluded or assumed (and how many rows that touched).
    """

    name: str
    table: pd.DataFrame
    summary: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def records(self) -> list[dict[str, Any]]:
        return [{k: _plain(v) for k, v in row.items()} for row in self.table.to_dict("records")]

    def to_dict(self) -> dict[str, Any]:
        return {
            "analysis": self.name,
            "summary": {
                k: _plain(v) if not isinstance(v, dict | list) else v
                for k, v in self.summary.items()
            },
            "rows": self.records(),
            "notes": self.notes,
        }
