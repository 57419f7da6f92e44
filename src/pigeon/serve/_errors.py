"""Errors a request can meet: each becomes JSON ``{"error": {"kind", "message"}}`` with its HTTP status."""

from __future__ import annotations

import json

from starlette.responses import JSONResponse

from pigeon.errors import PigeonError


class RequestError(PigeonError):
    """A request the service refuses, with the status, a short machine-readable kind and a message saying what
    to fix. ``retry_after`` (seconds) is sent as ``Retry-After`` for 429 and 503."""

    def __init__(self, status: int, kind: str, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.message = message
        self.retry_after = retry_after

    def headers(self) -> dict[str, str] | None:
        return {"Retry-After": str(self.retry_after)} if self.retry_after is not None else None

    def response(self) -> JSONResponse:
        return error_response(self.status, self.kind, self.message, self.headers())


def error_body(kind: str, message: str) -> bytes:
    """The JSON body of every error the service sends (also those written straight to the socket)."""
    return json.dumps({"error": {"kind": kind, "message": message}}).encode()


def error_response(status: int, kind: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"kind": kind, "message": message}}, status_code=status, headers=headers)
