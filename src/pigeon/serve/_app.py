"""The FastAPI application: routes, the request pipeline (guard, read, decode, batch, answer), errors as JSON."""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

from fastapi import FastAPI, Query, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.security import APIKeyHeader
from fastapi.staticfiles import StaticFiles
from PIL import Image
from starlette.exceptions import HTTPException as StarletteHTTPException

from pigeon.errors import PigeonError
from pigeon.serve._batcher import MicroBatcher
from pigeon.serve._config import ACCEPTED_FORMATS, ServeConfig
from pigeon.serve._errors import RequestError
from pigeon.serve._guard import KeyCheck, RateLimiter
from pigeon.serve._inference import Query as ModelQuery
from pigeon.serve._inference import model_can_refine, predict_queries, query_method
from pigeon.serve._respond import Responder
from pigeon.serve._schemas import (
    ErrorResponse, Health, Limits, PredictJSON, PredictResponse, ServiceInfo, StatsResponse,
)
from pigeon.serve._stats import ServiceStats
from pigeon.serve._uploads import FIELD, decode_view, read_uploads
from pigeon.serve._web import PAGE_HEADERS, STATIC_DIR, GeoJSONBody, cell_polygons, country_boundaries

log = logging.getLogger("pigeon.serve")

INTENDED_USE = (
    "For research, teaching, games and locating your own photos. Do not use it to locate, track or identify "
    "people, or on photos of people who have not agreed to it. Guesses can be confidently wrong: never treat "
    "them as evidence. Uploaded images are not stored or logged."
)
_ERRORS = {code: {"model": ErrorResponse} for code in (400, 401, 403, 413, 415, 422, 429, 503)}


class Service:
    """Everything one server holds: the model, its batcher, guards, statistics and the page's GeoJSON."""

    def __init__(self, geo, cfg: ServeConfig, model_name: str) -> None:
        self.geo = geo
        self.cfg = cfg
        self.model_name = model_name
        self.keys = KeyCheck(cfg.api_keys)
        self.limiter = RateLimiter(cfg.rate_limit_per_minute)
        self.responder = Responder(geo, cfg.max_precision_km)
        self.stats = ServiceStats()
        self.batcher = MicroBatcher(functools.partial(predict_queries, geo), cfg.max_batch, cfg.batch_wait_ms / 1e3)
        self.decode_pool: ThreadPoolExecutor | None = None
        self.in_flight = 0
        self.ready = False
        self.load_error: str | None = None
        self.boundaries: GeoJSONBody | None = None
        self.cells: GeoJSONBody | None = None
        self._warmup: asyncio.Task | None = None
        self._seconds_per_image = 0.1  # running estimate, for Retry-After

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
            blank = Image.new("RGB", (64, 64), (128, 128, 128))
            await self.batcher.run_in_model_thread(predict_queries, self.geo, [ModelQuery([blank], 1)])
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

    def retry_after(self) -> int:
        """Seconds until the admitted requests are likely served."""
        return max(1, math.ceil(self.in_flight * self._seconds_per_image))

    async def predict(self, request: Request, top_k: int, method: str | None, refine: bool | None, with_map: bool,
                      polygons: bool) -> PredictResponse:
        cfg = self.cfg
        start = time.perf_counter()
        client = self.keys.client_id(request.headers, request.client.host if request.client else None)
        self.limiter.check(client)
        try:
            method = query_method(self.geo, method, refine)
        except PigeonError as exc:
            raise RequestError(400, "bad_method", str(exc)) from None
        if not self.ready:
            raise RequestError(503, "not_ready", "the model is still loading; retry in a few seconds", retry_after=5)
        if polygons and self.responder.cap is not None:
            raise RequestError(403, "precision_capped", "cell polygons are withheld on this server (it caps "
                               f"precision at {cfg.max_precision_km:g} km); ask for ?map=1 without polygons")
        if self.in_flight >= cfg.max_pending:
            raise RequestError(503, "busy", f"the server is at its limit of {cfg.max_pending} requests in progress; "
                               "retry after the time in Retry-After", retry_after=self.retry_after())
        self.in_flight += 1
        try:
            async with asyncio.timeout(cfg.request_timeout_s):
                uploads = await read_uploads(request, cfg)
                t_decode = time.perf_counter()
                loop = asyncio.get_running_loop()
                views = await asyncio.gather(*(loop.run_in_executor(self.decode_pool, decode_view, up, cfg)
                                               for up in uploads))
                decode_ms = (time.perf_counter() - t_decode) * 1e3
                served = await self.batcher.submit(ModelQuery([v.image for v in views], top_k, method))
        except TimeoutError:
            raise RequestError(503, "timeout", f"the request took longer than this server's {cfg.request_timeout_s:g} "
                               "s limit; retry later, or send fewer or smaller images",
                               retry_after=self.retry_after()) from None
        finally:
            self.in_flight -= 1
        self._seconds_per_image = 0.9 * self._seconds_per_image + 0.1 * served.model_ms / 1e3 / served.batch_images
        total_ms = (time.perf_counter() - start) * 1e3
        response = self.responder.build(served.prediction, views, served, decode_ms, total_ms, with_map, polygons)
        self.stats.answered(total_ms, response.guess.country)
        return response

    def info(self) -> ServiceInfo:
        cfg = self.cfg
        return ServiceInfo(
            model=self.model_name, backbone=str(self.geo.config.get("backbone")), n_cells=self.geo.n_cells,
            auth_required=cfg.auth_required, precision_km=cfg.max_precision_km,
            cell_polygons=self.responder.cap is None, refiner=model_can_refine(self.geo),
            methods=self.geo.methods, default_method=self.geo.resolve_method(None),
            limits=Limits(max_views=cfg.max_views, max_image_bytes=cfg.max_image_bytes, max_pixels=cfg.max_pixels,
                          max_top_k=cfg.max_top_k, accepted_formats=list(ACCEPTED_FORMATS),
                          rate_limit_per_minute=cfg.rate_limit_per_minute, request_timeout_s=cfg.request_timeout_s),
            intended_use=INTENDED_USE,
        )


def create_app(geo, config: ServeConfig | None = None, model_name: str = "model") -> FastAPI:
    """The service for a loaded :class:`pigeon.model.Geolocator`.

    The backbone is loaded and warmed up right after start-up (``/readyz`` answers 503 until then). Run it with
    :func:`pigeon.serve.serve`, ``uvicorn``, or FastAPI's ``TestClient``.
    """
    from fastapi_offline import FastAPIOffline

    cfg = config or ServeConfig()
    svc = Service(geo, cfg, model_name)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await svc.start()
        try:
            yield
        finally:
            await svc.stop()

    app = FastAPIOffline(
        title="pigeon", version=_version(), lifespan=lifespan,
        description="Image geolocation (PIGEON / PIGEOTTO). " + INTENDED_USE,
    )
    app.state.service = svc
    if cfg.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(cfg.cors_origins), allow_methods=["GET", "POST"],
                           allow_headers=["X-API-Key", "Authorization", "Content-Type"])
    _add_error_handlers(app, svc)
    protected = [Security(APIKeyHeader(name="X-API-Key", auto_error=False))] if cfg.auth_required else []

    @app.get("/healthz", response_model=Health, tags=["health"])
    async def healthz() -> Health:
        """The process is up."""
        return Health(status="ok")

    @app.get("/readyz", response_model=Health, tags=["health"], responses={503: {"model": Health}})
    async def readyz():
        """The model and its backbone are loaded and warmed up, and the batcher runs."""
        if svc.ready and svc.batcher.alive:
            return Health(status="ready")
        detail = svc.load_error or ("the batcher stopped" if svc.ready else "loading the model")
        return JSONResponse(Health(status="not ready", detail=detail).model_dump(), status_code=503)

    @app.post(
        "/v1/predict", response_model=PredictResponse, tags=["predict"], dependencies=protected,
        responses=_ERRORS, openapi_extra={"requestBody": {"required": True, "content": {
            "multipart/form-data": {"schema": {
                "type": "object", "required": [FIELD], "properties": {FIELD: {
                    "type": "array", "minItems": 1, "maxItems": cfg.max_views,
                    "items": {"type": "string", "format": "binary"},
                    "description": f"1 to {cfg.max_views} images (views) of one place"}}}},
            "application/json": {"schema": PredictJSON.model_json_schema()},
        }}},
    )
    async def predict(
        request: Request,
        top_k: int = Query(5, ge=1, le=cfg.max_top_k, description="candidates to return"),
        method: str | None = Query(None, max_length=64, description="placing method, one of the model's "
                                   "(GET /v1/info: methods); default: its default_method"),
        refine: bool | None = Query(None, description="older alias: false means method=cell; true or absent, the "
                                    "model's default method"),
        map: bool = Query(False, description="add the probability map (GeoJSON points)"),  # noqa: A002
        polygons: bool = Query(False, description="with map: every cell polygon too (large; not on a server with "
                               "a precision cap)"),
    ) -> PredictResponse:
        """Where was this taken? Send 1 to 4 views of one place (multipart field `files`, or JSON base64)."""
        svc.stats.received()
        return await svc.predict(request, top_k, method, refine, map, polygons)

    @app.get("/v1/stats", response_model=StatsResponse, tags=["statistics"], dependencies=protected,
             responses=_ERRORS)
    async def stats(request: Request) -> StatsResponse:
        """Requests served, errors by kind, latency percentiles, queue depth, batch sizes, guesses by country."""
        svc.keys.client_id(request.headers, None)
        return svc.stats.snapshot(svc.batcher.depth, svc.in_flight, svc.batcher.batch_images)

    @app.get("/v1/info", response_model=ServiceInfo, tags=["statistics"])
    async def info() -> ServiceInfo:
        """The model, the limits, whether a key is needed, the precision cap and the intended uses."""
        return svc.info()

    @app.get("/v1/boundaries", tags=["map"], responses={200: {"content": {"application/geo+json": {}}}})
    async def boundaries(request: Request) -> Response:
        """Country outlines (Natural Earth, simplified) that the page draws."""
        return _geojson(request, svc.boundaries, svc)

    @app.get("/v1/cells", tags=["map"], dependencies=protected,
             responses={200: {"content": {"application/geo+json": {}}}, **_ERRORS})
    async def cells(request: Request) -> Response:
        """The geocell polygons, to colour by the probabilities of ``/v1/predict?map=1`` (not with a cap)."""
        svc.keys.client_id(request.headers, None)
        if svc.responder.cap is not None:
            raise RequestError(403, "precision_capped", f"this server caps precision at {cfg.max_precision_km:g} "
                               "km and withholds the cell polygons; use the points of ?map=1")
        return _geojson(request, svc.cells, svc)

    page = (STATIC_DIR / "index.html").read_text(encoding="utf-8")

    @app.get("/", include_in_schema=False)
    async def index() -> HTMLResponse:
        return HTMLResponse(page, headers=PAGE_HEADERS)

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.middleware("http")
    async def security_headers(request: Request, call_next):
        response = await call_next(request)
        if request.url.path.startswith("/static/"):
            response.headers.update(PAGE_HEADERS)
        elif request.url.path.startswith("/v1/"):
            response.headers["Cache-Control"] = "no-store"
            response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    return app


def _geojson(request: Request, body: GeoJSONBody | None, svc: Service) -> Response:
    if body is None:
        raise RequestError(503, "not_ready", "the map data is still being prepared; retry in a few seconds",
                           retry_after=5)
    headers = {"Vary": "Accept-Encoding"}
    if "gzip" in request.headers.get("accept-encoding", ""):
        return Response(body.gz, media_type="application/geo+json", headers={**headers, "Content-Encoding": "gzip"})
    return Response(body.raw, media_type="application/geo+json", headers=headers)


def _add_error_handlers(app: FastAPI, svc: Service) -> None:
    def error(status: int, kind: str, message: str, headers=None) -> JSONResponse:
        return JSONResponse({"error": {"kind": kind, "message": message}}, status_code=status, headers=headers)

    @app.exception_handler(RequestError)
    async def request_error(request: Request, exc: RequestError) -> JSONResponse:
        svc.stats.failed(exc.kind)
        return error(exc.status, exc.kind, exc.message, exc.headers())

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(x) for x in first.get("loc", ()) if x not in ("query", "body")) or "request"
        svc.stats.failed("bad_parameter")
        return error(422, "bad_parameter", f"{where}: {first.get('msg', 'invalid')}; see /docs for the accepted "
                     "values")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        hint = {404: "; see /docs for the endpoints", 405: "; see /docs for the methods"}.get(exc.status_code, "")
        return error(exc.status_code, kind, f"{exc.detail}{hint}", getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        svc.stats.failed("internal")
        log.exception("pigeon serve: internal error on %s", request.url.path)  # the path only, never the body
        return error(500, "internal", "the server failed on this request (a bug, not your input); the operator "
                     "can find it in the server log")


@functools.cache
def _version() -> str:
    from pigeon import __version__

    return __version__
