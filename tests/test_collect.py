"""serve.py collect=<folder>: corrections from the page are stored as a training set that
data=folder reads; only the model's classes, safe names, bounded sizes, nothing half-written."""

from __future__ import annotations

import base64
import csv
import io

import pytest
from fastapi.testclient import TestClient
from PIL import Image, ImageDraw

from hwr.data.folder import FolderDataModule
from hwr.errors import HwrError
from hwr.inference.model import TrainedModel
from hwr.web import collect as collect_module
from hwr.web.api import create_app
from hwr.web.collect import LABELS, MAX_SIDE, Collection, class_folder


def pad_png(points=((60, 200), (140, 40), (220, 200)), size: int = 280) -> str:
    """A data: URL of the pad as the page sends it: black strokes on transparent."""
    image = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    if points:
        ImageDraw.Draw(image).line(list(points), fill=(0, 0, 0, 255), width=16, joint="curve")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


@pytest.fixture(scope="module")
def model(english_run) -> TrainedModel:
    return TrainedModel.load(english_run[0] / "checkpoints" / "best.ckpt", "cpu")  # classes 0 A Z a b


def rows(folder) -> list[dict[str, str]]:
    with open(folder / LABELS, newline="") as f:
        return list(csv.DictReader(f))


def test_corrections_are_stored_as_a_folder_set_that_training_reads(model, tmp_path):
    folder = tmp_path / "mine"
    client = TestClient(create_app(model, collection=Collection(folder, list(model.classes))))
    assert client.get("/api/info").json()["collect"] == {"count": 0, "per_class": {}}
    saved = [client.post("/api/collect", json={"image": pad_png(), "label": label}).json() for label in "aAa"]
    assert [s["label"] for s in saved] == ["a", "A", "a"] and saved[-1]["count"] == 3
    assert client.get("/api/info").json()["collect"] == {"count": 3, "per_class": {"A": 1, "a": 2}}
    names = [r["image"] for r in rows(folder)]
    # unique even where a and A share one folder (a case-insensitive file system)
    assert len({n.lower() for n in names}) == 3 and [r["label"] for r in rows(folder)] == list("aAa")
    drawn = Image.open(folder / names[0])
    assert drawn.mode == "L" and drawn.getpixel((0, 0)) == 255  # grey on white, as drawn
    assert Image.open(folder / ".seen" / names[0]).size == (28, 28)  # as the model saw it
    dm = FolderDataModule(data_dir=tmp_path, folder="mine", cache_dir=tmp_path / "cache", test_fraction=0.0)
    assert dm.class_names == ["A", "a"] and len(dm.files.paths) == 3  # .seen/ is not read


@pytest.mark.parametrize(
    "body,status,says",
    [
        ({"image": pad_png(), "label": "ä"}, 422, "'ä' is not one of the model's 5 classes"),
        ({"image": pad_png(), "label": ""}, 422, "label must be one of the model's classes"),
        ({"image": pad_png(), "label": 7}, 422, "label must be one of the model's classes"),
        ({"image": "x", "label": "a"}, 400, "image is not valid base64"),
        ({"image": pad_png(points=()), "label": "a"}, 422, "the drawing is blank"),
        ({"label": "a"}, 422, "missing field 'image'"),
    ],
)
def test_a_refused_correction_says_why_and_writes_nothing(model, tmp_path, body, status, says):
    folder = tmp_path / "mine"
    client = TestClient(create_app(model, collection=Collection(folder, list(model.classes))))
    answer = client.post("/api/collect", json=body)
    assert answer.status_code == status and says in answer.json()["detail"], answer.json()
    assert rows(folder) == [] and sorted(p.name for p in folder.iterdir()) == [LABELS]


def test_collecting_is_off_unless_asked(model):
    client = TestClient(create_app(model))
    assert client.get("/api/info").json()["collect"] is None
    answer = client.post("/api/collect", json={"image": pad_png(), "label": "a"})
    assert answer.status_code == 404 and "collect=<folder>" in answer.json()["detail"]


def test_a_large_drawing_is_stored_small_and_names_stay_inside(model, tmp_path):
    collection = Collection(tmp_path / "mine", list(model.classes))
    big = Image.new("L", (2000, 1500), 255)
    ImageDraw.Draw(big).line([(200, 1400), (1000, 100), (1800, 1400)], fill=0, width=120)
    saved = collection.save(big, model.preprocessing.pixels(big), "A")
    assert max(Image.open(tmp_path / "mine" / saved["saved"]).size) == MAX_SIDE
    assert class_folder("A") == "A" and class_folder("../x") == "u002e-002e-002f-0078"


def test_a_failed_save_keeps_the_csv_as_it_was(model, tmp_path, monkeypatch):
    folder = tmp_path / "mine"
    client = TestClient(create_app(model, collection=Collection(folder, list(model.classes))))
    assert client.post("/api/collect", json={"image": pad_png(), "label": "a"}).status_code == 200

    def full_disk(path, text, what):
        raise HwrError(f"cannot write {path} ({what}): No space left on device; free some space")

    monkeypatch.setattr(collect_module, "write_text", full_disk)
    answer = client.post("/api/collect", json={"image": pad_png(), "label": "b"})
    assert answer.status_code == 507 and "No space left" in answer.json()["detail"]
    assert [r["label"] for r in rows(folder)] == ["a"]
    assert client.get("/api/info").json()["collect"]["count"] == 1


def test_a_folder_that_is_not_a_collection_is_refused(model, tmp_path):
    (tmp_path / "set" / "a").mkdir(parents=True)
    (tmp_path / "set" / "a" / "1.png").write_bytes(b"")
    with pytest.raises(HwrError, match="holds files but no labels.csv: choose an empty or new folder"):
        Collection(tmp_path / "set", list(model.classes))
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / LABELS).write_text("image,label\nq/1.png,q\n")
    with pytest.raises(HwrError, match=r"classes this model does not know \(q\)"):
        Collection(tmp_path / "other", list(model.classes))
