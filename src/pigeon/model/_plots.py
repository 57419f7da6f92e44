"""Training curves as a PNG."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pigeon._io import atomic_path


def plot_curves(history: list[dict[str, Any]], path: str | os.PathLike) -> Path:
    """Loss, geocell accuracy and validation median km per epoch, side by side (PNG, Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in history]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6), constrained_layout=True)
    panels = [
        ("loss", [("train_loss", "train (total)"), ("train_geocell_loss", "train (geocell)"),
                  ("val_loss", "val (geocell)")]),
        ("geocell accuracy", [("train_acc", "train"), ("val_acc", "val")]),
        ("val median error (km)", [("val_median_km", "median"), ("val_mean_km", "mean")]),
    ]
    for ax, (title, series) in zip(axes, panels):
        for key, label in series:
            ax.plot(epochs, [r[key] for r in history], marker=".", label=label)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend()
    axes[2].set_yscale("log")
    best = min(history, key=lambda r: (r["val_median_km"], r["val_loss"]))["epoch"]
    for ax in axes:
        ax.axvline(best, color="grey", linestyle=":", linewidth=1)
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return path
