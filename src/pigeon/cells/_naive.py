"""Naive geocells: the reference's data-adaptive rectangles (a kd-style split of the bounding box)."""

from __future__ import annotations

import numpy as np

from pigeon.geography._topology import circular_span

#: Boxes narrower than this (degrees) are not split further: all their points share one location.
_MIN_SPAN_DEG = 1e-9


def naive_boxes(lat: np.ndarray, lon: np.ndarray, max_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Split the points' bounding box at the midpoint of its longer side until no box holds > ``max_size``.

    As in the reference, points ``< midpoint`` go to the first half, and the halves tile their parent,
    so the boxes tile the bounding box of the training points. Boxes without points are dropped. A box
    whose points all share one location cannot be split and may stay above ``max_size``. The bounding box
    spans the shortest longitude interval that holds the points (:func:`circular_span`): points on both
    sides of the antimeridian get boxes that cross it (``lon_max`` above 180), not a box around the globe.

    Args:
        lat, lon: (n,) degrees.
        max_size: most points per box.

    Returns:
        ``boxes`` (k, 4) as ``(lat_min, lon_min, lat_max, lon_max)`` degrees (``lon_min`` in [-180, 180],
        ``lon_max`` up to 540) and ``labels`` (n,) int64 box index of each point.
    """
    start, _ = circular_span(lon)
    lon = np.where(lon < start, lon + 360.0, lon)  # the frame [start, start + 360)
    labels = np.empty(len(lat), dtype=np.int64)
    boxes = []
    stack = [((lat.min(), lon.min(), lat.max(), lon.max()), np.arange(len(lat)))]
    while stack:
        box, idx = stack.pop()
        lat_min, lon_min, lat_max, lon_max = box
        if len(idx) == 0:
            continue
        if len(idx) <= max_size or max(lat_max - lat_min, lon_max - lon_min) < _MIN_SPAN_DEG \
                or (np.ptp(lat[idx]) == 0 and np.ptp(lon[idx]) == 0):
            labels[idx] = len(boxes)
            boxes.append(box)
            continue
        if lat_max - lat_min > lon_max - lon_min:
            mid = (lat_min + lat_max) / 2
            first = lat[idx] < mid
            halves = ((lat_min, lon_min, mid, lon_max), (mid, lon_min, lat_max, lon_max))
        else:
            mid = (lon_min + lon_max) / 2
            first = lon[idx] < mid
            halves = ((lat_min, lon_min, lat_max, mid), (lat_min, mid, lat_max, lon_max))
        stack.append((halves[1], idx[~first]))
        stack.append((halves[0], idx[first]))
    return np.asarray(boxes, dtype=np.float64).reshape(-1, 4), labels
