"""The one place where a model prediction becomes the service's answer (with the precision cap applied to every
location in it: guess, head guess, candidates, map and the upload's own EXIF position)."""

from __future__ import annotations

from typing import Any

import numpy as np

from pigeon.geo import haversine_km
from pigeon.serve._batcher import Served
from pigeon.serve._guard import PrecisionCap
from pigeon.serve._schemas import Candidate, ExifTruth, Guess, PredictResponse, Timings
from pigeon.serve._uploads import View

_ROUND = 5  # decimals of returned coordinates (~1 m): no false precision in the JSON


class Responder:
    """Builds :class:`PredictResponse` from a :class:`pigeon.model.Prediction`.

    Without a cap the answer holds the guess, the top-k cells (with ids, countries and regions) and, on request,
    every cell's probability at its centroid (``polygons=True``: the cell polygons too). With a cap every
    location is the centre of its :class:`PrecisionCap` box: the candidates are the most probable boxes (the
    probabilities of the cells whose centroids fall in them, added up), the map is those boxes, and cell ids are
    withheld.
    """

    def __init__(self, geo, max_precision_km: float | None) -> None:
        self.geo = geo
        self.cap = PrecisionCap(max_precision_km) if max_precision_km else None
        cents = np.asarray(geo.cells.centroids, dtype=np.float64)
        self._cents = cents
        table = geo.cells.table
        self.countries = _column(table, "country")
        self.regions = _column(table, "admin1")
        if self.cap is not None:  # cell -> box, computed once: centroids do not move
            boxes = [self.cap.box(lat, lon) for lat, lon in cents]
            keys = sorted(set(boxes))
            index = {b: i for i, b in enumerate(keys)}
            self._box_of_cell = np.array([index[b] for b in boxes])
            self._box_centres = np.array([self.cap.centre(*b) for b in keys])

    @property
    def precision_km(self) -> float | None:
        return None if self.cap is None else self.cap.km

    def build(self, pred, views: list[View], served: Served, decode_ms: float, total_ms: float,
              with_map: bool = False, polygons: bool = False) -> PredictResponse:
        head_cell = int(np.argmax(pred.probs))
        if self.cap is None:
            guess = Guess(lat=round(pred.lat, _ROUND), lon=round(pred.lon, _ROUND), cell=pred.cell,
                          country=self.countries[pred.cell], region=self.regions[pred.cell])
            head = Guess(lat=round(pred.cell_lat, _ROUND), lon=round(pred.cell_lon, _ROUND), cell=head_cell,
                         country=self.countries[head_cell], region=self.regions[head_cell])
            top = [Candidate(lat=round(c.lat, _ROUND), lon=round(c.lon, _ROUND), probability=c.prob,
                             cell_probability=c.cell_prob, cell=c.cell, country=c.country, region=c.admin1)
                   for c in pred.top_k]
            prob_map = (pred.to_geojson() if polygons else self._cell_points(pred.probs)) if with_map else None
        else:
            lat, lon = self.cap.snap(pred.lat, pred.lon)
            guess = Guess(lat=round(lat, _ROUND), lon=round(lon, _ROUND), country=self.countries[pred.cell],
                          region=self.regions[pred.cell])
            lat, lon = self.cap.snap(pred.cell_lat, pred.cell_lon)
            head = Guess(lat=round(lat, _ROUND), lon=round(lon, _ROUND), country=self.countries[head_cell],
                         region=self.regions[head_cell])
            box_probs, best_cell = self._boxes(pred.probs)
            order = np.argsort(-box_probs, kind="stable")[:len(pred.top_k)]
            top = [Candidate(lat=round(self._box_centres[b, 0], _ROUND), lon=round(self._box_centres[b, 1], _ROUND),
                             probability=float(box_probs[b]), country=self.countries[best_cell[b]],
                             region=self.regions[best_cell[b]]) for b in order]
            prob_map = self._box_points(box_probs) if with_map else None
        return PredictResponse(
            guess=guess, confidence=float(pred.confidence), top_k=top, aux=pred.aux,
            method=pred.method, refined=pred.refined, head_guess=head, precision_km=self.precision_km, views=len(views),
            exif_gps=_truth(views, guess, self.cap), probability_map=prob_map,
            timings=Timings(decode_ms=round(decode_ms, 2), queue_ms=round(served.queue_ms, 2),
                            model_ms=round(served.model_ms, 2), total_ms=round(total_ms, 2),
                            batch_images=served.batch_images),
        )

    def _boxes(self, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Probability of every box, and the most probable cell of each box."""
        n = len(self._box_centres)
        box_probs = np.bincount(self._box_of_cell, weights=probs, minlength=n)
        best = np.zeros(n, dtype=int)
        best_prob = np.full(n, -1.0)
        for cell, (box, p) in enumerate(zip(self._box_of_cell, probs)):
            if p > best_prob[box]:
                best[box], best_prob[box] = cell, p
        return box_probs, best

    def _cell_points(self, probs: np.ndarray) -> dict[str, Any]:
        return _points([(self._cents[c, 0], self._cents[c, 1],
                         {"cell": c, "prob": float(p), "country": self.countries[c], "region": self.regions[c]})
                        for c, p in enumerate(probs)])

    def _box_points(self, box_probs: np.ndarray) -> dict[str, Any]:
        return _points([(self._box_centres[b, 0], self._box_centres[b, 1],
                         {"prob": float(p), "precision_km": self.cap.km})
                        for b, p in enumerate(box_probs)], precision_km=self.cap.km)


def _points(items, **properties) -> dict[str, Any]:
    features = [{"type": "Feature", "geometry": {"type": "Point", "coordinates": [round(lon, _ROUND),
                                                                                  round(lat, _ROUND)]},
                 "properties": props} for lat, lon, props in items]
    return {"type": "FeatureCollection", "features": features, "properties": properties}


def _truth(views: list[View], guess: Guess, cap: PrecisionCap | None) -> ExifTruth | None:
    """The first view's EXIF GPS position (snapped like every other location under a cap) and its distance."""
    for i, view in enumerate(views):
        if view.gps is not None:
            lat, lon = view.gps if cap is None else cap.snap(*view.gps)
            km = float(haversine_km(lat, lon, guess.lat, guess.lon))
            return ExifTruth(lat=round(lat, _ROUND), lon=round(lon, _ROUND), view=i, distance_km=round(km, 3))
    return None


def _column(table, name: str) -> list[str | None]:
    if name not in table.columns:
        return [None] * len(table)
    return [v if isinstance(v, str) and v else None for v in table[name].tolist()]
