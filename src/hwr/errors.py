"""The one exception type that entry points turn into a one-line message, and how they do it."""

from collections.abc import Iterator
from contextlib import contextmanager


class HwrError(Exception):
    """A problem the user can fix (missing data, bad file, bad option).

    The message is one line that says what is wrong and how to fix it; `train.py`,
    `eval.py` and the other entry points print it without a traceback.
    """


class FolderTaken(HwrError):
    """The run folder holds another run: nothing may be written there, not even a failure record."""


def positive_int(name: str, value: object, example: int = 1, most: int | None = None) -> int:
    """`value` when it is an integer >= 1 (and <= `most`), else an HwrError naming the key:
    `data.batch_size=0 must be a positive integer (e.g. data.batch_size=64)`."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or value < 1
        or (most is not None and value > most)
    ):
        bound = f" from 1 to {most}" if most is not None else ""
        raise HwrError(f"{name}={value!r} must be a positive integer{bound} (e.g. {name}={example})")
    return value


def root_cause(error: BaseException) -> BaseException:
    """The exception inside Hydra's InstantiationException wrappers (a constructor's HwrError)."""
    # Imported here: hwr.errors is imported by light modules (hwr.preprocess) that ship without Hydra.
    from hydra.errors import InstantiationException

    while isinstance(error, InstantiationException) and error.__cause__ is not None:
        error = error.__cause__
    return error


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn an HwrError (also one raised in a config's constructor) into `error: <message>` on
    stderr and exit status 1, without a traceback; any other exception passes through."""
    try:
        yield
    except HwrError as e:
        raise SystemExit(f"error: {e}") from None
    except Exception as e:
        cause = root_cause(e)
        if isinstance(cause, HwrError):
            raise SystemExit(f"error: {cause}") from None
        raise
