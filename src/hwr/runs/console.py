"""Everything the terminal shows, in one place: Rich's one console, one logger name (`hwr`).

`setup()` gives the `hwr` logger its terminal handler (a record is its message there; the run's
log file keeps time and source) and keeps Lightning's noise out; `log_to(folder)` opens a
run's log file. Then, in a run's order: the config tree (to the run folder; on screen with
print_config=true), what training shows (hwr.runs.progress), the end's metrics table, facts
line, confused pairs and pointers; besides: `hwr results`, explore's table, the sweep summary,
serve's and export's lines, and every `error:` line (`user_errors`). Predict's table is in
hwr.runs.predict_view. Every table fits 80 columns.

Code elsewhere logs to `logging.getLogger("hwr")` or hands its tables to these functions; it
prints nothing itself. A record for the run's log file only carries `extra=FILE_ONLY`.
"""

from __future__ import annotations

import io
import json
import logging
import sys
import textwrap
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import rich
import rich.box
import rich.console
import rich.syntax
import rich.table
import rich.tree
from omegaconf import DictConfig, OmegaConf

from hwr.errors import HwrError, root_cause
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


class _Terminal(logging.Formatter):
    """On the terminal a record is its message (a warning says so): the time and logger name
    that the log file keeps would take half of an 80-column line."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.levelno >= logging.WARNING:
            return f"{record.levelname.lower()}: {message}"
        return message


class _WarningsOnly(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING


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
        handler.setFormatter(_Terminal())
        handler.addFilter(_DropNoise(terminal=True))
        handler.hwr_terminal = True  # type: ignore[attr-defined]
        log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False  # Hydra gives the root logger a console handler of its own: not twice
    # Lightning's own terminal handlers keep its warnings; its information (devices, seed,
    # "Loading train_dataloader ...") is in the run's log file, and the start-up line says
    # what matters of it
    for name in LIGHTNING:
        for handler in logging.getLogger(name).handlers:
            if type(handler) is logging.StreamHandler and not any(
                isinstance(f, _WarningsOnly) for f in handler.filters
            ):
                handler.addFilter(_WarningsOnly())
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


def print_config_tree(cfg: DictConfig, folder: Folder | None = None, show: bool = True) -> None:
    """The composed config as a tree, main groups first: on the terminal with `show`
    (print_config=true), and with `folder` added to the run's `config_tree.log` (a resumed
    run adds its config below the original's)."""
    tree = config_tree(cfg)
    if show:
        rich.print(tree)
    if folder is not None:
        buffer = io.StringIO()
        rich.console.Console(file=buffer, width=100).print(tree)
        path = folder / "config_tree.log"
        before = path.read_text(encoding="utf-8") if path.is_file() else ""
        folder.write_text("config_tree.log", before + buffer.getvalue(), "the config tree")


def duration(seconds: float) -> str:
    """0:41, 12:05, 1:02:05."""
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def shown_path(path: str | Path) -> str:
    """A path relative to the working folder when it lies inside it (shorter to read and to paste)."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def describe_model(info: Mapping[str, Any]) -> str:
    """One line: which model is served, trained on what, how good it was, from where."""
    accuracy = "test/acc not recorded" if info["test_acc"] is None else f"test/acc {info['test_acc']:.2%}"
    sources = ", ".join(info["checkpoints"])
    data = " + ".join(info.get("sources") or []) or info["dataset"]  # a mix by its sources
    return (
        f"serving {info['model']} trained on {data} ({info['num_classes']} classes, {accuracy}, "
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
    card = Path(result["path"]).with_name("MODEL_CARD.md")
    if card.is_file():
        print(f"model card: {card}")
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
        table.add_row(part, f"{s['images']:,}", size, pixels, *stats, counts)
    rich.print(table)
    print(
        textwrap.fill(
            " ".join(summary["class_names"]), 80, initial_indent="classes: ", subsequent_indent="         "
        )
    )
    repeats = summary.get("exact_repeats") or {}
    if repeats:
        lines, line = [], "exact repeats:"
        for where, n in repeats.items():  # wrapped between entries, never inside one
            entry = f" {where} {n:,},"
            if len(line) + len(entry) > 80:
                lines.append(line)
                line = " " * len("exact repeats:")
            line += entry
        print("\n".join([*lines, line.rstrip(",")]))


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
