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
from hwr.errors import HwrError
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
    for look in script.LOOKS:
        assert result[f"kept/{look}"] == pytest.approx(result[look] / result["eval"])
    assert (result["redrawn"], result["kept"]) == (result["plain"], result["kept/plain"])
    printed = capsys.readouterr().out
    assert "| dataset tensors (eval.py) |" in printed
    assert "redrawn as tight ~40 px crops on grey paper (200), ink at 50% contrast" in printed
    assert "| redrawn, plain: tight crop on grey paper |" in printed
    assert "| redrawn, edge: a paper edge line along one border |" in printed
    assert f"keeps {result['kept']:.1%} of eval.py's accuracy (target >= 95%)" in printed
    for look in script.LOOKS:
        labels = out / look / "labels.csv"
        assert f"python predict.py ckpt_path={ckpt} inputs=[{out / look}] labels={labels}" in printed

    files = model.trained_on.datamodule(data_dir, tmp_path / "c").test_files()  # the run's own split
    plain = out / "plain"
    with open(plain / "labels.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["label"] for r in rows] == [label for _, label in files]
    assert [r["image"] for r in rows] == [f"{i:04d}-{p.stem}.png" for i, (p, _) in enumerate(files)]
    assert sorted(p.name for p in plain.iterdir()) == sorted([r["image"] for r in rows] + ["labels.csv"])
    ink = paper * (1 - contrast)
    for row in rows:
        pixels = np.asarray(Image.open(plain / row["image"]))
        assert pixels.ndim == 2 and pixels.dtype == np.uint8
        assert round(0.75 * size) + 2 <= max(pixels.shape) <= round(1.25 * size) + 4  # 1-2 px pad
        border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
        assert abs(np.median(border) - paper) < 4  # the pad is plain paper
        assert abs(np.percentile(pixels, 1) - ink) < 10  # the darkest ink at `contrast` below it
        assert pixels.max() < paper + 15  # paper is the lightest thing: no white left from the scan
        rows_, cols_ = np.nonzero(pixels < (paper + ink) / 2)
        assert rows_.min() <= 2 and cols_.min() <= 2  # tight: ink within the pad of every side
        assert rows_.max() >= pixels.shape[0] - 3 and cols_.max() >= pixels.shape[1] - 3
    # the command it prints gives the same accuracy as each look's arm
    for look in script.LOOKS:
        truth = read_labels(out / look / "labels.csv")
        right = [r.label == truth[Path(r.source)] for r in predict_files(model, sorted(truth), top_k=1)]
        assert np.mean(right) == pytest.approx(result[look]), look


def test_each_look_draws_its_fault(english_run, data_dir, tmp_path):
    """The photographed looks, drawn from one scan, have the fault they are named for."""
    script = load_script()
    model = TrainedModel.load(english_run[0] / "checkpoints" / "best.ckpt", device="cpu")
    path = model.trained_on.datamodule(data_dir, tmp_path).test_files()[0][0]

    def draw(look, seed=0):
        image = script.redraw(path, np.random.default_rng(seed), 40, 0.6, 180, look)
        return np.asarray(image, np.float32)

    for seed in range(4):
        shaded = draw("gradient", seed)
        corners = [shaded[:2, :2], shaded[:2, -2:], shaded[-2:, :2], shaded[-2:, -2:]]
        paper = sorted(float(np.median(c)) for c in corners)
        assert paper[-1] > 150 and paper[0] < 0.7 * paper[-1]  # paper shaded by a third or more
        edged = draw("edge", seed)
        dark = edged < 140
        sides = [dark[:5].any(axis=0).mean(), dark[-5:].any(axis=0).mean()]
        sides += [dark[:, :5].any(axis=1).mean(), dark[:, -5:].any(axis=1).mean()]
        assert max(sides) == 1.0  # a line the full length of one border
        light = draw("light", seed)
        ink = light[light < 150]
        assert np.percentile(ink, 5) < 90 and np.percentile(ink, 95) > 110  # strokes of two darknesses
        jpeg = draw("jpeg", seed)
        border = np.concatenate([jpeg[0], jpeg[-1], jpeg[:, 0], jpeg[:, -1]])
        assert 110 < np.median(border) < 175  # darker grey paper
    with pytest.raises(HwrError, match="unknown look 'blur'; choose from plain, gradient"):
        script.redraw(path, np.random.default_rng(0), 40, 0.6, 180, "blur")


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
