"""Auth on every route: one ASGI middleware in front of the whole app, with an explicit list of public routes.

The gate runs before routing and parameter validation (so a request without a key gets 401, never a 422 that
reveals the API), covers every route however it was added (routers, ``app.get``, mounts), and is the one place
that checks keys, rate limits and failed key attempts. It also refuses keys sent in the URL, on every route:
URLs end up in access logs, proxies and browser histories.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl

from starlette.datastructures import Headers

from pigeon.serve._errors import RequestError
from pigeon.serve._guard import KeyCheck, RateLimiter, sent_key

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable, Callable], Awaitable[None]]

#: Routes anyone may call: the page and its files, health, the service's description, the country outlines and
#: the API documentation. Everything else needs a key on a server that has keys.
PUBLIC_PATHS = frozenset({"/", "/healthz", "/readyz", "/v1/info", "/v1/boundaries", "/docs", "/docs/oauth2-redirect",
                          "/redoc", "/openapi.json"})
PUBLIC_PREFIXES = ("/static/", "/static-offline-docs/")
#: Query parameters that look like a key: refused with 401 on every route (the header is the only way).
URL_KEY_PARAMS = frozenset({"api_key", "apikey", "api-key", "key", "token", "access_token", "x-api-key"})
#: Where the gate leaves who is asking (a key's short hash, or the client address) for the routes.
CLIENT = "pigeon.client"


def is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


class Guard:
    """Keys, rate limits per key (per address without keys) and failed key attempts per address."""

    def __init__(self, api_keys: frozenset[str], per_minute: float | None, failures_per_minute: float) -> None:
        self.keys = KeyCheck(api_keys)
        self.limiter = RateLimiter(per_minute)
        self.failures = RateLimiter(failures_per_minute)

    def admit(self, path: str, query: str, headers: Headers, host: str | None) -> str | None:
        """Who may call ``path``: the client id for a guarded route, None for a public one.

        Raises:
            RequestError: 401 (a key in the URL; no key or a wrong one), 429 (over the rate limit, or too many
                failed key attempts from this address).
        """
        if any(name.lower() in URL_KEY_PARAMS for name, _ in parse_qsl(query, keep_blank_values=True)):
            raise RequestError(401, "key_in_url", "API keys are not accepted in the URL (URLs end up in logs): "
                               "send the key in the X-API-Key header, and drop it from the query string")
        if is_public(path):
            return None
        address = f"addr:{host or 'unknown'}"
        if self.keys.required and (wait := self.failures.blocked(address)):
            raise RequestError(429, "too_many_failed_keys", "too many wrong API keys from this address; retry in "
                               f"{wait} s with a valid key", retry_after=wait)
        try:
            client = self.keys.client_id(headers, host)
        except RequestError:
            if sent_key(headers):  # a wrong key (a missing one guesses nothing)
                self.failures.take(address)
            raise
        self.limiter.check(client)
        return client


class Gate:
    """ASGI middleware: :meth:`Guard.admit` on every HTTP request before the app sees it; refusals as JSON errors.

    Args:
        app: the application behind it.
        guard: the guard to ask.
        refused: told the kind of every refusal (the service's statistics).
    """

    def __init__(self, app: ASGIApp, guard: Guard, refused: Callable[[str], None]) -> None:
        self.app, self.guard, self.refused = app, guard, refused

    async def __call__(self, scope: Scope, receive: Callable, send: Callable) -> None:
        if scope["type"] == "http":
            host = scope["client"][0] if scope.get("client") else None
            try:
                scope[CLIENT] = self.guard.admit(scope["path"], scope.get("query_string", b"").decode("latin-1"),
                                                 Headers(scope=scope), host)
            except RequestError as exc:
                self.refused(exc.kind)
                await exc.response()(scope, receive, send)
                return
        await self.app(scope, receive, send)


def secure_openapi(schema: dict[str, Any]) -> dict[str, Any]:
    """Mark every operation outside the public list as needing ``X-API-Key``: what the gate enforces."""
    schema.setdefault("components", {}).setdefault("securitySchemes", {})["APIKeyHeader"] = {
        "type": "apiKey", "in": "header", "name": "X-API-Key"}
    for path, operations in schema.get("paths", {}).items():
        if not is_public(path):
            for operation in operations.values():
                operation["security"] = [{"APIKeyHeader": []}]
    return schema
