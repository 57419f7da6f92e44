"""The web service: FastAPI inference and statistics endpoints and a map page, safe under load and against misuse.

>>> from pigeon.model import Geolocator
>>> from pigeon.serve import ServeConfig, create_app, serve
>>> serve(Geolocator.from_pretrained("demo"), ServeConfig(port=8000))      # what 'pigeon serve demo' runs

Endpoints: ``POST /v1/predict`` (multipart ``files`` or JSON base64, 1 to 4 views of one place), ``GET /v1/stats``,
``GET /v1/info``, ``GET /v1/boundaries``, ``GET /v1/cells``, ``GET /healthz``, ``GET /readyz``, the page at ``/``
and the OpenAPI documentation at ``/docs``. Needs the ``serve`` extra: ``pip install "pigeon-geo[serve]"``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pigeon._lazy import exports_of, lazy_exports
from pigeon.errors import MissingDependencyError

if TYPE_CHECKING:
    from pigeon.serve._config import ServeConfig

_EXPORTS = exports_of({
    "pigeon.serve._app": ("INTENDED_USE", "create_app"),
    "pigeon.serve._config": ("ACCEPTED_FORMATS", "ServeConfig", "is_loopback", "read_api_keys"),  # no FastAPI
    "pigeon.serve._guard": ("PrecisionCap",),
    "pigeon.serve._protocol": ("server_config",),
})
__all__ = sorted([*_EXPORTS, "serve"])
_getattr, __dir__ = lazy_exports(__name__, _EXPORTS)


def require_extra() -> None:
    """Raise a one-line :class:`MissingDependencyError` unless the ``serve`` extra is installed."""
    try:
        import fastapi  # noqa: F401
        import fastapi_offline  # noqa: F401
        import python_multipart  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise MissingDependencyError(exc.name or "fastapi", "serve", "the web service") from None


def __getattr__(name: str):
    if name in ("INTENDED_USE", "create_app", "server_config"):
        require_extra()
    return _getattr(name)


def serve(geo, config: ServeConfig | None = None, model_name: str = "model", log_level: str = "info") -> None:
    """Run the service with uvicorn until interrupted (one process; the model runs in one thread of it)."""
    require_extra()
    import uvicorn

    from pigeon.serve._app import create_app
    from pigeon.serve._config import ServeConfig
    from pigeon.serve._protocol import server_config

    cfg = config or ServeConfig()
    if cfg.torch_threads is not None:
        import torch

        torch.set_num_threads(cfg.torch_threads)
    uvicorn.Server(server_config(create_app(geo, cfg, model_name), cfg, log_level)).run()
