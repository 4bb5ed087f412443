"""What the tests share: tiny datasets written in the real on-disk formats, configs composed as
the command line composes them, commands run as a user runs them, the browser's switches."""

from __future__ import annotations

import csv
import os
import shlex
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from omegaconf import DictConfig
from PIL import Image, ImageDraw

from hwr.config import compose_config
from hwr.data.idx import write_idx

ROOT = Path(__file__).resolve().parents[1]  # the checkout: the entry-point scripts
# a CNN small enough for a CPU test to train in seconds
SMALL_CNN = ["model.net.channels=[8,16]", "model.net.head=[32]"]

REAL_DATA = os.environ.get("HWR_DATA_DIR")
needs_real_data = pytest.mark.skipif(
    not REAL_DATA or not Path(REAL_DATA).is_dir(),
    reason=f"HWR_DATA_DIR={REAL_DATA} is not a folder"
    if REAL_DATA
    else "set HWR_DATA_DIR to a folder holding MNIST, EMNIST and English Hnd to run real-data tests",
)


def glyphs(n: int, num_classes: int, seed: int = 0, size: int = 28) -> tuple[np.ndarray, np.ndarray]:
    """Learnable synthetic characters: class c is a bright 6x6 square at a class-specific
    place (upper-left quadrant first), plus noise. White ink on black, uint8."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % num_classes
    rng.shuffle(labels)
    images = rng.integers(0, 40, size=(n, size, size), dtype=np.uint8)
    cols = max(1, (size - 8) // 6)
    for i, c in enumerate(labels):
        r, q = divmod(int(c), cols)
        y, x = 2 + (r * 6) % (size - 8), 2 + q * 6
        images[i, y : y + 6, x : x + 6] = 255
    return images, labels.astype(np.uint8)


def write_mnist(root: Path, n_train: int = 600, n_test: int = 200, gz: bool = True) -> Path:
    """`root/MNIST/raw/` with the four IDX files (.gz or plain)."""
    raw = root / "MNIST" / "raw"
    ext = ".gz" if gz else ""
    for part, n, seed in (("train", n_train, 1), ("t10k", n_test, 2)):
        images, labels = glyphs(n, 10, seed)
        write_idx(raw / f"{part}-images-idx3-ubyte{ext}", images)
        write_idx(raw / f"{part}-labels-idx1-ubyte{ext}", labels)
    return root


def write_emnist(
    root: Path, split: str, num_classes: int, layout: str = "raw", parts=("train", "test")
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """EMNIST IDX files stored transposed, as the official ones are. Returns the upright data."""
    folder = root / "EMNIST" / layout
    data = {}
    for part in parts:
        images, labels = glyphs(300 if part == "train" else 100, num_classes, seed=len(part))
        stored_labels = labels + 1 if split == "letters" else labels
        write_idx(folder / f"emnist-{split}-{part}-images-idx3-ubyte.gz", images.transpose(0, 2, 1))
        write_idx(folder / f"emnist-{split}-{part}-labels-idx1-ubyte.gz", stored_labels)
        data[part] = (images, labels)
    return data


def ink_png(path: Path, cls: int, writer: int) -> None:
    """A 60x45 black-on-white RGB scan of a class-specific bar shape (slightly per writer)."""
    image = Image.new("RGB", (60, 45), "white")
    draw = ImageDraw.Draw(image)
    x = 5 + (cls % 5) * 10 + writer % 3
    y = 5 + (cls // 5) * 8
    draw.rectangle([x, y, x + 4 + cls % 3 * 4, y + 20], fill="black")
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)


ENGLISH_CLASSES = list("0AZab")


def write_english(root: Path, layout: str = "kaggle", writers: int = 8) -> Path:
    """The English set in one of its layouts (kaggle | chars74k | folders), 5 classes."""
    rows = []
    for c, name in enumerate(ENGLISH_CLASSES):
        number = {"0": 1, "A": 11, "Z": 36, "a": 37, "b": 38}[name]
        for w in range(1, writers + 1):
            file = f"img{number:03d}-{w:03d}.png"
            if layout == "kaggle":
                ink_png(root / "Img" / file, c, w)
                rows.append((f"Img/{file}", name))
            elif layout == "chars74k":
                ink_png(root / "Img" / f"Sample{number:03d}" / file, c, w)
            else:
                ink_png(root / f"class_{name}" / file, c, w)
    if layout == "kaggle":
        with open(root / "english.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["image", "label"])
            writer.writerows(rows)
    return root


def run_script(
    script: str, *args: str, cwd: Path, data_dir: Path | None = None, timeout: int = 600
) -> subprocess.CompletedProcess:
    """Run `script` (relative to the checkout) as a user would, in `cwd`, with HWR_DATA_DIR
    pointing at `data_dir` when given; stdout and stderr captured as text."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if data_dir is not None:
        env["HWR_DATA_DIR"] = str(data_dir)
    return subprocess.run(
        [sys.executable, str(ROOT / script), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def train_until_last_checkpoint(args: list[str], data_dir: Path, cwd: Path, timeout: float = 240):
    """Start `train.py *args` in `cwd` (its output to cwd/train.log) and return (process, runs
    folder) once its first checkpoints/last.ckpt exists, the process still running: a run to
    kill or signal mid-training."""
    env = {**os.environ, "HWR_DATA_DIR": str(data_dir), "PYTHONUNBUFFERED": "1"}
    with open(cwd / "train.log", "w") as log:
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "train.py"), *args], cwd=cwd, env=env, stdout=log, stderr=log
        )
    runs = cwd / "outputs" / "train" / "runs"
    deadline = time.time() + timeout
    while not list(runs.glob("*/checkpoints/last.ckpt")) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, f"the run ended too early: {(cwd / 'train.log').read_text()[-2000:]}"
    return proc, runs


TMUX = "/usr/bin/tmux"


def in_tmux(
    command: list[str], cwd: Path, env: dict[str, str] | None = None, width: int = 80, timeout: float = 300
) -> tuple[str, list[str]]:
    """Run `command` in a tmux window `width` columns wide, as a person would see it:
    (its final screen, every distinct screen seen while it ran). Captured with wrapped
    lines joined, so a line that wrapped comes back longer than `width`."""
    socket, done = f"hwr-test-{os.getpid()}-{time.monotonic_ns()}", "__hwr_test_done__"
    exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in (env or {}).items())
    shell = f"cd {shlex.quote(str(cwd))} && env {exports} {shlex.join(command)}; echo {done}; sleep 600"
    tmux = [TMUX, "-L", socket]
    subprocess.run([*tmux, "new-session", "-d", "-x", str(width), "-y", "50", shell], check=True)
    frames: list[str] = []
    try:
        deadline = time.time() + timeout
        while time.time() < deadline:
            screen = subprocess.run(
                [*tmux, "capture-pane", "-p", "-J", "-S", "-", "-E", "-"], capture_output=True, text=True
            ).stdout
            if not frames or screen != frames[-1]:
                frames.append(screen)
            if done in screen:
                return screen.split(done)[0], frames
            time.sleep(0.1)
        raise AssertionError(f"{command[:2]} did not finish in {timeout} s:\n{screen}")
    finally:
        subprocess.run([*tmux, "kill-server"], check=False)


# no progress bars in test logs
QUIET = {"train": ["callbacks.progress_bar=null"], "eval": ["+trainer.enable_progress_bar=false"]}


def make_config(name: str, overrides: list[str], data_dir: Path, out: Path) -> DictConfig:
    """Compose configs/<name>.yaml as the entry point would, pointed at tmp folders."""
    return compose_config(
        name,
        [
            f"paths.data_dir={data_dir}",
            f"paths.output_dir={out}",
            f"paths.cache_dir={out.parent / 'cache'}",
            *QUIET.get(name, []),
            *overrides,
        ],
    )


def screenshot(page, name: str, folder: Path, **options) -> Path:
    """Save a screenshot of `page` as `folder/name` and, when HWR_SCREENSHOTS names a folder
    (docs/img when the docs' pictures are refreshed), a copy there; return the first path."""
    path = folder / name
    page.screenshot(path=str(path), **options)
    assert drawn_share(path) > 0.02, f"{name} is one flat colour: the page drew nothing"
    if os.environ.get("HWR_SCREENSHOTS"):
        target = Path(os.environ["HWR_SCREENSHOTS"])
        target.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target / name)
    return path


def drawn_share(path: Path) -> float:
    """The share of a picture's pixels that differ from its most common colour (the page's
    background): a blank or unrendered page is ~0, a page with text and figures is not."""
    with Image.open(path) as image:
        pixels = np.asarray(image.convert("RGB").resize((200, 200))).reshape(-1, 3)
    colours, counts = np.unique(pixels, axis=0, return_counts=True)
    return 1 - counts.max() / len(pixels)


def read_csv(path: Path) -> list[dict[str, str]]:
    """The rows of a csv file (a summary.csv) as dicts."""
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def free_port() -> int:
    """A TCP port free on loopback now (for a server a test starts)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def table_numbers(markdown: str, first_cell: str) -> list[float]:
    """The numbers in the markdown table row that starts with `first_cell` (1,360,641 -> 1360641;
    1.15x -> 1.15; 15.56% -> 15.56), so a test checks what a benchmark measured, not its headings."""
    import re

    for line in markdown.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells and cells[0] == first_cell:
            return [float(m.replace(",", "")) for c in cells[1:] for m in re.findall(r"-?[\d,]*\.?\d+", c)]
    raise AssertionError(f"no row {first_cell!r} in:\n{markdown}")


def serve_in_thread(predictor: Any, collection: Any = None) -> tuple[Any, threading.Thread, str]:
    """uvicorn serving `predictor` (a TrainedModel; corrections into `collection`, a
    hwr.web.collect.Collection) on a free loopback port in a daemon thread: (server, thread,
    url); stop it with `server.should_exit = True` and `thread.join()`."""
    import uvicorn

    from hwr.web.api import create_app

    port = free_port()
    app = create_app(predictor, collection=collection)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    return server, thread, f"http://127.0.0.1:{port}"
