"""A dataset hwr has never heard of: one DataModule file and one YAML, both outside the
repository, are enough to train, evaluate, predict and export it."""

from __future__ import annotations

import json
import pickle
import textwrap
from pathlib import Path

import pytest
import torch
from helpers import make_config
from PIL import Image, ImageDraw

from hwr.commands.eval import evaluate
from hwr.commands.predict import run as predict
from hwr.commands.train import train
from hwr.inference.export import ExportedModel, export_model
from hwr.inference.model import TrainedModel

# Bars: horizontal, vertical or a cross, drawn at 16 px, with a split argument of its own.
DATAMODULE = """
import torch
from hwr.data.base import CharDataModule
from hwr.data.sets import LabelledImages


class BarsDataModule(CharDataModule):
    name = "bars"

    def __init__(self, data_dir=None, per_class: int = 40, **kwargs):
        super().__init__(data_dir, **kwargs)
        self.per_class = per_class

    @property
    def class_names(self):
        return ["horizontal", "vertical", "cross"]

    @property
    def image_size(self):
        return 16

    def split_args(self):
        return {**super().split_args(), "per_class": self.per_class}

    def _draw(self, seed: int) -> LabelledImages:
        gen = torch.Generator().manual_seed(seed)
        images, labels = [], []
        for i in range(3 * self.per_class):
            label, image = i % 3, torch.zeros(16, 16, dtype=torch.uint8)
            row, col = (int(v) for v in torch.randint(6, 9, (2,), generator=gen))
            if label in (0, 2):
                image[row : row + 2, 2:14] = 255
            if label in (1, 2):
                image[2:14, col : col + 2] = 255
            images.append(image)
            labels.append(label)
        return LabelledImages(torch.stack(images), torch.tensor(labels))

    def load_train(self):
        return self._draw(0)

    def load_test(self):
        return self._draw(1)
"""

CONFIG = """
defaults:
  - _base
  - _self_

_target_: bars.BarsDataModule
per_class: 40
batch_size: 16
"""


def drawn(label: str) -> Image.Image:
    """A bar character as a user would draw it: black ink on a white 64 px canvas."""
    image = Image.new("L", (64, 64), 255)
    draw = ImageDraw.Draw(image)
    if label in ("horizontal", "cross"):
        draw.rectangle((12, 29, 52, 35), fill=0)
    if label in ("vertical", "cross"):
        draw.rectangle((29, 12, 35, 52), fill=0)
    return image


@pytest.fixture
def bars(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The dataset's module on sys.path and its YAML on Hydra's search path: the overrides a
    user passes to use it."""
    code, configs = tmp_path / "code", tmp_path / "configs" / "data"
    code.mkdir()
    configs.mkdir(parents=True)
    (code / "bars.py").write_text(textwrap.dedent(DATAMODULE))
    (configs / "bars.yaml").write_text(CONFIG)
    monkeypatch.syspath_prepend(str(code))
    return [f"hydra.searchpath=[file://{configs.parent}]"]


def test_a_fourth_dataset_trains_evaluates_predicts_and_exports(bars, data_dir, tmp_path, capsys):
    run = tmp_path / "run"
    overrides = [*bars, "data=bars", "model=mlp", "trainer.max_epochs=4", "model.optimizer.lr=0.01"]
    metrics = train(make_config("train", overrides, data_dir, run))
    assert metrics["data"] == "bars" and metrics["test/acc"] > 0.95  # chance is 1/3
    ckpt = run / "checkpoints" / "best.ckpt"
    record = torch.load(ckpt, weights_only=True)["hwr_trained_on"]
    assert record["class_path"] == "bars.BarsDataModule" and record["split"]["per_class"] == 40
    assert record["input_shape"] == [1, 16, 16] and record["preprocessing"]["image_size"] == 16

    # eval.py without data=: the DataModule is rebuilt from the checkpoint alone
    tested = evaluate(make_config("eval", [*bars, f"ckpt_path={ckpt}"], data_dir, tmp_path / "eval"))
    assert tested["data"] == "bars" and tested["test/acc"] == pytest.approx(metrics["test/acc"])

    # predict.py on drawings, through the preprocessing the DataModule supplied
    classes = ["horizontal", "vertical", "cross"]
    folder = tmp_path / "drawn"
    folder.mkdir()
    for name in classes:
        drawn(name).save(folder / f"{name}.png")
    (folder / "labels.csv").write_text("image,label\n" + "".join(f"{n}.png,{n}\n" for n in classes))
    cfg = make_config(
        "predict",
        [f"ckpt_path={ckpt}", f"inputs=[{folder}]", f"labels={folder / 'labels.csv'}", "json=true"],
        data_dir,
        tmp_path / "predict",
    )
    capsys.readouterr()  # drop what training and testing printed
    assert predict(cfg) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["summary"].startswith("accuracy 1.0000 (3/3")

    # export.py: the ONNX file and its sidecar predict the drawings as PyTorch does
    result = export_model(ckpt, "onnx", tmp_path / "bars.onnx")
    exported = ExportedModel.load(result["path"])
    images = [drawn(name) for name in classes]
    assert [top[0][0] for top in exported.predict(images, top_k=1)] == classes
    trained = TrainedModel.load(ckpt, "cpu")
    assert [p.label for p in trained.predict(images)] == classes
    copied = pickle.loads(pickle.dumps(trained))  # spawn-based strategies and workers pickle it
    assert copied.trained_on == trained.trained_on and [p.label for p in copied.predict(images)] == classes
    assert result["dataset"] == "bars" and exported.preprocessing.image_size == 16
