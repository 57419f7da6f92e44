"""What one server holds, and the request pipeline of a prediction: read, admit, decode, batch, answer.

Work per request is bounded at every step. The body is read under ``read_timeout_s`` (408 past it) and counted
against the bytes all bodies may hold at once, before the request takes one of the ``max_pending`` slots, so a slow
client holds none. It is parsed off the event loop. Each view's header is read before any pixel is decoded, and the
pixels the views will take to decode are counted against ``max_decode_pixels`` (503 with Retry-After past it, given
back as each decode finishes). The views are decoded in worker threads down to the backbone's input and sent to
the model through the micro-batcher, all within ``request_timeout_s``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import time
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any

from PIL import Image
from starlette.requests import Request

from pigeon.errors import PigeonError
from pigeon.model._aux import AUX_LABELS
from pigeon.posterior import GUESSES
from pigeon.serve._auth import CLIENT, Guard
from pigeon.serve._batcher import MicroBatcher
from pigeon.serve._config import ACCEPTED_FORMATS, ServeConfig
from pigeon.serve._errors import RequestError
from pigeon.serve._guard import Budget, Hold
from pigeon.serve._inference import Query, model_can_refine, predict_queries, query_method
from pigeon.serve._respond import Responder
from pigeon.serve._schemas import Limits, PredictParams, PredictResponse, ServiceInfo
from pigeon.serve._stats import ServiceStats
from pigeon.serve._uploads import Upload, View, check_content_type, decode_view, parse_uploads, probe_view, read_body
from pigeon.serve._web import GeoJSONBody, cell_polygons, country_boundaries

log = logging.getLogger("pigeon.serve")

INTENDED_USE = (
    "For research, teaching, games and locating your own photos. Do not use it to locate, track or identify "
    "people, or on photos of people who have not agreed to it. Guesses can be confidently wrong: never treat "
    "them as evidence. Uploaded images are not stored or logged."
)


class Service:
    """Everything one server holds: the model, its batcher, guards, budgets, statistics and the page's GeoJSON."""

    def __init__(self, geo, cfg: ServeConfig, model_name: str) -> None:
        self.geo = geo
        self.cfg = cfg
        self.model_name = model_name
        self.guard = Guard(cfg.api_keys, cfg.rate_limit_per_minute, cfg.auth_failures_per_minute)
        self.responder = Responder(geo, cfg.max_precision_km)
        self.stats = ServiceStats()
        self.batcher = MicroBatcher(functools.partial(predict_queries, geo), cfg.max_batch, cfg.batch_wait_ms / 1e3)
        self.pixels = Budget(cfg.decode_pixel_budget, "pixels being decoded at once", "too_many_pixels",
                             self.retry_after)
        self.bodies = Budget(cfg.body_byte_budget, "bytes of request bodies held at once", "body_too_large",
                             self.retry_after)
        self.decode_pool: ThreadPoolExecutor | None = None
        self.open_image: Callable | None = None  # the backbone transform's open(), once the backbone is loaded
        self.in_flight = 0
        self.ready = False
        self.load_error: str | None = None
        self.boundaries: GeoJSONBody | None = None
        self.cells: GeoJSONBody | None = None
        self._warmup: asyncio.Task | None = None
        self._seconds_per_image = 0.1  # running estimate, for Retry-After

    # ---------------------------------------------------------------- lifecycle
    async def start(self) -> None:
        self.decode_pool = ThreadPoolExecutor(self.cfg.decode_workers, thread_name_prefix="pigeon-decode")
        self.batcher.start()
        self._warmup = asyncio.get_running_loop().create_task(self._load(), name="pigeon-warmup")

    async def stop(self) -> None:
        self.ready = False
        if self._warmup is not None and not self._warmup.done():
            self._warmup.cancel()
        await self.batcher.stop()
        if self.decode_pool is not None:
            self.decode_pool.shutdown(wait=False, cancel_futures=True)

    async def _load(self) -> None:
        """Load the backbone and run one prediction before answering, and make the page's GeoJSON."""
        loop = asyncio.get_running_loop()
        try:
            self.open_image = await self.batcher.run_in_model_thread(self._prepare_backbone)
            blank = Image.new("RGB", (64, 64), (128, 128, 128))
            await self.batcher.run_in_model_thread(predict_queries, self.geo, [Query([blank], 1)])
            self.boundaries = await loop.run_in_executor(self.decode_pool, country_boundaries)
            if self.responder.cap is None:
                self.cells = await loop.run_in_executor(
                    self.decode_pool, cell_polygons, self.geo.cells.table.geometry.to_numpy(),
                    self.responder.countries, self.responder.regions)
        except Exception as exc:  # noqa: BLE001  reported by /readyz, not raised into the void
            self.load_error = f"{type(exc).__name__}: {exc}"
            log.error("pigeon serve: the model failed to load: %s", self.load_error)
            return
        self.ready = True

    def _prepare_backbone(self) -> Callable:
        """Load the backbone with this server's decoding; its transform's ``open`` is what the decoders call."""
        self.geo.backbone.decode = self.cfg.decode
        return self.geo.backbone.transform.open

    def retry_after(self) -> int:
        """Seconds until the admitted requests are likely served."""
        return max(1, math.ceil(self.in_flight * self._seconds_per_image))

    # ----------------------------------------------------------------- predict
    async def predict(self, request: Request, params: PredictParams) -> PredictResponse:
        """Answer one prediction request (see the module's docstring for the bounds at each step)."""
        start = time.perf_counter()
        method = self._check(params)
        with Hold(self.bodies) as body_bytes:
            uploads = await self.read(request, body_bytes)
            async with self._admitted():
                views, decode_ms = await self.decode(uploads)
                body_bytes.release()
                del uploads
                served = await self.batcher.submit(Query([v.image for v in views], params.top_k, method,
                                                         params.guess))
        self._seconds_per_image = 0.9 * self._seconds_per_image + 0.1 * served.model_ms / 1e3 / served.batch_images
        total_ms = (time.perf_counter() - start) * 1e3
        build = functools.partial(self.responder.build, served.prediction, views, served, decode_ms, total_ms,
                                  params.map, params.polygons, params.region)
        if params.region:  # an outline is a union of up to REGION_MAX_CELLS shapes: off the event loop
            [response] = await self._in_threads([self.decode_pool.submit(build)])
        else:
            response = build()
        self.stats.answered(total_ms, response.guess.country, request.scope.get(CLIENT))
        return response

    def _check(self, params: PredictParams) -> str:
        """Refuse what can be refused before reading the body; the placing method of the request."""
        cfg = self.cfg
        try:
            method = query_method(self.geo, params.method, params.refine)
        except PigeonError as exc:
            raise RequestError(400, "bad_method", str(exc)) from None
        if not self.ready:
            raise RequestError(503, "not_ready", "the model is still loading; retry in a few seconds", retry_after=5)
        if params.top_k > cfg.max_top_k:
            raise RequestError(422, "bad_parameter", f"top_k: at most {cfg.max_top_k} on this server (see /v1/info)")
        if (params.polygons or params.region) and self.responder.cap is not None:
            raise RequestError(403, "precision_capped", "cell polygons and credible-region outlines are withheld on "
                               f"this server (it caps precision at {cfg.max_precision_km:g} km); ask without "
                               "polygons and region")
        if params.guess is not None and params.guess not in GUESSES:
            raise RequestError(422, "bad_parameter", f"guess must be one of {', '.join(GUESSES)}, got "
                               f"{params.guess!r}; see /v1/info")
        return method

    async def read(self, request: Request, body_bytes: Hold) -> list[Upload]:
        """The request's uploads: the body within the read deadline, parsed in a worker thread."""
        content_type = check_content_type(request)
        try:
            async with asyncio.timeout(self.cfg.read_timeout_s):
                body = await read_body(request, self.cfg.max_body_bytes, body_bytes.take)
        except TimeoutError:
            raise RequestError(408, "read_timeout", f"the request body did not arrive within {self.cfg.read_timeout_s:g}"
                               " s; send it faster, or fewer or smaller images") from None
        [uploads] = await self._in_threads([self.decode_pool.submit(parse_uploads, body, content_type, self.cfg)])
        return uploads

    @asynccontextmanager
    async def _admitted(self) -> AsyncIterator[None]:
        """One of the ``max_pending`` slots, for at most ``request_timeout_s``."""
        cfg = self.cfg
        if self.in_flight >= cfg.max_pending:
            raise RequestError(503, "busy", f"the server is at its limit of {cfg.max_pending} requests in progress; "
                               "retry after the time in Retry-After", retry_after=self.retry_after())
        self.in_flight += 1
        try:
            async with asyncio.timeout(cfg.request_timeout_s):
                yield
        except TimeoutError:
            raise RequestError(503, "timeout", f"the request took longer than this server's {cfg.request_timeout_s:g} "
                               "s limit; retry later, or send fewer or smaller images",
                               retry_after=self.retry_after()) from None
        finally:
            self.in_flight -= 1

    async def decode(self, uploads: Sequence[Upload]) -> tuple[list[View], float]:
        """Decoded views and the milliseconds it took: headers first, then pixels within the pixel budget."""
        start = time.perf_counter()
        pool = self.decode_pool
        pending = await self._in_threads([pool.submit(probe_view, up, self.open_image, self.cfg) for up in uploads])
        self.pixels.take(sum(p.pixels for p in pending))
        futures = []
        for p in pending:  # each decode gives its pixels back when its thread is done, even if nobody waits
            futures.append(pool.submit(decode_view, p))
            futures[-1].add_done_callback(lambda _, n=p.pixels: self.pixels.give(n))
        views = await self._in_threads(futures)
        return views, (time.perf_counter() - start) * 1e3

    @staticmethod
    async def _in_threads(futures: list[Future]) -> list[Any]:
        """The results of worker-thread tasks; the first error is raised once all are done."""
        results = await asyncio.gather(*(asyncio.wrap_future(f) for f in futures), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return results

    # -------------------------------------------------------------------- info
    def info(self) -> ServiceInfo:
        cfg = self.cfg
        return ServiceInfo(
            model=self.model_name, backbone=str(self.geo.config.get("backbone")), n_cells=self.geo.n_cells,
            auth_required=cfg.auth_required, precision_km=cfg.max_precision_km,
            cell_polygons=self.responder.cap is None, refiner=model_can_refine(self.geo),
            methods=self.geo.methods, default_method=self.geo.resolve_method(None),
            guesses=list(GUESSES), default_guess=self.geo.posterior_config.guess,
            calibrated=not self.geo.calibration.identity, aux_labels={k: list(v) for k, v in AUX_LABELS.items()},
            limits=Limits(max_views=cfg.max_views, max_image_bytes=cfg.max_image_bytes, max_pixels=cfg.max_pixels,
                          max_aspect_ratio=cfg.decode.max_aspect_ratio, max_top_k=cfg.max_top_k,
                          accepted_formats=list(ACCEPTED_FORMATS), rate_limit_per_minute=cfg.rate_limit_per_minute,
                          request_timeout_s=cfg.request_timeout_s, read_timeout_s=cfg.read_timeout_s,
                          max_header_bytes=cfg.max_header_bytes),
            intended_use=INTENDED_USE,
        )
