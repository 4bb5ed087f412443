"""TensorBoard as a user sees it: each run listed once, curves without housekeeping, the HPARAMS
tab in headless Chromium at 1440 px, and a 62-class report's card-size images.

Each browser test saves a screenshot (docs/img's pictures, when HWR_SCREENSHOTS=docs/img is
set). HWR_SCREENSHOT_LOGDIR shows real runs instead of the two tiny ones trained here.
"""

from __future__ import annotations

import json
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
from hwr.runs.tensorboard import curated, session_metrics, trial_name

TINY = [
    "model=mlp",
    "trainer.max_epochs=2",
    "++trainer.limit_train_batches=4",
    "++trainer.limit_val_batches=1",
    "trainer.log_every_n_steps=2",
]
# two runs in the folders `hwr train` gives them: outputs/<task>/runs/<date>_<time>
RUNS = {"mnist_mlp/runs/2026-12-06_10-00-01": 0.001, "mnist_mlp/runs/2026-12-06_10-00-02": 0.01}


@pytest.fixture(scope="module")
def logdir(data_dir, tmp_path_factory) -> Path:
    """Two short runs that differ in their learning rate, and a made-up 62-class report (or
    HWR_SCREENSHOT_LOGDIR's runs)."""
    if os.environ.get("HWR_SCREENSHOT_LOGDIR"):
        return Path(os.environ["HWR_SCREENSHOT_LOGDIR"])
    runs = tmp_path_factory.mktemp("runs")
    write_62_class_report(runs / "report_62")
    for name, lr in RUNS.items():
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


def _get(url: str, body: dict | None = None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data, {"Content-Type": "application/json"} if data else {})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def test_trial_names_are_short_and_lead_with_what_tells_runs_apart():
    assert trial_name(Path("outputs/english_cnn/runs/2026-12-06_19-07-22")) == "19:07:22 english_cnn"
    assert trial_name(Path("/o/mnist_optuna/multiruns/2026-12-06_19-07-22/3")) == "19:07:22#3 mnist_optuna"
    assert trial_name(Path("/somewhere/my_run")) == "my_run"  # not a dated folder: its name


def test_hparams_columns_are_four_short_settings_then_the_objective():
    params = {"data/augment/shift": 0, "data/augment/rotate": 12, "model/optimizer/lr": 0.003,
              "data/batch_size": 64, "trainer/max_epochs": 15}  # fmt: skip
    assert curated(params, "english", "CNN") == {
        "1 model": "CNN · english", "2 lr": 0.003, "3 epochs": 15, "4 augment": "on",
    }  # fmt: skip
    assert curated({"data/augment/shift": 0}, "mnist", "MLP")["4 augment"] == "off"
    # the same columns whatever a record holds: English runs have train_time_s as MNIST runs do
    columns = session_metrics("val/acc_best")
    assert list(columns.values())[:5] == [
        "objective (val/acc_best)", "test/acc", "test/acc_casefold", "test/f1_macro", "train_time_s",
    ]  # fmt: skip
    assert columns["train/time_s"] == "train_time_s"  # read from the training clock's curve
    assert list(session_metrics("test/acc").values())[0] == "objective (test/acc)"


@pytest.mark.slow  # trains two runs and starts TensorBoard
def test_tensorboard_lists_each_run_once_without_housekeeping_charts(logdir, tensorboard_url):
    runs = _get(f"{tensorboard_url}/data/runs")
    assert len(runs) == len(set(runs)) and all(run.endswith("/tensorboard") for run in runs), runs
    tags = _get(f"{tensorboard_url}/data/plugin/scalars/tags")
    for name in RUNS if not os.environ.get("HWR_SCREENSHOT_LOGDIR") else ():
        scalars = set(tags[f"{name}/tensorboard"])
        assert {"val/acc", "val/loss", "train/loss", "train/lr", "train/time_s", "test/acc"} <= scalars
        assert not {"epoch", "lr-AdamW"} & scalars and not any(s.startswith("objective") for s in scalars)
    experiment = _get(f"{tensorboard_url}/data/plugin/hparams/experiment", {"experimentName": ""})
    shown = [h.get("displayName") or h["name"] for h in experiment["hparamInfos"]]
    assert shown == ["model", "lr", "epochs", "augment"]  # four: the objective fits at 1440 px


@pytest.mark.slow  # starts processes
def test_hparams_tab_leads_with_the_objective_at_1440_px(browser, logdir, tensorboard_url, tmp_path):
    page = browser.new_page(viewport={"width": 1440, "height": 560})
    page.goto(f"{tensorboard_url}/#hparams")
    page.get_by_text("objective (val/acc_best)").first.wait_for(timeout=60_000)
    page.wait_for_timeout(2000)  # the table fills in after the columns
    shown = screenshot(page, "tensorboard_hparams.png", tmp_path)

    def in_table(text: str) -> list[dict]:  # locators see into TensorBoard's shadow DOM
        boxes = [
            item.bounding_box() for item in page.get_by_text(text, exact=True).all() if item.is_visible()
        ]
        return [box for box in boxes if box and box["x"] > 293]  # right of the filter pane

    columns = ("model", "lr", "epochs", "augment", "objective (val/acc_best)")
    for column in columns:
        boxes = in_table(column)
        assert boxes and boxes[0]["x"] + boxes[0]["width"] <= 1440, f"{column} is cut in {shown}"
    lefts = [in_table(column)[0]["x"] for column in columns]
    assert lefts == sorted(lefts)  # the objective right after the four settings
    if not os.environ.get("HWR_SCREENSHOT_LOGDIR"):  # one row per run, named <time> <task>
        for trial in ("10:00:01 mnist_mlp", "10:00:02 mnist_mlp"):
            assert len(in_table(trial)) == 1, f"{trial} is not listed once in {shown}"
    page.close()


@pytest.mark.slow  # starts processes
def test_a_62_class_report_stays_legible_in_tensorboard(browser, tensorboard_url, tmp_path):
    page = browser.new_page(viewport={"width": 1440, "height": 1300})
    page.goto(f"{tensorboard_url}/#images&tagFilter=confusion")
    page.get_by_text("report/confusion_zoom").first.wait_for(timeout=60_000)
    page.wait_for_timeout(3000)  # the images load after their cards
    sizes = page.evaluate("""() => { const found = [];
        const walk = (root) => root.querySelectorAll('*').forEach((e) => {
            if (e.tagName === 'IMG' && e.naturalWidth) found.push([e.naturalWidth, e.naturalHeight]);
            if (e.shadowRoot) walk(e.shadowRoot); });
        walk(document); return found; }""")
    # card-size views (digits, capitals, small letters, the zoom), not the 2500 px whole matrix
    assert len(sizes) >= 4 and max(w for w, _ in sizes) <= 700, sizes
    for tag in ("report/confusion_digits", "report/confusion_capitals", "report/confusion_small_letters"):
        assert page.get_by_text(tag).first.is_visible(), tag
    screenshot(page, "tensorboard_report_62.png", tmp_path)
    page.close()
