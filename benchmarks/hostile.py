"""Hostile inputs against ``pigeon serve demo`` and ``pigeon embed``: answer time, memory, and the service's health.

    nice -n 10 python benchmarks/hostile.py [--attack-s 20] [--concurrency 8]

Against a fresh server (``pigeon serve demo``, a subprocess, default limits, 1 torch thread):

1. every file of the hostile corpus (``tests/support/hostile.py``), sent alone: status, answer time and the server's peak
   resident memory while it was answered (``/proc/PID/status`` sampled every 10 ms);
2. the issue's memory attack: 8 concurrent requests of 4 views of a 6300x6300 PNG each (about 130 KB a view);
3. a 52.5 MB JSON body with 17.5 million ``images`` entries, with ``/healthz`` polled meanwhile;
4. an attack run: normal requests (128-px JPEGs) at ``--concurrency`` while 4 clients loop over the hostile corpus,
   against the same normal load alone: throughput, p50/p99, ``/healthz`` p50/p99, peak memory.

``/healthz`` is polled every 50 ms from a thread of its own, on its own connection.

and ``pigeon embed`` over a folder holding the corpus plus 24 ordinary photos, against the ordinary photos alone:
wall time and peak memory of the process. Writes ``benchmarks/out/hostile.json`` and prints Markdown tables.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the corpus lives with the tests: tests/support/hostile.py

from serve_load import Server, request_images  # noqa: E402  (benchmarks/ is this script's folder)

from tests.support.hostile import corpus  # noqa: E402


class _Every:
    """Call ``tick()`` every ``every_s`` from a thread of its own while in the ``with`` block."""

    def __init__(self, every_s: float) -> None:
        self.every_s = every_s
        self._stop = threading.Event()

    def tick(self) -> None:
        raise NotImplementedError

    def __enter__(self):
        def loop():
            while not self._stop.is_set():
                self.tick()
                time.sleep(self.every_s)

        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


class PeakRss(_Every):
    """A process's peak resident memory (``.peak_mb``), sampled every 10 ms."""

    def __init__(self, server: Server, every_s: float = 0.01) -> None:
        super().__init__(every_s)
        self.server, self.peak_mb = server, 0.0

    def tick(self) -> None:
        self.peak_mb = max(self.peak_mb, self.server.rss_mb())


class HealthPoller(_Every):
    """GET /healthz every 50 ms on a connection of its own (not this process's event loop); ``.ms`` the times."""

    def __init__(self, url: str, every_s: float = 0.05) -> None:
        import httpx

        super().__init__(every_s)
        self.client, self.ms = httpx.Client(base_url=url, timeout=60), []

    def tick(self) -> None:
        start = time.perf_counter()
        self.client.get("/healthz")
        self.ms.append((time.perf_counter() - start) * 1e3)

    def __exit__(self, *exc) -> None:
        super().__exit__(*exc)
        self.client.close()

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.ms, q))


def each_input(server: Server) -> list[dict]:
    import httpx

    rows = []
    with httpx.Client(base_url=server.url, timeout=120) as client:
        for item in corpus():
            with PeakRss(server) as rss:
                start = time.perf_counter()
                r = client.post("/v1/predict", files={"files": (item.name, item.data, "application/octet-stream")})
                took = time.perf_counter() - start
            kind = r.json().get("error", {}).get("kind", "") if r.status_code != 200 else ""
            rows.append({"input": item.name, "what": item.why, "bytes": len(item.data), "status": r.status_code,
                         "kind": kind, "seconds": took, "peak_rss_mb": rss.peak_mb})
    return rows


def _png_6300() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (6300, 6300), (70, 120, 40)).save(buf, "PNG")
    return buf.getvalue()


async def memory_attack(server: Server) -> dict:
    """8 concurrent requests of 4 views of a 6300x6300 PNG (39.7 Mpx each)."""
    import httpx

    png = _png_6300()
    async with httpx.AsyncClient(base_url=server.url, timeout=300) as client:
        with PeakRss(server) as rss:
            start = time.perf_counter()
            answers = await asyncio.gather(*(client.post("/v1/predict", files=[("files", (f"{v}.png", png, "image/png"))
                                                                                for v in range(4)]) for _ in range(8)))
            took = time.perf_counter() - start
    await asyncio.sleep(1.0)
    statuses: dict[str, int] = {}
    for r in answers:
        statuses[str(r.status_code)] = statuses.get(str(r.status_code), 0) + 1
    return {"png_bytes": len(png), "statuses": statuses, "seconds": took, "peak_rss_mb": rss.peak_mb,
            "rss_after_mb": server.rss_mb()}


def json_flood(server: Server) -> dict:
    """The 52.5 MB body, sent by another process (curl, so that this one only polls /healthz)."""
    body = b'{"images": [' + b'"",' * 17_499_999 + b'""]}'
    with tempfile.NamedTemporaryFile(suffix=".json") as f:
        f.write(body)
        f.flush()
        cmd = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", "content-type: application/json",
               "--data-binary", f"@{f.name}", server.url + "/v1/predict"]
        with HealthPoller(server.url) as health:
            time.sleep(0.3)
            start = time.perf_counter()
            status = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
            took = time.perf_counter() - start
            time.sleep(0.3)
    return {"body_mb": len(body) / 1e6, "status": int(status), "seconds": took,
            "healthz_max_ms": max(health.ms), "healthz_p99_ms": health.percentile(99)}


async def _normal_load(url: str, images: list[bytes], concurrency: int, stop: asyncio.Event) -> dict:
    import httpx

    latencies, errors = [], 0

    async def worker(client, w):
        nonlocal errors
        i = w
        while not stop.is_set():
            start = time.perf_counter()
            r = await client.post("/v1/predict", files={"files": ("v.jpg", images[i % len(images)], "image/jpeg")})
            i += concurrency
            if r.status_code == 200:
                latencies.append((time.perf_counter() - start) * 1e3)
            else:
                errors += 1

    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=300, limits=limits) as client:
        start = time.perf_counter()
        await asyncio.gather(*(worker(client, w) for w in range(concurrency)))
        wall = time.perf_counter() - start
    lat = np.asarray(latencies)
    return {"ok": len(lat), "errors": errors, "throughput_rps": len(lat) / wall,
            "p50_ms": float(np.percentile(lat, 50)), "p99_ms": float(np.percentile(lat, 99))}


async def _hostile_loop(url: str, stop: asyncio.Event, clients: int = 4) -> dict:
    import httpx

    items, sent, statuses = corpus(), [0], {}

    async def worker(client, w):
        i = w
        while not stop.is_set():
            item = items[i % len(items)]
            r = await client.post("/v1/predict", files={"files": (item.name, item.data, "application/octet-stream")})
            statuses[str(r.status_code)] = statuses.get(str(r.status_code), 0) + 1
            sent[0] += 1
            i += clients

    async with httpx.AsyncClient(base_url=url, timeout=300) as client:
        await asyncio.gather(*(worker(client, w) for w in range(clients)))
    return {"sent": sent[0], "statuses": statuses}


async def attack(server: Server, images: list[bytes], concurrency: int, seconds: float, hostile: bool) -> dict:
    stop = asyncio.Event()
    tasks = [asyncio.create_task(_normal_load(server.url, images, concurrency, stop))]
    if hostile:
        tasks.append(asyncio.create_task(_hostile_loop(server.url, stop)))
    with PeakRss(server) as rss, HealthPoller(server.url) as health:
        await asyncio.sleep(seconds)
        stop.set()
        results = await asyncio.gather(*tasks)
    return {"hostile": hostile, "normal": results[0], "hostile_requests": results[1] if hostile else None,
            "healthz_p50_ms": health.percentile(50), "healthz_p99_ms": health.percentile(99), "peak_rss_mb": rss.peak_mb}


def embed_peak(manifest: Path, out: Path) -> dict:
    """``pigeon embed`` in a fresh process: wall time and its peak resident memory."""
    cmd = [sys.executable, "-m", "pigeon", "embed", str(manifest), "-o", str(out), "--workers", "0"]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    meta = json.loads((out / "meta.json").read_text()) if (out / "meta.json").is_file() else {}
    return {"exit": os.waitstatus_to_exitcode(status), "seconds": wall, "peak_rss_mb": usage.ru_maxrss / 1024,
            "embedded": meta.get("n_embedded"), "failed_images": meta.get("n_failed_images")}


def embed_runs(tmp: Path) -> dict:
    import pandas as pd

    from tests.support.hostile import photo_like, write_corpus

    paths = write_corpus(tmp / "photos")
    ordinary = []
    for i in range(24):
        ordinary.append(tmp / "photos" / f"ordinary_{i}.jpg")
        photo_like((1600, 1200), seed=i).save(ordinary[-1], quality=90)
    with_hostile = list(paths.values()) + ordinary
    runs = {}
    for name, files in {"ordinary photos only": ordinary, "ordinary + hostile corpus": with_hostile}.items():
        manifest = tmp / f"{len(files)}.csv"
        pd.DataFrame({"id": [p.name for p in files], "image": [str(p) for p in files]}).to_csv(manifest, index=False)
        runs[name] = {"files": len(files), **embed_peak(manifest, tmp / f"emb{len(files)}")}
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--attack-s", type=float, default=20.0, help="seconds of each attack / baseline run")
    parser.add_argument("--concurrency", type=int, default=8, help="normal requests in flight during the attack")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "hostile.json")
    parser.add_argument("--flood-only", action="store_true", help="only the JSON flood (printed as JSON)")
    args = parser.parse_args()
    if args.flood_only:
        server = Server(threads=1, max_batch=32, max_pending=128)
        try:
            server.wait_ready()
            print(json.dumps({**json_flood(server), "load_average": os.getloadavg()}))
        finally:
            server.stop()
        return
    load_before = os.getloadavg()
    images = request_images(64)
    server = Server(threads=1, max_batch=32, max_pending=128)
    try:
        server.wait_ready()
        idle_mb = server.rss_mb()
        result = {"idle_rss_mb": idle_mb, "inputs": each_input(server)}
        result["memory_attack"] = asyncio.run(memory_attack(server))
        result["json_flood"] = json_flood(server)
        result["baseline"] = asyncio.run(attack(server, images, args.concurrency, args.attack_s, hostile=False))
        result["attack"] = asyncio.run(attack(server, images, args.concurrency, args.attack_s, hostile=True))
        result["server_peak_rss_mb"] = server.peak_rss_mb()
    finally:
        server.stop()
    with tempfile.TemporaryDirectory() as tmp:
        result["embed"] = embed_runs(Path(tmp))
    result["conditions"] = {"machine": f"{os.cpu_count()} CPU cores", "load_average_before": load_before,
                            "load_average_after": os.getloadavg(), "torch_threads": 1,
                            "pixel_budget": "max_decode_pixels default: 4 x 40 Mpx = 160 Mpx"}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(tables(result))


def tables(r: dict) -> str:
    lines = [f"Idle server: {r['idle_rss_mb']:.0f} MB. Load average {r['conditions']['load_average_before'][0]:.1f} "
             f"before, {r['conditions']['load_average_after'][0]:.1f} after.", "",
             "| input | what | bytes | status (kind) | answer s | server peak RSS MB |", "|---|---|---:|---|---:|---:|"]
    for row in r["inputs"]:
        kind = f" ({row['kind']})" if row["kind"] else ""
        lines.append(f"| {row['input']} | {row['what']} | {row['bytes']:,} | {row['status']}{kind} | "
                     f"{row['seconds']:.2f} | {row['peak_rss_mb']:.0f} |")
    m, j = r["memory_attack"], r["json_flood"]
    lines += ["", f"Memory attack (8 concurrent requests x 4 views of a {m['png_bytes'] / 1e3:.0f} KB 6300x6300 PNG): "
              f"statuses {m['statuses']}, {m['seconds']:.1f} s, peak RSS {m['peak_rss_mb']:.0f} MB, "
              f"{m['rss_after_mb']:.0f} MB one second after.",
              f"JSON flood ({j['body_mb']:.1f} MB, 17.5 M entries, sent by curl): {j['status']} in {j['seconds']:.2f} s; "
              f"/healthz meanwhile: p99 {j['healthz_p99_ms']:.0f} ms, max {j['healthz_max_ms']:.0f} ms.", "",
              "| run | normal req/s | normal p50 ms | normal p99 ms | normal errors | hostile requests (statuses) | "
              "/healthz p50 ms | /healthz p99 ms | peak RSS MB |", "|---|---:|---:|---:|---:|---|---:|---:|---:|"]
    for run in (r["baseline"], r["attack"]):
        n, h = run["normal"], run["hostile_requests"]
        hostile = f"{h['sent']} {h['statuses']}" if h else "-"
        lines.append(f"| {'with the hostile corpus' if run['hostile'] else 'normal load alone'} | "
                     f"{n['throughput_rps']:.1f} | {n['p50_ms']:.0f} | {n['p99_ms']:.0f} | {n['errors']} | {hostile} | "
                     f"{run['healthz_p50_ms']:.0f} | {run['healthz_p99_ms']:.0f} | {run['peak_rss_mb']:.0f} |")
    lines += ["", "| pigeon embed over | files | exit | seconds | embedded | failed images | peak RSS MB |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    for name, e in r["embed"].items():
        lines.append(f"| {name} | {e['files']} | {e['exit']} | {e['seconds']:.1f} | {e['embedded']} | "
                     f"{e['failed_images']} | {e['peak_rss_mb']:.0f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
