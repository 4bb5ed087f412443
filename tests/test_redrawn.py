"""scripts/redrawn_check.py: English test scans redrawn as small grey crops, read by predict's path."""

from __future__ import annotations

import csv
import dataclasses
import importlib.util
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hwr.commands.predict import predict_files, read_labels
from hwr.data.english import EnglishDataModule
from hwr.inference.checkpoint import TrainedOn
from hwr.inference.model import TrainedModel

ROOT = Path(__file__).resolve().parents[1]


def load_script():
    spec = importlib.util.spec_from_file_location("redrawn_check", ROOT / "scripts" / "redrawn_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_redrawn_crops_are_small_grey_and_the_eval_arm_is_eval_py(english_run, data_dir, tmp_path, capsys):
    script = load_script()
    run_dir, metrics = english_run
    ckpt = run_dir / "checkpoints" / "best.ckpt"
    model = TrainedModel.load(ckpt, device="cpu")
    assert model.tta_shift == 0  # then eval.py's test/acc is the plain accuracy on the test tensors
    size, contrast, paper, out = 40, 0.5, 200, tmp_path / "redrawn"
    result = script.check(ckpt, data_dir, None, out, size, contrast, paper, seed=3, cache_dir=tmp_path / "c")
    assert result["eval"] == pytest.approx(metrics["test/acc"])
    assert result["png"] == pytest.approx(metrics["test/acc"])  # the scans through hwr.preprocess
    assert result["kept"] == pytest.approx(result["redrawn"] / result["eval"])
    printed = capsys.readouterr().out
    assert "| dataset tensors (eval.py) |" in printed
    assert "| redrawn: tight ~40 px crops, grey paper, 50% contrast |" in printed
    assert f"keeps {result['kept']:.1%} of eval.py's accuracy (target >= 95%)" in printed
    assert f"python predict.py ckpt_path={ckpt} inputs=[{out}] labels={out / 'labels.csv'}" in printed

    files = model.trained_on.datamodule(data_dir, tmp_path / "c").test_files()  # the run's own split
    with open(out / "labels.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["label"] for r in rows] == [label for _, label in files]
    assert [r["image"] for r in rows] == [f"{i:04d}-{p.stem}.png" for i, (p, _) in enumerate(files)]
    assert sorted(p.name for p in out.iterdir()) == sorted([r["image"] for r in rows] + ["labels.csv"])
    ink = paper * (1 - contrast)
    for row in rows:
        pixels = np.asarray(Image.open(out / row["image"]))
        assert pixels.ndim == 2 and pixels.dtype == np.uint8
        assert round(0.75 * size) + 2 <= max(pixels.shape) <= round(1.25 * size) + 4  # 1-2 px pad
        border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
        assert abs(np.median(border) - paper) < 4  # the pad is plain paper
        assert abs(np.percentile(pixels, 1) - ink) < 10  # the darkest ink at `contrast` below it
        assert pixels.max() < paper + 15  # paper is the lightest thing: no white left from the scan
        rows_, cols_ = np.nonzero(pixels < (paper + ink) / 2)
        assert rows_.min() <= 2 and cols_.min() <= 2  # tight: ink within the pad of every side
        assert rows_.max() >= pixels.shape[0] - 3 and cols_.max() >= pixels.shape[1] - 3
    # the command it prints gives the same accuracy as the redrawn arm
    truth = read_labels(out / "labels.csv")
    paths = sorted(truth)
    right = [r.label == truth[Path(r.source)] for r in predict_files(model, paths, top_k=1)]
    assert np.mean(right) == pytest.approx(result["redrawn"])


def test_the_english_split_is_found_in_a_mix_or_falls_back(english_run, data_dir, tmp_path):
    script = load_script()
    model = TrainedModel.load(english_run[0] / "checkpoints" / "best.ckpt", device="cpu")
    own, note = script.english_test(model, data_dir, tmp_path)
    assert note == "english's own test split"
    source = {"class_path": "hwr.data.english.EnglishDataModule", "split": dict(model.trained_on.split)}
    mix = TrainedOn("hwr.data.mix.MixDataModule", "mix", {"sources": {"hnd": source}}, model.preprocessing)
    dm, note = script.english_test(dataclasses.replace(model, trained_on=mix), data_dir, tmp_path)
    assert isinstance(dm, EnglishDataModule) and "'hnd'" in note
    assert dm.test_files() == own.test_files()
    other = TrainedOn("hwr.data.emnist.EMNISTDataModule", "emnist", {}, model.preprocessing)
    dm, note = script.english_test(dataclasses.replace(model, trained_on=other), data_dir, tmp_path)
    assert isinstance(dm, EnglishDataModule) and note.startswith("trained on emnist")
