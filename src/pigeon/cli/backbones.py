"""``pigeon backbones list|info``: the image backbones pigeon can load."""

from __future__ import annotations

import json

import typer

from pigeon.cli._app import backbones_app


@backbones_app.command("list")
def list_command(pattern: str = typer.Argument("*", help="fnmatch filter, e.g. 'clip:*'.")) -> None:
    """List named backbones: embedding size, input size, and whether they load offline here."""
    from pigeon.backbones import DEFAULT_BACKBONE, list_backbones, pretrained_entry

    names = list_backbones(pattern)
    if not names:
        typer.echo(f"no backbone matches {pattern!r}; try 'pigeon backbones list'")
        return
    entries = [pretrained_entry(name) for name in names]
    status = ["yes" if e.available else f"needs {e.requires}" for e in entries]
    width, swidth = max(len(n) for n in names), max(len(s) for s in status)
    typer.echo(f"{'name':<{width}}  {'dim':>5}  {'px':>4}  {'available':<{swidth}}  description")
    for entry, state in zip(entries, status):
        default = " [default]" if entry.name == DEFAULT_BACKBONE else ""
        typer.echo(f"{entry.name:<{width}}  {entry.cfg.embed_dim:>5}  {entry.cfg.image_size:>4}  {state:<{swidth}}  "
                   f"{entry.description}{default}")
    typer.echo("\nalso: clip:<local CLIP folder>, open_clip:<arch>:<checkpoint>, timm:<name>:<checkpoint>")


@backbones_app.command("info")
def info_command(
    name: str = typer.Argument(..., help="A backbone name, e.g. efficientnet:lite0 or clip:path/to/folder."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Show a backbone's configuration (source, sizes, preprocessing, licence) without loading its weights."""
    from pigeon.backbones import backbone_cfg, pretrained_entry

    info = {"name": name, **backbone_cfg(name).to_dict()}
    entry = pretrained_entry(name)
    if entry is not None:
        info.update(description=entry.description, requires=entry.requires or "nothing", available=entry.available)
    if as_json:
        typer.echo(json.dumps(info, indent=2))
        return
    for key, value in info.items():
        typer.echo(f"{key:<14}{value}")
