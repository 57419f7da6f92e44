"""Embedding throughput: bare forward vs the full pipeline, per backbone and batch size, with peak memory.

Usage::

    python benchmarks/embed.py [--images 192] [--batch-sizes 1 16 64] [--workers N] [--seconds 6]
    python benchmarks/embed.py --part shards [--images 192] [--shard-workers 1 2]
    python benchmarks/embed.py --part decode [--decode-images 6]     # 12 MP photos: draft / reduce vs exact

Each backbone runs in a fresh subprocess so its peak resident memory (``ru_maxrss``) is its own. Backbones:
the offline default EfficientNet-Lite0 (real weights) and a randomly initialised CLIP ViT-B/16 (the size of
``openai/clip-vit-base-patch16``: 224 px, 768-d, 12 layers). The pipeline runs ``embed_manifest`` on generated
640x480 JPEGs (decode + resize + crop in worker processes, forward, float16 shards) at the batch size whose bare
forward was fastest, and the ratio compares it with that best bare forward (the ceiling the pipeline can reach).
Rates are the best of a few timing windows (the CPU may be shared). Prints a Markdown table.

``--part shards``: the same photos embedded with EfficientNet-Lite0 from loose files (``embed_manifest``) and from
WebDataset shards written by ``pigeon data shard``'s code (``embed_shards_from``), at each ``--shard-workers``
count, interleaved (loose, shards, loose, shards) and best of two, so both see the same load.

``--part decode`` compares the ways :mod:`pigeon.images` decodes a large photo for the backbone:
every pixel (``DecodeConfig(exact=True)``) against JPEG draft mode / ``Image.reduce`` down to 1x and 2x the resize
target (``reducing_gap``), on 12 MP photo-like images generated from the vendored Blue Marble mosaic (a crop
upscaled to 4000x3000, with and without sensor-like noise): milliseconds per image of decode + resize + crop on one
core, and the cosine between EfficientNet-Lite0 embeddings of each way and of the exact one. A re-encode of the
same JPEG at quality 85 gives the scale of such cosines; the demo's 128 px views are checked to embed identically.
The JPEGs also go through pigeon's device-decoding path on the CPU (``DecodeConfig(device="cpu")``: the header
check and hand-off a worker does, then ``torchvision.io.decode_jpeg`` of the batch, every pixel, and the torch
resize), where torchvision's image ops load beside the installed torch; on CUDA the same path is
``benchmarks/gpu.py``'s row.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BACKBONES = ("efficientnet:lite0", "clip-vit-b16-random")


def _backbone(name: str):
    from pigeon.backbones import load

    if name != "clip-vit-b16-random":
        return load(name, device="cpu")
    import torch
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel

    folder = Path(tempfile.mkdtemp()) / "vit_b16"
    torch.manual_seed(0)
    CLIPVisionModel(CLIPVisionConfig(image_size=224, patch_size=16)).save_pretrained(folder)
    CLIPImageProcessor(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224}).save_pretrained(folder)
    return load(f"clip:{folder}", device="cpu")


def _rate(fn, n_per_call: int, seconds: float, repeats: int = 3) -> float:
    """Best of ``repeats`` timing windows (items/s): the CPU is shared, so the best window is the least disturbed."""
    fn()  # warm-up (oneDNN primitive creation)
    best = 0.0
    for _ in range(repeats):
        calls, t0 = 0, time.perf_counter()
        while calls < 1 or time.perf_counter() - t0 < seconds / repeats:
            fn()
            calls += 1
        best = max(best, calls * n_per_call / (time.perf_counter() - t0))
    return best


def make_photos(folder: str, n_images: int) -> pd.DataFrame:
    """``n_images`` 640x480 JPEGs (~40 KB) of real-photo content, each a different crop, and their manifest."""
    import matplotlib
    import pandas as pd
    from PIL import Image

    photo = Image.open(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg").convert("RGB")
    photo = photo.resize((800, 600))
    for i in range(n_images):
        photo.crop((i % 160, i % 120, i % 160 + 640, i % 120 + 480)).save(f"{folder}/{i}.jpg", quality=90)
    df = pd.DataFrame({"id": [str(i) for i in range(n_images)], "image": [f"{i}.jpg" for i in range(n_images)],
                       "lat": 0.0, "lon": 0.0})
    df.attrs["root"] = folder
    return df


def run_one(name: str, n_images: int, batch_sizes: list[int], workers: int, seconds: float) -> dict:
    import torch

    from pigeon.embed import embed_manifest

    bb = _backbone(name)
    size = bb.cfg.image_size
    bare = {}
    for bs in batch_sizes:
        pixels = torch.randn(bs, 3, size, size)
        bare[bs] = _rate(lambda: bb.embed_pixels(pixels), bs, seconds)
    with tempfile.TemporaryDirectory() as tmp:
        df = make_photos(tmp, n_images)
        bs = max(bare, key=bare.get)  # the fastest bare forward: what the pipeline should be compared with
        pixels = torch.randn(bs, 3, size, size)
        runs = iter(range(100))
        pipeline = 0.0
        for _ in range(2):  # interleaved with the bare forward, so both see the same machine load
            pipeline = max(pipeline, _rate(lambda: embed_manifest(df, bb, f"{tmp}/emb{next(runs)}", batch_size=bs,
                                                                  num_workers=workers), n_images, 0.0, repeats=1))
            bare[bs] = max(bare[bs], _rate(lambda: bb.embed_pixels(pixels), bs, seconds, repeats=1))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"backbone": name, "bare": bare, "pipeline": pipeline, "pipeline_bs": bs, "peak_mb": peak_mb,
            "threads": torch.get_num_threads(), "workers": workers}


def run_shards(n_images: int, worker_counts: list[int]) -> list[dict]:
    """Images/s of the pipeline from loose JPEGs and from shards of the same JPEGs, per worker count."""
    from pigeon.backbones import load
    from pigeon.data.shards import write_shards
    from pigeon.embed import embed_manifest, embed_shards_from

    bb = load("efficientnet:lite0", device="cpu")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        df = make_photos(tmp, n_images)
        n_shards = 2 * max(worker_counts)  # each worker reads whole shards: give every worker two
        pattern = write_shards(df, f"{tmp}/shards", size=-(-n_images // n_shards)).pattern
        runs = iter(range(1000))
        for workers in worker_counts:
            best = {"loose files": 0.0, "shards": 0.0}
            for _ in range(2):
                for source in best:
                    t0 = time.perf_counter()
                    if source == "shards":
                        embed_shards_from(pattern, bb, f"{tmp}/e{next(runs)}", batch_size=16, num_workers=workers)
                    else:
                        embed_manifest(df, bb, f"{tmp}/e{next(runs)}", batch_size=16, num_workers=workers)
                    best[source] = max(best[source], n_images / (time.perf_counter() - t0))
            rows.append({"workers": workers, **best})
    return rows


def main_shards(args) -> None:
    import os

    load = os.getloadavg()[0]
    rows = run_shards(args.images, args.shard_workers)
    print(f"{args.images} 640x480 JPEGs, EfficientNet-Lite0, batch 16, {os.cpu_count()} CPUs, "
          f"load average {load:.1f} -> {os.getloadavg()[0]:.1f}\n")
    print("| decoding workers | loose files (img/s) | shards (img/s) | shards / loose |\n|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r['workers']} | {r['loose files']:.1f} | {r['shards']:.1f} | {r['shards'] / r['loose files']:.2f} |")


# ------------------------------------------------------------------------------------------- decode section
def _photo_12mp(seed: int, noise: float) -> bytes:
    """A 4000x3000 JPEG (quality 90) of an upscaled Blue Marble crop, with Gaussian noise of ``noise`` grey levels."""
    import io
    from importlib import resources

    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    with Image.open(resources.files("pigeon") / "resources" / "bluemarble" / "earth-blue-marble.jpg") as src:
        x, y = int(rng.integers(0, 3200)), int(rng.integers(200, 1300))
        crop = src.convert("RGB").crop((x, y, x + 800, y + 600)).resize((4000, 3000), Image.Resampling.BICUBIC)
    pixels = np.asarray(crop, np.float32) + rng.normal(0, noise, (3000, 4000, 1)).astype(np.float32) * (noise > 0)
    buf = io.BytesIO()
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def _reencode(data: bytes, fmt: str, **options) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.open(io.BytesIO(data)).save(buf, fmt, **options)
    return buf.getvalue()


def decode_section(n_images: int, repeats: int = 3) -> list[dict]:
    """Per image kind and decoding: ms per image (decode + resize + crop, one core) and embedding cosines."""
    import numpy as np
    import torch

    from pigeon.backbones import ImageTransform, load
    from pigeon.images import DecodeConfig

    torch.set_num_threads(1)
    bb = load("efficientnet:lite0", device="cpu")
    ways = {"exact (every pixel)": DecodeConfig(exact=True), "draft / reduce to 1x the target":
            DecodeConfig(reducing_gap=1.0), "draft / reduce to 2x the target (default)": DecodeConfig()}
    if _torchvision_decodes(ImageTransform(bb.cfg, DecodeConfig(device="cpu"))):
        ways[DEVICE_CPU] = DecodeConfig(device="cpu")
    kinds = {"12 MP JPEG, smooth": [_photo_12mp(i, 0) for i in range(n_images)],
             "12 MP JPEG, noise 2": [_photo_12mp(100 + i, 2) for i in range(n_images)]}
    kinds["12 MP PNG, noise 2 (reduce)"] = [_reencode(d, "PNG", compress_level=1) for d in kinds["12 MP JPEG, noise 2"][:2]]
    rows = []
    for kind, datas in kinds.items():
        exact = None
        for way, decode in ways.items():
            if decode.device is not None and not kind.startswith("12 MP JPEG"):
                continue
            transform = ImageTransform(bb.cfg, decode)
            run = _device_batch if decode.device else lambda t, ds: [t(d) for d in ds]
            run(transform, datas[:1])  # warm-up
            start = time.perf_counter()
            pixels = [x for _ in range(repeats) for x in run(transform, datas)][-len(datas):]
            ms = (time.perf_counter() - start) * 1e3 / (repeats * len(datas))
            emb = bb.embed_pixels(torch.stack(pixels))
            exact = emb if exact is None else exact
            cos = (emb * exact).sum(1) / np.linalg.norm(emb, axis=1) / np.linalg.norm(exact, axis=1)
            rows.append({"images": kind, "decoding": way, "n": len(datas), "ms": ms, "cos_mean": float(cos.mean()),
                         "cos_min": float(cos.min())})
        if kind.startswith("12 MP JPEG, noise"):  # the scale: the same photo re-saved at quality 85, decoded exactly
            again = ImageTransform(bb.cfg, ways["exact (every pixel)"])
            emb = bb.embed_pixels(torch.stack([again(_reencode(d, "JPEG", quality=85)) for d in datas]))
            cos = (emb * exact).sum(1) / np.linalg.norm(emb, axis=1) / np.linalg.norm(exact, axis=1)
            rows.append({"images": kind, "decoding": "exact, of a re-encode at quality 85", "n": len(datas),
                         "ms": float("nan"), "cos_mean": float(cos.mean()), "cos_min": float(cos.min())})
    rows.append(_demo_views_identical(bb))
    return rows


DEVICE_CPU = "torchvision decode_jpeg on the CPU (--decode-device cpu), batched"


def _torchvision_decodes(transform) -> bool:
    from pigeon.errors import InputError

    try:
        transform.check_device()
    except InputError as exc:
        print(f"(no torchvision row: {str(exc).split(';')[0]})", file=sys.stderr)
        return False
    return True


def _device_batch(transform, datas: list[bytes]) -> list:
    """What ``embed_manifest`` does with a decode device: each image staged (header checked, left encoded) as in a
    worker, then the batch decoded and preprocessed by ``finish``."""
    from pigeon.backbones import StagedBatch

    keys, pixels, failures = transform.finish(StagedBatch.of(list(range(len(datas))), [transform.stage(d)
                                                                                       for d in datas]))
    assert not failures and keys == list(range(len(datas))), failures
    return list(pixels)


def _demo_views_identical(bb) -> dict:
    """The demo's 128 px Blue Marble views are below twice the resize target: decoded the same either way."""
    import numpy as np
    import torch

    from pigeon.backbones import ImageTransform
    from pigeon.data import image_views, make_bluemarble_dataset
    from pigeon.images import DecodeConfig

    with tempfile.TemporaryDirectory() as tmp:
        df = make_bluemarble_dataset(tmp, n=4, views=4, seed=0)
        paths = [p for views in image_views(df) for p in views]
        fast = bb.embed_pixels(torch.stack([ImageTransform(bb.cfg)(p) for p in paths]))
        exact = bb.embed_pixels(torch.stack([ImageTransform(bb.cfg, DecodeConfig(exact=True))(p) for p in paths]))
    return {"images": "demo views (128 px Blue Marble)", "decoding": "default vs exact", "n": len(paths),
            "ms": float("nan"), "cos_mean": 1.0 if np.array_equal(fast, exact) else float("nan"),
            "cos_min": float(np.abs(fast - exact).max())}


def decode_table(rows: list[dict]) -> str:
    lines = [("| images | decoding | n | ms / image (1 core) | images/s (1 core) | speed-up vs exact | embedding "
              "cosine vs exact (mean / min) |"), "|---|---|---:|---:|---:|---:|---|"]
    exact_ms = {}
    for r in rows:
        if r["decoding"].startswith("exact (every"):
            exact_ms[r["images"]] = r["ms"]
        if r["images"].startswith("demo"):
            same = "identical (max abs difference %g)" % r["cos_min"] if r["cos_mean"] == 1.0 else "DIFFERENT"
            lines.append(f"| {r['images']} | {r['decoding']} | {r['n']} | - | - | - | {same} |")
            continue
        speed = exact_ms[r["images"]] / r["ms"] if r["ms"] == r["ms"] else float("nan")
        ms, rate = (f"{r['ms']:.0f}", f"{1e3 / r['ms']:.1f}") if r["ms"] == r["ms"] else ("-", "-")
        lines.append(f"| {r['images']} | {r['decoding']} | {r['n']} | {ms} | {rate} | "
                     f"{f'{speed:.1f}x' if speed == speed else '-'} | {r['cos_mean']:.4f} / {r['cos_min']:.4f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=192)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--workers", type=int, default=None, help="decoding workers (default: pigeon's default)")
    parser.add_argument("--seconds", type=float, default=6.0, help="minimum timed seconds per bare measurement")
    parser.add_argument("--only", help=argparse.SUPPRESS)  # internal: run one backbone, print JSON
    parser.add_argument("--part", choices=("backbones", "shards", "decode"), default="backbones")
    parser.add_argument("--shard-workers", type=int, nargs="+", default=[1, 2], help="--part shards: worker counts")
    parser.add_argument("--decode-images", type=int, default=6, help="--part decode: 12 MP JPEGs per kind")
    args = parser.parse_args()
    if args.part == "shards":
        main_shards(args)
        return
    if args.part == "decode":
        print(decode_table(decode_section(args.decode_images)))
        return
    from pigeon.embed import default_workers

    workers = default_workers() if args.workers is None else args.workers
    if args.only:
        print(json.dumps(run_one(args.only, args.images, args.batch_sizes, workers, args.seconds)))
        return
    rows = []
    for name in BACKBONES:
        cmd = [sys.executable, __file__, "--only", name, "--images", str(args.images), "--workers", str(workers),
               "--seconds", str(args.seconds), "--batch-sizes", *map(str, args.batch_sizes)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
    bss = args.batch_sizes
    print("| backbone | " + " | ".join(f"bare fwd bs={b} (img/s)" for b in bss)
          + " | pipeline (img/s) | pipeline / best bare | peak RSS (MB) |")
    print("|---" * (len(bss) + 4) + "|")
    for r in rows:
        bare = {int(k): v for k, v in r["bare"].items()}
        best = max(bare, key=bare.get)
        print(f"| {r['backbone']} | " + " | ".join(f"{bare[b]:.1f}" for b in bss)
              + f" | {r['pipeline']:.1f} (bs={r['pipeline_bs']}, {r['workers']} workers) "
              f"| {r['pipeline'] / bare[best]:.0%} (of bs={best}) | {r['peak_mb']:.0f} |")


if __name__ == "__main__":
    main()
