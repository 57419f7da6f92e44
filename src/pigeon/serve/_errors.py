"""Errors a request can meet: each becomes JSON ``{"error": {"kind", "message"}}`` with its HTTP status."""

from __future__ import annotations

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
