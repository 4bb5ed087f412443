"""The kinds of value a config key may hold, as rules: each returns what is wrong with a value
("must be a whole number from 1 to 100 (e.g. {key}=5)"), or None when it is fine.
hwr.validation gives every shipped key one of them."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

Rule = Callable[[Any], str | None]  # the problem with a value ("must be ..."), or None


def integer(lo: int | None = None, hi: int | None = None, example: int = 1) -> Rule:
    def check(v: Any) -> str | None:
        if (
            isinstance(v, bool)
            or not isinstance(v, int)
            or (lo is not None and v < lo)
            or (hi is not None and v > hi)
        ):
            span = f" from {lo} to {hi}" if lo is not None and hi is not None else ""
            span = span or (
                f" of {lo} or more" if lo is not None else f" up to {hi}" if hi is not None else ""
            )
            return f"must be a whole number{span} (e.g. {{key}}={example})"
        return None

    return check


def number(
    lo: float | None = None,
    hi: float | None = None,
    example: float = 1,
    below: bool = False,
    above: bool = False,
) -> Rule:
    """A real number in [lo, hi]: `below` leaves hi out, `above` leaves lo out."""
    if lo is not None and hi is not None:
        span = {
            (False, False): f"from {lo:g} to {hi:g}",
            (False, True): f"from {lo:g} to just under {hi:g}",
            (True, True): f"between {lo:g} and {hi:g} (neither included)",
            (True, False): f"above {lo:g}, up to {hi:g}",
        }[(above, below)]
    elif lo is not None:
        span = f"above {lo:g}" if above else f"of {lo:g} or more"
    else:
        span = f"under {hi:g}" if below else f"up to {hi:g}"

    def check(v: Any) -> str | None:
        ok = isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
        ok = (
            ok
            and (lo is None or (v > lo if above else v >= lo))
            and (hi is None or (v < hi if below else v <= hi))
        )
        return None if ok else f"must be a number {span} (e.g. {{key}}={example:g})"

    return check


def share(example: float = 0.1, below: bool = True) -> Rule:
    """A fraction from 0 to 1 (1 not included by default)."""
    return number(0, 1, example, below)


def choice(*options: Any) -> Rule:
    def check(v: Any) -> str | None:
        if v in options and not (isinstance(v, bool) and not any(isinstance(o, bool) for o in options)):
            return None
        shown = ", ".join(
            "null" if o is None else str(o).lower() if isinstance(o, bool) else str(o) for o in options
        )
        return f"must be one of {shown}"

    return check


def text(example: str = "...") -> Rule:
    def check(v: Any) -> str | None:
        return None if isinstance(v, str) and v.strip() else f"must be a text (e.g. {{key}}={example})"

    return check


def objectives(example: str) -> Rule:
    """A metric name, or a list of two (a study with two objectives)."""

    def check(v: Any) -> str | None:
        if isinstance(v, str) and v.strip():
            return None
        if isinstance(v, list) and 1 <= len(v) <= 2 and all(isinstance(x, str) and x.strip() for x in v):
            return None
        two = f"{{key}}=[{example},num_params]"
        return f"must be a metric name or a list of two (e.g. {{key}}={example} or {two})"

    return check


def optional(rule: Rule) -> Rule:
    def check(v: Any) -> str | None:
        return None if v is None else rule(v)

    return check


def list_of(rule: Rule, example: str, empty: bool = False) -> Rule:
    def check(v: Any) -> str | None:
        if not isinstance(v, list) or (not v and not empty) or any(rule(x) for x in v):
            return f"must be a list like {example}"
        return None

    return check


def text_or_list(example: str) -> Rule:
    def check(v: Any) -> str | None:
        if isinstance(v, str) and v.strip():
            return None
        if isinstance(v, list) and v and all(isinstance(x, str) and x for x in v):
            return None
        return f"must be a path or a list of paths (e.g. {{key}}={example})"

    return check


def anything(v: Any) -> str | None:
    return None
