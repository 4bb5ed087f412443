"""What the terminal and the run's files show: epochs from 1, real FLOPs, named look-alikes, no empty logs."""

from __future__ import annotations

import logging
import string
from types import SimpleNamespace

from lightning.pytorch.utilities.model_summary import ModelSummary

from hwr.evaluation.names import lookalike_names
from hwr.files import Folder
from hwr.runs import console
from hwr.runs.console import ProgressBar
from hwr.runs.tensorboard import session_metrics
from hwr.training.classifier import Classifier

MLP = {"_target_": "hwr.models.mlp.MLP", "hidden": [16]}
ADAM = {"_target_": "torch.optim.AdamW", "_partial_": True}


def test_the_progress_bar_counts_epochs_from_one():
    bar = ProgressBar()
    bar._trainer = SimpleNamespace(max_epochs=3)  # what the Trainer sets when it attaches the bar
    assert bar._get_train_description(0).strip() == "Epoch 1/3"
    assert bar._get_train_description(2).strip() == "Epoch 3/3"


def test_the_model_summary_counts_flops_and_sizes():
    model = Classifier(net=MLP, optimizer=ADAM, input_shape=[1, 28, 28], num_classes=10)
    summary = ModelSummary(model, max_depth=1)
    assert summary.total_flops == 2 * (28 * 28 * 16 + 16 * 10)  # multiply-adds of the two layers
    assert summary.in_sizes[0] == [1, 1, 28, 28] and summary.out_sizes[0] == [1, 10]
    assert model.training  # the summary's forward pass ran in eval mode and left it as it was


def test_lightning_noise_stays_off_the_terminal_and_file_only_records_in_the_file():
    """`Trainer.fit` stopped, printed mid-bar, made the bar draw twice; an epoch line is for train.log."""
    terminal = console._DropNoise(terminal=True)
    noise = logging.makeLogRecord({"msg": "`Trainer.fit` stopped: `max_epochs=1` reached."})
    epoch = logging.makeLogRecord({"msg": "epoch 1/1 (step 3): ...", **console.FILE_ONLY})
    warning = logging.makeLogRecord({"msg": "no best checkpoint was saved"})
    assert [terminal.filter(r) for r in (noise, epoch, warning)] == [False, False, True]
    assert [console._DropNoise().filter(r) for r in (noise, epoch)] == [False, True]  # the file keeps epochs


def test_prediction_tables_name_look_alike_characters(capsys):
    rows = [
        {"source": "a.png", "label": "l", "top": [{"label": "l", "prob": 0.6}, {"label": "1", "prob": 0.3}]}
    ]
    console.print_predictions(rows, "", lookalike_names(string.digits + string.ascii_letters))
    printed = capsys.readouterr().out
    assert "l (small L)" in printed and "1 (one) 0.300" in printed


def test_hparams_metrics_lead_with_the_objective():
    record = {
        "test/acc": 0.9,
        "val/acc_best": 0.95,
        "train/loss": 0.1,
        "train_time_s": 3,
        "test/f1_macro": 0.8,
    }
    assert list(session_metrics(record, "val/acc_best")) == [
        "objective (val/acc_best)", "test/acc", "test/f1_macro", "train/loss", "train_time_s",
    ]  # fmt: skip
    assert (
        sorted(session_metrics(record, "val/acc_best"))[0] == "objective (val/acc_best)"
    )  # TensorBoard's order
    assert list(session_metrics(record, "test/acc")) == [
        "objective (test/acc)", "test/f1_macro", "train/loss", "train_time_s",
    ]  # fmt: skip
    assert session_metrics({"status": "failed"}, "val/acc_best") == {}
    # 62 classes: the case-folded accuracy beside test/acc, the training time left out
    assert list(session_metrics({**record, "test/acc_casefold": 0.93}, "val/acc_best"))[1:3] == [
        "test/acc", "test/acc_casefold",
    ]  # fmt: skip


def test_a_run_log_appears_with_its_first_record(tmp_path):
    folder = Folder(tmp_path)
    quiet, busy = console.log_to(folder, "explore"), console.log_to(folder, "train")
    console.close_log(quiet)  # nothing was logged while it was open: no empty explore.log
    console.log.info("epoch 1/1", extra=console.FILE_ONLY)
    console.close_log(busy)
    assert not (tmp_path / "explore.log").exists() and "epoch 1/1" in (tmp_path / "train.log").read_text()
