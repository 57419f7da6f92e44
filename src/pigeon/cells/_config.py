"""How geocells are built: :class:`CellConfig`, whose defaults are the paper's street-view set-up (the photo
set-up is the ``photo`` preset of :mod:`pigeon.presets`)."""

from __future__ import annotations

from dataclasses import dataclass

from pigeon._config import JsonConfig
from pigeon.errors import UnknownNameError
from pigeon.presets import OPTICS_PARAMS_PHOTO, OPTICS_PARAMS_STREETVIEW  # noqa: F401  (re-exported)

#: Ways to make cells: admin areas split by the paper's rules, or the reference's adaptive rectangles.
METHODS = ("semantic", "naive")
#: How semantic cells above ``max_size`` are split: ``bounded`` (the paper's OPTICS rounds, then median cuts of every
#: cell still above ``max_size``, so cells keep their bounds) or ``paper`` (the OPTICS rounds alone, which leave a
#: cell above ``max_size`` when OPTICS finds no admissible split).
RULES = ("bounded", "paper")


@dataclass
class CellConfig(JsonConfig):
    """Settings of :meth:`pigeon.cells.GeoCells.build` (recorded in the cells' ``meta.json``).

    Attributes:
        method: ``"semantic"`` (admin areas, fused and split with OPTICS + Voronoi by the paper's rules; each cell
            one connected region plus islands) or ``"naive"`` (rectangles split at the midpoint of their longer
            side; uses only ``max_size``).
        min_size, max_size: training points per cell (street view 30/60; the photo preset 1000/2000).
        optics_params: OPTICS ``(min_samples, xi)`` rounds that split large cells.
        boundaries: a GADM 4.1 GeoPackage, or a GeoParquet / GeoJSON of areas with country, admin1, admin2 and
            geometry columns; None: the offline admin-2 areas, derived from GeoNames inside the real (Natural
            Earth) admin-1 units.
        seed: seeds the fusion order and the samples of very large cells; the result is deterministic.
        rules: how semantic cells above ``max_size`` are split (:data:`RULES`): ``"bounded"`` (the default) runs
            the paper's OPTICS rounds, then cuts every cell still above ``max_size`` at its median until none is;
            ``"paper"`` runs the OPTICS rounds alone, which leave a cell above ``max_size`` when OPTICS finds no
            admissible split.
        n_jobs: worker processes that split oversized cells (semantic cells): None or 1 splits them in this
            process, -1 uses one process per CPU. The cells are the same for any ``n_jobs``. Splitting is most of a
            build of a million points (62 of 76 s at 900k, 5 of 12 s at 90k); a worker costs about a second of CPU
            to start, and gets only the shapes and points of its cells.
        ray_address: split the cells on this Ray cluster instead of local processes (``"auto"``,
            ``"ray://host:10001"``); ``n_jobs`` then caps the tasks in flight (default: the cluster's CPUs). Needs
            ``pigeon-geo[scale]``.
    """

    method: str = "semantic"
    min_size: int = 30
    max_size: int = 60
    optics_params: tuple[tuple[int, float], ...] = OPTICS_PARAMS_STREETVIEW
    boundaries: str | None = None
    seed: int = 0
    rules: str = "bounded"
    n_jobs: int | None = None
    ray_address: str | None = None

    def validate(self) -> CellConfig:
        """A checked copy with plain types (sizes int, rounds ``(int, float)``, boundaries a str)."""
        if self.method not in METHODS:
            raise UnknownNameError("geocell method", self.method, METHODS)
        if self.rules not in RULES:
            raise UnknownNameError("geocell rules", self.rules, RULES, "pass --rules bounded or --rules paper")
        return self.replace(min_size=int(self.min_size), max_size=int(self.max_size),
                            optics_params=tuple((int(m), float(x)) for m, x in self.optics_params),
                            boundaries=None if self.boundaries is None else str(self.boundaries))
