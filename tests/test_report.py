"""The evaluation report written after every test (hwr.report)."""

from __future__ import annotations

import csv
import json

import pytest
import torch
from conftest import make_config
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from hwr.report import confused_pairs
from hwr.train import train


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


def test_baselines_write_the_same_report(data_dir, tmp_path):
    pytest.importorskip("sklearn")
    from hwr.baselines import run_baselines

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


def test_results_table_collects_metrics(tmp_path, capsys):
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
    assert "skipping" in capsys.readouterr().out


def test_explore_writes_figures_summary_and_tensorboard(data_dir, tmp_path):
    from hwr.explore import explore

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
    from hwr.errors import HwrError
    from hwr.explore import explore

    cfg = make_config("explore", ["data=mnist", "explore.chars=[5,S]"], data_dir, tmp_path / "x")
    with pytest.raises(HwrError, match=r"\['S'\] are not classes of mnist"):
        explore(cfg)
