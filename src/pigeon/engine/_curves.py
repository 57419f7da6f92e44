"""Training curves as a PNG: one panel per group of logged values, per epoch."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pigeon._io import atomic_path

#: A panel: its title and the ``(record key, label)`` series it draws; a title ending in "(log)" is log-scaled.
Panel = tuple[str, Sequence[tuple[str, str]]]


def default_panels(history: list[dict[str, Any]]) -> list[Panel]:
    """Losses in one panel, every other numeric series in its own (what an unknown task logged)."""
    keys = [k for k, v in history[0].items() if isinstance(v, (int, float)) and k not in ("epoch", "seconds",
                                                                                           "val_seconds")]
    losses = [(k, k) for k in keys if "loss" in k]
    return [("loss", losses)] * bool(losses) + [(k, [(k, k)]) for k in keys if "loss" not in k]


def plot_curves(history: list[dict[str, Any]], path: str | os.PathLike, panels: Sequence[Panel] | None = None,
                mark_epoch: int | None = None) -> Path:
    """Draw ``panels`` (default: :func:`default_panels`) side by side, with a dotted line at ``mark_epoch``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [p for p in (panels or default_panels(history)) if any(k in history[0] for k, _ in p[1])]
    epochs = [r["epoch"] for r in history]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.4 * len(panels), 3.6), constrained_layout=True,
                             squeeze=False)
    for ax, (title, series) in zip(axes[0], panels):
        for key, label in series:
            if key in history[0]:
                ax.plot(epochs, [r.get(key) for r in history], marker=".", label=label)
        if title.endswith("(log)"):
            ax.set_yscale("log")
        ax.set_title(title.removesuffix(" (log)"))
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend()
        if mark_epoch is not None:
            ax.axvline(mark_epoch, color="grey", linestyle=":", linewidth=1)
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return path
