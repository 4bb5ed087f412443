"""TensorBoard as a user sees it, in headless Chromium: the HPARAMS tab and a 62-class report.

Each test saves a screenshot (docs/img's pictures, when HWR_SCREENSHOTS=docs/img is set).
HWR_SCREENSHOT_LOGDIR shows real runs instead of the two tiny ones trained here.
"""

from __future__ import annotations

import os
import string
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import torch
from helpers import free_port, make_config, screenshot
from lightning.pytorch.loggers import TensorBoardLogger

from hwr.commands.train import train
from hwr.evaluation.figures import TestOutputs
from hwr.evaluation.report import write_report
from hwr.files import Folder

TINY = [
    "model=mlp",
    "trainer.max_epochs=2",
    "++trainer.limit_train_batches=4",
    "++trainer.limit_val_batches=1",
]


@pytest.fixture(scope="module")
def logdir(data_dir, tmp_path_factory) -> Path:
    """Two short runs that differ in their learning rate (or HWR_SCREENSHOT_LOGDIR's runs)."""
    if os.environ.get("HWR_SCREENSHOT_LOGDIR"):
        return Path(os.environ["HWR_SCREENSHOT_LOGDIR"])
    runs = tmp_path_factory.mktemp("runs")
    write_62_class_report(runs / "report_62")
    for name, lr in (("lr_0.001", 0.001), ("lr_0.01", 0.01)):
        train(make_config("train", [*TINY, f"model.optimizer.lr={lr}"], data_dir, runs / name))
    return runs


CHARS62 = string.digits + string.ascii_uppercase + string.ascii_lowercase


def write_62_class_report(run_dir: Path) -> None:
    """A report of a made-up 62-class test pass (each class right 80 to 99 times in 100, its
    look-alikes taking most of the rest) into `run_dir`, with its TensorBoard images."""
    gen = torch.Generator().manual_seed(0)
    targets = torch.arange(62).repeat_interleave(100)
    predicted = targets.clone()
    swap = {
        CHARS62.index(a): CHARS62.index(b) for a, b in ("0O", "O0", "Il", "lI", "1l", "oO", "sS", "xX", "zZ")
    }
    wrong = torch.rand(len(targets), generator=gen) < 0.01 + 0.19 * torch.rand(62, generator=gen)[targets]
    for i in torch.nonzero(wrong).flatten().tolist():
        t = int(targets[i])
        predicted[i] = swap.get(t, int(torch.randint(62, (1,), generator=gen)))
    probs = torch.full((len(targets), 62), 0.1 / 61).scatter_(1, predicted[:, None], 0.9)
    index = torch.nonzero(predicted != targets).flatten()
    images = torch.rand(len(index), 1, 28, 28, generator=gen)
    logger = TensorBoardLogger(str(run_dir), name="tensorboard", version="")
    outputs = TestOutputs(probs, targets, images, index)
    write_report(outputs, list(CHARS62), Folder(run_dir / "report"), [logger], step=100)


@pytest.fixture(scope="module")
def tensorboard_url(logdir):
    """`tensorboard --logdir <logdir>` on a free loopback port."""
    pytest.importorskip("tensorboard")
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "tensorboard.main",
        f"--logdir={logdir}",
        f"--port={port}",
        "--host=127.0.0.1",
    ]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(url, timeout=2)
            break
        except OSError:
            assert server.poll() is None, server.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "tensorboard did not start in 60 s"
            time.sleep(0.5)
    yield url
    server.terminate()
    server.wait(timeout=20)


@pytest.mark.slow  # starts processes
def test_hparams_tab_shows_the_objective_among_its_ticked_metrics(browser, logdir, tensorboard_url, tmp_path):
    page = browser.new_page(viewport={"width": 1900, "height": 560})
    page.goto(f"{tensorboard_url}/#hparams")
    page.get_by_text("objective (val/acc_best)").first.wait_for(timeout=60_000)
    page.wait_for_timeout(2000)  # the table fills in after the columns
    shown = screenshot(page, "tensorboard_hparams.png", tmp_path)

    def visible(text: str) -> bool:  # locators see into TensorBoard's shadow DOM; inner_text does not
        return any(item.is_visible() for item in page.get_by_text(text, exact=True).all())

    for metric in ("objective (val/acc_best)", "test/acc", "test/f1_macro", "train/loss", "train_time_s"):
        assert visible(metric), f"{metric} is not shown in {shown}"
    assert not visible("lr-AdamW") and not visible("val/acc_top5")  # curves are not trial metrics
    if not os.environ.get("HWR_SCREENSHOT_LOGDIR"):  # the trials lead with their folders' names
        assert visible(f"lr_0.001 · mnist_MLP · {logdir / 'lr_0.001'}") and visible(
            f"lr_0.01 · mnist_MLP · {logdir / 'lr_0.01'}"
        )
    page.close()


@pytest.mark.slow  # starts processes
def test_a_62_class_report_stays_legible_in_tensorboard(browser, tensorboard_url, tmp_path):
    page = browser.new_page(viewport={"width": 1500, "height": 1300})
    page.goto(f"{tensorboard_url}/#images&tagFilter=confusion")
    page.get_by_text("report/confusion_zoom").first.wait_for(timeout=60_000)
    page.wait_for_timeout(3000)  # the images load after their cards
    sizes = page.evaluate("""() => { const found = [];
        const walk = (root) => root.querySelectorAll('*').forEach((e) => {
            if (e.tagName === 'IMG' && e.naturalWidth) found.push([e.naturalWidth, e.naturalHeight]);
            if (e.shadowRoot) walk(e.shadowRoot); });
        walk(document); return found; }""")
    assert sizes and max(w for w, _ in sizes) >= 1000, sizes  # the pictures, at the size they were drawn
    screenshot(page, "tensorboard_report_62.png", tmp_path)
    page.close()
