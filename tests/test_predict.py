"""predict.py and hwr.inference.model: checkpoints to predictions on image files."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT, make_config
from PIL import Image

from hwr.commands.predict import collect_inputs, predict_files, run
from hwr.data.english import EnglishDataModule
from hwr.errors import HwrError
from hwr.inference.model import TrainedModel


def english_dm(data_dir: Path, cache: Path) -> EnglishDataModule:
    return EnglishDataModule(data_dir=data_dir, cache_dir=cache)


def test_predictions_on_files_match_the_test_pass(english_run, data_dir, tmp_path):
    """The test images read from disk through hwr.preprocess get exactly the test pass's labels."""
    out, metrics = english_run
    predictor = TrainedModel.load(out / "checkpoints" / "best.ckpt")
    prep = predictor.preprocessing
    assert prep.center == "box" and prep.mean == pytest.approx(EnglishDataModule.MEAN)
    files = english_dm(data_dir, tmp_path).test_files()
    results = predict_files(predictor, [p for p, _ in files], top_k=3)
    correct = sum(r.label == label for r, (_, label) in zip(results, files, strict=True))
    assert correct / len(files) == pytest.approx(metrics["test/acc"])
    assert metrics["test/acc"] > 0.4  # chance is 0.2: the model learned something to compare
    first = results[0]
    assert len(first.top) == 3 and first.top[0][1] >= first.top[1][1] >= first.top[2][1]
    assert first.pixels.shape == (28, 28)
    info = predictor.info()
    assert info["dataset"] == "english" and info["test_acc"] == pytest.approx(metrics["test/acc"])


def test_collect_inputs(tmp_path):
    folder = tmp_path / "imgs"
    (folder / "sub").mkdir(parents=True)
    for name in ("b.png", "a.jpg", "sub/c.png"):
        Image.new("L", (8, 8)).save(folder / name)
    (folder / "notes.md").write_text("not an image")
    (tmp_path / "list.txt").write_text("imgs/b.png\n\n")
    assert [p.name for p in collect_inputs([str(folder)])] == ["a.jpg", "b.png", "c.png"]
    assert collect_inputs(str(tmp_path / "list.txt")) == [tmp_path / "imgs" / "b.png"]
    assert len(collect_inputs([str(folder / "*.png")])) == 1
    for bad, message in [("nope.png", "input not found"), (str(tmp_path / "*.gif"), "no file matches")]:
        with pytest.raises(HwrError, match=message):
            collect_inputs([bad])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(HwrError, match="holds no images"):
        collect_inputs([str(empty)])


def predict_config(overrides: list[str], tmp_path: Path):
    return make_config("predict", overrides, tmp_path, tmp_path / "out")


def test_predict_refuses_to_overwrite_and_reports_unreadable_files(english_run, tmp_path, capsys):
    out, _ = english_run
    ckpt = out / "checkpoints" / "best.ckpt"
    folder = tmp_path / "in"
    folder.mkdir()
    Image.new("L", (40, 40), 255).save(folder / "blank.png")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    target = tmp_path / "preds.csv"
    target.write_text("precious\n")
    with pytest.raises(HwrError, match="exists; pass overwrite=true"):
        run(predict_config([f"ckpt_path={ckpt}", f"inputs=[{folder}]", f"output={target}"], tmp_path))
    assert target.read_text() == "precious\n"
    status = run(predict_config([f"ckpt_path={ckpt}", f"inputs=[{folder}]", "json=true"], tmp_path))
    captured = capsys.readouterr()
    assert status == 1 and "broken.png: not an image" in captured.err
    rows = {Path(r["source"]).name: r for r in json.loads(captured.out)["predictions"]}
    assert "error" in rows["broken.png"] and len(rows["blank.png"]["top"]) == 5


@pytest.mark.slow  # starts processes
def test_cli_english_test_files_then_predict_matches_eval(english_run, data_dir, tmp_path):
    """The README's recipe: the checkpoint's test split as files, predict.py with labels, and
    the accuracy it prints equals the run's test/acc (eval.py's figure on the same images)."""
    out, metrics = english_run
    ckpt = out / "checkpoints" / "best.ckpt"
    env = {**__import__("os").environ, "HWR_CACHE_DIR": str(tmp_path / "cache")}
    listing = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "english_test_files.py"), str(ckpt),
         "--out", str(tmp_path / "test"), "--data-dir", str(data_dir)],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert listing.returncode == 0, listing.stderr[-2000:]
    shutil.copy(tmp_path / "test" / "test.csv", tmp_path / "labels.csv")
    run_ = subprocess.run(
        [sys.executable, str(ROOT / "predict.py"), f"ckpt_path={ckpt}",
         f"inputs=[{tmp_path / 'test' / 'test.txt'}]", f"labels={tmp_path / 'labels.csv'}",
         f"output={tmp_path / 'preds.csv'}", "top_k=2", "--json"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env,
    )  # fmt: skip
    assert run_.returncode == 0, run_.stderr[-2000:]
    result = json.loads(run_.stdout)
    right = sum(r["correct"] for r in result["predictions"])
    assert right / len(result["predictions"]) == pytest.approx(metrics["test/acc"])
    assert result["summary"].startswith(f"accuracy {metrics['test/acc']:.4f}")
    header = (tmp_path / "preds.csv").read_text().splitlines()[0]
    assert header == "source,label,top1,prob1,top2,prob2,true,correct"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "cache",
        "labels.csv",
        "preds.csv",
        "test",
    ]  # no litter


def ckpt_of(english_run) -> Path:
    return english_run[0] / "checkpoints" / "best.ckpt"


def test_accuracy_on_the_models_own_training_images_says_so(english_run, data_dir, tmp_path, capsys):
    """The English folder holds the model's training images: the accuracy line says how many,
    and gives the accuracy on its test split, which is eval's test/acc."""
    _, metrics = english_run
    english = data_dir / "english"
    held_out = len(english_dm(data_dir, tmp_path / "cache").test_files())
    total = len(list((english / "Img").glob("*.png")))
    seen = total - held_out
    expected = [
        f"{seen} of {total} images are in the model's training split (english: train",
        f"accuracy on the {held_out} in its test split: {metrics['test/acc']:.4f}",
    ]
    ckpt = f"ckpt_path={ckpt_of(english_run)}"
    overrides = [ckpt, f"inputs=[{english / 'Img'}]", f"labels={english / 'english.csv'}"]
    assert run(predict_config(overrides, data_dir)) == 0
    out = " ".join(capsys.readouterr().out.split())  # the sentences as one line, however wrapped
    assert out.count("│") > total and all(line in out for line in expected)
    # the same images in a moved copy of the set (another data_dir): still recognised
    moved = tmp_path / "elsewhere" / "english"
    shutil.copytree(english, moved)
    overrides = [ckpt, f"inputs=[{moved / 'Img'}]", f"labels={moved / 'english.csv'}", "json=true"]
    assert run(predict_config(overrides, tmp_path / "no-data")) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["training_overlap"] == {
        "dataset": "english",
        "in_training_split": seen,
        "in_test_split": held_out,
        "test_split_accuracy": pytest.approx(metrics["test/acc"]),
    }
    assert expected[0] in result["summary"]


def test_a_large_input_prints_a_summary_and_writes_every_row(
    english_run, data_dir, tmp_path, capsys, monkeypatch
):
    """More images than a table shows: counts, accuracy and the most confused pairs on stdout,
    every row in output= (csv or json), or in outputs/predict/ when none is given."""
    folder, labels = tmp_path / "copies", ["image,label"]
    for copy in ("a", "b"):  # 80 images, none of them the model's training files
        files = english_dm(data_dir, tmp_path / "cache").files
        for src, label in zip(files.paths, files.labels, strict=True):
            (folder / copy).mkdir(parents=True, exist_ok=True)
            shutil.copy(src, folder / copy / src.name)
            labels.append(f"{copy}/{src.name},{label}")
    (folder / "labels.csv").write_text("\n".join(labels) + "\n")
    n = len(labels) - 1
    base = [f"ckpt_path={ckpt_of(english_run)}", f"inputs=[{folder}]", f"labels={folder / 'labels.csv'}"]
    assert run(predict_config([*base, f"output={tmp_path / 'preds.csv'}"], data_dir)) == 0
    out = capsys.readouterr().out
    assert "│" not in out and f"{n} images: {n} predicted" in out
    assert "accuracy " in out and ("most confused" in out or "no labelled image is wrong" in out)
    assert str(tmp_path / "preds.csv") in out.splitlines() and "training split" not in out
    with open(tmp_path / "preds.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == n and {Path(r["source"]).parent.name for r in rows} == {"a", "b"}
    assert rows[0].keys() >= {"source", "label", "top5", "prob5", "true", "correct"}
    assert run(predict_config([*base, f"output={tmp_path / 'preds.json'}"], data_dir)) == 0
    written = json.loads((tmp_path / "preds.json").read_text())
    assert len(written["predictions"]) == n and written["summary"].startswith("accuracy ")
    monkeypatch.chdir(tmp_path)  # no output=: the rows go to outputs/predict/<time>.csv
    capsys.readouterr()
    assert run(predict_config(base[:2], data_dir)) == 0
    [default] = (tmp_path / "outputs" / "predict").glob("*.csv")
    assert str(default.relative_to(tmp_path)) in capsys.readouterr().out.splitlines()
    assert len(default.read_text().splitlines()) == n + 1


def test_a_prediction_carries_its_case_folded_group_and_summed_probability(english_run, data_dir):
    """The English fixture has no case pair (a, A are drawn apart): groups passed by the caller
    stand in for them, and the JSON gives the group with its probability summed over it."""
    out, _ = english_run
    model = TrainedModel.load(out / "checkpoints" / "best.ckpt", "cpu")
    image = Image.open(next((data_dir / "english" / "Img").glob("img037-*.png")))  # an "a"
    [plain] = model.predict([image], ["a.png"], top_k=1)
    assert plain.group is None and "casefold" not in plain.as_dict()
    groups = [["0", "A", "Z"], ["a", "b"]]  # every class in one: the top class always has partners
    [grouped] = model.predict([image], ["a.png"], top_k=1, groups=groups)
    probs = model.probabilities(model.preprocessing.batch([image])[1])[0]
    [members] = [g for g in groups if grouped.label in g]
    expected = sum(float(probs[model.classes.index(m)]) for m in members)
    assert grouped.group == (members, pytest.approx(expected))
    assert grouped.as_dict()["casefold"] == {"labels": members, "prob": pytest.approx(expected, abs=1e-6)}
    assert grouped.group[1] >= grouped.top[0][1]  # at least the top class alone
