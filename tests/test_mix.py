"""data=mix, data=idx, data=folder, balanced draws and case-folded metrics, on tiny fixtures."""

from __future__ import annotations

import json
import string

import numpy as np
import pytest
import torch
from helpers import ENGLISH_CLASSES, SMALL_CNN, glyphs, make_config, write_english

from hwr.data.emnist import CLASS_NAMES, EMNISTDataModule
from hwr.data.english import EnglishDataModule
from hwr.data.folder import FolderDataModule
from hwr.data.idx import write_idx
from hwr.data.idx_set import IdxDataModule
from hwr.data.loaders import ResidentBatches
from hwr.data.mix import MixDataModule
from hwr.data.mnist import MNISTDataModule
from hwr.data.sets import balanced_weights
from hwr.errors import HwrError
from hwr.evaluation.casefold import fold_error_share, fold_groups, fold_members, grouped_accuracy
from hwr.inference.checkpoint import TrainedOn
from hwr.validation import validate


def mix_of(data_dir, tmp_path, **kwargs) -> MixDataModule:
    sources = {
        "emnist": {"_target_": "hwr.data.emnist.EMNISTDataModule", "split": "balanced"},
        "english": {"_target_": "hwr.data.english.EnglishDataModule", "decode_workers": 1},
    }
    return MixDataModule(sources, data_dir=data_dir, cache_dir=tmp_path / "cache", **kwargs)


def test_mix_aligns_classes_by_name_and_keeps_each_split(data_dir, tmp_path):
    mix = mix_of(data_dir, tmp_path)
    mix.setup()
    emnist, english = mix.sources["emnist"], mix.sources["english"]
    # the union, sorted (the English fixture's 0 A Z a b are all among Balanced's 47)
    assert mix.class_names == sorted(set(CLASS_NAMES["balanced"]) | set(ENGLISH_CLASSES))
    spans = dict((name, (a, b)) for name, a, b in mix.source_spans("test"))
    assert spans["emnist"] == (0, len(emnist.test_set))
    assert spans["english"][1] - spans["english"][0] == len(english.test_set)
    # an English 'Z' keeps its name in the mix's numbering
    a, b = spans["english"]
    names = [mix.class_names[i] for i in mix.test_set.labels[a:b].tolist()]
    assert names == [english.class_names[i] for i in english.test_set.labels.tolist()]
    assert torch.equal(mix.test_set.images[a:b], english.test_set.images)
    assert len(mix.val_set) == len(emnist.val_set) + len(english.val_set)
    assert mix.mean is not None and 0 < mix.mean < 1  # measured on the mixed pool


def test_mix_weights_set_each_sources_share_of_the_draws(data_dir, tmp_path):
    mix = mix_of(data_dir, tmp_path, weights={"emnist": 1, "english": 3})
    mix.setup("fit")
    weights = mix.sample_weights()
    (_, a, b), (_, c, d) = mix.source_spans("train")
    share = weights[c:d].sum() / weights.sum()
    assert share == pytest.approx(0.75)
    draws = ResidentBatches(
        mix.train_set.images, mix.train_set.labels, 64, True, True, seed=0, weights=weights
    )
    from_english = sum(int(((i >= c) & (i < d)).sum()) for i in [draws._positions()])
    assert 0.65 < from_english / len(mix.train_set) < 0.85
    with pytest.raises(HwrError, match="not sources"):
        mix_of(data_dir, tmp_path, weights={"emnlst": 1})


def test_mix_reframes_mnist_and_rebuilds_from_its_record(data_dir, tmp_path):
    sources = {"mnist": MNISTDataModule(data_dir), "emnist": EMNISTDataModule(data_dir, split="balanced")}
    mix = MixDataModule(sources, data_dir=data_dir)
    mix.setup()
    mnist = mix.test_set.images[: len(mix.sources["mnist"].test_set)]
    # MNIST's 20 px box became the mix's frame less 2 px: ink reaches row 2 or 25 in every image
    rows = (mnist > 60).any(dim=2)
    assert bool((rows[:, 2] | rows[:, 25]).all())
    record = TrainedOn.from_record(mix.describe())
    again = record.datamodule(data_dir)
    again.setup("test")
    assert again.class_names == mix.class_names and torch.equal(again.test_set.labels, mix.test_set.labels)
    assert again.mean == mix.mean


def test_balanced_weights_draw_every_class_equally():
    labels = torch.tensor([0] * 90 + [1] * 10)
    weights = balanced_weights(labels, 2)
    assert weights[labels == 0].sum() == pytest.approx(weights[labels == 1].sum())
    draws = ResidentBatches(torch.zeros(100, 2, 2), labels, 10, True, True, seed=1, weights=weights.float())
    drawn = torch.cat([y for _, y in draws])
    assert 0.35 < float((drawn == 1).float().mean()) < 0.65  # 10% of the data, ~half the draws


def test_idx_set_reads_any_pair_with_class_names(tmp_path):
    for part, n in (("train", 200), ("test", 50)):
        images, labels = glyphs(n, 4, seed=n)
        write_idx(tmp_path / f"set/{part}-images.gz", 255 - images)  # dark ink on light
        write_idx(tmp_path / f"set/{part}-labels.gz", labels + 1)  # numbered from 1
    (tmp_path / "classes.txt").write_text("o\nki\nsu\ntsu\n")
    files = {f"{p}_{k}": f"set/{p}-{k}.gz" for p in ("train", "test") for k in ("images", "labels")}
    dm = IdxDataModule(tmp_path, **files, classes="classes.txt", label_offset=1, invert=True)
    dm.setup()
    assert dm.class_names == ["o", "ki", "su", "tsu"] and int(dm.test_set.labels.max()) == 3
    assert dm.test_set.images.float().mean() < 80  # white ink on black again
    assert 0 < dm.mean < 0.5 and dm.std > 0  # measured
    # and as a source of a mix, beside a folder set: classes by name, 4 + 5
    folder = {"_target_": "hwr.data.folder.FolderDataModule", "folder": "english", "decode_workers": 1}
    write_english(tmp_path / "english")
    mix = MixDataModule({"kana": dm, "latin": folder}, data_dir=tmp_path, cache_dir=tmp_path / "c")
    mix.setup("test")
    assert mix.class_names == sorted(["o", "ki", "su", "tsu", *ENGLISH_CLASSES])
    with pytest.raises(HwrError, match=r"data=idx needs the four IDX files; set data.test_labels"):
        IdxDataModule(tmp_path, **{**files, "test_labels": None})
    with pytest.raises(HwrError, match="does not exist"):
        IdxDataModule(tmp_path, **{**files, "train_images": "nope.gz"}).setup()


def test_folder_set_with_its_own_test_folder_and_csv(tmp_path):
    for part in ("train", "test"):
        write_english(tmp_path / part, layout="folders", writers=4)
    dm = FolderDataModule(
        tmp_path,
        folder="train",
        test_folder="test",
        val_fraction=0.25,
        decode_workers=1,
        cache_dir=tmp_path / "c",
    )
    dm.setup()
    assert dm.class_names == sorted(f"class_{c}" for c in ENGLISH_CLASSES)  # the folder names
    assert len(dm.test_set) == 20 and len(dm.train_set) + len(dm.val_set) == 20
    write_english(tmp_path / "kaggle")
    (tmp_path / "kaggle" / "english.csv").rename(tmp_path / "kaggle" / "labels.csv")
    assert FolderDataModule(tmp_path, folder="kaggle", decode_workers=1).files.labels[0] in ENGLISH_CLASSES
    with pytest.raises(HwrError, match="data=folder needs data.folder="):
        FolderDataModule(tmp_path)
    with pytest.raises(HwrError, match="no image folder at"):
        FolderDataModule(tmp_path, folder="nowhere").setup()


def test_test_on_all_tests_every_image(data_dir, tmp_path):
    dm = EnglishDataModule(data_dir, test_on="all", cache_dir=tmp_path / "c", decode_workers=1)
    dm.setup("test")
    assert len(dm.test_set) == len(dm.files.paths)
    with pytest.raises(HwrError, match="data.test_on=everything must be one of test, all"):
        validate(make_config("train", ["data=english", "data.test_on=everything"], data_dir, tmp_path / "o"))


def test_fold_groups_merge_case_pairs_and_lookalikes():
    byclass = CLASS_NAMES["byclass"]
    members = {frozenset(m) for m in fold_members(byclass)}
    assert frozenset("cC") in members and frozenset("0Oo") in members and frozenset("1IilL") in members
    # 12 case pairs, o/O/0, and i/I/1/l/L joined through I and l: a and A stay apart
    assert len(members) == 14 and not any("a" in m for m in members)
    assert fold_members(list(string.digits)) == []
    groups = fold_groups(CLASS_NAMES["balanced"])  # cases merged already: 0/O and 1/I remain
    names = CLASS_NAMES["balanced"]
    assert groups[names.index("0")] == groups[names.index("O")] != groups[names.index("Q")]
    # 3 right, a case error (s->S) and a shape error (a->d)
    classes = list("asSd")
    preds, targets = torch.tensor([0, 1, 2, 2, 3]), torch.tensor([0, 1, 2, 1, 0])
    scores = grouped_accuracy(preds, targets, classes, "test", [("x", 0, 2), ("y", 2, 5)])
    assert scores["test/acc_casefold"] == pytest.approx(4 / 5)
    assert scores["test/x/acc"] == 1.0 and scores["test/y/acc"] == pytest.approx(1 / 3)
    matrix = torch.zeros(4, 4, dtype=torch.long)
    matrix[1, 2], matrix[0, 3] = 3, 1
    assert fold_error_share(matrix, classes) == pytest.approx(0.75)


def test_a_mixed_run_reports_every_source_and_case_folded_accuracy(data_dir, tmp_path):
    from hwr.commands.train import train

    out = tmp_path / "run"
    overrides = [
        "data=mix",
        "data.sources.emnist.split=balanced",
        "data.sources.english.decode_workers=1",
        "data.balance=true",
        "data.augment.thickness=0.5",
        "data.augment.lowres=0.3",
        "model=cnn",
        *SMALL_CNN,
        "trainer.max_epochs=2",
    ]
    metrics = train(make_config("train", overrides, data_dir, out))
    for key in ("test/emnist/acc", "test/english/acc", "val/english/acc", "test/acc_casefold"):
        assert 0 <= metrics[key] <= 1, key
    assert metrics["test/acc_casefold"] >= metrics["test/acc"]
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["test/english/acc"] == metrics["test/english/acc"]
    rows = (out / "report" / "sources.csv").read_text().splitlines()
    assert rows[0] == "source,images,acc,acc_casefold" and rows[1].startswith("emnist,")
    # the checkpoint tests again through eval.py's path, on English alone (classes by name)
    from hwr.commands.eval import evaluate

    ckpt = next((out / "checkpoints").glob("best*.ckpt"))
    eval_cfg = make_config(
        "eval", [f"ckpt_path={ckpt}", "data=english", "data.test_on=all"], data_dir, tmp_path / "ev"
    )
    result = evaluate(eval_cfg)
    assert result["test/acc"] >= 0 and (tmp_path / "ev" / "report" / "per_class.csv").is_file()
    assert np.isfinite(result["test/acc_casefold"])
    # and it predicts and exports like any other checkpoint
    from PIL import Image

    from hwr.inference.export import export_model
    from hwr.inference.exported import ExportedModel
    from hwr.inference.model import TrainedModel

    page = Image.new("L", (60, 80), 255)
    page.paste(0, (25, 10, 35, 70))  # a dark bar on white paper
    guess = TrainedModel.load(ckpt, device="cpu").predict([page], top_k=3)[0]
    exported = export_model(ckpt, "torchscript", tmp_path / "mix.pt")
    assert ExportedModel.load(exported["path"]).predict([page], top_k=3)[0][0][0] == guess.label
