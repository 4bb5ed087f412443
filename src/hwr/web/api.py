"""The drawing page's server: a FastAPI app around one `TrainedModel` (`hwr serve` runs it).

Routes: `GET /` (the page, static files in hwr/web; HEAD too), `GET /healthz`, `GET /api/info`,
`POST /api/predict` (multipart `file`, JSON `{"image": base64 or data: URL}`, or a raw image/*
body). Uploads are read into memory with a bounded read and never touch the disk: Starlette's own
form parser spools file parts over 1 MB to a temporary file, so multipart bodies are parsed here
with python-multipart's low-level parser instead. Bad input gets a 4xx with a one-line
`{"detail": ...}`; an unexpected error a 500, and the server keeps serving.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import numpy as np
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from PIL import Image
from python_multipart.multipart import MultipartParser, parse_options_header

from hwr.errors import HwrError
from hwr.evaluation.casefold import confusable_groups, fold_members
from hwr.evaluation.names import lookalike_names
from hwr.inference.model import TrainedModel
from hwr.preprocess import ImageTooLarge, load_image

WEB_DIR = Path(__file__).resolve().parent  # index.html, app.js, style.css
MB = 1_000_000  # load_image reports sizes in decimal MB, so the limit is counted the same way
# Room for multipart headers or a data: URL prefix on top of the image itself.
BODY_SLACK = 64 * 1024
# Info that says where files live on the server: not the page's business.
PRIVATE_INFO = ("checkpoints",)
# Part content types accepted besides image/*: what curl and some browsers send for unknown files.
GENERIC_TYPES = ("", "application/octet-stream")
log = logging.getLogger("hwr")


def checkpoint_files(sources: Sequence[str]) -> list[dict[str, str | None]]:
    """The checkpoint files' names and modification times (UTC, ISO 8601): which model is loaded,
    without saying where the server keeps it."""
    files: list[dict[str, str | None]] = []
    for source in sources:
        path = Path(source)
        try:
            stamp = datetime.fromtimestamp(path.stat().st_mtime, UTC)
            modified: str | None = stamp.strftime("%Y-%m-%dT%H:%M:%SZ")
        except OSError:  # loaded, then moved or deleted: the name still says which one
            modified = None
        files.append({"name": path.name, "modified": modified})
    return files


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


def png_data_url(pixels: np.ndarray) -> str:
    """uint8 [H, W] -> a `data:image/png;base64,...` URL."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


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
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError) as e:
            raise fail(400, f"the body is not valid JSON ({e})") from e
        if not isinstance(payload, dict):
            kind = type(payload).__name__
            raise fail(
                422, f'the JSON body is a {kind}; send an object: {{"image": "<base64 PNG or data: URL>"}}'
            )
        if "image" not in payload:
            raise fail(422, 'missing field \'image\': send {"image": "<base64 PNG or data: URL>"}')
        if not isinstance(payload["image"], str):
            kind = type(payload["image"]).__name__
            raise fail(
                422,
                f'field \'image\' is a {kind}, not a string: send {{"image": "<base64 PNG or data: URL>"}}',
            )
        return decode_base64(payload["image"]), "image"
    if media.startswith("image/"):
        return body, "body"
    raise fail(
        415,
        f"content type {media or 'missing'} is not accepted; send multipart/form-data with a 'file' "
        'field, JSON {"image": "<base64 PNG>"} or an image/* body',
    )


def predict_upload(
    model: TrainedModel, body: bytes, content_type: str, top_k: int, max_upload_bytes: int
) -> dict[str, Any]:
    """Parse, decode, preprocess and classify one upload: the JSON of /api/predict. Runs in a
    worker thread: a 5 MB body takes a while to parse and decode, and the event loop must keep
    answering /healthz. Bad uploads raise HTTPException with a one-line detail."""
    data, name = image_bytes(body, content_type)
    if not data:
        raise fail(400, f"{name}: the file is empty")
    if len(data) > max_upload_bytes:
        raise fail(413, f"{name}: {len(data) / MB:.1f} MB is over the {max_upload_bytes / MB:g} MB limit")
    try:
        image = load_image(data, max_bytes=max_upload_bytes, name=name)
    except HwrError as e:
        raise fail(413 if isinstance(e, ImageTooLarge) else 400, str(e)) from None
    result = model.predict([image], [name], top_k, fold_members(model.classes))[0]
    assert result.pixels is not None
    # a blank canvas (an erased drawing, an empty or 1x1 image) has no character to name:
    # no label, rather than the network's guess about nothing
    return {
        "label": None if result.blank else result.label,
        "top": []
        if result.blank
        else [{"label": label, "prob": round(prob, 6)} for label, prob in result.top],
        "seen": png_data_url(result.pixels),
        "blank": result.blank,
        # "s or S": the top class's case-folded group and their summed probability
        "casefold": None
        if result.blank or result.group is None
        else {"labels": result.group[0], "prob": round(result.group[1], 6)},
    }


def create_app(
    model: TrainedModel, top_k: int = 5, max_upload_bytes: int = 5 * MB, workers: int = 0
) -> FastAPI:
    """The FastAPI app serving `model`: page, health, info and prediction routes.

    `workers` bounds how many predictions run at once in the thread pool (0: one per CPU
    core), so a burst of requests queues instead of oversubscribing the cores.
    """
    app = FastAPI(title="hwr", docs_url=None, redoc_url=None, openapi_url=None)
    limiter = anyio.CapacityLimiter(workers or os.cpu_count() or 1)
    # base64 makes an image 4/3 larger; anything beyond this cannot hold an acceptable image.
    body_limit = max_upload_bytes * 4 // 3 + BODY_SLACK
    info = {k: v for k, v in model.info().items() if k not in PRIVATE_INFO}
    info |= {"top_k": top_k, "max_upload_bytes": max_upload_bytes}
    info["checkpoint_files"] = checkpoint_files(model.sources)
    info["lookalike_names"] = lookalike_names(model.class_names)  # the page names I, l, 1, O, o, 0
    info["confusable_groups"] = confusable_groups(model.class_names)  # "9 or g" on the page
    too_big = f"the upload is over the {max_upload_bytes / MB:g} MB limit"

    # HEAD as well as GET: uptime checks and link checkers probe pages with HEAD
    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(WEB_DIR / "index.html")

    @app.api_route("/healthz", methods=["GET", "HEAD"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/api/info")
    async def api_info() -> dict[str, Any]:
        return info

    @app.post("/api/predict")
    async def api_predict(request: Request) -> dict[str, Any]:
        body = await read_body(request, body_limit, too_big)
        content_type = request.headers.get("content-type", "")
        try:
            return await anyio.to_thread.run_sync(
                predict_upload, model, body, content_type, top_k, max_upload_bytes, limiter=limiter
            )
        except HTTPException:
            raise
        except Exception as e:
            log.exception("prediction failed")
            raise fail(500, f"prediction failed: {type(e).__name__}: {e}") from e

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> JSONResponse:
        """Anything else that escapes a route: a one-line 500 (Starlette logs the traceback)."""
        return JSONResponse({"detail": " ".join(f"{type(error).__name__}: {error}".split())}, status_code=500)

    app.mount("/static", StaticFiles(directory=WEB_DIR), name="static")
    return app
