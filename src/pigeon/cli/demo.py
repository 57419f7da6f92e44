"""``pigeon demo``: the whole pipeline on the embedded Blue Marble dataset, offline."""

from __future__ import annotations

from pathlib import Path

import typer

from pigeon.cli._app import app


@app.command("demo")
def demo_command(
    out: Path = typer.Option(Path("pigeon-demo"), "--out", "-o", help="Demo folder to write."),
    n: int = typer.Option(1000, "--n", help="Blue Marble locations (80/10/10 % train/val/test)."),
    views: int = typer.Option(4, "--views", help="Views per location (1, 2 or 4), averaged like panoramas."),
    epochs: int = typer.Option(40, "--epochs", help="Maximum training epochs."),
    min_size: int = typer.Option(8, "--min-size", help="Semantic geocells: min training locations per cell."),
    max_size: int = typer.Option(25, "--max-size", help="Semantic geocells: max training locations per cell."),
    seed: int = typer.Option(0, "--seed", help="Random seed of data, cells and training."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Remake every stage of an existing demo folder."),
) -> None:
    """Build a dataset, geocells and embeddings, train a geolocator and evaluate it (a few minutes on a CPU).

    Example: pigeon demo -o pigeon-demo; then pigeon predict pigeon-demo/model IMAGE
    """
    from pigeon.demo import DemoConfig, run_demo

    config = DemoConfig(n=n, views=views, seed=seed, min_size=min_size, max_size=max_size, epochs=epochs)
    result = run_demo(out, config, overwrite=overwrite, log=typer.echo)
    m, b = result["model"], result["baseline"]
    rm, rb = result["region"]["model"], result["region"]["baseline"]
    typer.echo(f"\nrandom split: median error {m['median_km']:.0f} km (baseline {b['median_km']:.0f} km) over {m['n']} "
               f"test locations, {result['n_cells']} geocells.\n"
               f"region held out (no test ground seen in training): median error {rm['median_km']:.0f} km "
               f"(baseline {rb['median_km']:.0f} km) over {rm['n']} test locations.\n"
               f"report: {out / 'report'} (comparison.md, metrics.md, error_cdf.png, error_map.png, by_country.png, "
               f"cells.png) and {out / 'region' / 'report'}\n"
               f"try:    pigeon predict {out / 'model'} $(ls {out}/data/images/*_?.jpg | head -{views}) "
               f"--views {views}")
