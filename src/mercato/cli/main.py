"""The ``mercato`` command: a thin layer over the library.

Every command takes ``--workspace``, ``--json`` (one JSON object on stdout) and ``--quiet``. An
expected mistake prints its message (and a hint) without a stack trace and exits with 1.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import typer

from mercato import __version__
from mercato.cli import analyze as analyze_cmd
from mercato.cli import clv as clv_cmd
from mercato.cli import datasets as datasets_cmd
from mercato.cli import demo as demo_cmd
from mercato.cli import ingest as ingest_cmd
from mercato.cli import models as models_cmd
from mercato.cli import predict as predict_cmd
from mercato.cli import recommend as recommend_cmd
from mercato.cli import report as report_cmd
from mercato.cli import synth as synth_cmd
from mercato.cli import uplift as uplift_cmd
from mercato.cli import workspace as workspace_cmd
from mercato.errors import MercatoError

app = typer.Typer(
    name="mercato",
    help="Mercato: marketing data in, analysis, predictions and recommendations out.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"mercato {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Show the version."
    ),
) -> None:
    """Mercato: marketing data in, analysis, predictions and recommendations out."""


workspace_cmd.register(app)
ingest_cmd.register(app)
synth_cmd.register(app)
app.add_typer(datasets_cmd.app, name="datasets")
app.add_typer(analyze_cmd.app, name="analyze")
app.add_typer(clv_cmd.app, name="clv")
app.add_typer(models_cmd.app, name="models")
app.add_typer(predict_cmd.app, name="predict")
app.add_typer(recommend_cmd.app, name="recommend")
app.add_typer(uplift_cmd.app, name="uplift")
report_cmd.register(app)
demo_cmd.register(app)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script."""
    os.umask(0o077)  # everything Mercato writes is readable by its owner only
    args = sys.argv[1:] if argv is None else argv
    json_mode = "--json" in args
    try:
        app(args=args, prog_name="mercato", standalone_mode=False)
    except MercatoError as exc:
        _fail(exc.to_dict(), str(exc), json_mode)
        return 1
    except typer.Exit as exc:
        return int(exc.exit_code or 0)
    except typer.Abort:
        typer.echo("Aborted.", err=True)
        return 130
    except KeyboardInterrupt:
        typer.echo("Interrupted: nothing half-written was kept.", err=True)
        return 130
    except OSError as exc:  # a path that can't be read or written: the user's to fix
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        message = f"{where}{exc.strerror or exc}"
        _fail({"error": "OSError", "message": message}, message, json_mode)
        return 1
    except Exception as exc:  # usage errors from click (vendored by newer Typer)
        if isinstance(exc, _usage_errors()):
            usage: Any = exc
            if json_mode:
                _fail({"error": "UsageError", "message": usage.format_message()}, "", True)
            else:
                usage.show()
            return int(usage.exit_code)
        if json_mode:  # a bug of ours: scripts still get one JSON object
            import traceback

            traceback.print_exc()
            _fail({"error": "InternalError", "message": f"{type(exc).__name__}: {exc}"}, "", True)
            return 1
        raise
    return 0


def _usage_errors() -> tuple[type[Exception], ...]:
    types: list[type[Exception]] = []
    try:
        from click import ClickException

        types.append(ClickException)
    except ImportError:
        pass
    try:
        from typer._click.exceptions import ClickException as VendoredClickException

        types.append(VendoredClickException)
    except ImportError:
        pass
    return tuple(types)


def _fail(payload: dict, text: str, json_mode: bool) -> None:
    if json_mode:
        sys.stdout.write(json.dumps({"ok": False, **payload}, default=str) + "\n")
    else:
        from rich.console import Console
        from rich.markup import escape

        Console(stderr=True, soft_wrap=True).print(f"[bold red]Error:[/] {escape(text)}")


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
