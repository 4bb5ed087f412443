"""Fixtures: tiny datasets in the real on-disk formats, a short real training, the browser
(the functions they use are in helpers.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from helpers import make_config, write_emnist, write_english, write_mnist

from benchmarks.page_latency import CHROMIUM, CHROMIUM_ARGS  # the benchmark starts Chromium so too


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data folder holding tiny MNIST, EMNIST (balanced) and English sets (shared: read only)."""
    root = tmp_path_factory.mktemp("data")
    write_mnist(root)
    write_emnist(root, "balanced", 47)
    write_english(root / "english")
    return root


@pytest.fixture(scope="session")
def english_run(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """A short real CNN training on the tiny English fixture: (run folder, its metrics).

    Shared by the predict, export and serve tests: a checkpoint made by train.py itself.
    """
    from hwr.commands.train import train

    out = tmp_path_factory.mktemp("english") / "run"
    overrides = [
        "data=english",
        "model=cnn",
        "model.net.channels=[8,16]",
        "model.net.head=[32]",
        "model.optimizer.lr=0.003",
        "data.batch_size=8",
        "trainer.max_epochs=8",
    ]
    return out, train(make_config("train", overrides, data_dir, out))


@pytest.fixture(scope="session")
def browser():
    """A headless Chromium under Playwright (skips when either is missing)."""
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        pytest.skip(f"no Chromium at {CHROMIUM}: apt-get install chromium to run the browser tests")
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    with sync_api.sync_playwright() as playwright:
        executable = shutil.which("chromium") or CHROMIUM
        try:
            browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        except sync_api.Error as e:
            pytest.skip(f"{executable} does not start under Playwright: {str(e).splitlines()[0]}")
        yield browser
        browser.close()
