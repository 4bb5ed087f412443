"""The lean training step: training metrics equal a reference from the same predictions, the
step dispatches (almost) only what a plain loop does, and the training clock leaves out what
it says it leaves out."""

from __future__ import annotations

import hydra
import lightning as L
import pytest
import torch
import torch.nn.functional as F
from helpers import SMALL_CNN, make_config

from benchmarks.opcount import HOST_READ, compare_ops, count_hwr_ops, count_plain_ops
from hwr.commands.train import build_model, train
from hwr.files import Folder
from hwr.runs.trainer import build_trainer
from hwr.training.callbacks import TrainingClock


class RecordTraining(L.Callback):
    """Keeps every training forward's logits (through a hook on the network) and targets."""

    def __init__(self) -> None:
        self.logits: list[torch.Tensor] = []
        self.targets: list[torch.Tensor] = []

    def on_fit_start(self, trainer, pl_module) -> None:
        def keep(module, inputs, output):
            if module.training:
                self.logits.append(output.detach().clone())

        pl_module.net.register_forward_hook(keep)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        self.targets.append(batch[1].clone())


@pytest.mark.parametrize(
    "overrides",
    [
        ["model=mlp"],
        ["model=cnn", *SMALL_CNN, "model.label_smoothing=0.1"],
        ["model=mlp", "+trainer.accumulate_grad_batches=2", "model.label_smoothing=0.2"],
    ],
    ids=["mlp", "cnn-smoothing", "accumulate"],
)
def test_training_metrics_equal_a_reference_from_the_same_predictions(data_dir, tmp_path, overrides):
    """train/acc and train/loss (epoch figures) are exactly what the epoch's own logits give."""
    recorder = RecordTraining()
    cfg = make_config(
        "train",
        [
            *overrides,
            "data.batch_size=64",
            "trainer.max_epochs=1",
            "test=false",
            "+trainer.limit_val_batches=1",
        ],
        data_dir,
        tmp_path / "run",
    )
    dm = hydra.utils.instantiate(cfg.data)
    model = build_model(cfg.model, dm)
    trainer = build_trainer(cfg, Folder(tmp_path / "run"))
    trainer.callbacks.append(recorder)
    trainer.fit(model, datamodule=dm)

    logits, targets = torch.cat(recorder.logits), torch.cat(recorder.targets)
    assert len(targets) == len(dm.train_set) - len(dm.train_set) % 64  # every step, ragged batch dropped
    smoothing = cfg.model.label_smoothing
    batch_losses = [
        F.cross_entropy(lg, y, label_smoothing=smoothing)
        for lg, y in zip(recorder.logits, recorder.targets, strict=True)
    ]
    sizes = torch.tensor([len(y) for y in recorder.targets], dtype=torch.float32)
    reference_loss = float((torch.stack(batch_losses) * sizes).sum() / sizes.sum())
    reference_acc = float((logits.argmax(dim=1) == targets).float().mean())
    logged = trainer.callback_metrics
    assert float(logged["train/acc"]) == pytest.approx(reference_acc, abs=1e-6)
    assert float(logged["train/loss"]) == pytest.approx(reference_loss, rel=1e-5)
    # validation and test keep F1 and top-5; training has accuracy and loss only
    assert {"val/acc", "val/f1", "val/loss"} <= set(logged) and "train/f1" not in logged


@pytest.mark.parametrize("model", ["mlp", "cnn"])
def test_a_training_step_dispatches_what_a_plain_loop_does(data_dir, tmp_path, model):
    """Exact op counts (not timings): hwr adds at most 6 ops a step (the argmax for accuracy and
    Lightning's own loss bookkeeping) and no read back to the host."""
    overrides = [
        f"model={model}",
        *(SMALL_CNN if model == "cnn" else []),
        f"paths.data_dir={data_dir}",
        "data.batch_size=32",
        "callbacks.progress_bar=null",
    ]
    plain = count_plain_ops(overrides, steps=6, warmup=2, device="cpu")
    hwr = count_hwr_ops(overrides, steps=6, warmup=2)
    r = compare_ops(plain, hwr, steps=6)
    assert r["plain"] > 50  # the counter saw forward, backward and optimiser
    assert r["hwr"] - r["plain"] <= 6 and r["ratio"] <= 1.05, r["extra"]
    assert r["hwr_host_reads"] == r["plain_host_reads"]  # torch's own CPU Adam reads its step count
    assert r["extra"].get("aten.argmax.default") == 1
    assert not any(op in r["extra"] for op in ("aten.bincount.default", "aten.topk.default", HOST_READ))


class FakeModule:
    device = torch.device("cpu")
    compile_warmup_s = 0.0


class FakeTrainer:
    sanity_checking = False
    is_global_zero = True
    global_step = 0
    loggers: list = []  # noqa: RUF012 - read only


def test_training_clock_leaves_out_validation_and_compilation(monkeypatch):
    """Hook by hook on a fake clock: the validation window (up to the next training batch) and
    the module's compile warm-up are not training time; the sanity check does not start it."""
    now = [100.0]
    monkeypatch.setattr("hwr.training.callbacks.time.perf_counter", lambda: now[0])
    clock, trainer, module = TrainingClock(), FakeTrainer(), FakeModule()

    trainer.sanity_checking = True
    clock.on_validation_start(trainer, module)  # sanity check: before the clock starts
    trainer.sanity_checking = False
    assert clock.seconds is None
    clock.on_train_batch_start(trainer, module, None, 0)  # t = 100
    module.compile_warmup_s = 4.0  # the module compiled on its first batch
    now[0] = 110.0
    clock.on_validation_start(trainer, module)  # epoch 1 trained for 10 s, 4 of them compiling
    now[0] = 130.0
    clock.on_train_batch_start(trainer, module, None, 0)  # 20 s of validation and checkpoints
    now[0] = 135.0
    clock.on_validation_start(trainer, module)
    now[0] = 150.0
    clock.on_train_end(trainer, module)  # the last validation: 15 s
    assert clock.seconds == pytest.approx(10.0 - 4.0 + 5.0)
    now[0] = 999.0
    assert clock.seconds == pytest.approx(11.0)  # stopped: later time does not count


def test_metrics_json_has_the_training_clock_beside_the_wall_time(data_dir, tmp_path):
    metrics = train(make_config("train", ["model=mlp", "trainer.max_epochs=2"], data_dir, tmp_path / "run"))
    assert 0 < metrics["train_time_s"] < metrics["wall_time_s"]
    assert "compile_warmup_s" not in metrics  # only when model.compile is on
