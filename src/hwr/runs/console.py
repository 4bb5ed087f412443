"""Everything the terminal shows, in one place: Rich's one console, one logger name (`hwr`).

`setup()` gives the `hwr` logger its terminal handler and keeps Lightning's noise out;
`log_to(folder)` opens a run's log file. Then, in a run's order: the config tree, the
progress bar (`ProgressBar`), one line per epoch (`EpochLog`, log file only), the end's
metrics table, confused pairs and pointers; besides: predict's table, explore's, the sweep
summary, serve's and export's lines, and every `error:` line (`user_errors`).

Code elsewhere logs to `logging.getLogger("hwr")` or hands its tables to these functions; it
prints nothing itself. A record for the run's log file only carries `extra=FILE_ONLY`.
"""

from __future__ import annotations

import io
import json
import logging
import sys
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import lightning as L
import rich
import rich.console
import rich.syntax
import rich.table
import rich.tree
from lightning.pytorch.callbacks import RichProgressBar
from omegaconf import DictConfig, OmegaConf

from hwr.errors import HwrError, root_cause
from hwr.evaluation.casefold import fold_members
from hwr.evaluation.metrics import lookup, numbers, show
from hwr.evaluation.names import labelled, lookalike_names
from hwr.files import Folder

log = logging.getLogger("hwr")
FILE_ONLY = {"file_only": True}
FORMAT = "[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"
# Lightning's loggers whose records also go to the run's log file
LIGHTNING = ("lightning.pytorch", "lightning.fabric")
# Lightning's messages that say nothing about the run: an advertisement, a note that hwr set
# its own model summary, why fit stopped (printed into the live progress bar, which is then
# drawn twice; the epochs are in train.log and metrics.json), and (as warnings) a
# torch-internal deprecation and the logging interval of sets smaller than one interval.
NOISE_LOGS = ("💡 Tip:", "Trainer already configured with model summary callbacks", "`Trainer.fit` stopped:")
NOISE_WARNINGS = (
    r".*isinstance\(treespec, LeafSpec\)",
    r"The number of training batches \(\d+\) is smaller than the logging",
)
PRINT_ORDER = ("data", "model", "callbacks", "logger", "trainer", "paths")


class _DropNoise(logging.Filter):
    """Drops Lightning's noise, and on the terminal (`terminal`) the file-only records."""

    def __init__(self, terminal: bool = False) -> None:
        super().__init__()
        self.terminal = terminal

    def filter(self, record: logging.LogRecord) -> bool:
        if self.terminal and getattr(record, "file_only", False):
            return False
        return not any(noise in record.getMessage() for noise in NOISE_LOGS)


def setup() -> None:
    """The `hwr` logger prints INFO and above to stdout; Lightning's noise is dropped. Safe to
    call more than once."""
    if not any(getattr(h, "hwr_terminal", False) for h in log.handlers):
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter(FORMAT))
        handler.addFilter(_DropNoise(terminal=True))
        handler.hwr_terminal = True  # type: ignore[attr-defined]
        log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False  # Hydra gives the root logger a console handler of its own: not twice
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropNoise) for f in logger.filters):
            logger.addFilter(_DropNoise())
    for message in NOISE_WARNINGS:
        warnings.filterwarnings("ignore", message=message)


def log_to(folder: Folder, name: str) -> logging.Handler:
    """Send hwr's and Lightning's records to `<folder>/<name>.log` (and return the handler, to
    close at the run's end). The file appears with the first record (a run that logged nothing
    leaves none). A log is appended to, not replaced: it is the one file of a run that is not
    written atomically."""
    handler = logging.FileHandler(folder / f"{name}.log", encoding="utf-8", delay=True)
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(_DropNoise())
    for logger in (log, *map(logging.getLogger, LIGHTNING)):
        logger.addHandler(handler)
        logger.setLevel(min(logger.getEffectiveLevel(), logging.INFO))
    return handler


def close_log(handler: logging.Handler) -> None:
    for logger in (log, *map(logging.getLogger, LIGHTNING)):
        logger.removeHandler(handler)
    handler.close()


def config_tree(cfg: DictConfig) -> rich.tree.Tree:
    tree = rich.tree.Tree("CONFIG", style="bold", guide_style="dim")
    fields = [f for f in PRINT_ORDER if f in cfg] + [f for f in cfg if f not in PRINT_ORDER]
    for field in fields:
        branch = tree.add(str(field), style="bold")
        value = cfg[field]
        text = OmegaConf.to_yaml(value, resolve=True) if isinstance(value, DictConfig) else str(value)
        branch.add(rich.syntax.Syntax(text, "yaml", theme="ansi_dark"))
    return tree


def print_config_tree(cfg: DictConfig, folder: Folder | None = None) -> None:
    """Print the composed config as a tree, main groups first; with `folder`, add it to the
    run's `config_tree.log` (a resumed run adds its config below the original's)."""
    tree = config_tree(cfg)
    rich.print(tree)
    if folder is not None:
        buffer = io.StringIO()
        rich.console.Console(file=buffer, width=100).print(tree)
        path = folder / "config_tree.log"
        before = path.read_text(encoding="utf-8") if path.is_file() else ""
        folder.write_text("config_tree.log", before + buffer.getvalue(), "the config tree")


class ProgressBar(RichProgressBar):
    """Lightning's RichProgressBar, epochs from 1, redrawn every `refresh_rate` training batches:
    nothing is logged per training step (train/loss and train/acc are epoch figures), so what it
    shows changes only when an epoch or a validation ends; reading it per batch only costs time."""

    def _get_train_description(self, current_epoch: int) -> str:
        # Lightning counts epochs from 0 ("Epoch 0/1" for two epochs); people count from 1.
        description = f"Epoch {current_epoch + 1}"
        if self.trainer.max_epochs is not None and self.trainer.max_epochs > 0:
            description += f"/{self.trainer.max_epochs}"
        return f"{description:{len(self.validation_description)}}"

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        done = batch_idx + 1
        if done % max(self.refresh_rate, 1) == 0 or done == self.total_train_batches:
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)


class EpochLog(L.Callback):
    """One line per finished epoch in the run's log file (`<run>/train.log`), which the bar's
    redrawn lines never reach: epoch (from 1), step and metrics, logged when the next epoch
    starts or training ends (train/* come after validation). A resume does not log its
    earlier epochs again."""

    def __init__(self) -> None:
        self._logged = 0

    def _log(self, trainer: L.Trainer, epochs_done: int) -> None:
        if epochs_done <= self._logged or trainer.sanity_checking:
            return
        self._logged = epochs_done
        metrics = {k: float(v) for k, v in sorted(trainer.callback_metrics.items()) if v.numel() == 1}
        shown = " ".join(f"{k} {show(k, v)}" for k, v in metrics.items())
        of = f"/{trainer.max_epochs}" if trainer.max_epochs and trainer.max_epochs > 0 else ""
        log.info("epoch %d%s (step %d): %s", epochs_done, of, trainer.global_step, shown, extra=FILE_ONLY)

    def on_train_start(self, trainer, pl_module) -> None:
        self._logged = trainer.current_epoch  # epochs a resumed run finished before

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._log(trainer, trainer.current_epoch)

    def on_train_end(self, trainer, pl_module) -> None:
        self._log(trainer, trainer.current_epoch)  # counts the last epoch only if it finished


def metrics_table(record: Mapping[str, Any], title: str, first: str | None = None) -> rich.table.Table:
    """The registry's metrics of a record, `first` (the objective) and test/acc at the top."""
    shown = [k for k in numbers(record) if lookup(k) is not None]
    order = [k for k in (first, "test/acc") if k in shown] + sorted(
        k for k in shown if k not in (first, "test/acc")
    )
    table = rich.table.Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in order:
        table.add_row(key, show(key, record[key]))
    return table


def pairs_table(pairs: Sequence[Mapping[str, Any]], classes: Sequence[str] | None = None) -> rich.table.Table:
    """The most-confused pairs, look-alike labels named ("l (small L)") among `classes`."""
    names = lookalike_names(classes or [row[k] for row in pairs for k in ("true", "predicted")])
    table = rich.table.Table(title=f"most confused pairs (top {len(pairs)})")
    for column in ("true", "predicted", "count", "share of true class"):
        table.add_column(column, justify="right" if column != "true" else "left")
    for row in pairs:
        true, pred = labelled(row["true"], names), labelled(row["predicted"], names)
        table.add_row(true, pred, str(row["count"]), f"{row['share']:.1%}")
    return table


def print_report(report: Any) -> None:
    """What a test report says at the end of a run: the confused pairs, and how much of the
    error is case or look-alike confusion."""
    rich.print(pairs_table(report.pairs, report.classes))
    share = report.metrics.get("test/error_share_casefold")
    if share is not None:
        groups = " ".join("/".join(m) for m in fold_members(report.classes))
        print(f"{share:.1%} of the errors are case or look-alike confusions ({groups})")


def print_metrics(record: Mapping[str, Any], title: str, first: str | None = None) -> None:
    rich.print(metrics_table(record, title, first))


def print_pointers(record_path: Any, report: Any = None, tensorboard: Any = None) -> None:
    """Where to look next, one unwrapped line each (plain print: a long path must stay one line
    a terminal can copy)."""
    print(f"run record: {record_path}")
    if report is not None:
        print(f"report:     {report}/")
    if tensorboard is not None:
        print(f"tensorboard --logdir {tensorboard}")


def print_predictions(rows: Sequence[Mapping[str, Any]], summary: str, names: dict[str, str]) -> None:
    """predict's table: each image, its prediction and the top k; look-alikes named."""
    table = rich.table.Table()
    for column in ("image", "prediction", "top-k", *(["true"] if any("true" in r for r in rows) else [])):
        table.add_column(column)
    for row in rows:
        top = "  ".join(f"{labelled(t['label'], names)} {t['prob']:.3f}" for t in row.get("top", []))
        label = labelled(row["label"], names) if row.get("label") else "[red]error"
        if row.get("blank"):
            label = f"{label} [yellow](blank image)"
        cells = [row["source"], label, top or row.get("error", "")]
        if "true" in row:
            cells.append(("" if row["correct"] else "[red]") + labelled(row["true"], names))
        table.add_row(*cells)
    rich.print(table)
    if summary:
        print(summary)


def print_summary(title: str, table: str, written: str) -> None:
    """A sweep's summary: its title, the markdown table and where it was written."""
    print(f"\n{title}\n\n{table}\nwritten: {written}")


def describe_model(info: Mapping[str, Any]) -> str:
    """One line: which model is served, trained on what, how good it was, from where."""
    accuracy = "test/acc not recorded" if info["test_acc"] is None else f"test/acc {info['test_acc']:.2%}"
    sources = ", ".join(info["checkpoints"])
    return (
        f"serving {info['model']} trained on {info['dataset']} ({info['num_classes']} classes, {accuracy}, "
        f"tta_shift={info['tta_shift']}, {info['device']}) from {sources}"
    )


def print_serving(info: Mapping[str, Any], host: str) -> None:
    """What `hwr serve` says as it starts: the model, and a warning when others can reach it."""
    print(describe_model(info))
    if host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: host={host} makes the page reachable from other machines; there is no login")


def print_export(result: Mapping[str, Any], tolerance: float) -> None:
    """What `hwr export` wrote, how close it is to PyTorch, and how to use it."""
    engine = "onnxruntime" if result["format"] == "onnx" else "TorchScript"
    print(f"wrote {result['path']} ({result['size_bytes'] / 1e6:.2f} MB) and {result['sidecar']}")
    parity = result["parity"]
    print(
        f"parity: max |{engine} - PyTorch| = {parity['max_abs_diff']:.1e} on {parity['inputs']} inputs "
        f"(limit {tolerance:g})"
    )
    print(
        'use it: python -c "from PIL import Image; from hwr.inference.exported import ExportedModel; '
        f"print(ExportedModel.load('{result['path']}').predict([Image.open('a.png')]))\""
    )


def print_dataset(summary: Mapping[str, Any], parts: Sequence[str], title: str) -> None:
    """`hwr explore`'s table: each split's size, pixel range and statistics, class counts."""
    table = rich.table.Table(title=title)
    for column in ("split", "images", "size", "pixel min/max", "mean", "std", "per class min..max"):
        table.add_column(column)
    for part in parts:
        s = summary[part]
        size, pixels = "x".join(map(str, s["image_size"])), f"{s['pixel_min']:.2f}/{s['pixel_max']:.2f}"
        stats, counts = (
            (f"{s['pixel_mean']:.4f}", f"{s['pixel_std']:.4f}"),
            f"{s['per_class_min']}..{s['per_class_max']}",
        )
        table.add_row(part, str(s["images"]), size, pixels, *stats, counts)
    rich.print(table)
    print("classes:", " ".join(summary["class_names"]))


def print_error(message: str) -> None:
    """`error: <one line>` on stderr: what every command says when it cannot go on."""
    note(f"error: {message}")


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn an HwrError (also one raised in a config's constructor) into `error: <message>` on
    stderr and its exit status, without a traceback; any other exception passes through."""
    try:
        yield
    except Exception as e:
        cause = root_cause(e)
        if not isinstance(cause, HwrError):
            raise
        print_error(str(cause))
        raise SystemExit(cause.exit_code) from None


def print_json(payload: Mapping[str, Any]) -> None:
    """A command's result as JSON on stdout (predict --json): one object, nothing else printed there."""
    print(json.dumps(payload, indent=1))


def note(message: str) -> None:
    """A line about what a command did, on stderr (so stdout stays its result: predict --json)."""
    print(message, file=sys.stderr)
