"""``pigeon demo``: the whole pipeline on the embedded Blue Marble dataset, offline."""

from __future__ import annotations

from pathlib import Path

import typer

from pigeon.cli._app import app
from pigeon.cli._options import described
from pigeon.demo import DemoConfig


def _demo(text: str, name: str) -> str:
    return described(text, DemoConfig, name)


@app.command("demo")
def demo_command(
    out: Path = typer.Option(Path("pigeon-demo"), "--out", "-o", help="Demo folder to write."),
    n: int = typer.Option(None, "--n", help=_demo("Blue Marble locations (80/10/10 % train/val/test).", "n")),
    views: int = typer.Option(None, "--views", help=_demo("Views per location (1, 2 or 4), averaged like panoramas.",
                                                          "views")),
    epochs: int = typer.Option(None, "--epochs", help=_demo("Maximum training epochs.", "epochs")),
    min_size: int = typer.Option(None, "--min-size", help=_demo("Semantic geocells: min training locations per "
                                                                "cell.", "min_size")),
    max_size: int = typer.Option(None, "--max-size", help=_demo("Semantic geocells: max training locations per "
                                                                "cell.", "max_size")),
    seed: int = typer.Option(None, "--seed", help=_demo("Random seed of data, cells and training.", "seed")),
    pretrain: bool = typer.Option(None, "--pretrain", help="Pretrain the backbone contrastively on synthetic "
                                  "captions first (one epoch of its last block; adds several minutes on a CPU)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Remake every stage of an existing demo folder."),
) -> None:
    """Build a dataset, geocells and embeddings, train a geolocator and evaluate it (a few minutes on a CPU).

    Example: pigeon demo -o pigeon-demo; then pigeon predict pigeon-demo/model IMAGE
    """
    from pigeon.demo import run_demo

    config = DemoConfig().with_options(n=n, views=views, seed=seed, min_size=min_size, max_size=max_size,
                                       epochs=epochs, pretrain=pretrain)
    result = run_demo(out, config, overwrite=overwrite, log=typer.echo)
    m, h, b = result["model"], result["cell"], result["baseline"]
    r = result["region"]
    typer.echo(f"\nrandom split: median error {m['median_km']:.0f} km refined, {h['median_km']:.0f} km from the head "
               f"alone (baseline {b['median_km']:.0f} km) over {m['n']} test locations, {result['n_cells']} geocells.\n"
               f"region held out (no test ground seen in training): median error {r['model']['median_km']:.0f} km "
               f"refined, {r['cell']['median_km']:.0f} km head alone (baseline {r['baseline']['median_km']:.0f} km) "
               f"over {r['model']['n']} test locations.\n"
               f"report: {out / 'report'} (comparison.md, metrics.md, error_cdf.png, error_map.png, by_country.png, "
               f"cells.png) and {out / 'region' / 'report'}\n"
               f"try:    pigeon predict {out / 'model'} $(ls {out}/data/images/*_?.jpg | head -{config.views}) "
               f"--views {config.views}")
