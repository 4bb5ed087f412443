"""What `hwr predict` shows on the terminal: its table, its summary and its progress.

Results go to stdout, notes to stderr (`console.note`), as every command's do. No line is
wider than Rich's width (a terminal's, or 80 columns when stdout is piped), so the terminal
never wraps one; sentences break between words, lists between items:

- a path shows what tells the rows apart: the folder all inputs share is dropped (and named
  once above the table), and a path still too long keeps its distinguishing head and its tail
  around an ellipsis; the full paths stay in the `output=` file;
- the top-k column shows as many whole `label prob` pairs as fit, never half of one;
- past `TABLE_ROWS` rows there is no table but a summary (counts, accuracy, the most confused
  or most predicted classes) and a pointer to the file that holds every row;
- past `PROGRESS_FROM` images a progress bar runs on stderr when it is a terminal, and
  otherwise at most five lines say how far it got.
"""

from __future__ import annotations

import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import rich.box
import rich.console
import rich.progress
import rich.table
from rich.text import Text

from hwr.evaluation.names import labelled
from hwr.runs import console

# More rows than this: a summary instead of the table (the rows go to the output file).
TABLE_ROWS = 50
# From this many images on, predict shows its progress (a few hundred scans take a while).
PROGRESS_FROM = 200
# The narrowest image column worth dropping runner-up pairs for (a path still has to tell
# its row apart: `narrowest`).
IMAGE_MIN = 16
ELLIPSIS = "…"


def terminal() -> rich.console.Console:
    """A console on the current stdout (looked up now: tests swap it), never soft-wrapping."""
    return rich.console.Console(file=sys.stdout, soft_wrap=False)


def common_folder(sources: Sequence[str]) -> str:
    """The folder every source lies in ("" when none, or when relative and absolute mix)."""
    parents = [os.path.dirname(s) for s in sources]
    try:
        common = os.path.commonpath(parents) if parents else ""
    except ValueError:  # absolute and relative paths: nothing in common
        return ""
    return common


def clip_left(text: str, width: int) -> str:
    """`text` cut to `width` characters, its start replaced by an ellipsis when too long."""
    return text if len(text) <= width else ELLIPSIS + text[len(text) - width + 1 :]


def shorten(paths: Sequence[str], width: int) -> list[str]:
    """Each path in at most `width` characters, all still distinct when they were: a long one
    keeps its last characters after an ellipsis, and when those are the same for two paths
    (`a_long_folder/img1.png`, `b_long_folder/img1.png`) as much of its head as tells them apart."""
    if not paths or max(map(len, paths)) <= width:
        return list(paths)
    distinct = len(set(paths))
    for head in range(0, width - 1):  # head + ellipsis + tail = width
        tail = width - 1 - head
        shown = [p if len(p) <= width else p[:head] + ELLIPSIS + p[len(p) - tail :] for p in paths]
        if len(set(shown)) == distinct:
            return shown
    return [clip_left(p, width) for p in paths]


def _pairs(row: Mapping[str, Any], names: dict[str, str]) -> list[str]:
    return [f"{labelled(t['label'], names)} {t['prob']:.3f}" for t in row.get("top", [])]


def _prediction(row: Mapping[str, Any], pairs: Sequence[str]) -> Text:
    """The first of the top k, with its probability; "error" for an unreadable image."""
    if not pairs:
        return Text("error", style="red")
    text = Text(pairs[0])
    if row.get("blank"):
        text.append(" (blank image)", style="yellow")
    return text


def _true(row: Mapping[str, Any], names: dict[str, str]) -> Text:
    if "true" not in row:
        return Text("")
    if row.get("correct"):
        return Text(labelled(row["true"], names))
    return Text(labelled(row["true"], names) + " ✗", style="red")  # ✗ shows without colour too


def narrowest(paths: Sequence[str], start: int = 8) -> int:
    """The fewest characters in which `shorten` still tells `paths` apart."""
    longest = max(map(len, paths), default=0)
    for width in range(min(start, longest), longest):
        if len(set(shorten(paths, width))) == len(set(paths)):
            return width
    return longest


def layout(images: Sequence[str], others: Sequence[Sequence[str]], fixed: int, width: int) -> tuple[int, int]:
    """(image column width, runner-up pairs shown) for a table `width` wide whose other
    columns, borders and padding take `fixed` (the runners-up column's own border and padding
    included): the whole paths and every pair when they fit, else the most pairs beside an
    image column that still tells the paths apart, else none."""
    need = max(map(len, images), default=5)
    least = max(min(need, IMAGE_MIN), narrowest(images))
    most = max(map(len, others), default=0)

    def others_width(k: int) -> int:
        return max((len("  ".join(pairs[:k])) for pairs in others), default=0)

    available = width - fixed
    for k in range(most, 0, -1):
        if need + others_width(k) <= available:
            return need, k
    for k in range(most, 0, -1):
        if least + others_width(k) <= available:
            return available - others_width(k), k
    return max(available + 3, least), 0  # no runners-up column: its border and padding too


def print_table(
    rows: Sequence[Mapping[str, Any]], names: dict[str, str], summary: Sequence[str] = ()
) -> None:
    """predict's table (see module docstring), then the `summary` lines."""
    out = terminal()
    sources = [str(r["source"]) for r in rows]
    folder = common_folder(sources)
    relative = [os.path.relpath(s, folder) if folder else s for s in sources]
    labels = any("true" in r for r in rows)
    pairs = [_pairs(r, names) for r in rows]
    predictions = [_prediction(r, p) for r, p in zip(rows, pairs, strict=True)]
    truths = [_true(r, names) for r in rows]
    columns = 4 if labels else 3
    # Rich's box: a bar between and around the columns, one space of padding each side
    fixed = 3 * columns + 1
    fixed += max([len("prediction"), *(t.cell_len for t in predictions)])
    fixed += max([len("true"), *(t.cell_len for t in truths)]) if labels else 0
    image_width, k = layout(relative, [p[1:] for p in pairs], fixed, out.width)
    total = max(map(len, pairs), default=0)
    if folder:
        out.print(Text(clip_left(f"images in {folder}{os.sep}", out.width)), highlight=False)
    table = rich.table.Table(box=rich.box.SQUARE)
    table.add_column("image", no_wrap=True, width=max(image_width, len("image")))
    table.add_column("prediction", no_wrap=True)
    if k:
        table.add_column(
            f"top {2 if k == 1 else f'2-{k + 1}'}" + (f" of {total}" if k + 1 < total else ""), no_wrap=True
        )
    if labels:
        table.add_column("true", no_wrap=True)
    for shown, row, prediction, truth, top in zip(
        shorten(relative, image_width), rows, predictions, truths, pairs, strict=True
    ):
        cells: list[Text] = [Text(shown), prediction]
        if k:
            cells.append(Text("  ".join(top[1 : k + 1]) if top else str(row.get("error", ""))))
        if labels:
            cells.append(truth)
        table.add_row(*cells)
    out.print(table)
    print_lines(summary)
    if k + 1 < total:
        console.note(f"top {k + 1} of {total} shown at {out.width} columns; all: output=preds.csv or --json")


def print_lines(lines: Sequence[str]) -> None:
    """Sentences on stdout, wrapped between words at the terminal's width."""
    out = terminal()
    for line in lines:
        out.print(Text(line), highlight=False, soft_wrap=False)


def counts_line(rows: Sequence[Mapping[str, Any]]) -> str:
    """How many images, predicted, unreadable and blank."""
    errors = sum(1 for r in rows if r.get("error"))
    blank = sum(1 for r in rows if r.get("blank"))
    parts = [f"{len(rows) - errors} predicted"]
    parts += [f"{errors} unreadable"] if errors else []
    parts += [f"{blank} blank (no ink)"] if blank else []
    return f"{len(rows)} images: {', '.join(parts)}"


def classes_line(
    rows: Sequence[Mapping[str, Any]], names: dict[str, str], n: int = 5
) -> tuple[str, list[str]]:
    """The most confused pairs (labels known) or the most predicted classes, `n` of them:
    (heading, items)."""
    if any("true" in r for r in rows):
        wrong = Counter(
            (r["true"], r["label"]) for r in rows if "true" in r and not r["correct"] and r.get("label")
        )
        items = [f"{labelled(t, names)} as {labelled(p, names)} {c}" for (t, p), c in wrong.most_common(n)]
        return (
            ("most confused (true as predicted, count):", items)
            if items
            else ("no labelled image is wrong", [])
        )
    predicted = Counter(r["label"] for r in rows if r.get("label"))
    return "most predicted:", [f"{labelled(c, names)} {k}" for c, k in predicted.most_common(n)]


def packed(heading: str, items: Sequence[str], width: int) -> list[str]:
    """`heading` and `items` in lines of at most `width`, broken between items only (an item
    such as "0 (zero) as O (capital o) 27" is never split)."""
    lines, line = [], heading
    for i, item in enumerate(items):
        piece = item + ("," if i < len(items) - 1 else "")
        if len(line) + 1 + len(piece) > width and line.strip():
            lines.append(line)
            line = "  " + piece
        else:
            line = f"{line} {piece}"
    return [*lines, line]


def print_summary(
    rows: Sequence[Mapping[str, Any]], names: dict[str, str], summary: Sequence[str], where: str
) -> None:
    """The large-input view: counts, `summary` (accuracy and its caveat), the classes line,
    and where every row is (a path printed whole on its own line, to copy)."""
    print_lines([counts_line(rows), *summary])
    for line in packed(*classes_line(rows, names), terminal().width):
        print(line)
    print_lines([f"more than {TABLE_ROWS} images: no table; every row is in"])
    print(where)
    print_lines(["(output=<file>.csv or .json chooses the file; --json prints every row)"])


@contextmanager
def progress(total: int, what: str = "images") -> Iterator[Callable[[int], None]]:
    """A callback to call with each batch's count: a Rich bar on stderr when it is a terminal,
    else at most five lines (start, each quarter); nothing below PROGRESS_FROM."""
    if total < PROGRESS_FROM:
        yield lambda n: None
        return
    err = rich.console.Console(stderr=True)
    if err.is_terminal:
        with rich.progress.Progress(
            rich.progress.TextColumn(f"predicting {total} {what}"),
            rich.progress.BarColumn(),
            rich.progress.MofNCompleteColumn(),
            rich.progress.TimeRemainingColumn(),
            console=err,
            transient=True,
        ) as bar:
            task = bar.add_task("predict", total=total)
            yield lambda n: bar.advance(task, n)
        return
    done, quarter, start = 0, 0, time.monotonic()
    console.note(f"predicting {total} {what}")

    def advance(n: int) -> None:
        nonlocal done, quarter
        done += n
        while quarter < 4 and done >= total * (quarter + 1) / 4:
            quarter += 1
            console.note(f"{done}/{total} {what} ({time.monotonic() - start:.0f} s)")

    yield advance
