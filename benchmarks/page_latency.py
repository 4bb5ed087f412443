"""Pen-up to bars: how long the drawing page takes, in headless Chromium, from lifting the pen to
showing the prediction of the finished drawing.

    python benchmarks/page_latency.py --ckpt outputs/.../best.ckpt [-n 40]   # starts serve.py
    python benchmarks/page_latency.py --url http://127.0.0.1:8000 [-n 40]     # a running server

Each of N strokes is drawn with mouse events (one move every --move-ms, as a 100 Hz pointer
sends them) after the pad was cleared with Esc. The page itself times it with performance.now():
from the pointerup event to the first `hwr:result` event whose result is for the pad as it is
(app.js dispatches one whenever it shows an answer). Prints median, p90, min and max in ms.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
# Without the background-networking switches Chromium's own connections are refused on a closed
# network and page loads stall; the rest keep it headless and quiet (the tests start it so too).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# strokes in pad units (the pad is 280 x 280 of them): a 7, a 1, an L, a Z, a wide V
SHAPES = [
    [(80, 60), (200, 60), (120, 230)],
    [(140, 50), (140, 230)],
    [(90, 50), (90, 220), (200, 220)],
    [(80, 60), (200, 60), (80, 220), (200, 220)],
    [(70, 60), (140, 220), (210, 60)],
]
# Runs in the page before app.js: the time of each pointerup, and of each result shown for the
# pad as it is then; "busy" says whether an answer was still owed at pen-up.
PROBE = """
window.__probe = { up: null, upWasCurrent: false, results: [] };
document.addEventListener("pointerup", () => {
  __probe.up = performance.now();
  __probe.upWasCurrent = document.getElementById("result").getAttribute("aria-busy") === "false";
}, true);
document.addEventListener("hwr:result", (e) => {
  if (e.detail.current) __probe.results.push(performance.now());
});
"""


def install_probe(page) -> None:
    """Record pen-up and result times in `page` (call before page.goto)."""
    page.add_init_script(PROBE)


def draw(page, points, steps: int = 10, move_ms: float = 10) -> None:
    """One mouse stroke through `points` (pad units, scaled to the canvas as shown)."""
    box = page.locator("#canvas").bounding_box()
    scale = box["width"] / 280

    def at(p):
        return box["x"] + p[0] * scale, box["y"] + p[1] * scale

    x, y = at(points[0])
    page.mouse.move(x, y)
    page.mouse.down()
    for p in points[1:]:
        tx, ty = at(p)
        for i in range(1, steps + 1):
            page.mouse.move(x + (tx - x) * i / steps, y + (ty - y) * i / steps)
            if move_ms:
                page.wait_for_timeout(move_ms)
        x, y = tx, ty
    page.mouse.up()


def pen_up_to_bars(page, points, steps: int = 10, move_ms: float = 10, timeout: float = 30_000) -> float:
    """Draw one stroke on a cleared pad; ms from pointerup to the bars of the finished drawing
    (0 when they were already on screen at pen-up)."""
    page.keyboard.press("Escape")
    page.wait_for_function("document.getElementById('result').getAttribute('aria-busy') === 'false'")
    draw(page, points, steps, move_ms)
    page.wait_for_function(
        "__probe.upWasCurrent || __probe.results.some((t) => t >= __probe.up)", timeout=timeout
    )
    return page.evaluate(
        "__probe.upWasCurrent ? 0 : __probe.results.find((t) => t >= __probe.up) - __probe.up"
    )


def measure(page, n: int, steps: int = 10, move_ms: float = 10) -> list[float]:
    """Pen-up-to-bars times (ms) of `n` strokes, cycling through SHAPES."""
    return [pen_up_to_bars(page, SHAPES[i % len(SHAPES)], steps, move_ms) for i in range(n)]


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100), nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def summary(times: list[float]) -> str:
    """median, p90, min and max of `times` (ms)."""
    if not times:
        return "none"
    return (
        f"median {statistics.median(times):.1f}  p90 {percentile(times, 90):.1f}  "
        f"min {min(times):.1f}  max {max(times):.1f}"
    )


def cpu_model() -> str:
    """The CPU's model name (Linux), else the architecture."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def start_server(ckpt: str) -> tuple[subprocess.Popen, str]:
    """serve.py on a free loopback port (no access log): (process, url) once it answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "serve.py"), f"ckpt_path={ckpt}", f"port={port}", "log_level=warning"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"error: serve.py stopped: {(proc.stderr.read() if proc.stderr else '')[-500:]}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    sys.exit("error: serve.py did not answer within 120 s")


def main() -> None:
    """Parse arguments, serve, drive Chromium, print the measured numbers."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--ckpt", help="a checkpoint to serve with serve.py for the run")
    where.add_argument("--url", help="a running serve.py, e.g. http://127.0.0.1:8000")
    parser.add_argument("-n", type=int, default=40, help="strokes to time (default 40)")
    parser.add_argument("--steps", type=int, default=10, help="mouse moves per stroke segment")
    parser.add_argument("--move-ms", type=float, default=10, help="ms between mouse moves")
    args = parser.parse_args()
    if args.n < 1:
        sys.exit("error: -n must be at least 1")
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium") or CHROMIUM
    proc, url = start_server(args.ckpt) if args.ckpt else (None, args.url.rstrip("/"))
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 940, "height": 700})
            install_probe(page)
            page.goto(url)
            page.wait_for_function("document.getElementById('info').textContent.includes('trained on')")
            measure(page, 2, args.steps, args.move_ms)  # warm-up: first requests pay one-off costs
            times = measure(page, args.n, args.steps, args.move_ms)
            version = browser.version
            browser.close()
    finally:
        if proc:
            proc.terminate()
            proc.wait(timeout=30)
    print(f"date         {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print(f"machine      {cpu_model()}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}")
    print(f"browser      headless Chromium {version}; server {url}")
    print(
        f"strokes      {len(times)} (after 2 warm-up), "
        f"{args.steps} moves per segment every {args.move_ms:g} ms"
    )
    owed = [t for t in times if t > 0]
    print(f"pen-up to bars ms   {summary(times)}")
    print(
        f"  answer owed       {summary(owed)}  "
        f"({len(owed)} of {len(times)}; the rest: 0, on screen at pen-up)"
    )


if __name__ == "__main__":
    main()
