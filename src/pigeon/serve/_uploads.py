"""Reading uploads: a bounded request body, parsed in memory, decoded with the decompression-bomb guard.

Nothing here writes to disk or logs: the body is read into memory up to the server's limit (a declared
``Content-Length`` over it is refused before any byte is read), multipart parts are collected by
python-multipart's parser into memory, and images are decoded by :func:`pigeon.images.load_image`, which checks
the format from the content and the pixel count from the header before decoding.
"""

from __future__ import annotations

import base64
import binascii
import io
import math
from dataclasses import dataclass, field

from PIL import Image
from pydantic import ValidationError
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

from pigeon.errors import InputError
from pigeon.images import ImageTooLargeError, UnreadableImageError, load_image
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


async def read_uploads(request: Request, cfg: ServeConfig) -> list[Upload]:
    """The images of a predict request, checked for count and size; no decoding yet."""
    content_type = request.headers.get("content-type", "")
    kind = content_type.split(";")[0].strip().lower()
    if kind not in ("multipart/form-data", "application/json"):
        raise RequestError(415, "unsupported_media_type",
                           f"content type {kind or '(none)'!r} is not accepted; {_HOW}")
    body = await _read_body(request, cfg.max_body_bytes)
    if not body:
        raise RequestError(400, "no_images", f"the request body is empty; {_HOW}")
    uploads = _from_multipart(body, content_type, cfg) if kind == "multipart/form-data" else _from_json(body, cfg)
    if not uploads:
        raise RequestError(400, "no_images", f"no image in the request; {_HOW}")
    if len(uploads) > cfg.max_views:
        raise RequestError(400, "too_many_files", f"{len(uploads)} images sent, at most {cfg.max_views} views of "
                           "one place are accepted; send one place per request")
    for up in uploads:
        if not up.data:
            raise RequestError(400, "empty_file", f"{up.label} is empty; attach the image file itself")
        if len(up.data) > cfg.max_image_bytes:
            raise RequestError(413, "image_too_large", f"{up.label} is {_mb(len(up.data))}, over the "
                               f"{_mb(cfg.max_image_bytes)} limit; downscale or recompress it")
    return uploads


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _body_too_large(f"{_mb(int(declared))}", limit)
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise _body_too_large(f"at least {_mb(size)}", limit)
            chunks.append(chunk)
    except ClientDisconnect:
        raise RequestError(400, "client_disconnect", "the client closed the connection before the body "
                           "arrived; send the request again") from None
    return b"".join(chunks)


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
            raise RequestError(400, "too_many_files", f"{len(parts) + 1}+ parts sent, at most {cfg.max_views} "
                               "views of one place are accepted")
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
    try:
        payload = PredictJSON.model_validate_json(body)
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


def decode_view(upload: Upload, cfg: ServeConfig) -> View:
    """Decode one upload (in a worker thread): format from content, pixels from the header, then the pixels."""
    try:
        image = load_image(upload.data, max_pixels=cfg.max_pixels, formats=ACCEPTED_FORMATS, name=upload.label)
    except UnreadableImageError as exc:
        raise RequestError(415, "not_an_image", str(exc)) from None
    except ImageTooLargeError as exc:
        raise RequestError(413, "too_many_pixels", str(exc)) from None
    except InputError as exc:
        raise RequestError(400, "corrupt_image", str(exc)) from None
    return View(image, _exif_gps(upload.data))


def _exif_gps(data: bytes) -> tuple[float, float] | None:
    """The EXIF GPS position of an already validated image, or None (read from memory, never kept)."""
    from pigeon.data.ingest import _photo_info

    try:
        with Image.open(io.BytesIO(data), formats=list(ACCEPTED_FORMATS)) as img:
            info = _photo_info(img.getexif())
    except Exception:  # noqa: BLE001  a malformed EXIF block only means "no GPS"
        return None
    if info.lat is None or info.lon is None:
        return None
    return float(info.lat), float(info.lon)


def _mb(n: int) -> str:
    return f"{n / 2**20:.1f} MB" if n >= 2**20 else f"{math.ceil(n / 1024)} KB"
