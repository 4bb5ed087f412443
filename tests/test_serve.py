"""serve.py: the JSON API (TestClient), a live uvicorn server, the page in headless Chromium, load_test.py."""

from __future__ import annotations

import base64
import io
import json
import os
import socket
import string
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from helpers import ROOT, make_config, needs_real_data, screenshot, serve_in_thread
from PIL import Image, ImageDraw

from benchmarks.page_latency import draw as draw_scaled
from hwr.evaluation.casefold import confusable_groups
from hwr.evaluation.names import lookalike_names
from hwr.inference.model import TrainedModel
from hwr.runs.console import describe_model
from hwr.web.api import create_app, predict_upload

SEVEN = [(80, 60), (200, 60), (120, 230)]


def canvas_png(points=SEVEN, size: int = 280, pen: int = 16) -> bytes:
    """A PNG as the page sends it: black strokes on a transparent background."""
    image = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    if points:
        ImageDraw.Draw(image).line(points, fill=(0, 0, 0, 255), width=pen, joint="curve")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def decode_data_url(url: str) -> Image.Image:
    assert url.startswith("data:image/png;base64,")
    return Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))


def huge_png(side: int = 10_000) -> bytes:
    """A valid side x side black PNG that is small on disk (a decompression bomb in miniature)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    packer, row = zlib.compressobj(9), b"\0" * (side + 1)  # filter byte + one grey byte per pixel
    pixels = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def noise_png(side: int = 700) -> bytes:
    """A valid PNG over 1 MB (random pixels do not compress): past Starlette's in-memory spool."""
    noise = np.random.default_rng(0).integers(0, 256, (side, side, 3), dtype=np.uint8)
    image = Image.fromarray(noise)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    assert 1_100_000 < len(buffer.getvalue()) < 5_000_000
    return buffer.getvalue()


@pytest.fixture(scope="module")
def predictor(english_run) -> TrainedModel:
    out, _ = english_run
    return TrainedModel.load(out / "checkpoints" / "best.ckpt", "cpu")


@pytest.fixture(scope="module")
def client(predictor) -> TestClient:
    return TestClient(create_app(predictor))


def test_health_and_info(client, english_run):
    run_dir, metrics = english_run
    assert client.get("/healthz").json() == {"status": "ok"}
    info = client.get("/api/info").json()
    assert info["dataset"] == "english" and info["num_classes"] == 5 and info["classes"] == list("0AZab")
    assert info["sources"] == []  # not a mix
    assert info["test_acc"] == pytest.approx(metrics["test/acc"])
    assert "checkpoints" not in info  # server paths stay private
    assert info["lookalike_names"] == {}  # 0 is the only member of its group here (no O, o)
    assert info["confusable_groups"] == []  # nor any case pair: a, A are not drawn alike
    stamp = time.strftime(
        "%Y-%m-%dT%H:%M", time.gmtime((run_dir / "checkpoints" / "best.ckpt").stat().st_mtime)
    )
    [ckpt] = info["checkpoint_files"]  # the file's name and date, not where it is
    assert (
        ckpt["name"] == "best.ckpt" and ckpt["modified"].startswith(stamp) and ckpt["modified"].endswith("Z")
    )
    assert ckpt["bundled"] is False
    page = client.get("/")
    assert page.status_code == 200 and 'id="canvas"' in page.text
    head = client.head("/")
    assert (
        head.status_code == 200
        and head.content == b""
        and head.headers["content-type"].startswith("text/html")
    )
    assert client.head("/healthz").status_code == 200
    assert all(client.get(f"/static/{name}").status_code == 200 for name in ("app.js", "pad.js", "style.css"))


def test_confusable_groups_of_a_62_class_model():
    """Case pairs and look-alikes (hwr.evaluation.casefold) plus shapes drawn alike such as 9/g/q."""
    groups = confusable_groups(string.digits + string.ascii_uppercase + string.ascii_lowercase)
    for group in (["0", "O", "o"], ["9", "g", "q"], ["5", "S", "s"], ["C", "c"]):
        assert group in groups
    assert ["1", "I", "L", "i", "l"] in groups and not any("7" in g for g in groups)
    assert confusable_groups(string.digits) == [] and confusable_groups(list("9gA")) == [["9", "g"]]


def test_serve_says_which_model_it_loaded(predictor, english_run):
    run_dir, metrics = english_run
    line = describe_model(predictor.info())
    assert line.startswith("serving CNN trained on english (5 classes, test/acc ")
    assert f"{metrics['test/acc']:.2%}" in line and str(run_dir / "checkpoints" / "best.ckpt") in line


def test_multipart_json_and_raw_uploads_agree_with_the_predictor(client, predictor):
    png = canvas_png()
    answers = [
        client.post("/api/predict", files={"file": ("canvas.png", png, "image/png")}),
        client.post("/api/predict", json={"image": base64.b64encode(png).decode()}),
        client.post(
            "/api/predict", json={"image": "data:image/png;base64," + base64.b64encode(png).decode()}
        ),
        client.post("/api/predict", content=png, headers={"content-type": "image/png"}),
    ]
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
    first = answers[0].json()
    assert all(a.json() == first for a in answers[1:])
    expected = predictor.predict([Image.open(io.BytesIO(png))], top_k=5)[0]
    assert first["label"] == expected.label and not first["blank"]
    assert [t["label"] for t in first["top"]] == [label for label, _ in expected.top]
    assert [t["prob"] for t in first["top"]] == pytest.approx([p for _, p in expected.top], abs=1e-6)
    seen = decode_data_url(first["seen"])
    assert seen.size == (28, 28) and (np.asarray(seen) == expected.pixels).all()


def test_blank_canvas_is_flagged(client):
    answer = client.post("/api/predict", files={"file": ("c.png", canvas_png(points=[]), "image/png")}).json()
    assert answer["blank"] is True and answer["label"] is None and answer["top"] == []  # no guess
    one_pixel = io.BytesIO()
    Image.new("L", (1, 1), 255).save(one_pixel, "PNG")
    answer = client.post(
        "/api/predict", content=one_pixel.getvalue(), headers={"content-type": "image/png"}
    ).json()
    assert answer["blank"] is True and answer["label"] is None


@pytest.mark.parametrize(
    ("kwargs", "status", "reason"),
    [
        (
            {"files": {"file": ("big.png", b"\x89PNG" + b"\0" * 5_100_000, "image/png")}},
            413,
            "over the 5 MB limit",
        ),
        (
            {"content": b"\0" * 8_000_000, "headers": {"content-type": "image/png"}},
            413,
            "over the 5 MB limit",
        ),
        ({"files": {"file": ("huge.png", huge_png(), "image/png")}}, 413, "10000x10000 pixels"),
        ({"files": {"file": ("notes.png", b"just some text", "image/png")}}, 400, "not an image"),
        ({"files": {"file": ("cut.png", canvas_png()[:300], "image/png")}}, 400, "corrupt or truncated"),
        ({"files": {"file": ("empty.png", b"", "image/png")}}, 400, "empty"),
        ({"content": b"hello", "headers": {"content-type": "text/plain"}}, 415, "text/plain is not accepted"),
        ({"content": canvas_png()}, 415, "missing is not accepted"),
        ({"files": {"file": ("a.txt", b"hello", "text/plain")}}, 415, "not an image"),
        ({"json": {"image": "data:text/plain;base64,aGk="}}, 415, "text/plain"),
        ({"json": {"image": "not base64!"}}, 400, "not valid base64"),
        ({"json": {"image": ""}}, 400, "empty"),
        ({"content": b"{oops", "headers": {"content-type": "application/json"}}, 400, "not valid JSON"),
        ({"json": {"picture": "aGk="}}, 422, "missing field 'image'"),
        ({"files": {"image": ("c.png", canvas_png(), "image/png")}}, 422, "missing field 'file'"),
    ],
    ids=lambda v: v if isinstance(v, int | str) else None,
)
def test_bad_input_gets_a_one_line_4xx(client, kwargs, status, reason):
    answer = client.post("/api/predict", **kwargs)
    detail = answer.json()["detail"]
    assert answer.status_code == status and reason in detail, detail
    assert isinstance(detail, str) and "\n" not in detail and len(detail) < 200
    assert client.get("/healthz").status_code == 200


def test_predict_upload_works_without_http(predictor):
    """The route's work is a plain function: a PNG body gives the predictor's answer, a JSON body
    without its field a 422 that says which field."""
    from fastapi import HTTPException

    answer = predict_upload(predictor, canvas_png(), "image/png", top_k=3, max_upload_bytes=5_000_000)
    assert answer["label"] in predictor.class_names and len(answer["top"]) == 3
    assert answer["seen"].startswith("data:image/png;base64,")
    with pytest.raises(HTTPException) as refused:
        predict_upload(predictor, b'{"img": "x"}', "application/json", top_k=3, max_upload_bytes=5_000_000)
    assert refused.value.status_code == 422 and "missing field 'image'" in refused.value.detail


def test_uploads_never_touch_the_disk(client, monkeypatch, tmp_path):
    """A >1 MB upload: Starlette's own form parser spools it to a temporary file, ours must not.

    Linux temporary files are unlinked at birth (O_TMPFILE), so an empty tempdir proves nothing:
    the tempfile constructors are watched instead, and the same watch catches Starlette spooling.
    """
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    created = []
    for name in ("TemporaryFile", "NamedTemporaryFile", "mkstemp", "mkdtemp"):
        original = getattr(tempfile, name)
        monkeypatch.setattr(
            tempfile, name, lambda *a, _f=original, _n=name, **k: created.append(_n) or _f(*a, **k)
        )
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    upload = {"file": ("noise.png", noise_png(), "image/png")}

    assert client.post("/api/predict", files=upload).status_code == 200
    assert created == [] and list(tmp_path.iterdir()) == []

    async def form_size(request):  # the default way: request.form()
        form = await request.form()
        return PlainTextResponse(str(len(await form["file"].read())))

    TestClient(Starlette(routes=[Route("/", form_size, methods=["POST"])])).post("/", files=upload)
    assert created, "the watch did not see Starlette spool the upload to disk; the check above is void"


def test_an_unexpected_error_is_a_500_and_the_server_keeps_serving(predictor, monkeypatch):
    client = TestClient(create_app(predictor))

    def broken(*args, **kwargs):
        raise RuntimeError("model exploded\nsecond line")

    with monkeypatch.context() as patch:
        patch.setattr(TrainedModel, "predict", broken)  # frozen: patched on the class
        answer = client.post("/api/predict", files={"file": ("c.png", canvas_png(), "image/png")})
    assert answer.status_code == 500
    assert answer.json()["detail"] == "prediction failed: RuntimeError: model exploded second line"
    assert client.get("/healthz").status_code == 200
    assert (
        client.post("/api/predict", files={"file": ("c.png", canvas_png(), "image/png")}).status_code == 200
    )


# --- a live server on loopback -------------------------------------------------------------


@pytest.fixture(scope="module")
def one_thread():
    """serve.py runs torch with one intra-op thread per request; so do the live-server tests."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def live_url(predictor, one_thread):
    server, thread, url = serve_in_thread(predictor)
    yield url
    server.should_exit = True
    thread.join(timeout=10)


def test_a_declared_oversize_body_is_refused_before_it_is_sent(live_url):
    """Content-Length over the limit: 413 at once, without waiting for (or reading) the body."""
    port = int(live_url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(
            b"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
            b"Content-Length: 900000000\r\n\r\n"
        )
        answer = b""
        while b"limit" not in answer and (part := s.recv(4096)):  # headers and body may come apart
            answer += part
    assert answer.startswith(b"HTTP/1.1 413") and b"over the 5 MB limit" in answer


def test_healthz_answers_while_predictions_run(live_url, predictor, monkeypatch):
    """Inference runs in worker threads, so the event loop keeps answering."""
    import httpx

    original = TrainedModel.predict
    monkeypatch.setattr(TrainedModel, "predict", lambda *a, **k: time.sleep(2) or original(*a, **k))
    upload = {"file": ("c.png", canvas_png(), "image/png")}
    with ThreadPoolExecutor(2) as pool:
        slow = [
            pool.submit(httpx.post, f"{live_url}/api/predict", files=upload, timeout=30) for _ in range(2)
        ]
        time.sleep(0.5)
        start = time.perf_counter()
        assert httpx.get(f"{live_url}/healthz", timeout=5).status_code == 200
        assert time.perf_counter() - start < 1.0 and not any(f.done() for f in slow)
        assert [f.result().status_code for f in slow] == [200, 200]


@pytest.mark.slow  # starts processes
def test_load_test_script_smoke(live_url):
    run = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "load_test.py"), "--url", live_url, "-n", "40", "-c", "4"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "throughput" in run.stdout and "p99" in run.stdout and "non-2xx      0" in run.stdout


# --- the page in a real headless Chromium ---------------------------------------------------


def draw(page, points, steps: int = 8) -> None:
    """One mouse stroke through `points` (canvas CSS pixels)."""
    box = page.locator("#canvas").bounding_box()
    page.mouse.move(box["x"] + points[0][0], box["y"] + points[0][1])
    page.mouse.down()
    for x, y in points[1:]:
        page.mouse.move(box["x"] + x, box["y"] + y, steps=steps)
    page.mouse.up()


def wait_for_label(page, timeout: float = 15_000) -> str:
    """The label once the answer on screen is for the pad as it is now: live predictions while
    drawing may still be replacing the bars when the first label appears."""
    page.wait_for_function(
        "document.getElementById('label').textContent.length > 0"
        " && document.getElementById('result').getAttribute('aria-busy') === 'false'",
        timeout=timeout,
    )
    return page.text_content("#label")


def ink(page) -> int:
    """Pixels of the canvas holding any ink (alpha > 0)."""
    return page.evaluate(
        """() => { const c = document.getElementById('canvas');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0; for (let i = 3; i < d.length; i += 4) n += d[i] > 0; return n; }"""
    )


def open_page(browser, url: str, dataset: str):
    page = browser.new_page()
    page.goto(url)
    page.wait_for_function(f"document.getElementById('info').textContent.includes('{dataset}')")
    return page


@pytest.mark.slow  # starts processes
def test_page_draws_predicts_clears_and_erases(browser, live_url, predictor):
    page = open_page(browser, live_url, "english")
    draw(page, SEVEN)
    label = wait_for_label(page)
    drawn = page.evaluate("padDataUrl()")  # the pad as it is sent
    expected = predictor.predict([decode_data_url(drawn)], top_k=5)[0]
    # the tiny model is seldom sure: the label may name candidates ("Z or 0"), the first its top class
    assert label.removeprefix("maybe ").split(" or ")[0] == expected.label
    bars = [page.text_content(f"#bars li:nth-child({i}) span") for i in range(1, 6)]
    assert bars == [name for name, _ in expected.top]
    seen = decode_data_url(page.get_attribute("#seen", "src"))
    assert seen.size == (28, 28) and seen.getextrema()[1] > 0  # the model saw ink, not a blank
    assert page.text_content("#error") == ""

    page.click("#clear")
    assert ink(page) == 0 and page.text_content("#label") == "" and page.locator("#bars li").count() == 0

    draw(page, [(140, 60), (140, 220)])
    wait_for_label(page)
    assert ink(page) > 0
    page.click("#erase")
    assert page.get_attribute("#erase", "aria-pressed") == "true"
    page.eval_on_selector("#pen-size", "e => { e.value = 40; e.dispatchEvent(new Event('input')); }")
    draw(page, [(140, 40), (140, 240)])
    page.wait_for_function("document.getElementById('label').textContent === ''")  # blank again
    assert ink(page) == 0
    page.close()


@pytest.mark.slow  # starts processes
def test_a_click_leaves_a_dot(browser, live_url):
    """The dot of an i or a j: a click without a move leaves a disc of ink; alone it is too
    little to read, after a stem it is predicted with it."""
    page = open_page(browser, live_url, "english")
    box = page.locator("#canvas").bounding_box()
    page.mouse.click(box["x"] + 140, box["y"] + 140)
    page.wait_for_function("document.getElementById('prompt').textContent.includes('dot')")
    assert ink(page) > 50  # a disc of the pen's width (a zero-length line draws nothing)
    draw(page, [(140, 170), (140, 240)])
    assert wait_for_label(page) and page.text_content("#prompt") == ""
    page.close()


@pytest.fixture(scope="module")
def shown_url(predictor, one_thread):
    """The page the screenshot shows: HWR_SCREENSHOT_CKPT's model when set (docs/img uses a
    real 62-class one), else the fixture's."""
    ckpt = os.environ.get("HWR_SCREENSHOT_CKPT")
    server, thread, url = serve_in_thread(TrainedModel.load(ckpt, "cpu") if ckpt else predictor)
    yield url
    server.should_exit = True
    thread.join(timeout=10)


@pytest.mark.slow  # starts processes
def test_screenshot_of_the_page_after_drawing_an_i(browser, shown_url, tmp_path):
    """docs/img/serve.png: a 7; docs/img/page_i.png: a stem and a tapped dot, the prediction
    and the top 5; docs/img/page_phone.png: a 7 on a phone."""
    page = browser.new_page(viewport={"width": 940, "height": 480})
    page.goto(shown_url)
    page.wait_for_function("document.getElementById('info').textContent.includes('trained on')")
    draw(page, SEVEN)
    wait_for_label(page)
    page.wait_for_function("document.getElementById('result').getAttribute('aria-busy') === 'false'")
    screenshot(page, "serve.png", tmp_path, full_page=True)  # docs/img/serve.png: a 7
    page.keyboard.press("Escape")
    draw(page, [(140, 120), (140, 235)])
    wait_for_label(page)
    box = page.locator("#canvas").bounding_box()
    with page.expect_response("**/api/predict"):  # the prediction of stem and dot together
        page.mouse.click(box["x"] + 140, box["y"] + 70)
    page.wait_for_function("document.querySelectorAll('#bars li').length > 1")
    assert ink(page) > 500 and page.get_attribute("#seen", "src").startswith("data:image/png")
    screenshot(page, "page_i.png", tmp_path, full_page=True)
    page.close()
    # docs/img/page_phone.png: a 7 on a 390 px wide phone screen (the pad fills the width)
    phone = browser.new_page(viewport={"width": 390, "height": 844}, device_scale_factor=2)
    phone.goto(shown_url)
    phone.wait_for_function("document.getElementById('info').textContent.includes('trained on')")
    draw_scaled(phone, SEVEN, steps=8, move_ms=0)
    phone.wait_for_function("document.getElementById('result').getAttribute('aria-busy') === 'false'")
    assert phone.locator("#canvas").bounding_box()["width"] > 350
    screenshot(phone, "page_phone.png", tmp_path, full_page=True)
    phone.close()


@pytest.mark.slow  # starts processes
def test_page_draws_with_touch(browser, live_url):
    """A finger stroke (CDP touch events, which Chromium turns into pointer events) predicts too."""
    context = browser.new_context(has_touch=True)
    page = context.new_page()
    page.goto(live_url)
    box = page.locator("#canvas").bounding_box()
    cdp = context.new_cdp_session(page)
    points = [{"x": box["x"] + 140, "y": box["y"] + y} for y in range(50, 231, 20)]
    cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [points[0]]})
    for p in points[1:]:
        cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [p]})
    cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    assert wait_for_label(page) and ink(page) > 0
    context.close()


@pytest.mark.slow  # starts processes
def test_page_shows_upload_errors(browser, live_url):
    page = open_page(browser, live_url, "english")
    page.set_input_files(
        "#upload", files=[{"name": "notes.png", "mimeType": "image/png", "buffer": b"hello"}]
    )
    page.wait_for_function("document.getElementById('error').textContent.includes('not an image')")
    assert ink(page) == 0  # nothing of a broken file is drawn
    page.set_input_files(
        "#upload", files=[{"name": "seven.png", "mimeType": "image/png", "buffer": canvas_png()}]
    )
    assert wait_for_label(page) and page.text_content("#error") == ""
    assert ink(page) > 0  # the upload is shown on the pad
    page.close()


@pytest.mark.slow  # starts processes
def test_page_names_look_alike_characters_and_has_finger_sized_buttons(browser, live_url):
    page = open_page(browser, live_url, "english")
    # the fixture model's 5 classes (0AZab) hold no look-alike pair: give the page the table
    # /api/info sends for a 62-class model
    names = lookalike_names(string.digits + string.ascii_uppercase + string.ascii_lowercase)
    page.evaluate(f"LOOKALIKE = {json.dumps(names)}")
    page.evaluate("show({label: '0', top: [{label: '0', prob: 0.6}, {label: 'O', prob: 0.3}], seen: ''})")
    assert page.text_content("#label") == "0" and page.text_content("#label-name") == "zero"
    assert [page.text_content(f"#bars li:nth-child({i}) span") for i in (1, 2)] == ["0 zero", "O capital o"]
    for selector in ("#clear", "#erase", ".upload"):
        box = page.locator(selector).bounding_box()
        assert box["height"] >= 44 and box["width"] >= 44, selector
    page.close()


@pytest.fixture(scope="module")
def mnist_url(tmp_path_factory, one_thread):
    """A small CNN trained briefly on real MNIST (~40 s on 2 cores), served on loopback."""
    from hwr.commands.train import train

    out = tmp_path_factory.mktemp("mnist_serve") / "run"
    overrides = [
        "trainer.max_epochs=1",
        "+trainer.limit_train_batches=120",
        "+trainer.limit_val_batches=2",
        "+trainer.limit_test_batches=3",
        "data.batch_size=128",
        "model.net.channels=[8,16]",
        "model.net.convs_per_block=1",
        "model.net.head=[32]",
        "model.optimizer.lr=0.003",
    ]
    data_dir = Path(os.environ["HWR_DATA_DIR"])
    metrics = train(make_config("train", overrides, data_dir, out))
    assert metrics["test/acc"] > 0.9, metrics["test/acc"]
    server, thread, url = serve_in_thread(TrainedModel.load(out / "checkpoints" / "best.ckpt", "cpu"))
    yield url
    server.should_exit = True
    thread.join(timeout=10)


@needs_real_data
@pytest.mark.slow  # starts processes
def test_page_reads_digits_drawn_with_the_mouse(browser, mnist_url):
    page = open_page(browser, mnist_url, "mnist")
    for points, digit in [([(140, 50), (140, 230)], "1"), (SEVEN, "7")]:
        draw(page, points)
        assert wait_for_label(page) == digit
        page.click("#clear")
    page.close()


@pytest.fixture(scope="module")
def bundled_url(one_thread):
    """The page as `serve.py` with no checkpoint serves it: the bundled model, no dataset."""
    server, thread, url = serve_in_thread(TrainedModel.load("bundled", "cpu"))
    yield url
    server.should_exit = True
    thread.join(timeout=10)


@pytest.mark.slow  # starts Chromium
def test_page_reads_characters_drawn_with_the_mouse_by_the_bundled_model(browser, bundled_url):
    page = open_page(browser, bundled_url, "emnist + english")
    # which model answers, in words: its sources, not "mix", and the bundled model by name
    assert page.text_content("#info").startswith("CNN trained on emnist + english: 62 classes")
    assert page.text_content("#checkpoint") == "the bundled model (chars62.pt, hwr/bundled/MODEL_CARD.md)"
    strokes = {
        "7": SEVEN,
        "L": [(90, 50), (90, 230), (200, 230)],
        "Z": [(70, 60), (210, 60), (70, 230), (210, 230)],
        "4": [(170, 240), (170, 50), (60, 170), (220, 170)],
    }
    read = {}
    for label, points in strokes.items():
        draw(page, points)
        read[label] = wait_for_label(page)
        page.click("#clear")
    page.close()
    assert read == {label: label for label in strokes}, read
