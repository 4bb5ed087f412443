"""Teaching the model from the page, end to end: a person corrects three characters it misreads
(serve.py collect=<folder>), `train.py experiment=personal` fine-tunes the bundled model on them
with a replay of its base data, and the page then reads them."""

from __future__ import annotations

import random

import pytest
from helpers import make_config, serve_in_thread

from benchmarks.page_latency import draw
from hwr.commands.train import train
from hwr.inference.model import TrainedModel
from hwr.web.collect import Collection

pytestmark = pytest.mark.slow  # drives a browser and trains

# three shapes the bundled model has no class for, taught as three of its characters
TAUGHT = {
    "k": [(60, 60), (220, 60), (220, 220), (60, 220), (60, 60)],  # a square
    "w": [(140, 40), (230, 220), (50, 220), (140, 40)],  # a triangle
    "e": [(60, 60), (220, 220), (220, 60), (60, 220), (60, 60)],  # an hourglass on its side
}
PER_CLASS = 8
ANSWERED = (
    "document.getElementById('result').getAttribute('aria-busy') === 'false'"
    " && document.querySelectorAll('#bars li').length > 0"
)


def variant(points, rng: random.Random) -> list[tuple[float, float]]:
    """The shape as another hand draws it: each corner moved up to 15 px."""
    return [(x + rng.uniform(-15, 15), y + rng.uniform(-15, 15)) for x, y in points]


def read(page, points) -> str:
    """Draw `points` on a cleared pad; the top class the page shows for it."""
    page.click("#clear")
    draw(page, points, steps=6, move_ms=5)
    page.wait_for_function(ANSWERED)
    return page.locator("#bars li").first.get_attribute("aria-label").split(":")[0].split(" (")[0]


def serve_page(browser, model, collection=None):
    server, thread, url = serve_in_thread(model, collection)
    page = browser.new_page()
    page.goto(url)
    page.wait_for_function("document.getElementById('info').textContent.includes('trained on')")
    return server, thread, page


def test_corrections_on_the_page_teach_the_bundled_model(browser, data_dir, tmp_path):
    rng = random.Random(0)
    bundled = TrainedModel.load("bundled", "cpu")
    folder = tmp_path / "mine"
    server, thread, page = serve_page(browser, bundled, Collection(folder, list(bundled.classes)))
    page.wait_for_selector("#teach:not([hidden])")
    before, saved = {}, 0
    for label, shape in TAUGHT.items():
        for _ in range(PER_CLASS):
            before.setdefault(label, read(page, variant(shape, rng)))
            page.fill("#truth", label)
            page.click("#teach button")
            saved += 1
            count = f"document.getElementById('collected').textContent.endsWith(' {saved} collected')"
            page.wait_for_function(count)  # the page shows the count collected
    assert "saved as “e”" in page.text_content("#collected")
    server.should_exit = True
    thread.join(timeout=10)
    assert all(before[label] != label for label in TAUGHT), before  # it did not read them

    # the replay: the fixture's tiny EMNIST (balanced split) and English stand in for the real sets
    overrides = ["experiment=personal", f"data.folder={folder}", "data.sources.emnist.split=balanced"]
    metrics = train(make_config("train", [*overrides, "trainer.max_epochs=40"], data_dir, tmp_path / "run"))
    assert metrics["start/folder/acc"] < 0.5 and metrics["test/folder/acc"] == 1.0, metrics

    tuned = TrainedModel.load(tmp_path / "run" / "checkpoints" / "best.ckpt", "cpu")
    server, thread, page = serve_page(browser, tuned)
    try:
        after = {label: read(page, variant(shape, rng)) for label, shape in TAUGHT.items()}
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    assert after == {label: label for label in TAUGHT}, after
