"""Reading uploads: a bounded request body, parsed in memory off the event loop, decoded by :mod:`pigeon.images`.

Nothing here writes to disk or logs. The body is read into memory up to the server's limit (a declared
``Content-Length`` over it is refused before any byte is read), each chunk counted against the bytes all bodies may
hold at once. Parsing runs in a worker thread: a JSON body's strings are counted before it is parsed (a body with
millions of entries is refused in milliseconds), multipart parts are collected by python-multipart's parser into
memory and the closing boundary is required. Each image's header is read first (:func:`probe_view`: format from
the content, pixels and aspect ratio, the size decoding will take), then it is decoded to the backbone's input
(:func:`decode_view`).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import functools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from PIL import Image
from pydantic import Field, ValidationError, create_model
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, MultipartState, parse_options_header
from starlette.requests import ClientDisconnect, Request

from pigeon.errors import InputError
from pigeon.images import ImageShapeError, ImageTooLargeError, PendingImage, UnreadableImageError
from pigeon.serve._config import ACCEPTED_FORMATS, ServeConfig
from pigeon.serve._errors import RequestError
from pigeon.serve._schemas import PredictJSON

FIELD = "files"
_HOW = (f"send multipart/form-data with each image in a '{FIELD}' part, or application/json "
        '{"images": ["<base64>", ...]}')


@dataclass
class Upload:
    """One image as sent: its label for messages (``files[0]``) and its encoded bytes."""

    label: str
    data: bytes


@dataclass
class View:
    """One decoded view: the RGB image and, when its EXIF has one, the GPS position (lat, lon)."""

    image: Image.Image
    gps: tuple[float, float] | None = None


def check_content_type(request: Request) -> str:
    """The request's content type, refused (415) unless multipart or JSON."""
    value = request.headers.get("content-type", "")
    kind = value.split(";")[0].strip().lower()
    if kind not in ("multipart/form-data", "application/json"):
        raise RequestError(415, "unsupported_media_type", f"content type {kind or '(none)'!r} is not accepted; {_HOW}")
    return value


async def read_body(request: Request, limit: int, take: Callable[[int], None]) -> bytes:
    """The whole body, at most ``limit`` bytes; ``take(n)`` is told of every chunk as it arrives (a budget)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _body_too_large(f"{_mb(int(declared))}", limit)
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise _body_too_large(f"at least {_mb(size)}", limit)
            take(len(chunk))
            chunks.append(chunk)
    except ClientDisconnect:
        raise RequestError(400, "client_disconnect", "the client closed the connection before the body "
                           "arrived; send the request again") from None
    return b"".join(chunks)


def parse_uploads(body: bytes, content_type: str, cfg: ServeConfig) -> list[Upload]:
    """The images of a predict request, checked for count and size; no decoding yet (runs in a worker thread)."""
    if not body:
        raise RequestError(400, "no_images", f"the request body is empty; {_HOW}")
    multipart = content_type.split(";")[0].strip().lower() == "multipart/form-data"
    uploads = _from_multipart(body, content_type, cfg) if multipart else _from_json(body, cfg)
    if not uploads:
        raise RequestError(400, "no_images", f"no image in the request; {_HOW}")
    if len(uploads) > cfg.max_views:
        raise _too_many(f"{len(uploads)} images sent", cfg)
    for up in uploads:
        if not up.data:
            raise RequestError(400, "empty_file", f"{up.label} is empty; attach the image file itself")
        if len(up.data) > cfg.max_image_bytes:
            raise RequestError(413, "image_too_large", f"{up.label} is {_mb(len(up.data))}, over the "
                               f"{_mb(cfg.max_image_bytes)} limit; downscale or recompress it")
    return uploads


def _too_many(sent: str, cfg: ServeConfig) -> RequestError:
    return RequestError(400, "too_many_files", f"{sent}, at most {cfg.max_views} views of one place are accepted; "
                        "send one place per request")


def _body_too_large(size: str, limit: int) -> RequestError:
    return RequestError(413, "body_too_large", f"the request body ({size}) exceeds the {_mb(limit)} limit; "
                        "send fewer or smaller images")


@dataclass
class _Part:
    name: str = ""
    filename: str | None = None
    disposition: bytes = b""
    data: bytearray = field(default_factory=bytearray)


def _from_multipart(body: bytes, content_type: str, cfg: ServeConfig) -> list[Upload]:
    _, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if not boundary:
        raise RequestError(400, "bad_multipart", "the multipart content type has no boundary; let your HTTP "
                           "client build the multipart body (e.g. curl -F files=@photo.jpg)")
    parts: list[_Part] = []
    header: list[bytes] = [b"", b""]

    def header_end() -> None:
        if header[0].strip().lower() == b"content-disposition":
            parts[-1].disposition = header[1]
        header[:] = [b"", b""]

    def headers_finished() -> None:
        _, options = parse_options_header(parts[-1].disposition)
        parts[-1].name = options.get(b"name", b"").decode("utf-8", "replace")
        filename = options.get(b"filename")
        parts[-1].filename = None if filename is None else filename.decode("utf-8", "replace")

    def part_begin() -> None:
        if len(parts) >= cfg.max_views + 8:  # a flood of parts: stop before collecting them
            raise _too_many(f"{len(parts) + 1}+ parts sent", cfg)
        parts.append(_Part())

    def part_data(data: bytes, start: int, end: int) -> None:
        parts[-1].data += data[start:end]

    callbacks = {
        "on_part_begin": part_begin,
        "on_header_field": lambda data, start, end: header.__setitem__(0, header[0] + data[start:end]),
        "on_header_value": lambda data, start, end: header.__setitem__(1, header[1] + data[start:end]),
        "on_header_end": header_end,
        "on_headers_finished": headers_finished,
        "on_part_data": part_data,
    }
    try:
        parser = MultipartParser(boundary, callbacks)
        parser.write(body)
        parser.finalize()
    except FormParserError as exc:
        raise RequestError(400, "bad_multipart", f"the multipart body is malformed ({exc}); let your HTTP client "
                           "build it (e.g. curl -F files=@photo.jpg)") from None
    if parser.state != MultipartState.END:
        raise RequestError(400, "bad_multipart", "the multipart body ends without its closing boundary (it was cut "
                           "short); send the complete request again")
    images = [p for p in parts if p.name == FIELD]
    if not images:
        names = sorted({p.name for p in parts})
        got = f" (got field{'s' if len(names) > 1 else ''} {', '.join(map(repr, names))})" if names else ""
        raise RequestError(400, "no_images", f"no '{FIELD}' field in the form{got}; {_HOW}")
    if any(p.filename is None for p in images):
        raise RequestError(400, "not_a_file", f"'{FIELD}' must be file uploads, not text fields; "
                           f"attach the images (curl -F {FIELD}=@photo.jpg)")
    return [Upload(f"{FIELD}[{i}]", bytes(p.data)) for i, p in enumerate(images)]


def _from_json(body: bytes, cfg: ServeConfig) -> list[Upload]:
    strings = 2 * (cfg.max_views + 1)  # quotes of the key "images" and of at most max_views base64 strings
    if _count_at_most(body, b'"', strings) > strings:
        raise _too_many(f"the JSON body holds more than {cfg.max_views} strings (or other fields)", cfg)
    try:
        payload = _json_body(cfg.max_views).model_validate_json(body)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(x) for x in err.get("loc", ())) or "body"
        if err.get("type") == "json_invalid":
            raise RequestError(400, "bad_json", f"the body is not valid JSON ({err['msg']}); {_HOW}") from None
        raise RequestError(422, "bad_json", f"{where}: {err['msg']}; {_HOW}") from None
    uploads = []
    for i, text in enumerate(payload.images):
        if text.startswith("data:"):  # a data URI, as a browser's canvas or captureVisibleTab makes
            text = text.partition(",")[2]
        try:
            uploads.append(Upload(f"images[{i}]", base64.b64decode(text, validate=True)))
        except (binascii.Error, ValueError):
            raise RequestError(400, "bad_base64", f"images[{i}] is not valid base64; encode the image file's "
                               "bytes with standard base64 (e.g. base64 -w0 photo.jpg)") from None
    return uploads


@functools.cache
def _json_body(max_views: int) -> type[PredictJSON]:
    """The JSON body's schema on a server taking at most ``max_views`` images."""
    return create_model("PredictJSON", __base__=PredictJSON,
                        images=(list[str], Field(..., min_length=1, max_length=max_views,
                                                 description=PredictJSON.model_fields["images"].description)))


def _count_at_most(data: bytes, needle: bytes, limit: int) -> int:
    """Occurrences of ``needle`` in ``data``, counted up to ``limit + 1`` (a bounded scan)."""
    n, at = 0, -1
    while n <= limit:
        at = data.find(needle, at + 1)
        if at < 0:
            break
        n += 1
    return n


#: how each refusal of :mod:`pigeon.images` is answered (the first matching class wins)
_REFUSALS = ((UnreadableImageError, 415, "not_an_image"), (ImageTooLargeError, 413, "too_many_pixels"),
             (ImageShapeError, 400, "extreme_aspect_ratio"), (InputError, 400, "corrupt_image"))


def probe_view(upload: Upload, open_image: Callable[..., PendingImage], cfg: ServeConfig) -> PendingImage:
    """Read one upload's header (in a worker thread): format from the content, pixels and shape from the header.

    ``open_image`` is the backbone transform's :meth:`~pigeon.backbones.ImageTransform.open`, so decoding will stop
    at what the model needs.
    """
    with _refused():
        return open_image(upload.data, max_pixels=cfg.max_pixels, formats=ACCEPTED_FORMATS, name=upload.label)


def decode_view(pending: PendingImage) -> View:
    """Decode one probed upload (in a worker thread) down to the backbone's input, with its EXIF GPS position."""
    with _refused():
        image = pending.load()
    return View(image, _exif_gps(pending.exif))


@contextlib.contextmanager
def _refused() -> Iterator[None]:
    """Turn an image refusal of :mod:`pigeon.images` into the request error that answers it."""
    try:
        yield
    except InputError as exc:
        status, kind = next((status, kind) for error, status, kind in _REFUSALS if isinstance(exc, error))
        raise RequestError(status, kind, str(exc)) from None


def _exif_gps(exif: Image.Exif) -> tuple[float, float] | None:
    """The EXIF GPS position of a decoded image, or None (read from memory, never kept)."""
    from pigeon.data.ingest import _photo_info

    try:
        info = _photo_info(exif)
    except Exception:  # noqa: BLE001  a malformed EXIF block only means "no GPS"
        return None
    if info.lat is None or info.lon is None:
        return None
    return float(info.lat), float(info.lon)


def _mb(n: int) -> str:
    return f"{n / 2**20:.1f} MB" if n >= 2**20 else f"{math.ceil(n / 1024)} KB"
