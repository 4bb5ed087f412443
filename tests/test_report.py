"""The evaluation report written after every test (hwr.evaluation.report)."""

from __future__ import annotations

import csv
import json

import pytest
import rich
import torch
from helpers import make_config
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from hwr.commands.train import train
from hwr.evaluation.figures import TestOutputs as Outputs  # not collected as a test class
from hwr.evaluation.figures import mistake_caption, plot_confusion, plot_mistakes, plot_per_class
from hwr.evaluation.report import confused_pairs, write_report
from hwr.files import Folder
from hwr.runs.console import pairs_table

DIGITS = list("0123456789")
CLASSES_62 = list("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")


def test_confused_pairs_from_a_known_matrix():
    names = ["5", "S", "x"]
    matrix = torch.tensor([[8, 2, 0], [4, 6, 0], [0, 1, 9]])
    pairs = confused_pairs(matrix, names)
    assert [(p["true"], p["predicted"], p["count"]) for p in pairs] == [
        ("S", "5", 4),
        ("5", "S", 2),
        ("x", "S", 1),
    ]
    assert pairs[0]["share"] == pytest.approx(0.4)


def _read(path, dicts: bool = False):
    with open(path, newline="") as f:
        return list(csv.DictReader(f) if dicts else csv.reader(f))


@pytest.fixture(scope="module")
def report_run(data_dir, tmp_path_factory):
    """A short MLP run on the 47-class EMNIST fixture: enough classes and mistakes to report."""
    out = tmp_path_factory.mktemp("report") / "run"
    cfg = make_config("train", ["data=emnist", "model=mlp", "trainer.max_epochs=2"], data_dir, out)
    return out, train(cfg)


def test_report_files_are_consistent(report_run):
    out, metrics = report_run
    folder = out / "report"
    for name in ("confusion_matrix", "per_class", "misclassified"):
        assert (folder / f"{name}.png").stat().st_size > 1000
    matrix_rows = _read(folder / "confusion_matrix.csv")
    names = matrix_rows[0][1:]
    assert len(names) == 47 and names[:3] == ["0", "1", "2"] and names[-1] == "t"
    matrix = torch.tensor([[int(v) for v in row[1:]] for row in matrix_rows[1:]])
    assert [row[0] for row in matrix_rows[1:]] == names
    assert int(matrix.sum()) == 100  # every test image once

    per_class = _read(folder / "per_class.csv", dicts=True)
    assert [r["class"] for r in per_class] == names
    assert [int(r["support"]) for r in per_class] == matrix.sum(dim=1).tolist()  # rows sum to supports
    recall = [float(r["recall"]) for r in per_class]
    for i, support in enumerate(matrix.sum(dim=1).tolist()):
        if support:
            assert recall[i] == pytest.approx(matrix[i, i].item() / support, abs=1e-4)

    pairs = _read(folder / "confusions.csv", dicts=True)
    assert 0 < len(pairs) <= 20
    counts = [int(p["count"]) for p in pairs]
    assert counts == sorted(counts, reverse=True)
    for p in pairs:
        t, q = names.index(p["true"]), names.index(p["predicted"])
        assert t != q and matrix[t, q] == int(p["count"])
        assert float(p["share"]) == pytest.approx(int(p["count"]) / matrix[t].sum().item(), abs=1e-4)

    saved = json.loads((out / "metrics.json").read_text())
    assert saved["test/recall_micro"] == pytest.approx(saved["test/acc"], abs=1e-6)
    assert saved["test/f1_macro"] == pytest.approx(metrics["test/f1"], abs=1e-4)


def test_report_images_in_tensorboard(report_run):
    out, _ = report_run
    acc = EventAccumulator(str(out / "tensorboard"), size_guidance={"images": 0})
    acc.Reload()
    assert {"report/confusion_matrix", "report/per_class", "report/misclassified"} <= set(
        acc.Tags()["images"]
    )
    assert "report/confusion_zoom" in acc.Tags()["images"]  # 47 classes: the zoom is logged too
    assert acc.Images("report/confusion_matrix")[-1].step > 0  # at the run's last step, not 0


def test_baselines_write_the_same_report(data_dir, tmp_path):
    pytest.importorskip("sklearn")
    from hwr.commands.baselines import run_baselines

    out = tmp_path / "bl"
    cfg = make_config("baselines", ["data=english", "baselines.rf.n_estimators=20"], data_dir, out)
    results = run_baselines(cfg)
    assert set(results) == {"knn", "rf"}
    for method in ("knn", "rf"):
        saved = json.loads((out / method / "metrics.json").read_text())
        assert saved["model"] == method and saved["data"] == "english"
        assert saved["test/acc"] > 0.5  # 5 well-separated synthetic classes; chance is 0.2
        assert (out / method / "report" / "confusion_matrix.csv").is_file()
        names = _read(out / method / "report" / "per_class.csv", dicts=True)
        assert [r["class"] for r in names] == ["0", "A", "Z", "a", "b"]


def test_results_table_collects_metrics(tmp_path, capsys, caplog):
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        "results", Path(__file__).resolve().parents[1] / "scripts" / "results.py"
    )
    results = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(results)
    runs = {
        "a": {"data": "mnist", "model": "CNN", "test/acc": 0.99, "val/acc_best": 0.98, "epochs": 3},
        "b/knn": {"data": "english", "model": "knn", "test/acc": 0.7, "test/f1_macro": 0.69},
        "c": {"data": "mnist", "model": "MLP", "test/acc": 0.97, "overrides": ["model=mlp", "seed=2"]},
    }
    for sub, metrics in runs.items():
        (tmp_path / sub).mkdir(parents=True)
        (tmp_path / sub / "metrics.json").write_text(json.dumps(metrics))
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "metrics.json").write_text("{not json")
    results.main([str(tmp_path)])
    table = (tmp_path / "results.md").read_text().splitlines()
    assert [line.split(" | ")[1] for line in table[2:]] == ["CNN", "MLP", "knn"]  # by test/acc
    assert "model=mlp seed=2" in table[3] and "0.6900" in table[4]
    rows = _read(tmp_path / "results.csv", dicts=True)
    assert len(rows) == 3 and rows[0]["test/acc"] == "0.99"
    assert "skipping" in caplog.text and "broken" in caplog.text


def test_explore_writes_figures_summary_and_tensorboard(data_dir, tmp_path):
    from hwr.commands.explore import explore

    out = tmp_path / "explore"
    cfg = make_config(
        "explore", ["data=english", "explore.chars=[A,a]", "data.augment.shift=3"], data_dir, out
    )
    result = explore(cfg)
    for name in (
        "class_histogram",
        "samples_per_class",
        "chars",
        "mean_per_class",
        "mean_pixel_profile",
        "augmentation",
    ):
        assert (out / f"{name}.png").stat().st_size > 1000, name
    saved = json.loads((out / "summary.json").read_text())
    assert saved == json.loads(json.dumps(result))
    assert saved["classes"] == 5 and saved["class_names"] == ["0", "A", "Z", "a", "b"]
    assert sum(saved[p]["images"] for p in ("train", "val", "test")) == 40
    assert saved["augment"]["shift"] == 3.0
    acc = EventAccumulator(str(out / "tensorboard"), size_guidance={"images": 0})
    acc.Reload()
    assert "explore/augmentation" in acc.Tags()["images"]


def test_explore_unknown_char_is_a_clear_error(data_dir, tmp_path):
    from hwr.commands.explore import explore
    from hwr.errors import HwrError

    cfg = make_config("explore", ["data=mnist", "explore.chars=[5,S]"], data_dir, tmp_path / "x")
    with pytest.raises(HwrError, match=r"\['S'\] are not classes of mnist"):
        explore(cfg)


# --- the figures, drawn from made-up numbers (no training) ------------------------------------


def _scores(name: str, f1: float, support: int) -> dict:
    return {"class": name, "precision": f1, "recall": f1, "f1": f1, "support": support}


def _ticks(ax) -> list[str]:
    return [t.get_text() for t in ax.get_xticklabels()]


def test_per_class_figure_sorts_worst_first_and_shows_supports():
    rows = [_scores("0", 0.99, 980), _scores("1", 0.97, 1135), _scores("2", 0.985, 1032)]
    fig = plot_per_class(rows)
    ax = fig.axes[0]
    assert _ticks(ax) == ["1\n1135", "2\n1032", "0\n980"]  # worst F1 first, support under the name
    assert "worst F1 first" in ax.get_title()
    bottom, top = ax.get_ylim()
    assert 0.9 <= bottom < 0.97 and top >= 0.99  # MNIST-like scores: zoomed, not 0..1.05
    assert "not 0" in ax.get_ylabel()  # ... and the axis says where it starts

    many = [_scores(n, 1 - i / 100, 10 + i) for i, n in enumerate(CLASSES_62)]
    shown = [tick for ax in plot_per_class(many).axes for tick in _ticks(ax)]
    assert shown == [f"{r['class']}\n{r['support']}" for r in sorted(many, key=lambda r: r["f1"])]
    assert shown[0] == "z\n71"


def _matrix_with_one_error(c: int, per_class: int = 200) -> torch.Tensor:
    matrix = torch.diag(torch.full((c,), per_class))
    matrix[0, 0], matrix[0, 1] = per_class - 1, 1  # 1 error in 200 images of class 0
    return matrix


@pytest.mark.parametrize("names", [DIGITS, CLASSES_62], ids=["10", "62"])
def test_confusion_matrix_one_error_in_200_is_visible(names):
    im = plot_confusion(_matrix_with_one_error(len(names)), names).axes[0].images[0]
    rgba = im.to_rgba(im.get_array())  # the colours drawn, empty cells included
    error, empty, diagonal = rgba[0, 1, :3], rgba[0, 2, :3], rgba[1, 1, :3]
    assert abs(empty - 1).max() < 0.01  # an empty cell is white
    assert abs(error - empty).max() > 0.2  # one error in 200 is a visible colour, not near-white
    assert abs(error - diagonal).max() > 0.2  # and not the colour of a correct row


def test_class_ticks_are_upright_for_one_character_names():
    from hwr.commands.explore import class_histogram
    from hwr.data.sets import LabelledImages

    fig = plot_confusion(_matrix_with_one_error(62), CLASSES_62)
    ax = fig.axes[0]
    assert _ticks(ax)[:62] == CLASSES_62  # then the same names again along the top
    assert all(t.get_rotation() == 0 for t in ax.get_xticklabels() + ax.get_yticklabels())
    assert "l (small L)" in [t.get_text() for t in ax.get_yticklabels()]  # rows name look-alikes
    per_class = plot_per_class([_scores(n, 0.5, 3) for n in CLASSES_62])
    assert all(t.get_rotation() == 0 for ax in per_class.axes for t in ax.get_xticklabels())
    data = LabelledImages(torch.zeros(62, 4, 4, dtype=torch.uint8), torch.arange(62))
    histogram = class_histogram({"train": data}, CLASSES_62).axes[0]
    assert _ticks(histogram) == CLASSES_62
    assert all(t.get_rotation() == 0 for t in histogram.get_xticklabels())


def _outputs(names: list[str], true: str, pred: str, n: int = 40) -> Outputs:
    """`n` test images of class names[k % c], all right but one `true` image taken for `pred`."""
    targets = torch.arange(n) % len(names)
    targets[0] = names.index(true)
    probs = torch.nn.functional.one_hot(targets, len(names)).float() * 0.9 + 0.1 / len(names)
    probs[0] = probs[0].roll(names.index(pred) - names.index(true))
    return Outputs(probs, targets, torch.zeros(1, 1, 8, 8), torch.tensor([0]))


def test_mistake_captions_and_pairs_name_lookalikes(capsys):
    from hwr.evaluation.names import lookalike_names

    fig = plot_mistakes(_outputs(CLASSES_62, "I", "l"), CLASSES_62)
    caption = fig.axes[0].get_title()
    assert "I (capital i)" in caption and "l (small L)" in caption and "p=0.9" in caption
    assert mistake_caption("1", "7", 0.5, lookalike_names(DIGITS)) == "1 → 7 (p=0.50)"  # digits: bare

    rich.print(pairs_table([{"true": "I", "predicted": "l", "count": 3, "share": 0.1}], CLASSES_62))
    out = capsys.readouterr().out
    assert "capital i" in out and "small L" in out
    rich.print(pairs_table([{"true": "1", "predicted": "7", "count": 3, "share": 0.1}], DIGITS))
    assert "(one)" not in capsys.readouterr().out


def test_write_report_logs_images_at_the_given_step(tmp_path):
    from lightning.pytorch.loggers import TensorBoardLogger

    names = CLASSES_62[:25]  # > 20 classes: the zoom on the most-confused ones is written too
    logger = TensorBoardLogger(str(tmp_path), name="tb", version="")
    write_report(_outputs(names, "I", "1"), names, Folder(tmp_path / "report"), [logger], step=37)
    acc = EventAccumulator(str(tmp_path / "tb"), size_guidance={"images": 0})
    acc.Reload()
    for tag in ("confusion_matrix", "confusion_zoom", "per_class", "misclassified"):
        (event,) = acc.Images(f"report/{tag}")
        assert event.step == 37, tag
        assert (tmp_path / "report" / f"{tag}.png").is_file()
    assert acc.Images("report/confusion_matrix")[0].width > 800  # 25 classes at full size
    rows = _read(tmp_path / "report" / "per_class.csv", dicts=True)
    assert [r["class"] for r in rows] == names  # the CSV keeps class order and bare labels
    assert _read(tmp_path / "report" / "confusions.csv", dicts=True)[0]["true"] == "I"


def test_explore_augmentation_figure_says_when_there_is_none():
    from hwr.commands.explore import augmentation_figure
    from hwr.data.augment import AugmentConfig

    sample, gen = torch.randint(0, 255, (16, 28, 28), dtype=torch.uint8), torch.Generator().manual_seed(0)
    off = augmentation_figure(sample, AugmentConfig(), gen)
    assert "no augmentation configured" in off.get_suptitle()
    assert sum(len(ax.images) for ax in off.axes) == 16  # one row: no identical "after" row
    on = augmentation_figure(sample, AugmentConfig(shift=3), gen)
    assert "shift ±3 px" in on.get_suptitle() and sum(len(ax.images) for ax in on.axes) == 32
