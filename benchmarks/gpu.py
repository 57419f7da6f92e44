"""A prepared GPU run: the paper's backbone and pigeon's pipeline on one GPU, in under 8 minutes, one table.

Sections (each timed apart, each skipped with a note when the time budget is spent, the JSON rewritten after each
one so that a killed run keeps what it measured):

1. ``forward``: CLIP ViT-L/14-336 (the paper's architecture, randomly initialised from a ``CLIPVisionConfig``,
   saved to a folder and loaded through pigeon's backbone registry as ``clip:<folder>``), bare
   ``Backbone.embed_pixels`` images/s in bf16 and fp32 over batch sizes; the best batch size is kept.
2. ``pipeline``: ``pigeon.embed.embed_shards_from`` (decoding in DataLoader workers through the backbone's
   ``preprocess`` and ``pigeon.images``) from WebDataset shards of 512-px JPEGs and of 12 MP JPEGs, as a share of the
   bare bf16 forward; and the same 12 MP shards with pigeon's GPU decoding (``DecodeConfig(device="cuda")``, i.e.
   ``pigeon embed --decode-device cuda``: the workers check the headers, each batch's JPEGs are decoded by batched
   nvJPEG through ``torchvision.io.decode_jpeg`` and resized on the GPU). At ``--smoke`` sizes that row runs pigeon's
   same path with torchvision's CPU decoder, where torchvision's image ops load beside the installed torch.
3. ``pretrain``: one contrastive step of ``pigeon.pretrain.ContrastiveModel`` (CLIP image + text towers, bf16 autocast,
   AdamW over all weights) against the bare vision forward + backward at the same batch.
4. ``head``: ``pigeon.model.fit_head`` for one epoch on 5M synthetic 1024-d embeddings and 2,000 cells (haversine
   label smoothing): epoch seconds, peak GPU and host memory.
5. ``gallery``: refinement and kNN over a 10M-vector gallery held on the GPU (float16): torch versions of the
   refiner's exact cluster scoring (``pigeon.refine._search.cell_scores_exact``) and of exact kNN (top-k of a matrix
   product); FAISS's GPU build is not on PyPI for this set-up. At ``--smoke`` sizes both are checked against pigeon's
   own NumPy / FAISS code.

``--smoke`` runs every section at tiny sizes on the CPU in well under a minute (``tests/benchmarks`` runs it).
Without CUDA and without ``--smoke`` it says so and exits with status 2. Run on the GPU machine (see
``benchmarks/README.md`` for the exact command)::

    python benchmarks/gpu.py --json out/gpu.json --budget-s 420
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # pigeon from this tree, installed or not


@dataclass(frozen=True)
class Sizes:
    """Every size of the run: the GPU's and the smoke test's."""

    vision: dict[str, int]
    text: dict[str, int]
    batches: tuple[int, ...]
    timed_s: float  # seconds of repeated calls per forward measurement
    shard_images: int
    small_px: int
    photo_px: tuple[int, int]
    photo_images: int
    pretrain_batch: int
    head_rows: int
    head_dim: int
    cells: int
    head_batch: int
    gallery: int
    gallery_dim: int
    per_prototype: int  # gallery vectors per location cluster
    queries: int


GPU = Sizes(vision=dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                        image_size=336, patch_size=14, projection_dim=768),
            text=dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                      max_position_embeddings=77, vocab_size=49408, projection_dim=768),
            batches=(32, 64, 128, 256, 512), timed_s=3.0, shard_images=4096, small_px=512, photo_px=(4000, 3000),
            photo_images=192, pretrain_batch=64, head_rows=5_000_000, head_dim=1024, cells=2000, head_batch=8192,
            gallery=10_000_000, gallery_dim=1024, per_prototype=4, queries=4096)
SMOKE = Sizes(vision=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                          image_size=32, patch_size=8, projection_dim=16),
              text=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                        max_position_embeddings=77, vocab_size=512, projection_dim=16, bos_token_id=510,
                        eos_token_id=511),
              batches=(2, 8), timed_s=0.05, shard_images=16, small_px=64, photo_px=(400, 300), photo_images=6,
              pretrain_batch=4, head_rows=4000, head_dim=32, cells=40, head_batch=512, gallery=20_000,
              gallery_dim=32, per_prototype=4, queries=64)


class Run:
    """Collects the table's rows and rewrites the JSON after each, within a time budget."""

    def __init__(self, json_path: Path, budget_s: float, meta: dict[str, Any]) -> None:
        self.json_path, self.budget_s, self.meta = json_path, budget_s, meta
        self.start = time.perf_counter()
        self.rows: list[dict[str, Any]] = []
        self.checks: dict[str, Any] = {}

    def left(self) -> float:
        return self.budget_s - (time.perf_counter() - self.start)

    def add(self, section: str, what: str, value: str, note: str = "", **data: Any) -> None:
        self.rows.append({"section": section, "what": what, "value": value, "note": note, **data})
        self.save()

    def save(self) -> None:
        self.json_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.json_path.with_suffix(".tmp")
        tmp.write_text(json.dumps({**self.meta, "elapsed_s": round(time.perf_counter() - self.start, 1),
                                   "checks": self.checks, "rows": self.rows}, indent=2, default=str))
        os.replace(tmp, self.json_path)

    def section(self, name: str, need_s: float, fn: Callable[[], None]) -> None:
        """Run one section if ``need_s`` seconds are left; an exception becomes a row, not the end of the run."""
        if self.left() < need_s:
            self.add(name, "(skipped)", "-", f"time budget: {self.left():.0f} s left, about {need_s:.0f} s needed")
            return
        t0 = time.perf_counter()
        try:
            fn()
        except Exception as exc:  # a GPU run must still print what the other sections measured
            self.add(name, "(failed)", "-", f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}" if str(exc)
                     else type(exc).__name__)
        self.meta.setdefault("section_s", {})[name] = round(time.perf_counter() - t0, 1)


# --- timing helpers --------------------------------------------------------------------------------------------

def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def rate(fn: Callable[[], Any], n_items: int, device: torch.device, seconds: float) -> float:
    """Items/s of ``fn`` (``n_items`` each call), after one warm-up, repeated for about ``seconds``."""
    fn()
    sync(device)
    calls, t0 = 0, time.perf_counter()
    while True:
        fn()
        calls += 1
        sync(device)
        if time.perf_counter() - t0 >= seconds and calls >= 2:
            break
    return n_items * calls / (time.perf_counter() - t0)


def host_peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def gpu_peak(device: torch.device) -> str:
    return f"{torch.cuda.max_memory_allocated(device) / 2**30:.1f} GB" if device.type == "cuda" else "- (CPU)"


# --- 1. the backbone through the registry ----------------------------------------------------------------------

def clip_folder(work: Path, sizes: Sizes, with_text: bool, device: torch.device = torch.device("cpu")) -> Path:
    """A randomly initialised CLIP (vision, or vision + text) saved where ``clip:<folder>`` loads it."""
    from transformers import CLIPConfig, CLIPModel, CLIPVisionConfig, CLIPVisionModel

    from pigeon.backbones._config import CLIP_MEAN, CLIP_STD

    folder = work / ("clip-full" if with_text else "clip-vision")
    if (folder / "config.json").is_file():
        return folder
    torch.manual_seed(0)
    vision = CLIPVisionConfig(**sizes.vision)
    with device:  # random initialisation of 300-400M weights is much faster on the GPU
        model = (CLIPModel(CLIPConfig(text_config=sizes.text, vision_config=vision.to_dict())) if with_text
                 else CLIPVisionModel(vision))
    model.save_pretrained(folder)
    size = sizes.vision["image_size"]
    (folder / "preprocessor_config.json").write_text(json.dumps({
        "crop_size": {"height": size, "width": size}, "size": {"shortest_edge": size}, "resample": 3,
        "image_mean": list(CLIP_MEAN), "image_std": list(CLIP_STD)}))
    return folder


def bare_forward(run: Run, work: Path, sizes: Sizes, device: torch.device) -> None:
    from pigeon import backbones

    folder = clip_folder(work, sizes, with_text=False, device=device)
    for dtype in ("bfloat16", "float32"):
        bb = backbones.load(f"clip:{folder}", device=str(device), dtype=dtype)
        best = (0.0, 0)
        for b in sizes.batches:
            pixels = torch.randn(b, 3, bb.cfg.image_size, bb.cfg.image_size)
            try:
                r = rate(lambda: bb.embed_pixels(pixels), b, device, sizes.timed_s)
            except torch.OutOfMemoryError:
                break
            run.meta.setdefault("forward_sweep", {}).setdefault(dtype, {})[b] = round(r, 1)
            best = max(best, (r, b))
        run.checks[f"forward_{dtype}"] = {"images_s": best[0], "batch": best[1]}
        run.add("forward", f"bare forward, {dtype}", f"{best[0]:,.0f} img/s", f"best of batch {sizes.batches}: "
                f"{best[1]}; embed_dim {bb.embed_dim}, {sum(p.numel() for p in bb.parameters()) / 1e6:.0f} M params",
                images_s=best[0], batch=best[1])
        del bb
        if device.type == "cuda":
            torch.cuda.empty_cache()


# --- 2. the embedding pipeline from shards -----------------------------------------------------------------------

def jpeg_shards(work: Path, name: str, size: tuple[int, int], n: int, n_shards: int) -> str:
    """``n`` JPEGs of ``size`` (photo-like: smooth gradients plus noise) written as shards by ``pigeon data shard``'s
    code; returns their pattern. One encoded image is reused (decoding costs the same)."""
    import pandas as pd
    from PIL import Image

    from pigeon.data.shards import write_shards

    w, h = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    rgb = np.stack([xx / w * 200, yy / h * 180, (xx + yy) / (w + h) * 220], axis=-1)
    rgb += np.random.default_rng(0).normal(0, 12, rgb.shape).astype(np.float32)
    folder = work / f"{name}-img"
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8)).save(folder / "0.jpg", quality=90)
    for i in range(1, n):
        os.link(folder / "0.jpg", folder / f"{i}.jpg") if not (folder / f"{i}.jpg").exists() else None
    df = pd.DataFrame({"id": [str(i) for i in range(n)], "image": [f"{i}.jpg" for i in range(n)],
                       "lat": 0.0, "lon": 0.0})
    df.attrs["root"] = str(folder)
    return write_shards(df, work / f"{name}-shards", size=math.ceil(n / n_shards), overwrite=True).pattern


def pipeline(run: Run, work: Path, sizes: Sizes, device: torch.device, workers: int) -> None:
    from pigeon import backbones
    from pigeon.embed import embed_shards_from

    folder = clip_folder(work, sizes, with_text=False, device=device)
    bb = backbones.load(f"clip:{folder}", device=str(device), dtype="bfloat16")
    batch = run.checks.get("forward_bfloat16", {}).get("batch", sizes.batches[0])
    bare = run.checks.get("forward_bfloat16", {}).get("images_s")
    small = (sizes.small_px * 4 // 3, sizes.small_px)
    for label, px, n in (("512-px JPEG shards", small, sizes.shard_images),
                         ("12 MP JPEG shards, CPU decode", sizes.photo_px, sizes.photo_images)):
        pattern = jpeg_shards(work, f"{px[0]}x{px[1]}", px, n, max(1, workers) * 2)
        out = work / f"emb-{px[0]}"
        shutil.rmtree(out, ignore_errors=True)
        t0 = time.perf_counter()
        emb = embed_shards_from(pattern, bb, out, batch_size=batch, num_workers=workers)
        r = len(emb) / (time.perf_counter() - t0)
        share = f"{r / bare:.0%} of the bare bf16 forward" if bare else "no bare figure"
        run.add("pipeline", label, f"{r:,.0f} img/s", f"{share}; {n} images of {px[0]}x{px[1]}, {workers} decoding "
                f"workers, batch {batch} (includes worker start-up)", images_s=r, workers=workers)
    gpu_decode(run, work, sizes, device, bb, batch, bare, workers, pattern)


def gpu_decode(run: Run, work: Path, sizes: Sizes, device: torch.device, bb, batch: int, bare: float | None,
               workers: int, pattern: str) -> None:
    """The 12 MP shards (``pattern``) embedded with pigeon's device decoding: nvJPEG on CUDA (torchvision's CPU
    decoder in the smoke run), the pipeline's images/s as a share of the bare forward."""
    from pigeon.backbones import ImageTransform
    from pigeon.embed import Embeddings, embed_shards_from
    from pigeon.errors import InputError
    from pigeon.images import DecodeConfig

    label = f"12 MP JPEG shards, {'GPU decode (nvJPEG)' if device.type == 'cuda' else 'torchvision CPU decode'}"
    decode = DecodeConfig(device=str(device))
    try:
        ImageTransform(bb.cfg, decode).check_device()
    except InputError as exc:  # no CUDA, or torchvision's image ops do not load beside this torch
        run.add("pipeline", label, "-", f"not run: {str(exc).split(';')[0]}")
        return
    out = work / "emb-device-decode"
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    emb = embed_shards_from(pattern, bb, out, batch_size=batch, num_workers=workers, decode=decode)
    r = len(emb) / (time.perf_counter() - t0)
    bb.decode = DecodeConfig()
    cpu = Embeddings.load(work / f"emb-{sizes.photo_px[0]}")  # the same shards decoded by Pillow (row above)
    a, b = emb.get(cpu.ids), cpu.get(cpu.ids)
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    run.checks["device_decode"] = {"failed_images": emb.meta["n_failed_images"],
                                   "cosine_vs_pillow_min": float(cos.min())}
    share = f"{r / bare:.0%} of the bare bf16 forward" if bare else "no bare figure"
    run.add("pipeline", label, f"{r:,.0f} img/s", f"{share}; pigeon embed --decode-device {device.type}: "
            f"{sizes.photo_images} images of {sizes.photo_px[0]}x{sizes.photo_px[1]}, {workers} workers checking "
            f"headers, batch {batch} (includes worker start-up)", images_s=r, workers=workers)


# --- 3. one contrastive pretraining step -------------------------------------------------------------------------

class HashTokenizer:
    """Word -> id by hashing, padded: stands in for CLIP's BPE tokenizer (not installed offline); timing only."""

    def __init__(self, vocab: int) -> None:
        self.vocab = vocab

    def __call__(self, texts, padding=True, truncation=True, max_length=77, return_tensors="pt"):
        from transformers import BatchEncoding

        ids = [[1 + hash(w) % (self.vocab - 2) for w in t.split()][: max_length - 1] + [self.vocab - 1] for t in texts]
        n = max(map(len, ids))
        return BatchEncoding({"input_ids": torch.tensor([i + [0] * (n - len(i)) for i in ids]),
                              "attention_mask": torch.tensor([[1] * len(i) + [0] * (n - len(i)) for i in ids])})


def pretrain_step(run: Run, work: Path, sizes: Sizes, device: torch.device) -> None:
    from transformers import CLIPModel

    from pigeon.backbones import backbone_cfg
    from pigeon.backbones.clip import CLIPVisionBackbone
    from pigeon.pretrain import CLIPTowers, ContrastiveModel

    folder = clip_folder(work, sizes, with_text=True, device=device)
    clip = CLIPModel.from_pretrained(folder).to(device)
    backbone = CLIPVisionBackbone(f"clip:{folder}", backbone_cfg(f"clip:{folder}"), clip.vision_model)
    model = ContrastiveModel(CLIPTowers(clip, HashTokenizer(sizes.text["vocab_size"]), backbone), None, {}).train()
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-6, betas=(0.9, 0.98), eps=1e-6, weight_decay=1e-3)
    b, s = sizes.pretrain_batch, sizes.vision["image_size"]
    batch = {"pixels": torch.randn(b, 3, s, s, device=device),
             "texts": [f"A street view photo in region {i} of country {i % 7}" for i in range(b)]}
    amp = dict(device_type=device.type, dtype=torch.bfloat16)

    def contrastive() -> None:
        with torch.autocast(**amp):
            loss, _, _ = model(batch)
        loss.backward()
        optimiser.step()
        optimiser.zero_grad(set_to_none=True)

    def vision_only() -> None:
        with torch.autocast(**amp):
            out = clip.vision_model(pixel_values=batch["pixels"]).last_hidden_state.mean(1)
        out.float().pow(2).mean().backward()
        clip.zero_grad(set_to_none=True)

    step = rate(contrastive, b, device, sizes.timed_s)
    bare = rate(vision_only, b, device, sizes.timed_s)
    run.add("pretrain", "contrastive step (image + text towers, bf16, AdamW)", f"{step:,.0f} img/s",
            f"{step / bare:.0%} of the bare vision forward+backward ({bare:,.0f} img/s); batch {b}; "
            f"{sum(p.numel() for p in clip.parameters()) / 1e6:.0f} M params; peak GPU {gpu_peak(device)}",
            images_s=step, bare_images_s=bare)


# --- 4. head training on 5M embeddings ---------------------------------------------------------------------------

def head_training(run: Run, sizes: Sizes, device: torch.device) -> None:
    from pigeon.geo import wrap_lon
    from pigeon.model import TrainConfig, fit_head

    n, d, c = sizes.head_rows, sizes.head_dim, sizes.cells
    gen = torch.Generator(device=device).manual_seed(0)
    X = np.empty((n, d), np.float32)
    for lo in range(0, n, 1 << 18):  # drawn on the device, copied to host memory block by block
        hi = min(n, lo + (1 << 18))
        X[lo:hi] = torch.randn(hi - lo, d, device=device, generator=gen).cpu().numpy()
    rng = np.random.default_rng(0)
    centroids = np.column_stack([rng.uniform(-60, 70, c), rng.uniform(-180, 180, c)])
    cells = rng.integers(0, c, n)
    coords = centroids[cells] + rng.normal(0, 1, (n, 2))
    coords[:, 0] = coords[:, 0].clip(-89, 89)
    coords[:, 1] = wrap_lon(coords[:, 1])
    val = (X[:2048], coords[:2048], cells[:2048])
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    config = TrainConfig(epochs=1, batch_size=sizes.head_batch, aux=False, device=str(device), warmup_epochs=0.0)
    t0 = time.perf_counter()
    result = fit_head(X, coords, cells, centroids, val=val, config=config)
    seconds = time.perf_counter() - t0
    epoch = result.history[0] if getattr(result, "history", None) else {}
    run.add("head", f"geocell head, {n:,} x {d} embeddings, {c:,} cells, 1 epoch", f"{seconds:.3g} s",
            f"fit_head incl. statistics and validation; train steps {epoch.get('seconds', float('nan')):.3g} s; "
            f"batch {sizes.head_batch}; peak GPU {gpu_peak(device)}, peak host {host_peak_gb():.1f} GB",
            seconds=seconds, epoch=epoch)


# --- 5. refinement and kNN over a large gallery -------------------------------------------------------------------

def torch_cell_scores(Q: torch.Tensor, candidates: torch.Tensor, cell_ptr: torch.Tensor, protos: torch.Tensor,
                      width: int) -> torch.Tensor:
    """``cell_scores_exact`` (Euclidean) on the GPU: the best cluster of each candidate cell, padded to ``width``."""
    start, count = cell_ptr[candidates], cell_ptr[candidates + 1] - cell_ptr[candidates]  # (B, K)
    offs = torch.arange(width, device=Q.device)
    rows = (start[..., None] + offs).clamp(max=len(protos) - 1)  # (B, K, W)
    vecs = protos[rows].float()  # (B, K, W, D)
    dist = (vecs - Q.float()[:, None, None, :]).pow(2).sum(-1).sqrt()
    dist = dist.masked_fill(offs >= count[..., None], float("inf"))
    return -dist.min(-1).values


def gallery(run: Run, sizes: Sizes, device: torch.device) -> None:
    n, d, c, q = sizes.gallery, sizes.gallery_dim, sizes.cells, sizes.queries
    gen = torch.Generator(device=device).manual_seed(0)
    X = torch.randn(n, d, device=device, dtype=torch.float16, generator=gen)  # grouped by cell
    protos = X.view(-1, sizes.per_prototype, d).float().mean(1).half()  # clusters of consecutive members
    per_cell = len(protos) // c
    cell_ptr = torch.arange(c + 1, device=device) * per_cell
    Q = X[torch.randint(0, n, (q,), device=device, generator=gen)].float() + 0.01
    candidates = torch.randint(0, c, (q, 5), device=device, generator=gen)
    chunk = max(1, (1 << 28) // (5 * per_cell * d))
    score = lambda: torch.cat([torch_cell_scores(Q[i:i + chunk], candidates[i:i + chunk], cell_ptr, protos, per_cell)
                               for i in range(0, q, chunk)])  # noqa: E731
    r_refine = rate(score, q, device, sizes.timed_s)
    Xt = X.T.contiguous()
    norms = X.float().pow(2).sum(1)

    def knn() -> torch.Tensor:
        best = []
        for i in range(0, q, 1024):
            qq = Q[i:i + 1024].half()
            dist = norms[None, :] - 2 * (qq @ Xt).float()  # + |q|^2, the same for every row
            best.append(dist.topk(10, dim=1, largest=False).indices)
        return torch.cat(best)

    r_knn = rate(knn, q, device, sizes.timed_s)
    if run.meta["smoke"]:
        check_against_pigeon(run, X, protos, cell_ptr, Q, candidates, score(), knn())
    note = f"{n:,} x {d} float16 on the {device.type}, {len(protos):,} clusters, peak GPU {gpu_peak(device)}"
    run.add("gallery", "refinement: cluster scores of the top-5 cells (exact)", f"{r_refine:,.0f} queries/s", note,
            queries_s=r_refine)
    run.add("gallery", "kNN: exact top-10 over the whole gallery (torch)", f"{r_knn:,.0f} queries/s",
            f"{q} queries in blocks of 1,024; matrix product + top-k", queries_s=r_knn)


def check_against_pigeon(run: Run, X, protos, cell_ptr, Q, candidates, scores, knn_ids) -> None:
    """At smoke sizes: the torch versions agree with pigeon's refiner scoring and its FAISS exact search."""
    from pigeon.refine._index import build_index, search
    from pigeon.refine._search import cell_scores_exact

    expected = cell_scores_exact(Q.numpy(), candidates.numpy(), cell_ptr.numpy(), protos.float().numpy(),
                                 "euclidean")
    run.checks["refine_matches_pigeon"] = bool(np.allclose(scores.numpy(), expected, rtol=1e-4, atol=1e-3))
    index = build_index(X.float().numpy(), "euclidean", "Flat", 1)
    _, ids = search(index, Q.numpy(), 1, "euclidean")
    run.checks["knn_top1_matches_faiss"] = float((ids[:, 0] == knn_ids[:, 0].numpy()).mean())


# --- the run ------------------------------------------------------------------------------------------------------

def print_table(run: Run) -> None:
    print(f"\n{run.meta['device_name']} | torch {torch.__version__} | {run.meta['cpus']} CPUs | "
          f"{time.perf_counter() - run.start:.0f} s\n")
    print("| section | measure | value | note |\n|---|---|---:|---|")
    for r in run.rows:
        print(f"| {r['section']} | {r['what']} | {r['value']} | {r['note']} |")
    if run.checks.get("refine_matches_pigeon") is not None:
        print(f"\nchecks: {json.dumps({k: v for k, v in run.checks.items() if not k.startswith('forward')})}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes on the CPU (the test of this script)")
    parser.add_argument("--json", type=Path, default=Path("benchmarks/out/gpu.json"))
    parser.add_argument("--budget-s", type=float, default=420.0, help="stop starting sections after this")
    parser.add_argument("--workers", type=int, default=None, help="decoding workers (default: CPUs - 1)")
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temporary one)")
    args = parser.parse_args()
    if not args.smoke and not torch.cuda.is_available():
        print("error: CUDA is not available: the GPU figures need a GPU (run with --smoke for the CPU check of "
              "this script)", file=sys.stderr)
        sys.exit(2)
    device = torch.device("cpu" if args.smoke else "cuda")
    sizes = SMOKE if args.smoke else GPU
    workers = args.workers if args.workers is not None else (1 if args.smoke else max(1, (os.cpu_count() or 2) - 1))
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU (smoke sizes)"
    run = Run(args.json, args.budget_s, {"smoke": args.smoke, "device_name": name, "cpus": os.cpu_count(),
                                         "torch": torch.__version__, "sizes": vars(sizes)})
    work = args.work or Path(tempfile.mkdtemp(prefix="pigeon-gpu-"))
    run.section("forward", 30, lambda: bare_forward(run, work, sizes, device))
    run.section("pipeline", 60, lambda: pipeline(run, work, sizes, device, workers))
    run.section("pretrain", 40, lambda: pretrain_step(run, work, sizes, device))
    run.section("head", 90, lambda: head_training(run, sizes, device))
    run.section("gallery", 30, lambda: gallery(run, sizes, device))
    run.save()
    print_table(run)
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
