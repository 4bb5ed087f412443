"""Reading an upload safely: bounded bodies, multipart parsed in memory, base64 and data: URLs,
the image decoded with its limits; every refusal an HTTPException with a one-line detail.

Uploads never touch the disk: Starlette's own form parser spools file parts over 1 MB to a
temporary file, so multipart bodies are parsed here with python-multipart's low-level parser.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from fastapi import HTTPException, Request
from PIL import Image
from python_multipart.multipart import MultipartParser, parse_options_header

from hwr.errors import HwrError
from hwr.preprocess import ImageTooLarge, load_image

MB = 1_000_000  # load_image reports sizes in decimal MB, so the limit is counted the same way
# Part content types accepted besides image/*: what curl and some browsers send for unknown files.
GENERIC_TYPES = ("", "application/octet-stream")


def fail(status: int, detail: str) -> HTTPException:
    """An HTTPException whose detail is one line, whatever the message looked like."""
    return HTTPException(status_code=status, detail=" ".join(str(detail).split()))


@dataclass
class Part:
    """One multipart field, held in memory."""

    name: str = ""
    content_type: str = ""
    data: bytearray | None = None


def parse_multipart(body: bytes, content_type: str) -> dict[str, Part]:
    """A multipart/form-data body (already in memory) -> {field name: Part}; first of each name wins."""
    _, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if not boundary:
        raise fail(400, "multipart body without a boundary")
    parts: dict[str, Part] = {}
    current, header = Part(), [b"", b""]

    def on_part_begin() -> None:
        nonlocal current
        current = Part(data=bytearray())

    def on_header_field(data: bytes, start: int, end: int) -> None:
        header[0] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        header[1] += data[start:end]

    def on_header_end() -> None:
        name, value = header[0].lower(), header[1]
        if name == b"content-disposition":
            current.name = parse_options_header(value)[1].get(b"name", b"").decode("utf-8", "replace")
        elif name == b"content-type":
            current.content_type = parse_options_header(value)[0].decode("latin-1").lower()
        header[0] = header[1] = b""

    def on_part_data(data: bytes, start: int, end: int) -> None:
        assert current.data is not None
        current.data += data[start:end]

    def on_part_end() -> None:
        parts.setdefault(current.name, current)

    callbacks: Any = {
        "on_part_begin": on_part_begin,
        "on_header_field": on_header_field,
        "on_header_value": on_header_value,
        "on_header_end": on_header_end,
        "on_part_data": on_part_data,
        "on_part_end": on_part_end,
    }
    try:
        parser = MultipartParser(boundary, callbacks)
        parser.write(body)
        parser.finalize()
    except Exception as e:  # python-multipart raises its own types and ValueError alike
        raise fail(400, f"malformed multipart body ({e})") from e
    return parts


def decode_base64(text: str) -> bytes:
    """Base64 text or a `data:image/...;base64,` URL -> bytes (whitespace ignored)."""
    if text.startswith("data:"):
        meta, _, text = text.partition(",")
        if not meta.endswith(";base64"):
            raise fail(400, "the data: URL is not base64 encoded (expected data:image/png;base64,...)")
        media = meta[5:].split(";")[0].lower()
        if media and not media.startswith("image/"):
            raise fail(415, f"the data: URL holds {media}, not an image")
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError) as e:
        raise fail(400, f"image is not valid base64 ({e})") from e


async def read_body(request: Request, limit: int, too_big: str) -> bytes:
    """The request body, refused (413, `too_big`) as soon as it is known to be over `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise fail(413, too_big)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise fail(413, too_big)
    return bytes(body)


def json_object(body: bytes) -> dict[str, Any]:
    """A JSON body that must be an object (`{"image": ...}`), or a 4xx saying what it is."""
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise fail(400, f"the body is not valid JSON ({e})") from e
    if not isinstance(payload, dict):
        kind = type(payload).__name__
        raise fail(
            422, f'the JSON body is a {kind}; send an object: {{"image": "<base64 PNG or data: URL>"}}'
        )
    return payload


def json_image(payload: dict[str, Any]) -> bytes:
    """The image bytes of a JSON object's `image` field (base64 or a data: URL)."""
    if "image" not in payload:
        raise fail(422, 'missing field \'image\': send {"image": "<base64 PNG or data: URL>"}')
    if not isinstance(payload["image"], str):
        kind = type(payload["image"]).__name__
        raise fail(
            422,
            f'field \'image\' is a {kind}, not a string: send {{"image": "<base64 PNG or data: URL>"}}',
        )
    return decode_base64(payload["image"])


def image_bytes(body: bytes, content_type: str) -> tuple[bytes, str]:
    """(image bytes, a name for messages) from a body of any accepted content type."""
    media = content_type.split(";")[0].strip().lower()
    if media == "multipart/form-data":
        part = parse_multipart(body, content_type).get("file")
        if part is None or part.data is None:
            raise fail(422, "missing field 'file': send the image as multipart field 'file'")
        if not (part.content_type.startswith("image/") or part.content_type in GENERIC_TYPES):
            raise fail(415, f"the file is {part.content_type}, not an image; send a PNG or JPEG")
        return bytes(part.data), "file"
    if media == "application/json":
        return json_image(json_object(body)), "image"
    if media.startswith("image/"):
        return body, "body"
    raise fail(
        415,
        f"content type {media or 'missing'} is not accepted; send multipart/form-data with a 'file' "
        'field, JSON {"image": "<base64 PNG>"} or an image/* body',
    )


def upload_image(data: bytes, name: str, max_upload_bytes: int) -> Image.Image:
    """The decoded upload, or a 4xx saying why not."""
    if not data:
        raise fail(400, f"{name}: the file is empty")
    if len(data) > max_upload_bytes:
        raise fail(413, f"{name}: {len(data) / MB:.1f} MB is over the {max_upload_bytes / MB:g} MB limit")
    try:
        return load_image(data, max_bytes=max_upload_bytes, name=name)
    except HwrError as e:
        raise fail(413 if isinstance(e, ImageTooLarge) else 400, str(e)) from None
