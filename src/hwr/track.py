"""A progress line for slow one-off work outside training (decoding a folder of images the
first time): a transient bar on a terminal, and the same news as two log lines (start, end)
when the output is piped or logged. Rich draws it on stderr, so stdout stays a command's result.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

import rich.console
import rich.progress

T = TypeVar("T")
log = logging.getLogger("hwr")
# fewer items than this finish before a bar would be worth drawing
AT_LEAST = 200


def track(items: Iterable[T], total: int, doing: str, done: str) -> Iterator[T]:
    """Yield `items`, showing `doing` (e.g. "decoding 3,410 images") with a bar on a terminal;
    log `doing` before and `done ... in 61 s` after, so a log or a pipe sees the wait too."""
    if total < AT_LEAST:
        yield from items
        return
    start = time.perf_counter()
    log.info("%s ...", doing)
    console = rich.console.Console(file=sys.stderr)
    if console.is_terminal:
        columns = (
            rich.progress.TextColumn("{task.description}"),
            rich.progress.BarColumn(bar_width=20),
            rich.progress.MofNCompleteColumn(),
            rich.progress.TimeRemainingColumn(),
        )
        with rich.progress.Progress(*columns, console=console, transient=True) as progress:
            yield from progress.track(items, total=total, description=doing)
    else:
        yield from items
    log.info("%s in %.0f s", done, time.perf_counter() - start)
