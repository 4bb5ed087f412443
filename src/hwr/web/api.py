"""The drawing page's server: a FastAPI app around one `TrainedModel` (`hwr serve` runs it).

Routes: `GET /` (the page, static files in hwr/web; HEAD too), `GET /healthz`, `GET /api/info`,
`POST /api/predict` (multipart `file`, JSON `{"image": base64 or data: URL}`, or a raw image/*
body) and, with `collect=<folder>`, `POST /api/collect` (JSON `{"image": ..., "label": "a"}`:
a correction stored for training, hwr.web.collect). Uploads are read in memory, within
limits (hwr.web.uploads). Bad input gets a 4xx with a one-line `{"detail": ...}`; an
unexpected error a 500, and the server keeps serving.
"""

from __future__ import annotations

import base64
import io
import logging
import os
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import numpy as np
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from PIL import Image

from hwr import bundled
from hwr.errors import HwrError
from hwr.evaluation.casefold import confusable_groups, fold_members
from hwr.evaluation.names import lookalike_names
from hwr.inference.model import TrainedModel
from hwr.web.collect import Collection
from hwr.web.uploads import MB, fail, image_bytes, json_image, json_object, read_body, upload_image

WEB_DIR = Path(__file__).resolve().parent  # index.html, app.js, style.css
# Room for multipart headers or a data: URL prefix on top of the image itself.
BODY_SLACK = 64 * 1024
# Info that says where files live on the server: not the page's business.
PRIVATE_INFO = ("checkpoints",)
log = logging.getLogger("hwr")


def checkpoint_files(sources: Sequence[str]) -> list[dict[str, Any]]:
    """The checkpoint files' names and modification times (UTC, ISO 8601), and whether each is
    the bundled model: which model is loaded, without saying where the server keeps it."""
    files: list[dict[str, Any]] = []
    for source in sources:
        path = Path(source)
        try:
            stamp = datetime.fromtimestamp(path.stat().st_mtime, UTC)
            modified: str | None = stamp.strftime("%Y-%m-%dT%H:%M:%SZ")
        except OSError:  # loaded, then moved or deleted: the name still says which one
            modified = None
        files.append({"name": path.name, "modified": modified, "bundled": bundled.is_bundled(path)})
    return files


def png_data_url(pixels: np.ndarray) -> str:
    """uint8 [H, W] -> a `data:image/png;base64,...` URL."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def predict_upload(
    model: TrainedModel, body: bytes, content_type: str, top_k: int, max_upload_bytes: int
) -> dict[str, Any]:
    """Parse, decode, preprocess and classify one upload: the JSON of /api/predict. Runs in a
    worker thread: a 5 MB body takes a while to parse and decode, and the event loop must keep
    answering /healthz. Bad uploads raise HTTPException with a one-line detail."""
    data, name = image_bytes(body, content_type)
    image = upload_image(data, name, max_upload_bytes)
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


def collect_upload(
    model: TrainedModel, collection: Collection, body: bytes, max_upload_bytes: int
) -> dict[str, Any]:
    """Store one correction (`{"image": ..., "label": ...}`): the JSON of /api/collect."""
    payload = json_object(body)  # parsed once: the image and the label
    data = json_image(payload)
    try:
        label = collection.check(payload.get("label"))
    except HwrError as e:
        raise fail(422, str(e)) from None
    image = upload_image(data, "image", max_upload_bytes)
    seen = model.preprocessing.pixels(image)
    if not seen.any():
        raise fail(422, "the drawing is blank: draw the character, then say what it is")
    try:
        return collection.save(image, seen, label)
    except HwrError as e:
        raise fail(507, str(e)) from None


def create_app(
    model: TrainedModel,
    top_k: int = 5,
    max_upload_bytes: int = 5 * MB,
    workers: int = 0,
    collection: Collection | None = None,
) -> FastAPI:
    """The FastAPI app serving `model`: page, health, info and prediction routes, and the
    corrections route when `collection` is given.

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
        # collect: null when off, else the counts the page shows
        return {**info, "collect": collection.counts() if collection is not None else None}

    @app.post("/api/collect")
    async def api_collect(request: Request) -> dict[str, Any]:
        if collection is None:
            raise fail(404, "collecting is off: start the server with collect=<folder>")
        if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
            raise fail(415, 'send JSON: {"image": "<base64 PNG or data: URL>", "label": "<class>"}')
        body = await read_body(request, body_limit, too_big)
        return await anyio.to_thread.run_sync(
            collect_upload, model, collection, body, max_upload_bytes, limiter=limiter
        )

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
