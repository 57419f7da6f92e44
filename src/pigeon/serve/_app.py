"""The FastAPI application: the routers, the gate (auth) and security headers in front, errors as JSON."""

from __future__ import annotations

import functools
import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from pigeon.serve._auth import Gate, secure_openapi
from pigeon.serve._config import ServeConfig
from pigeon.serve._errors import RequestError, error_response
from pigeon.serve._routes import ROUTERS
from pigeon.serve._service import INTENDED_USE, Service
from pigeon.serve._uploads import FIELD
from pigeon.serve._web import STATIC_DIR, SecurityHeaders

log = logging.getLogger("pigeon.serve")

__all__ = ["INTENDED_USE", "create_app"]


def create_app(geo, config: ServeConfig | None = None, model_name: str = "model") -> FastAPI:
    """The service for a loaded :class:`pigeon.model.Geolocator`.

    The backbone is loaded and warmed up right after start-up (``/readyz`` answers 503 until then). Run it with
    :func:`pigeon.serve.serve`, ``uvicorn`` (with :func:`pigeon.serve.server_config` for the connection limits),
    or FastAPI's ``TestClient``. Every route, including any added to the returned app later, needs a key on a
    server with keys unless it is in :data:`pigeon.serve._auth.PUBLIC_PATHS`. The model's backbone is set to the
    config's decoding (``ServeConfig.decode``) when it loads.
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

    app = FastAPIOffline(title="pigeon", version=_version(), lifespan=lifespan,
                         description="Image geolocation (PIGEON / PIGEOTTO). " + INTENDED_USE)
    app.state.service = svc
    for router in ROUTERS:
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    _add_error_handlers(app, svc)
    app.openapi = functools.partial(_openapi, app, cfg)
    # outermost last: CORS (so refusals carry its headers), security headers, then the gate before any route
    app.add_middleware(Gate, guard=svc.guard, refused=svc.stats.failed)
    app.add_middleware(SecurityHeaders)
    if cfg.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(cfg.cors_origins), allow_methods=["GET", "POST"],
                           allow_headers=["X-API-Key", "Authorization", "Content-Type"])
    return app


def _openapi(app: FastAPI, cfg: ServeConfig) -> dict:
    """The OpenAPI schema with this server's view limit, and the key on every route the gate guards."""
    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        content = schema["paths"]["/v1/predict"]["post"]["requestBody"]["content"]
        content["multipart/form-data"]["schema"]["properties"][FIELD]["maxItems"] = cfg.max_views
        content["application/json"]["schema"]["properties"]["images"]["maxItems"] = cfg.max_views
        app.openapi_schema = secure_openapi(schema) if cfg.auth_required else schema
    return app.openapi_schema


def _add_error_handlers(app: FastAPI, svc: Service) -> None:
    @app.exception_handler(RequestError)
    async def request_error(request: Request, exc: RequestError) -> JSONResponse:
        svc.stats.failed(exc.kind)
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(x) for x in first.get("loc", ()) if x not in ("query", "body")) or "request"
        svc.stats.failed("bad_parameter")
        return error_response(422, "bad_parameter", f"{where}: {first.get('msg', 'invalid')}; see /docs for the "
                              "accepted values")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        hint = {404: "; see /docs for the endpoints", 405: "; see /docs for the methods"}.get(exc.status_code, "")
        return error_response(exc.status_code, kind, f"{exc.detail}{hint}", getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        svc.stats.failed("internal")
        log.exception("pigeon serve: internal error on %s", request.url.path)  # the path only, never the body
        return error_response(500, "internal", "the server failed on this request (a bug, not your input); the "
                              "operator can find it in the server log")


@functools.cache
def _version() -> str:
    from pigeon import __version__

    return __version__
