"""The service's settings: limits, batching, and the guards against misuse. Every default is written here once.

A plain module (no FastAPI), so that ``pigeon serve --help`` shows these defaults without the ``serve`` extra."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pigeon._config import JsonConfig
from pigeon.errors import ArtifactNotFoundError, InputError

if TYPE_CHECKING:
    from pigeon.images import DecodeConfig

#: Image formats the service accepts, detected from the bytes (never from a file name or a content type).
ACCEPTED_FORMATS = ("JPEG", "PNG", "WEBP")


@dataclass(frozen=True)
class ServeConfig(JsonConfig):
    """How ``pigeon serve`` listens, batches and guards itself.

    Attributes:
        host, port: where to listen. Anything but loopback needs ``api_keys`` or an explicit ``no_auth``.
        api_keys: keys that clients send as ``X-API-Key`` (or ``Authorization: Bearer``); empty: no key asked.
        no_auth: serve off loopback without keys (a deliberate choice, e.g. behind an authenticating proxy).
        max_precision_km: coarsen every returned location and probability map to boxes at least this wide
            (None: full precision). Cell ids and cell polygons are withheld when set.
        rate_limit_per_minute: requests per minute per API key (per client address without keys) on every route
            that needs a key; None: no limit.
        auth_failures_per_minute: failed key attempts a minute per client address; past it the address gets 429
            on every route that needs a key, even with a valid key, until its allowance refills.
        max_views: images (views of one place) per request.
        max_image_bytes: size limit of one encoded image.
        max_pixels: pixel limit of one image, checked from its header before decoding (decompression bombs).
        max_aspect_ratio: refuse images whose long side is more than this many times the short side (None: the
            decoding default, :data:`pigeon.images.DEFAULT_MAX_ASPECT_RATIO`).
        exact_decode: decode every pixel of every image (no JPEG draft mode / reduce to the backbone's input).
        max_decode_pixels: pixels being decoded at once, all requests together (each request's views are counted
            from their headers before decoding); past it: 503 with Retry-After. None: one full request's worth,
            ``max_views * max_pixels``.
        max_body_bytes_in_flight: bytes of request bodies held at once (counted as they arrive); past it: 503.
            None: four of the largest bodies.
        max_batch: images per model call; concurrent requests are grouped up to this.
        batch_wait_ms: how long the first request of a batch waits for others to join it.
        max_pending: requests admitted at once (decoding, queued or in the model; not while their body is still
            arriving); more get 503.
        request_timeout_s: time limit of one prediction request, from admission to answer; over it: 503.
        read_timeout_s: a request's headers, and then its body, must arrive within this many seconds each; a client
            that is slower gets 408 and its connection is closed.
        max_header_bytes: size limit of a request's headers; over it: 431 and the connection is closed.
        max_connections: open connections at once (uvicorn's ``limit_concurrency``); more get 503.
        decode_workers: threads that parse bodies and decode images (off the event loop).
        max_top_k: largest ``top_k`` a client may ask for.
        cors_origins: origins allowed to call the API from a browser; empty: CORS off.
        torch_threads: intra-op threads of the model (None: torch's default).
    """

    host: str = "127.0.0.1"
    port: int = 8000
    api_keys: frozenset[str] = field(default=frozenset(), repr=False, metadata={"secret": True})
    no_auth: bool = False
    max_precision_km: float | None = None
    rate_limit_per_minute: float | None = None
    auth_failures_per_minute: float = 20.0
    max_views: int = 4
    max_image_bytes: int = 10 * 2**20
    max_pixels: int = 40_000_000
    max_aspect_ratio: float | None = None
    exact_decode: bool = False
    max_decode_pixels: int | None = None
    max_body_bytes_in_flight: int | None = None
    max_batch: int = 32
    batch_wait_ms: float = 5.0
    max_pending: int = 128
    request_timeout_s: float = 30.0
    read_timeout_s: float = 20.0
    max_header_bytes: int = 16 * 1024
    max_connections: int = 512
    decode_workers: int = 2
    max_top_k: int = 20
    cors_origins: tuple[str, ...] = ()
    torch_threads: int | None = None

    def __post_init__(self) -> None:
        for name in ("port", "max_views", "max_image_bytes", "max_pixels", "max_batch", "max_pending",
                     "decode_workers", "max_top_k", "max_header_bytes", "max_connections"):
            if getattr(self, name) < 1:
                raise InputError(f"{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        for name in ("max_precision_km", "rate_limit_per_minute", "request_timeout_s", "read_timeout_s",
                     "auth_failures_per_minute"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise InputError(f"{name.replace('_', '-')} must be > 0, got {value}")
        if self.batch_wait_ms < 0:
            raise InputError(f"batch-wait-ms must be >= 0, got {self.batch_wait_ms}")
        from pigeon.images import DEFAULT_MAX_PIXELS

        if self.max_pixels > DEFAULT_MAX_PIXELS:
            raise InputError(f"max-pixels {self.max_pixels:,} is above the decompression-bomb ceiling "
                             f"{DEFAULT_MAX_PIXELS:,}; use a smaller limit")
        if self.decode_pixel_budget < self.max_pixels:
            raise InputError(f"max-decode-pixels {self.decode_pixel_budget:,} is below max-pixels {self.max_pixels:,}: "
                             "no image at the pixel limit could ever be decoded; raise it or lower max-pixels")
        if self.body_byte_budget < self.max_body_bytes:
            raise InputError(f"max_body_bytes_in_flight {self.body_byte_budget:,} is below one request's largest "
                             f"body ({self.max_body_bytes:,} bytes); raise it or lower max-upload-mb")
        self.decode  # noqa: B018  (checks the aspect-ratio limit)
        if self.torch_threads is not None and self.torch_threads < 1:
            raise InputError(f"threads must be >= 1, got {self.torch_threads}")
        if not is_loopback(self.host) and not self.api_keys and not self.no_auth:
            raise InputError(f"listening on {self.host} (not loopback) lets anyone on the network locate photos; "
                             "give --api-key-file FILE, or --no-auth to serve without keys on purpose")
        if self.api_keys and self.no_auth:
            raise InputError("--no-auth and --api-key-file contradict each other; pass one of them")

    @property
    def auth_required(self) -> bool:
        return bool(self.api_keys)

    @property
    def decode(self) -> DecodeConfig:
        """How the service decodes images (it sets the same on the model's backbone)."""
        from pigeon.images import DecodeConfig  # here: the CLI's help texts read this module without numpy or PIL

        limit = {} if self.max_aspect_ratio is None else {"max_aspect_ratio": self.max_aspect_ratio}
        return DecodeConfig(exact=self.exact_decode, **limit)

    @property
    def decode_pixel_budget(self) -> int:
        """Pixels being decoded at once, all requests together."""
        return self.max_decode_pixels or self.max_views * self.max_pixels

    @property
    def body_byte_budget(self) -> int:
        """Bytes of request bodies held at once, all requests together."""
        return self.max_body_bytes_in_flight or 4 * self.max_body_bytes

    @property
    def max_body_bytes(self) -> int:
        """Largest request body: every view as base64 JSON (4/3 of the bytes) plus room for the envelope."""
        return self.max_views * (self.max_image_bytes * 4 // 3 + 4) + 64 * 1024

    @classmethod
    def from_options(cls, **options) -> ServeConfig:
        """A config from CLI-style options; those left unset (None) keep the defaults above."""
        return cls().with_options(**options)


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine (127.0.0.0/8, ::1, localhost)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def read_api_keys(path: str | os.PathLike) -> frozenset[str]:
    """API keys from a file, one a line (blank lines and ``#`` comments skipped); at least 16 characters each."""
    path = Path(path)
    if not path.is_file():
        raise ArtifactNotFoundError(path, "write one API key a line into it (e.g. from "
                                    "'python -c \"import secrets; print(secrets.token_urlsafe(32))\"')")
    keys = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    keys = [k for k in keys if k and not k.startswith("#")]
    if not keys:
        raise InputError(f"{path} holds no API key; write one key a line")
    short = [i for i, k in enumerate(keys) if len(k) < 16]
    if short:
        raise InputError(f"{path}: key {short[0] + 1} is shorter than 16 characters; use long random keys")
    return frozenset(keys)
