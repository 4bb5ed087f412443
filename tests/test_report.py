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
from hwr.evaluation.confusion import plot_confusion, plot_confusion_group, plot_confusion_zoom
from hwr.evaluation.curves import EpochHistory, plot_learning_curves
from hwr.evaluation.figures import TestOutputs as Outputs  # not collected as a test class
from hwr.evaluation.figures import class_groups, mistake_caption, plot_mistakes, plot_per_class
from hwr.evaluation.model_card import CardFacts, class_summary, model_card
from hwr.evaluation.report import confused_pairs, write_report
from hwr.files import Folder
from hwr.runs.tables import pairs_table

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
    for name in ("confusion_matrix", "per_class", "misclassified", "learning_curves", "confusion_digits"):
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

    card = (folder / "MODEL_CARD.md").read_text()
    assert "# Model card: MLP on emnist" in card
    assert "train 253, val 47, test 100" in card and "Classes (47): 0-9, A-Z, a, b, d" in card
    assert f"| test accuracy (`test/acc`) | {100 * saved['test/acc']:.2f}% |" in card
    top = pairs[0]  # the most-confused pair is the card's first confusion row
    rows = [line for line in card.splitlines() if line.startswith(f"| {top['true']}") and "%" in line]
    assert rows and f"| {top['count']} |" in rows[0]
    assert "carved" not in card.lower()  # the fixture is not carved EMNIST


def test_export_writes_the_runs_model_card_beside_the_model(report_run, tmp_path):
    from hwr.inference.export import export_model

    out, _ = report_run
    export_model(out / "checkpoints" / "best.ckpt", "onnx", tmp_path / "model.onnx")
    card = (tmp_path / "MODEL_CARD.md").read_text()
    assert card.startswith((out / "report" / "MODEL_CARD.md").read_text().rstrip())  # the run's card
    assert "## Exported as" in card and "`model.onnx` (onnx): float32 [N, 1, 28, 28]" in card


def test_report_images_in_tensorboard(report_run):
    """47 classes: TensorBoard gets the card-size views; the full-size ones stay in report/."""
    out, _ = report_run
    acc = EventAccumulator(str(out / "tensorboard"), size_guidance={"images": 0})
    acc.Reload()
    groups = ("digits", "capitals", "small_letters")
    assert set(acc.Tags()["images"]) == {
        "report/confusion_zoom",
        "report/misclassified",
        "report/learning_curves",
        *(f"report/{kind}_{g}" for kind in ("confusion", "per_class") for g in groups),
    }
    for tag in acc.Tags()["images"]:
        image = acc.Images(tag)[-1]
        assert image.step > 0, tag  # at the run's last step, not 0
        assert image.width <= 700, tag  # a ~340 px card shows it at half size or more


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
    results = _results_script()
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
    results.main([str(tmp_path), "--output", str(tmp_path.parent / "results.md")])
    table = (tmp_path.parent / "results.md").read_text().splitlines()
    assert [line.split(" | ")[1] for line in table[2:]] == ["CNN", "MLP", "knn"]  # by test/acc
    assert "model=mlp seed=2" in table[3] and "0.6900" in table[4]
    assert "CNN" in capsys.readouterr().out  # printed too
    results.main([str(tmp_path), "--output", str(tmp_path.parent / "results.csv")])
    rows = _read(tmp_path.parent / "results.csv", dicts=True)
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
    assert "worst F1 first" in fig.get_suptitle()
    bottom, top = ax.get_ylim()
    assert 0.9 <= bottom < 0.97 and top >= 0.99  # MNIST-like scores: zoomed, not 0..1.05
    assert "not 0" in ax.get_ylabel()  # ... and the axis says where it starts

    many = [_scores(n, 1 - i / 100, 10 + i) for i, n in enumerate(CLASSES_62)]
    shown = [tick for ax in plot_per_class(many).axes for tick in _ticks(ax)]
    by_group = [
        sorted((many[i] for i in index), key=lambda r: r["f1"]) for _, index in class_groups(CLASSES_62)
    ]
    assert shown == [f"{r['class']}\n{r['support']}" for group in by_group for r in group]
    assert shown[0] == "9\n19" and shown[10] == "Z\n45"  # each group's worst first


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

    names = CLASSES_62[:25]  # > 20 classes: split into digits and capitals, and zoomed
    logger = TensorBoardLogger(str(tmp_path), name="tb", version="")
    write_report(_outputs(names, "I", "1"), names, Folder(tmp_path / "report"), [logger], step=37)
    acc = EventAccumulator(str(tmp_path / "tb"), size_guidance={"images": 0})
    acc.Reload()
    for tag in (
        "confusion_digits",
        "confusion_capitals",
        "confusion_zoom",
        "per_class_digits",
        "misclassified",
    ):
        (event,) = acc.Images(f"report/{tag}")
        assert event.step == 37, tag
        assert (tmp_path / "report" / f"{tag}.png").is_file()
    assert "report/confusion_matrix" not in acc.Tags()["images"]  # full size: a file only
    assert (tmp_path / "report" / "confusion_matrix.png").is_file()
    assert "report/learning_curves" not in acc.Tags()["images"]  # no training epochs given
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


# --- card-size views, learning curves, model card ----------------------------------------------


def test_62_classes_are_shown_in_digit_capital_and_small_letter_groups():
    groups = class_groups(CLASSES_62)
    assert [(label, len(index)) for label, index in groups] == [
        ("digits", 10), ("capitals", 26), ("small letters", 26),
    ]  # fmt: skip
    assert class_groups(DIGITS) == [("all classes", list(range(10)))]  # small lists stay whole
    words = [f"w{i}" for i in range(30)]  # no characters: runs of at most 26 in class order
    assert [len(index) for _, index in class_groups(words)] == [26, 4]


def _drawn_rows(fig) -> list[float]:
    """Row sums of the shares a confusion view draws (masked empty cells count 0)."""
    return fig.axes[0].images[0].get_array().filled(0).sum(axis=1).tolist()


def test_confusion_views_keep_every_row_whole_with_an_other_column():
    names = CLASSES_62
    matrix = torch.diag(torch.full((62,), 90))
    o, zero, small_o = names.index("O"), names.index("0"), names.index("o")
    matrix[zero, zero], matrix[zero, o], matrix[zero, names.index("Q")] = 80, 6, 4  # 0 -> O and Q
    matrix[o, o], matrix[o, small_o] = 85, 5
    pairs = confused_pairs(matrix, names)
    zoom = plot_confusion_zoom(matrix, names, pairs)
    assert _ticks(zoom.axes[0])[-1] == "other"
    assert _drawn_rows(zoom) == pytest.approx([1.0] * len(_drawn_rows(zoom)))  # 0's row: 4 images in "other"
    digits = plot_confusion_group(matrix, names, "digits", list(range(10)))
    assert _ticks(digits.axes[0]) == [*DIGITS, "other"]
    assert _drawn_rows(digits) == pytest.approx([1.0] * 10)  # 0 -> O and Q are "other" here
    assert digits.axes[0].images[0].get_array()[0, -1] == pytest.approx(10 / 90)


def test_per_class_panels_share_one_y_axis():
    rows = [_scores(n, 0.99 if n.isdigit() else 0.8, 100) for n in CLASSES_62]  # digits all high
    fig = plot_per_class(rows)
    panels = [ax for ax in fig.axes if ax.get_xticklabels()]
    assert [ax.get_title(loc="left") for ax in panels] == ["digits", "capitals", "small letters"]
    assert len({ax.get_ylim() for ax in panels}) == 1  # the digits panel does not zoom on its own


def test_card_size_mistakes_are_few_and_large():
    fig = plot_mistakes(_outputs(CLASSES_62, "I", "l"), CLASSES_62, card=True)
    titled = [ax for ax in fig.axes if ax.get_title()]
    assert len(titled) == 1 and titled[0].title.get_fontsize() >= 11
    assert titled[0].get_title() == "I (capital i) →\nl (small L) 0.90"
    assert fig.get_figwidth() * 110 <= 500  # pixels at the report's dpi: a card shrinks it little


def test_learning_curves_pair_each_epochs_training_and_validation():
    history = EpochHistory()
    assert plot_learning_curves(history) is None  # nothing trained: no figure
    for epoch, (val, fit) in enumerate([(0.5, 0.4), (0.7, 0.6), (0.65, 0.8)]):
        history.fill_train({"train/acc": 0.0})  # the previous epoch's row is already filled: ignored
        history.end_epoch(epoch, {"val/acc": val, "val/loss": 1 - val})
        history.fill_train({"train/acc": fit, "train/loss": 1 - fit})
    assert history.series("val/acc") == ([1.0, 2.0, 3.0], [0.5, 0.7, 0.65])
    assert history.series("train/acc") == ([1.0, 2.0, 3.0], [0.4, 0.6, 0.8])
    fig = plot_learning_curves(history)
    loss, acc = fig.axes
    assert [line.get_label() for line in acc.get_lines()] == ["training", "validation"]
    assert any(t.get_text() == "best 70.00%" for t in acc.texts)
    assert loss.get_ylabel() == "loss" and acc.get_xlabel() == "epoch"


def test_model_card_says_what_the_model_is_and_what_it_confuses():
    facts = CardFacts(
        network="CNN",
        data={
            "name": "emnist",
            "class_path": "hwr.data.emnist.EMNISTDataModule",
            "classes": CLASSES_62,
            "split": {"split": "byclass"},
            "input_shape": [1, 28, 28],
        },  # fmt: skip
        net={"_target_": "hwr.models.cnn.CNN", "channels": [32, 64]},
        num_params=1234567,
        splits={"train": 84000, "val": 9300, "test": 23264},
        carved=True,
        command="hwr train experiment=emnist_cnn",
        metrics={"test/acc": 0.8572, "test/acc_casefold": 0.9546, "val/acc_best": 0.853, "epochs": 2},
        pairs=[{"true": "O", "predicted": "0", "count": 120, "share": 0.31}],
    )
    card = model_card(facts)
    assert "`CNN` (channels=[32, 64]), 1,234,567 parameters" in card
    assert "train 84,000, val 9,300, test 23,264" in card and "Classes (62): 0-9, A-Z, a-z." in card
    assert "**Carved data.**" in card and "official EMNIST ByClass **test** split" in card
    assert "```\nhwr train experiment=emnist_cnn\n```" in card
    assert "| test accuracy (`test/acc`) | 85.72% |" in card and "| epochs (`epochs`) | 2 |" in card
    assert "| O (capital o) | 0 (zero) | 120 | 31.0% |" in card
    assert "## Limits" in card and "carved EMNIST" in card
    assert class_summary(["0", "1", "cat"]) == "0, 1, cat"


def test_model_card_of_a_mix_names_each_source_and_its_weight():
    emnist = {"class_path": "hwr.data.emnist.EMNISTDataModule", "split": {"seed": 42, "split": "byclass"}}
    english = {"class_path": "hwr.data.english.EnglishDataModule", "split": {"test_fraction": 0.25}}
    english["split"]["csv"] = None  # unset settings are left out
    split = {"sources": {"emnist": emnist, "english": english}, "weights": {"emnist": 1.0, "english": 2.0}}
    data = {"name": "mix", "class_path": "hwr.data.mix.MixDataModule", "classes": CLASSES_62}
    facts = CardFacts(network="CNN", data=data | {"split": split | {"image_size": 28}}, net={})
    card = model_card(facts)
    mix = "- Dataset: `mix` (`hwr.data.mix.MixDataModule`), drawn emnist 1 : english 2; image_size=28:"
    assert mix in card
    assert "  - `emnist`: `hwr.data.emnist.EMNISTDataModule`, split settings: seed=42, split=byclass." in card
    assert "  - `english`: `hwr.data.english.EnglishDataModule`, split settings: test_fraction=0.25." in card
    assert "{'" not in card  # no dict printed as Python writes it


def _results_script():
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        "results", Path(__file__).resolve().parents[1] / "scripts" / "results.py"
    )
    results = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(results)
    return results


def test_results_script_leaves_the_folder_it_reads_alone(tmp_path, capsys):
    results = _results_script()
    (tmp_path / "runs" / "a").mkdir(parents=True)
    (tmp_path / "runs" / "a" / "metrics.json").write_text(json.dumps({"model": "CNN", "test/acc": 0.9}))
    before = sorted(p.name for p in (tmp_path / "runs").rglob("*"))
    results.main([str(tmp_path / "runs")])
    assert "CNN" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "runs").rglob("*")) == before  # nothing written
    with pytest.raises(SystemExit):
        results.main([str(tmp_path / "runs"), "--output", str(tmp_path / "table.txt")])
    assert "must end in .md" in capsys.readouterr().err
