"""What the terminal and the run's files show: epochs from 1, real FLOPs, named look-alikes, no empty logs."""

from __future__ import annotations

import json
import logging
import re
import sys
from pathlib import Path

import pytest
import rich.console
from helpers import ROOT, SMALL_CNN, TMUX, in_tmux
from lightning.pytorch.utilities.model_summary import ModelSummary

from hwr.commands.results import results
from hwr.errors import HwrError
from hwr.files import Folder
from hwr.runs import console, progress, tables
from hwr.runs.progress import ProgressBar
from hwr.runs.tensorboard import session_metrics
from hwr.training.classifier import Classifier

MLP = {"_target_": "hwr.models.mlp.MLP", "hidden": [16]}
ADAM = {"_target_": "torch.optim.AdamW", "_partial_": True}


def test_the_live_line_fits_the_terminal_and_drops_fields_before_wrapping():
    bar = ProgressBar()
    fields = ["loss 0.213", "acc 93.40%", "1,850 img/s", "ETA 2:31"]
    for width in (40, 60, 80, 160):
        bar._console = rich.console.Console(width=width, force_terminal=True)
        line = bar.line("Epoch 10/100", 1230, 3000, fields).plain
        assert len(line) < width, (width, line)
        assert line.startswith("Epoch 10/100") and "1230/3000" in line
    assert "ETA 2:31" in line and "━" in line  # 160 columns: everything and a bar
    bar._console = rich.console.Console(width=40, force_terminal=True)
    assert "loss" not in bar.line("Epoch 10/100", 1230, 3000, fields).plain  # fields go, not the count


def test_epoch_rows_line_up_under_their_header_in_80_columns():
    metrics = {"train/loss": 0.1974, "train/acc": 0.9412, "val/loss": 0.114, "val/acc": 0.9831}
    header, first = progress.header(), progress.row("3/10", metrics, "*", 41)
    assert len(header) <= 80 and len(first) <= 80
    assert first.split() == ["3/10", "0.1974", "94.12%", "0.1140", "98.31%", "*", "0:41"]
    for title in ("train loss", "train acc", "val loss", "val acc"):
        column_end = header.index(title) + len(title)
        value = first[:column_end].split()[-1]
        assert first[column_end - len(value) : column_end] == value, title  # right-aligned under it
    assert progress.row("1/2", {}, "", 5).split() == ["1/2", "-", "-", "-", "-", "0:05"]


def test_the_end_table_shows_metrics_once_and_facts_in_one_line(capsys):
    record = {
        "test/acc": 0.9912, "val/acc_best": 0.9931, "train/loss": 0.05, "lr-AdamW": 0.001,
        "epochs": 10, "train_time_s": 161.2, "wall_time_s": 182.4, "seed": 12345, "num_params": 581_000,
    }  # fmt: skip
    tables.print_metrics(record, "eval: mnist / CNN", first="test/acc")
    out = capsys.readouterr().out
    assert out.count("test/acc") == 1 and "99.12%" in out
    assert "lr-AdamW" not in out and "train_time_s" not in out and "seed " in out
    assert "10 epochs, 2:41 training (3:02 in all) · seed 12345 · 0.58 M params" in out


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


def test_hparams_metrics_lead_with_the_objective():
    columns = session_metrics("val/acc_best")
    assert list(columns.values()) == [
        "objective (val/acc_best)",
        "test/acc",
        "test/acc_casefold",
        "test/f1_macro",
        "train_time_s",
        "train/loss",
    ]
    assert list(columns)[4] == "train/time_s"  # the training clock's curve
    assert list(session_metrics("test/acc").values())[0] == "objective (test/acc)"


def test_a_run_log_appears_with_its_first_record(tmp_path):
    folder = Folder(tmp_path)
    quiet, busy = console.log_to(folder, "explore"), console.log_to(folder, "train")
    console.close_log(quiet)  # nothing was logged while it was open: no empty explore.log
    console.log.info("epoch 1/1", extra=console.FILE_ONLY)
    console.close_log(busy)
    assert not (tmp_path / "explore.log").exists() and "epoch 1/1" in (tmp_path / "train.log").read_text()


@pytest.mark.slow  # a real training in a terminal
@pytest.mark.skipif(not Path(TMUX).exists(), reason=f"no tmux at {TMUX}: apt-get install tmux")
def test_train_in_an_80_column_terminal(data_dir, tmp_path):
    """What a person sees: a start-up summary, one live line that never wraps, one row per
    epoch that stays, the end table, and pointers that paste. Refreshes docs/img/terminal_80.txt."""
    args = [*SMALL_CNN, "data.batch_size=8", "trainer.max_epochs=3", "callbacks.progress_bar.refresh_s=0.05"]
    env = {"HWR_DATA_DIR": str(data_dir), "PYTHONUNBUFFERED": "1", "UV": "uv", "COLUMNS": "80"}
    screen, frames = in_tmux([sys.executable, str(ROOT / "train.py"), *args], tmp_path, env, timeout=400)
    lines = [line for line in screen.splitlines() if line.strip()]
    assert all(len(line) <= 80 for line in lines), [line for line in lines if len(line) > 80]
    bars = [line for frame in frames for line in frame.splitlines() if line.startswith("Epoch ")]
    assert bars, "no progress line was ever on screen"
    assert all(len(line) < 80 for line in bars), bars
    training = [line for line in bars if "validating" not in line]
    assert all("img/s" in line and "ETA" in line for line in training), training
    assert any(re.search(r"loss \d\.\d{3} acc \d+\.\d\d%", line) for line in bars), bars
    rows = [line for line in lines if re.match(r"\s+\d+/3\s+\d\.\d{4}\s+\d+\.\d\d%", line)]
    assert [row.split()[0] for row in rows] == ["1/3", "2/3", "3/3"], screen
    assert re.search(r"mnist: 540 train · 60 val · 200 test images, 10 classes", screen), screen
    assert "run folder: outputs/train/runs/" in screen and "CONFIG" not in screen
    assert re.search(r"^curves: +uv run tensorboard --logdir outputs/train/runs$", screen, re.M), screen
    assert not any(line.startswith(("Epoch", "Testing")) for line in lines)  # the live line went
    bar = next(line for line in reversed(bars) if "loss" in line)
    (ROOT / "docs" / "img" / "terminal_80.txt").write_text(
        f"# train.py in an 80-column terminal (tmux); the live line as it was mid-epoch:\n{bar}\n"
        f"# the screen at the end:\n{screen.strip()}\n"
    )


def test_hwr_results_lists_runs_best_first_in_80_columns(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    for name, acc in (("2026-12-06_10-00-00", 0.91), ("2026-12-06_11-00-00", 0.97)):
        run = tmp_path / "train" / "runs" / name
        run.mkdir(parents=True)
        record = {"data": "english", "model": "CNN", "test/acc": acc, "val/acc_best": 0.9, "wall_time_s": 75}
        (run / "metrics.json").write_text(json.dumps(record))
    before = sorted(p.name for p in tmp_path.rglob("*"))
    results(tmp_path)
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert all(len(line) <= 80 for line in lines), out
    assert out.index("11-00-00") < out.index("10-00-00") and "97.00%" in out and "1:15" in out
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # it writes nothing where it reads
    results(tmp_path, output=tmp_path.parent / "all.csv")
    assert "test/acc" in (tmp_path.parent / "all.csv").read_text().splitlines()[0]
    with pytest.raises(HwrError, match="must end in .md"):
        results(tmp_path, output=tmp_path / "all.txt")
