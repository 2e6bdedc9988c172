"""One exception family for everything Mercato raises on purpose.

An *expected* mistake (a bad file, a missing data set, an unknown table) raises a subclass of
:class:`MercatoError` whose message speaks to the user; the CLI prints it without a stack trace.
"""

from __future__ import annotations

from typing import Any


class MercatoError(Exception):
    """Base class of every error Mercato raises on purpose.

    ``hint`` tells the user what to do next (a command to run, a file to download).
    """

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"error": type(self).__name__, "message": self.message}
        if self.hint:
            out["hint"] = self.hint
        return out

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\nHint: {self.hint}"


class ConfigError(MercatoError):
    """A setting is missing or invalid, or the workspace is not usable."""


class WorkspaceError(ConfigError):
    """The workspace folder is missing or damaged."""


class DataError(MercatoError):
    """Input data does not fit the data model.

    Names the file, the line (1-based, counting the header as line 1; ``row`` for a DataFrame),
    the column, the value and what was expected, as far as they are known.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        row: int | None = None,
        column: str | None = None,
        value: Any = None,
        expected: str | None = None,
        problems: list[dict[str, Any]] | None = None,
        hint: str | None = None,
    ) -> None:
        where = []
        if file:
            where.append(str(file))
        if line is not None:
            where.append(f"line {line}")
        if row is not None:
            where.append(f"row {row}")
        if column:
            where.append(f"column {column!r}")
        text = message
        if where:
            text = f"{', '.join(where)}: {message}"
        if value is not None:
            shown = str(value)
            if len(shown) > 60:
                shown = shown[:57] + "..."
            text += f" (got {shown!r}"
            text += f", expected {expected})" if expected else ")"
        elif expected:
            text += f" (expected {expected})"
        super().__init__(text, hint=hint)
        self.file = file
        self.line = line
        self.row = row
        self.column = column
        self.value = value
        self.expected = expected
        self.problems = problems or []

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        for key in ("file", "line", "row", "column", "expected"):
            val = getattr(self, key)
            if val is not None:
                out[key] = val
        if self.problems:
            out["problems"] = self.problems[:100]
            out["problem_count"] = len(self.problems)
        return out


class DatasetNotFoundError(DataError):
    """A public data set is not in ``MERCATO_DATA_DIR``; the message says where to get it."""


class NotFittedError(MercatoError, ValueError):
    """A model was used before ``fit``."""


class ConsentError(MercatoError):
    """The customer has not consented to this use of their data."""


class AuthError(MercatoError):
    """The caller is not allowed to do this."""
