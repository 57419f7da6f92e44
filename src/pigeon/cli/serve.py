"""``pigeon serve``: the web service and map page for a trained model folder (or the bundled ``demo``)."""

from __future__ import annotations

from pathlib import Path

import typer

from pigeon.cli._app import app
from pigeon.cli._options import described, show
from pigeon.cli.predict import BACKBONE_HELP, GALLERY_HELP
from pigeon.serve._config import ServeConfig


def _serve(text: str, name: str, shown=show) -> str:
    return described(text, ServeConfig, name, shown=shown)


@app.command("serve")
def serve_command(
    model: Path = typer.Argument(..., help="Model folder (from 'pigeon train' or 'pigeon demo'), or a "
                               "bundled model (demo, geoclip)."),
    host: str = typer.Option(None, "--host", help=_serve("Address to listen on; anything but loopback needs "
                                                         "--api-key-file (or --no-auth).", "host")),
    port: int = typer.Option(None, "--port", help=_serve("Port.", "port")),
    api_key_file: Path = typer.Option(None, "--api-key-file", help="File of API keys, one a line; clients send "
                                      "one as X-API-Key."),
    no_auth: bool = typer.Option(False, "--no-auth", help="Serve off loopback without API keys, on purpose."),
    max_precision_km: float = typer.Option(None, "--max-precision-km", help="Coarsen every returned location and "
                                           "probability map to boxes at least this wide (e.g. 25); hides cell ids."),
    rate_limit: float = typer.Option(None, "--rate-limit", help=_serve(
        "Requests a minute per API key (per client address without keys).", "rate_limit_per_minute",
        lambda v: "no limit" if v is None else show(v))),
    max_views: int = typer.Option(None, "--max-views", help=_serve("Images per request.", "max_views")),
    max_upload_mb: float = typer.Option(None, "--max-upload-mb", help=_serve(
        "Size limit of one image, MB.", "max_image_bytes", lambda v: show(v / 2**20))),
    max_pixels: int = typer.Option(None, "--max-pixels", help=_serve("Pixel limit of one image, checked before "
                                                                     "decoding.", "max_pixels")),
    max_batch: int = typer.Option(None, "--max-batch", help=_serve("Images per model call.", "max_batch")),
    batch_wait_ms: float = typer.Option(None, "--batch-wait-ms", help=_serve(
        "How long a request waits for others to share its model call.", "batch_wait_ms")),
    max_pending: int = typer.Option(None, "--max-pending", help=_serve("Requests in progress at once; more get "
                                                                       "503.", "max_pending")),
    timeout: float = typer.Option(None, "--timeout", help=_serve("Time limit of one request, seconds.",
                                                                 "request_timeout_s")),
    read_timeout: float = typer.Option(None, "--read-timeout", help=_serve(
        "A request's headers, then its body, must arrive within this many seconds each; slower clients are "
        "dropped.", "read_timeout_s")),
    max_decode_pixels: int = typer.Option(None, "--max-decode-pixels", help=_serve(
        "Pixels being decoded at once, all requests together; more get 503.", "max_decode_pixels",
        lambda v: "max-views x max-pixels" if v is None else show(v))),
    exact_decode: bool = typer.Option(False, "--exact-decode", help="Decode every pixel of every image instead of "
                                      "JPEG draft mode / reduce to the backbone's input."),
    cors_origin: list[str] = typer.Option(None, "--cors-origin", help="Allow browser calls from this origin "
                                          "(repeatable) \\[default: CORS off]."),
    threads: int = typer.Option(None, "--threads", help=_serve("Torch threads for the model.", "torch_threads",
                                                               lambda v: "torch's" if v is None else show(v))),
    backbone: str = typer.Option(None, "--backbone", help=BACKBONE_HELP),
    gallery: Path = typer.Option(None, "--gallery", help=GALLERY_HELP),
    device: str = typer.Option(None, "--device", help="cpu, cuda, cuda:N (default: CUDA when available)."),
) -> None:
    """Serve a model: POST /v1/predict, GET /v1/stats, /healthz, /readyz, the map page at / and /docs.

    Examples:
      pigeon serve demo                                   # http://127.0.0.1:8000
      pigeon serve geoclip --backbone clip:clip-vit-large-patch14/   # GeoCLIP's published model
      pigeon serve model/ --host 0.0.0.0 --api-key-file keys.txt --max-precision-km 25 --rate-limit 30
    """
    from pigeon.serve import read_api_keys, serve

    config = ServeConfig.from_options(
        host=host, port=port, api_keys=read_api_keys(api_key_file) if api_key_file else None, no_auth=no_auth or None,
        max_precision_km=max_precision_km, rate_limit_per_minute=rate_limit, max_views=max_views,
        max_image_bytes=None if max_upload_mb is None else int(max_upload_mb * 2**20), max_pixels=max_pixels,
        max_batch=max_batch, batch_wait_ms=batch_wait_ms, max_pending=max_pending, request_timeout_s=timeout,
        read_timeout_s=read_timeout, max_decode_pixels=max_decode_pixels, exact_decode=exact_decode or None,
        cors_origins=tuple(cors_origin) if cors_origin else None, torch_threads=threads,
    )
    from pigeon.model import Geolocator

    geo = Geolocator.from_pretrained(model, device=device, backbone=backbone, gallery=gallery)
    geo.backbone  # noqa: B018  load it now: a missing backbone is an error here, not on the first request
    typer.echo(f"serving {model} ({geo.n_cells} cells) on http://{config.host}:{config.port}  "
               f"[auth: {'API key' if config.auth_required else 'none'}, precision cap: "
               f"{f'{config.max_precision_km:g} km' if config.max_precision_km else 'none'}]", err=True)
    serve(geo, config, model_name=str(model))
