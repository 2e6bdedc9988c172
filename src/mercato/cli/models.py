"""``mercato models ...``: the workspace's model registry."""

from __future__ import annotations

from typing import Annotated

import typer

from mercato.cli.common import JsonOpt, Output, QuietOpt, WorkspaceOpt

app = typer.Typer(help="The model registry: every trained model and its versions.")


@app.command("list")
def list_cmd(
    workspace: WorkspaceOpt = None,
    json_: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """The newest version of every saved model."""
    from mercato.models.registry import ModelRegistry
    from mercato.workspace import Workspace

    o = Output(json_, quiet)
    reg = ModelRegistry(Workspace.open(workspace))
    latest = reg.latest()
    o.table(
        "Models",
        ["name", "version", "kind", "model", "created", "customers"],
        [
            [
                v.name,
                v.version,
                v.kind,
                v.manifest.get("model"),
                v.manifest.get("created"),
                v.manifest.get("customers"),
            ]
            for v in latest
        ],
    )
    if not latest:
        o.print("No saved model yet (mercato clv run, mercato uplift target, ... save them).")
    o.result({"models": [v.to_dict() for v in latest]})


@app.command("show")
def show_cmd(
    name: Annotated[str, typer.Argument(help="The model's name.")],
    version: Annotated[int | None, typer.Option(help="A version (default: newest).")] = None,
    workspace: WorkspaceOpt = None,
    json_: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """A model version's manifest: parameters, metrics, data window, customers, files."""
    from mercato.models.registry import ModelRegistry
    from mercato.workspace import Workspace

    o = Output(json_, quiet)
    reg = ModelRegistry(Workspace.open(workspace))
    mv = reg.get(name, version)
    d = mv.to_dict()
    versions = [v.version for v in reg.versions(name)]
    o.print(
        f"[bold]{name}[/] v{mv.version} ({d.get('kind')}, {d.get('model')}), {d.get('created')}"
    )
    for key in ("params", "metrics", "data_window"):
        if d.get(key):
            o.table(key, ["key", "value"], [[k, v] for k, v in d[key].items()])
    o.print(f"trained on {d.get('customers')} customers; versions: {versions}")
    o.result({"model": d, "versions": versions})
