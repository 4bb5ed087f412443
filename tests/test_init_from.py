"""`init_from=<checkpoint>`: fine-tuning starts from another run's weights; other classes get
their output rows by name; a different network is one line saying how to match it."""

from __future__ import annotations

import logging

import pytest
import torch
from helpers import make_config
from hydra.utils import instantiate

from hwr.commands.train import train
from hwr.errors import HwrError
from hwr.inference.checkpoint import NET_PREFIX, hyper_parameters, read_checkpoint
from hwr.training.init_from import init_from

SMALL = ["model=cnn", "model.net.channels=[8,16]", "model.net.head=[32]", "data.batch_size=8"]


def build(net_cfg: dict, classes: list[str]) -> torch.nn.Module:
    return instantiate(net_cfg, input_shape=[1, 28, 28], num_classes=len(classes), _convert_="all")


def test_other_classes_keep_their_rows_by_name_and_the_rest_is_copied(english_run):
    out, _ = english_run
    path = out / "checkpoints" / "best.ckpt"
    ckpt = read_checkpoint(path)
    hparams = hyper_parameters(ckpt, path)
    theirs = {k[len(NET_PREFIX) :]: v for k, v in ckpt["state_dict"].items() if k.startswith(NET_PREFIX)}
    assert hparams["class_names"] == list("0AZab")

    classes = ["b", "0", "x"]  # two it knows (in another order) and one it never saw
    net = build(hparams["net"], classes)
    fresh = {k: v.clone() for k, v in net.state_dict().items()}
    said = init_from(net, ckpt, path, hparams["net"], classes)
    assert "2 of this set's 3 classes known to it, 1 start fresh" in said
    state = net.state_dict()
    weight, bias = list(state)[-2:]
    for key in list(state)[:-2]:
        assert torch.equal(state[key], theirs[key]), key
    for key in (weight, bias):
        assert torch.equal(state[key][0], theirs[key][4])  # b
        assert torch.equal(state[key][1], theirs[key][0])  # 0
        assert torch.equal(state[key][2], fresh[key][2])  # x: as initialised

    same = build(hparams["net"], list("0AZab"))
    assert "the same 5 classes" in init_from(same, ckpt, path, hparams["net"], list("0AZab"))
    assert all(torch.equal(v, theirs[k]) for k, v in same.state_dict().items())


def test_another_network_is_one_line_naming_the_settings_to_add(english_run):
    out, _ = english_run
    path = out / "checkpoints" / "best.ckpt"
    net_cfg = dict(hyper_parameters(read_checkpoint(path), path)["net"], channels=[16, 32])
    with pytest.raises(HwrError) as caught:
        init_from(build(net_cfg, list("0AZab")), read_checkpoint(path), path, net_cfg, list("0AZab"))
    assert "add model.net.channels=[8,16]" in str(caught.value) and "\n" not in str(caught.value)


def test_fine_tuning_starts_where_the_checkpoint_left_off(english_run, data_dir, tmp_path, caplog):
    """One epoch at a learning rate too small to move the weights: from the checkpoint the run
    reads the set as the checkpoint did; from scratch it stays near chance."""
    out, metrics = english_run
    still = [*SMALL, "data=english", "trainer.max_epochs=1", "model.optimizer.lr=1e-7", "test=false"]
    with caplog.at_level(logging.INFO, logger="hwr"):
        tuned = train(
            make_config("train", [*still, f"init_from={out}/checkpoints/best.ckpt"], data_dir, tmp_path / "t")
        )
    scratch = train(make_config("train", still, data_dir, tmp_path / "s"))
    assert "weights from" in caplog.text and "the same 5 classes" in caplog.text
    assert tuned["val/acc_best"] >= metrics["val/acc_best"] - 0.05
    assert tuned["val/acc_best"] > scratch["val/acc_best"] + 0.3


def test_init_from_with_ckpt_path_is_refused(data_dir, tmp_path):
    cfg = make_config(
        "train", [*SMALL, "data=english", "init_from=a.ckpt", "ckpt_path=b.ckpt"], data_dir, tmp_path
    )
    with pytest.raises(HwrError, match="init_from= starts a new training .* give one of them"):
        train(cfg)


def test_train_per_class_keeps_k_images_of_each_class_and_the_validation_split(data_dir, tmp_path):
    from hwr.data.base import build_datamodule

    cfg = make_config("train", [*SMALL, "data=english"], data_dir, tmp_path)
    whole = build_datamodule(cfg.data)
    whole.setup("fit")
    few = build_datamodule(cfg.data, train_per_class=2)
    few.setup("fit")
    assert torch.bincount(few.train_set.labels).tolist() == [2] * 5
    assert torch.equal(few.val_set.images, whole.val_set.images)  # cut from the whole pool first
    train = {bytes(x.numpy()) for x in whole.train_set.images}
    assert all(bytes(x.numpy()) in train for x in few.train_set.images)


def test_a_fine_tuning_records_its_starting_weights_on_the_same_test_split(english_run, data_dir, tmp_path):
    """start/acc is the checkpoint's own test accuracy: the same weights, split and scaling."""
    out, metrics = english_run
    still = [*SMALL, "data=english", "trainer.max_epochs=1", "model.optimizer.lr=1e-8", "report=false"]
    tuned = train(
        make_config("train", [*still, f"init_from={out}/checkpoints/best.ckpt"], data_dir, tmp_path / "t")
    )
    assert tuned["start/acc"] == pytest.approx(metrics["test/acc"], abs=1e-6)
    assert tuned["test/acc"] == pytest.approx(metrics["test/acc"], abs=0.05)
