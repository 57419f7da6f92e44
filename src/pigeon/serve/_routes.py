"""The service's routes, in routers by purpose. No route checks keys itself: the gate in front of the app does
(:mod:`pigeon.serve._auth`), for every route outside its public list. Each route reaches the server's state
through the :func:`service` dependency."""

from __future__ import annotations

import functools
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from pigeon.serve._auth import CLIENT
from pigeon.serve._errors import RequestError
from pigeon.serve._schemas import (
    ErrorResponse, Health, PredictJSON, PredictParams, PredictResponse, ServiceInfo, StatsResponse,
)
from pigeon.serve._service import Service
from pigeon.serve._uploads import FIELD
from pigeon.serve._web import PAGE_HEADERS, STATIC_DIR, GeoJSONBody

ERRORS = {code: {"model": ErrorResponse} for code in (400, 401, 403, 408, 413, 415, 422, 429, 503)}
_GEOJSON = {200: {"content": {"application/geo+json": {}}}}
#: The request body of /v1/predict as OpenAPI shows it (``maxItems`` is the server's; see ``create_app``).
PREDICT_BODY = {"requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": {
        "type": "object", "required": [FIELD], "properties": {FIELD: {
            "type": "array", "minItems": 1, "items": {"type": "string", "format": "binary"},
            "description": "1 to max_views images (views) of one place"}}}},
    "application/json": {"schema": PredictJSON.model_json_schema()},
}}}


def service(request: Request) -> Service:
    """The server's :class:`Service` (a dependency)."""
    return request.app.state.service


ServiceDep = Annotated[Service, Depends(service)]

health = APIRouter(tags=["health"])
prediction = APIRouter(tags=["predict"], responses=ERRORS)
statistics = APIRouter(tags=["statistics"])
maps = APIRouter(tags=["map"])
page = APIRouter(include_in_schema=False)


@health.get("/healthz", response_model=Health)
async def healthz() -> Health:
    """The process is up."""
    return Health(status="ok")


@health.get("/readyz", response_model=Health, responses={503: {"model": Health}})
async def readyz(svc: ServiceDep):
    """The model and its backbone are loaded and warmed up, and the batcher runs."""
    if svc.ready and svc.batcher.alive:
        return Health(status="ready")
    detail = svc.load_error or ("the batcher stopped" if svc.ready else "loading the model")
    return JSONResponse(Health(status="not ready", detail=detail).model_dump(), status_code=503)


@prediction.post("/v1/predict", response_model=PredictResponse, openapi_extra=PREDICT_BODY)
async def predict(request: Request, svc: ServiceDep, params: Annotated[PredictParams, Query()]) -> PredictResponse:
    """Where was this taken? Send 1 to 4 views of one place (multipart field `files`, or JSON base64)."""
    svc.stats.received()
    return await svc.predict(request, params)


@statistics.get("/v1/stats", response_model=StatsResponse, responses=ERRORS)
async def stats(request: Request, svc: ServiceDep) -> StatsResponse:
    """Requests served, errors by kind, latency percentiles, queue depth, batch sizes, your guesses by country."""
    return svc.stats.snapshot(svc.batcher.depth, svc.in_flight, svc.batcher.batch_images, request.scope.get(CLIENT))


@statistics.get("/v1/info", response_model=ServiceInfo)
async def info(svc: ServiceDep) -> ServiceInfo:
    """The model, the limits, whether a key is needed, the precision cap and the intended uses."""
    return svc.info()


@maps.get("/v1/boundaries", responses=_GEOJSON)
async def boundaries(request: Request, svc: ServiceDep) -> Response:
    """Country outlines (Natural Earth, simplified) that the page draws."""
    return _geojson(request, svc.boundaries)


@maps.get("/v1/cells", responses={**_GEOJSON, **ERRORS})
async def cells(request: Request, svc: ServiceDep) -> Response:
    """The geocell polygons, to colour by the probabilities of ``/v1/predict?map=1`` (not with a cap)."""
    if svc.responder.cap is not None:
        raise RequestError(403, "precision_capped", f"this server caps precision at {svc.cfg.max_precision_km:g} "
                           "km and withholds the cell polygons; use the points of ?map=1")
    return _geojson(request, svc.cells)


@page.get("/")
async def index() -> HTMLResponse:
    return HTMLResponse(_page(), headers=PAGE_HEADERS)


@functools.cache
def _page() -> str:
    return (STATIC_DIR / "index.html").read_text(encoding="utf-8")


def _geojson(request: Request, body: GeoJSONBody | None) -> Response:
    if body is None:
        raise RequestError(503, "not_ready", "the map data is still being prepared; retry in a few seconds",
                           retry_after=5)
    headers = {"Vary": "Accept-Encoding"}
    if "gzip" in request.headers.get("accept-encoding", ""):
        return Response(body.gz, media_type="application/geo+json", headers={**headers, "Content-Encoding": "gzip"})
    return Response(body.raw, media_type="application/geo+json", headers=headers)


ROUTERS = (health, prediction, statistics, maps, page)
