"""What every command shares: the common options, output (human or one JSON object), progress."""

from __future__ import annotations

import contextlib
import json
import math
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

WorkspaceOpt = Annotated[
    Path | None,
    typer.Option(
        "--workspace",
        "-w",
        help="Workspace folder (default: $MERCATO_HOME or ./mercato-workspace).",
        show_default=False,
    ),
]
JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print one JSON object on stdout and nothing else.")
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Print only errors.")]


def _default(o: Any) -> Any:
    if isinstance(o, datetime | date):
        return o.isoformat()
    if isinstance(o, Path):
        return str(o)
    if hasattr(o, "item"):
        return o.item()
    if hasattr(o, "to_dict"):
        return o.to_dict()
    return str(o)


@dataclass
class Output:
    """Where a command writes: a Rich console for people, or one JSON object for scripts."""

    json_mode: bool = False
    quiet: bool = False

    def __post_init__(self) -> None:
        self.console = Console(stderr=self.json_mode, quiet=self.quiet and not self.json_mode)
        if not self.console.is_terminal:
            self.console.width = max(self.console.width, 160)  # pipes and logs: no cramped tables
        self.err = Console(stderr=True)

    def print(self, *args: Any, **kwargs: Any) -> None:
        if not (self.json_mode or self.quiet):
            kwargs.setdefault("soft_wrap", True)  # long paths and messages stay on one line
            self.console.print(*args, **kwargs)

    def table(self, title: str, columns: list[str], rows: list[list[Any]]) -> None:
        if self.json_mode or self.quiet:
            return
        t = Table(title=title, title_justify="left")
        for c in columns:
            t.add_column(c, overflow="fold")
        for r in rows:
            t.add_row(*["" if v is None else str(v) for v in r])
        self.console.print(t)

    def result(self, payload: dict[str, Any]) -> None:
        """The command's result: printed as JSON in --json mode (the only stdout output)."""
        if self.json_mode:
            sys.stdout.write(json.dumps({"ok": True, **payload}, default=_default) + "\n")
            sys.stdout.flush()

    @contextlib.contextmanager
    def progress(self, description: str, total: int | None) -> Iterator[Callable[..., None]]:
        """A Rich progress bar (on stderr), silent in --json and --quiet modes.

        Yields ``update(done, total=None, description=None)``.
        """
        if self.json_mode or self.quiet:
            yield lambda *a, **k: None
            return
        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=True,
        ) as bar:
            task = bar.add_task(description, total=total)

            def update(done: int, total: int | None = None, description: str | None = None):
                kwargs: dict[str, Any] = {"completed": done}
                if total is not None:
                    kwargs["total"] = total
                if description is not None:
                    kwargs["description"] = description
                bar.update(task, **kwargs)

            yield update


def human_int(n: Any) -> str:
    try:
        return f"{int(n):,}"
    except (TypeError, ValueError):
        return str(n)


def fmt(v: Any, digits: int = 4) -> str:
    """A number for a table: fixed decimals for floats, thousands for ints, blank for None/NaN."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return ""
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    return str(v)
