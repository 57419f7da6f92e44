"""The typer apps, one per pipeline stage. Command modules attach to them on import."""

from __future__ import annotations

from collections.abc import Callable

import typer
from typer.core import TyperCommand, TyperGroup

#: Top-level commands in the order of the data flow (``pigeon --help`` lists them so).
FLOW = ("data", "cells", "backbones", "pretrain", "embed", "train", "refine", "predict", "serve", "evaluate", "demo")


class _FlowOrder(TyperGroup):
    def list_commands(self, ctx) -> list[str]:
        return sorted(super().list_commands(ctx), key=lambda n: FLOW.index(n) if n in FLOW else len(FLOW))


def live_help(**texts: Callable[[], str]) -> type[TyperCommand]:
    """A command class whose options' help texts are made when the help is shown, e.g. from a registry that
    plugins add to after the CLI is imported: ``@app.command(cls=live_help(method=lambda: ...))``."""

    class LiveHelp(TyperCommand):
        def format_help(self, ctx, formatter) -> None:
            for param in self.params:
                if param.name in texts:
                    param.help = texts[param.name]()
            super().format_help(ctx, formatter)

    return LiveHelp


_settings = dict(no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)

app = typer.Typer(help="pigeon: predict where on Earth a photo was taken (PIGEON / PIGEOTTO).", cls=_FlowOrder,
                  **_settings)


def _print_version(value: bool) -> None:
    if value:
        from importlib import metadata

        import pigeon

        try:
            version = metadata.version("pigeon-geo")
        except metadata.PackageNotFoundError:  # run from a source tree without installing
            version = pigeon.__version__
        typer.echo(f"pigeon {version}")
        raise typer.Exit()


@app.callback()
def _main(version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                       help="Print the version and exit.")) -> None:
    """pigeon: predict where on Earth a photo was taken (PIGEON / PIGEOTTO)."""
data_app = typer.Typer(help="Manifests: ingest photos, import benchmarks, enrich, captions, demo data.", **_settings)
cells_app = typer.Typer(help="Geocells: build, plot, export, stats.", **_settings)
backbones_app = typer.Typer(help="Image backbones: list and inspect.", **_settings)
refine_app = typer.Typer(help="Retrieval refinement: build a model's location clusters.", **_settings)

app.add_typer(data_app, name="data")
app.add_typer(cells_app, name="cells")
app.add_typer(backbones_app, name="backbones")
app.add_typer(refine_app, name="refine")


def echo(message: str) -> None:
    """Print ``message`` once: from rank 0 only when the command runs under torchrun."""
    from pigeon._device import is_main_process

    if is_main_process():
        typer.echo(message)
