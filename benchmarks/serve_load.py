"""Load on ``pigeon serve demo`` over loopback: throughput, latency, errors, memory, and the gain from batching.

For each concurrency (default 1, 8, 32) a fresh server (``pigeon serve demo``, a subprocess) answers
``--requests`` requests, each one 128-px Blue Marble JPEG view, sent by an asyncio httpx client in this process
that keeps that many requests in flight. Reported per run: throughput, p50/p99 latency, errors, the server's peak
memory (VmHWM). Then the same load at the highest concurrency against a server that does not batch
(``--max-batch 1``) gives the batching gain. Right before each server run the model runs in-process for
``--ceiling-s`` seconds (decode the same bytes, ``Geolocator.predict`` in batches of ``--max-batch``): the ceiling
that run is compared with, measured in the same minute because the shared machine's load changes.

    python benchmarks/serve_load.py                      # 1,000 requests per run
    python benchmarks/serve_load.py --requests 200 --concurrency 1 8 32 --threads 1

Writes ``benchmarks/out/serve_load.json`` and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def request_images(n: int, seed: int = 3) -> list[bytes]:
    from pigeon.data import image_views, make_bluemarble_dataset

    with tempfile.TemporaryDirectory() as tmp:
        df = make_bluemarble_dataset(tmp, n=max(1, n // 4), views=4, seed=seed)
        return [p.read_bytes() for views in image_views(df) for p in views][:n]


def in_process(geo, images: list[bytes], batch: int, seconds: float) -> float:
    """Images a second through decode + Geolocator.predict in batches of ``batch``."""
    from pigeon.images import load_image

    geo.predict([load_image(images[0])])  # warm up
    done, start, i = 0, time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        chunk = [images[(i + j) % len(images)] for j in range(batch)]
        geo.predict([load_image(b) for b in chunk])
        done += batch
        i += batch
    return done / (time.perf_counter() - start)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``pigeon serve demo`` in a subprocess, ready when /readyz says so."""

    def __init__(self, threads: int, max_batch: int, max_pending: int, extra: tuple[str, ...] = ()) -> None:
        self.port = free_port()
        cmd = [sys.executable, "-m", "pigeon", "serve", "demo", "--port", str(self.port), "--threads", str(threads),
               "--max-batch", str(max_batch), "--max-pending", str(max_pending), "--timeout", "120", *extra]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.url = f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 300.0) -> None:
        import httpx

        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError("the server exited during start-up")
            try:
                if httpx.get(self.url + "/readyz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise RuntimeError("the server did not become ready")

    def peak_rss_mb(self) -> float:
        return self._status("VmHWM")

    def rss_mb(self) -> float:
        return self._status("VmRSS")

    def _status(self, field: str) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


async def slow_client(url: str, stop: asyncio.Event, body: bool, drops: list[int]) -> None:
    """A client that sends a request one byte every 0.5 s (its body, or else its headers), reconnecting whenever the
    server drops it; ``drops`` counts those."""
    host, port = url.removeprefix("http://").split(":")
    head = (b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
            b"Content-Length: 100000\r\n\r\n" if body else b"POST /v1/predict HTTP/1.1\r\nHost: x\r\n")
    while not stop.is_set():
        try:
            reader, writer = await asyncio.open_connection(host, int(port))
            writer.write(head)
            while not stop.is_set():
                writer.write(b"x")
                await writer.drain()
                try:
                    if await asyncio.wait_for(reader.read(65536), 0.5) or reader.at_eof():
                        drops[0] += 1  # answered (408) or closed: it was dropped
                        break
                except TimeoutError:
                    continue
            writer.close()
        except OSError:
            drops[0] += 1
            await asyncio.sleep(0.1)


async def load(url: str, images: list[bytes], n: int, concurrency: int, slow: int = 0) -> dict:
    """``n`` requests with ``concurrency`` in flight (and ``slow`` slow clients attached): throughput, latency
    percentiles, errors by status."""
    import httpx

    latencies: list[float] = []
    errors: dict[str, int] = {}
    counter = iter(range(n))

    async def worker(client: httpx.AsyncClient) -> None:
        for i in counter:
            start = time.perf_counter()
            try:
                r = await client.post("/v1/predict", files={"files": ("v.jpg", images[i % len(images)], "image/jpeg")})
                if r.status_code == 200:
                    latencies.append(time.perf_counter() - start)
                else:
                    errors[str(r.status_code)] = errors.get(str(r.status_code), 0) + 1
            except httpx.HTTPError as exc:
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1

    stop, drops = asyncio.Event(), [0]
    slow_tasks = [asyncio.create_task(slow_client(url, stop, body=i % 2 == 0, drops=drops)) for i in range(slow)]
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=180) as client:
        await client.post("/v1/predict", files={"files": ("v.jpg", images[0], "image/jpeg")})  # warm connection
        start = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        wall = time.perf_counter() - start
    stop.set()
    await asyncio.gather(*slow_tasks)
    lat = np.array(latencies) * 1e3
    return {"requests": n, "concurrency": concurrency, "slow_clients": slow, "slow_drops": drops[0],
            "ok": len(latencies), "errors": errors,
            "throughput_rps": len(latencies) / wall, "p50_ms": float(np.percentile(lat, 50)) if len(lat) else None,
            "p99_ms": float(np.percentile(lat, 99)) if len(lat) else None, "wall_s": wall}


def run_server(images, n, concurrency, threads, max_batch, slow: int = 0, extra: tuple[str, ...] = ()) -> dict:
    import httpx

    server = Server(threads, max_batch, max_pending=max(128, 2 * concurrency), extra=extra)
    try:
        server.wait_ready()
        result = asyncio.run(load(server.url, images, n, concurrency, slow))
        result["peak_rss_mb"] = server.peak_rss_mb()
        stats = httpx.get(server.url + "/v1/stats").json()
        result["batch_images"] = stats["batch_images"]
        result["max_batch"] = max_batch
        return result
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1000, help="requests per run")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--threads", type=int, default=1, help="torch threads, server and in-process alike")
    parser.add_argument("--max-batch", type=int, default=32)
    parser.add_argument("--ceiling-s", type=float, default=10.0, help="seconds of in-process model per run")
    parser.add_argument("--slow-clients", type=int, default=20, help="slow clients attached in the last run "
                        "(half send their body, half their headers, a byte every 0.5 s; 0: no such run)")
    parser.add_argument("--read-timeout", type=float, default=5.0, help="the server's --read-timeout in that run")
    parser.add_argument("--only-slow", action="store_true", help="run only the top concurrency with and without the "
                        "slow clients")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "serve_load.json")
    args = parser.parse_args()

    import torch

    from pigeon.model import Geolocator

    torch.set_num_threads(args.threads)
    geo = Geolocator.from_pretrained("demo")
    images = request_images(64)

    def measured(concurrency: int, max_batch: int, slow: int = 0) -> dict:
        ceiling = in_process(geo, images, args.max_batch, args.ceiling_s)
        extra = ("--read-timeout", str(args.read_timeout)) if args.slow_clients else ()
        run = run_server(images, args.requests, concurrency, args.threads, max_batch, slow, extra)
        run["in_process_img_s"] = ceiling
        run["share_of_in_process"] = run["throughput_rps"] / ceiling
        print(f"concurrency {concurrency}, max batch {max_batch}: {run['throughput_rps']:.1f} req/s "
              f"(in-process {ceiling:.1f} img/s)", file=sys.stderr)
        return run

    top = max(args.concurrency)
    if args.only_slow:
        print(slow_table([measured(top, args.max_batch), measured(top, args.max_batch, args.slow_clients)]))
        return
    runs = [measured(c, args.max_batch) for c in args.concurrency]
    unbatched = measured(top, 1)
    slow = [runs[-1], measured(top, args.max_batch, args.slow_clients)] if args.slow_clients else []
    result = {
        "conditions": {"machine": f"{os.cpu_count()} CPU cores, {platform.machine()}", "threads": args.threads,
                       "image": "one 128-px Blue Marble JPEG per request", "model": "demo (EfficientNet-Lite0)",
                       "note": "client and server share the machine (and other people's jobs)"},
        "runs": runs, "unbatched": unbatched, "slow_clients": slow,
        "in_process_batch_1_img_s": in_process(geo, images, 1, args.ceiling_s),
        "batching_gain": runs[-1]["throughput_rps"] / unbatched["throughput_rps"],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(table(result, args.max_batch))
    if slow:
        print("\n" + slow_table(slow))


def slow_table(runs: list[dict]) -> str:
    """The top-concurrency run without and with slow clients attached."""
    base = runs[0]["throughput_rps"]
    lines = ["| slow clients | concurrency | throughput (req/s) | vs none | p50 (ms) | p99 (ms) | errors | slow clients "
             "dropped |", "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in runs:
        lines.append(f"| {r['slow_clients']} | {r['concurrency']} | {r['throughput_rps']:.1f} | "
                     f"{100 * r['throughput_rps'] / base:.0f} % | {r['p50_ms']:.0f} | {r['p99_ms']:.0f} | "
                     f"{sum(r['errors'].values())} | {r['slow_drops']} |")
    return "\n".join(lines)


def table(result: dict, max_batch: int) -> str:
    lines = ["| concurrency | max batch | requests | throughput (req/s) | p50 (ms) | p99 (ms) | errors | "
             "server peak RSS (MB) | mean images per model call | in-process batched (img/s) | service / in-process |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in [*result["runs"], result["unbatched"]]:
        sizes = {int(k): v for k, v in r["batch_images"].items()}
        mean = sum(k * v for k, v in sizes.items()) / max(1, sum(sizes.values()))
        lines.append(f"| {r['concurrency']} | {r['max_batch']} | {r['requests']} | {r['throughput_rps']:.1f} | "
                     f"{r['p50_ms']:.0f} | {r['p99_ms']:.0f} | {sum(r['errors'].values())} | "
                     f"{r['peak_rss_mb']:.0f} | {mean:.1f} | {r['in_process_img_s']:.1f} | "
                     f"{100 * r['share_of_in_process']:.0f} % |")
    lines += ["", f"in-process one image at a time: {result['in_process_batch_1_img_s']:.1f} img/s; batching gain at "
              f"the top concurrency (max batch {max_batch} vs 1): x{result['batching_gain']:.2f}"]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
