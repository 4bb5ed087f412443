"""Speed switches on the tiny fixtures: device-resident data and its device-side batches,
channels_last, torch.compile modes, bf16, fused optimiser, the gpu_fast preset, the speedrun
experiment, and the benchmark's extra arms, op counts, time-to-accuracy and speedrun parts in
smoke mode."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import hydra
import lightning as L
import pytest
import torch
from helpers import ROOT, SMALL_CNN, make_config, table_numbers
from torch.utils.data import DataLoader, DistributedSampler

from hwr.commands.eval import evaluate
from hwr.commands.train import build_model, train
from hwr.data.loaders import IndexedImages, ResidentBatches, keep_batch
from hwr.data.mnist import MNISTDataModule
from hwr.data.sets import LabelledImages
from hwr.errors import HwrError
from hwr.inference.export import export_model
from hwr.inference.model import TrainedModel
from hwr.training.compiled import COMPILE_MODES, compile_mode

PLAIN_ROW = "plain PyTorch loop (same net, optimiser, schedule, loss, batches)"  # scripts/benchmark.py
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
    dm.setup("test")  # the test set joins the others on the trainer's device
    root = trainer.strategy.root_device
    assert dm.resident == root
    for data in (dm.train_set, dm.val_set, dm.test_set):
        assert data.images.device == root and data.labels.device == root
    # batches come from the device itself: shuffled there, one index per batch, no DataLoader
    loader = dm.train_dataloader()
    assert isinstance(loader, ResidentBatches) and loader.shuffle and loader.device == root
    assert isinstance(dm.val_dataloader(), ResidentBatches) and not dm.val_dataloader().shuffle
    images, labels = next(iter(loader))
    assert images.device == root and len(labels) == 32
    assert dm.hparams.on_device is True  # parsed
    assert "on_device" not in dm.describe()["split"]  # a machine setting, not what the model is


def test_on_device_gives_the_same_run(data_dir, tmp_path):
    """On a CPU trainer, resident data (ResidentBatches) trains exactly like host memory
    (DataLoader). Full-batch epochs without dropout make the batch order irrelevant, so any
    difference would come from the data path itself: the images, labels, transforms or steps."""
    runs = {}
    for value in ("true", "false"):
        overrides = ["model=mlp", "model.net.dropout=0", "data.batch_size=1024", "trainer.max_epochs=4",
                     "model.optimizer.lr=0.01", f"data.on_device={value}",
                     # MNIST's default augmentation draws differently on the two paths
                     "data.augment.shift=0", "data.augment.rotate=0", "data.augment.scale=0"]  # fmt: skip
        runs[value] = train(make_config("train", overrides, data_dir, tmp_path / value))
    resident, host = runs["true"], runs["false"]
    assert resident.keys() == host.keys() and resident["global_step"] == host["global_step"] == 4
    for key in ("train/loss", "val/loss", "test/loss", "test/acc"):
        assert resident[key] == pytest.approx(host[key], rel=1e-4), key
    assert host["test/acc"] > 0.5  # it learned: the comparison is between two working runs


def test_on_device_without_a_trainer_stays_on_the_host(data_dir):
    dm = MNISTDataModule(data_dir, on_device=True)
    dm.setup("fit")
    assert dm.resident is None and dm.train_set.images.device.type == "cpu"


def test_on_device_ignores_workers_with_one_warning(data_dir, tmp_path):
    _cfg, dm, model = fixture_parts(data_dir, tmp_path, ["data.on_device=true", "data.num_workers=2"])
    with pytest.warns(UserWarning, match="num_workers=2 is ignored"):
        quiet_trainer(tmp_path, fast_dev_run=True).fit(model, datamodule=dm)
    assert isinstance(dm.train_dataloader(), ResidentBatches)  # no worker processes at all


def resident(n: int = 10, **kwargs) -> ResidentBatches:
    """ResidentBatches over images whose first pixel is their own index."""
    images = torch.arange(n, dtype=torch.uint8).view(n, 1, 1).expand(n, 2, 2).contiguous()
    options = dict(batch_size=3, shuffle=True, drop_last=True, seed=7) | kwargs
    return ResidentBatches(images, torch.arange(n), **options)


def test_resident_batches_shuffle_every_image_once_per_epoch():
    loader = resident(n=10)
    assert len(loader) == 3  # 10 // 3: the ragged batch is dropped
    epochs = []
    for _ in range(2):
        batches = list(loader)
        assert len(batches) == len(loader)
        for images, labels in batches:
            assert torch.equal(images[:, 0, 0].long(), labels)  # images and labels stay paired
        epochs.append(torch.cat([labels for _, labels in batches]).tolist())
    assert all(len(set(e)) == 9 for e in epochs) and epochs[0] != epochs[1]  # a new order each epoch
    assert [torch.cat([y for _, y in resident(n=10)]).tolist() for _ in range(1)] == [epochs[0]]  # seeded
    assert [y.tolist() for _, y in resident(n=10, shuffle=False, drop_last=False)] == [
        [0, 1, 2],
        [3, 4, 5],
        [6, 7, 8],
        [9],
    ]


def test_resident_batches_shard_across_processes():
    """Training shards: disjoint and equally long; evaluation shards: every image exactly once."""
    train_shards = [torch.cat([y for _, y in resident(n=11, rank=r, world_size=2)]).tolist() for r in (0, 1)]
    assert len(train_shards[0]) == len(train_shards[1]) == 3 and not set(train_shards[0]) & set(
        train_shards[1]
    )
    evaluation = [resident(n=11, rank=r, world_size=2, shuffle=False, drop_last=False) for r in (0, 1)]
    seen = sorted(i for loader in evaluation for _, y in loader for i in y.tolist())
    assert seen == list(range(11)) and [len(loader) for loader in evaluation] == [2, 2]
    with pytest.raises(ValueError, match="rank 2"):
        resident(rank=2, world_size=2)


def test_overfit_batches_on_resident_data_repeats_the_same_batches(data_dir, tmp_path):
    """debug=overfit's promise: the same first batches every epoch (Lightning cannot reach into
    ResidentBatches to turn its shuffle off, so the DataModule does)."""
    _cfg, dm, model = fixture_parts(data_dir, tmp_path, ["data.on_device=true"])
    trainer = quiet_trainer(tmp_path, overfit_batches=2, max_epochs=1, num_sanity_val_steps=0)
    trainer.fit(model, datamodule=dm)
    loader = dm.train_dataloader()
    assert not loader.shuffle
    first, again = [y.tolist() for _, y in loader], [y.tolist() for _, y in loader]
    assert first == again


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


@pytest.mark.parametrize(
    "switch", ["model.channels_last=true", "trainer.precision=bf16-mixed", "model.optimizer.fused=true"]
)
def test_speed_switches_train(data_dir, tmp_path, switch):
    """train.py's whole path (fit, test, report) runs with each switch and still learns
    (compile: below)."""
    overrides = ["model=cnn", *SMALL_CNN, "trainer.max_epochs=3", "model.optimizer.lr=0.003", switch]
    metrics = train(make_config("train", ["data.batch_size=32", *overrides], data_dir, tmp_path))
    assert metrics["test/acc"] > 0.5  # chance is 0.1


def test_compile_mode_values():
    assert compile_mode(False) is None and compile_mode("false") is None and compile_mode(None) is None
    assert compile_mode(True) == "default" and compile_mode("true") == "default"
    assert compile_mode(" Reduce-Overhead ") == "reduce-overhead"  # as a shell or YAML may spell it
    with pytest.raises(HwrError, match=r"model.compile='fast' is not allowed; use false, true or one of"):
        compile_mode("fast")


# each compiles for 5-15 s: the full suite's (the quick loop compiles in the warm-up test)
@pytest.mark.slow
@pytest.mark.parametrize("mode", COMPILE_MODES)
def test_every_compile_mode_leaves_a_checkpoint_for_eval_predict_export(data_dir, tmp_path, mode):
    """Trained compiled (mode by mode), the best checkpoint tests, predicts and exports like any."""
    out = tmp_path / "run"
    overrides = ["model=mlp", "data.batch_size=64", "trainer.max_epochs=2", f"model.compile={mode}"]
    metrics = train(make_config("train", overrides, data_dir, out))
    assert metrics["compile_warmup_s"] > 0 and metrics["test/acc"] > 0.5
    ckpt = out / "checkpoints" / "best.ckpt"
    assert not any("_orig_mod" in k for k in torch.load(ckpt, weights_only=True)["state_dict"])
    tested = evaluate(make_config("eval", [f"ckpt_path={ckpt}"], data_dir, tmp_path / "eval"))
    assert tested["test/acc"] == pytest.approx(metrics["test/acc"])
    predictor = TrainedModel.load(ckpt, device="cpu")
    dm = MNISTDataModule(data_dir, download=False)
    dm.setup("test")
    probs = predictor.probabilities(dm.transform_batch(dm.test_set.images, train=False))
    accuracy = float((probs.argmax(dim=1) == dm.test_set.labels).float().mean())
    assert accuracy == pytest.approx(metrics["test/acc"])  # predict.py's model is the tested one
    exported = export_model(ckpt, "onnx", tmp_path / "model.onnx")
    assert Path(exported["path"]).is_file() and exported["parity"]["max_abs_diff"] < 1e-4


def test_compile_warm_up_leaves_no_trace(data_dir, tmp_path):
    """The warm-up steps (forward + backward, off the clock) are undone: a compiled run ends
    with the same weights and BatchNorm statistics as an eager one, up to compiled numerics
    (and with the same dropout masks: the random state is put back too)."""
    import torch._inductor.config

    states = {}
    for mode in ("false", "default"):
        _cfg, dm, model = fixture_parts(data_dir, tmp_path / mode, [f"model.compile={mode}", "seed=3"])
        L.seed_everything(3)
        model = build_model(_cfg.model, dm)
        trainer = quiet_trainer(tmp_path / mode, max_steps=3, limit_val_batches=1, num_sanity_val_steps=0)
        with torch._inductor.config.patch(fallback_random=True):  # eager's RNG inside compiled code
            trainer.fit(model, datamodule=dm)
        torch._dynamo.reset()  # the next compile sees the default config again
        states[mode] = {k: v.clone() for k, v in model.net.state_dict().items()}
        if mode == "default":
            assert model.compile_warmup_s > 0
    for key, value in states["false"].items():
        if value.is_floating_point():  # 3 extra BatchNorm updates would move running stats by far more
            torch.testing.assert_close(states["default"][key], value, rtol=1e-3, atol=1e-4, msg=key)
        else:
            assert torch.equal(states["default"][key], value), key  # num_batches_tracked: 3, not 6


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
    loaded = TrainedModel.load(path, device="cpu")  # the plain network, without the training module
    assert loaded.hparams["compile"] and loaded.trained_on.name == "mnist"
    x = dm.transform_batch(dm.val_set.images[:16], train=False)
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded.net(x), model(x), rtol=1e-4, atol=1e-4)


def test_gpu_fast_preset_turns_on_the_switches(data_dir, tmp_path):
    """trainer=gpu_fast sets the GPU's switches across groups; the same run works on a CPU."""
    cfg = make_config("train", ["trainer=gpu_fast"], data_dir, tmp_path / "composed")
    assert cfg.trainer.accelerator == "gpu" and cfg.trainer.precision == "bf16-mixed"
    assert cfg.data.on_device is True and cfg.data.eval_batch_size >= 8192
    assert cfg.model.channels_last and cfg.model.optimizer.fused and not cfg.model.compile
    overrides = [
        "trainer=gpu_fast",
        "trainer.accelerator=cpu",
        "model=cnn",
        *SMALL_CNN,
        "trainer.max_epochs=3",
    ]
    overrides += ["data.batch_size=32", "model.optimizer.lr=0.003"]
    metrics = train(make_config("train", overrides, data_dir, tmp_path / "run"))
    assert metrics["test/acc"] > 0.5


def test_speedrun_experiment_trains_a_few_steps_on_a_cpu(data_dir, tmp_path):
    """experiment=mnist_speedrun as shipped (fp32 here: bf16 is emulated on CPUs without
    AVX512-BF16), two steps: it runs, and reports its training clock beside the wall time."""
    out = tmp_path / "run"
    cfg = make_config(
        "train",
        ["experiment=mnist_speedrun", "trainer.precision=32-true", "+trainer.max_steps=2"],
        data_dir,
        out,
    )
    assert cfg.data.batch_size >= 512 and cfg.model.optimizer.fused and cfg.data.on_device is True
    metrics = train(cfg)
    assert metrics["global_step"] == 2 and metrics["task"] == "mnist_speedrun"
    saved = json.loads((out / "metrics.json").read_text())
    assert 0 < saved["train_time_s"] < saved["wall_time_s"]


@pytest.mark.slow
def test_benchmark_new_arms_op_counts_time_to_accuracy_and_speedrun_smoke(data_dir, tmp_path):
    """The extra training arms (hwr and plain), the op counts, the time-to-accuracy and the
    speedrun parts run (a few steps; numbers are not checked). GPU-only arms say why they
    were skipped on a CPU machine."""
    arms = "plain,hwr,hwr_quiet,hwr_fused,hwr_bf16,hwr_channels_last,hwr_compile,plain_compile,hwr_on_device,"
    arms += "plain_on_device,hwr_on_host,hwr_gpu_fast"
    run = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "benchmark.py"), "--data-dir", str(data_dir),
         "--parts", "train", "ops", "tta", "speedrun", "--arms", arms, "--rounds", "1", "--steps", "2",
         "--warmup", "1", "--ops-steps", "2", "--ops-models", "cnn", "--tta-max-steps", "4",
         "--tta-every", "2", "--seeds", "1", "2",
         "--speedrun-max-steps", "2", "--speedrun-every", "1", "--device", "cpu",
         "--markdown", str(tmp_path / "bench.md"), *SMALL_CNN_ARGS, "trainer.precision=32-true"],
        capture_output=True, text=True, timeout=900, cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    table = (tmp_path / "bench.md").read_text()
    plain = table_numbers(table, PLAIN_ROW)
    for arm in (
        "hwr, logger=false, no progress bar",
        "hwr, model.optimizer.fused=true",
        "hwr, trainer.precision=bf16-mixed",
        "hwr, model.channels_last=true",
        "hwr, model.compile=default",
        "plain loop, model.compile=default",
        "hwr, data.on_device=true",
        "plain loop, data.on_device=true",
    ):
        speed, ratio = table_numbers(table, arm)
        # the ratio is printed to 2 decimals: allow that rounding as well as the speed's
        assert speed > 0 and ratio == pytest.approx(plain[0] / speed, rel=0.02, abs=0.006), arm
    assert "skipped hwr_on_host: needs a GPU" in table and "skipped hwr_gpu_fast: needs a GPU" in table
    plain_ops, hwr_ops, ratio, *reads = table_numbers(table, "cnn")
    assert plain_ops > 50 and hwr_ops >= plain_ops and ratio == pytest.approx(hwr_ops / plain_ops, abs=1e-3)
    assert len(table_numbers(table, "99.5%")) in (0, 3)  # "not reached", or seconds, step and epoch
    seed = table_numbers(table, "1")  # training clock, [seconds to 99.5%,] test accuracy, wall
    clock, accuracy = seed[0], seed[-2]
    assert clock > 0 and 0 <= accuracy <= 100  # seed 1's training clock and test accuracy
    assert "Seeds with test accuracy ≥ 99.5%:" in table


@pytest.mark.slow  # starts processes: every part of the GPU script, on the CPU
def test_gpu_benchmark_script_runs_in_its_cpu_smoke_mode(data_dir, tmp_path):
    """scripts/gpu_benchmark.sh has not met a GPU yet: its --smoke mode runs every part on the CPU
    (tiny network, a few steps), so a broken flag or part shows here before one is lent."""
    out = tmp_path / "bench"
    env = {**os.environ, "HWR_DATA_DIR": str(data_dir), "PYTHON": sys.executable, "PYTHONUNBUFFERED": "1"}
    run = subprocess.run(
        ["bash", str(ROOT / "scripts" / "gpu_benchmark.sh"), "--smoke", str(out)],
        capture_output=True, text=True, timeout=900, env=env,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    eager = (out / "gpu_train_eager.md").read_text()
    plain, hwr = (
        table_numbers(eager, p) for p in (PLAIN_ROW, "hwr train.py path (Lightning, callbacks, logging)")
    )
    assert plain[0] > 0 and hwr[0] > 0  # measured images/s
    compiled = (out / "gpu_train_compiled.md").read_text()
    assert table_numbers(compiled, "hwr, model.compile=reduce-overhead")[0] > 0
    assert "skipped hwr_gpu_fast: needs a GPU" in compiled  # on a GPU these run
    speedrun = (out / "gpu_speedrun.md").read_text()
    assert table_numbers(speedrun, "1")[0] > 0 and "launch to first training step:" in speedrun
    for name in ("mnist_cnn", "mnist_cnn_gpu_fast"):
        assert json.loads((out / name / "metrics.json").read_text())["status"] == "completed", name
    assert len((out / "gpu_mnist_cnn.md").read_text().splitlines()) == 2
