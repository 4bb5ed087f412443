"""Load-test a running `serve.py`: N canvas-like PNG predictions at concurrency C over HTTP.

    python scripts/load_test.py --url http://127.0.0.1:8000 [-n 2000] [-c 16]
    python scripts/load_test.py --ckpt outputs/.../best.ckpt   # starts serve.py on a free port

Every request posts the same 280x280 PNG a browser canvas would send (a black "7" on a
transparent background) as a multipart upload. Prints throughput, latency percentiles and the
counts of non-2xx answers and failed requests; the exit status is 1 if any request failed.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]


def canvas_png(size: int = 280, pen: int = 16) -> bytes:
    """A PNG like the page's canvas: a "7" in black on a transparent background."""
    image = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    s = size / 280
    points = [(80 * s, 60 * s), (200 * s, 60 * s), (120 * s, 230 * s)]
    ImageDraw.Draw(image).line(points, fill=(0, 0, 0, 255), width=int(pen * s), joint="curve")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


async def load(url: str, n: int, concurrency: int, png: bytes, timeout: float) -> dict:
    """Send `n` predictions with `concurrency` in flight; return latencies and failure counts."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    errors: dict[str, int] = {}
    next_index = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=timeout, limits=limits) as client:
        upload = {"file": ("canvas.png", png, "image/png")}
        # one request first, untimed: the first prediction pays one-off costs (allocations, caches)
        (await client.post("/api/predict", files=upload)).raise_for_status()

        async def worker() -> None:
            nonlocal next_index
            while next_index < n:
                next_index += 1
                start = time.perf_counter()
                try:
                    response = await client.post("/api/predict", files=upload)
                    statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
                except httpx.HTTPError as e:
                    errors[type(e).__name__] = errors.get(type(e).__name__, 0) + 1
                    continue
                latencies.append(time.perf_counter() - start)

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    return {"elapsed": elapsed, "latencies": latencies, "statuses": statuses, "errors": errors}


def report(result: dict, n: int, concurrency: int) -> bool:
    """Print the summary; True when every request got a 2xx answer."""
    ms = np.array(result["latencies"]) * 1000
    non_2xx = sum(count for status, count in result["statuses"].items() if not 200 <= status < 300)
    server_errors = sum(count for status, count in result["statuses"].items() if status >= 500)
    failed = sum(result["errors"].values())
    print(f"requests     {n} at concurrency {concurrency} in {result['elapsed']:.2f} s")
    print(f"throughput   {n / result['elapsed']:.1f} req/s")
    if len(ms):
        p50, p95, p99 = np.percentile(ms, [50, 95, 99])
        print(f"latency ms   p50 {p50:.1f}  p95 {p95:.1f}  p99 {p99:.1f}  max {ms.max():.1f}")
    print(f"statuses     {dict(sorted(result['statuses'].items()))}")
    print(f"non-2xx      {non_2xx} (server errors 5xx: {server_errors})")
    print(f"failed       {failed} {result['errors'] or ''}".rstrip())
    return non_2xx == 0 and failed == 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(ckpt: str, startup_timeout: float = 180) -> tuple[subprocess.Popen, str]:
    """serve.py on a free loopback port (its own process, as deployed); waits for /healthz."""
    port = free_port()
    options = [f"ckpt_path={ckpt}", f"port={port}", "log_level=warning"]
    process = subprocess.Popen([sys.executable, str(ROOT / "serve.py"), *options], cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + startup_timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"error: serve.py exited with status {process.returncode}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return process, url
        except httpx.HTTPError:
            time.sleep(0.2)
    process.terminate()
    raise SystemExit(f"error: serve.py did not answer /healthz within {startup_timeout:.0f} s")


def main(argv: list[str] | None = None) -> int:
    """Command line; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--url", help="a running server, e.g. http://127.0.0.1:8000")
    target.add_argument("--ckpt", help="start serve.py with this checkpoint on a free loopback port")
    parser.add_argument("-n", "--requests", type=int, default=2000)
    parser.add_argument("-c", "--concurrency", type=int, default=16)
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per request")
    args = parser.parse_args(argv)
    if args.requests < 1 or args.concurrency < 1:
        parser.error("--requests and --concurrency must be at least 1")
    process = None
    url = args.url
    if args.ckpt:
        process, url = start_server(args.ckpt)
    try:
        png = canvas_png()
        print(f"target       {url}/api/predict, a {len(png)}-byte 280x280 canvas PNG")
        result = asyncio.run(load(url.rstrip("/"), args.requests, args.concurrency, png, args.timeout))
    finally:
        if process is not None:
            process.terminate()
            process.wait(timeout=30)
    return 0 if report(result, args.requests, args.concurrency) else 1


if __name__ == "__main__":
    sys.exit(main())
