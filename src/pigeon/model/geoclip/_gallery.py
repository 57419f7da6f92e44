"""The GPS gallery of the geoclip method: candidate coordinates, their features, and scoring a query against them.

A gallery is a table of points (``lat``, ``lon``, the ``cell`` each falls in). The location encoder turns it into
unit features once (stored with the method, or cached for a published gallery); a query's image feature scores
every point by ``scale * cosine``, and the softmax over the gallery is the query's posterior over those points.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from pigeon._progress import track_chunks
from pigeon.errors import InputError

#: Most points a gallery file may hold: their features take 1 KB (256-d) to 2 KB (GeoCLIP's 512-d) each in memory.
MAX_GALLERY_POINTS = 2_000_000
#: A CSV gallery larger than this many bytes a point is refused before it is read.
_CSV_BYTES_PER_POINT = 64
#: Query rows x gallery points scored at once (float32): 32M scores, 128 MB.
SCORE_BLOCK = 1 << 25


def read_gallery(path: str | os.PathLike) -> np.ndarray:
    """(G, 2) float64 (lat, lon) of a gallery file: CSV or Parquet with ``lat``/``lon`` columns (any case, e.g.
    GeoCLIP's ``LAT,LON``).

    Raises:
        InputError: too many points, a missing column, or bad coordinates (every bad row named, with its CSV line).
    """
    from pigeon._io import read_table
    from pigeon.validation import check_table_coords, find_columns

    path = Path(path)
    _check_size(path)
    df = find_columns(read_table(path, "gallery"), ["lat", "lon"], str(path), "a GPS gallery")
    if len(df) > MAX_GALLERY_POINTS:
        raise InputError(f"{path}: {len(df):,} gallery points, more than {MAX_GALLERY_POINTS:,}; subsample it")
    check_table_coords(df, f"gallery {path}")
    return df[["lat", "lon"]].to_numpy(np.float64)


def _check_size(path: Path) -> None:
    """Refuse a gallery file that holds more than :data:`MAX_GALLERY_POINTS` before reading it."""
    if not path.is_file():
        return  # read_table names the missing file
    if path.suffix.lower() in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        try:
            rows = pq.ParquetFile(path).metadata.num_rows
        except Exception:  # not Parquet: read_table says so
            return
        too_many = rows > MAX_GALLERY_POINTS
    else:
        too_many = path.stat().st_size > _CSV_BYTES_PER_POINT * MAX_GALLERY_POINTS
    if too_many:
        raise InputError(f"{path}: more than {MAX_GALLERY_POINTS:,} gallery points; subsample it")


def gallery_table(coords: np.ndarray, cells: np.ndarray, ids: np.ndarray | None = None) -> pd.DataFrame:
    """The gallery as stored: ``lat``, ``lon``, ``cell`` (and ``id`` for training locations)."""
    table = pd.DataFrame({"lat": coords[:, 0], "lon": coords[:, 1], "cell": np.asarray(cells, np.int32)})
    if ids is not None:
        table.insert(0, "id", np.asarray(ids).astype(str))
    return table


@torch.no_grad()
def encode_points(location_features, coords: np.ndarray, batch_size: int = 4096,
                  device: torch.device | None = None) -> torch.Tensor:
    """(G, dim) float32 unit features of ``coords`` (G, 2) through ``location_features(latlon tensor)``; a progress
    bar for large galleries."""
    device = device or torch.device("cpu")
    chunks = (track_chunks(len(coords), batch_size, "encoding gallery points") if len(coords) > 20 * batch_size
              else (slice(i, i + batch_size) for i in range(0, len(coords), batch_size)))
    parts = [location_features(torch.tensor(coords[part], dtype=torch.float32, device=device)).float().cpu()
             for part in chunks]
    return torch.cat(parts)


@torch.no_grad()
def top_points(image: torch.Tensor, points: torch.Tensor, scale: float, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` most probable gallery points of each query under ``softmax(scale * image @ points.T)``.

    Args:
        image: (N, dim) unit image features.
        points: (G, dim) unit gallery features.
        scale: the temperature (``exp(logit_scale)``).
        k: points per query (at most G).

    Returns:
        ``rows`` (N, k) int64 gallery rows, best first, and ``probs`` (N, k) float32 their probabilities.
    """
    rows, probs = [], []
    for logits in _score_blocks(image, points, scale):
        top = torch.topk(logits, k, dim=1)
        rows.append(top.indices.cpu().numpy())
        probs.append(torch.exp(top.values - torch.logsumexp(logits, dim=1, keepdim=True)).cpu().numpy())
    if not rows:
        return np.zeros((0, k), np.int64), np.zeros((0, k), np.float32)
    return np.concatenate(rows).astype(np.int64), np.concatenate(probs).astype(np.float32)


@torch.no_grad()
def cell_mass(image: torch.Tensor, points: torch.Tensor, scale: float, cells: torch.Tensor,
              n_cells: int) -> torch.Tensor:
    """(N, C) posterior mass of each cell: the gallery softmax summed over the points of each cell."""
    out = []
    for logits in _score_blocks(image, points, scale):
        mass = torch.zeros(len(logits), n_cells, device=logits.device)
        out.append(mass.index_add_(1, cells.to(logits.device), torch.softmax(logits, dim=1)))
    return torch.cat(out) if out else torch.zeros(0, n_cells)


def _score_blocks(image: torch.Tensor, points: torch.Tensor, scale: float):
    """Logits ``scale * image @ points.T`` for blocks of queries of at most :data:`SCORE_BLOCK` scores."""
    rows = max(1, SCORE_BLOCK // max(1, len(points)))
    for i in range(0, len(image), rows):
        yield scale * (image[i:i + rows] @ points.T)
