"""The model card (``README.md`` of a model folder): what the model is, what it was trained and measured on,
what it is for and what it must not be used for. Model hubs show this file as the model's page."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pigeon._io import atomic_path
from pigeon.model import placers

_USES = """## Intended uses
- Research and teaching on image geolocation; benchmarking against other geolocation systems.
- Estimating where *your own* photos, or openly licensed photos of places, were taken (e.g. organising an archive).

## Forbidden uses
- Locating, tracking, stalking or identifying private individuals, or photos of people who have not consented.
- Surveillance, or any use that exposes where someone lives, works or travels.
- Treating a guess as evidence: predictions are probabilistic and can be confidently wrong.
"""


def _metrics_rows(evaluation: list[dict[str, Any]]) -> list[str]:
    rows = ["| measured on | method | n | < 1 km | < 25 km | < 200 km | < 750 km | < 2500 km | median km | "
            "ECE of P(within 200 / 750 / 2500 km) |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for e in evaluation:
        m = e["metrics"]
        cells = [f"{100 * m.get(f'acc_{r}km', float('nan')):.1f} %" for r in (1, 25, 200, 750, 2500)]
        ece = m.get("calibration") or {}
        ece_text = " / ".join("-" if ece.get(f"ece_{r}km") is None else f"{ece[f'ece_{r}km']:.3f}"
                              for r in (200, 750, 2500))
        rows.append(f"| {e.get('split', '?')} | {e.get('method', '?')} | {m.get('n', '?')} | " + " | ".join(cells)
                    + f" | {m.get('median_km', float('nan')):,.0f} | {ece_text} |")
    return rows


def _calibration_lines(geo) -> list[str]:
    """What the posterior is: the fitted calibration, or that there is none, and the default guess."""
    cal = geo.calibration
    lines = ["", "## Calibration",
             f"- default guess: `{geo.posterior_config.guess}` (`--guess mode|distance|score`); every prediction "
             f"carries P(within 1 / 25 / 200 / 750 / 2500 km) of the guess and a "
             f"{100 * geo.posterior_config.credible:.0f} % credible region"]
    if cal.identity:
        return lines + ["- not calibrated: the probabilities are the head's softmax (run `pigeon calibrate MODEL "
                        "--manifest M` on a validation split)"]
    v = cal.validation
    lines.append(f"- temperature {cal.temperature:.3f} fitted on {cal.n_val} validation locations (NLL of the true "
                 f"cell {v.get('nll_before', float('nan')):.3f} -> {v.get('nll_after', float('nan')):.3f})")
    if cal.sharpen_temperature is not None:
        lines.append(f"- sharpened by retrieval inside the refiner's top cells, T {cal.sharpen_temperature:.3g}")
    if cal.flatten is not None:
        lines.append("- on ground unlike the validation photos (the `unseen` score) the posterior is flattened "
                     f"toward the training prior (a {cal.flatten[0]:.2f}, b {cal.flatten[1]:.2f})")
    by_guess = v.get("mean_km_by_guess")
    if by_guess:
        wins = v.get("guess_wins_over_mode") or {}
        lines.append("- the default guess: the placer's own (`mode`) unless another objective was nearer the truth on "
                     "validation in 95 % of bootstrap resamples (mean km: "
                     + ", ".join(f"{g} {km:,.0f}" for g, km in by_guess.items()) + "; share of resamples won over "
                     "mode: " + (", ".join(f"{g} {share:.0%}" for g, share in wins.items()) or "not recorded") + ")")
    if cal.within:
        lines.append(f"- P(within r) recalibrated on the validation guesses of each objective (isotonic, per radius: "
                     f"{', '.join(sorted(cal.within))})")
    return lines


def model_card(geo) -> str:
    """The text of the model card of ``geo``."""
    cfg = geo.config
    if (cfg.get("head") or {}).get("kind") == "geoclip":  # GeoCLIP's published model: its own card
        from pigeon.model.geoclip._published import published_card

        return published_card(geo.n_cells, _USES)
    cells = cfg.get("cells", {})
    data = cfg.get("data", {})
    train = cfg.get("train", {})
    lines = [
        "---", "library_name: pigeon-geo", "tags: [image-geolocation, pigeon]", "---", "",
        "# pigeon geolocator", "",
        "Predicts where on Earth a photo (or several views of one place) was taken: a geocell classifier with "
        "haversine label smoothing (PIGEON, CVPR 2024)" + (", refined by retrieval over location clusters"
                                                          if geo.refiner is not None else "") + ".", "",
        "```python", "import pigeon", "geo = pigeon.Geolocator.from_pretrained(\"PATH_OR_HUB_ID\")",
        "[pred] = geo.predict(\"photo.jpg\", top_k=5)", "```", "",
        "## Model",
        f"- backbone: `{cfg.get('backbone')}`" + (" (last block fine-tuned)" if cfg.get("backbone_weights") else ""),
        f"- geocells: {geo.n_cells} {cells.get('method', '')} cells (preset {cells.get('preset', '?')}, "
        f"{cells.get('min_size', '?')}-{cells.get('max_size', '?')} training locations per cell)",
        f"- head: {'MLP' if train.get('hidden_dim') else 'linear'}, label smoothing tau "
        f"{train.get('tau_km', '?')} km" + ("" if train.get("smoothing", True) else " (off: one-hot)")
        + f", views combined by `{train.get('views', 'mean')}`",
        f"- auxiliary heads: {', '.join(n for n in ('climate', 'month', 'regression') if getattr(geo.head, n) is not None) or 'none'}",
        f"- stages: {', '.join(geo.stages)}",
        f"- placing methods: {', '.join(geo.methods)} (`geo.predict(..., method=NAME)`)",
    ]
    known = placers.artefacts()
    lines += [f"- {name}: {known[name].describe(value)}" for name, value in geo.artefacts.items()]
    lines += _calibration_lines(geo)
    lines += ["", "## Data",
              f"- {data.get('n_train', '?')} training and {data.get('n_val', '?')} validation locations, "
              f"{data.get('views_per_location', '?')} views per location on average"]
    if cfg.get("preset"):
        lines.append(f"- preset: {cfg['preset']}")
    evaluation = cfg.get("evaluation") or []
    lines += ["", "## Metrics"]
    if evaluation:
        lines += ["Share of guesses within each distance of the truth."] + [""] + _metrics_rows(evaluation)
        notes = list(dict.fromkeys(e["note"] for e in evaluation if e.get("note")))
        lines += [""] + [f"- {n}" for n in notes] if notes else []
    else:
        best = cfg.get("best_validation")
        lines.append(f"Only the training's validation split has been measured: median "
                     f"{best['val_median_km']:,.0f} km (the head alone)." if best else
                     "Not evaluated yet: run `pigeon evaluate`.")
    lines += ["", _USES, "## Limits",
              "- The model only knows places like those in its training data; far from them it guesses the "
              "nearest place it knows.",
              "- Geocells and the refiner's gallery reveal the training locations (coarsely, and exactly for the "
              "gallery); do not share a model trained on private locations.", ""]
    return "\n".join(lines)


def write_model_card(geo, path: str | Path) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(model_card(geo))
    return Path(path)
