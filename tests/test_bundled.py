"""The bundled model: small, weights-only, no trainer's folders in it; predict, serve and export
use it when given no checkpoint (and say so), with no dataset anywhere; init_from=bundled
fine-tunes from it."""

from __future__ import annotations

import io
import json
import logging
import os
import string
import subprocess
import sys

import pytest
import torch
from fastapi.testclient import TestClient
from helpers import ROOT, make_config
from PIL import Image, ImageDraw

from hwr import bundled
from hwr.commands.export import export
from hwr.commands.serve import serve
from hwr.commands.train import train
from hwr.errors import HwrError
from hwr.inference.checkpoint import TRAINED_ON, inference_copy, read_checkpoint
from hwr.inference.model import TrainedModel

# characters drawn as a person draws them on the page: (label, strokes on a 200 px square)
DRAWN = {
    "T": [[(40, 40), (160, 40)], [(100, 40), (100, 170)]],
    "L": [[(60, 30), (60, 170), (150, 170)]],
    "7": [[(40, 40), (160, 40), (80, 170)]],
    "A": [[(40, 170), (100, 30), (160, 170)], [(65, 115), (135, 115)]],
    "E": [[(150, 30), (60, 30), (60, 170), (150, 170)], [(60, 100), (130, 100)]],
    "H": [[(50, 30), (50, 170)], [(150, 30), (150, 170)], [(50, 100), (150, 100)]],
    "4": [[(120, 170), (120, 30), (40, 120), (160, 120)]],
}
BUNDLED_NET = [
    "model=cnn",
    "model.net.channels=[32,64,128]",
    "model.net.convs_per_block=2",
    "model.net.kernel_size=3",
    "model.net.head=[256]",
]


def drawn(strokes: list, size: int = 200) -> Image.Image:
    """Black strokes on white paper."""
    image = Image.new("L", (size, size), 255)
    pen = ImageDraw.Draw(image)
    for stroke in strokes:
        pen.line(stroke, fill=0, width=12, joint="curve")
    return image


def folders(record) -> list[str]:
    """Every data_dir a record still names."""
    if isinstance(record, dict):
        found = [str(v) for k, v in record.items() if k == "data_dir" and v]
        return found + [f for v in record.values() for f in folders(v)]
    return []


def test_the_bundled_model_is_small_weights_only_and_names_no_folder():
    size = bundled.WEIGHTS.stat().st_size
    assert size <= 10_000_000, size
    ckpt = torch.load(bundled.WEIGHTS, map_location="cpu", weights_only=True)  # plain containers only
    floats = [v for v in ckpt["state_dict"].values() if v.is_floating_point()]
    assert floats and all(v.dtype == torch.float16 for v in floats)
    assert set(ckpt) == {"state_dict", "hyper_parameters", TRAINED_ON}  # no optimiser, no loops
    assert ckpt["hyper_parameters"]["label_smoothing"] == 0.1  # eval's test/loss is the run's
    assert folders(ckpt[TRAINED_ON]) == []
    model = TrainedModel.load("bundled", "cpu")
    assert "".join(model.classes) == string.digits + string.ascii_uppercase + string.ascii_lowercase
    card = bundled.CARD.read_text()
    assert "carved" in card and "English Hnd, stratified test split" in card
    assert "scripts/train_bundled.sh" in card


def test_an_inference_copy_reads_as_its_checkpoint_does(english_run, tmp_path):
    """float16 weights, no optimiser: the same answers, a smaller file, and no data folder."""
    path = english_run[0] / "checkpoints" / "best.ckpt"
    ckpt = read_checkpoint(path)
    ckpt[TRAINED_ON] = {**ckpt[TRAINED_ON], "split": {"sources": {"a": {"data_dir": "/my/data"}}}}
    copy = inference_copy(ckpt)
    assert folders(copy[TRAINED_ON]) == [] and folders(inference_copy(ckpt, folders=True)[TRAINED_ON])
    torch.save(inference_copy(read_checkpoint(path)), tmp_path / "copy.pt")
    assert (tmp_path / "copy.pt").stat().st_size < path.stat().st_size / 2
    full, half = TrainedModel.load(path, "cpu"), TrainedModel.load(tmp_path / "copy.pt", "cpu")
    images = [drawn(strokes) for strokes in DRAWN.values()]
    for a, b in zip(full.predict(images, top_k=3), half.predict(images, top_k=3), strict=True):
        assert a.label == b.label and a.top[0][1] == pytest.approx(b.top[0][1], abs=5e-3)


@pytest.mark.slow  # starts a process
def test_predict_reads_drawn_characters_with_no_checkpoint_and_no_dataset(tmp_path):
    for label, strokes in DRAWN.items():
        drawn(strokes).save(tmp_path / f"{label}.png")
    env = {k: v for k, v in os.environ.items() if k not in ("HWR_DATA_DIR", "HWR_CACHE_DIR")}
    run = subprocess.run(
        [sys.executable, str(ROOT / "predict.py"), f"inputs=[{tmp_path}]", "--json"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    assert "no ckpt_path: using the bundled model" in run.stderr
    rows = json.loads(run.stdout)["predictions"]
    read = {os.path.basename(r["source"])[:-4]: r["label"] for r in rows}
    assert read == {label: label for label in DRAWN}, read


def test_serve_with_no_checkpoint_serves_the_bundled_model(tmp_path, monkeypatch, capsys):
    import uvicorn

    served = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: served.update(app=app, **kwargs))
    cfg = make_config("serve", [], tmp_path, tmp_path / "out")
    assert cfg.host == "127.0.0.1" and cfg.port == 8000 and cfg.ckpt_path is None  # loopback by default
    serve(cfg)
    said = capsys.readouterr()
    assert "no ckpt_path: using the bundled model" in said.err
    acc = json.loads(bundled.METRICS.read_text())["test/acc"]
    assert f"serving CNN trained on emnist + english (62 classes, test/acc {acc:.2%}" in said.out
    client = TestClient(served["app"])
    info = client.get("/api/info").json()
    assert info["num_classes"] == 62 and info["sources"] == ["emnist", "english"]
    assert info["checkpoint_files"][0]["bundled"] is True
    buffer = io.BytesIO()
    drawn(DRAWN["A"]).save(buffer, format="PNG")
    answer = client.post("/api/predict", files={"file": ("a.png", buffer.getvalue(), "image/png")})
    assert answer.status_code == 200 and answer.json()["label"] == "A"


def test_export_with_no_checkpoint_writes_the_bundled_model_and_its_card(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    result = export(make_config("export", ["format=torchscript"], tmp_path, tmp_path / "out"))
    assert "no ckpt_path: using the bundled model" in capsys.readouterr().err
    folder = tmp_path / "outputs" / "bundled" / "export"
    assert result["path"] == str(folder / "model.pt") and (folder / "model.pt.json").is_file()
    card = (folder / "MODEL_CARD.md").read_text()
    assert card.startswith(bundled.CARD.read_text().rstrip()) and "## Exported as" in card


def test_init_from_bundled_keeps_its_rows_by_class_name(data_dir, tmp_path, caplog):
    """The fixture's 5 classes (0 A Z a b) are 5 of the bundled model's 62: every output row
    and every other weight comes from it (a learning rate too small to move them)."""
    still = ["data=english", "data.batch_size=8", "trainer.max_epochs=1", "model.optimizer.lr=1e-8"]
    still.append("test=false")
    with caplog.at_level(logging.INFO, logger="hwr"):
        train(make_config("train", [*still, *BUNDLED_NET, "init_from=bundled"], data_dir, tmp_path / "t"))
    assert "5 of this set's 5 classes known to it, 0 start fresh" in caplog.text
    tuned = read_checkpoint(tmp_path / "t" / "checkpoints" / "last.ckpt")["state_dict"]
    ours = read_checkpoint(bundled.WEIGHTS)["state_dict"]
    rows = torch.tensor([bundled_index(c) for c in "0AZab"])
    weight = [k for k in ours if k.endswith("weight")][-1]
    assert torch.allclose(tuned[weight], ours[weight][rows].float(), atol=1e-3)
    first = next(k for k in ours if k.endswith("weight"))
    assert torch.allclose(tuned[first], ours[first].float(), atol=1e-3)


def bundled_index(label: str) -> int:
    return (string.digits + string.ascii_uppercase + string.ascii_lowercase).index(label)


def test_init_from_bundled_with_another_network_says_what_to_add(data_dir, tmp_path):
    cfg = make_config("train", ["data=english", "model=cnn", "init_from=bundled"], data_dir, tmp_path)
    with pytest.raises(HwrError) as caught:
        train(cfg)
    message = str(caught.value)
    assert message.startswith("init_from=bundled holds a network built otherwise") and "\n" not in message
    assert "model.net.channels=[32,64,128]" in message


@pytest.mark.slow  # trains a few steps, then eval.py twice: processes
def test_train_bundled_rebuilds_the_model_its_card_and_figures(data_dir, tmp_path):
    """scripts/train_bundled.sh on the fixture (a tiny EMNIST split, two batches): the model,
    card and figures land in BUNDLE_OUT, never in the package."""
    out = tmp_path / "out"
    env = {**os.environ, "HWR_DATA_DIR": str(data_dir), "HWR_CACHE_DIR": str(tmp_path / "cache"),
           "PYTHON": sys.executable, "BUNDLE_OUT": str(out), "BUNDLE_RUN": str(tmp_path / "run")}  # fmt: skip
    shipped = bundled.WEIGHTS.read_bytes()
    run = subprocess.run(
        ["bash", str(ROOT / "scripts" / "train_bundled.sh"), "data.sources.emnist.split=balanced",
         "trainer.max_epochs=1", "+trainer.limit_train_batches=2", "callbacks.progress_bar=null"],
        capture_output=True, text=True, timeout=900, env=env,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    assert bundled.WEIGHTS.read_bytes() == shipped  # the package's model is untouched
    model = TrainedModel.load(out / "chars62.pt", "cpu")
    figures = json.loads((out / "metrics.json").read_text())
    assert 0 <= figures["test/acc"] <= 1 and "mnist/test/acc" in figures
    card = (out / "MODEL_CARD.md").read_text()
    assert f"| EMNIST ByClass, test file | {100 * figures['test/emnist/acc']:.2f}% |" in card
    assert "hwr train experiment=chars62_cnn data.sources.emnist.split=balanced" in card
    assert str(data_dir) not in card and len(model.classes) > 5
