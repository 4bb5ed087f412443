"""What the terminal shows while a model trains: one start-up line, one live line, one line
per finished epoch.

- `ProgressBar`: a single line, redrawn in place and never wider than the terminal: the epoch,
  a bar, this epoch's running train loss and accuracy, images per second and the time left
  for the whole run. Only on a terminal; piped output gets the epoch lines alone.
- `EpochLog`: the start-up summary (data sizes, classes, model, device, precision, epochs,
  run folder) and one row per finished epoch, on the terminal (they stay in the scrollback
  and in piped logs) and, with every metric, in the run's `train.log`.

Accuracies are percentages and losses plain decimals everywhere (`hwr.evaluation.metrics.show`).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import lightning as L
import rich
import rich.console
import rich.live
import rich.text
from lightning.pytorch.callbacks import ModelSummary as LightningModelSummary
from lightning.pytorch.callbacks.progress.progress_bar import ProgressBar as LightningProgressBar

from hwr.evaluation.metrics import show
from hwr.files import write_text
from hwr.runs.console import FILE_ONLY, duration, log, shown_path

# the epoch table: (metric, column title, width)
COLUMNS = (
    ("train/loss", "train loss", 10),
    ("train/acc", "train acc", 9),
    ("val/loss", "val loss", 9),
    ("val/acc", "val acc", 8),
)


def clock(seconds: float | None) -> str:
    """Seconds as a person reads a duration: 0:41, 12:05, 1:02:05; `-:--` when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return "-:--"
    return duration(seconds)


def count(n: float) -> str:
    """A count with thousands separators (55,000)."""
    return f"{n:,.0f}"


def epochs_text(trainer: L.Trainer) -> str:
    return str(trainer.max_epochs) if trainer.max_epochs and trainer.max_epochs > 0 else "?"


class ProgressBar(LightningProgressBar):
    """One live line that fits the terminal, redrawn at most every `refresh_s` seconds.

    Reading the running loss and accuracy means one read from the device per redraw (not per
    step), which is why redraws are timed rather than counted in batches."""

    def __init__(self, refresh_s: float = 0.5) -> None:
        super().__init__()
        self.refresh_s = refresh_s
        self._enabled = True
        self._live: rich.live.Live | None = None
        self._console = rich.get_console()
        self._reset_run()

    def _reset_run(self) -> None:
        self._train_s = 0.0  # seconds spent in training batches this run (for the time left)
        self._batches = 0  # training batches this run
        self._val_s: float | None = None  # the last validation's seconds
        self._drawn = 0.0
        self._epoch_start = self._batch_clock = time.perf_counter()
        self._images = 0

    # Lightning's progress-bar protocol
    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    @property
    def is_enabled(self) -> bool:
        return self._enabled and self._console.is_terminal

    def _show(self, line: rich.text.Text) -> None:
        if not self.is_enabled:
            return
        if self._live is None:
            # transient: the live line disappears when a loop ends; the epoch rows stay
            self._live = rich.live.Live(
                line, console=self._console, auto_refresh=False, transient=True, redirect_stderr=False
            )
            self._live.start()
        self._live.update(line, refresh=True)

    def _stop(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    def line(self, label: str, done: int, total: float, fields: list[str]) -> rich.text.Text:
        """`label ━━━━━╸━━━ done/total field field ...`, dropping fields from the right until it
        fits the terminal, the bar taking what is left (at most 30 columns)."""
        width = self._console.width - 1  # the last column would wrap on some terminals
        known = isinstance(total, int) or (isinstance(total, float) and math.isfinite(total))
        counter = f"{done}/{int(total)}" if known else str(done)
        while True:
            tail = " ".join([counter, *fields])
            room = width - len(label) - len(tail) - 2
            if room >= 8 or not fields:
                break
            fields = fields[:-1]
        text = rich.text.Text(label + " ", style="bold")
        room = max(0, min(room, 30))
        if room:
            filled = room * done / total if known and total else 0
            text.append("━" * int(filled), style="magenta")
            text.append("━" * (room - int(filled)), style="bright_black")
            text.append(" ")
        text.append(tail)
        text.truncate(width)
        return text

    # training
    def on_train_start(self, trainer, pl_module) -> None:
        self._reset_run()

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._epoch_start = self._batch_clock = time.perf_counter()
        self._images = 0
        self._drawn = 0.0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        now = time.perf_counter()
        self._train_s += now - self._batch_clock
        self._batch_clock = now
        self._batches += 1
        x = batch[0] if isinstance(batch, list | tuple) else batch
        self._images += len(x)
        total = self.total_train_batches
        if not self.is_enabled or (now - self._drawn < self.refresh_s and batch_idx + 1 != total):
            return
        self._drawn = now
        fields = []
        running = getattr(pl_module, "running_train_metrics", lambda: None)()
        if running is not None:
            fields += [f"loss {running[0]:.3f}", f"acc {show('train/acc', running[1])}"]
        elapsed = now - self._epoch_start
        if elapsed > 0:
            fields.append(f"{count(self._images / elapsed)} img/s")
        fields.append(f"ETA {clock(self.time_left(trainer, batch_idx + 1))}")
        label = f"Epoch {trainer.current_epoch + 1}/{epochs_text(trainer)}"
        self._show(self.line(label, batch_idx + 1, total, fields))

    def time_left(self, trainer: L.Trainer, done_in_epoch: int) -> float | None:
        """Seconds until the run's last epoch ends: its training batches at this run's pace,
        plus one validation per epoch left at the last validation's length."""
        per_epoch = self.total_train_batches
        if not self._batches or not trainer.max_epochs or trainer.max_epochs < 0:
            return None
        if not isinstance(per_epoch, int):
            return None
        epochs_after = trainer.max_epochs - trainer.current_epoch - 1
        batches_left = per_epoch - done_in_epoch + epochs_after * per_epoch
        seconds = batches_left * self._train_s / self._batches
        if self._val_s is not None and trainer.enable_validation:
            seconds += (epochs_after + 1) * self._val_s
        return seconds

    def on_train_end(self, trainer, pl_module) -> None:
        self._stop()

    # validation (the sanity check shows nothing: its numbers are not a result)
    def on_validation_start(self, trainer, pl_module) -> None:
        self._val_start = time.perf_counter()

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        if trainer.sanity_checking or not self.is_enabled:
            return
        total = trainer.num_val_batches[dataloader_idx]
        label = f"Epoch {trainer.current_epoch + 1}/{epochs_text(trainer)} validating"
        self._show(self.line(label, batch_idx + 1, total, []))

    def on_validation_end(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking:
            self._val_s = time.perf_counter() - self._val_start
        self._batch_clock = time.perf_counter()  # validation is not training time

    # testing
    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        if self.is_enabled:
            self._show(self.line("Testing", batch_idx + 1, trainer.num_test_batches[dataloader_idx], []))

    def on_test_end(self, trainer, pl_module) -> None:
        self._stop()

    def on_exception(self, trainer, pl_module, exception) -> None:
        self._stop()

    def teardown(self, trainer, pl_module, stage: str) -> None:
        self._stop()


class EpochLog(L.Callback):
    """The start-up summary and one row per finished epoch (train/* are logged after the
    validation, so a row is written when the next epoch starts or training ends). The
    terminal gets the main columns, `train.log` every metric. A resume does not repeat its
    earlier epochs."""

    def __init__(self) -> None:
        self._logged = 0
        self._best: float | None = None
        self._epoch_start = time.perf_counter()

    def on_fit_start(self, trainer, pl_module) -> None:
        if trainer.is_global_zero:
            for text in startup_lines(trainer, pl_module):
                print(text)
                log.info("%s", text, extra=FILE_ONLY)

    def on_train_start(self, trainer, pl_module) -> None:
        self._logged = trainer.current_epoch  # epochs a resumed run finished before
        if trainer.is_global_zero:
            print(header())

    def _row(self, trainer: L.Trainer, epochs_done: int) -> None:
        if epochs_done <= self._logged or trainer.sanity_checking:
            return
        self._logged = epochs_done
        seconds = time.perf_counter() - self._epoch_start
        metrics = {k: float(v) for k, v in sorted(trainer.callback_metrics.items()) if v.numel() == 1}
        best = ""
        if "val/acc" in metrics and (self._best is None or metrics["val/acc"] > self._best):
            self._best, best = metrics["val/acc"], "*"
        if trainer.is_global_zero:
            print(row(f"{epochs_done}/{epochs_text(trainer)}", metrics, best, seconds))
        shown = " ".join(f"{k} {show(k, v)}" for k, v in metrics.items())
        of = f"/{trainer.max_epochs}" if trainer.max_epochs and trainer.max_epochs > 0 else ""
        log.info("epoch %d%s (step %d): %s", epochs_done, of, trainer.global_step, shown, extra=FILE_ONLY)

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._row(trainer, trainer.current_epoch)
        self._epoch_start = time.perf_counter()

    def on_train_end(self, trainer, pl_module) -> None:
        self._row(trainer, trainer.current_epoch)  # counts the last epoch only if it finished


def header() -> str:
    titles = "".join(f"{title:>{width + 2}}" for _, title, width in COLUMNS)
    return f"{'epoch':>7}{titles}{'time':>9}   * = best val acc"


def row(epoch: str, metrics: dict[str, float], best: str, seconds: float) -> str:
    """One finished epoch: `  3/10      0.1974     94.12%    0.1140   98.31% *   0:41`."""
    cells = "".join(
        f"{show(key, metrics[key]) if key in metrics else '-':>{width + 2}}" for key, _, width in COLUMNS
    )
    return f"{epoch:>7}{cells} {best:1}{clock(seconds):>7}"


def startup_lines(trainer: L.Trainer, pl_module: Any) -> list[str]:
    """What is about to happen, in lines that fit 80 columns:
    `mnist: 54,000 train · 6,000 val · 10,000 test images, 10 classes`
    `CNN (0.58 M params) · 10 epochs on cpu, precision 32-true`
    `run folder: outputs/train/runs/2026-12-06_10-00-00`"""
    dm = trainer.datamodule
    sizes = []
    for part, attr in (("train", "train_set"), ("val", "val_set"), ("test", "test_set")):
        data = getattr(dm, attr, None)
        if data is not None:
            sizes.append(f"{count(len(data))} {part}")
    name = getattr(dm, "name", type(dm).__name__ if dm is not None else "data")
    first = f"{name}: {' · '.join(sizes)} images" if sizes else f"{name}:"
    classes = getattr(pl_module, "hparams", {}).get("num_classes")
    if classes:
        first += f", {classes} classes"
    params = sum(p.numel() for p in pl_module.parameters())
    net = type(getattr(pl_module, "net", pl_module)).__name__
    device = trainer.strategy.root_device.type
    if trainer.world_size > 1:
        device = f"{trainer.world_size} x {device}"
    epochs, precision = epochs_text(trainer), trainer.precision
    epochs += " epoch" if epochs == "1" else " epochs"
    second = f"{net} ({params / 1e6:.2f} M params) · {epochs} on {device}, precision {precision}"
    return [first, second, f"run folder: {shown_path(trainer.default_root_dir)}"]


class ModelSummary(LightningModelSummary):
    """The model's layers, parameters and FLOPs, written to `<run>/model_summary.txt` instead of
    the terminal (a 30-line table that an 80-column terminal cuts; the start-up line gives the
    parameter count)."""

    def on_fit_start(self, trainer, pl_module) -> None:
        if not trainer.is_global_zero or not trainer.default_root_dir:
            return
        summary = self._summary(trainer, pl_module)
        path = Path(trainer.default_root_dir) / "model_summary.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text(path, str(summary) + "\n", "the model summary")
