"""Speed switches on the tiny fixtures: device-resident data, channels_last, torch.compile,
bf16, and the benchmark's extra arms and time-to-accuracy part in smoke mode."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import hydra
import lightning as L
import pytest
import torch
from conftest import make_config
from torch.utils.data import DataLoader, DistributedSampler

from hwr.checkpoint import datamodule_config, load_checkpoint
from hwr.data.base import IndexedImages, LabelledImages, keep_batch
from hwr.data.mnist import MNISTDataModule
from hwr.errors import HwrError
from hwr.train import build_model, train

ROOT = Path(__file__).resolve().parents[1]
SMALL_CNN = ["model.net.channels=[8,16]", "model.net.head=[32]"]
SMALL_CNN_ARGS = ["--extra", *SMALL_CNN]  # scripts/benchmark.py: overrides for every run


def quiet_trainer(tmp_path: Path, **kwargs) -> L.Trainer:
    """A CPU trainer without logger, progress bar or model summary."""
    options = dict(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False)
    return L.Trainer(default_root_dir=tmp_path, enable_model_summary=False, **options, **kwargs)


def fixture_parts(data_dir: Path, tmp_path: Path, overrides: list[str]):
    """(config, DataModule, Classifier) of train.yaml with `overrides` on the fixtures."""
    cfg = make_config(
        "train", ["model=cnn", *SMALL_CNN, "data.batch_size=32", *overrides], data_dir, tmp_path
    )
    dm = hydra.utils.instantiate(cfg.data)
    return cfg, dm, build_model(cfg.model, dm)


def test_on_device_true_keeps_the_data_on_the_trainer_device(data_dir, tmp_path):
    _cfg, dm, model = fixture_parts(data_dir, tmp_path, ["data.on_device=true"])
    trainer = quiet_trainer(tmp_path, fast_dev_run=True)
    trainer.fit(model, datamodule=dm)
    trainer.test(model, datamodule=dm)
    root = trainer.strategy.root_device
    assert dm.resident == root
    for data in (dm.train_set, dm.val_set, dm.test_set):
        assert data.images.device == root and data.labels.device == root
    loader = dm.train_dataloader()
    assert loader.num_workers == 0 and not loader.pin_memory
    assert dm.hparams.on_device is True  # parsed, and dropped by eval.py as a machine setting
    assert "on_device" not in datamodule_config(dict(dm.hparams), str(data_dir))


def test_on_device_gives_the_same_run(data_dir, tmp_path):
    """Same metrics keys and, on a CPU trainer, the same numbers as host-memory data."""
    runs = {}
    for value in ("true", "false"):
        cfg = make_config(
            "train", ["debug=fdr", "model=mlp", f"data.on_device={value}"], data_dir, tmp_path / value
        )
        runs[value] = train(cfg)
    assert runs["true"].keys() == runs["false"].keys()
    assert runs["true"]["test/acc"] == runs["false"]["test/acc"]


def test_on_device_without_a_trainer_stays_on_the_host(data_dir):
    dm = MNISTDataModule(data_dir, on_device=True)
    dm.setup("fit")
    assert dm.resident is None and dm.train_set.images.device.type == "cpu"


def test_on_device_ignores_workers_with_one_warning(data_dir, tmp_path):
    _cfg, dm, model = fixture_parts(data_dir, tmp_path, ["data.on_device=true", "data.num_workers=2"])
    with pytest.warns(UserWarning, match="num_workers=2 is ignored"):
        quiet_trainer(tmp_path, fast_dev_run=True).fit(model, datamodule=dm)
    assert dm.train_dataloader().num_workers == 0


@pytest.mark.parametrize("value", ["gpu", "yes", 2])
def test_bad_on_device_value_is_one_clear_error(data_dir, value):
    with pytest.raises(HwrError, match=r"data.on_device=.* is not allowed; use auto, true or false"):
        MNISTDataModule(data_dir, on_device=value)


def test_indexed_images_serve_a_distributed_sampler():
    """DDP shards by sampler: each rank's batch is one index into the (resident) tensors."""
    data = LabelledImages(torch.arange(40, dtype=torch.uint8).view(10, 2, 2), torch.arange(10))
    dataset = IndexedImages(data)
    seen = []
    for rank in (0, 1):
        sampler = DistributedSampler(dataset, num_replicas=2, rank=rank, shuffle=True, seed=3)
        for images, labels in DataLoader(dataset, batch_size=2, sampler=sampler, collate_fn=keep_batch):
            assert torch.equal(images[:, 0, 0], labels.to(torch.uint8) * 4)  # image i starts at 4 i
            seen += labels.tolist()
    assert sorted(seen) == list(range(10))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_indexed_images_index_on_the_gpu():
    data = LabelledImages(torch.arange(40, dtype=torch.uint8).view(10, 2, 2), torch.arange(10)).to(
        torch.device("cuda")
    )
    images, labels = IndexedImages(data).__getitems__([3, 1, 7])
    assert images.device.type == "cuda" and labels.tolist() == [3, 1, 7]


@pytest.mark.parametrize("switch", ["model.channels_last=true", "trainer.precision=bf16-mixed"])
def test_speed_switches_train(data_dir, tmp_path, switch):
    """train.py's whole path (fit, test, report) runs with each switch (compile: below, and
    through train.py in the benchmark smoke test)."""
    cfg = make_config("train", ["debug=fdr", "model=cnn", *SMALL_CNN, switch], data_dir, tmp_path)
    metrics = train(cfg)
    assert 0 <= metrics["test/acc"] <= 1


def test_channels_last_converts_weights_and_inputs(data_dir, tmp_path):
    _cfg, _dm, model = fixture_parts(data_dir, tmp_path, ["model.channels_last=true"])
    conv = next(m for m in model.net.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert model._input(torch.zeros(2, 3, 8, 8)).is_contiguous(memory_format=torch.channels_last)


def test_compiled_run_checkpoint_loads_and_predicts_the_same(data_dir, tmp_path):
    _cfg, dm, model = fixture_parts(data_dir, tmp_path, ["model.compile=true"])
    trainer = quiet_trainer(tmp_path, max_steps=2, limit_val_batches=1, num_sanity_val_steps=0)
    trainer.fit(model, datamodule=dm)
    assert model._compiled is not None  # training really went through torch.compile
    path = tmp_path / "compiled.ckpt"
    trainer.save_checkpoint(path)
    assert not any("_orig_mod" in k for k in torch.load(path, weights_only=True)["state_dict"])
    loaded, trained_on = load_checkpoint(path)
    assert loaded.hparams.compile and trained_on["dataset"] == "mnist"
    x = dm.transform_batch(dm.val_set.images[:16], train=False)
    model.eval(), loaded.eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), rtol=1e-4, atol=1e-4)


def test_benchmark_new_arms_and_time_to_accuracy_smoke(data_dir, tmp_path):
    """The extra training arms and the time-to-accuracy part run (a few steps; numbers are
    not checked). GPU-only arms say why they were skipped on a CPU machine."""
    arms = "hwr,hwr_quiet,hwr_bf16,hwr_channels_last,hwr_compile,hwr_on_device,hwr_on_host"
    run = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "benchmark.py"), "--data-dir", str(data_dir),
         "--parts", "train", "tta", "--arms", arms, "--rounds", "1", "--steps", "2", "--warmup", "1",
         "--tta-max-steps", "4", "--tta-every", "2", "--device", "cpu",
         "--markdown", str(tmp_path / "bench.md"), *SMALL_CNN_ARGS],
        capture_output=True, text=True, timeout=900, cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    table = (tmp_path / "bench.md").read_text()
    for row in (
        "logger=false",
        "trainer.precision=bf16-mixed",
        "model.channels_last=true",
        "model.compile=true",
    ):
        assert row in table, row
    assert "skipped hwr_on_device: needs a GPU" in table and "skipped hwr_on_host: needs a GPU" in table
    assert "logging + progress bar overhead" in table
    assert "### Time to accuracy" in table and "| 99.5% |" in table
