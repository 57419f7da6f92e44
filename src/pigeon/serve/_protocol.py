"""The connection layer: uvicorn's HTTP/1.1 protocol with a header deadline and a header-size limit that answer.

uvicorn closes idle keep-alive connections but never one that sends its headers slowly, and it answers oversized
headers with a reset. :class:`BoundedH11Protocol` gives a client ``read_timeout_s`` to send a request's headers
(then 408) and refuses headers over ``max_header_bytes`` with 431 (both JSON errors, then the connection is closed
after a short linger, so that the answer arrives rather than a reset). The body's deadline is the app's
(:meth:`pigeon.serve._service.Service.read`). Access logs never show query strings.
"""

from __future__ import annotations

import asyncio
import logging
import re

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import STATUS_PHRASES, H11Protocol

from pigeon.serve._config import ServeConfig
from pigeon.serve._errors import error_body

_END_OF_HEADERS = re.compile(rb"\n\r?\n")
_LINGER_S = 2.0  # how long a refused connection keeps reading (and dropping) what the client still sends


class BoundedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline for each request's headers and a 431 for oversized ones."""

    header_timeout_s: float = 20.0
    max_header_bytes: int = 16 * 1024

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._deadline: asyncio.TimerHandle | None = None
        self._refused = False
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # dropping what a refused client still sends, until the linger ends
        if self.conn.their_state is h11.IDLE and self._headers_too_large(data):
            self._refuse(431, "headers_too_large", f"the request headers exceed {self.max_header_bytes:,} bytes; "
                         "send fewer or shorter headers (cookies, long tokens)")
            return
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:
            self._disarm()  # the headers are in: the body's deadline is the app's

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm()  # the next request's headers

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _headers_too_large(self, data: bytes) -> bool:
        pending = self.conn.trailing_data[0]
        if len(pending) + len(data) <= self.max_header_bytes:
            return False
        window = (pending + data)[: self.max_header_bytes + 4]
        return _END_OF_HEADERS.search(window) is None

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(self.header_timeout_s, self._headers_late)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _headers_late(self) -> None:
        self._deadline = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self._refuse(408, "read_timeout", f"the request headers did not arrive within {self.header_timeout_s:g} "
                         "s; send the whole request at once")

    def _refuse(self, status: int, kind: str, message: str) -> None:
        """Answer with a JSON error, stop reading requests, and close after a short linger."""
        body = error_body(kind, message)
        head = (f"HTTP/1.1 {status} {STATUS_PHRASES[status].decode()}\r\ncontent-type: application/json\r\n"
                f"content-length: {len(body)}\r\nconnection: close\r\n\r\n").encode()
        self._refused = True
        self._disarm()
        self.transport.write(head + body)
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.transport.resume_reading()
        self.loop.call_later(_LINGER_S, self.transport.close)


def protocol_class(cfg: ServeConfig) -> type[BoundedH11Protocol]:
    """:class:`BoundedH11Protocol` with this configuration's deadline and header limit."""
    return type("PigeonH11Protocol", (BoundedH11Protocol,),
                {"header_timeout_s": cfg.read_timeout_s, "max_header_bytes": cfg.max_header_bytes})


class _NoQueryStrings(logging.Filter):
    """Cut the query string out of uvicorn's access-log lines: it may hold what a client should not have sent."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str):
            record.args = (*args[:2], args[2].split("?", 1)[0], *args[3:])
        return True


def server_config(app, cfg: ServeConfig, log_level: str = "info") -> uvicorn.Config:
    """The uvicorn configuration of the service: its protocol, limits and logging."""
    config = uvicorn.Config(app, host=cfg.host, port=cfg.port, log_level=log_level, http=protocol_class(cfg),
                            h11_max_incomplete_event_size=cfg.max_header_bytes, limit_concurrency=cfg.max_connections,
                            server_header=False, proxy_headers=False, timeout_graceful_shutdown=5)
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, _NoQueryStrings) for f in access.filters):
        access.addFilter(_NoQueryStrings())
    return config
