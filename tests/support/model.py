"""Synthetic geolocation data whose answer is known (embeddings encode the location plus noise), a tiny
registered backbone, toy cells, the training tests' inputs (a synthetic store, embedded Blue Marble views) and a
small Blue Marble dataset embedded by that backbone (:func:`e2e_dataset`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn

from pigeon.backbones import Backbone, BackboneCfg, register_backbone
from pigeon.geo import latlon_to_xyz, pairwise_haversine_km, spherical_mean, wrap_lon


@dataclass
class Synthetic:
    X: np.ndarray          # (N, D) float32 embeddings
    coords: np.ndarray     # (N, 2) true (lat, lon)
    cells: np.ndarray      # (N,) true cell
    centroids: np.ndarray  # (C, 2)
    frame: pd.DataFrame    # auxiliary columns (koppen, elevation_m, temp_mean_c)
    train: np.ndarray      # row indices
    test: np.ndarray


def make_synthetic(n: int = 1200, n_clusters: int = 24, dim: int = 32, noise: float = 1.0,
                   seed: int = 0) -> Synthetic:
    """Locations clustered around random land-like centres; an embedding is a random non-linear map of the
    unit vector of its location plus Gaussian noise; cells are the clusters (centroid = spherical mean)."""
    rng = np.random.default_rng(seed)
    centres = np.column_stack([rng.uniform(-55, 65, n_clusters), rng.uniform(-175, 175, n_clusters)])
    k = rng.integers(0, n_clusters, n)
    coords = centres[k] + rng.normal(0, 2.5, (n, 2))
    coords[:, 0] = coords[:, 0].clip(-89, 89)
    coords[:, 1] = wrap_lon(coords[:, 1])
    xyz = latlon_to_xyz(coords[:, 0], coords[:, 1])
    W = rng.normal(size=(3, dim // 4))
    features = np.concatenate([xyz, np.sin(3 * xyz @ W), np.cos(3 * xyz @ W)], axis=1)
    X = features @ rng.normal(size=(features.shape[1], dim)) + rng.normal(0, noise, (n, dim))
    centroids = np.array([spherical_mean(*coords[k == i].T) for i in range(n_clusters)])
    cells = pairwise_haversine_km(coords, centroids).argmin(1)
    lat = coords[:, 0]
    frame = pd.DataFrame({
        "koppen": np.where(np.abs(lat) < 23, "Af", np.where(np.abs(lat) < 45, "Cfa", "Dfb")).astype(object),
        "elevation_m": 300 + 1500 * (1 + xyz[:, 1]),
        "temp_mean_c": 12 + 15 * xyz[:, 0],
    })
    frame.loc[::7, "koppen"] = None  # unknown labels are skipped
    perm = rng.permutation(n)
    cut = int(0.8 * n)
    return Synthetic(X.astype(np.float32), coords, cells, centroids, frame, np.sort(perm[:cut]), np.sort(perm[cut:]))


class TinyBackbone(Backbone):
    """A real (registered, fine-tunable) backbone small enough for tests: 16 px input, 32-d embedding."""

    def __init__(self) -> None:
        super().__init__("pigeontest:tiny", BackboneCfg(source="tests", embed_dim=32, image_size=16,
                                                        interpolation="bilinear"))
        gen = torch.Generator().manual_seed(0)
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.proj = nn.Linear(8 + 3, 32)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=gen))
        self.requires_grad_(False)
        self.eval()

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        features = torch.cat([torch.relu(self.conv(pixels)).mean((2, 3)), pixels.mean((2, 3))], dim=1)
        return self.proj(features)

    def last_block(self) -> nn.Module:
        return self.proj


register_backbone("pigeontest")(lambda spec: TinyBackbone())


class ToyCells:
    """The parts of the :class:`pigeon.cells.GeoCells` interface that prediction uses."""

    def __init__(self, centroids: np.ndarray) -> None:
        import geopandas as gpd
        from shapely.geometry import box

        self.centroids = np.asarray(centroids, np.float64)
        n = len(self.centroids)
        self.table = gpd.GeoDataFrame({
            "cell_id": np.arange(n), "country": [f"C{i % 5}" for i in range(n)],
            "admin1": [f"R{i}" for i in range(n)],
            "centroid_lat": self.centroids[:, 0], "centroid_lon": self.centroids[:, 1],
        }, geometry=[box(lon - 1, lat - 1, lon + 1, lat + 1) for lat, lon in self.centroids], crs="EPSG:4326")
        self.attributes = self.table.drop(columns="geometry")  # GeoCells.attributes: the table without the shapes
        self.areas_km2 = np.full(n, 2.0 * 111.2 * 222.4 * np.cos(np.radians(self.centroids[:, 0])).clip(0.01))

    def __len__(self) -> int:
        return len(self.centroids)


def e2e_manifest(work):
    """The manifest inside :func:`e2e_dataset`'s dataset folder (image paths are relative to it)."""
    return work / "data" / "manifest.parquet"


def e2e_dataset(root):
    """A 2-view Blue Marble dataset with auxiliary columns in ``root/data``, its tiny-backbone embeddings in
    ``root/emb`` and naive cells in ``root/cells``; returns ``root``."""
    from pigeon.data.bluemarble import make_bluemarble_dataset

    df = make_bluemarble_dataset(root / "data", n=160, views=2, seed=0, size_px=24)
    rng = np.random.default_rng(0)
    df["koppen"] = np.where(df["lat"].abs() < 23, "Aw", "Cfb")
    df["elevation_m"] = 200 + 10 * df["lat"].abs()
    df["taken_at"] = pd.to_datetime(rng.integers(1, 13, len(df)).astype(str), format="%m").strftime("2020-%m-15")
    embedded_images(root, df, min_size=5, max_size=20)
    return root


def synthetic_store(root, n: int = 480, n_train: int = 384, n_test: int = 0, seed: int = 3,
                    aux: bool = True) -> Synthetic:
    """A manifest (``n_train`` train rows, ``n_test`` test rows, the rest val; the auxiliary columns when ``aux``),
    a one-view embeddings store and naive cells of :func:`make_synthetic` locations in ``root``; returns the data."""
    from pigeon.cells import GeoCells
    from pigeon.data import write_manifest
    from tests.support import write_store

    syn = make_synthetic(n=n, dim=32, seed=seed)
    ids = [f"r{i}" for i in range(len(syn.X))]
    split = np.where(np.isin(np.arange(len(ids)), syn.train[:n_train]), "train", "val")
    split[syn.test[:n_test]] = "test"
    df = pd.DataFrame({"id": ids, "image": [f"{i}.jpg" for i in ids], "lat": syn.coords[:, 0],
                       "lon": syn.coords[:, 1], "split": split, **({c: syn.frame[c] for c in syn.frame.columns} if aux else {})})
    write_manifest(df, root / "manifest.parquet")
    write_store(root / "emb", ids, syn.X, shard_size=50)
    train = df[df["split"] == "train"]
    GeoCells.build(train["lat"].to_numpy(), train["lon"].to_numpy(), method="naive",
                   max_size=40).save(root / "cells")
    return syn


def embedded_images(root, df: pd.DataFrame, min_size: int, max_size: int) -> pd.DataFrame:
    """Write ``df`` (Blue Marble views) as ``root/data/manifest.parquet``, embed it with the tiny test backbone
    into ``root/emb`` and build naive cells of its training rows in ``root/cells``; returns the manifest read back."""
    from pigeon.cells import GeoCells
    from pigeon.data import read_manifest, write_manifest
    from pigeon.embed import embed_manifest

    write_manifest(df, root / "data" / "manifest.parquet")
    df = read_manifest(root / "data" / "manifest.parquet")
    embed_manifest(df, "pigeontest:tiny", root / "emb", num_workers=0)
    train = df[df["split"] == "train"]
    GeoCells.build(train["lat"].to_numpy(), train["lon"].to_numpy(), method="naive", min_size=min_size,
                   max_size=max_size).save(root / "cells")
    return df
